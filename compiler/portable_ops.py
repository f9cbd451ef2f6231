"""Torch implementations of the built-in primitive ops, keyed by op name (shipped in every exported folder).

Each is a function on (B, H, a, b) tensors that never touches the batch/head axes and receives the keyword
`d=head_dim` when the op's `OpSpec.needs_head_dim` is set. This module is portable: it imports only torch
and the standard library, and `compiler/remote_code.py` copies it verbatim into every exported Hugging Face
folder, so the in-package compiler (`op_impls`, which adds the registry of custom ops) and the exported
remote code run the same functions.

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
