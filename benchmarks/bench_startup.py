"""Start-up benchmark: wall time of `abz check`, `abz show` and `abz compile`, now vs before the light language.

Method. Both versions are taken from git (`git archive`; no worktree, the repository is not touched) into a
temporary folder laid out as the installed package (`autobert_zero/` with `grammar/`, `compiler/`, `train/`,
`evolve/` inside). Each run is a fresh interpreter, `python -I -c "...from autobert_zero.cli import main;
main([...])"` with that folder first on `sys.path`, on the same genotype file, so both versions pay the same
interpreter start and differ only in what they import and do. Runs alternate base/head (A B B A ...); one
warm-up run per version and command (writes the `.pyc` files) is discarded, so "cold" means a fresh process
with the OS file cache warm — what a user sees on the second invocation. Reported: median and min wall
seconds, the median CPU seconds of the child (user + system, from `getrusage`; less sensitive than wall time
to other load on a shared machine), and whether DeepSpeed's accelerator warning was printed.
`python -I -c pass` gives the floor.

    python -m benchmarks.bench_startup [--base 9a7d081] [--head HEAD] [--runs 7] [--compile-runs 3]
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.report import print_table, write_json

REPO = Path(__file__).resolve().parents[1]
BASE = "9a7d081"  # main before the language was made light (op table with torch, eager package imports)
SUBPACKAGES = ("grammar", "compiler", "train", "evolve")
DEEPSPEED_WARNING = "Setting accelerator to"


def export_tree(commit: str, into: Path) -> Path:
    """The package of `commit` laid out as installed; returns the folder to put on sys.path."""
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=REPO, check=True,
                             capture_output=True).stdout
    source = into / "source"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(source, filter="data")
    site = into / "site"
    shutil.copytree(source / "autobert_zero", site / "autobert_zero")
    for name in SUBPACKAGES:
        if (source / name).is_dir():
            shutil.copytree(source / name, site / "autobert_zero" / name)
    return site


def short_commit(ref: str) -> str:
    return subprocess.run(["git", "rev-parse", "--short", ref], cwd=REPO, check=True, capture_output=True,
                          text=True).stdout.strip()


def run_once(site: Path | None, argv: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall and CPU seconds of one fresh interpreter running `abz argv` from `site` (None: `pass`), and its
    output (stdout + stderr: DeepSpeed logs its accelerator warning to stdout)."""
    if site is None:
        code = "pass"
    else:
        code = (f"import sys; sys.path.insert(0, {str(site)!r}); from autobert_zero.cli import main; "
                f"sys.exit(main({argv!r}))")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-I", "-c", code], cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode != 0:
        raise RuntimeError(f"abz {' '.join(argv)} failed ({result.returncode}):\n{result.stderr}")
    return seconds, cpu, result.stdout + result.stderr


def measure(sites: dict[str, Path], argv_of: Any, runs: int, cwd: Path) -> dict[str, dict[str, Any]]:
    """Alternating runs (A B B A ...) after one discarded warm-up per version."""
    times: dict[str, list[float]] = {name: [] for name in sites}
    cpus: dict[str, list[float]] = {name: [] for name in sites}
    warned: dict[str, bool] = {}
    for name, site in sites.items():
        *_, output = run_once(site, argv_of(name), cwd)
        warned[name] = DEEPSPEED_WARNING in output
    order = list(sites)
    for i in range(runs):
        for name in order if i % 2 == 0 else reversed(order):
            seconds, cpu, _ = run_once(sites[name], argv_of(name), cwd)
            times[name].append(seconds)
            cpus[name].append(cpu)
    return {name: {"median_s": statistics.median(t), "min_s": min(t), "median_cpu_s": statistics.median(cpus[name]),
                   "runs": t, "cpu_runs": cpus[name], "deepspeed_warning": warned[name]}
            for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=BASE, help=f"the commit to compare with (default {BASE})")
    parser.add_argument("--head", default="HEAD", help="the commit measured as 'now' (default HEAD)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per version for check and show")
    parser.add_argument("--compile-runs", type=int, default=3, help="timed runs per version for compile (0: skip)")
    args = parser.parse_args()
    genotype = str(REPO / "genotypes" / "bert.abz")
    commits = {name: short_commit(ref) for name, ref in (("base", args.base), ("head", args.head))}
    with tempfile.TemporaryDirectory(prefix="abz-startup-") as tmp:
        root = Path(tmp)
        sites = {name: export_tree(commit, root / name) for name, commit in commits.items()}
        floor = statistics.median(run_once(None, [], root)[0] for _ in range(args.runs))
        load = os.getloadavg()[0]
        commands: dict[str, Any] = {
            "check": (lambda name: ["check", genotype], args.runs),
            "show": (lambda name: ["show", genotype], args.runs),
            "compile": (lambda name: ["compile", genotype, "--out", str(root / f"out-{name}-{time.perf_counter_ns()}"),
                                      "--hidden", "32", "--heads", "2", "--intermediate", "64"], args.compile_runs),
        }
        results: dict[str, Any] = {}
        for command, (argv_of, runs) in commands.items():
            if runs > 0:
                results[command] = measure(sites, argv_of, runs, root)
    rows = []
    for command, by_version in results.items():
        base, head = by_version["base"], by_version["head"]
        rows.append([f"abz {command}", base["median_s"], head["median_s"], head["min_s"], base["median_cpu_s"],
                     head["median_cpu_s"], base["median_s"] / head["median_s"],
                     "yes" if base["deepspeed_warning"] else "no", "yes" if head["deepspeed_warning"] else "no"])
    print_table(f"Start-up, fresh interpreter per run (base {commits['base']} vs head {commits['head']}; "
                f"`python -I -c pass` {floor:.3f} s; load average {load:.1f})",
                ["command", "before wall s", "now wall s", "now min s", "before CPU s", "now CPU s", "speed-up",
                 "DS warning before", "DS warning now"], rows)
    write_json("startup", {"base": commits["base"], "head": commits["head"], "genotype": "genotypes/bert.abz",
                           "interpreter_floor_s": floor, "load_average_1min": load, "commands": results,
                           "method": "git archive of each commit laid out as installed; fresh `python -I -c` per "
                                     "run, alternating versions, one discarded warm-up each"})


if __name__ == "__main__":
    main()
