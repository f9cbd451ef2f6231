"""Resume runs no code from a checkpoint, continues only the same run, survives damage.

One tiny run (8 of 12 steps, checkpoints at 4 and 8) is copied for each test and then tampered with.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from autobert_zero.config.schema import TrainConfig
from autobert_zero.errors import TrainingError
from autobert_zero.train import checkpoint
from autobert_zero.train.pretrain import pretrain
from autobert_zero.train.run_log import read_metrics
from tests.support.payloads import MODEL_FILE, Payload, damage
from tests.support.training import VANILLA, tiny_config, with_section


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainConfig, Path]:
    tmp = tmp_path_factory.mktemp("stopped")
    cfg = tiny_config(tmp)
    pretrain(cfg, tmp / "run", max_steps=8)
    return cfg, tmp / "run"


def copy_run(stopped: tuple[TrainConfig, Path], tmp_path: Path) -> tuple[TrainConfig, Path]:
    cfg, run = stopped
    shutil.copytree(run, tmp_path / "run")
    return cfg, tmp_path / "run"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}




def test_planted_reduce_payload_is_refused_and_never_run(stopped: tuple[TrainConfig, Path], tmp_path: Path) -> None:
    cfg, run = copy_run(stopped, tmp_path)
    live = tmp_path / "proof.pt"
    torch.save({"module": Payload(tmp_path / "ran-when-unrestricted")}, live)
    torch.load(live, weights_only=False)  # the payload is real: an unrestricted load runs it
    assert (tmp_path / "ran-when-unrestricted").is_dir()

    marker = tmp_path / "ran-during-resume"
    for tag in ("step-00000004", "step-00000008"):  # an attacker rewrites the manifest too
        torch.save({"module": Payload(marker)}, run / "checkpoints" / tag / MODEL_FILE)
        checkpoint.write_manifest(run / "checkpoints" / tag)
    before = snapshot(run)
    refused = r"no checkpoint .* verifies: .*torch\.load\(weights_only=True\): .*unsupported GLOBAL os\.makedirs"
    with pytest.raises(TrainingError, match=refused) as info:
        pretrain(cfg, run, resume=True)
    assert "weights_only` set to `False`" not in str(info.value)  # no advice to load it unsafely
    assert not marker.exists()
    assert snapshot(run) == before




DAMAGES = ["truncated .pt", "empty .pt", "missing .pt", "empty state", "truncated rng", "no manifest",
           "garbage manifest", "unlisted file"]


@pytest.mark.parametrize("how", DAMAGES)
def test_every_kind_of_damage_fails_verification(stopped: tuple[TrainConfig, Path], tmp_path: Path,
                                                 how: str) -> None:
    _, run = copy_run(stopped, tmp_path)
    folder = run / "checkpoints" / "step-00000008"
    assert checkpoint.verify_checkpoint(folder) is None
    damage(folder, how)
    assert checkpoint.verify_checkpoint(folder) is not None


def test_damaged_newest_falls_back_and_partial_metrics_line_is_dropped(
        stopped: tuple[TrainConfig, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    cfg, run = copy_run(stopped, tmp_path)
    damage(run / "checkpoints" / "step-00000008", "truncated .pt")
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 9, "lo')  # a kill mid-line
    summary = pretrain(cfg, run, resume=True)
    assert "skipped damaged checkpoint(s) step-00000008" in capfd.readouterr().err
    assert summary["resumed_from"] == 4 and summary["steps"] == 12
    assert [r["step"] for r in read_metrics(run)] == list(range(1, 13))
    assert checkpoint.verify_checkpoint(run / "checkpoints" / "step-00000008") is None  # rewritten whole


def test_all_checkpoints_damaged_is_refused_and_changes_nothing(stopped: tuple[TrainConfig, Path],
                                                                 tmp_path: Path) -> None:
    cfg, run = copy_run(stopped, tmp_path)
    damage(run / "checkpoints" / "step-00000004", "empty .pt")
    damage(run / "checkpoints" / "step-00000008", "empty state")
    (run / "checkpoints" / "latest").write_text("")  # a damaged pointer too
    before = snapshot(run)
    with pytest.raises(TrainingError, match=r"no checkpoint .* verifies: step-00000008 \(.*\); step-00000004"):
        pretrain(cfg, run, resume=True)
    assert snapshot(run) == before


def genotype_file(folder: Path, core: str, layers: int = 2) -> Path:
    path = folder / f"g{layers}.abz"
    attention = VANILLA.replace("matmul(Q, transpose(K))", core)
    path.write_text(attention + "backbone {\n" + "  attention vanilla\n" * layers + "}\n", encoding="utf-8")
    return path


def test_resume_refuses_another_run_naming_what_changed(stopped: tuple[TrainConfig, Path], tmp_path: Path) -> None:
    cfg, run = copy_run(stopped, tmp_path)
    before = snapshot(run)
    same_shapes = genotype_file(tmp_path, "matmul(K, transpose(Q))")  # K·Qᵀ: the same weight shapes as Q·Kᵀ
    with pytest.raises(TrainingError, match=r"different settings \(genotype_id: checkpoint '"):
        pretrain(cfg, run, genotype_path=str(same_shapes), resume=True)
    other_shapes = genotype_file(tmp_path, "matmul(Q, transpose(K))", layers=3)
    with pytest.raises(TrainingError, match=r"different settings \(genotype_id: .*\)"):
        pretrain(cfg, run, genotype_path=str(other_shapes), resume=True)
    with pytest.raises(TrainingError, match=r"vocab_sha256: .*vocab_size: checkpoint 512, now 600"):
        pretrain(with_section(cfg, "data", vocab_size=600), run, resume=True)
    with pytest.raises(TrainingError, match=r"model\.hidden_dropout_prob: checkpoint 0\.1, now 0\.2"):
        pretrain(with_section(cfg, "model", hidden_dropout_prob=0.2), run, resume=True)
    with pytest.raises(TrainingError, match=r"schedule\.lr: checkpoint 0\.001, now 0\.002"):
        pretrain(with_section(cfg, "pretrain", lr=2e-3), run, resume=True)
    assert snapshot(run) == before


def test_resuming_a_finished_run_says_so_and_changes_nothing(stopped: tuple[TrainConfig, Path], tmp_path: Path,
                                                             capfd: pytest.CaptureFixture[str]) -> None:
    cfg, run = copy_run(stopped, tmp_path)
    first = json.loads((run / "summary.json").read_text())
    before = snapshot(run)
    again = pretrain(cfg, run, max_steps=8, resume=True)
    assert "already finished at step 8" in capfd.readouterr().err
    assert again == first and snapshot(run) == before
