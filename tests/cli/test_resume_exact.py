"""Exact resume on a shipped config, through the real CLI: `abz search` with configs/tiny.yaml (a supernet that
adapts between rounds, candidates trained a few steps), SIGKILLed at seeded random points and `abz resume`d
each time, writes the uninterrupted run's history byte for byte and the same summary. Slow (about two
minutes on 2 cores): `python -m pytest -m slow tests/cli/test_resume_exact.py`."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support.paths import REPO, complete_lines
from tests.support.training import subprocess_env

ABZ = [sys.executable, "-m", "autobert_zero.cli"]
TINY = REPO / "configs" / "tiny.yaml"
EVALUATIONS = 20
"""The one change to the shipped config: a budget of 20 candidates instead of 40 (the initial population of
8, then 12 rounds with an adapt call each), to keep the test near two minutes."""
ENV = subprocess_env(OMP_NUM_THREADS="1")  # the same threads in every process: bit-equal losses


def abz(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ABZ, *args], cwd=REPO, capture_output=True, text=True, env=ENV, timeout=300)


def killed_at(command: list[str], history: Path, lines: int) -> None:
    """Start `abz COMMAND` and SIGKILL it once `history` has at least `lines` complete lines."""
    proc = subprocess.Popen([*ABZ, *command], cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while complete_lines(history) < lines and proc.poll() is None:
        assert time.monotonic() < deadline, f"no {lines} history lines after 240 s"
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended before it was killed at {lines} lines"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_the_tiny_config_search_killed_at_random_points_resumes_to_the_same_history(tmp_path: Path) -> None:
    supernet = abz("supernet", "--config", str(TINY), "--max-steps", "20", "--out", str(tmp_path / "sn"))
    assert supernet.returncode == 0, supernet.stderr[-3000:]
    data = yaml.safe_load(TINY.read_text(encoding="utf-8"))
    data["search"]["evaluations"] = EVALUATIONS
    data["logging"]["progress_bar"] = False
    (config := tmp_path / "tiny.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    search = ["search", "--config", str(config), "--supernet", str(tmp_path / "sn"), "--seed", "7", "--out"]

    whole = abz(*search, str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-3000:]

    out = tmp_path / "killed"
    kills = sorted(random.Random(18).sample(range(3, EVALUATIONS - 2), 3))  # one inside the initial population
    kills[0] = min(kills[0], 6)
    command = [*search, str(out)]
    for lines in kills:
        killed_at(command, out / "history.jsonl", lines)
        command = ["resume", str(out)]
    resumed = abz("resume", str(out))
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    # history lines hold no wall-clock times (those stay in state.json), so the files compare whole
    assert (out / "history.jsonl").read_bytes() == (tmp_path / "whole" / "history.jsonl").read_bytes()

    def summary(folder: Path) -> dict[str, object]:
        text = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        return {k: text[k] for k in ("candidates", "best", "final_supernet_scores")}

    assert summary(out) == summary(tmp_path / "whole")  # the same final supernet re-scores the best and the seeds
