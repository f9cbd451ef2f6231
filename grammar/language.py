"""The genotype language: the Lark grammar plus the op table, checked to agree with each other.

`default_language()` is the shipped search space (`genotype.lark` + `ops.DEFAULT_OPS`). A `Language` built
from an edited grammar and an extended op table is a different search space; the parser, validator,
sampler and mutations all take the language as a parameter.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from lark import Lark

from autobert_zero.errors import LanguageError

from . import canonical, ir, printer
from .ops import CONV_DILATIONS, CONV_KERNELS, DEFAULT_OPS, OpSpec

GRAMMAR_PATH = Path(__file__).with_name("genotype.lark")
DEFAULT_MAX_NODES = 16
MAX_LAYERS = 256
"""Most layers a backbone may have (BERT-large has 24): a genotype is text anyone can write, and a backbone of
100,000 layers would be built (billions of parameters) before any size check; `abz check` refuses it."""
T = TypeVar("T", str, int)


class Language:
    """A grammar, its op table and the numeric limits of the search space.

    A language is immutable once built (`with_limits` returns a narrowed copy) and is shared, never copied:
    every genotype it builds carries it (`Genotype.language`) and gets its identity from it.
    """

    def __init__(
        self,
        grammar: str | None = None,
        ops: Mapping[str, OpSpec] = DEFAULT_OPS,
        *,
        max_nodes: int = DEFAULT_MAX_NODES,
        max_layers: int = MAX_LAYERS,
        conv_kernels: tuple[int, ...] = CONV_KERNELS,
        conv_dilations: tuple[int, ...] = CONV_DILATIONS,
        impls: Mapping[str, Callable[..., Any]] | None = None,
        record: Mapping[str, Any] | None = None,
    ) -> None:
        self.grammar_text = GRAMMAR_PATH.read_text(encoding="utf-8") if grammar is None else grammar
        """The grammar source, as given (the record of which search space a result belongs to)."""
        self.lark = Lark(self.grammar_text, parser="lalr", propagate_positions=True, maybe_placeholders=True)
        names = self._alternatives("op")
        self.conv_types: tuple[str, ...] = self._alternatives("conv_type")
        missing = [name for name in names if name not in ops]
        if missing:
            raise LanguageError(
                f"the grammar's rule `op` lists {', '.join(missing)} but the op table has no entry for "
                f"{'it' if len(missing) == 1 else 'them'}; add an OpSpec (see grammar/ops.py)"
            )
        self.ops: dict[str, OpSpec] = {name: ops[name] for name in names}
        """The op table, in the grammar's order (narrowed by `with_limits`)."""
        if max_nodes < 1:
            raise LanguageError(f"max_nodes must be at least 1, got {max_nodes}")
        self.max_nodes = max_nodes
        if not 1 <= max_layers <= MAX_LAYERS:
            raise LanguageError(f"max_layers must be between 1 and {MAX_LAYERS}, got {max_layers}")
        self.max_layers = max_layers
        """Most layers a backbone of this language may have (`MAX_LAYERS` at most)."""
        self.conv_kernels = tuple(conv_kernels)
        self.conv_dilations = tuple(conv_dilations)
        self.impls: dict[str, Callable[..., Any]] = dict(impls or {})
        """How the language's own ops run, by op name (opaque callables: the compiler uses them before its
        registry, `compiler/op_impls.py`); empty for a language whose ops are all built in."""
        self.record: dict[str, Any] | None = dict(record) if record is not None else None
        """What the language was made from (grammar text, op module source or plugin, sha256s; see
        `grammar.loading`), recorded with everything it makes; None for the built-in language."""

    @property
    def sha256(self) -> str | None:
        """The language's identity (`record["sha256"]`); None for the built-in language."""
        return None if self.record is None else str(self.record["sha256"])

    @property
    def op_names(self) -> tuple[str, ...]:
        """The language's ops, in the grammar's order."""
        return tuple(self.ops)

    def _alternatives(self, rule: str) -> tuple[str, ...]:
        """The keyword strings of a rule whose alternatives are single string terminals (e.g. `op`)."""
        patterns = {t.name: t.pattern.value for t in self.lark.terminals}
        names = []
        for r in self.lark.rules:
            if r.origin.name == rule:
                if len(r.expansion) != 1 or r.expansion[0].name not in patterns:
                    raise LanguageError(f"grammar rule `{rule}` must list one keyword per alternative")
                names.append(str(patterns[r.expansion[0].name]))
        if not names:
            raise LanguageError(f"the grammar has no rule `{rule}`")
        return tuple(names)

    def with_limits(
        self,
        *,
        max_nodes: int | None = None,
        ops: Sequence[str] | None = None,
        conv_types: Sequence[str] | None = None,
        conv_kernels: Sequence[int] | None = None,
        conv_dilations: Sequence[int] | None = None,
    ) -> Language:
        """The same language narrowed: another graph-size limit and/or a subset of ops and conv choices.

        A narrowed language is a smaller search space: the validator rejects what it leaves out, the
        sampler and the search's mutations never produce it. Naming something outside this language raises.
        """
        clone = object.__new__(Language)
        clone.__dict__.update(self.__dict__)
        if max_nodes is not None:
            if max_nodes < 1:
                raise LanguageError(f"max_nodes must be at least 1, got {max_nodes}")
            clone.max_nodes = max_nodes
        if ops is not None:
            clone.ops = {name: self.ops[name] for name in _subset("op", ops, self.op_names)}
        if conv_types is not None:
            clone.conv_types = _subset("conv type", conv_types, self.conv_types)
        if conv_kernels is not None:
            clone.conv_kernels = _subset("conv kernel", conv_kernels, self.conv_kernels)
        if conv_dilations is not None:
            clone.conv_dilations = _subset("conv dilation", conv_dilations, self.conv_dilations)
        return clone

    # --- identity: what `Genotype.id`, `.canonical()` and `.to_text()` ask of the language ----------------

    def canonicalize(self, genotype: ir.Genotype) -> ir.Genotype:
        """`genotype`'s canonical form under this language's rewrite rules (see `grammar.canonical`)."""
        return canonical.canonicalize(genotype, self)

    def genotype_id(self, genotype: ir.Genotype) -> str:
        """sha256 of `genotype`'s canonical text under this language: equal meaning ⇒ equal id."""
        return canonical.genotype_id(genotype, self)

    def print_genotype(self, genotype: ir.Genotype) -> str:
        """`genotype` as text of this language."""
        return printer.print_genotype(genotype)

    def __copy__(self) -> Language:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Language:
        return self  # immutable and shared: a copied genotype (or model holding one) keeps its language


def _subset(what: str, chosen: Sequence[T], available: tuple[T, ...]) -> tuple[T, ...]:
    """`chosen` in the language's order; raises naming anything the language lacks (or an empty choice)."""
    unknown = [c for c in chosen if c not in available]
    if unknown:
        raise LanguageError(f"{what} {', '.join(map(repr, unknown))} is not in the language; expected a subset of "
                            f"{', '.join(map(str, available))}")
    if not chosen:
        raise LanguageError(f"the {what} choice is empty; name at least one of {', '.join(map(str, available))}")
    return tuple(a for a in available if a in chosen)


@functools.cache
def default_language() -> Language:
    """The shipped language (built once per process)."""
    return Language()


_ACTIVE: contextvars.ContextVar[Language | None] = contextvars.ContextVar("abz_active_language", default=None)


def current_language() -> Language:
    """The language that text is parsed in when no language is named: the one `using_language` made active,
    else the built-in language."""
    return _ACTIVE.get() or default_language()


@contextlib.contextmanager
def using_language(language: Language) -> Iterator[Language]:
    """Within the block, `parse_genotype`/`load_genotype`/`formula` without a `language=` use `language` (a
    command sets the language of its config or folder once, for code that parses genotype text deep down)."""
    token = _ACTIVE.set(language)
    try:
        yield language
    finally:
        _ACTIVE.reset(token)


ir.set_default_language(default_language)  # the language of a `Genotype` built without one
