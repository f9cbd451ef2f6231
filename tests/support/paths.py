"""Paths the tests share: the repository, the shipped genotypes and the test fixtures."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GENOTYPES = REPO / "genotypes"
FIXTURES = REPO / "tests" / "fixtures"


def complete_lines(path: Path) -> int:
    """How many complete (newline-ended) lines a file holds; 0 if it does not exist (a run not started)."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0
