"""Attention core: an `AttentionGraph` compiled to a `torch.fx.GraphModule`, built node by node.

The core is the per-head part of an attention layer — everything between the split Q/K/V heads and the
head merge. Its generated `forward(q?, k?, v?, keep, dropout_p)` takes:

- `q`, `k`, `v`: the projections the graph uses (a graph without V has no `v`), each (B, H, L, dh);
- `keep`: (B, L) bool, True at real tokens, False at padding;
- `dropout_p`: the attention-probability dropout rate (the caller passes 0.0 in eval mode);

and returns (B, H, L, dh). The fx graph is built explicitly from the IR (one fx node per distinct `Expr`,
so shared sub-expressions are computed once), with each op's implementation (`op_impls.op_impl`, by op
name) as call target;
padding masks are inserted where `padding.required_masks` says so; `lowering` fuses scaled dot-product
attention when `fused` is set. Constants are plain numbers in the graph (no buffers), and the module
holds no parameters, so one compiled core is shared by every layer (and model) with an equal graph:
cores are cached by (graph structure, head dim, fused, op specs, op implementations).
"""

from __future__ import annotations

import math
import operator
from collections import OrderedDict
from collections.abc import Hashable

import torch
import torch.nn.functional as F
from torch import fx, nn

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
    default_language,
    infer_shapes,
)
from autobert_zero.grammar.ir import topological_order

from .lowering import FusedAttention, find_fused_attention
from .op_impls import OpImpl, op_impl
from .padding import NO_FACTS, Facts, dropout_facts, masked_facts, propagate, required_masks

CACHE_SIZE = 1024

_CACHE: OrderedDict[Hashable, fx.GraphModule] = OrderedDict()


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
    custom language without a registered implementation (`register_op_impl`).
    """
    language = language or default_language()
    names = sorted({c.op for c in graph.calls})
    try:
        specs = tuple(language.ops[op] for op in names)
    except KeyError as error:
        raise CompileError(f"attention graph {graph.name!r} uses op {error.args[0]!r}, which the op table "
                           f"does not define; known ops: {', '.join(language.ops)}") from None
    impls = {op: op_impl(op) for op in names}
    key = (graph.output, head_dim, fused, specs, tuple(impls.values()))
    core = _CACHE.get(key)
    if core is not None:
        _CACHE.move_to_end(key)
        return core
    core = _build(graph, head_dim, fused, language, impls)
    _CACHE[key] = core
    if len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return core


def clear_core_cache() -> None:
    """Forget every compiled core (for timing cold compiles)."""
    _CACHE.clear()


def _build(
    graph: AttentionGraph, head_dim: int, fused: bool, language: Language, impls: dict[str, OpImpl]
) -> fx.GraphModule:
    try:
        shapes = infer_shapes(graph, language)
    except ValueError as error:
        raise CompileError(f"attention graph {graph.name!r} cannot be compiled: {error}") from None
    if shapes[graph.output] != OUTPUT_SHAPE:
        raise CompileError(f"attention graph {graph.name!r} returns a {'×'.join(shapes[graph.output])} value; "
                           "an attention output must be L×d")
    fusions = find_fused_attention(graph.output, shapes) if fused else {}
    builder = _CoreBuilder(graph, shapes, head_dim, language, impls)
    for node in _emission_order(graph.output, fusions):
        builder.emit(node, fusions.get(node))
    return builder.finish(graph.output)


def _emission_order(output: Expr, fusions: dict[Expr, FusedAttention]) -> list[Expr]:
    """Nodes the compiled graph needs, operands first; a fused node needs only its (A, B, C)."""

    def operands(node: Expr) -> tuple[Expr, ...]:
        if node in fusions:
            return fusions[node].operands
        return node.args if isinstance(node, Call) else ()

    return list(topological_order(output, operands))


class _CoreBuilder:
    """Holds the fx graph under construction: env (IR node → fx node), shapes and padding facts."""

    def __init__(self, graph: AttentionGraph, shapes: dict[Expr, Shape], head_dim: int, language: Language,
                 impls: dict[str, OpImpl]) -> None:
        self.graph = fx.Graph()
        self.head_dim = head_dim
        self.ops = language.ops
        self.impls = impls
        self.shapes = dict(shapes)
        self.env: dict[Expr, fx.Node] = {}
        self.facts: dict[Expr, Facts] = {}
        for name in graph.inputs_used:
            self.env[Input(name)] = self.graph.placeholder(name.lower())
            self.facts[Input(name)] = NO_FACTS
        self.keep = self.graph.placeholder("keep")
        self.dropout_p = self.graph.placeholder("dropout_p")
        self._views: dict[str, fx.Node] = {}
        self._masked: dict[tuple[Expr, int, float], fx.Node] = {}

    def emit(self, node: Expr, fused: FusedAttention | None) -> None:
        if isinstance(node, Input):
            return  # placeholders exist already
        assert isinstance(node, Call)
        if fused is not None:
            self._emit_fused(node, fused)
            return
        spec = self.ops[node.op]
        arg_shapes = tuple(self.shapes[a] for a in node.args)
        arg_facts = [self.facts[a] for a in node.args]
        args = [self.env[a] for a in node.args]
        for operand, axis in required_masks(spec, arg_shapes, tuple(arg_facts)):
            args[operand] = self._mask(node.args[operand], axis, spec.mask_fill)
            arg_facts[operand] = masked_facts(arg_facts[operand], axis, spec.mask_fill)
        kwargs: dict[str, fx.node.Argument] = {"d": self.head_dim} if spec.needs_head_dim else {}
        impl = self.impls[node.op]
        out = self.graph.call_function(impl, tuple(args), kwargs)
        shape = self.shapes.setdefault(node, spec.shape(arg_shapes))
        facts = propagate(spec, impl, tuple(arg_facts), self.head_dim)
        if node.op == "softmax" and shape[1] == POSITION_AXIS:  # attention probabilities: dropout while training
            out = self.graph.call_function(F.dropout, (out,), {"p": self.dropout_p, "training": True})
            facts = dropout_facts(facts)
        self.env[node] = out
        self.facts[node] = facts

    def _emit_fused(self, node: Call, fused: FusedAttention) -> None:
        q, k, v = (self.env[e] for e in fused.operands)
        scale = (1.0 / math.sqrt(self.head_dim)) ** fused.scale_power
        kwargs: dict[str, fx.node.Argument] = {
            "attn_mask": self._view("keep_keys") if fused.masked else None,
            "dropout_p": self.dropout_p if fused.masked else 0.0,
            "scale": scale,
        }
        self.env[node] = self.graph.call_function(F.scaled_dot_product_attention, (q, k, v), kwargs)
        self.facts[node] = NO_FACTS

    def _mask(self, node: Expr, axis: int, fill: float) -> fx.Node:
        """`node` with padded positions along `axis` (0 rows, 1 columns) overwritten by `fill`."""
        key = (node, axis, fill)
        if key not in self._masked:
            view = self._view("pad_rows" if axis == 0 else "pad_cols")
            self._masked[key] = self.graph.call_method("masked_fill", (self.env[node], view, fill))
        return self._masked[key]

    def _view(self, name: str) -> fx.Node:
        """Broadcastable views of the padding mask, created on first use."""
        if name not in self._views:
            if name == "pad":
                self._views[name] = self.graph.create_node(
                    "call_function", torch.logical_not, (self.keep,), name="pad")  # (B, L)
            else:
                everything = slice(None)
                source, index = {
                    "pad_rows": ("pad", (everything, None, everything, None)),  # (B, 1, L, 1)
                    "pad_cols": ("pad", (everything, None, None, everything)),  # (B, 1, 1, L)
                    "keep_keys": ("keep", (everything, None, None, everything)),  # (B, 1, 1, L)
                }[name]
                base = self.keep if source == "keep" else self._view("pad")
                self._views[name] = self.graph.create_node(
                    "call_function", operator.getitem, (base, index), name=name)
        return self._views[name]

    def finish(self, output: Expr) -> fx.GraphModule:
        self.graph.output(self.env[output])
        self.graph.lint()
        return fx.GraphModule(nn.Module(), self.graph, class_name="AttentionCore")
