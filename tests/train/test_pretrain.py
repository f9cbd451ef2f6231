"""Masked-LM pre-training through real DeepSpeed: outputs, exact resume (stopped or SIGKILLed), errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from autobert_zero.config.schema import Config
from autobert_zero.errors import AbzError, ConfigError, GenotypeError, TrainingError
from autobert_zero.train import checkpoint
from autobert_zero.train.models import resolve_genotype
from autobert_zero.train.pretrain import pretrain
from autobert_zero.train.run_log import read_metrics
from tests.support.training import run_killed_while_checkpointing, tiny_config, with_section, write_genotype


def losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(out)}


def test_pretrain_writes_metrics_checkpoints_and_hf_folder(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, logging={"tensorboard": True})
    summary = pretrain(cfg, tmp_path / "out")
    out = tmp_path / "out"
    records = read_metrics(out)
    assert [r["step"] for r in records] == list(range(1, 13))
    assert all(r["loss"] > 0 and "lr" in r for r in records)
    assert records[-1]["loss"] < records[0]["loss"]
    assert summary["steps"] == 12 and summary["eval_loss"] is not None
    assert json.loads((out / "summary.json").read_text())["steps"] == 12
    assert checkpoint.read_latest(out / "checkpoints") == "step-00000012"
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*")) == [
        "step-00000004", "step-00000008", "step-00000012"]
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    model = AutoModelForMaskedLM.from_pretrained(out / "final")
    tokenizer = AutoTokenizer.from_pretrained(out / "final")
    assert model.config.vocab_size == len(tokenizer) == 512
    assert model(**tokenizer("the print statement", return_tensors="pt")).logits.shape[-1] == 512
    assert model.config.sparse_mlm_logits is False  # trained sparse, exported with the usual dense logits


def test_stopped_run_resumes_onto_the_same_loss_curve(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, pretrain={"micro_batch_size": 2, "gradient_accumulation_steps": 2},
                      deepspeed={"zero_optimization": {"stage": 1}, "steps_per_print": 10**9})
    pretrain(cfg, tmp_path / "whole")
    pretrain(cfg, tmp_path / "split", max_steps=5)  # checkpoint at 4 and at the stop, 5
    assert checkpoint.read_latest(tmp_path / "split" / "checkpoints") == "step-00000005"
    summary = pretrain(cfg, tmp_path / "split", resume=True)
    assert summary["resumed_from"] == 5
    assert losses(tmp_path / "split") == losses(tmp_path / "whole")  # exact, every step 1..12
    split = AutoModelForMaskedLM.from_pretrained(tmp_path / "split" / "final").state_dict()
    whole = AutoModelForMaskedLM.from_pretrained(tmp_path / "whole" / "final").state_dict()
    assert split.keys() == whole.keys() and all(torch.equal(split[k], whole[k]) for k in whole)  # bit for bit


def test_run_killed_while_checkpointing_resumes_exactly(tmp_path: Path) -> None:
    proc = run_killed_while_checkpointing(tmp_path, "autobert_zero.train.pretrain:pretrain")
    assert proc.returncode == -9, proc.stderr[-2000:]
    root = tmp_path / "killed" / "checkpoints"
    assert (root / ".tmp-step-00000008").is_dir()  # the interrupted checkpoint
    assert checkpoint.read_latest(root) == "step-00000004"  # the earlier one is intact and current
    assert max(losses(tmp_path / "killed")) == 8  # the killed run logged past its last checkpoint

    cfg = tiny_config(tmp_path)
    pretrain(cfg, tmp_path / "killed", resume=True)
    pretrain(cfg, tmp_path / "whole")
    resumed, whole = losses(tmp_path / "killed"), losses(tmp_path / "whole")
    assert list(resumed) == list(range(1, 13))
    for step in range(5, 13):
        assert resumed[step] == whole[step]  # bit for bit, as the README claims
    assert not (root / ".tmp-step-00000008").exists()  # swept by the next save


def test_bf16_zero2_run(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, deepspeed={"zero_optimization": {"stage": 2}, "bf16": {"enabled": True},
                                           "steps_per_print": 10**9})
    summary = pretrain(cfg, tmp_path / "out", max_steps=3)
    assert summary["steps"] == 3 and torch.isfinite(torch.tensor(summary["final_loss"]))
    weights = AutoModelForMaskedLM.from_pretrained(tmp_path / "out" / "final").dtype
    assert weights == torch.float32


def test_resume_and_restart_guards(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    with pytest.raises(TrainingError, match=r"--resume: .*fresh holds no earlier run to continue"):
        pretrain(cfg, tmp_path / "fresh", resume=True)
    pretrain(cfg, tmp_path / "out", max_steps=4)
    with pytest.raises(ConfigError, match=r"is not empty \(it holds checkpoints, config\.json.* pass --resume"):
        pretrain(cfg, tmp_path / "out")
    with pytest.raises(TrainingError, match=r"last checkpoint .* is at step 4, beyond --max-steps 2"):
        pretrain(cfg, tmp_path / "out", max_steps=2, resume=True)
    changed: Config = with_section(cfg, "pretrain", max_steps=20)
    with pytest.raises(TrainingError, match=r"config changed since the run started: pretrain\.max_steps 12 -> 20\. "):
        pretrain(changed, tmp_path / "out", resume=True)
    with pytest.raises(ConfigError, match=r"--max-steps 13 must be in 1..pretrain.max_steps = 12"):
        pretrain(cfg, tmp_path / "other", max_steps=13)


def test_bad_genotype_and_corpus_inputs(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    with pytest.raises(GenotypeError, match="genotype file not found"):
        pretrain(cfg, tmp_path / "a", genotype=str(tmp_path / "missing.abz"))
    assert cfg.genotype == str(tmp_path / "bert2.abz")  # the caller's config is left as it was
    three = write_genotype(tmp_path, layers=3)
    assert resolve_genotype(cfg, three).num_layers == 3 and resolve_genotype(cfg).num_layers == 2
    assert cfg.genotype == str(tmp_path / "bert2.abz")
    bad = tmp_path / "bad.abz"
    bad.write_text("attention a { return matmul(Q, K) }\nbackbone { attention a }\n")
    with pytest.raises(GenotypeError):
        pretrain(cfg, tmp_path / "b", genotype=str(bad))
    (tmp_path / "blank.txt").write_text("\n\n")
    with pytest.raises(AbzError, match="holds no text"):
        pretrain(cfg, tmp_path / "c", corpus=str(tmp_path / "blank.txt"))
