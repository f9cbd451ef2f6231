"""Torch implementations of the primitive ops, keyed by op name; the compiler resolves each op here.

The op table (`grammar/ops.py`) says what an op means — arity, shape rule, padding facts, formula, FLOPs —
and stays free of torch, so the language, the search and `abz check` never import it. This module says how
an op runs: a function on (B, H, a, b) tensors that never touches the batch/head axes and receives the
keyword `d=head_dim` when the op's `OpSpec.needs_head_dim` is set.

A custom language adds its op's implementation with `register_op_impl(name, fn)`; compiling a graph that
uses an op without one raises `CompileError` naming the op and this function (README "Adding a primitive
op").

Numerical choices (ours: the AutoBERT-Zero paper does not specify them):
- `sqrt` is sign-safe: sign(x)·√(|x|+ε) with ε = 1e-6, so it is defined and differentiable everywhere.
- `cosine` clamps each row norm at ε = 1e-6; `euclid` is √(‖x_i−y_j‖²+ε) so `euclid(Q, Q)` has a finite
  gradient on its diagonal.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from autobert_zero.errors import CompileError

OpImpl = Callable[..., torch.Tensor]
EPS = 1e-6


def neg(x: torch.Tensor) -> torch.Tensor:
    return -x


def transpose(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(-1, -2)


def scale(x: torch.Tensor, *, d: int) -> torch.Tensor:
    return x * (1.0 / math.sqrt(d))


def softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x, dim=-1)


def logsigmoid(x: torch.Tensor) -> torch.Tensor:
    return F.logsigmoid(x)


def softsign(x: torch.Tensor) -> torch.Tensor:
    return F.softsign(x)


def signed_sqrt(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.sqrt(x.abs() + EPS)


def add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x + y


def matmul(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x @ y


def cosine(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    xn = x / x.norm(dim=-1, keepdim=True).clamp_min(EPS)
    yn = y / y.norm(dim=-1, keepdim=True).clamp_min(EPS)
    return xn @ yn.transpose(-1, -2)


def euclid(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # ‖x_i − y_j‖² = ‖x_i‖² + ‖y_j‖² − 2·x_i·y_j, clamped at 0 against rounding, then +ε under the root.
    sq = (x * x).sum(-1, keepdim=True) + (y * y).sum(-1).unsqueeze(-2) - 2.0 * (x @ y.transpose(-1, -2))
    return torch.sqrt(sq.clamp_min(0.0) + EPS)


BUILTIN_IMPLS: dict[str, OpImpl] = {
    "neg": neg, "transpose": transpose, "scale": scale, "softmax": softmax, "logsigmoid": logsigmoid,
    "softsign": softsign, "sqrt": signed_sqrt, "add": add, "matmul": matmul, "cosine": cosine, "euclid": euclid,
}
"""The implementations of `grammar.ops.DEFAULT_OPS`, one per op name."""

_IMPLS: dict[str, OpImpl] = dict(BUILTIN_IMPLS)


def op_impl(name: str) -> OpImpl:
    """The implementation of op `name`; `CompileError` when none is registered."""
    try:
        return _IMPLS[name]
    except KeyError:
        raise CompileError(
            f"op {name!r} has no torch implementation, so it cannot be compiled; register one with "
            f"autobert_zero.compiler.register_op_impl({name!r}, fn) (README \"Adding a primitive op\"); "
            f"implemented ops: {', '.join(_IMPLS)}") from None


def register_op_impl(name: str, fn: OpImpl, *, replace: bool = False) -> None:
    """Make op `name` compilable with `fn` (on (B, H, a, b) tensors; takes `d=` if the op needs the head dim).

    Registering the same function again is a no-op; another function for a registered name needs
    `replace=True` (compiled cores are keyed by implementation, so old cores are not reused for it).
    """
    current = _IMPLS.get(name)
    if current is not None and current is not fn and not replace:
        raise CompileError(f"op {name!r} already has the implementation {current.__qualname__}; pass "
                           "replace=True to register_op_impl to change it")
    _IMPLS[name] = fn


def unregister_op_impl(name: str) -> None:
    """Forget a registered custom op's implementation (the built-in ops cannot be removed)."""
    if name in BUILTIN_IMPLS:
        raise CompileError(f"op {name!r} is built in; its implementation cannot be removed")
    _IMPLS.pop(name, None)
