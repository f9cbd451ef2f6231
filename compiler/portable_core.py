"""An attention core's program (plain JSON data) → a `torch.fx.GraphModule` (shipped in every exported folder).

The compiler (`attention_core`) lowers an attention graph to a *program*: the exact sequence of tensor
operations its core runs, padding masks, attention dropout and fused scaled-dot-product attention already
decided. `build_core` turns a program into the fx graph, node by node. The package builds its cores through
this function, and `remote_code` copies this module verbatim into exported folders, so an exported model runs
the same fx graph, hence bit-identical outputs. The module imports only torch and the standard library.

A program is a dict:

    {"name": "vanilla", "source": "matmul(softmax(scale(matmul(Q, transpose(K)))), V)",
     "inputs": ["q", "k", "v"], "steps": [...], "output": 7}

Values are numbered: the inputs first (0, 1, ...), then one per step, in order. A step is one of:

- `{"step": "op", "op": NAME, "args": [i, ...], "head_dim": bool}`: the op's implementation (looked up in
  the `impls` given to `build_core`) on values `args`, with `d=head_dim` when `head_dim` is true;
- `{"step": "mask", "arg": i, "axis": "rows" | "cols", "fill": "-inf" | "0.0"}`: value `i` with its padded
  rows / columns overwritten by the fill (a float, written as text so that -inf is valid JSON);
- `{"step": "dropout", "arg": i}`: attention-probability dropout at the core's `dropout_p`;
- `{"step": "sdpa", "args": [q, k, v], "masked": bool, "scale_power": n}`:
  `F.scaled_dot_product_attention(q, k, v)` at scale (1/√d)ⁿ, with padded keys masked and attention dropout
  when `masked`.

The core's `forward(*inputs, keep, dropout_p)` takes the inputs (each (B, H, L, dh)), `keep` (B, L) bool (True
at real tokens) and the dropout rate, and returns value `output`, (B, H, L, dh).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

PROGRAM_INPUTS = ("q", "k", "v")
"""The names a program's inputs may have (the per-head query, key and value projections)."""
MASK_AXES = ("rows", "cols")


class ProgramError(ValueError):
    """A program that `build_core` cannot run (unknown op, bad value index, unknown step)."""


def encode_fill(fill: float) -> str:
    """A mask fill as program text (`float(encode_fill(x)) == x`, -inf included)."""
    return repr(float(fill))


def build_core(program: Mapping[str, Any], head_dim: int,
               impls: Mapping[str, Callable[..., torch.Tensor]]) -> fx.GraphModule:
    """The fx module that runs `program` at head dimension `head_dim`; raises `ProgramError` for a bad program."""
    name = program.get("name", "?")
    try:
        builder = _Builder(list(program["inputs"]), head_dim, impls)
        for number, step in enumerate(program["steps"]):
            builder.add(step, number)
        return builder.finish(program["output"])
    except ProgramError as error:
        raise ProgramError(f"attention graph {name!r}: {error}") from None
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise ProgramError(f"attention graph {name!r}: malformed program ({type(error).__name__}: {error})") from None


class _Builder:
    """The fx graph under construction: placeholders, one fx node per program value, padding-mask views."""

    def __init__(self, inputs: Sequence[str], head_dim: int, impls: Mapping[str, Callable[..., torch.Tensor]]) -> None:
        unknown = [n for n in inputs if n not in PROGRAM_INPUTS]
        if unknown or len(set(inputs)) != len(inputs):
            raise ProgramError(f"inputs {list(inputs)} must be distinct names among {', '.join(PROGRAM_INPUTS)}")
        self.graph = fx.Graph()
        self.head_dim = head_dim
        self.impls = impls
        self.values: list[fx.Node] = [self.graph.placeholder(n) for n in inputs]
        self.keep = self.graph.placeholder("keep")
        self.dropout_p = self.graph.placeholder("dropout_p")
        self._views: dict[str, fx.Node] = {}

    def value(self, index: Any) -> fx.Node:
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(self.values):
            raise ProgramError(f"value {index!r} does not exist yet ({len(self.values)} values so far)")
        return self.values[index]

    def add(self, step: Mapping[str, Any], number: int) -> None:
        kind = step.get("step")
        if kind == "op":
            out = self._op(step, number)
        elif kind == "mask":
            if step["axis"] not in MASK_AXES:
                raise ProgramError(f"step {number}: mask axis {step['axis']!r} is not one of {MASK_AXES}")
            view = self._view("pad_rows" if step["axis"] == "rows" else "pad_cols")
            out = self.graph.call_method("masked_fill", (self.value(step["arg"]), view, float(step["fill"])))
        elif kind == "dropout":
            out = self.graph.call_function(F.dropout, (self.value(step["arg"]),),
                                           {"p": self.dropout_p, "training": True})
        elif kind == "sdpa":
            out = self._sdpa(step)
        else:
            raise ProgramError(f"step {number} has unknown kind {kind!r} (op, mask, dropout, sdpa)")
        self.values.append(out)

    def _op(self, step: Mapping[str, Any], number: int) -> fx.Node:
        impl = self.impls.get(step["op"])
        if impl is None:
            raise ProgramError(f"step {number} uses op {step['op']!r}, which has no implementation here; "
                               f"known ops: {', '.join(self.impls)}")
        args = tuple(self.value(i) for i in step["args"])
        kwargs: dict[str, fx.node.Argument] = {"d": self.head_dim} if step.get("head_dim", False) else {}
        return self.graph.call_function(impl, args, kwargs)

    def _sdpa(self, step: Mapping[str, Any]) -> fx.Node:
        q, k, v = (self.value(i) for i in step["args"])
        masked = bool(step["masked"])
        kwargs: dict[str, fx.node.Argument] = {
            "attn_mask": self._view("keep_keys") if masked else None,
            "dropout_p": self.dropout_p if masked else 0.0,
            "scale": (1.0 / math.sqrt(self.head_dim)) ** int(step["scale_power"]),
        }
        return self.graph.call_function(F.scaled_dot_product_attention, (q, k, v), kwargs)

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

    def finish(self, output: Any) -> fx.GraphModule:
        self.graph.output(self.value(output))
        self.graph.lint()
        return fx.GraphModule(nn.Module(), self.graph, class_name="AttentionCore")
