"""The one training loop (train/loop.py) and in-memory inputs: Genotype objects and prepared data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autobert_zero.config.load import batch_plan
from autobert_zero.grammar import load_genotype
from autobert_zero.train.data.order import StreamOrder
from autobert_zero.train.engine import build_engine, init_distributed
from autobert_zero.train.loop import LoopSettings, NonFiniteLoss, TrainLoop
from autobert_zero.train.mlm import PreparedMlm, mlm_step
from autobert_zero.train.models import build_mlm_model
from autobert_zero.train.pretrain import pretrain
from autobert_zero.train.run_log import RunLog, read_metrics
from tests.support.training import tiny_config, write_genotype


def tiny_engine(tmp: Path, prep: PreparedMlm) -> tuple[object, object]:
    cfg = tiny_config(tmp)
    init_distributed()
    plan = batch_plan(cfg, "pretrain", 1)
    assert prep.tokenizer.pad_token_id is not None
    model = build_mlm_model(load_genotype(write_genotype(tmp)), cfg.model, len(prep.tokenizer),
                            prep.tokenizer.pad_token_id, cfg.seed)
    engine = build_engine(model, cfg.deepspeed, plan, 1e-3, 0.0, 12, 2)
    order = StreamOrder(len(prep.data.train_blocks), cfg.seed)
    return engine, lambda step: mlm_step(engine, prep.data, order, plan, step, 0)


def test_loop_logs_every_n_steps_with_extra_fields(tmp: Path, prepared: PreparedMlm, tmp_path: Path) -> None:
    engine, step_fn = tiny_engine(tmp, prepared)
    settings = LoopSettings(stop=5, log_every=2, tokens_per_step=4 * 32)
    loop = TrainLoop(engine, step_fn, settings, record_fields=lambda step: {"candidate": f"c{step % 2}"})
    with RunLog(tmp_path, True, False) as log:
        result = loop.run(loop.begin(resume=False), log)
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [2, 4, 5]  # every 2 steps, and at the stop
    assert [r["candidate"] for r in records] == ["c0", "c0", "c1"]
    assert all(r["tokens_per_s"] > 0 for r in records)
    assert list(result.losses) == [1, 2, 3, 4, 5] and result.last_loss == records[-1]["loss"]


def test_non_finite_loss_stops_the_loop_naming_the_step(tmp: Path, prepared: PreparedMlm) -> None:
    engine, step_fn = tiny_engine(tmp, prepared)
    losses = iter([3.0, 2.5, float("nan"), 1.0])
    loop = TrainLoop(engine, lambda step: (step_fn(step), next(losses))[1], LoopSettings(stop=4))
    with pytest.raises(NonFiniteLoss, match="training loss is nan at step 3: the run diverged") as caught:
        loop.run()
    assert caught.value.step == 3


def test_checkpoint_every_needs_a_folder(tmp: Path, prepared: PreparedMlm) -> None:
    engine, step_fn = tiny_engine(tmp, prepared)
    with pytest.raises(ValueError, match="needs a checkpoints folder"):
        TrainLoop(engine, step_fn, LoopSettings(stop=2, checkpoint_every=1))


def test_genotype_object_and_prepared_data_give_the_file_run(tmp: Path, prepared: PreparedMlm,
                                                             tmp_path: Path) -> None:
    cfg = tiny_config(tmp)
    from_file = pretrain(cfg, tmp_path / "file", max_steps=3)
    genotype = load_genotype(write_genotype(tmp_path, layers=2))
    in_memory = pretrain(cfg, tmp_path / "memory", genotype=genotype, max_steps=3, prepared=prepared)
    assert in_memory["genotype_id"] == from_file["genotype_id"] == genotype.id
    assert in_memory["genotype"] is None  # no file behind it
    memory_losses, file_losses = ([r["loss"] for r in read_metrics(tmp_path / n)] for n in ("memory", "file"))
    assert memory_losses == file_losses
    saved = json.loads((tmp_path / "memory" / "final" / "config.json").read_text())
    assert saved["genotype"] == genotype.to_text()
