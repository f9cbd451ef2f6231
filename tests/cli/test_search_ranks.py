"""A search under the deepspeed launcher with 2 processes, as a user runs it (all slow: each start imports
torch and deepspeed in every process): the whole job killed with SIGKILL resumes to the uninterrupted
history, a candidate that fails for real on one rank is recorded failed while the gather completes, a
candidate past `search.candidate_timeout_s` is recorded failed on its rank without the others hanging, a
bug on one rank stops every rank (no hang), and a round the ranks cannot share evenly is refused."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from autobert_zero.train.engine import free_port
from tests.support.paths import REPO, complete_lines
from tests.support.training import subprocess_env, tiny_dict

ABZ = [sys.executable, "-m", "autobert_zero.cli"]
EXPLODING = "matmul(matmul(matmul(Q, transpose(K)), matmul(Q, transpose(K))), matmul(matmul(Q, transpose(K)), V))"
"""At `evaluate.lr` 10 its training loss is NaN at step 2 (a real failure, raised inside the training loop)."""
ENV = subprocess_env(OMP_NUM_THREADS="1")  # the same threads in every run: bit-equal losses


def launcher(*args: str) -> list[str]:
    deepspeed = shutil.which("deepspeed") or str(Path(sys.executable).with_name("deepspeed"))
    return [deepspeed, "--num_gpus", "2", "--master_port", str(free_port()), "--no_local_rank", *args]


def two(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(launcher("--module", "autobert_zero.cli", *args), cwd=REPO, capture_output=True,
                          text=True, env=ENV, timeout=timeout)


def one(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ABZ, *args], cwd=REPO, capture_output=True, text=True, env=ENV, timeout=timeout)


def history(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]


def evaluator_yaml(tmp: Path, evaluate: dict[str, Any] | None = None, **search: Any) -> Path:
    """The tiny sizes, the scratch estimator, 2 training steps per candidate; the first seed fails (NaN) at lr 10."""
    exploding = tmp / "exploding.abz"
    exploding.write_text(f"attention a {{ return {EXPLODING} }}\nbackbone {{\n  attention a\n  attention a\n}}\n")
    data = tiny_dict(tmp, evaluate={"estimator": "scratch", "steps": 4, "lr": 10.0, "eval_batch_size": 8,
                                    **(evaluate or {})},
                     search={"fitness": "evaluate", "evaluations": 24, "population_size": 4, "tournament_size": 2,
                             "round_size": 4, "seed_genotypes": [str(exploding)], **search})
    path = tmp / "search.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Equal ids, statuses and reasons, fitness within 1e-4 (relative beyond 1)."""
    def close(x: float | None, y: float | None) -> bool:
        return x == y or (x is not None and y is not None and math.isclose(x, y, rel_tol=1e-4, abs_tol=1e-4))

    return len(a) == len(b) and all(
        (p["id"], p["status"], p["reason"]) == (q["id"], q["status"], q["reason"]) and close(p["fitness"], q["fitness"])
        for p, q in zip(a, b, strict=True))


@pytest.mark.slow  # about 1.5 min on 2 cores: one process, then two killed, then two resumed
def test_a_killed_two_process_search_resumes_to_the_uninterrupted_history(tmp_path: Path) -> None:
    config = evaluator_yaml(tmp_path)
    whole = one("search", "--config", str(config), "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-3000:]
    expected = history(tmp_path / "whole")
    assert len(expected) == 24 and expected[0]["mutation"] == "seed"
    assert expected[0]["status"] == "failed" and expected[0]["reason"] == "training loss became nan at step 2"
    assert sum(line["status"] == "ok" for line in expected) >= 12
    out = tmp_path / "killed"
    job = subprocess.Popen(launcher("--module", "autobert_zero.cli", "search", "--config", str(config), "--out",
                                    str(out)), cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)  # the launcher and its ranks
    deadline = time.monotonic() + 240
    while complete_lines(out / "history.jsonl") < 5 and job.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.killpg(job.pid, signal.SIGKILL)  # the whole job at once: launcher, both ranks
    job.wait()
    killed_at = complete_lines(out / "history.jsonl")
    assert 5 <= killed_at < 24, killed_at  # past the initial population, before the end
    resumed = two("resume", str(out))
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    assert same(history(out), expected)  # the failed seed (scored on rank 0) included
    assert not any(p.name.startswith("state") and p.name != "state.json" for p in out.iterdir())


PROBE = """import os, sys
from autobert_zero.train.evaluate import Evaluator
scored = Evaluator._scored
def buggy(self, genotype):
    if os.environ.get("RANK") == "1":
        raise TypeError("a bug on rank one")
    return scored(self, genotype)
Evaluator._scored = buggy
from autobert_zero.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow  # about 1 min on 2 cores: three launcher runs
def test_timeouts_bugs_and_uneven_rounds_leave_no_rank_waiting(tmp_path: Path) -> None:
    # every candidate past a limit it cannot meet: each rank fails its own share, the gather completes
    config = evaluator_yaml(tmp_path, evaluations=8, candidate_timeout_s=1e-6)
    run = two("search", "--config", str(config), "--out", str(tmp_path / "late"))
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    lines = history(tmp_path / "late")
    assert len(lines) == 8 and {line["status"] for line in lines} == {"failed"}
    assert all(line["reason"].startswith("timed out after 1e-06 s (search.candidate_timeout_s), stopped before "
                                         "training step 1 of 4") for line in lines)
    # a bug on rank 1 only: both ranks stop with the error, the state before the round kept
    (probe := tmp_path / "probe.py").write_text(PROBE, encoding="utf-8")
    bug = subprocess.run(launcher(str(probe), "search", "--config", str(evaluator_yaml(tmp_path)), "--out",
                                  str(tmp_path / "bug")), cwd=REPO, capture_output=True, text=True, env=ENV,
                         timeout=300)
    assert bug.returncode != 0
    assert "TypeError on rank 1: a bug on rank one" in bug.stdout + bug.stderr
    assert (tmp_path / "bug" / "state.json").is_file() and complete_lines(tmp_path / "bug" / "history.jsonl") == 0
    # a round of 3 over 2 processes: refused before anything runs
    uneven = two("search", "--config", str(evaluator_yaml(tmp_path, round_size=3)), "--out", str(tmp_path / "odd"))
    assert uneven.returncode == 1
    said = " ".join(uneven.stderr.split())  # the message is wrapped
    assert "search.round_size = 3 does not split evenly over the 2 processes" in said
    assert "set search.round_size to a multiple of 2 (e.g. 4)" in said
    assert not (tmp_path / "odd" / "history.jsonl").exists()
