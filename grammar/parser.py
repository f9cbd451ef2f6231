"""Text → IR: parse a genotype with Lark, turn the tree into frozen dataclasses, resolve names.

Three passes, each collecting reason-coded diagnostics with line:column:
1. Lark (LALR) parsing; a syntax error is labelled (unknown op, unknown conv type, ...) with context.
2. `_TreeToRaw` turns the parse tree into plain records (no Lark object leaves this module).
3. Resolution binds names: duplicates, undefined and unused names, cycles, arity, unknown graphs.
Then `validate` (shapes, sizes, conv values) runs on the IR. Nothing in a genotype is ever executed.
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from lark import (
    Token,
    Transformer,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    v_args,
)
from lark.tree import Meta

from autobert_zero.errors import GenotypeError

from .diagnostics import (
    NO_LAYERS_MESSAGE,
    Diagnostic,
    arity_message,
    line_column,
    unknown_conv_type_message,
    unknown_graph_message,
    unknown_op_message,
)
from .ir import AttentionGraph, AttentionLayer, Call, ConvLayer, Expr, Genotype, Input, Layer, Span
from .language import Language, current_language
from .validate import validate

# ---------------------------------------------------------------------------------------------------
# Raw records: the parse tree with positions, before names are resolved.


class RawKind(enum.Enum):
    """What a raw expression is before names are resolved."""

    CALL = "call"
    """An op applied to arguments (`name` is the op)."""
    INPUT = "input"
    """Q, K or V."""
    REF = "ref"
    """A binding's name."""


@dataclass
class RawExpr:
    kind: RawKind
    name: str  # op name, input name or referenced binding
    span: Span
    args: list[RawExpr] = field(default_factory=list)


@dataclass
class RawGraph:
    name: str
    span: Span
    bindings: list[tuple[str, RawExpr, Span]] = field(default_factory=list)
    outputs: list[tuple[RawExpr, Span]] = field(default_factory=list)


@dataclass
class RawBinding:
    """`name = expr` inside an attention graph."""

    name: str
    expr: RawExpr
    span: Span


@dataclass
class RawReturn:
    """`return expr` inside an attention graph."""

    expr: RawExpr
    span: Span


@dataclass
class RawConv:
    kind: str
    options: list[tuple[str, str, Span]]
    span: Span


@dataclass
class RawBackbone:
    layers: list[tuple[str, Span] | RawConv]
    span: Span


def _span(meta_or_token: Meta | Token) -> Span:
    return Span(getattr(meta_or_token, "line", 1) or 1, getattr(meta_or_token, "column", 1) or 1)


class _TreeToRaw(Transformer):
    """Parse tree → raw records (one method per rule or alias of `genotype.lark`)."""

    def start(self, items: list[object]) -> list[object]:
        return [item for item in items if item is not None]

    def attention_def(self, children: list[object]) -> RawGraph:
        name = children[0]
        assert isinstance(name, Token)
        graph = RawGraph(str(name), _span(name))
        for child in children[1:]:
            if isinstance(child, RawBinding):
                graph.bindings.append((child.name, child.expr, child.span))
            elif isinstance(child, RawReturn):
                graph.outputs.append((child.expr, child.span))
        return graph

    def binding(self, children: list[object]) -> RawBinding:
        name, expr = children
        assert isinstance(name, Token) and isinstance(expr, RawExpr)
        return RawBinding(str(name), expr, _span(name))

    def output(self, children: list[object]) -> RawReturn:
        (expr,) = children
        assert isinstance(expr, RawExpr)
        return RawReturn(expr, expr.span)

    def empty(self, children: list[object]) -> None:
        return None

    def call(self, children: list[object]) -> RawExpr:
        op_token = children[0]
        assert isinstance(op_token, Token)
        args = [c for c in children[1:] if c is not None]
        assert all(isinstance(a, RawExpr) for a in args)
        return RawExpr(RawKind.CALL, str(op_token), _span(op_token), args)  # type: ignore[arg-type]

    def op(self, children: list[Token]) -> Token:
        return children[0]

    def input(self, children: list[Token]) -> RawExpr:
        return RawExpr(RawKind.INPUT, str(children[0]), _span(children[0]))

    def ref(self, children: list[Token]) -> RawExpr:
        return RawExpr(RawKind.REF, str(children[0]), _span(children[0]))

    @v_args(meta=True)
    def backbone(self, meta: Meta, children: list[object]) -> RawBackbone:
        return RawBackbone([c for c in children if c is not None], _span(meta))  # type: ignore[misc]

    def attention_layer(self, children: list[Token]) -> tuple[str, Span]:
        return (str(children[0]), _span(children[0]))

    def conv_type(self, children: list[Token]) -> Token:
        return children[0]

    def conv_key(self, children: list[Token]) -> Token:
        return children[0]

    @v_args(meta=True)
    def conv_layer(self, meta: Meta, children: list[object]) -> RawConv:
        kind_token, *options = children
        kind = str(kind_token) if kind_token is not None else "light"
        return RawConv(kind, [o for o in options if isinstance(o, tuple)], _span(meta))

    def conv_option(self, children: list[Token]) -> tuple[str, str, Span]:
        key, value = children
        return (str(key), str(value), _span(key))  # digits as written: resolution bounds them before int()


# ---------------------------------------------------------------------------------------------------
# Syntax errors


_EXAMPLES: dict[str, list[str]] = {
    "a binding needs `name = expression`": ["attention a { x neg(Q) }"],
    "op operands are separated by commas": ["attention a { return add(Q K) }"],
    "a layer is `attention NAME` or `conv [TYPE] kernel=N [dilation=N]`": ["backbone { foo }"],
}


def _syntax_diagnostic(error: UnexpectedInput, text: str, language: Language) -> Diagnostic:
    line, column = max(error.line, 1), max(error.column, 1)
    if isinstance(error, UnexpectedCharacters):
        pos = error.pos_in_stream if error.pos_in_stream is not None else -1
        char = text[pos] if 0 <= pos < len(text) else "?"
        return Diagnostic("syntax", f"unexpected character {_describe_char(char)}", line, column)
    if isinstance(error, UnexpectedEOF):
        expected = ", ".join(sorted(_readable(t) for t in error.expected))
        return Diagnostic("syntax", f"unexpected end of file; expected one of: {expected}",
                          *_end_position(text))
    assert isinstance(error, UnexpectedToken)
    token = error.token
    previous = _previous_word(text, token.start_pos) if token.start_pos is not None else None
    if token.type == "LPAR" and previous is not None:
        word, wline, wcol = previous
        return Diagnostic("unknown-op", unknown_op_message(word, language.op_names), wline, wcol)
    if token.type == "NAME" and previous is not None and previous[0] == "conv":
        return Diagnostic("unknown-conv-type", unknown_conv_type_message(str(token), language.conv_types),
                          line, column)
    if token.type == "$END":
        expected = ", ".join(sorted(_readable(t) for t in error.expected))
        return Diagnostic("syntax", f"unexpected end of file; expected one of: {expected}", *_end_position(text))
    label = error.match_examples(language.lark.parse, _EXAMPLES, use_accepts=True)
    expected = ", ".join(sorted(_readable(t) for t in error.expected))
    hint = f" ({label})" if label else ""
    return Diagnostic("syntax", f"unexpected {str(token)!r}{hint}; expected one of: {expected}", line, column)


def _describe_char(char: str) -> str:
    """A character as the user should see it: non-ASCII ones with code point and Unicode name, and the
    ASCII letter they resemble (a Cyrillic `а` reads as 'а' (U+0430 CYRILLIC SMALL LETTER A, looks like 'a'))."""
    if char.isascii():
        return repr(char)
    name = unicodedata.name(char, "unnamed character")
    folded = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
    if not folded:
        base = name.rsplit(" ", 1)[-1]
        folded = base.lower() if "SMALL" in name else base
        folded = folded if len(folded) == 1 and folded.isascii() and folded.isalpha() else ""
    hint = f", looks like {folded!r}; genotypes are written in ASCII" if folded else "; genotypes are written in ASCII"
    return f"{char!r} (U+{ord(char):04X} {name}{hint})"


_TOKEN_NAMES = {"LPAR": "'('", "RPAR": "')'", "LBRACE": "'{'", "RBRACE": "'}'", "COMMA": "','", "EQUAL": "'='",
                "SEMICOLON": "';'", "NAME": "a name", "INT": "an integer", "$END": "end of file"}


def _readable(terminal: str) -> str:
    return _TOKEN_NAMES.get(terminal, repr(terminal.lower()))


def _previous_word(text: str, pos: int) -> tuple[str, int, int] | None:
    end = pos
    while end > 0 and text[end - 1] in " \t":
        end -= 1
    start = end
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
        start -= 1
    if start == end:
        return None
    return (text[start:end], *line_column(text, start))


def _end_position(text: str) -> tuple[int, int]:
    return line_column(text, len(text))


# ---------------------------------------------------------------------------------------------------
# Resolution: raw records → IR


@dataclass
class _Evaluate:
    """Work item: build the IR node of `expr` (its operands first when `operands_done` is False)."""

    expr: RawExpr
    operands_done: bool = False


@dataclass
class _FinishBinding:
    """Work item: the value on top of the stack is binding `name`'s; record it and leave the binding."""

    name: str


@dataclass
class _Value:
    """A built node (None after an error), its nesting depth and its size written out as a tree."""

    node: Expr | None
    depth: int = 0
    tree_size: int = 1


MAX_TREE_SIZE = 100_000
"""Most nodes an expression may have once shared bindings are written out (doubling chains grow 2^n)."""


class _Resolution:
    """Names → IR for one graph, with an explicit work stack: no recursion, so a long chain of bindings
    is a `too-large` diagnostic (nesting deeper than MAX_NESTING), never a RecursionError."""

    def __init__(self, resolver: _Resolver, graph: str, bindings: dict[str, RawExpr]) -> None:
        self.resolver, self.graph, self.bindings = resolver, graph, bindings
        self.resolved: dict[str, _Value] = {}
        self.visiting: list[str] = []
        self.reported_size = False

    def resolve(self, root: RawExpr) -> Expr | None:
        work: list[_Evaluate | _FinishBinding] = [_Evaluate(root)]
        values: list[_Value] = []
        while work:
            item = work.pop()
            if isinstance(item, _FinishBinding):
                self.resolved[item.name] = values[-1]
                self.visiting.pop()
                continue
            expr = item.expr
            if expr.kind is RawKind.INPUT:
                values.append(_Value(Input(expr.name, expr.span)))
            elif expr.kind is RawKind.REF:
                value = self._reference(expr, work)
                if value is not None:
                    values.append(value)
            elif not item.operands_done:
                work.append(_Evaluate(expr, operands_done=True))
                work.extend(_Evaluate(arg) for arg in reversed(expr.args))
            else:
                operands = values[len(values) - len(expr.args):] if expr.args else []
                del values[len(values) - len(expr.args):]
                values.append(self._call(expr, operands))
        return values[-1].node

    def _reference(self, expr: RawExpr, work: list[_Evaluate | _FinishBinding]) -> _Value | None:
        """The value of a name already resolved or in error; None when its binding was queued instead."""
        name = expr.name
        if name in self.resolved:
            return self.resolved[name]
        if name in self.visiting:
            cycle = " → ".join([*self.visiting[self.visiting.index(name):], name])
            self.resolver.error("cycle", f"bindings form a cycle: {cycle}", expr.span)
            return _Value(None)
        if name not in self.bindings:
            self.resolver.error("undefined", f"{name!r} is not bound in graph {self.graph!r}; bind it with "
                                f"`{name} = ...` or use Q, K or V", expr.span)
            return _Value(None)
        self.visiting.append(name)
        work.append(_FinishBinding(name))
        work.append(_Evaluate(self.bindings[name]))
        return None

    def _call(self, expr: RawExpr, operands: list[_Value]) -> _Value:
        spec = self.resolver.language.ops[expr.name]
        if len(operands) != spec.arity:
            self.resolver.error("arity", arity_message(expr.name, spec.arity, len(operands)), expr.span)
            return _Value(None)
        if any(v.node is None for v in operands):
            return _Value(None)
        depth = 1 + max((v.depth for v in operands), default=0)
        tree_size = 1 + sum(v.tree_size for v in operands)
        if depth > MAX_NESTING or tree_size > MAX_TREE_SIZE:
            if not self.reported_size:
                what = (f"nests deeper than {MAX_NESTING} ops" if depth > MAX_NESTING
                        else f"has more than {MAX_TREE_SIZE:,} ops when its shared bindings are written out")
                self.resolver.error("too-large", f"graph {self.graph!r}: the expression at {expr.name}(...) {what} "
                                    f"(through a chain of bindings); keep graphs small", expr.span)
                self.reported_size = True
            return _Value(None)
        node = Call(expr.name, tuple(v.node for v in operands if v.node is not None), expr.span)
        return _Value(node, depth, tree_size)


class _Resolver:
    def __init__(self, language: Language) -> None:
        self.language = language
        self.errors: list[Diagnostic] = []

    def error(self, code: str, message: str, span: Span) -> None:
        self.errors.append(Diagnostic(code, message, span.line, span.column))

    def graph(self, raw: RawGraph) -> AttentionGraph | None:
        bindings: dict[str, tuple[RawExpr, Span]] = {}
        for name, expr, span in raw.bindings:
            if name in bindings:
                first = bindings[name][1]
                self.error("duplicate", f"node {name!r} is bound twice (first at {first.line}:{first.column})",
                           span)
            else:
                bindings[name] = (expr, span)
        if len(raw.outputs) != 1:
            where = raw.outputs[1][1] if raw.outputs else raw.span
            self.error("no-output", f"attention graph {raw.name!r} needs exactly one `return`, "
                       f"found {len(raw.outputs)}", where)
            return None
        resolution = _Resolution(self, raw.name, {name: expr for name, (expr, _) in bindings.items()})
        output = resolution.resolve(raw.outputs[0][0])
        resolved = resolution.resolved
        for name, (_, span) in bindings.items():
            if name not in resolved:
                self.error("unused", f"node {name!r} is bound but never used by the output of graph "
                           f"{raw.name!r}", span)
        return None if output is None else AttentionGraph(raw.name, output, raw.span)

    def layers(self, raw: RawBackbone, graph_names: set[str]) -> list[Layer]:
        layers: list[Layer] = []
        for item in raw.layers:
            if isinstance(item, tuple):
                name, span = item
                if name not in graph_names:
                    self.error("unknown-graph", unknown_graph_message(name, graph_names), span)
                layers.append(AttentionLayer(name, span))
                continue
            options: dict[str, int] = {}
            for key, digits, span in item.options:
                if key in options:
                    self.error("duplicate", f"conv option {key}= given twice", span)
                if len(digits.lstrip("0")) > MAX_OPTION_DIGITS:
                    self.error("too-large", f"conv option {key}={digits[:12]}… has {len(digits):,} digits; expected "
                               f"a small integer (e.g. {key}=3)", span)
                    digits = "0"
                options[key] = int(digits)
            if "kernel" not in options:
                self.error("missing-kernel", "a conv layer needs `kernel=N`, e.g. `conv light kernel=9`",
                           item.span)
            layers.append(ConvLayer(item.kind, options.get("kernel", 0), options.get("dilation", 1), item.span))
        if not layers:
            self.error("no-layers", NO_LAYERS_MESSAGE, raw.span)
        return layers


def parse_genotype(
    text: str, source_name: str = "<genotype>", *, language: Language | None = None
) -> Genotype:
    """Parse and validate a genotype text; raise `GenotypeError` listing every problem found."""
    genotype, errors = parse_with_diagnostics(text, source_name, language=language)
    if errors or genotype is None:
        raise GenotypeError(errors, source_name)
    return genotype


def parse_with_diagnostics(
    text: str, source_name: str = "<genotype>", *, language: Language | None = None
) -> tuple[Genotype | None, list[Diagnostic]]:
    """Parse and validate; return the genotype (None if it could not be built) and all diagnostics."""
    language = language or current_language()
    if "\x00" in text:
        return None, [Diagnostic("encoding", "NUL byte in the text: this looks like a binary file, not a genotype",
                                 *line_column(text, text.index("\x00")))]
    too_deep = _nesting_error(text)
    if too_deep:
        return None, [too_deep]
    try:
        tree = language.lark.parse(text)
    except UnexpectedInput as error:
        return None, [_syntax_diagnostic(error, text, language)]
    items = _TreeToRaw().transform(tree)
    resolver = _Resolver(language)
    raw_graphs = [i for i in items if isinstance(i, RawGraph)]
    backbones = [i for i in items if isinstance(i, RawBackbone)]
    graphs: list[AttentionGraph] = []
    seen: dict[str, Span] = {}
    for raw in raw_graphs:
        if raw.name in seen:
            first = seen[raw.name]
            resolver.error("duplicate", f"attention graph {raw.name!r} is defined twice (first at "
                           f"{first.line}:{first.column})", raw.span)
            continue
        seen[raw.name] = raw.span
        graph = resolver.graph(raw)
        if graph is not None:
            graphs.append(graph)
    if len(backbones) != 1:
        where = backbones[1].span if backbones else Span(*_end_position(text))
        resolver.error("no-backbone", f"a genotype needs exactly one `backbone {{ ... }}`, found {len(backbones)}",
                       where)
        return None, resolver.errors
    layers = resolver.layers(backbones[0], set(seen))
    if resolver.errors:
        return None, resolver.errors
    genotype = Genotype(tuple(graphs), tuple(layers), source_name, language)
    return genotype, validate(genotype, language)


MAX_NESTING = 200
"""Deepest nesting of ops in one expression (parentheses, or a chain of bindings): the IR's recursive
walks (hash, printing) stay far below Python's recursion limit."""
MAX_OPTION_DIGITS = 9
"""Longest conv option value accepted as a number (a kernel of thousands of digits is a diagnostic)."""


def _nesting_error(text: str) -> Diagnostic | None:
    """Reject absurd nesting before the (recursive) tree passes see it."""
    depth = 0
    for pos, char in enumerate(text):
        depth += 1 if char == "(" else -1 if char == ")" else 0
        if depth > MAX_NESTING:
            return Diagnostic("too-large", f"expressions nest deeper than {MAX_NESTING} levels",
                              *line_column(text, pos))
    return None


def read_genotype_text(path: str | Path) -> tuple[str | None, list[Diagnostic]]:
    """Read a genotype file as UTF-8; a decoding problem becomes an `encoding` diagnostic."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        return None, [Diagnostic("io", f"cannot read {str(path)!r}: {error.strerror or error}", 1, 1)]
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as error:
        where = line_column(data[:error.start].decode("latin-1"), error.start)  # latin-1: one char per byte
        return None, [Diagnostic("encoding", f"byte 0x{data[error.start]:02x} is not UTF-8 text", *where)]


def load_genotype(path: str | Path, *, language: Language | None = None) -> Genotype:
    """Read, parse and validate a genotype file; raise `GenotypeError` (with file:line:col) if invalid."""
    text, errors = read_genotype_text(path)
    if text is None:
        raise GenotypeError(errors, str(path))
    return parse_genotype(text, str(path), language=language)
