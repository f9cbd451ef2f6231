"""Shared test fixtures: the location of the real data in ../shared/data (paths: `tests.support.paths`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autobert_zero.config.paths import data_dir


@pytest.fixture
def shared_data() -> Path:
    path = data_dir()
    if not path.is_dir():
        pytest.skip(f"real data folder {path} is absent (set ABZ_DATA_DIR to ../shared/data)")
    return path
