"""Padding facts: which masks an op needs before it runs, and which masks are provably redundant.

Every valid genotype must be padding-invariant (a BERT backbone's contract, which batching relies on):
appending pad tokens does not change the outputs at real positions. The op table states the rule
(`OpSpec.reduced_axes` + `OpSpec.mask_fill`): before an op reduces over a position axis (`L`), padded
positions on that axis are overwritten with the op's fill (0 for contractions, -inf for softmax). This
module decides where those masks go.

A *fact* `(axis, value)` about a node says "every entry at a padded position along `axis` equals
`value`" (axis 0 = rows, 1 = columns of the per-head (a, b) matrix). A mask is skipped when a fact
already guarantees it. Facts come from:

- masks themselves (`masked_fill` establishes its fact);
- elementwise ops, evaluated numerically on the fact's value by the op's implementation (neg(0) = 0,
  scale(-inf) = -inf, ...), so no per-op table is needed for them;
- a few structural rules below for named ops (transpose, softmax, matmul, cosine).

An op without a rule propagates no facts, which is always safe: it only costs a redundant mask. Values
at padded positions are finite everywhere except in masked -inf operands, which only feed the op that
asked for them (padded rows still see at least one real column, so softmax rows never become NaN).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch

from autobert_zero.grammar import POSITION_AXIS, OpSpec, Shape

from .op_impls import OpImpl

Fact = tuple[int, float]
"""(axis, value): entries at padded positions along `axis` (0 rows, 1 columns) all equal `value`."""
Facts = frozenset[Fact]
NO_FACTS: Facts = frozenset()


def required_masks(
    spec: OpSpec, shapes: tuple[Shape, ...], facts: tuple[Facts, ...]
) -> list[tuple[int, int]]:
    """`(operand, axis)` masks with `spec.mask_fill` that the op needs and the facts do not already give.

    Returned as (operand index, axis) pairs; the fill is `spec.mask_fill`.
    """
    needed: list[tuple[int, int]] = []
    for operand, axis in spec.reduced_axes(shapes):
        if shapes[operand][axis] != POSITION_AXIS:
            continue
        if (axis, spec.mask_fill) in facts[operand]:
            continue
        partner = _PARTNER_COVERS.get(spec.name, {}).get((operand, axis))
        if partner is not None and spec.mask_fill == 0.0 and (partner[1], 0.0) in facts[partner[0]]:
            continue
        needed.append((operand, axis))
    return needed


def masked_facts(facts: Facts, axis: int, fill: float) -> Facts:
    """Facts of a node after `masked_fill` on `axis` with `fill` (the old fact on that axis is replaced)."""
    return frozenset({f for f in facts if f[0] != axis} | {(axis, fill)})


def propagate(spec: OpSpec, impl: OpImpl, facts: tuple[Facts, ...], head_dim: int) -> Facts:
    """Facts about an op's output from facts about its (already masked) operands; `impl` runs the op."""
    rule = _RULES.get(spec.name)
    if rule is not None:
        return rule(facts)
    if spec.elementwise:
        return _elementwise(spec, impl, facts, head_dim)
    return NO_FACTS


def dropout_facts(facts: Facts) -> Facts:
    """Dropout scales entries (and zeroes some): zeros stay zeros, other constants are lost."""
    return frozenset(f for f in facts if f[1] == 0.0)


# ---------------------------------------------------------------------------------------------------
# Rules


def _elementwise(spec: OpSpec, impl: OpImpl, facts: tuple[Facts, ...], head_dim: int) -> Facts:
    out: set[Fact] = set()
    for axis in (0, 1):
        values = [_value_on(f, axis) for f in facts]
        if any(v is None for v in values):
            continue
        result = _probe(impl, spec.needs_head_dim, tuple(v for v in values if v is not None), head_dim)
        if not math.isnan(result):
            out.add((axis, result))
    return frozenset(out)


@functools.cache
def _probe(impl: OpImpl, needs_head_dim: bool, values: tuple[float, ...], head_dim: int) -> float:
    """The op applied to constant operands (one entry each), as a Python float."""
    args = [torch.full((1, 1, 1, 1), v, dtype=torch.float64, device="cpu") for v in values]
    kwargs = {"d": head_dim} if needs_head_dim else {}
    with torch.no_grad():
        return float(impl(*args, **kwargs).reshape(()).item())


def _value_on(facts: Facts, axis: int) -> float | None:
    for a, v in facts:
        if a == axis:
            return v
    return None


def _transpose(facts: tuple[Facts, ...]) -> Facts:
    return frozenset((1 - a, v) for a, v in facts[0])


def _softmax(facts: tuple[Facts, ...]) -> Facts:
    # exp(-inf) = 0: columns masked with -inf come out exactly zero.
    return frozenset({(1, 0.0)}) if (1, float("-inf")) in facts[0] else NO_FACTS


def _matmul(facts: tuple[Facts, ...]) -> Facts:
    # (a×b)·(b×c): zero rows of the left operand give zero output rows, zero columns of the right
    # operand give zero output columns.
    out: set[Fact] = set()
    if (0, 0.0) in facts[0]:
        out.add((0, 0.0))
    if (1, 0.0) in facts[1]:
        out.add((1, 0.0))
    return frozenset(out)


def _pairwise_rows(facts: tuple[Facts, ...]) -> Facts:
    # cos(x_i, y_j): a zero row x_i gives a zero output row i; a zero row y_j a zero output column j.
    out: set[Fact] = set()
    if (0, 0.0) in facts[0]:
        out.add((0, 0.0))
    if (0, 0.0) in facts[1]:
        out.add((1, 0.0))
    return frozenset(out)


_RULES: dict[str, Callable[[tuple[Facts, ...]], Facts]] = {
    "transpose": _transpose,
    "softmax": _softmax,
    "matmul": _matmul,
    "cosine": _pairwise_rows,
}

# A contraction over an axis is also safe when the *other* operand is zero there:
# x·y sums x[:, j]·y[j, :], so zero columns of x make padded rows of y irrelevant (y is finite).
_PARTNER_COVERS: dict[str, dict[tuple[int, int], tuple[int, int]]] = {
    "matmul": {(1, 0): (0, 1)},
}
