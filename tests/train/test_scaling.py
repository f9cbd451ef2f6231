"""Scaling pre-training up on one process (the multi-process forms are in `test_launcher.py`): ZeRO-3 for
`abz pretrain` and `abz finetune` (its export gathers the partitioned weights; checkpoints resume exactly),
refused for the supernet naming the stages that work; activation checkpointing (`model.gradient_checkpointing`)
with unchanged losses; bf16 on DeepSpeed's CPU accelerator with a float32 export; a rendezvous port in use as
a clear error within seconds.

ZeRO-3 keeps weights below `stage3_param_persistence_threshold` (10⁵ elements by default, i.e. every weight of
the test model) whole on every rank, so the tests set it to 0: every weight is then really partitioned."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.utils.checkpoint
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM

from autobert_zero.config.schema import Config, ModelSizes
from autobert_zero.errors import ConfigError
from autobert_zero.train import mlm
from autobert_zero.train.evaluate import Evaluator
from autobert_zero.train.finetune import finetune
from autobert_zero.train.models import build_mlm_model
from autobert_zero.train.pretrain import pretrain
from autobert_zero.train.run_log import read_metrics
from autobert_zero.train.supernet import train_supernet
from tests.support.glue import write_sst2
from tests.support.training import REPO, VANILLA, subprocess_env, tiny_config, tiny_yaml

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def zero(stage: int, **extra: Any) -> dict[str, Any]:
    section: dict[str, Any] = {"stage": stage}
    if stage == 3:
        section["stage3_param_persistence_threshold"] = 0  # partition every weight, however small
    return {"zero_optimization": section, "gradient_clipping": 1.0, "steps_per_print": 10**9, **extra}


def losses(folder: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(folder)]


def test_zero3_pretrain_exports_the_gathered_weights_of_a_zero0_run(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """eval_blocks 0: no held-out forward runs before the export (in eval mode it leaves the weights gathered),
    so the export itself must gather them."""
    statuses: list[str] = []
    original = mlm.full_weights

    def spy(engine: Any) -> Any:
        statuses.extend(str(getattr(p, "ds_status", "whole")) for p in engine.module.parameters())
        return original(engine)

    monkeypatch.setattr(mlm, "full_weights", spy)
    runs = {}
    for stage in (0, 3):
        cfg = tiny_config(tmp_path, model=NO_DROPOUT, data={"eval_blocks": 0}, deepspeed=zero(stage))
        runs[stage] = pretrain(cfg, tmp_path / f"zero{stage}", max_steps=6)
    assert statuses.count("whole") == len(statuses) // 2  # the ZeRO-0 run
    assert set(statuses) == {"whole", "ZeroParamStatus.NOT_AVAILABLE"}  # ZeRO-3: every weight partitioned
    assert runs[3]["num_parameters"] == runs[0]["num_parameters"] > 0
    assert losses(tmp_path / "zero3") == pytest.approx(losses(tmp_path / "zero0"), rel=1e-5)
    zero0, zero3 = (load_file(tmp_path / f"zero{s}" / "final" / "model.safetensors") for s in (0, 3))
    assert zero3.keys() == zero0.keys()
    for name, tensor in zero0.items():
        assert zero3[name].shape == tensor.shape and zero3[name].dtype == torch.float32, name
        torch.testing.assert_close(zero3[name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path / "zero3" / "final")
    assert all(torch.isfinite(p).all() and p.numel() > 0 for p in loaded.parameters())


def test_zero3_stopped_and_resumed_equals_uninterrupted(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, deepspeed=zero(3))  # dropout on: the RNG states come back too
    pretrain(cfg, tmp_path / "whole")
    pretrain(cfg, tmp_path / "split", max_steps=5)
    names = sorted(p.name for p in (tmp_path / "split" / "checkpoints" / "step-00000005").iterdir())
    assert "zero_pp_rank_0_mp_rank_00_model_states.pt" in names and "zero_pp_rank_0_mp_rank_00_optim_states.pt" in names
    pretrain(cfg, tmp_path / "split", resume=True)
    split = {r["step"]: r["loss"] for r in read_metrics(tmp_path / "split")}
    assert list(split) == list(range(1, 13))
    assert [split[s] for s in range(6, 13)] == losses(tmp_path / "whole")[5:]  # bit for bit


def test_zero3_finetune_matches_zero0(tmp_path: Path) -> None:
    base = tiny_config(tmp_path, model=NO_DROPOUT)
    pretrain(base, tmp_path / "pre", max_steps=2)
    glue = write_sst2(tmp_path / "glue")
    results = {}
    for stage in (0, 3):
        cfg = dataclasses.replace(base, deepspeed=zero(stage))
        results[stage] = finetune(cfg, "sst2", glue, tmp_path / "pre" / "final", tmp_path / f"ft{stage}")
    assert results[3]["metrics"] == results[0]["metrics"]
    assert losses(tmp_path / "ft3") == pytest.approx(losses(tmp_path / "ft0"), rel=1e-5)


def test_zero3_is_refused_for_the_supernet_naming_the_stages_that_work(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, deepspeed=zero(3))
    with pytest.raises(ConfigError, match=r"stage = 3 \(ZeRO-3\) is supported by `abz pretrain` and `abz finetune` "
                                          r"only, not by `abz supernet`.*use stage 0, 1 or 2"):
        train_supernet(cfg, tmp_path / "supernet")
    assert not (tmp_path / "supernet").exists()
    with pytest.raises(ConfigError, match=r"not by candidate evaluation \(`abz evaluate`, `abz search`, `abz audit`"):
        Evaluator(cfg)  # before any data: else every candidate would fail on it, one by one
    with pytest.raises(ConfigError, match=r"expected 0, 1, 2 or 3"):
        tiny_config(tmp_path, deepspeed={"zero_optimization": {"stage": 4}})


def test_gradient_checkpointing_gives_the_same_losses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = torch.utils.checkpoint.checkpoint

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", counting)
    plain = tiny_config(tmp_path)  # dropout on: torch.utils.checkpoint replays the RNG in the recomputation
    checkpointed = tiny_config(tmp_path, model={"gradient_checkpointing": True})
    pretrain(plain, tmp_path / "plain", max_steps=4)
    assert not calls
    pretrain(checkpointed, tmp_path / "checkpointed", max_steps=4)
    assert len(calls) == 4 * 2  # every step, each of the 2 layers (none in the held-out evaluation)
    assert losses(tmp_path / "checkpointed") == pytest.approx(losses(tmp_path / "plain"), rel=1e-6, abs=1e-7)
    torch.testing.assert_close(load_file(tmp_path / "checkpointed" / "final" / "model.safetensors"),
                               load_file(tmp_path / "plain" / "final" / "model.safetensors"), rtol=1e-5, atol=1e-6)
    saved = json.loads((tmp_path / "checkpointed" / "final" / "config.json").read_text())
    assert "gradient_checkpointing" not in saved  # training only: the export is the plain model
    # memory, not results: a run may resume with it switched
    assert "model.gradient_checkpointing" not in mlm.config_identity(checkpointed, "pretrain")


@pytest.mark.parametrize("stage", [0, 3])
def test_bf16_runs_on_the_cpu_accelerator_and_exports_float32(tmp_path: Path, stage: int) -> None:
    cfg: Config = tiny_config(tmp_path, deepspeed=zero(stage, bf16={"enabled": True}))
    summary = pretrain(cfg, tmp_path / "out", max_steps=3)
    assert len(losses(tmp_path / "out")) == 3 and all(map(torch.isfinite, torch.tensor(losses(tmp_path / "out"))))
    weights = load_file(tmp_path / "out" / "final" / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float32} and summary["num_parameters"] == sum(
        t.numel() for name, t in weights.items() if name != "cls.predictions.decoder.weight")
    assert AutoModelForMaskedLM.from_pretrained(tmp_path / "out" / "final").dtype == torch.float32


def test_a_rendezvous_port_in_use_is_a_clear_error_within_seconds(tmp_path: Path) -> None:
    config = tiny_yaml(tmp_path)
    with socket.socket() as held:  # another job's rendezvous store, say
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "autobert_zero.cli", "pretrain", "--config", str(config),
                               "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True,
                              env=subprocess_env(MASTER_PORT=str(port)), timeout=120)
        seconds = time.monotonic() - start
    err = " ".join(proc.stderr.split())
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert f"abz pretrain: error: the rendezvous port MASTER_PORT={port} on 127.0.0.1 is already in use" in err
    assert "--master_port" in err and "Traceback" not in err
    assert seconds < 60  # the import of deepspeed and torch is most of it


def test_the_transformers_switch_reaches_the_encoder_too() -> None:
    """`supports_gradient_checkpointing`: `model.gradient_checkpointing_enable()` (transformers' API, e.g. from
    its Trainer) sets the same flag, and a step's gradients stay the same."""
    sizes = ModelSizes(hidden_size=32, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    genotype = VANILLA + "backbone {\n  attention vanilla\n  attention vanilla\n}\n"
    ids = torch.randint(1, 100, (2, 16), generator=torch.Generator().manual_seed(0))
    labels = ids.masked_fill(torch.arange(16) % 2 == 0, -100)
    grads = []
    for enable in (False, True):
        model = build_mlm_model(genotype, sizes, 100, 0).train()
        if enable:
            with warnings.catch_warnings():  # transformers 5 renames it activation_checkpointing_enable
                warnings.simplefilter("ignore")
                model.gradient_checkpointing_enable()
            assert model.autobert.encoder.gradient_checkpointing
        model(input_ids=ids, labels=labels).loss.backward()
        grads.append([p.grad for p in model.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) > 0
    for plain, checkpointed in zip(*grads, strict=True):
        torch.testing.assert_close(checkpointed, plain, rtol=1e-5, atol=1e-7)
