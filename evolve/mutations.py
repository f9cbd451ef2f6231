"""Mutations: the closed set of edits that turn a parent genotype into a child.

Every mutation changes one layer of the backbone and keeps the layer count. What it may produce comes from
the `Language` it is given (ops, conv types, kernels, dilations, graph-size limit), so a language narrowed
by the search config, or one whose grammar gained an op, changes what mutation reaches with no code here.

A node of the shared-node IR is addressed by an occurrence path from the graph's output
(`grammar.canonical.OccurrencePath`) and edited with `grammar.canonical.substitute`, so editing one use of a
shared sub-expression leaves its other uses alone. A mutated layer gets its own copy of its graph, then the
child is canonicalised (graphs merged and renamed) and validated. A proposal that cannot be made, or whose
child is invalid or equal to its parent, is a `Rejection` with a reason code: a validator diagnostic code
(`shape`, `too-large`, ...) or one of `REJECTION_CODES`. `Mutator.mutate` retries until a valid child
appears and counts the rejections by code.

Every choice from the language (mutation type, op, conv type, kernel, dilation, the layer kind a flip makes)
goes through a `Chooser` (`priority.py`) as a decision of its kind, drawn from that kind's own stream; where
an edit applies (layer, node, path, operands) comes from the `site` stream. A `Child` records its decisions
(`choices`), which the operation priority credits with the child's reward. Within one `mutate` call a
mutation type rejected `TYPE_REJECTIONS` times is no longer drawn, so a type that cannot give this parent a
child (and that an unseen-first priority would otherwise draw again and again) does not use up the tries.
"""

from __future__ import annotations

import enum
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import assert_never

from autobert_zero.errors import LanguageError, SearchError
from autobert_zero.grammar import (
    INPUT_SHAPE,
    INPUTS,
    AttentionGraph,
    AttentionLayer,
    Call,
    ConvLayer,
    Expr,
    Genotype,
    Input,
    Language,
    Layer,
    Shape,
    ShapeRuleError,
    canonicalize,
    infer_shapes,
    sample_graph,
    validate,
)
from autobert_zero.grammar.canonical import OccurrencePath, substitute

from .priority import LAYER_KINDS, Chooser

MAX_TRIES = 200
TYPE_REJECTIONS = 10
"""Rejections of one mutation type after which one `mutate` call stops drawing it."""
MUTATED = "mutated"  # temporary name of a layer's own copy of its graph (canonicalisation renames it)


class Mutation(enum.Enum):
    """The closed set of mutations; each edits exactly one layer."""

    REPLACE_OP = "replace-op"
    """An op node becomes another op of the same arity whose shape rule gives the same shape."""
    INSERT_NODE = "insert-node"
    """A new op goes on one edge: x becomes f(x), f(x, y) or f(y, x) with y a node of the graph."""
    DELETE_NODE = "delete-node"
    """An op node is bypassed: its user reads one of its operands (of the same shape) instead."""
    REWIRE_OPERAND = "rewire-operand"
    """One operand of an op node reads another node of the graph (or Q, K, V) of the same shape."""
    CONV_TYPE = "conv-type"
    """A conv layer changes its block type (light, depthwise, sepconv)."""
    CONV_KERNEL = "conv-kernel"
    """A conv layer changes its kernel size."""
    CONV_DILATION = "conv-dilation"
    """A conv layer with kernel > 1 changes its dilation."""
    FLIP_LAYER = "flip-layer"
    """An attention layer becomes a drawn conv layer, or a conv layer a drawn attention graph."""
    COPY_LAYER = "copy-layer"
    """One layer's mixer (attention graph or conv settings) is copied onto another layer."""


REJECTION_CODES = {
    "not-applicable": "the genotype has no layer this mutation edits (e.g. no conv layer)",
    "no-op-fits": "no op of the language fits the chosen place",
    "no-bypass": "no operand of the chosen node has the node's shape",
    "no-rewire": "no other node has the shape of the chosen operand",
    "no-ops": "the edit would leave an attention graph without any op",
    "no-graph": "the sampler found no attention graph within the language's ops and size limit",
    "unchanged": "the child is the parent (same canonical id)",
    "stuck-parent": "a tournament parent had no valid child at all (the search drew another parent)",
}


Choice = tuple[str, str]
"""(decision kind, option label) of one decision a mutation made."""


def as_chooser(chooser: Chooser | random.Random) -> Chooser:
    """A chooser; a bare `random.Random` becomes a uniform one drawing every stream from it."""
    return chooser if isinstance(chooser, Chooser) else Chooser(0, chooser)


@dataclass(frozen=True)
class Child:
    """A valid child and how it was made."""

    genotype: Genotype
    """Canonical form."""
    mutation: Mutation
    layer: int
    """Index of the edited layer."""
    ops: tuple[str, ...]
    """The ops the mutation chose."""
    detail: str
    """What changed, in words."""
    choices: tuple[Choice, ...] = ()
    """Every decision the mutation made, (kind, option), its type first (operation priority credits them)."""


@dataclass(frozen=True)
class Rejection:
    """A proposal that did not give a valid child, with its reason code."""

    mutation: Mutation
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class _Site:
    """Where an attention-graph edit applies: layer, graph, node shapes, the node and one path to it."""

    index: int
    graph: AttentionGraph
    shapes: dict[Expr, Shape]
    node: Expr
    path: OccurrencePath

    @property
    def call(self) -> Call:
        """The node as an op node (the picks of edits that change an op or its operands)."""
        assert isinstance(self.node, Call)
        return self.node


@dataclass(frozen=True)
class _NodeEdit:
    """What a graph edit puts at its site: the new node, the ops it chose and what changed, in words."""

    node: Expr
    ops: tuple[str, ...]
    detail: str


@dataclass(frozen=True)
class _Edit:
    """An edited genotype before canonicalisation and validation (see `Child` for the fields)."""

    genotype: Genotype
    layer: int
    ops: tuple[str, ...]
    detail: str
    choices: tuple[Choice, ...] = ()


class Mutator:
    """Proposes children of a parent within a language; the chooser (streams and priorities) is passed in."""

    def __init__(self, language: Language, mutations: Sequence[Mutation] = tuple(Mutation)) -> None:
        self.language = language
        self.mutations = tuple(mutations)

    def mutate(self, parent: Genotype, chooser: Chooser | random.Random,
               rejections: Counter[str] | None = None) -> Child:
        """A valid child of `parent`; rejected proposals are counted by reason code into `rejections`."""
        chooser = as_chooser(chooser)
        failed: Counter[Mutation] = Counter()
        for _ in range(MAX_TRIES):
            allowed = [m for m in self.mutations if failed[m] < TYPE_REJECTIONS]
            if not allowed:
                break
            result = self.propose(parent, chooser, allowed)
            if isinstance(result, Child):
                return result
            failed[result.mutation] += 1
            if rejections is not None:
                rejections[result.reason] += 1
        raise SearchError(f"no valid child of genotype {parent.id[:12]} in {MAX_TRIES} mutation attempts; the "
                          f"search space (ops, kernels, dilations, max_nodes) may be too narrow for it")

    def applicable(self, parent: Genotype, mutations: Sequence[Mutation] | None = None) -> list[Mutation]:
        """The mutation types (of `mutations`, default the enabled ones) that have a layer to edit in `parent`."""
        attention = any(isinstance(layer, AttentionLayer) for layer in parent.layers)
        convs = [layer for layer in parent.layers if isinstance(layer, ConvLayer)]
        needs = {Mutation.REPLACE_OP: attention, Mutation.INSERT_NODE: attention, Mutation.DELETE_NODE: attention,
                 Mutation.REWIRE_OPERAND: attention, Mutation.CONV_TYPE: bool(convs),
                 Mutation.CONV_KERNEL: bool(convs), Mutation.CONV_DILATION: any(c.kernel != 1 for c in convs),
                 Mutation.FLIP_LAYER: parent.num_layers > 0, Mutation.COPY_LAYER: parent.num_layers > 1}
        return [m for m in (self.mutations if mutations is None else mutations) if needs[m]]

    def propose(self, parent: Genotype, chooser: Chooser | random.Random,
                mutations: Sequence[Mutation] | None = None) -> Child | Rejection:
        """One mutation type (a `mutation` decision among the applicable ones of `mutations`), applied once: a
        valid child or a rejection."""
        chooser = as_chooser(chooser)
        options = self.applicable(parent, mutations)
        if not options:
            return Rejection((mutations or self.mutations)[0], "not-applicable")
        mutation = chooser.choose("mutation", options)
        edit = self._apply(mutation, parent, chooser)
        if isinstance(edit, Rejection):
            return edit
        child = canonicalize(edit.genotype, self.language)
        problems = validate(child, self.language)
        if problems:
            return Rejection(mutation, problems[0].code, problems[0].message)
        if any(not g.calls for g in child.graphs):
            return Rejection(mutation, "no-ops", edit.detail)
        # "unchanged" means equal ids under this mutator's language (the parent may carry another one)
        parent_id = parent.id if parent.language is self.language else self.language.genotype_id(parent)
        if child.id == parent_id:
            return Rejection(mutation, "unchanged", edit.detail)
        choices = (("mutation", mutation.value), *edit.choices)
        return Child(child, mutation, edit.layer, edit.ops, edit.detail, choices)

    def _apply(self, mutation: Mutation, parent: Genotype, chooser: Chooser) -> _Edit | Rejection:
        """`mutation` applied once to `parent` (the child is not yet canonical or validated)."""
        rng = chooser.rng("site")
        match mutation:
            case Mutation.REPLACE_OP:
                return self._edit_site(parent, rng, mutation, lambda site: self._replace_op(site, chooser))
            case Mutation.INSERT_NODE:
                return self._edit_site(parent, rng, mutation, lambda site: self._insert_node(site, chooser),
                                       calls_only=False)
            case Mutation.DELETE_NODE:
                return self._edit_site(parent, rng, mutation, lambda site: self._delete_node(site, rng))
            case Mutation.REWIRE_OPERAND:
                return self._edit_site(parent, rng, mutation, lambda site: self._rewire_operand(site, rng))
            case Mutation.CONV_TYPE | Mutation.CONV_KERNEL | Mutation.CONV_DILATION:
                return self._conv_edit(parent, chooser, mutation)
            case Mutation.FLIP_LAYER:
                return self._flip_layer(parent, chooser)
            case Mutation.COPY_LAYER:
                return self._copy_layer(parent, rng)
        assert_never(mutation)

    # --- attention-graph edits --------------------------------------------------------------------------

    def _edit_site(self, parent: Genotype, rng: random.Random, mutation: Mutation,
                   edit: Callable[[_Site], _NodeEdit | Rejection], *, calls_only: bool = True) -> _Edit | Rejection:
        """Pick a site (`_pick_site`), let `edit` choose what goes there, and put it in the layer's own copy
        of its graph (other layers sharing the old graph keep it)."""
        site = self._pick_site(parent, rng, mutation, calls_only=calls_only)
        if isinstance(site, Rejection):
            return site
        change = edit(site)
        if isinstance(change, Rejection):
            return change
        output = substitute(site.graph.output, site.path, change.node)
        return _Edit(self._with_graph(parent, site.index, output), site.index, change.ops,
                     f"layer {site.index}: {change.detail}", tuple(("op", op) for op in change.ops))

    def _pick_site(self, parent: Genotype, rng: random.Random, mutation: Mutation, *, calls_only: bool = True
                   ) -> _Site | Rejection:
        """A random attention layer, a random node of its graph (an op node, or any node) and a random
        occurrence path to it; `not-applicable` when the genotype has no attention layer (with `calls_only`:
        none whose graph has an op node, e.g. `return V`)."""
        layers = [i for i, layer in enumerate(parent.layers) if isinstance(layer, AttentionLayer)
                  and (not calls_only or parent.graph(layer.graph).calls)]
        if not layers:  # no attention layer (or, for an op edit, none whose graph has an op node)
            return Rejection(mutation, "not-applicable")
        index = rng.choice(layers)
        graph = parent.layer_graph(index)
        assert graph is not None
        shapes = infer_shapes(graph, self.language)
        node = rng.choice(graph.calls if calls_only else list(graph.output.walk()))
        return _Site(index, graph, shapes, node, _path_to(graph.output, node, rng))

    def _replace_op(self, site: _Site, chooser: Chooser) -> _NodeEdit | Rejection:
        node, shapes = site.call, site.shapes
        operand_shapes = tuple(shapes[a] for a in node.args)
        fits = [op for op in self.language.op_names if op != node.op and _fits(self.language, op, operand_shapes,
                                                                               shapes[node])]
        if not fits:
            return Rejection(Mutation.REPLACE_OP, "no-op-fits", f"{node.op} at {site.path}")
        op = chooser.choose("op", fits)
        return _NodeEdit(Call(op, node.args), (op,), f"{node.op} → {op} at {list(site.path)}")

    def _insert_node(self, site: _Site, chooser: Chooser) -> _NodeEdit | Rejection:
        target, shapes = site.node, site.shapes
        nodes = _pool(site.graph)
        shape = shapes[target]
        arrangements: dict[str, list[tuple[Expr, ...]]] = {}
        for op in self.language.op_names:
            spec = self.language.ops[op]
            options: list[tuple[Expr, ...]]
            if spec.arity == 1:
                options = [(target,)] if _fits(self.language, op, (shape,), shape) else []
            else:
                options = [args for other in nodes for args in ((target, other), (other, target))
                           if _fits(self.language, op, (shapes.get(args[0], INPUT_SHAPE),
                                                        shapes.get(args[1], INPUT_SHAPE)), shape)]
            if options:
                arrangements[op] = options
        if not arrangements:
            return Rejection(Mutation.INSERT_NODE, "no-op-fits", f"above {target}")
        op = chooser.choose("op", list(arrangements))
        new = Call(op, chooser.rng("site").choice(arrangements[op]))
        return _NodeEdit(new, (op,), f"insert {op} above {_short(target)} at {list(site.path)}")

    def _delete_node(self, site: _Site, rng: random.Random) -> _NodeEdit | Rejection:
        node, shapes = site.call, site.shapes
        bypasses = [a for a in node.args if shapes[a] == shapes[node]]
        if not bypasses:
            return Rejection(Mutation.DELETE_NODE, "no-bypass", f"{node.op} at {site.path}")
        return _NodeEdit(rng.choice(bypasses), (), f"delete {node.op} at {list(site.path)}")

    def _rewire_operand(self, site: _Site, rng: random.Random) -> _NodeEdit | Rejection:
        node, shapes = site.call, site.shapes
        slot = rng.randrange(len(node.args))
        old = node.args[slot]
        options = [n for n in _pool(site.graph) if n != old and shapes.get(n, INPUT_SHAPE) == shapes[old]]
        if not options:
            return Rejection(Mutation.REWIRE_OPERAND, "no-rewire", f"{node.op} operand {slot + 1}")
        new_arg = rng.choice(options)
        new = Call(node.op, (*node.args[:slot], new_arg, *node.args[slot + 1:]))
        return _NodeEdit(new, (), f"{node.op} operand {slot + 1} {_short(old)} → {_short(new_arg)}")

    # --- conv and whole-layer edits ---------------------------------------------------------------------

    def _conv_edit(self, parent: Genotype, chooser: Chooser, mutation: Mutation) -> _Edit | Rejection:
        attribute, kind, choices = {
            Mutation.CONV_TYPE: ("kind", "conv-type", self.language.conv_types),
            Mutation.CONV_KERNEL: ("kernel", "kernel", self.language.conv_kernels),
            Mutation.CONV_DILATION: ("dilation", "dilation", self.language.conv_dilations),
        }[mutation]
        layers = [i for i, layer in enumerate(parent.layers) if isinstance(layer, ConvLayer)
                  and (mutation is not Mutation.CONV_DILATION or layer.kernel != 1)]
        if not layers:
            return Rejection(mutation, "not-applicable")
        index = chooser.rng("site").choice(layers)
        layer = parent.layers[index]
        assert isinstance(layer, ConvLayer)
        old = getattr(layer, attribute)
        options = [c for c in choices if c != old]
        if not options:
            return Rejection(mutation, "not-applicable", f"only {attribute}={old} is allowed")
        new = chooser.choose(kind, options)
        conv = ConvLayer(**{"kind": layer.kind, "kernel": layer.kernel, "dilation": layer.dilation, attribute: new})
        return _Edit(self._with_layer(parent, index, conv), index, (), f"layer {index}: conv {attribute} {old} → {new}",
                     ((kind, str(new)),))

    def _flip_layer(self, parent: Genotype, chooser: Chooser) -> _Edit | Rejection:
        """A `layer-kind` decision (what a layer becomes: attention or conv, among the kinds some layer can
        become), then a layer of the other kind; a new conv's type, kernel and dilation are decisions too, a
        new graph's ops are drawn by the op weights (`Chooser.op_weights`)."""
        rng = chooser.rng("site")
        present = {"attention" if isinstance(layer, AttentionLayer) else "conv" for layer in parent.layers}
        target = chooser.choose("layer-kind", [k for k in LAYER_KINDS if ({"attention", "conv"} - {k}) & present])
        index = rng.choice([i for i, layer in enumerate(parent.layers)
                            if isinstance(layer, AttentionLayer) == (target == "conv")])
        if target == "conv":
            conv = ConvLayer(chooser.choose("conv-type", list(self.language.conv_types)),
                             chooser.choose("kernel", list(self.language.conv_kernels)),
                             chooser.choose("dilation", list(self.language.conv_dilations)))
            choices = (("layer-kind", target), ("conv-type", conv.kind), ("kernel", str(conv.kernel)),
                       ("dilation", str(conv.dilation)))
            return _Edit(self._with_layer(parent, index, conv), index, (),
                         f"layer {index}: attention → conv {conv.kind} kernel={conv.kernel} dilation={conv.dilation}",
                         choices)
        names = self.language.op_names
        weights = chooser.op_weights(names)
        try:
            graph = sample_graph(chooser.rng("graph"), MUTATED, language=self.language,
                                 weights=dict(zip(names, weights, strict=True)) if weights else None)
        except LanguageError:
            return Rejection(Mutation.FLIP_LAYER, "no-graph")
        ops = tuple(sorted({c.op for c in graph.calls}))
        return _Edit(self._with_graph(parent, index, graph.output), index, ops, f"layer {index}: conv → attention",
                     (("layer-kind", target), *(("op", op) for op in ops)))

    def _copy_layer(self, parent: Genotype, rng: random.Random) -> _Edit | Rejection:
        if parent.num_layers < 2:
            return Rejection(Mutation.COPY_LAYER, "not-applicable")
        source, target = rng.sample(range(parent.num_layers), 2)
        return _Edit(self._with_layer(parent, target, parent.layers[source]), target, (),
                     f"layer {source} copied onto layer {target}")

    # --- building the (not yet canonical) child ----------------------------------------------------------

    def _with_layer(self, parent: Genotype, index: int, layer: Layer) -> Genotype:
        layers = list(parent.layers)
        layers[index] = layer
        return Genotype(parent.graphs, tuple(layers), language=self.language)

    def _with_graph(self, parent: Genotype, index: int, output: Expr) -> Genotype:
        """`parent` with layer `index` reading its own graph `output` (other layers sharing the old graph keep
        it)."""
        graphs = (*(g for g in parent.graphs if g.name != MUTATED), AttentionGraph(MUTATED, output))
        return Genotype(graphs, self._with_layer(parent, index, AttentionLayer(MUTATED)).layers,
                        language=self.language)


def _fits(language: Language, op: str, operand_shapes: tuple[tuple[str, str], ...], out: tuple[str, str]) -> bool:
    spec = language.ops[op]
    if spec.arity != len(operand_shapes):
        return False
    try:
        return spec.shape(operand_shapes) == out
    except ShapeRuleError:
        return False


def _pool(graph: AttentionGraph) -> list[Expr]:
    """Every node an edit may read: Q, K, V and the graph's op nodes."""
    return [Input(name) for name in INPUTS] + list(graph.calls)


def _path_to(output: Expr, target: Expr, rng: random.Random) -> OccurrencePath:
    """A random occurrence path from `output` down to `target` (which must be reachable, or an input)."""
    reaches: dict[Expr, bool] = {}
    for node in output.walk():
        reaches[node] = node == target or (isinstance(node, Call) and any(reaches[a] for a in node.args))
    assert reaches[output], f"{target} is not in the graph"
    path: list[int] = []
    node = output
    while node != target:
        assert isinstance(node, Call)
        slots = [i for i, a in enumerate(node.args) if reaches[a]]
        slot = rng.choice(slots)
        path.append(slot)
        node = node.args[slot]
    return tuple(path)


def _short(node: Expr) -> str:
    return node.op if isinstance(node, Call) else str(node)
