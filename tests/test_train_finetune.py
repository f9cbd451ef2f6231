"""GLUE fine-tuning through real DeepSpeed: eval.json with the official metrics, and input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autobert_zero.errors import DataError
from autobert_zero.train.config_schema import TrainConfig
from autobert_zero.train.finetune import finetune
from autobert_zero.train.pretrain import pretrain

from .train_fixtures import tiny_config


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainConfig, Path]:
    tmp = tmp_path_factory.mktemp("pretrained")
    cfg = tiny_config(tmp)
    pretrain(cfg, tmp / "run", max_steps=2)
    return cfg, tmp / "run" / "final"


def write_sst2(folder: Path) -> Path:
    rows = [("a fine , moving film", 1), ("dull and lifeless", 0), ('a "great" joy', 1), ("a mess", 0)] * 6
    for split in ("train", "dev"):
        path = folder / "SST-2" / f"{split}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in rows), encoding="utf-8")
    return folder


def test_finetune_writes_eval_json(pretrained: tuple[TrainConfig, Path], tmp_path: Path) -> None:
    cfg, init = pretrained
    result = finetune(cfg, "sst2", write_sst2(tmp_path / "glue"), init, tmp_path / "ft")
    saved = json.loads((tmp_path / "ft" / "eval.json").read_text())
    assert saved == result
    assert result["task"] == "SST-2" and result["split"] == "dev" and result["dev_examples"] == 24
    assert set(result["metrics"]) == {"accuracy"} and 0.0 <= result["metrics"]["accuracy"] <= 1.0
    assert result["steps"] == 3  # 1 epoch of 24 examples at batch 8
    assert [r["step"] for r in map(json.loads, (tmp_path / "ft" / "metrics.jsonl").read_text().splitlines())] == [
        1, 2, 3]


@pytest.mark.parametrize("task, metrics", [("RTE", {"accuracy"}), ("STS-B", {"pearson", "spearman"}),
                                           ("MRPC", {"f1", "accuracy"}), ("CoLA", {"matthews_corrcoef"})])
def test_finetune_on_real_glue(pretrained: tuple[TrainConfig, Path], shared_data: Path, tmp_path: Path,
                               task: str, metrics: set[str]) -> None:
    cfg, init = pretrained
    result = finetune(cfg, task, shared_data / "glue", init, tmp_path / "ft")
    assert set(result["metrics"]) == metrics
    assert result["train_examples"] == 48 and result["steps"] == 6
    assert result["dev_examples"] == {"RTE": 277, "STS-B": 1500, "MRPC": 408, "CoLA": 1043}[task]


def test_finetune_input_errors(pretrained: tuple[TrainConfig, Path], tmp_path: Path) -> None:
    cfg, init = pretrained
    glue = write_sst2(tmp_path / "glue")
    with pytest.raises(DataError, match=r"unknown GLUE task 'sst5'; valid tasks: CoLA, SST-2, MRPC"):
        finetune(cfg, "sst5", glue, init, tmp_path / "a")
    with pytest.raises(DataError, match="--init folder not found"):
        finetune(cfg, "sst2", glue, tmp_path / "nothing", tmp_path / "b")
    with pytest.raises(DataError, match=r"GLUE folder not found: .*RTE"):
        finetune(cfg, "rte", glue, init, tmp_path / "c")
    (glue / "SST-2" / "dev.tsv").write_text("text\tgold\nfine\t1\n")
    with pytest.raises(DataError, match=r"expected columns sentence, label in the header; found columns text, gold"):
        finetune(cfg, "sst2", glue, init, tmp_path / "d")
