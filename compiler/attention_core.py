"""Attention core: an `AttentionGraph` lowered to a program and compiled to a `torch.fx.GraphModule`.

The core is the per-head part of an attention layer — everything between the split Q/K/V heads and the
head merge. Its generated `forward(q?, k?, v?, keep, dropout_p)` takes:

- `q`, `k`, `v`: the projections the graph uses (a graph without V has no `v`), each (B, H, L, dh);
- `keep`: (B, L) bool, True at real tokens, False at padding;
- `dropout_p`: the attention-probability dropout rate (the caller passes 0.0 in eval mode);

and returns (B, H, L, dh). Compilation has two halves. Here, the graph is analysed and lowered to a
*program* (plain JSON data, `portable_core`): one op step per distinct `Expr` (so shared sub-expressions are
computed once), padding masks where `padding.required_masks` says so, attention dropout, and scaled
dot-product attention fused when `fused` is set (`lowering`). Then `portable_core.build_core` turns the
program into the fx graph, each op's implementation (`op_impls.op_impl`, by op name) as call target. An
exported folder carries the programs and a verbatim copy of `portable_core`, so it runs the same fx graphs.
Constants are plain numbers in the graph (no buffers), and the module holds no parameters, so one compiled
core is shared by every layer (and model) with an equal graph: cores are cached by (graph structure, head
dim, fused, op specs, op implementations).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from torch import fx

from autobert_zero.errors import CompileError
from autobert_zero.grammar import (
    OUTPUT_SHAPE,
    POSITION_AXIS,
    AttentionGraph,
    Call,
    Expr,
    Input,
    Language,
    Shape,
    current_language,
    infer_shapes,
)
from autobert_zero.grammar.ir import topological_order

from .lowering import FusedAttention, find_fused_attention
from .op_impls import OpImpl, op_impl
from .padding import NO_FACTS, Facts, dropout_facts, masked_facts, propagate, required_masks
from .portable_core import build_core, encode_fill

CACHE_SIZE = 1024

Program = dict[str, Any]
"""An attention graph lowered to tensor operations (the format is documented in `portable_core`)."""

_CACHE: OrderedDict[Hashable, tuple[fx.GraphModule, Program]] = OrderedDict()


def compile_core(
    graph: AttentionGraph,
    head_dim: int,
    *,
    fused: bool = True,
    language: Language | None = None,
) -> fx.GraphModule:
    """The compiled core of `graph` at head dimension `head_dim` (cached; shared between callers).

    Raises `CompileError` for a graph the op table cannot compile (unknown op, shape mismatch, output
    not L×d; a parsed genotype has been validated, so these only guard hand-built IR) and for an op of a
    custom language without an implementation (the language's own, `Language.impls`, else `register_op_impl`).
    """
    return compile_graph(graph, head_dim, fused=fused, language=language)[0]


def compile_graph(
    graph: AttentionGraph,
    head_dim: int,
    *,
    fused: bool = True,
    language: Language | None = None,
) -> tuple[fx.GraphModule, Program]:
    """`compile_core`'s core together with the program it was built from (cached together; do not mutate)."""
    language = language or current_language()
    names = sorted({c.op for c in graph.calls})
    try:
        specs = tuple(language.ops[op] for op in names)
    except KeyError as error:
        raise CompileError(f"attention graph {graph.name!r} uses op {error.args[0]!r}, which the op table "
                           f"does not define; known ops: {', '.join(language.ops)}") from None
    impls = {op: language.impls[op] if op in language.impls else op_impl(op) for op in names}
    key = (graph.output, head_dim, fused, specs, tuple(impls.values()))
    cached = _CACHE.get(key)
    if cached is not None:
        _CACHE.move_to_end(key)
        return cached
    program = lower_graph(graph, head_dim, fused, language, impls)
    compiled = (build_core(program, head_dim, impls), program)
    _CACHE[key] = compiled
    if len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return compiled


def clear_core_cache() -> None:
    """Forget every compiled core (for timing cold compiles)."""
    _CACHE.clear()


def lower_graph(graph: AttentionGraph, head_dim: int, fused: bool, language: Language,
                impls: dict[str, OpImpl]) -> Program:
    """The program of `graph` (`portable_core`'s format): its ops, padding masks, dropout and fused attention.

    `impls` (op name → implementation) evaluates the padding facts of elementwise ops.
    """
    try:
        shapes = infer_shapes(graph, language)
    except ValueError as error:
        raise CompileError(f"attention graph {graph.name!r} cannot be compiled: {error}") from None
    if shapes[graph.output] != OUTPUT_SHAPE:
        raise CompileError(f"attention graph {graph.name!r} returns a {'×'.join(shapes[graph.output])} value; "
                           "an attention output must be L×d")
    fusions = find_fused_attention(graph.output, shapes) if fused else {}
    builder = _ProgramBuilder(graph, shapes, head_dim, language, impls)
    for node in _emission_order(graph.output, fusions):
        builder.emit(node, fusions.get(node))
    return builder.finish(graph)


def _emission_order(output: Expr, fusions: dict[Expr, FusedAttention]) -> list[Expr]:
    """Nodes the compiled graph needs, operands first; a fused node needs only its (A, B, C)."""

    def operands(node: Expr) -> tuple[Expr, ...]:
        if node in fusions:
            return fusions[node].operands
        return node.args if isinstance(node, Call) else ()

    return list(topological_order(output, operands))


class _ProgramBuilder:
    """Holds the program under construction: env (IR node → value number), shapes and padding facts."""

    def __init__(self, graph: AttentionGraph, shapes: dict[Expr, Shape], head_dim: int, language: Language,
                 impls: dict[str, OpImpl]) -> None:
        self.head_dim = head_dim
        self.ops = language.ops
        self.impls = impls
        self.shapes = dict(shapes)
        self.inputs = [name.lower() for name in graph.inputs_used]
        self.steps: list[dict[str, Any]] = []
        self.env: dict[Expr, int] = {}
        self.facts: dict[Expr, Facts] = {}
        for number, name in enumerate(graph.inputs_used):
            self.env[Input(name)] = number
            self.facts[Input(name)] = NO_FACTS
        self._masked: dict[tuple[Expr, int, float], int] = {}

    def _add(self, step: dict[str, Any]) -> int:
        self.steps.append(step)
        return len(self.inputs) + len(self.steps) - 1

    def emit(self, node: Expr, fused: FusedAttention | None) -> None:
        if isinstance(node, Input):
            return  # inputs are numbered already
        assert isinstance(node, Call)
        if fused is not None:
            self.env[node] = self._add({"step": "sdpa", "args": [self.env[e] for e in fused.operands],
                                        "masked": fused.masked, "scale_power": fused.scale_power})
            self.facts[node] = NO_FACTS
            return
        spec = self.ops[node.op]
        arg_shapes = tuple(self.shapes[a] for a in node.args)
        arg_facts = [self.facts[a] for a in node.args]
        args = [self.env[a] for a in node.args]
        for operand, axis in required_masks(spec, arg_shapes, tuple(arg_facts)):
            args[operand] = self._mask(node.args[operand], axis, spec.mask_fill)
            arg_facts[operand] = masked_facts(arg_facts[operand], axis, spec.mask_fill)
        out = self._add({"step": "op", "op": node.op, "args": args, "head_dim": spec.needs_head_dim})
        impl = self.impls[node.op]
        shape = self.shapes.setdefault(node, spec.shape(arg_shapes))
        facts = propagate(spec, impl, tuple(arg_facts), self.head_dim)
        if node.op == "softmax" and shape[1] == POSITION_AXIS:  # attention probabilities: dropout while training
            out = self._add({"step": "dropout", "arg": out})
            facts = dropout_facts(facts)
        self.env[node] = out
        self.facts[node] = facts

    def _mask(self, node: Expr, axis: int, fill: float) -> int:
        """`node` with padded positions along `axis` (0 rows, 1 columns) overwritten by `fill`."""
        key = (node, axis, fill)
        if key not in self._masked:
            self._masked[key] = self._add({"step": "mask", "arg": self.env[node],
                                           "axis": "rows" if axis == 0 else "cols", "fill": encode_fill(fill)})
        return self._masked[key]

    def finish(self, graph: AttentionGraph) -> Program:
        return {"name": graph.name, "source": str(graph.output), "inputs": self.inputs, "steps": self.steps,
                "output": self.env[graph.output]}
