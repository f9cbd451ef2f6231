"""Identity is a function of the language: a genotype carries the language it was built with (parser,
sampler, mutations), and its id follows that language's rewrite rules. Equal ids compile to equal functions.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
import torch

from autobert_zero.compiler import build_encoder
from autobert_zero.compiler.op_impls import register_op_impl, unregister_op_impl
from autobert_zero.evolve.mutations import Child, Mutation, Mutator, Rejection
from autobert_zero.grammar import (
    DEFAULT_OPS,
    AttentionGraph,
    AttentionLayer,
    Call,
    ConvLayer,
    Expr,
    Genotype,
    Language,
    OpSpec,
    canonical_graph,
    default_language,
    genotype_id,
    parse_genotype,
    sample_genotype,
)
from autobert_zero.grammar.ops import same_shape
from tests.support.languages import grammar_with
from tests.support.models import TINY_SIZES, tiny_model_config

MUL = OpSpec("mul", 2, same_shape, "{0}⊙{1}", precedence=60, commutative=True, elementwise=True)


def with_mul() -> Language:
    """The default language plus an entry-wise product `mul`, declared commutative."""
    return Language(grammar_with("mul"), {**DEFAULT_OPS, "mul": MUL})


@pytest.fixture(scope="module")
def mul_language() -> Language:
    return with_mul()


def one_graph(body: str) -> str:
    return f"attention a {{ return {body} }} backbone {{ attention a }}"


def swap_mul(node: Expr) -> Expr:
    """`node` with the operands of every `mul` swapped."""
    if not isinstance(node, Call):
        return node
    args = tuple(swap_mul(a) for a in node.args)
    return Call(node.op, args[::-1] if node.op == "mul" else args)


def swapped(genotype: Genotype) -> Genotype:
    """The same genotype (same language) with every `mul` written the other way round."""
    return replace(genotype, graphs=tuple(AttentionGraph(g.name, swap_mul(g.output)) for g in genotype.graphs))


def has_mul(genotype: Genotype) -> bool:
    return any(c.op == "mul" and c.args[0] != c.args[1] for g in genotype.graphs for c in g.calls)


# ---------------------------------------------------------------------------------------------------
# A custom commutative op


def test_the_parser_gives_commutative_operands_one_id(mul_language: Language) -> None:
    a = parse_genotype(one_graph("matmul(softmax(matmul(mul(Q, K), transpose(V))), V)"), language=mul_language)
    b = parse_genotype(one_graph("matmul(softmax(matmul(mul(K, Q), transpose(V))), V)"), language=mul_language)
    assert a.language is b.language is mul_language
    assert a != b  # structure as written
    assert a.id == b.id == genotype_id(a, mul_language) == mul_language.genotype_id(b)
    assert a.canonical() == b.canonical() and a.canonical().language is mul_language
    assert a.canonical().to_text() == b.canonical().to_text()
    # under rules that do not know `mul` (the default table), the two stay apart: the language decides
    assert canonical_graph(a.graphs[0], default_language()) != canonical_graph(b.graphs[0], default_language())
    assert canonical_graph(a.graphs[0], mul_language) == canonical_graph(b.graphs[0], mul_language)
    assert parse_genotype(a.to_text(), language=mul_language) == a


def test_the_sampler_sets_the_language_and_ids_follow_it(mul_language: Language) -> None:
    rng = random.Random(3)
    seen = 0
    for _ in range(60):
        genotype = sample_genotype(rng, 3, language=mul_language, conv_probability=0.2)
        assert genotype.language is mul_language
        if has_mul(genotype):
            seen += 1
            other = swapped(genotype)
            assert other != genotype and other.language is mul_language
            assert other.id == genotype.id
    assert seen >= 10


def test_mutations_set_the_language_and_see_a_swap_as_unchanged(mul_language: Language) -> None:
    mutator = Mutator(mul_language)
    rng = random.Random(5)
    parent = sample_genotype(rng, 4, language=mul_language)
    children = 0
    for _ in range(300):
        result = mutator.propose(parent, rng)
        if isinstance(result, Child):
            children += 1
            assert result.genotype.language is mul_language
            assert swapped(result.genotype).id == result.genotype.id
            parent = result.genotype
    assert children > 100
    # copying layer 0's `mul(Q, K)` onto layer 1's `mul(K, Q)` changes nothing under this language
    text = ("attention a { return matmul(softmax(matmul(mul(Q, K), transpose(V))), V) }\n"
            "attention b { return matmul(softmax(matmul(mul(K, Q), transpose(V))), V) }\n"
            "backbone { attention a attention b }")
    twins = parse_genotype(text, language=mul_language)
    copier = Mutator(mul_language, [Mutation.COPY_LAYER])
    for seed in range(10):
        result = copier.propose(twins, random.Random(seed))
        assert isinstance(result, Rejection) and result.reason == "unchanged"


def test_a_genotype_built_without_a_language_uses_the_default() -> None:
    text = one_graph("matmul(softmax(scale(matmul(Q, transpose(K)))), add(V, Q))")
    parsed = parse_genotype(text)
    bare = Genotype(parsed.graphs, parsed.layers)
    assert parsed.language is default_language() and bare.language is None
    assert bare.id == parsed.id and bare.to_text() == parsed.to_text()
    assert bare.canonical() == parsed.canonical() and "add(Q, V)" in bare.canonical().to_text()


def test_copies_share_the_language(mul_language: Language) -> None:
    genotype = parse_genotype(one_graph("mul(Q, K)"), language=mul_language)
    assert copy.deepcopy(genotype).language is mul_language
    assert copy.copy(genotype).language is mul_language


def test_a_commutative_custom_op_compiles_to_equal_functions(mul_language: Language) -> None:
    register_op_impl("mul", torch.mul)
    try:
        a = parse_genotype(one_graph("matmul(softmax(matmul(mul(Q, K), transpose(V))), V)"), language=mul_language)
        b = parse_genotype(one_graph("matmul(softmax(matmul(mul(K, Q), transpose(V))), V)"), language=mul_language)
        assert a.id == b.id
        assert_same_function(a, b, mul_language)
    finally:
        unregister_op_impl("mul")


# ---------------------------------------------------------------------------------------------------
# Equal ids ⇒ equal functions


def twist(output: Expr, rng: random.Random) -> Expr:
    """An expression the rewrite rules map back to `output`: `add` operands swapped, double `neg` and double
    `transpose` wrapped around nodes (shared nodes stay shared)."""
    memo: dict[Expr, Expr] = {}
    for node in output.walk():
        new = node if not isinstance(node, Call) else Call(node.op, tuple(memo[a] for a in node.args))
        if isinstance(new, Call) and new.op == "add" and rng.random() < 0.5:
            new = Call("add", new.args[::-1])
        roll = rng.random()
        if roll < 0.15:
            new = Call("neg", (Call("neg", (new,)),))
        elif roll < 0.3:
            new = Call("transpose", (Call("transpose", (new,)),))
        memo[node] = new
    return memo[output]


def variant(genotype: Genotype, rng: random.Random) -> Genotype:
    """An equal-meaning genotype: twisted graph bodies, graphs renamed and reordered, a kernel-1 conv given
    another dilation."""
    names = {g.name: f"g{rng.randrange(1000)}_{i}" for i, g in enumerate(genotype.graphs)}
    graphs = [AttentionGraph(names[g.name], twist(g.output, rng)) for g in genotype.graphs]
    rng.shuffle(graphs)
    layers = tuple(AttentionLayer(names[layer.graph]) if isinstance(layer, AttentionLayer)
                   else replace(layer, dilation=rng.choice((1, 2, 4))) if layer.kernel == 1 else layer
                   for layer in genotype.layers)
    return Genotype(tuple(graphs), layers)


def shuffle_bindings(text: str, rng: random.Random) -> str:
    """The same genotype text with each graph's bindings in a random order (a graph is a DAG, not a program)."""
    lines = text.splitlines()
    blocks: list[list[int]] = []
    for i, line in enumerate(lines):
        if re.match(r"\s+t\d+ = ", line):
            if blocks and blocks[-1][-1] == i - 1:
                blocks[-1].append(i)
            else:
                blocks.append([i])
    for block in blocks:
        moved = [lines[i] for i in block]
        rng.shuffle(moved)
        for i, line in zip(block, moved, strict=True):
            lines[i] = line
    return "\n".join(lines) + "\n"


def equal_id_pairs() -> Iterator[tuple[Genotype, Genotype]]:
    """40 seeded pairs that the canonical rules make equal: a sample and a rewritten copy parsed back from
    text with shuffled bindings, and (every other seed) a rewritten copy and its canonical text parsed back."""
    roomy = default_language().with_limits(max_nodes=64)  # the wrapped copies may exceed the default limit
    for seed in range(40):
        rng = random.Random(seed)
        a = sample_genotype(rng, 3, conv_probability=0.3, max_nodes=8)
        if rng.random() < 0.5:
            a = replace(a, layers=(*a.layers[:2], ConvLayer("light", 1, 1)))
        if seed % 2:
            twisted = variant(a, rng)
            yield twisted, parse_genotype(twisted.canonical().to_text())
        else:
            yield a, parse_genotype(shuffle_bindings(variant(a, rng).to_text(), rng), language=roomy)


def assert_same_function(a: Genotype, b: Genotype, language: Language | None = None) -> None:
    """Both genotypes compiled as encoders in float64 with identical weights give equal outputs at every real
    position of a padded batch."""
    config = tiny_model_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    first = build_encoder(a, config, language=language).double().eval()
    second = build_encoder(b, config, language=language).double().eval()
    second.load_state_dict(first.state_dict())
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(2, 7, TINY_SIZES["hidden_size"], generator=generator, dtype=torch.float64)
    keep = torch.ones(2, 7, dtype=torch.bool)
    keep[1, 4:] = False
    with torch.no_grad():
        out_a, out_b = first(hidden, keep)[keep], second(hidden, keep)[keep]
    scale = max(1.0, out_a.abs().max().item())
    torch.testing.assert_close(out_b, out_a, rtol=1e-9, atol=1e-9 * scale,
                               msg=lambda m: f"{a.to_text()}\nvs\n{b.to_text()}\n{m}")


def test_equal_ids_compile_to_equal_functions() -> None:
    pairs = list(equal_id_pairs())
    assert len(pairs) == 40
    for a, b in pairs:
        assert a.id == b.id, f"{a.to_text()}\nvs\n{b.to_text()}"
        assert_same_function(a, b)
    rewritten = [b for a, b in pairs if a != b]
    assert len(rewritten) >= 36  # most pairs differ as written: the test compares different programs
