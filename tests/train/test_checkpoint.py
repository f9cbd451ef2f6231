"""Resume runs no code from a checkpoint, continues only the same run, survives damage.

One tiny run (8 of 12 steps, checkpoints at 4 and 8) is copied for each test and then tampered with.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from autobert_zero.config.schema import Config
from autobert_zero.errors import TrainingError
from autobert_zero.train import checkpoint
from autobert_zero.train.pretrain import pretrain
from autobert_zero.train.run_log import read_metrics
from tests.support.payloads import MODEL_FILE, Payload, damage
from tests.support.training import VANILLA, tiny_config, with_section


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Path]:
    tmp = tmp_path_factory.mktemp("stopped")
    cfg = tiny_config(tmp)
    pretrain(cfg, tmp / "run", max_steps=8)
    return cfg, tmp / "run"


def copy_run(stopped: tuple[Config, Path], tmp_path: Path) -> tuple[Config, Path]:
    cfg, run = stopped
    shutil.copytree(run, tmp_path / "run")
    return cfg, tmp_path / "run"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}




def test_planted_reduce_payload_is_refused_and_never_run(stopped: tuple[Config, Path], tmp_path: Path) -> None:
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
def test_every_kind_of_damage_fails_verification(stopped: tuple[Config, Path], tmp_path: Path,
                                                 how: str) -> None:
    _, run = copy_run(stopped, tmp_path)
    folder = run / "checkpoints" / "step-00000008"
    assert checkpoint.verify_checkpoint(folder) is None
    damage(folder, how)
    assert checkpoint.verify_checkpoint(folder) is not None


def test_damaged_newest_falls_back_and_partial_metrics_line_is_dropped(
        stopped: tuple[Config, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    cfg, run = copy_run(stopped, tmp_path)
    damage(run / "checkpoints" / "step-00000008", "truncated .pt")
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 9, "lo')  # a kill mid-line
    summary = pretrain(cfg, run, resume=True)
    assert "skipped damaged checkpoint(s) step-00000008" in capfd.readouterr().err
    assert summary["resumed_from"] == 4 and summary["steps"] == 12
    assert [r["step"] for r in read_metrics(run)] == list(range(1, 13))
    assert checkpoint.verify_checkpoint(run / "checkpoints" / "step-00000008") is None  # rewritten whole


def test_all_checkpoints_damaged_is_refused_and_changes_nothing(stopped: tuple[Config, Path],
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


def test_resume_refuses_another_run_naming_what_changed(stopped: tuple[Config, Path], tmp_path: Path) -> None:
    cfg, run = copy_run(stopped, tmp_path)
    before = snapshot(run)
    same_shapes = genotype_file(tmp_path, "matmul(K, transpose(Q))")  # K·Qᵀ: the same weight shapes as Q·Kᵀ
    with pytest.raises(TrainingError, match=r"config changed since the run started: genotype_id '"):
        pretrain(cfg, run, genotype=str(same_shapes), resume=True)
    other_shapes = genotype_file(tmp_path, "matmul(Q, transpose(K))", layers=3)
    with pytest.raises(TrainingError, match=r"config changed since the run started: genotype_id '.*' -> '"):
        pretrain(cfg, run, genotype=str(other_shapes), resume=True)
    with pytest.raises(TrainingError, match=r"vocab_sha256 .*; vocab_size 512 -> 600; .*data\.vocab_size 512 -> 600"):
        pretrain(with_section(cfg, "data", vocab_size=600), run, resume=True)
    with pytest.raises(TrainingError, match=r"model\.hidden_dropout_prob 0\.1 -> 0\.2"):
        pretrain(with_section(cfg, "model", hidden_dropout_prob=0.2), run, resume=True)
    with pytest.raises(TrainingError, match=r"pretrain\.lr 0\.001 -> 0\.002"):
        pretrain(with_section(cfg, "pretrain", lr=2e-3), run, resume=True)
    assert snapshot(run) == before


def test_resuming_a_finished_run_says_so_and_changes_nothing(stopped: tuple[Config, Path], tmp_path: Path,
                                                             capfd: pytest.CaptureFixture[str]) -> None:
    cfg, run = copy_run(stopped, tmp_path)
    first = json.loads((run / "summary.json").read_text())
    before = snapshot(run)
    again = pretrain(cfg, run, max_steps=8, resume=True)
    assert "already finished at step 8" in capfd.readouterr().err
    assert again == first and snapshot(run) == before


def edit_json(path: Path, how: str) -> None:
    """Hand-edit one checkpoint JSON file the way a user (or a bad tool) might."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if how == "rng python state cut":
        data["python"][1] = data["python"][1][:10]
    elif how == "rng torch state not base64":
        data["torch"] = "not base64!"
    elif how == "rng numpy position out of range":
        data["numpy"][2] = 10**6
    elif how == "state step of another folder":
        data["step"] += 1
    elif how == "state step a string":
        data["step"] = str(data["step"])
    if how == "state deeply nested":
        path.write_text('{"step": 8, "x": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    else:
        path.write_text(json.dumps(data), encoding="utf-8")


HAND_EDITS = {"rng python state cut": "rng-rank0.json", "rng torch state not base64": "rng-rank0.json",
              "rng numpy position out of range": "rng-rank0.json", "state step of another folder": "trainer_state.json",
              "state step a string": "trainer_state.json", "state deeply nested": "trainer_state.json"}


@pytest.mark.parametrize("how", list(HAND_EDITS))
def test_hand_edited_checkpoint_json_with_a_recomputed_manifest_is_refused_naming_the_file(
        stopped: tuple[Config, Path], tmp_path: Path, how: str) -> None:
    cfg, run = copy_run(stopped, tmp_path)
    name = HAND_EDITS[how]
    for tag in ("step-00000004", "step-00000008"):
        folder = run / "checkpoints" / tag
        edit_json(folder / name, how)
        checkpoint.write_manifest(folder)  # the editor recomputed the manifest: only the schema can tell
        assert name in (checkpoint.verify_checkpoint(folder) or "")
    before = snapshot(run)
    with pytest.raises(TrainingError, match=rf"no checkpoint .* verifies: step-00000008 \({name}: .*"):
        pretrain(cfg, run, resume=True)
    assert snapshot(run) == before


def test_resume_compares_the_whole_config_and_lets_only_exempt_keys_change(stopped: tuple[Config, Path],
                                                                            tmp_path: Path) -> None:
    cfg, run = copy_run(stopped, tmp_path)
    before = snapshot(run)
    same_batch = with_section(cfg, "pretrain", micro_batch_size=2, gradient_accumulation_steps=2)  # still 4 a step
    with pytest.raises(TrainingError, match=r"config changed since the run started: pretrain\.micro_batch_size 4 "
                                            r"-> 2; pretrain\.gradient_accumulation_steps 1 -> 2\. "):
        pretrain(same_batch, run, resume=True)
    with pytest.raises(TrainingError, match=r"deepspeed\.zero_optimization\.stage 0 -> 1"):
        pretrain(dataclasses.replace(cfg, deepspeed={**cfg.deepspeed, "zero_optimization": {"stage": 1}}), run,
                 resume=True)
    assert snapshot(run) == before
    exempt = with_section(with_section(cfg, "logging", log_every=2), "pretrain", checkpoint_every=2)
    exempt = with_section(exempt, "finetune", lr=1.0)
    assert pretrain(exempt, run, resume=True)["steps"] == 12  # logging, checkpoints, other commands' keys


def test_resume_after_a_kill_past_the_last_checkpoint_finishes_cleanly(stopped: tuple[Config, Path],
                                                                       tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from autobert_zero.cli import main
    from tests.support.training import tiny_yaml

    _, run = copy_run(stopped, tmp_path)
    logged = read_metrics(run)[-1]
    shutil.rmtree(run / "final")  # killed while exporting, after the checkpoint of its last step
    (run / "summary.json").unlink()
    (tmp_path / "yaml").mkdir()
    config = tiny_yaml(tmp_path / "yaml", data={"tokenizer_cache_dir": str(stopped[1].parent / "tokenizers")})
    assert main(["pretrain", "--config", str(config), "--out", str(run), "--max-steps", "8", "--resume"]) == 0
    out = capsys.readouterr().out
    assert f"pre-trained 8 steps; final loss {logged['loss']:.4f}" in out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final_loss"] == logged["loss"] and summary["resumed_from"] == 8
    assert (run / "final" / "model.safetensors").is_file()
