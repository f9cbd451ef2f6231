"""The seeded sampler: deterministic, always valid, and eventually draws every op and conv option."""

from __future__ import annotations

import random

import pytest

from autobert_zero.errors import LanguageError
from autobert_zero.grammar import (
    ConvLayer,
    default_language,
    sample_conv,
    sample_genotype,
    sample_graph,
    validate,
)


def test_same_seed_same_genotypes() -> None:
    a = [sample_genotype(random.Random(s), 4).to_text() for s in range(5)]
    b = [sample_genotype(random.Random(s), 4).to_text() for s in range(5)]
    assert a == b
    assert len(set(a)) == 5


def test_samples_are_valid_and_within_limits() -> None:
    rng = random.Random(3)
    language = default_language()
    for _ in range(200):
        layers = rng.randint(1, 5)
        genotype = sample_genotype(rng, layers, max_nodes=8)
        assert validate(genotype) == []
        assert genotype.num_layers == layers
        assert all(g.size <= 8 for g in genotype.graphs)
    limited = {g.size for _ in range(100) for g in sample_genotype(rng, 3, max_nodes=2).graphs}
    free = {g.size for _ in range(100) for g in sample_genotype(rng, 3).graphs}
    assert max(limited) <= 2 < max(free) <= language.max_nodes  # the argument, not chance, keeps graphs small


def test_eventually_every_op_and_conv_option() -> None:
    rng = random.Random(11)
    language = default_language()
    ops = {c.op for _ in range(300) for c in sample_graph(rng).calls}
    assert ops == set(language.op_names)
    convs = [sample_conv(rng) for _ in range(500)]
    assert {c.kind for c in convs} == set(language.conv_types)
    assert {c.kernel for c in convs} == set(language.conv_kernels)
    assert {c.dilation for c in convs} == set(language.conv_dilations)
    layers = [layer for s in range(50) for layer in sample_genotype(random.Random(s), 4).layers]
    assert any(isinstance(x, ConvLayer) for x in layers) and not all(isinstance(x, ConvLayer) for x in layers)


def test_impossible_op_subset_is_a_clear_error() -> None:
    with pytest.raises(LanguageError, match="no valid attention graph"):
        sample_graph(random.Random(0), ops=("cosine",), max_nodes=1)
