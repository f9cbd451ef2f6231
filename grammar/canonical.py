"""Canonical form of a genotype: the rewrite rules behind `Genotype.id`.

Rules, applied bottom-up until nothing changes (each step removes a pattern or moves a `transpose`
towards the inputs, so rewriting terminates):
- `neg(neg(x)) → x`, `transpose(transpose(x)) → x`;
- `transpose` moves inside entry-wise ops (`transpose(f(x)) → f(transpose(x))`, same for `add`) and
  through products (`transpose(matmul(a, b)) → matmul(transpose(b), transpose(a))`);
- `scale(neg(x)) → neg(scale(x))` (both are linear and entry-wise);
- nested commutative-and-associative `add` chains are flattened, their terms sorted, rebuilt left-nested;
- the operands of other commutative ops are sorted (by their canonical text).
Common sub-expressions are shared by construction (structural equality of the IR). Then graphs are merged
when their canonical bodies are equal, renamed `a1, a2, ...` in order of first use, and unused graphs are
dropped; a conv layer with kernel 1 gets dilation 1 (dilation has no effect on a 1-tap kernel).

The same machinery rewrites one occurrence: an `OccurrencePath` (operand indices from the output) names one
place in the unfolded tree of the shared-node DAG, and `substitute` rebuilds only the nodes along it (other
uses of a shared node keep the old one). Mutations in `autobert_zero.evolve` address nodes this way.

The rules read the language's op table (which ops are commutative, which entry-wise), so identity is a
function of the language: `genotype_id(g, language)`, which `Language.genotype_id` and `Genotype.id` call.
This module does not import `language` (which imports it): a missing language is resolved through
`ir.resolve_language`, the default that `grammar.language` registers.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from .ir import (
    AttentionGraph,
    AttentionLayer,
    Call,
    ConvLayer,
    Expr,
    Genotype,
    GenotypeLanguage,
    Input,
    Layer,
    resolve_language,
)


class _Rewriter:
    def __init__(self, language: GenotypeLanguage) -> None:
        self.ops = language.ops
        self.memo: dict[Expr, Expr] = {}

    def canon(self, node: Expr) -> Expr:
        if isinstance(node, Input):
            return Input(node.name)
        if node in self.memo:
            return self.memo[node]
        assert isinstance(node, Call)
        result = self.rewrite(node.op, tuple(self.canon(a) for a in node.args))
        self.memo[node] = result
        return result

    def make(self, op: str, *args: Expr) -> Expr:
        """Build op(args) from canonical operands, applying the root rules."""
        return self.rewrite(op, args)

    def rewrite(self, op: str, args: tuple[Expr, ...]) -> Expr:
        spec = self.ops.get(op)
        (x, *_) = args
        if op in ("neg", "transpose") and isinstance(x, Call) and x.op == op:
            return x.args[0]
        if op == "transpose" and isinstance(x, Call) and spec is not None:
            inner = self.ops.get(x.op)
            if inner is not None and inner.elementwise:
                return self.make(x.op, *(self.make("transpose", a) for a in x.args))
            if x.op == "matmul":
                a, b = x.args
                return self.make("matmul", self.make("transpose", b), self.make("transpose", a))
        if op == "scale" and isinstance(x, Call) and x.op == "neg":
            return self.make("neg", self.make("scale", x.args[0]))
        if op == "add":
            terms = sorted((t for a in args for t in _add_terms(a)), key=_sort_key)
            result = terms[0]
            for term in terms[1:]:
                result = Call("add", (result, term))
            return result
        if spec is not None and spec.commutative:
            args = tuple(sorted(args, key=_sort_key))
        return Call(op, args)


OccurrencePath = tuple[int, ...]
"""Operand indices from a graph's output down to one occurrence of a node; () is the output itself."""


def node_at(output: Expr, path: OccurrencePath) -> Expr:
    """The node at `path` below `output`; raises IndexError when the path leaves the graph."""
    node = output
    for index in path:
        if not isinstance(node, Call):
            raise IndexError(f"path {path} goes below input {node}")
        node = node.args[index]
    return node


def substitute(output: Expr, path: OccurrencePath, new: Expr) -> Expr:
    """`output` with the occurrence at `path` replaced by `new` (ancestors along the path rebuilt)."""
    chain = [output]
    for index in path:
        parent = chain[-1]
        if not isinstance(parent, Call):
            raise IndexError(f"path {path} goes below input {parent}")
        chain.append(parent.args[index])
    result = new
    for parent, index in zip(reversed(chain[:-1]), reversed(path), strict=True):
        assert isinstance(parent, Call)
        result = Call(parent.op, (*parent.args[:index], result, *parent.args[index + 1:]))
    return result


def _add_terms(node: Expr) -> list[Expr]:
    if isinstance(node, Call) and node.op == "add":
        return [t for a in node.args for t in _add_terms(a)]
    return [node]


def _sort_key(node: Expr) -> str:
    return str(node)


def canonical_graph(graph: AttentionGraph, language: GenotypeLanguage | None = None) -> AttentionGraph:
    """The graph's canonical body (name kept) under `language` (default: the default language)."""
    return AttentionGraph(graph.name, _Rewriter(resolve_language(language)).canon(graph.output))


def canonicalize(genotype: Genotype, language: GenotypeLanguage | None = None) -> Genotype:
    """The canonical form of `genotype` under `language` (default: the genotype's own language); the result
    carries that language."""
    language = language or genotype.resolved_language
    bodies: dict[str, Expr] = {g.name: canonical_graph(g, language).output for g in genotype.graphs}
    new_names: dict[Expr, str] = {}
    graphs: list[AttentionGraph] = []
    layers: list[Layer] = []
    for layer in genotype.layers:
        if isinstance(layer, AttentionLayer):
            body = bodies[layer.graph]
            if body not in new_names:
                new_names[body] = f"a{len(new_names) + 1}"
                graphs.append(AttentionGraph(new_names[body], body))
            layers.append(AttentionLayer(new_names[body]))
        else:
            assert isinstance(layer, ConvLayer)
            layers.append(replace(layer, dilation=1 if layer.kernel == 1 else layer.dilation, span=None))
    return Genotype(tuple(graphs), tuple(layers), genotype.source_name, language)


def genotype_id(genotype: Genotype, language: GenotypeLanguage | None = None) -> str:
    """sha256 of the canonical text under `language` (default: the genotype's own language)."""
    language = language or genotype.resolved_language
    return hashlib.sha256(language.print_genotype(canonicalize(genotype, language)).encode("utf-8")).hexdigest()
