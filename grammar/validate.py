"""Validity of a genotype IR: symbolic shapes, output shape, graph size, layer count and conv values.

Runs on the IR after names are resolved (the parser's job). Shapes are symbolic over `L` (positions) and
`d` (head dim); the two are never unified, so a graph is valid at every size. Each problem is a
`Diagnostic` at the offending node's source position.
"""

from __future__ import annotations

from .diagnostics import (
    NO_LAYERS_MESSAGE,
    Diagnostic,
    arity_message,
    unknown_conv_type_message,
    unknown_graph_message,
    unknown_op_message,
)
from .ir import AttentionGraph, Call, ConvLayer, Expr, Genotype, Input, Span
from .language import Language, default_language
from .ops import INPUT_SHAPE, OUTPUT_SHAPE, Shape, ShapeRuleError, fmt_shapes


def _at(span: Span | None) -> tuple[int, int]:
    return (span.line, span.column) if span else (1, 1)


def infer_shapes(graph: AttentionGraph, language: Language | None = None) -> dict[Expr, Shape]:
    """Shape of every node of a valid graph; raises ValueError on the first shape problem."""
    shapes, errors = _infer(graph.output, language or default_language())
    if errors:
        raise ValueError(errors[0].message)
    return shapes


def _infer(output: Expr, language: Language) -> tuple[dict[Expr, Shape], list[Diagnostic]]:
    shapes: dict[Expr, Shape] = {}
    errors: list[Diagnostic] = []
    for node in output.walk():
        if isinstance(node, Input):
            shapes[node] = INPUT_SHAPE
            continue
        assert isinstance(node, Call)
        if any(a not in shapes for a in node.args):
            continue  # an operand already failed
        operand_shapes = tuple(shapes[a] for a in node.args)
        try:
            shapes[node] = language.ops[node.op].shape(operand_shapes)
        except ShapeRuleError as error:
            errors.append(Diagnostic("shape", f"{node.op}: {error}", *_at(node.span)))
    return shapes, errors


def validate_graph(graph: AttentionGraph, language: Language | None = None) -> list[Diagnostic]:
    """Problems of one attention graph (empty list when valid)."""
    language = language or default_language()
    errors: list[Diagnostic] = []
    for node in graph.calls:
        if node.op not in language.ops:
            errors.append(Diagnostic("unknown-op", unknown_op_message(node.op, language.op_names), *_at(node.span)))
        elif len(node.args) != language.ops[node.op].arity:
            errors.append(Diagnostic("arity", arity_message(node.op, language.ops[node.op].arity, len(node.args)),
                                     *_at(node.span)))
    if errors:
        return errors
    shapes, errors = _infer(graph.output, language)
    if not errors and shapes[graph.output] != OUTPUT_SHAPE:
        errors.append(Diagnostic(
            "output-shape",
            f"graph {graph.name!r} returns a {fmt_shapes((shapes[graph.output],))} value; an attention output "
            "must be L×d (one row per position), e.g. end with matmul(softmax(...), V)",
            *_at(graph.output.span or graph.span)))
    if graph.size > language.max_nodes:
        errors.append(Diagnostic("too-large", f"graph {graph.name!r} has {graph.size} op nodes; the limit is "
                                 f"{language.max_nodes}", *_at(graph.span)))
    return errors


def validate(genotype: Genotype, language: Language | None = None) -> list[Diagnostic]:
    """Every problem of a genotype IR, in source order (empty list when valid)."""
    language = language or default_language()
    errors: list[Diagnostic] = []
    names = {g.name for g in genotype.graphs}
    for graph in genotype.graphs:
        errors.extend(validate_graph(graph, language))
    if not genotype.layers:
        errors.append(Diagnostic("no-layers", NO_LAYERS_MESSAGE))
    if len(genotype.layers) > language.max_layers:
        first_extra = genotype.layers[language.max_layers]
        errors.append(Diagnostic("too-many-layers", f"the backbone has {len(genotype.layers):,} layers; the limit is "
                                 f"{language.max_layers}", *_at(first_extra.span)))
    for layer in genotype.layers:
        if isinstance(layer, ConvLayer):
            if layer.kind not in language.conv_types:
                message = unknown_conv_type_message(layer.kind, language.conv_types)
                errors.append(Diagnostic("unknown-conv-type", message, *_at(layer.span)))
            if layer.kernel not in language.conv_kernels:
                errors.append(Diagnostic("conv-kernel", f"kernel={layer.kernel} is not allowed; expected one of "
                                         f"{', '.join(map(str, language.conv_kernels))}", *_at(layer.span)))
            if layer.dilation not in language.conv_dilations:
                errors.append(Diagnostic("conv-dilation", f"dilation={layer.dilation} is not allowed; expected one "
                                         f"of {', '.join(map(str, language.conv_dilations))}", *_at(layer.span)))
        elif layer.graph not in names:
            errors.append(Diagnostic("unknown-graph", unknown_graph_message(layer.graph, names), *_at(layer.span)))
    return sorted(errors, key=lambda e: (e.line, e.column))
