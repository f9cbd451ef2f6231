"""Paths the tests share: the repository, the shipped genotypes and the test fixtures."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GENOTYPES = REPO / "genotypes"
FIXTURES = REPO / "tests" / "fixtures"
