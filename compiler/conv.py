"""Convolution token mixer: Linear(h→2h) → GLU → depthwise conv over positions → Linear(h→h).

Types (`ConvLayer.kind`):
- `light`: LightConv (Wu et al. 2019) — one kernel per head, shape (heads, k), softmax-normalised over
  its taps and shared by the head's channels;
- `depthwise`: one kernel per channel, shape (hidden, k);
- `sepconv`: depthwise-separable — the depthwise conv, then a pointwise Linear(h→h).

Kernels are stored at the layer's own size `k` (a weight-sharing supernet slices the centre taps of its
largest kernel). Dilation `r` with 'same' padding r·(k−1)/2 keeps the length. Padded positions are set to
zero after the GLU, so zero padding inside a sequence looks exactly like the zero padding at its end:
appending pad tokens does not change the outputs at real positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from autobert_zero.errors import CompileError
from autobert_zero.grammar import CONV_TYPES, ConvLayer

CONV_ROLES = ("input", "depthwise_weight", "pointwise", "output")


class ConvMixer(nn.Module):
    """A conv layer's token mixer; parameter names are its roles (`input`, `depthwise_weight`, ...)."""

    def __init__(self, layer: ConvLayer, hidden_size: int, num_heads: int) -> None:
        super().__init__()
        check_conv(layer)
        self.kind = layer.kind
        self.kernel_size = layer.kernel
        self.dilation = layer.dilation
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.input = nn.Linear(hidden_size, 2 * hidden_size)
        rows = num_heads if layer.kind == "light" else hidden_size
        self.depthwise_weight = nn.Parameter(torch.empty(rows, layer.kernel))
        self.pointwise = nn.Linear(hidden_size, hidden_size) if layer.kind == "sepconv" else None
        self.output = nn.Linear(hidden_size, hidden_size)

    @property
    def padding(self) -> int:
        """'Same' padding of the kernel in use: the output has the input's length."""
        return self.dilation * (self.kernel_size - 1) // 2

    def raw_taps(self) -> torch.Tensor:
        """The stored kernel taps in use, (heads, k) for `light`, else (hidden, k).

        A supernet's shared conv overrides this to slice the centre of its largest kernel.
        """
        return self.depthwise_weight

    def kernel(self) -> torch.Tensor:
        """The per-channel kernel for `F.conv1d` with groups=hidden: (hidden, 1, k)."""
        taps = self.raw_taps()
        if self.kind == "light":
            taps = torch.softmax(taps, dim=-1)  # (heads, k)
            taps = taps.repeat_interleave(self.hidden_size // self.num_heads, dim=0)  # (hidden, k)
        return taps.unsqueeze(1)  # (hidden, 1, k)

    def forward(self, hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """hidden (B, L, h), keep (B, L) bool → (B, L, h)."""
        x = F.glu(self.input(hidden), dim=-1)  # (B, L, h)
        x = x.masked_fill(~keep.unsqueeze(-1), 0.0)  # zero padded positions before mixing them in
        y = F.conv1d(x.transpose(1, 2), self.kernel(), padding=self.padding, dilation=self.dilation,
                     groups=self.hidden_size)  # (B, h, L)
        y = y.transpose(1, 2)  # (B, L, h)
        if self.pointwise is not None:
            y = self.pointwise(y)
        return self.output(y)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, kernel={self.kernel_size}, dilation={self.dilation}"


def check_conv(layer: ConvLayer) -> None:
    """Raise `CompileError` for a conv layer the block cannot build (hand-built IR; parsed IR is valid)."""
    if layer.kind not in CONV_TYPES:
        raise CompileError(f"unknown conv type {layer.kind!r}; expected one of: {', '.join(CONV_TYPES)}")
    if layer.kernel < 1 or layer.kernel % 2 == 0:
        raise CompileError(f"conv kernel={layer.kernel} cannot keep the sequence length with 'same' padding; "
                           "expected an odd positive size")
    if layer.dilation < 1:
        raise CompileError(f"conv dilation={layer.dilation} must be a positive integer")
