"""Mutations: only valid children reach the fitness, every mutation type is reached, and what they may
produce comes from the language (a narrowed one, or one whose grammar gained an op)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from autobert_zero.evolve.mutations import REJECTION_CODES, Child, Mutation, Mutator, Rejection
from autobert_zero.grammar import (
    CODES,
    DEFAULT_OPS,
    AttentionLayer,
    Call,
    Genotype,
    Input,
    Language,
    OpSpec,
    default_language,
    load_genotype,
    parse_genotype,
    sample_genotype,
    validate,
)
from autobert_zero.grammar.canonical import node_at, substitute
from autobert_zero.grammar.ops import same_shape
from tests.support.languages import grammar_with
from tests.support.paths import GENOTYPES


def layer_mixers(genotype: Genotype) -> list[object]:
    """Each layer's mixer of a canonical genotype: its graph's body, or a conv's settings."""
    return [genotype.graph(layer.graph).output if isinstance(layer, AttentionLayer)
            else (layer.kind, layer.kernel, layer.dilation) for layer in genotype.layers]


def test_thousands_of_mutations_give_only_valid_children_and_reach_every_type() -> None:
    language = default_language()
    mutator = Mutator(language)
    rng = random.Random(0)
    figure7 = load_genotype(GENOTYPES / "autobert_zero.abz").canonical()
    parent = figure7
    reached: Counter[Mutation] = Counter()
    rejections: Counter[str] = Counter()
    for step in range(2000):
        child = mutator.mutate(parent, rng, rejections)
        assert isinstance(child, Child)
        assert validate(child.genotype, language) == []
        assert child.genotype.num_layers == parent.num_layers
        assert child.genotype.id != parent.id
        before, after = layer_mixers(parent), layer_mixers(child.genotype)
        changed = [i for i in range(parent.num_layers) if before[i] != after[i]]
        assert changed == [child.layer], (child.mutation, child.detail)
        if step % 10 == 0:
            assert parse_genotype(child.genotype.to_text()) == child.genotype
        reached[child.mutation] += 1
        parent = child.genotype if step % 3 else figure7
    assert set(reached) == set(Mutation)
    # rejected proposals are counted by reason code: the validator's codes or the mutator's own
    assert rejections and set(rejections) <= set(CODES) | set(REJECTION_CODES)


def test_a_narrowed_language_bounds_what_mutations_produce() -> None:
    language = default_language().with_limits(ops=["matmul", "transpose", "softmax", "scale", "add"],
                                              conv_kernels=[3, 7], conv_dilations=[1], conv_types=["light"],
                                              max_nodes=8)
    mutator = Mutator(language)
    rng = random.Random(0)  # a walk that reaches matmul (the sampler rarely draws it in this narrow language)
    parent = sample_genotype(rng, 4, language=language)
    ops_seen: set[str] = set()
    kernels_seen: set[int] = set()
    for _ in range(600):
        child = mutator.mutate(parent, rng).genotype
        for graph in child.graphs:
            assert graph.size <= 8
            ops_seen |= {c.op for c in graph.calls}
        for layer in child.layers:
            if not isinstance(layer, AttentionLayer):
                assert (layer.kind, layer.dilation) == ("light", 1) and layer.kernel in (3, 7)
                kernels_seen.add(layer.kernel)
        parent = child
    assert ops_seen == {"matmul", "transpose", "softmax", "scale", "add"}  # only allowed, eventually all
    assert kernels_seen == {3, 7}


def test_an_op_added_to_the_grammar_is_reachable_by_mutation() -> None:
    gelu = OpSpec("gelu", 1, same_shape, "gelu({0})", elementwise=True)
    language = Language(grammar_with("gelu"), {**DEFAULT_OPS, "gelu": gelu})
    mutator = Mutator(language, [Mutation.REPLACE_OP, Mutation.INSERT_NODE])
    rng = random.Random(2)
    bert = load_genotype(GENOTYPES / "bert.abz")
    made = [mutator.mutate(bert, rng) for _ in range(300)]
    assert any("gelu" in child.ops and "gelu(" in child.genotype.to_text() for child in made)


def test_substitute_edits_one_occurrence_of_a_shared_node() -> None:
    genotype = parse_genotype("attention a { t = neg(Q)  return matmul(softmax(matmul(t, transpose(t))), V) } "
                              "backbone { attention a }")
    output = genotype.graphs[0].output
    shared = Call("neg", (Input("Q"),))
    path = (0, 0, 1, 0)  # matmul → softmax → matmul → transpose → neg(Q)
    assert node_at(output, path) == shared
    edited = substitute(output, path, Input("K"))
    assert str(edited) == "matmul(softmax(matmul(neg(Q), transpose(K))), V)"
    assert str(output) == "matmul(softmax(matmul(neg(Q), transpose(neg(Q)))), V)"  # the IR is immutable
    with pytest.raises(IndexError):
        node_at(output, (1, 0))  # V is an input: nothing below it


def test_rejections_name_their_reason() -> None:
    language = default_language()
    mutator = Mutator(language, [Mutation.CONV_KERNEL])
    all_attention = load_genotype(GENOTYPES / "bert.abz")
    result = mutator.propose(all_attention, random.Random(0))
    assert isinstance(result, Rejection) and result.reason == "not-applicable"


def test_an_op_edit_of_a_parent_whose_graph_has_no_op_is_not_applicable() -> None:
    """A parent whose only attention graph is `return V` (valid: no op node) has no site for an op edit: the
    edit is refused as not applicable (it used to draw from an empty list), and another mutation type goes on."""
    parent = parse_genotype("attention a { return V }\nbackbone {\n attention a\n conv light kernel=3\n}\n")
    mutator = Mutator(default_language())
    for mutation in (Mutation.REPLACE_OP, Mutation.DELETE_NODE, Mutation.REWIRE_OPERAND):
        rejection = mutator.propose(parent, random.Random(0), [mutation])
        assert isinstance(rejection, Rejection) and rejection.reason == "not-applicable"
    assert isinstance(mutator.mutate(parent, random.Random(0)), Child)
