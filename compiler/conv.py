"""Convolution token mixer built from a genotype's `ConvLayer` (the module is `portable_layers.ConvMixer`).

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

from autobert_zero.errors import CompileError
from autobert_zero.grammar import CONV_TYPES, ConvLayer

from . import portable_layers
from .portable_layers import CONV_ROLES

__all__ = ["CONV_ROLES", "ConvMixer", "check_conv"]


class ConvMixer(portable_layers.ConvMixer):
    """A conv layer's token mixer; parameter names are its roles (`input`, `depthwise_weight`, ...)."""

    def __init__(self, layer: ConvLayer, hidden_size: int, num_heads: int) -> None:
        check_conv(layer)
        super().__init__(layer.kind, layer.kernel, layer.dilation, hidden_size, num_heads)


def check_conv(layer: ConvLayer) -> None:
    """Raise `CompileError` for a conv layer the block cannot build (hand-built IR; parsed IR is valid)."""
    if layer.kind not in CONV_TYPES or layer.kind not in portable_layers.CONV_KINDS:
        raise CompileError(f"unknown conv type {layer.kind!r}; expected one of: {', '.join(CONV_TYPES)}")
    if layer.kernel < 1 or layer.kernel % 2 == 0:
        raise CompileError(f"conv kernel={layer.kernel} cannot keep the sequence length with 'same' padding; "
                           "expected an odd positive size")
    if layer.dilation < 1:
        raise CompileError(f"conv dilation={layer.dilation} must be a positive integer")
