"""The search space is the grammar: adding an op is one grammar alternative, one op-table entry and one
implementation entry (the compiler's, by op name)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
import torch

from autobert_zero.compiler import AutoBertZeroConfig, AutoBertZeroModel, build_encoder, compile_core
from autobert_zero.compiler.op_impls import register_op_impl, unregister_op_impl
from autobert_zero.errors import CompileError, GenotypeError, LanguageError
from autobert_zero.grammar import (
    DEFAULT_OPS,
    Language,
    default_language,
    formula,
    parse_genotype,
    sample_graph,
)
from tests.support.languages import GELU, grammar_with

GELU_GENOTYPE = "attention a { return matmul(softmax(scale(matmul(gelu(Q), transpose(K)))), V) } " \
                "backbone { attention a }"






@pytest.fixture
def gelu_language() -> Iterator[Language]:
    """The default language plus `gelu` (grammar line + table entry); its implementation is left out."""
    yield Language(grammar_with("gelu"), {**DEFAULT_OPS, "gelu": GELU})
    unregister_op_impl("gelu")


def test_default_language_matches_the_op_table() -> None:
    language = default_language()
    assert language.op_names == tuple(DEFAULT_OPS)
    assert language.conv_types == ("light", "depthwise", "sepconv")


def test_adding_an_op_is_a_grammar_line_and_a_table_entry(gelu_language: Language) -> None:
    with pytest.raises(GenotypeError, match=r"unknown-op.*'gelu'"):
        parse_genotype(GELU_GENOTYPE)
    language = gelu_language
    genotype = parse_genotype(GELU_GENOTYPE, language=language)
    graph = genotype.graphs[0]
    assert formula(graph, language) == "softmax(gelu(Q)·Kᵀ/√d)·V"
    rng = random.Random(0)
    drawn = {c.op for _ in range(200) for c in sample_graph(rng, language=language).calls}
    assert "gelu" in drawn


def test_grammar_op_without_table_entry_is_rejected() -> None:
    with pytest.raises(LanguageError, match=r"gelu.*no entry"):
        Language(grammar_with("gelu"))


def test_size_limit_is_configurable() -> None:
    text = "attention a { return neg(neg(neg(Q))) } backbone { attention a }"
    parse_genotype(text)
    with pytest.raises(GenotypeError, match="too-large"):
        parse_genotype(text, language=default_language().with_limits(max_nodes=2))


def test_compiling_a_new_op_needs_one_implementation_entry(gelu_language: Language) -> None:
    genotype = parse_genotype(GELU_GENOTYPE, language=gelu_language)
    graph = genotype.graphs[0]
    with pytest.raises(CompileError, match=r"'gelu' has no torch implementation.*register_op_impl\('gelu'"):
        compile_core(graph, 8, language=gelu_language)
    register_op_impl("gelu", torch.nn.functional.gelu)
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 5, 8) for _ in range(3))
    keep = torch.ones(2, 5, dtype=torch.bool)
    for fused in (False, True):
        core = compile_core(graph, 8, fused=fused, language=gelu_language)
        expected = torch.softmax(torch.nn.functional.gelu(q) @ k.transpose(-1, -2) / 8 ** 0.5, dim=-1) @ v
        torch.testing.assert_close(core(q, k, v, keep, 0.0), expected)
    # a whole model with the custom language: the encoder is compiled with it and injected
    config = AutoBertZeroConfig(genotype="", vocab_size=50, hidden_size=16, num_attention_heads=2,
                                intermediate_size=32)
    encoder = build_encoder(genotype, config, language=gelu_language, init_std=None)
    model = AutoBertZeroModel(config, encoder=encoder).eval()
    assert model(torch.tensor([[1, 2, 3, 4]])).last_hidden_state.shape == (1, 4, 16)


def test_an_implementation_is_not_silently_replaced(gelu_language: Language) -> None:
    register_op_impl("gelu", torch.nn.functional.gelu)
    register_op_impl("gelu", torch.nn.functional.gelu)  # the same function again: fine
    with pytest.raises(CompileError, match="already has the implementation"):
        register_op_impl("gelu", torch.nn.functional.silu)
    with pytest.raises(CompileError, match="built in"):
        unregister_op_impl("softmax")
