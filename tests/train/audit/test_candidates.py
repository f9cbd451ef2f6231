"""The audit's candidate set: valid, distinct, at the supernet's depth, deterministic, with close pairs."""

from __future__ import annotations

import pytest

from autobert_zero.compiler.functional_id import fingerprint
from autobert_zero.errors import ConfigError
from autobert_zero.grammar import AttentionLayer, Genotype, load_genotype, parse_genotype, validate
from autobert_zero.train.audit.candidates import at_depth, candidate_set
from autobert_zero.train.evaluate import genotype_fingerprint
from tests.support.paths import GENOTYPES


def layer_keys(genotype: Genotype) -> list[str]:
    """Per layer: what its mixer computes (graph fingerprint) or its conv settings."""
    return [fingerprint(genotype.graph(layer.graph)) if isinstance(layer, AttentionLayer) else repr(layer)
            for layer in genotype.layers]


def test_set_is_valid_distinct_deterministic_and_at_depth() -> None:
    first = candidate_set(4, 9, seed=3)
    assert [c.kind for c in first] == ["bert", "figure7"] + ["neighbour"] * 3 + ["random"] * 4
    assert [c.id for c in first] == [c.id for c in candidate_set(4, 9, seed=3)]
    assert [c.id for c in first] != [c.id for c in candidate_set(4, 9, seed=4)]
    assert len({c.id for c in first}) == 9
    assert len({genotype_fingerprint(c.genotype) for c in first}) == 9
    for c in first:
        assert c.genotype.num_layers == 4
        assert not validate(c.genotype)
        assert parse_genotype(c.genotype.to_text()).id == c.id  # the text in audit.json reproduces the id


def test_neighbours_are_one_layer_from_figure7() -> None:
    candidates = candidate_set(12, 10, seed=0, neighbours=6)
    figure7 = candidates[1].genotype
    assert figure7.id == load_genotype(GENOTYPES / "autobert_zero.abz").id
    key7 = layer_keys(figure7)
    for c in candidates[2:8]:
        assert c.kind == "neighbour"
        changed = [i for i, (a, b) in enumerate(zip(layer_keys(c.genotype), key7, strict=True)) if a != b]
        assert len(changed) == 1, c.detail


def test_shipped_genotypes_at_other_depths() -> None:
    figure7 = load_genotype(GENOTYPES / "autobert_zero.abz")
    assert at_depth(figure7, 12).id == figure7.id
    two = at_depth(figure7, 2)
    assert [layer.branch for layer in two.layers] == ["conv", "attention"]
    assert [layer.branch for layer in at_depth(figure7, 14).layers][12:] == ["conv", "attention"]


@pytest.mark.parametrize(("count", "neighbours", "match"), [
    (0, None, "at least 4"), (3, None, "at least 4"), (6, 4, "neighbours = 4"), (6, 0, "neighbours = 0")])
def test_refuses_too_few(count: int, neighbours: int | None, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        candidate_set(2, count, neighbours=neighbours)
