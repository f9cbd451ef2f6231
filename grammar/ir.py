"""The genotype IR: frozen dataclasses that the parser builds and every later stage reads.

An attention graph is an expression DAG over the inputs `Q`, `K`, `V`: structurally equal sub-expressions
are the same node (so common sub-expressions are shared by construction), and the graph's single output is
an `Expr`. Source positions ride along but never take part in equality or hashing, so
`parse(print(g)) == g` compares meaning-bearing structure only.

A backbone is an ordered tuple of layers, each an `AttentionLayer` (naming a graph of `Genotype.graphs`)
or a `ConvLayer`. Layer index + branch ("attention"/"conv") + role (q/k/v/o, conv kernel, ...) is the key
that weight sharing (BIWS) and the compiler's parameter names use.

A `Genotype` carries the language it was built with (`language`, set by the parser, the sampler, the
mutations and `canonicalize`; not part of equality). Its identity, canonical form and text are the
language's business: `Genotype.id` asks `genotype.language.genotype_id(genotype)`, so under a language whose
op is commutative, `f(Q, K)` and `f(K, Q)` get one id. This module is pure data and imports nothing of the
package but `ops`: a genotype built without a language uses the default one, which `grammar.language`
registers here (`set_default_language`) when it is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from .ops import INPUTS, OpSpec


@dataclass(frozen=True)
class Span:
    """Where something was written: 1-based line and column of its first character."""

    line: int
    column: int


def _span_field() -> Span | None:
    return field(default=None, compare=False, repr=False, hash=False)


class Expr:
    """A node of an attention graph: an `Input` or a `Call`."""

    span: Span | None

    def walk(self) -> Iterator[Expr]:
        """Every distinct node reachable from here, operands before users (topological order)."""
        return topological_order(self, lambda node: node.args if isinstance(node, Call) else ())


def topological_order(root: Expr, operands: Callable[[Expr], tuple[Expr, ...]]) -> Iterator[Expr]:
    """Every distinct node reachable from `root` through `operands`, operands first (iterative DFS)."""
    seen: set[Expr] = set()
    stack: list[tuple[Expr, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if node in seen:
            continue
        children = () if expanded else operands(node)
        if expanded or not children:
            seen.add(node)
            yield node
            continue
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(children) if child not in seen)


@dataclass(frozen=True)
class Input(Expr):
    """One of the per-head projections `Q`, `K`, `V` (shape L×d)."""

    name: str
    span: Span | None = _span_field()

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, eq=False)
class Call(Expr):
    """A primitive op applied to operand nodes."""

    op: str
    args: tuple[Expr, ...]
    span: Span | None = _span_field()

    @cached_property
    def _key(self) -> tuple[str, tuple[Expr, ...]]:
        return (self.op, self.args)

    @cached_property
    def _hash(self) -> int:
        return hash(self._key)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Call) or self._hash != other._hash:
            return False
        return self._key == other._key

    @cached_property
    def text(self) -> str:
        """The node as a nested call, e.g. `matmul(Q, transpose(K))` (shared nodes written out)."""
        return f"{self.op}({', '.join(str(a) for a in self.args)})"

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class AttentionGraph:
    """A named attention graph: a DAG over Q, K, V with one output node (shape L×d when valid)."""

    name: str
    output: Expr
    span: Span | None = _span_field()

    @property
    def calls(self) -> list[Call]:
        """The distinct op nodes, operands first."""
        return [n for n in self.output.walk() if isinstance(n, Call)]

    @property
    def inputs_used(self) -> tuple[str, ...]:
        """Which of Q, K, V the graph reads, in Q, K, V order (a graph without V has no W_V)."""
        used = {n.name for n in self.output.walk() if isinstance(n, Input)}
        return tuple(name for name in INPUTS if name in used)

    @property
    def size(self) -> int:
        """Number of distinct op nodes (the quantity the size limit bounds)."""
        return len(self.calls)


@dataclass(frozen=True)
class AttentionLayer:
    """A backbone layer whose token mixer is the attention graph `graph` (a name in `Genotype.graphs`)."""

    graph: str
    span: Span | None = _span_field()
    branch = "attention"


@dataclass(frozen=True)
class ConvLayer:
    """A backbone layer whose token mixer is a convolution block (`compiler/conv.py`: GLU, then a `light`,
    `depthwise` or `sepconv` convolution over positions with `kernel` taps spaced `dilation` apart)."""

    kind: str
    kernel: int
    dilation: int = 1
    span: Span | None = _span_field()
    branch = "conv"


Layer = AttentionLayer | ConvLayer


class GenotypeLanguage(Protocol):
    """What the IR asks of a language (`grammar.language.Language` is the implementation)."""

    @property
    def ops(self) -> Mapping[str, OpSpec]: ...

    def genotype_id(self, genotype: Genotype) -> str: ...

    def canonicalize(self, genotype: Genotype) -> Genotype: ...

    def print_genotype(self, genotype: Genotype) -> str: ...


_default_language: Callable[[], GenotypeLanguage] | None = None


def set_default_language(provider: Callable[[], GenotypeLanguage]) -> None:
    """Register the language of genotypes built without one (`grammar.language` calls this on import)."""
    global _default_language
    _default_language = provider


def resolve_language(language: GenotypeLanguage | None) -> GenotypeLanguage:
    """`language`, or the registered default language when it is None."""
    if language is not None:
        return language
    if _default_language is None:
        raise RuntimeError("no default language registered; import autobert_zero.grammar first")
    return _default_language()


@dataclass(frozen=True)
class Genotype:
    """A whole backbone: named attention graphs and the ordered layers that use them.

    Build it with `autobert_zero.parse_genotype` (which validates); constructing it directly skips
    validation, so code that builds genotypes (the sampler, mutations) calls `validate` itself.
    """

    graphs: tuple[AttentionGraph, ...]
    layers: tuple[Layer, ...]
    source_name: str = field(default="<genotype>", compare=False, repr=False)
    language: GenotypeLanguage | None = field(default=None, compare=False, repr=False, hash=False)
    """The language the genotype was built with; None means the default language."""

    def graph(self, name: str) -> AttentionGraph:
        for g in self.graphs:
            if g.name == name:
                return g
        raise KeyError(name)

    def layer_graph(self, index: int) -> AttentionGraph | None:
        """The attention graph of layer `index`, or None for a conv layer."""
        layer = self.layers[index]
        return self.graph(layer.graph) if isinstance(layer, AttentionLayer) else None

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def resolved_language(self) -> GenotypeLanguage:
        """`language`, or the default language when the genotype was built without one."""
        return resolve_language(self.language)

    def to_text(self) -> str:
        """The genotype as text in its language; `parse_genotype(g.to_text(), language=g.language) == g`."""
        return self.resolved_language.print_genotype(self)

    def canonical(self) -> Genotype:
        """The canonical form under its language: simplified, commutative operands ordered, graphs renamed
        by first use."""
        return self.resolved_language.canonicalize(self)

    @cached_property
    def id(self) -> str:
        """sha256 of the canonical text under its language: equal meaning ⇒ equal id wherever the rewrite
        rules see it."""
        return self.resolved_language.genotype_id(self)
