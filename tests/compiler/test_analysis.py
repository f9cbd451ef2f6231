"""Parameter counts, FLOPs per token and the functional fingerprint."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import BertConfig, BertModel

from autobert_zero.compiler import (
    AutoBertZeroForMaskedLM,
    AutoBertZeroModel,
    StaticSizes,
    bert_genotype_text,
    count_parameters,
    fingerprint,
    flops_per_token,
    from_hf_bert,
    parameter_report,
)
from autobert_zero.compiler.functional_id import _round
from autobert_zero.errors import CompileError
from autobert_zero.grammar import AttentionGraph, parse_genotype, sample_genotype
from tests.support.models import tiny_model_config
from tests.support.paths import GENOTYPES


def graph(expr: str, name: str = "g") -> AttentionGraph:
    return parse_genotype(f"attention {name} {{ return {expr} }} backbone {{ attention {name} }}").graphs[0]


def test_parameter_count_matches_bert() -> None:
    bert = BertModel(BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=37))
    assert count_parameters(from_hf_bert(bert)) == count_parameters(bert) == sum(p.numel() for p in bert.parameters())


def test_tied_decoder_is_counted_once() -> None:
    model = AutoBertZeroForMaskedLM(tiny_model_config(bert_genotype_text(1)))
    base = count_parameters(model.autobert)
    head = model.lm_head
    assert count_parameters(model) == base + sum(p.numel() for p in (head.dense.weight, head.dense.bias,
                                                                       head.norm.weight, head.norm.bias,
                                                                       head.decoder.bias))


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_static_parameter_count_equals_the_built_model(norm: str) -> None:
    rng = random.Random(7)
    genotypes = [parse_genotype((GENOTYPES / "autobert_zero.abz").read_text()),
                 *(sample_genotype(rng, 3) for _ in range(6))]
    for genotype in genotypes:
        config = tiny_model_config(genotype.to_text(), layer_norm_position=norm, max_position_embeddings=40,
                                   type_vocab_size=3)
        model = AutoBertZeroModel(config)
        report = parameter_report(genotype, config)
        for index, layer in enumerate(model.encoder.layers):
            assert report.layers[index] == count_parameters(layer), (genotype.to_text(), index)
        assert report.total == count_parameters(model)
        assert parameter_report(genotype, config, pooler=False).total == count_parameters(
            AutoBertZeroModel(config, add_pooling_layer=False))
        plain = StaticSizes(hidden_size=32, num_attention_heads=4, intermediate_size=37, vocab_size=99,
                            max_position_embeddings=40, type_vocab_size=3, layer_norm_position=norm)
        assert parameter_report(genotype, plain) == report


def test_static_costs_refuse_sizes_that_cannot_build() -> None:
    genotype = parse_genotype(bert_genotype_text(1))
    with pytest.raises(CompileError, match="multiple of num_attention_heads=4"):
        parameter_report(genotype, StaticSizes(hidden_size=30, num_attention_heads=4))
    with pytest.raises(CompileError, match="intermediate_size=0"):
        flops_per_token(genotype, StaticSizes(hidden_size=32, num_attention_heads=4, intermediate_size=0), 8)


def test_vanilla_flops_follow_the_formula() -> None:
    h, inter, heads, length = 32, 37, 4, 16
    report = flops_per_token(parse_genotype(bert_genotype_text(2)), tiny_model_config(), length)
    (layer, _) = report.layers
    assert layer.projections == 8 * h * h
    # per head: Q·Kᵀ 2·L·L·d, scale L·L, softmax 5·L·L, P·V 2·L·L·d; over L tokens and all heads.
    d = h // heads
    assert layer.mixer == pytest.approx((4 * length * length * d + 6 * length * length) * heads / length)
    assert layer.ffn == 4 * h * inter
    assert report.per_token == pytest.approx(2 * layer.total)
    assert "all" in report.table()


def test_flops_see_missing_v_and_conv_sizes() -> None:
    qk = "attention g { return matmul(softmax(matmul(Q, transpose(K))), Q) } backbone { attention g }"
    assert flops_per_token(parse_genotype(qk), tiny_model_config(), 8).layers[0].projections == 6 * 32 * 32
    conv = parse_genotype("backbone { conv light kernel=3 \n conv sepconv kernel=9 }")
    light, sep = flops_per_token(conv, tiny_model_config(), 8).layers
    assert sep.projections - light.projections == 2 * 32 * 32
    assert sep.mixer - light.mixer == 2 * 32 * 6
    figure7 = parse_genotype((GENOTYPES / "autobert_zero.abz").read_text())
    assert len(flops_per_token(figure7, tiny_model_config(), 128).layers) == 12


@pytest.mark.parametrize(("a", "b"), [
    ("matmul(softmax(scale(matmul(add(Q, K), transpose(K)))), V)",
     "matmul(softmax(scale(matmul(add(K, Q), transpose(K)))), V)"),
    ("matmul(softmax(scale(matmul(Q, transpose(transpose(transpose(K)))))), V)",
     "matmul(softmax(scale(matmul(Q, transpose(K)))), V)"),
    ("matmul(softmax(scale(matmul(Q, transpose(K)))), neg(neg(V)))",
     "matmul(softmax(scale(matmul(Q, transpose(K)))), V)"),
    ("matmul(softmax(matmul(scale(Q), transpose(K))), V)",
     "matmul(softmax(scale(matmul(Q, transpose(K)))), V)"),
])
def test_equal_meaning_gives_equal_fingerprint(a: str, b: str) -> None:
    assert fingerprint(graph(a, "first")) == fingerprint(graph(b, "second"))


def test_different_meaning_gives_different_fingerprints() -> None:
    exprs = [
        "matmul(softmax(scale(matmul(Q, transpose(K)))), V)",
        "matmul(softmax(matmul(Q, transpose(K))), V)",
        "matmul(softmax(scale(matmul(Q, transpose(K)))), Q)",
        "matmul(softmax(scale(matmul(K, transpose(Q)))), V)",
        "neg(matmul(softmax(scale(matmul(Q, transpose(K)))), V))",
    ]
    prints = [fingerprint(graph(e)) for e in exprs]
    assert len(set(prints)) == len(prints)
    torch.manual_seed(12345)  # the global RNG state must not matter: the inputs come from a fixed generator
    torch.randn(1000)
    assert [fingerprint(graph(e, "again")) for e in exprs] == prints


def test_rounding_is_deterministic_for_special_values() -> None:
    assert _round(float("nan")) == "nan"
    assert _round(float("inf")) == "inf" and _round(float("-inf")) == "-inf"
    assert _round(-0.0) == _round(0.0) == _round(1e-12) == "0"
    assert _round(0.123456789) == _round(0.1234567) == "0.1235"
    assert torch.get_default_dtype() == torch.float32  # fingerprints never change the global dtype
