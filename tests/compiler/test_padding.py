"""Padding invariance, the property every valid genotype keeps (see `compiler/padding.py`).

A padded batch gives, at every real position, what each sequence gives alone without padding — whatever
the values at padded positions. Checked for random valid attention graphs (fused and unfused), for every
conv type × kernel × dilation, and for whole models.
"""

from __future__ import annotations

import random

import pytest
import torch

from autobert_zero.compiler import AutoBertZeroModel, build_layer, compile_core
from autobert_zero.grammar import (
    CONV_DILATIONS,
    CONV_TYPES,
    AttentionGraph,
    ConvLayer,
    Genotype,
    parse_genotype,
    sample_genotype,
    sample_graph,
)
from tests.support.models import TINY_SIZES, tiny_model_config
from tests.support.paths import GENOTYPES

LENGTHS = (6, 3, 5)  # real tokens per sequence; the batch is padded to 9
HIDDEN = TINY_SIZES["hidden_size"]


def close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    scale = expected[torch.isfinite(expected)].abs().max().item() if torch.isfinite(expected).any() else 1.0
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-9 * max(1.0, scale), equal_nan=True,
                               msg=lambda m: f"{what}: {m}")


def padded_keep(batch_len: int) -> torch.Tensor:
    keep = torch.zeros(len(LENGTHS), batch_len, dtype=torch.bool)
    for row, length in enumerate(LENGTHS):
        keep[row, :length] = True
    return keep  # (B, L)


# Graphs whose masks the padding facts prove redundant (each rule of compiler/padding.py at work).
EDGE_CASES = [
    "matmul(cosine(softmax(matmul(Q, transpose(K))), softmax(matmul(K, transpose(Q)))), V)",
    "matmul(softsign(neg(softmax(scale(matmul(Q, transpose(K)))))), add(V, V))",
    "matmul(logsigmoid(softmax(matmul(Q, transpose(K)))), V)",
    "transpose(matmul(transpose(V), transpose(softmax(matmul(K, transpose(Q))))))",
    "matmul(Q, matmul(softmax(transpose(K)), V))",
    "matmul(transpose(matmul(transpose(Q), cosine(Q, K))), euclid(transpose(Q), transpose(K)))",
    "matmul(Q, softmax(cosine(transpose(K), transpose(V))))",
]


def attention_graphs() -> list[AttentionGraph]:
    rng = random.Random(1234)
    edge = [parse_genotype(f"attention e {{ return {e} }} backbone {{ attention e }}").graphs[0] for e in EDGE_CASES]
    return edge + [sample_graph(rng, f"g{index}") for index in range(120)]


@pytest.mark.parametrize("fused", [False, True])
def test_random_attention_graphs_are_padding_invariant(fused: bool) -> None:
    generator = torch.Generator().manual_seed(1234)
    keep = padded_keep(9)
    for graph in attention_graphs():
        core = compile_core(graph, 4, fused=fused)
        inputs = [torch.randn(len(LENGTHS), 2, 9, 4, generator=generator, dtype=torch.float64)
                  for _ in graph.inputs_used]  # (B, H, L, dh), padded positions hold random values
        batched = core(*inputs, keep, 0.0)
        for row, length in enumerate(LENGTHS):
            alone = core(*(x[row:row + 1, :, :length] for x in inputs), keep[row:row + 1, :length], 0.0)
            close(batched[row:row + 1, :, :length], alone, f"{graph.output} (row {row})")


def conv_genotype(kind: str, kernel: int, dilation: int) -> Genotype:
    return Genotype((), (ConvLayer(kind, kernel, dilation),))


@pytest.mark.parametrize("kind", CONV_TYPES)
def test_conv_layers_are_padding_invariant(kind: str) -> None:
    torch.manual_seed(0)
    keep = padded_keep(9)
    for kernel in (1, 3, 9, 65):
        for dilation in CONV_DILATIONS:
            layer = build_layer(conv_genotype(kind, kernel, dilation), 0, tiny_model_config()).double().eval()
            hidden = torch.randn(len(LENGTHS), 9, HIDDEN, dtype=torch.float64)  # (B, L, h)
            batched = layer(hidden, keep)
            for row, length in enumerate(LENGTHS):
                alone = layer(hidden[row:row + 1, :length], keep[row:row + 1, :length])
                close(batched[row:row + 1, :length], alone, f"conv {kind} k={kernel} r={dilation}")


def test_attention_layer_with_random_graph_is_padding_invariant() -> None:
    rng = random.Random(7)
    keep = padded_keep(9)
    for _ in range(10):
        graph: AttentionGraph = sample_graph(rng, "g")
        genotype = parse_genotype(f"attention g {{ return {graph.output} }} backbone {{ attention g }}")
        layer = build_layer(genotype, 0, tiny_model_config(layer_norm_position="pre")).double().eval()
        hidden = torch.randn(len(LENGTHS), 9, HIDDEN, dtype=torch.float64)
        batched = layer(hidden, keep)
        for row, length in enumerate(LENGTHS):
            close(batched[row:row + 1, :length], layer(hidden[row:row + 1, :length], keep[row:row + 1, :length]),
                  str(graph.output))


def whole_model_genotypes() -> list[str]:
    rng = random.Random(99)
    sampled = [sample_genotype(rng, 4, max_nodes=10).to_text() for _ in range(3)]
    return [(GENOTYPES / "autobert_zero.abz").read_text(), *sampled]


@pytest.mark.parametrize("text", whole_model_genotypes())
def test_whole_model_is_padding_invariant(text: str) -> None:
    torch.manual_seed(0)
    model = AutoBertZeroModel(tiny_model_config(text)).double().eval()
    ids = torch.randint(1, TINY_SIZES["vocab_size"], (len(LENGTHS), 9))
    keep = padded_keep(9)
    ids = ids.masked_fill(~keep, 0)
    batched = model(input_ids=ids, attention_mask=keep.long())
    for row, length in enumerate(LENGTHS):
        alone = model(input_ids=ids[row:row + 1, :length])
        close(batched.last_hidden_state[row:row + 1, :length], alone.last_hidden_state, "last_hidden_state")
        close(batched.pooler_output[row:row + 1], alone.pooler_output, "pooler_output")
