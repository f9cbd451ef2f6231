"""Reason-coded diagnostics: what is wrong with a genotype, where, and what was expected.

Every rejection of a genotype, from a stray byte to a shape mismatch, is a `Diagnostic` with a stable
`code` (listed in `CODES`), a 1-based line and column, and a message naming the bad value. Checks that both
the parser and the validator make (on text, and on an IR built in code) word their message here, once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

CODES: dict[str, str] = {
    "io": "the file cannot be read (missing, a folder, no permission)",
    "encoding": "the file is not UTF-8 text (or contains NUL bytes)",
    "syntax": "the text does not follow the grammar",
    "unknown-op": "a call names an op that is not in the language",
    "unknown-conv-type": "a conv layer names a type that is not in the language",
    "arity": "an op is given the wrong number of operands",
    "undefined": "a name is used but never bound",
    "duplicate": "a name, graph, backbone or conv option is defined twice",
    "unused": "a bound node is never used (dangling node)",
    "cycle": "bindings refer to each other in a cycle",
    "no-output": "an attention graph has no `return`, or more than one",
    "shape": "an op's operand shapes do not fit its shape rule",
    "output-shape": "an attention graph's output is not L×d",
    "too-large": "an attention graph has more op nodes than the configured limit",
    "conv-kernel": "a conv kernel size is not one of the allowed sizes",
    "conv-dilation": "a conv dilation is not one of the allowed values",
    "missing-kernel": "a conv layer has no `kernel=`",
    "unknown-graph": "a layer names an attention graph that is not defined",
    "no-backbone": "the file has no `backbone { ... }`, or more than one",
    "no-layers": "the backbone has no layers",
    "too-many-layers": "the backbone has more layers than the language allows (`language.MAX_LAYERS`)",
}


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a genotype text."""

    code: str
    message: str
    line: int = 1
    column: int = 1

    def __post_init__(self) -> None:
        assert self.code in CODES, f"unregistered diagnostic code {self.code!r}"

    def render(self, source_name: str = "<genotype>") -> str:
        return f"{source_name}:{self.line}:{self.column}: error[{self.code}]: {self.message}"

    def to_json(self) -> dict[str, object]:
        return {"line": self.line, "column": self.column, "code": self.code, "message": self.message}


# ---------------------------------------------------------------------------------------------------
# Messages of the checks made in two places (parser and validator)


def unknown_op_message(op: str, known: Iterable[str]) -> str:
    return f"unknown op {op!r}; expected one of: {', '.join(known)}"


def unknown_conv_type_message(kind: str, known: Iterable[str]) -> str:
    return f"unknown conv type {kind!r}; expected one of: {', '.join(known)}"


def arity_message(op: str, arity: int, given: int) -> str:
    return f"{op} takes {arity} operand{'' if arity == 1 else 's'}, got {given}"


def unknown_graph_message(name: str, defined: Iterable[str]) -> str:
    known = ", ".join(sorted(defined)) or "none defined"
    return f"layer uses attention graph {name!r}, which is not defined (defined: {known})"


NO_LAYERS_MESSAGE = "the backbone has no layers; add `attention NAME` or `conv kernel=N` lines"


def line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of `offset` in `text` (`offset == len(text)` is the end of the text)."""
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1
