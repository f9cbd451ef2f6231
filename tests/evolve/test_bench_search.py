"""The search benchmark's smoke path: per-run cache files, the JSON with its statistics, a rerun that skips
cached runs, and a cache made with other settings refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autobert_zero.errors import ConfigError
from benchmarks import bench_search

ARGS = ["--fitness", "synthetic", "--seeds", "2", "--evaluations", "20", "--population", "6", "--tournament", "3"]


def test_smoke_run_writes_its_cache_and_json_and_a_rerun_skips_cached_runs(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    argv = [*ARGS, "--cache", str(cache), "--out", str(out)]
    payload = bench_search.main(argv)
    files = sorted(p.name for p in cache.glob("*.json"))
    assert files == sorted(f"{s}-seed{n}.json" for s in ("op", "evolution", "random") for n in (0, 1))
    run = json.loads((cache / "op-seed0.json").read_text())
    assert {"commit", "curve", "final_best", "rescored", "diverted"} <= set(run) and len(run["curve"]) == 20
    written = json.loads((out / f"{bench_search.NAME}.json").read_text())
    assert set(written["comparisons"]) == {"op-evolution", "op-random"} and written["goal"] is not None
    assert (out / f"{bench_search.NAME}.png").is_file()
    capsys.readouterr()
    again = bench_search.main(argv)
    assert capsys.readouterr().out.count(": cached (") == 6
    assert again["runs"] == payload["runs"]
    with pytest.raises(ConfigError, match="other settings"):
        bench_search.main([*argv[:-4], "--reward", "fitness", "--cache", str(cache), "--out", str(out)])


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown: nope"):
        bench_search.parse_args(["--strategies", "op,nope"])
    with pytest.raises(ConfigError, match="--seeds must be positive"):
        bench_search.parse_args(["--seeds", "0"])
