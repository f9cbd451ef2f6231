"""Two processes under the `deepspeed` launcher (gloo on CPU): ZeRO 0–3 train, and the loss curve equals
that of one process accumulating the same global batch; two "nodes" on this machine (slow).

The command the README documents (here with a free port and a microscopic config):

    OMP_NUM_THREADS=1 deepspeed --num_gpus 2 --no_local_rank --module autobert_zero.cli \\
        pretrain --config configs/tiny.yaml --out runs/tiny-2p
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from autobert_zero.train import launch
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


# --- two "nodes" on this machine ------------------------------------------------------------------------

PROBE = """
import json, os, sys
import torch, torch.distributed as dist
from autobert_zero.train.engine import init_distributed
rank, world = init_distributed()
total = torch.tensor([float(rank + 1)])
dist.all_reduce(total)
seen = {k: os.environ.get(k) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "CROSS_RANK", "GROUP_RANK")}
with open(os.path.join(sys.argv[-1], f"rank{rank}.json"), "w") as f:
    json.dump({**seen, "rank": rank, "world": world, "sum": float(total), "backend": dist.get_backend()}, f)
dist.barrier()
"""


def executable(name: str) -> str:
    return shutil.which(name) or str(Path(sys.executable).with_name(name))


def run_together(commands: Sequence[list[str]], timeout: float = 300) -> list[subprocess.CompletedProcess[str]]:
    """Run the commands at the same time (as on separate nodes), each in its own session; on a timeout every
    one of them (and what it started) is killed by its session id."""
    procs = [subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(OMP_NUM_THREADS="1"), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True) for cmd in commands]
    deadline = time.monotonic() + timeout
    done = []
    try:
        for proc, cmd in zip(procs, commands, strict=True):
            out, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            done.append(subprocess.CompletedProcess(cmd, proc.returncode, out, ""))
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return done


def two_nodes(tmp_path: Path) -> Path:
    """A hostfile of two nodes of one slot each. With --no_ssh DeepSpeed never resolves or contacts the names:
    they only key its world info (node rank = line order), so names that resolve nowhere work."""
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("node-a slots=1\nnode-b slots=1\n", encoding="utf-8")
    return hostfile


@pytest.fixture
def one_process_reference(tmp_path: Path) -> list[float]:
    """Losses of one process at a global batch of 8 (4 blocks × 2 accumulation steps), dropout 0."""
    cfg = tiny_config(tmp_path, model=NO_DROPOUT, pretrain={"gradient_accumulation_steps": 2})
    pretrain(cfg, tmp_path / "one")
    return [r["loss"] for r in read_metrics(tmp_path / "one")]


@pytest.mark.slow
def test_two_nodes_without_ssh_form_one_world_and_match_one_process(tmp_path: Path,
                                                                    one_process_reference: list[float]) -> None:
    """Two `deepspeed --hostfile H --no_ssh --node_rank r` launchers, as one would start them on two machines.

    What this cannot prove: NCCL (gloo on CPU here), the ssh/pdsh fan-out of a single `deepspeed --hostfile`
    (no sshd here), a master address other than loopback and a network between hosts, and separate
    filesystems (both "nodes" share this disk: on real nodes --out must be on a shared filesystem, or each
    node's rank-0-only files land on node 0's disk alone)."""
    hostfile = two_nodes(tmp_path)
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE, encoding="utf-8")
    port = free_port()
    node = [executable("deepspeed"), "--hostfile", str(hostfile), "--no_ssh", "--master_addr", "127.0.0.1",
            "--master_port", str(port), "--no_local_rank"]
    done = run_together([[*node, "--node_rank", str(r), str(probe), str(tmp_path)] for r in (0, 1)])
    assert [p.returncode for p in done] == [0, 0], "\n".join(p.stdout[-2000:] for p in done)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [(r["rank"], r["world"], r["CROSS_RANK"], r["LOCAL_RANK"]) for r in ranks] == [(0, 2, "0", "0"),
                                                                                         (1, 2, "1", "0")]
    assert [r["sum"] for r in ranks] == [3.0, 3.0] and {r["backend"] for r in ranks} == {"gloo"}

    config = tiny_yaml(tmp_path, model=NO_DROPOUT)  # 4 blocks × 1 step × 2 nodes = 8
    port = free_port()
    args = ["pretrain", "--config", str(config), "--out", str(tmp_path / "two")]
    commands = [launch.deepspeed_command(args, hostfile=hostfile, node_rank=r, master_addr="127.0.0.1",
                                         master_port=port, executable=executable("deepspeed")) for r in (0, 1)]
    done = run_together(commands)
    assert [p.returncode for p in done] == [0, 0], "\n".join(p.stdout[-3000:] for p in done)
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert (summary["world_size"], summary["train_batch_size"]) == (2, 8)
    two = [r["loss"] for r in read_metrics(tmp_path / "two")]
    assert len(two) == len(one_process_reference) == 12
    assert two == pytest.approx(one_process_reference, abs=1e-4)


@pytest.mark.slow
def test_two_torchrun_nodes_match_one_process(tmp_path: Path, one_process_reference: list[float]) -> None:
    """`torchrun --nnodes 2 --node_rank r` (static rendezvous served by node 0's torchrun at the master port):
    abz reads RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT as under deepspeed. Same limits as above."""
    config = tiny_yaml(tmp_path, model=NO_DROPOUT)
    port = free_port()
    args = ["pretrain", "--config", str(config), "--out", str(tmp_path / "two")]
    done = run_together([launch.torchrun_command(args, nnodes=2, node_rank=r, nproc_per_node=1, master_port=port,
                                                 executable=executable("torchrun")) for r in (0, 1)])
    assert [p.returncode for p in done] == [0, 0], "\n".join(p.stdout[-3000:] for p in done)
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert (summary["world_size"], summary["train_batch_size"]) == (2, 8)
    assert [r["loss"] for r in read_metrics(tmp_path / "two")] == pytest.approx(one_process_reference, abs=1e-4)


@pytest.mark.slow
def test_zero3_on_two_processes_resumes_and_exports_the_whole_model(tmp_path: Path,
                                                                    one_process_reference: list[float]) -> None:
    """ZeRO-3 over 2 processes (every weight split in halves: persistence threshold 0), stopped at step 5
    and resumed: the losses of one ZeRO-0 process, and an export that holds every weight whole."""
    ds = {"zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0}, "gradient_clipping": 1.0,
          "steps_per_print": 10**9}
    config = tiny_yaml(tmp_path, model=NO_DROPOUT, deepspeed=ds)
    for extra in (["--max-steps", "5"], ["--resume"]):
        proc = subprocess.run(deepspeed_command(config, tmp_path / "two") + extra, cwd=REPO, capture_output=True,
                              text=True, env=subprocess_env(OMP_NUM_THREADS="1"), timeout=300)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert {p.name for p in (tmp_path / "two" / "checkpoints" / "step-00000005").glob("zero_pp_rank_*")} == {
        f"zero_pp_rank_{r}_mp_rank_00_{kind}_states.pt" for r in (0, 1) for kind in ("model", "optim")}
    split = [r["loss"] for r in read_metrics(tmp_path / "two")]
    assert split == pytest.approx(one_process_reference, abs=1e-4)
    two, one = (load_file(tmp_path / name / "final" / "model.safetensors") for name in ("two", "one"))
    assert two.keys() == one.keys()
    for name, tensor in one.items():
        torch.testing.assert_close(two[name], tensor, rtol=1e-3, atol=1e-4, msg=name)


@pytest.mark.slow
def test_a_master_port_in_use_fails_the_launch_quickly(tmp_path: Path) -> None:
    """Two jobs on one node with the same --master_port: the second one's rank 0 cannot listen, says so, and the
    launcher takes its other rank down with it instead of leaving it waiting for a rendezvous."""
    config = tiny_yaml(tmp_path)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        command = launch.deepspeed_command(["pretrain", "--config", str(config), "--out", str(tmp_path / "out")],
                                           num_gpus=2, master_port=port, executable=executable("deepspeed"))
        start = time.monotonic()
        (done,) = run_together([command], timeout=240)
        seconds = time.monotonic() - start
    assert done.returncode != 0
    assert f"the rendezvous port MASTER_PORT={port} on 127.0.0.1 is already in use" in " ".join(done.stdout.split())
    assert seconds < 120, seconds
