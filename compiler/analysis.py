"""Static costs of a compiled genotype: parameter count and forward FLOPs per token, layer by layer.

FLOPs count a multiply-add as 2 and cover the encoder (embeddings, pooler and heads excluded): linear
layers (2·in·out per token), the attention op graph (each op's `OpSpec.flops` at concrete L = seq_len and
d = head dim, per head, spread over the L tokens), the conv block (GLU, depthwise taps) and the FFN.
Biases, LayerNorms, residuals and the FFN activation are left out (O(h) per token, under 1%).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from autobert_zero.grammar import AttentionLayer, ConvLayer, Genotype, Language, default_language, infer_shapes

from .backbone import check_settings
from .layers import LayerSettings


@dataclass(frozen=True)
class LayerFlops:
    """Forward FLOPs per token of one layer, by part."""

    index: int
    branch: str
    """"attention" or "conv"."""
    projections: float
    """Linear maps of the mixer: Q/K/V/O projections, or the conv block's input/pointwise/output."""
    mixer: float
    """The op graph of an attention layer, or GLU + depthwise conv of a conv layer."""
    ffn: float

    @property
    def total(self) -> float:
        return self.projections + self.mixer + self.ffn


@dataclass(frozen=True)
class FlopsReport:
    """Per-layer FLOPs per token at one sequence length."""

    seq_len: int
    layers: tuple[LayerFlops, ...]

    @property
    def per_token(self) -> float:
        return sum(layer.total for layer in self.layers)

    def table(self) -> str:
        """A plain-text table, one row per layer, in MFLOPs per token."""
        rows = [f"{'layer':>5}  {'branch':<9} {'proj':>9} {'mixer':>9} {'ffn':>9} {'total':>9}"]
        for f in self.layers:
            rows.append(f"{f.index:>5}  {f.branch:<9} {f.projections / 1e6:>9.3f} {f.mixer / 1e6:>9.3f} "
                        f"{f.ffn / 1e6:>9.3f} {f.total / 1e6:>9.3f}")
        rows.append(f"{'all':>5}  {'':<9} {'':>9} {'':>9} {'':>9} {self.per_token / 1e6:>9.3f}")
        return "\n".join(rows)


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def flops_per_token(
    genotype: Genotype, settings: LayerSettings, seq_len: int, *, language: Language | None = None
) -> FlopsReport:
    """Forward FLOPs per token of the genotype's encoder at the given sizes and sequence length."""
    check_settings(settings)
    language = language or default_language()
    h, inter = settings.hidden_size, settings.intermediate_size
    heads = settings.num_attention_heads
    sizes = {"L": seq_len, "d": h // heads}
    ffn = 4.0 * h * inter
    layers: list[LayerFlops] = []
    for index, layer in enumerate(genotype.layers):
        if isinstance(layer, ConvLayer):
            projections = 2.0 * h * 2 * h + 2.0 * h * h * (2 if layer.kind == "sepconv" else 1)
            mixer = 2.0 * h + 2.0 * h * layer.kernel  # GLU gate, depthwise taps
        else:
            assert isinstance(layer, AttentionLayer)
            graph = genotype.graph(layer.graph)
            projections = 2.0 * h * h * (len(graph.inputs_used) + 1)
            shapes = infer_shapes(graph, language)
            per_head = 0
            for call in graph.calls:
                ins = tuple((sizes[a], sizes[b]) for a, b in (shapes[arg] for arg in call.args))
                out = shapes[call]
                per_head += language.ops[call.op].flops(ins, (sizes[out[0]], sizes[out[1]]))
            mixer = per_head * heads / seq_len
        layers.append(LayerFlops(index, layer.branch, projections, mixer, ffn))
    return FlopsReport(seq_len, tuple(layers))
