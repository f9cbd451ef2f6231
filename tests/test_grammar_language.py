"""The search space is the grammar: adding an op is one grammar alternative plus one op-table entry."""

from __future__ import annotations

import random

import pytest
import torch

from autobert_zero.errors import GenotypeError, LanguageError
from autobert_zero.grammar import (
    DEFAULT_OPS,
    Language,
    OpSpec,
    default_language,
    formula,
    parse_genotype,
    sample_graph,
)
from autobert_zero.grammar.language import GRAMMAR_PATH
from autobert_zero.grammar.ops import same_shape

GELU_GENOTYPE = "attention a { return matmul(softmax(scale(matmul(gelu(Q), transpose(K)))), V) } " \
                "backbone { attention a }"


def grammar_with(op: str) -> str:
    text = GRAMMAR_PATH.read_text(encoding="utf-8")
    anchor = '| "cosine" | "euclid"'
    assert anchor in text
    return text.replace(anchor, f'{anchor}\n   | "{op}"')


GELU = OpSpec("gelu", 1, same_shape, torch.nn.functional.gelu, "gelu({0})", elementwise=True)


def test_default_language_matches_the_op_table() -> None:
    language = default_language()
    assert language.op_names == tuple(DEFAULT_OPS)
    assert language.conv_types == ("light", "depthwise", "sepconv")


def test_adding_an_op_is_a_grammar_line_and_a_table_entry() -> None:
    with pytest.raises(GenotypeError, match=r"unknown-op.*'gelu'"):
        parse_genotype(GELU_GENOTYPE)
    language = Language(grammar_with("gelu"), {**DEFAULT_OPS, "gelu": GELU})
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
