"""Canonical form and identity: equal meaning ⇒ equal id for the rules' cases; different meaning ⇒ different id."""

from __future__ import annotations

import random

import pytest

from autobert_zero.grammar import AttentionLayer, ConvLayer, load_genotype, parse_genotype, sample_genotype
from tests.support.paths import GENOTYPES


def genotype_of(body: str, layers: str = "attention a") -> str:
    return f"attention a {{ {body} }}\nbackbone {{ {layers} }}"


EQUIVALENT = [
    ("return add(Q, K)", "return add(K, Q)"),
    ("return neg(neg(add(Q, V)))", "return add(V, Q)"),
    ("return matmul(softmax(matmul(Q, transpose(transpose(transpose(K))))), V)",
     "return matmul(softmax(matmul(Q, transpose(K))), V)"),
    ("return add(add(Q, K), V)", "return add(Q, add(V, K))"),
    ("x = softsign(Q) return add(x, x)", "return add(softsign(Q), softsign(Q))"),
    ("return matmul(transpose(matmul(K, transpose(Q))), V)", "return matmul(matmul(Q, transpose(K)), V)"),
    ("return matmul(softmax(transpose(neg(matmul(K, transpose(Q))))), V)",
     "return matmul(softmax(neg(matmul(Q, transpose(K)))), V)"),
    ("return scale(neg(Q))", "return neg(scale(Q))"),
]

DIFFERENT = [
    ("return matmul(softmax(matmul(Q, transpose(K))), V)", "return matmul(softmax(matmul(K, transpose(Q))), V)"),
    ("return neg(Q)", "return neg(neg(neg(neg(K))))"),
    ("return matmul(cosine(Q, K), V)", "return matmul(euclid(Q, K), V)"),
]


@pytest.mark.parametrize(("left", "right"), EQUIVALENT)
def test_equivalent_spellings_share_an_id(left: str, right: str) -> None:
    a, b = parse_genotype(genotype_of(left)), parse_genotype(genotype_of(right))
    assert a.id == b.id


@pytest.mark.parametrize(("left", "right"), DIFFERENT)
def test_different_graphs_have_different_ids(left: str, right: str) -> None:
    assert parse_genotype(genotype_of(left)).id != parse_genotype(genotype_of(right)).id


def test_graph_names_and_unused_graphs_do_not_change_the_id() -> None:
    a = parse_genotype("attention x { return neg(Q) } attention y { return K } backbone { attention x }")
    b = parse_genotype("attention first { return neg(Q) } backbone { attention first }")
    assert a.id == b.id


def test_equal_graphs_under_two_names_merge() -> None:
    a = parse_genotype("attention x { return add(Q,K) } attention y { return add(K,Q) } "
                       "backbone { attention x attention y }")
    b = parse_genotype("attention x { return add(Q,K) } backbone { attention x attention x }")
    assert a.id == b.id
    assert len(a.canonical().graphs) == 1


def test_conv_identity() -> None:
    a = parse_genotype("backbone { conv light kernel=1 dilation=4 }")
    b = parse_genotype("backbone { conv kernel=1 }")
    c = parse_genotype("backbone { conv depthwise kernel=1 }")
    assert a.id == b.id != c.id


def test_layer_order_matters() -> None:
    a = parse_genotype("attention x { return Q } backbone { attention x conv kernel=3 }")
    b = parse_genotype("attention x { return Q } backbone { conv kernel=3 attention x }")
    assert a.id != b.id


def test_figure7_canonical_removes_double_negations() -> None:
    genotype = load_genotype(GENOTYPES / "autobert_zero.abz")
    canonical = genotype.canonical()
    assert "neg(neg(" not in canonical.to_text()
    assert len(canonical.graphs) == 5  # layers 6 and 8 share one graph
    assert canonical.canonical() == canonical  # idempotent
    assert parse_genotype(canonical.to_text()) == canonical


def test_canonical_is_idempotent_on_random_genotypes() -> None:
    rng = random.Random(7)
    for _ in range(200):
        genotype = sample_genotype(rng, num_layers=3)
        canonical = genotype.canonical()
        assert canonical.canonical() == canonical  # idempotent
        # the canonical text parses back to the same IR (printer and parser agree on the canonical form)
        assert parse_genotype(canonical.to_text()) == canonical
        # printing and parsing the raw genotype loses nothing the canonical form sees
        assert parse_genotype(genotype.to_text()).canonical() == canonical
        # graphs are named a1, a2, ... in order of first use, and every one is used
        used = list(dict.fromkeys(layer.graph for layer in canonical.layers if isinstance(layer, AttentionLayer)))
        assert [g.name for g in canonical.graphs] == used == [f"a{i}" for i in range(1, len(used) + 1)]
        # canonicalisation keeps the layer structure: the same kinds, convs unchanged but for kernel-1 dilation
        assert [layer.branch for layer in canonical.layers] == [layer.branch for layer in genotype.layers]
        assert [(c.kind, c.kernel) for c in canonical.layers if isinstance(c, ConvLayer)] == [
            (c.kind, c.kernel) for c in genotype.layers if isinstance(c, ConvLayer)]
