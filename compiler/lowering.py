"""Lowering pass: find scaled dot-product attention inside an attention graph and fuse it.

The pattern is `matmul(softmax(s · matmul(A, Bᵀ)), C)` with `s` any number of `scale` ops (1/√d each)
sitting on the logits, on `A`, on `B` or on `Bᵀ` — vanilla BERT is `A, B, C = Q, K, V` with one scale.
`A`, `B`, `C` are arbitrary sub-graphs, so Figure 7's `softmax(Q·softplus(K)ᵀ/√d)·(Q+K)` fuses too.
A match becomes one `F.scaled_dot_product_attention(A, B, C, attn_mask, dropout_p, scale=s)` node; the
compiled sub-graphs `A`, `B`, `C` feed it.

Pre-conditions of a match (else the graph stays unfused, which is always correct):
- the softmax node and the logits chain are used only by the pattern (otherwise they would be computed
  twice);
- `A` and `B` have the head dim as their feature axis (their contraction needs no padding mask);
- `B` and `C` share their row axis (the key axis). When it is the position axis, padded keys are
  masked through `attn_mask` and attention dropout applies, exactly as the unfused compilation does.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from autobert_zero.grammar import HEAD_AXIS, POSITION_AXIS, Call, Expr, Shape


@dataclass(frozen=True)
class FusedAttention:
    """`softmax(A·Bᵀ / √d^scale_power)·C` as one scaled-dot-product-attention call."""

    query: Expr
    key: Expr
    value: Expr
    scale_power: int
    """How many `scale` ops the pattern held: the SDPA scale is (1/√d) ** scale_power."""
    masked: bool
    """The key axis is the position axis: pass the padding mask and attention dropout."""

    @property
    def operands(self) -> tuple[Expr, Expr, Expr]:
        return (self.query, self.key, self.value)


def find_fused_attention(output: Expr, shapes: dict[Expr, Shape]) -> dict[Expr, FusedAttention]:
    """Every node of the graph below `output` that the pattern matches, mapped to its fused form.

    `shapes` must hold the symbolic shape of every node (`autobert_zero.grammar.infer_shapes`).
    """
    users = _count_users(output)
    found: dict[Expr, FusedAttention] = {}
    for node in output.walk():
        fused = _match(node, shapes, users)
        if fused is not None:
            found[node] = fused
    return found


def _count_users(output: Expr) -> Counter[Expr]:
    users: Counter[Expr] = Counter({output: 1})  # the graph's output has an outside user
    for node in output.walk():
        if isinstance(node, Call):
            users.update(node.args)
    return users


def _strip_scales(node: Expr, users: Counter[Expr] | None = None) -> tuple[Expr, int]:
    """Peel `scale(...)` wrappers off `node`; with `users`, stop at a scale node used elsewhere."""
    power = 0
    while isinstance(node, Call) and node.op == "scale":
        if users is not None and users[node] != 1:
            break
        node = node.args[0]
        power += 1
    return node, power


def _match(node: Expr, shapes: dict[Expr, Shape], users: Counter[Expr]) -> FusedAttention | None:
    if not (isinstance(node, Call) and node.op == "matmul"):
        return None
    probs, value = node.args
    if not (isinstance(probs, Call) and probs.op == "softmax" and users[probs] == 1):
        return None
    logits, logit_power = _strip_scales(probs.args[0], users)
    if not (isinstance(logits, Call) and logits.op == "matmul" and users[logits] == 1):
        return None
    query, query_power = _strip_scales(logits.args[0])
    key_t, key_t_power = _strip_scales(logits.args[1])
    if isinstance(key_t, Call) and key_t.op == "transpose":
        key, key_power = _strip_scales(key_t.args[0])
        key_shape = shapes[key]
    else:
        key, key_power = Call("transpose", (key_t,)), 0
        key_shape = (shapes[key_t][1], shapes[key_t][0])
    if not (shapes[query][1] == key_shape[1] == HEAD_AXIS and key_shape[0] == shapes[value][0]):
        return None
    return FusedAttention(
        query=query,
        key=key,
        value=value,
        scale_power=logit_power + query_power + key_t_power + key_power,
        masked=key_shape[0] == POSITION_AXIS,
    )
