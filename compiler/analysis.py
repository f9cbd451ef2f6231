"""Static costs of a compiled genotype: parameter count and forward FLOPs per token, layer by layer.

Both are computed from the genotype and the sizes alone, in plain Python (no torch is imported), so the
search and `abz show` get them without the training stack; `parameter_report` is tested equal to the
built model's `count_parameters`.

FLOPs count a multiply-add as 2 and cover the encoder (embeddings, pooler and heads excluded): linear
layers (2·in·out per token), the attention op graph (each op's `OpSpec.flops` at concrete L = seq_len and
d = head dim, per head, spread over the L tokens), the conv block (GLU, depthwise taps) and the FFN.
Biases, LayerNorms, residuals and the FFN activation are left out (O(h) per token, under 1%).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from autobert_zero.errors import CompileError
from autobert_zero.grammar import (
    HEAD_AXIS,
    POSITION_AXIS,
    AttentionLayer,
    ConvLayer,
    Genotype,
    Language,
    default_language,
    infer_shapes,
)

if TYPE_CHECKING:
    from torch import nn


def language_of(genotype: Genotype, language: Language | None = None) -> Language:
    """The language to compile `genotype` in: `language` when given, else the one the genotype carries (set by
    the parser, the sampler and mutations), else the default language."""
    if language is not None:
        return language
    carried = genotype.language
    return carried if isinstance(carried, Language) else default_language()


class Sizes(Protocol):
    """The sizes the costs depend on (`AutoBertZeroConfig` has them all; so does `StaticSizes`)."""

    @property
    def hidden_size(self) -> int: ...
    @property
    def num_attention_heads(self) -> int: ...
    @property
    def intermediate_size(self) -> int: ...


@dataclass(frozen=True)
class StaticSizes:
    """Plain model sizes, for callers without an `AutoBertZeroConfig` (defaults: BERT's, as in the config)."""

    hidden_size: int = 768
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    vocab_size: int = 30522
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_position: str = "post"


@dataclass(frozen=True)
class ParameterReport:
    """Parameters of the base model (`AutoBertZeroModel`) by part; tied weights counted once."""

    layers: tuple[int, ...]
    """Per encoder layer: token mixer, FFN and the layer's two LayerNorms."""
    embeddings: int
    """Word, position and token-type embeddings and their LayerNorm."""
    other: int
    """The pooler, and the final LayerNorm of a pre-LN encoder."""

    @property
    def total(self) -> int:
        return sum(self.layers) + self.embeddings + self.other


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
    """Number of distinct parameters of a built model (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def check_sizes(sizes: Sizes) -> None:
    """Raise `CompileError` when the sizes cannot build a backbone (what the costs need to be defined)."""
    hidden, heads = sizes.hidden_size, sizes.num_attention_heads
    if heads < 1 or hidden < 1 or hidden % heads:
        raise CompileError(f"hidden_size={hidden} must be a positive multiple of num_attention_heads={heads} "
                           "(each head gets hidden_size / num_attention_heads channels)")
    if sizes.intermediate_size < 1:
        raise CompileError(f"intermediate_size={sizes.intermediate_size} must be positive")


def parameter_report(genotype: Genotype, sizes: Sizes, *, pooler: bool = True) -> ParameterReport:
    """Parameters of `AutoBertZeroModel` for `genotype` at `sizes`, counted from the sizes (no model built).

    `sizes` also supplies `vocab_size`, `max_position_embeddings`, `type_vocab_size` and
    `layer_norm_position` (an `AutoBertZeroConfig` or `StaticSizes`). An MLM model adds its head, h² + 3h +
    vocab (the decoder weight is tied to the word embeddings).
    """
    check_sizes(sizes)
    h, inter, heads = sizes.hidden_size, sizes.intermediate_size, sizes.num_attention_heads
    linear = h * h + h
    ffn_and_norms = (h * inter + inter) + (inter * h + h) + 2 * 2 * h
    layers: list[int] = []
    for layer in genotype.layers:
        if isinstance(layer, ConvLayer):
            rows = heads if layer.kind == "light" else h
            mixer = (2 * h * h + 2 * h) + rows * layer.kernel + linear * (2 if layer.kind == "sepconv" else 1)
        else:
            assert isinstance(layer, AttentionLayer)
            mixer = linear * (len(genotype.graph(layer.graph).inputs_used) + 1)
        layers.append(mixer + ffn_and_norms)
    vocab = getattr(sizes, "vocab_size", StaticSizes.vocab_size)
    positions = getattr(sizes, "max_position_embeddings", StaticSizes.max_position_embeddings)
    types = getattr(sizes, "type_vocab_size", StaticSizes.type_vocab_size)
    pre_norm = getattr(sizes, "layer_norm_position", StaticSizes.layer_norm_position) == "pre"
    embeddings = (vocab + positions + types) * h + 2 * h
    other = (linear if pooler else 0) + (2 * h if pre_norm else 0)
    return ParameterReport(tuple(layers), embeddings, other)


def flops_per_token(
    genotype: Genotype, settings: Sizes, seq_len: int, *, language: Language | None = None
) -> FlopsReport:
    """Forward FLOPs per token of the genotype's encoder at the given sizes and sequence length."""
    check_sizes(settings)
    language = language_of(genotype, language)
    h, inter = settings.hidden_size, settings.intermediate_size
    heads = settings.num_attention_heads
    sizes = {POSITION_AXIS: seq_len, HEAD_AXIS: h // heads}
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
