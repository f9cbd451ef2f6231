"""Fixtures shared by the training tests: a module's own folder, the tiny config's prepared MLM data, a
tiny supernet, and the labels of the real GLUE files read by hand."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from autobert_zero.train.mlm import PreparedMlm, prepare_mlm_data
from tests.support.training import tiny_config


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A folder for the whole test module (named after it): tiny configs, corpus, tokenizer cache, runs."""
    return tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])


@pytest.fixture(scope="module")
def supernet_dir(tmp: Path) -> Path:
    """A supernet of `tiny_config(tmp)` trained 4 steps, once per module."""
    from autobert_zero.train.supernet import train_supernet

    train_supernet(tiny_config(tmp, pretrain={"max_steps": 4, "checkpoint_every": 4}), tmp / "supernet")
    return tmp / "supernet"


@pytest.fixture(scope="module")
def prepared(tmp: Path) -> PreparedMlm:
    """The corpus, tokenizer and MLM blocks of `tiny_config(tmp)`, prepared once per module."""
    return prepare_mlm_data(tiny_config(tmp))


LABEL_FIELD = {"CoLA": 1, "SST-2": -1, "MRPC": 0, "STS-B": -1, "RTE": -1, "WNLI": -1, "QNLI": -1}
"""Which tab-separated field of a real GLUE TSV row holds the label (read here by hand, not through
`train/data/glue.py`). CoLA's files have no header row."""
NLI_IDS = {"entailment": 0, "not_entailment": 1}
"""GLUE's label ids for the two-way NLI tasks (as in the hub's `glue` dataset)."""


@pytest.fixture
def tsv_labels(shared_data: Path) -> Callable[[str, str], list[float]]:
    """Reads a real GLUE file's labels by hand: (task folder, split) → label ids in row order (scores for
    STS-B), to check the loader's label map against."""
    def read(folder: str, split: str = "dev") -> list[float]:
        lines = (shared_data / "glue" / folder / f"{split}.tsv").read_text(encoding="utf-8-sig").splitlines()
        raw = [line.split("\t")[LABEL_FIELD[folder]] for line in (lines if folder == "CoLA" else lines[1:])]
        return [float(x) if folder == "STS-B" else NLI_IDS[x] if x in NLI_IDS else int(x) for x in raw]

    return read
