"""Shared test fixtures: repository paths and the location of the real data in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from autobert_zero.config.paths import data_dir

REPO = Path(__file__).resolve().parents[1]
GENOTYPES = REPO / "genotypes"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def shared_data() -> Path:
    path = data_dir()
    if not path.is_dir():
        pytest.skip(f"real data folder {path} is absent (set ABZ_DATA_DIR to ../shared/data)")
    return path
