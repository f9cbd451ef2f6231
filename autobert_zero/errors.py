"""The project's exception hierarchy: one root class, one subclass per pipeline stage.

Anything a user, a file or a genotype can cause raises one of these with a message that names the bad
value and what was expected; the CLI turns them into a one-paragraph error and a non-zero exit
(`autobert_zero.cli.exit_codes.ExitCode`): 2 for a `GenotypeError`, 1 for every other `AbzError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autobert_zero.grammar.diagnostics import Diagnostic


class AbzError(Exception):
    """Root of every error the project raises on purpose."""


class GenotypeError(AbzError):
    """A genotype text does not parse or does not validate (see `autobert_zero.grammar.Diagnostic`)."""

    def __init__(self, diagnostics: Sequence[Diagnostic], source_name: str = "<genotype>") -> None:
        self.diagnostics = list(diagnostics)
        self.source_name = source_name
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(d.render(self.source_name) for d in self.diagnostics)


class LanguageError(AbzError):
    """The grammar and the op table disagree (e.g. an op terminal without an op-table entry)."""


class CompileError(AbzError):
    """A valid genotype cannot be compiled at the requested sizes (e.g. hidden not divisible by heads)."""


class ConfigError(AbzError):
    """A YAML config or a command-line value is malformed (unknown key, bad value, bad arithmetic)."""


class DataError(AbzError):
    """A corpus, vocabulary or GLUE folder is missing or malformed."""


class TrainingError(AbzError):
    """A training run cannot start or continue (e.g. no checkpoint to resume from)."""


class SearchError(AbzError):
    """A search cannot start or resume (e.g. a corrupt or incompatible search state)."""


class SupernetError(AbzError):
    """A supernet cannot host a candidate, or a supernet folder is missing, corrupt or of other sizes."""
