"""GLUE fine-tuning through real DeepSpeed: eval.json with the official metrics, and input errors."""

from __future__ import annotations

import importlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autobert_zero.config.schema import Config
from autobert_zero.errors import ConfigError, DataError
from autobert_zero.train.data.metrics import glue_metrics
from autobert_zero.train.finetune import finetune
from autobert_zero.train.pretrain import pretrain
from tests.support.glue import write_sst2
from tests.support.training import tiny_config


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Path]:
    tmp = tmp_path_factory.mktemp("pretrained")
    cfg = tiny_config(tmp)
    pretrain(cfg, tmp / "run", max_steps=2)
    return cfg, tmp / "run" / "final"




def test_finetune_writes_eval_json(pretrained: tuple[Config, Path], tmp_path: Path) -> None:
    cfg, init = pretrained
    result = finetune(cfg, "sst2", write_sst2(tmp_path / "glue"), init, tmp_path / "ft")
    saved = json.loads((tmp_path / "ft" / "eval.json").read_text())
    assert saved == result
    assert result["task"] == "SST-2" and result["split"] == "dev" and result["dev_examples"] == 24
    assert set(result["metrics"]) == {"accuracy"}
    correct = result["metrics"]["accuracy"] * 24
    assert correct == round(correct)  # a share of the 24 dev examples, not any number in [0, 1]
    assert result["steps"] == 3  # 1 epoch of 24 examples at batch 8
    records = [json.loads(line) for line in (tmp_path / "ft" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    again = finetune(cfg, "sst2", tmp_path / "glue", init, tmp_path / "ft2")  # seeded: the same run exactly
    assert again["metrics"] == result["metrics"]
    assert [json.loads(line)["loss"] for line in (tmp_path / "ft2" / "metrics.jsonl").read_text().splitlines()] == [
        r["loss"] for r in records]


@pytest.mark.parametrize("task, metrics", [("RTE", {"accuracy"}), ("STS-B", {"pearson", "spearman"}),
                                           ("MRPC", {"f1", "accuracy"}), ("CoLA", {"matthews_corrcoef"})])
def test_finetune_on_real_glue(pretrained: tuple[Config, Path], shared_data: Path, tmp_path: Path,
                               task: str, metrics: set[str], tsv_labels: Callable[[str, str], list[float]],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, init = pretrained
    scored_against: list[float] = []

    def spy(spec: Any, predictions: Any, labels: Any) -> dict[str, float]:
        scored_against.extend(labels.tolist())
        return glue_metrics(spec, predictions, labels)

    monkeypatch.setattr(importlib.import_module("autobert_zero.train.finetune"), "glue_metrics", spy)
    result = finetune(cfg, task, shared_data / "glue", init, tmp_path / "ft")
    assert set(result["metrics"]) == metrics
    assert scored_against == pytest.approx(tsv_labels(result["task"], "dev"))  # each dev row's own label id
    assert result["train_examples"] == 48 and result["steps"] == 6
    assert result["dev_examples"] == {"RTE": 277, "STS-B": 1500, "MRPC": 408, "CoLA": 1043}[task]


def test_finetune_input_errors(pretrained: tuple[Config, Path], tmp_path: Path) -> None:
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


def copy_of(init: Path, folder: Path) -> Path:
    shutil.copytree(init, folder)
    return folder


def test_init_must_be_an_autobert_zero_folder_matching_its_genotype(pretrained: tuple[Config, Path],
                                                                    tmp_path: Path) -> None:
    """A plain BertModel folder, weights of another genotype, or a foreign tokenizer are refused."""
    from transformers import BertConfig, BertModel, BertTokenizer

    cfg, init = pretrained
    glue = write_sst2(tmp_path / "glue")
    bert = tmp_path / "bert"
    BertModel(BertConfig(vocab_size=5, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(bert)
    (bert / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    with pytest.raises(DataError, match=r"is not an autobert-zero model \(config.json model_type is 'bert'"):
        finetune(cfg, "sst2", glue, bert, tmp_path / "a")

    three = copy_of(init, tmp_path / "three")  # config.json now describes 3 layers; the weights hold 2
    config = json.loads((three / "config.json").read_text())
    layer = "attention vanilla\n"
    config["genotype"] = config["genotype"].replace(layer, layer + "  " + layer, 1)
    (three / "config.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match=r"weights do not match the genotype .*missing encoder\.layers\.2\."):
        finetune(cfg, "sst2", glue, three, tmp_path / "b")

    foreign = copy_of(init, tmp_path / "foreign")  # a 5-token tokenizer beside 512 embedding rows
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (foreign / name).unlink()
    BertTokenizer(vocab=str(bert / "vocab.txt")).save_pretrained(foreign)
    with pytest.raises(DataError, match=r"tokenizer has 5 tokens but the model's embedding has 512 rows"):
        finetune(cfg, "sst2", glue, foreign, tmp_path / "c")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (foreign / name).unlink(missing_ok=True)
    with pytest.raises(DataError, match=r"no loadable tokenizer"):
        finetune(cfg, "sst2", glue, foreign, tmp_path / "d")
    assert not any((tmp_path / name).exists() for name in "abcd")  # refused before any output folder exists


def test_non_empty_out_is_refused_and_force_keeps_other_files(pretrained: tuple[Config, Path],
                                                              tmp_path: Path) -> None:
    cfg, init = pretrained
    glue = write_sst2(tmp_path / "glue")
    out = tmp_path / "ft"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "eval.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"is not empty \(it holds eval.json, notes.txt\).*--force"):
        finetune(cfg, "sst2", glue, init, out)
    assert (out / "eval.json").read_text() == "{}"
    finetune(cfg, "sst2", glue, init, out, force=True)
    assert (out / "notes.txt").read_text() == "mine" and json.loads((out / "eval.json").read_text())["task"] == "SST-2"
