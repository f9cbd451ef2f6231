"""Two processes under the `deepspeed` launcher (gloo on CPU): ZeRO 0–2 train, and the loss curve equals
that of one process accumulating the same global batch.

The command the README documents (here with a free port and a microscopic config):

    OMP_NUM_THREADS=1 deepspeed --num_gpus 2 --no_local_rank --module autobert_zero.cli \\
        pretrain --config configs/tiny.yaml --out runs/tiny-2p
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autobert_zero.train.engine import free_port
from autobert_zero.train.pretrain import pretrain
from autobert_zero.train.run_log import read_metrics
from tests.support.training import REPO, subprocess_env, tiny_config, tiny_yaml

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def deepspeed_command(config: Path, out: Path) -> list[str]:
    launcher = shutil.which("deepspeed") or str(Path(sys.executable).with_name("deepspeed"))
    return [launcher, "--num_gpus", "2", "--master_port", str(free_port()), "--no_local_rank",
            "--module", "autobert_zero.cli", "pretrain", "--config", str(config), "--out", str(out)]


@pytest.mark.parametrize("stage", [pytest.param(0, marks=pytest.mark.slow), pytest.param(1, marks=pytest.mark.slow), 2])
def test_two_processes_match_one_process_with_accumulation(tmp_path: Path, stage: int) -> None:
    ds = {"zero_optimization": {"stage": stage}, "gradient_clipping": 1.0, "steps_per_print": 10**9}
    config = tiny_yaml(tmp_path, model=NO_DROPOUT, pretrain={"micro_batch_size": 2, "gradient_accumulation_steps": 2},
                       deepspeed=ds)
    proc = subprocess.run(deepspeed_command(config, tmp_path / "two"), cwd=REPO, capture_output=True, text=True,
                          env=subprocess_env(OMP_NUM_THREADS="1"), timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["train_batch_size"] == 8
    assert (tmp_path / "two" / "final" / "model.safetensors").is_file()
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints" / "step-00000012").glob("*")) == sorted(
        ["manifest.json", "mp_rank_00_model_states.pt", "rng-rank0.json", "rng-rank1.json",
             "trainer_state.json"]
        + ([f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in (0, 1)] if stage else []))

    # One process, same global batch of 8 as 2 micro-batches × 4 accumulation steps: the same blocks and
    # the same masks reach the model in the same step, so only float summation order differs.
    one = tiny_config(tmp_path, model=NO_DROPOUT, pretrain={"micro_batch_size": 2, "gradient_accumulation_steps": 4},
                      deepspeed=ds)
    pretrain(one, tmp_path / "one")
    two_losses = [r["loss"] for r in read_metrics(tmp_path / "two")]
    one_losses = [r["loss"] for r in read_metrics(tmp_path / "one")]
    assert len(two_losses) == len(one_losses) == 12
    assert two_losses == pytest.approx(one_losses, rel=1e-4)


@pytest.mark.slow
def test_two_process_run_stopped_and_resumed_equals_uninterrupted(tmp_path: Path) -> None:
    ds = {"zero_optimization": {"stage": 2}, "steps_per_print": 10**9}
    config = tiny_yaml(tmp_path, pretrain={"micro_batch_size": 2}, deepspeed=ds)  # dropout on: RNG per rank
    for out, extra in (("whole", []), ("split", ["--max-steps", "5"]), ("split", ["--resume"])):
        proc = subprocess.run(deepspeed_command(config, tmp_path / out) + extra, cwd=REPO, capture_output=True,
                              text=True, env=subprocess_env(OMP_NUM_THREADS="1"), timeout=300)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    split, whole = ([(r["step"], r["loss"]) for r in read_metrics(tmp_path / name)] for name in ("split", "whole"))
    assert [s for s, _ in split] == list(range(1, 13))
    assert [loss for _, loss in split] == pytest.approx([loss for _, loss in whole], abs=1e-6)
