"""Seeded sampling of random valid genotypes from a language (property tests, random search, seeding).

A graph is grown node by node: each step draws an op and operands (earlier nodes or Q/K/V) whose shapes
fit the op's shape rule; the output is a drawn L×d node. Unused nodes vanish (the IR is the output's
DAG), so every sample is valid by construction; `validate` is still run as a guard. Ops are drawn uniformly,
or in proportion to `weights` (the search's operation priority passes its softmax weights here).
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from autobert_zero.errors import LanguageError

from .ir import AttentionGraph, AttentionLayer, Call, ConvLayer, Expr, Genotype, Input, Layer
from .language import Language, default_language
from .ops import INPUT_SHAPE, INPUTS, OUTPUT_SHAPE, Shape, ShapeRuleError
from .validate import validate, validate_graph

MAX_TRIES = 200


def sample_graph(
    rng: random.Random,
    name: str = "g",
    *,
    language: Language | None = None,
    max_nodes: int | None = None,
    ops: tuple[str, ...] | None = None,
    weights: Mapping[str, float] | None = None,
) -> AttentionGraph:
    """A random valid attention graph with at most `max_nodes` op nodes (default: the language's limit).

    `weights` (op name → non-negative weight, missing ops weigh 0) makes the op draw non-uniform.
    """
    language = language or default_language()
    limit = min(max_nodes or language.max_nodes, language.max_nodes)
    names = ops or language.op_names
    op_weights = [float(weights.get(n, 0.0)) for n in names] if weights is not None else None
    if op_weights is not None and not sum(op_weights) > 0:
        raise LanguageError(f"op weights {dict(weights or {})} give no op of {', '.join(names)} a positive weight")
    for _ in range(MAX_TRIES):
        pool: list[tuple[Expr, Shape]] = [(Input(n), INPUT_SHAPE) for n in INPUTS]
        steps = rng.randint(1, limit)
        for _ in range(steps):
            op = rng.choices(names, op_weights)[0] if op_weights else rng.choice(names)
            spec = language.ops[op]
            for _ in range(20):
                args = tuple(rng.choice(pool) for _ in range(spec.arity))
                try:
                    shape = spec.shape(tuple(s for _, s in args))
                except ShapeRuleError:
                    continue
                node = Call(op, tuple(a for a, _ in args))
                if all(node != p for p, _ in pool):
                    pool.append((node, shape))
                break
        candidates = [n for n, s in pool[len(INPUTS):] if s == OUTPUT_SHAPE]
        if not candidates:
            continue
        graph = AttentionGraph(name, rng.choice(candidates[-3:]))
        if graph.size <= limit and not validate_graph(graph, language):
            return graph
    raise LanguageError(f"no valid attention graph (output L×d, at most {limit} op nodes) found in {MAX_TRIES} "
                        f"tries with ops {', '.join(names)}; allow more ops or a larger size limit")


def sample_conv(rng: random.Random, language: Language | None = None) -> ConvLayer:
    language = language or default_language()
    return ConvLayer(rng.choice(language.conv_types), rng.choice(language.conv_kernels),
                     rng.choice(language.conv_dilations))


def sample_genotype(
    rng: random.Random,
    num_layers: int = 4,
    *,
    language: Language | None = None,
    conv_probability: float = 0.5,
    max_nodes: int | None = None,
    ops: tuple[str, ...] | None = None,
    weights: Mapping[str, float] | None = None,
) -> Genotype:
    """A random valid backbone: each layer conv with `conv_probability`, else its own random graph."""
    language = language or default_language()
    graphs: list[AttentionGraph] = []
    layers: list[Layer] = []
    for _ in range(num_layers):
        if rng.random() < conv_probability:
            layers.append(sample_conv(rng, language))
        else:
            graph = sample_graph(rng, f"a{len(graphs) + 1}", language=language, max_nodes=max_nodes, ops=ops,
                                 weights=weights)
            graphs.append(graph)
            layers.append(AttentionLayer(graph.name))
    genotype = Genotype(tuple(graphs), tuple(layers), language=language)
    assert not validate(genotype, language)
    return genotype
