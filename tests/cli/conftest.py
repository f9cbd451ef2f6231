"""Fixtures shared by the command-line tests: `abz`, the real command line run in this process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from autobert_zero.cli import main


@dataclass
class Abz:
    """What one in-process `abz` run gave."""

    code: int
    out: str
    err: str
    """stderr with its line wrapping undone."""


@pytest.fixture()
def abz(capsys: pytest.CaptureFixture[str]) -> Callable[..., Abz]:
    """`abz(*args)`: run `autobert_zero.cli.main` on the arguments (any objects, turned into strings)."""
    def run(*args: object) -> Abz:
        code = main([str(arg) for arg in args])
        out, err = capsys.readouterr()
        return Abz(code, out, " ".join(err.split()))
    return run
