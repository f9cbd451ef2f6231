"""`abz search / resume / report / export` as a user runs them: a real run killed with SIGKILL at several
points resumes to the uninterrupted history, two processes under the deepspeed launcher write the
one-process history (synthetic fitness, and the real Evaluator with its candidates split across the
ranks), bad input gets one clear paragraph, and evolve/ never imports torch."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from autobert_zero.train.engine import free_port
from tests.support.paths import GENOTYPES, REPO, complete_lines
from tests.support.training import subprocess_env, tiny_config, tiny_dict, write_genotype

ABZ = [sys.executable, "-m", "autobert_zero.cli"]


def search_yaml(folder: Path, **search: object) -> Path:
    genotype = write_genotype(folder, layers=4)
    data = {"genotype": str(genotype), "seed": 0, "logging": {"progress_bar": False},
            "search": {"evaluations": 60, "population_size": 8, "tournament_size": 3, "round_size": 2,
                       "fitness": "synthetic", **search}}
    path = folder / "search.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def abz(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ABZ, *args], cwd=REPO, capture_output=True, text=True, env=subprocess_env(),
                          timeout=timeout)


def history(folder: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]


def test_evolve_imports_no_torch() -> None:
    code = ("import sys, autobert_zero.evolve, autobert_zero.evolve.report, autobert_zero.evolve.export; "
            "print(sorted(m for m in ('torch', 'transformers', 'deepspeed') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), check=True)
    assert out.stdout.strip() == "[]"


def test_a_search_killed_at_any_moment_resumes_to_the_same_history(tmp_path: Path) -> None:
    config = search_yaml(tmp_path, evaluations=150)
    whole = abz("search", "--config", str(config), "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    assert "search finished: 150 candidates" in whole.stdout
    out = tmp_path / "killed"
    command = ["search", "--config", str(config), "--out", str(out)]
    for kill_after in (5, 50, 110):  # each start (search, then resumes) is killed once it passed that point
        proc = subprocess.Popen([*ABZ, *command], cwd=REPO, env=subprocess_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while complete_lines(out / "history.jsonl") < kill_after and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        command = ["resume", str(out)]
    assert complete_lines(out / "history.jsonl") < 150  # killed before the end
    resumed = abz("resume", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert history(out) == history(tmp_path / "whole")
    again = abz("resume", str(out))
    assert again.returncode == 0 and "already finished" in again.stdout


def test_report_and_export(tmp_path: Path) -> None:
    config = search_yaml(tmp_path, max_params=10**9)
    assert abz("search", "--config", str(config), "--out", str(tmp_path / "run")).returncode == 0
    report = abz("report", str(tmp_path / "run"))
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "run" / "report.md").read_text()
    for needle in ("## Best genotypes", "## Lineage of the best", "plots/fitness.png", "plots/pareto.png",
                   "plots/priority.png", "plots/rates.png", "best1.svg"):
        assert needle in text
    for name in ("fitness.png", "priority.png", "rates.png", "pareto.png"):
        assert (tmp_path / "run" / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    export = abz("export", str(tmp_path / "run"), "--top", "2", "--out", str(tmp_path / "best"), "--no-hf")
    assert export.returncode == 0, export.stderr
    best = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    top = max(line["fitness"] for line in best if line["fitness"] is not None and line["status"] == "ok")
    check = abz("check", str(tmp_path / "best" / "rank1" / "genotype.abz"), str(tmp_path / "best" / "rank2" /
                                                                                "genotype.abz"))
    assert check.returncode == 0, check.stdout
    assert f"fitness {top:.6g}" in (tmp_path / "best" / "rank1" / "genotype.abz").read_text()


def test_bad_input_gets_a_clear_message(tmp_path: Path) -> None:
    cases = {
        "unknown-op": (search_yaml(tmp_path, ops=["matmul", "gelu"]), 1, "op 'gelu' is not in the language"),
    }
    bad = tmp_path / "bad.abz"
    bad.write_text("attention a { return matmul(Q, }\nbackbone { attention a }\n")
    (tmp_path / "b").mkdir()
    cases["unparsable-seed"] = (search_yaml(tmp_path / "b", seed_genotypes=[str(bad)]), 2, "bad.abz:1:")
    (tmp_path / "c").mkdir()
    cases["layer-count"] = (search_yaml(tmp_path / "c", seed_genotypes=[str(GENOTYPES / "bert.abz")]), 1,
                            "has 12 layers; this search has 4")
    for name, (config, code, message) in cases.items():
        proc = abz("search", "--config", str(config), "--out", str(tmp_path / f"out-{name}"))
        assert proc.returncode == code, (name, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr, (name, proc.stderr)
    config = search_yaml(tmp_path / "c", evaluations=10)
    assert abz("search", "--config", str(config), "--out", str(tmp_path / "run")).returncode == 0
    taken = abz("search", "--config", str(config), "--out", str(tmp_path / "run"))
    assert taken.returncode == 1 and "is not empty" in taken.stderr
    state = tmp_path / "run" / "state.json"
    state.write_text(state.read_text()[:100])
    (tmp_path / "run" / "summary.json").unlink()
    damaged = abz("resume", str(tmp_path / "run"))
    assert damaged.returncode == 1 and "state.json is damaged" in damaged.stderr
    assert len(state.read_text()) == 100  # left as it was


@pytest.mark.slow  # about a minute on 2 cores: two processes import torch and deepspeed
def test_two_processes_write_the_one_process_history(tmp_path: Path) -> None:
    config = search_yaml(tmp_path, evaluations=40, round_size=4)
    one = abz("search", "--config", str(config), "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    launcher = shutil.which("deepspeed") or str(Path(sys.executable).with_name("deepspeed"))
    two = subprocess.run([launcher, "--num_gpus", "2", "--master_port", str(free_port()), "--no_local_rank",
                          "--module", "autobert_zero.cli", "search", "--config", str(config), "--out",
                          str(tmp_path / "two")], cwd=REPO, capture_output=True, text=True,
                         env=subprocess_env(OMP_NUM_THREADS="1"), timeout=300)
    assert two.returncode == 0, (two.stdout + two.stderr)[-3000:]
    assert history(tmp_path / "two") == history(tmp_path / "one")
    assert not any(p.name.startswith("state") and p.name != "state.json" for p in (tmp_path / "two").iterdir())
    assert os.path.getsize(tmp_path / "two" / "state.json") > 0


SPLIT_LOG = re.compile(r"rank (\d) of 2 scored (\d+) of (\d+) candidates")
PROBE = """import logging, sys
logging.basicConfig(format="%(message)s")
logging.getLogger("autobert_zero.train.evaluate").setLevel(logging.DEBUG)  # the per-rank split lines
from autobert_zero.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow  # about 40 s on 2 cores: one process, then two under the launcher
@pytest.mark.parametrize("estimator,steps", [("biws", 0), ("scratch", 2)])
def test_two_processes_split_the_evaluator_candidates_and_write_the_one_process_history(
        tmp_path: Path, estimator: str, steps: int) -> None:
    search = {"fitness": "evaluate", "evaluations": 12, "population_size": 4, "tournament_size": 2,
              "round_size": 4}
    if estimator == "biws":
        from autobert_zero.train.supernet import train_supernet

        train_supernet(tiny_config(tmp_path, pretrain={"max_steps": 2, "checkpoint_every": 2}), tmp_path / "sn")
        search["supernet"] = str(tmp_path / "sn")
    data = tiny_dict(tmp_path, evaluate={"estimator": estimator, "steps": steps, "eval_batch_size": 8},
                     search=search)
    (config := tmp_path / "search.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    (probe := tmp_path / "probe.py").write_text(PROBE, encoding="utf-8")
    args = ["search", "--config", str(config), "--out"]
    env = subprocess_env(OMP_NUM_THREADS="1")  # the same threads in both runs: bit-equal losses
    one = subprocess.run([sys.executable, str(probe), *args, str(tmp_path / "one")], cwd=REPO, capture_output=True,
                         text=True, env=env, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    launcher = shutil.which("deepspeed") or str(Path(sys.executable).with_name("deepspeed"))
    two = subprocess.run([launcher, "--num_gpus", "2", "--master_port", str(free_port()), "--no_local_rank",
                          str(probe), *args, str(tmp_path / "two")], cwd=REPO, capture_output=True, text=True,
                         env=env, timeout=300)
    assert two.returncode == 0, (two.stdout + two.stderr)[-3000:]
    fields = ("index", "id", "genotype", "fitness", "eval_loss", "status", "reason", "params", "flops_per_token")
    lines = [{k: line.get(k) for k in fields} for line in history(tmp_path / "two")]
    assert lines == [{k: line.get(k) for k in fields} for line in history(tmp_path / "one")]
    assert len(lines) == 12 and sum(line["status"] == "ok" for line in lines) >= 6
    assert not SPLIT_LOG.search(one.stderr)  # one process scores everything itself
    shares = [(int(r), int(n), int(m)) for r, n, m in SPLIT_LOG.findall(two.stdout + two.stderr)]
    scored = {rank: sum(n for r, n, _ in shares if r == rank) for rank in (0, 1)}
    total = sum(m for r, _, m in shares if r == 0)
    assert total == sum(m for r, _, m in shares if r == 1) > 0
    assert scored[0] + scored[1] == total and 0 < scored[1] <= scored[0] < total  # each rank scored a part
