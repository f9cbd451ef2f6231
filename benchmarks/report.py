"""Shared output for benchmarks: a fixed-width table on stdout and a JSON file under benchmarks/results/.

Every result records the machine (`machine()`) and the code it measured (`commit()`: the git commit and whether
the working tree differed from it).
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"
REPO = RESULTS.parent.parent
# Paths whose changes do not make the measured code differ from the commit: run folders and results themselves.
NOT_CODE = ("runs/", "benchmarks/results/")


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(str(h).rjust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def write_json(name: str, payload: dict[str, Any], folder: Path | None = None) -> Path:
    """`<folder>/<name>.json` (default folder: benchmarks/results), with the time, machine and commit."""
    from autobert_zero.io import atomic_write_text

    folder = RESULTS if folder is None else folder
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(),
               "commit": commit(), **payload}
    path = folder / f"{name}.json"
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {path}")
    return path


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine(),
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}


def commit() -> dict[str, Any]:
    """`{"sha": HEAD's full sha, "dirty": whether tracked or untracked files differ from it}`; changes under
    `runs/` and `benchmarks/results/` do not count. Both are None when git or the repository is absent."""
    try:
        sha = _git("rev-parse", "HEAD").strip()
        changes = [line[3:] for line in _git("status", "--porcelain", "--untracked-files=all").splitlines()]
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}
    return {"sha": sha, "dirty": any(not path.strip('"').startswith(NOT_CODE) for path in changes)}


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True, timeout=30).stdout
