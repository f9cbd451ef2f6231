"""Crash-safe engine checkpoints with the state a bit-exact resume needs.

Layout under `<out>/checkpoints/`:

    step-00000100/        one complete checkpoint: DeepSpeed's files (weights, optimizer, scheduler),
                          trainer_state.json (step and run identity), rng-rank<r>.json (RNG states)
    latest                the tag of the newest complete checkpoint (written atomically)

A checkpoint is written into `.tmp-step-…/`, flushed, and renamed into place; only then does `latest`
move. A run killed at any moment leaves `latest` naming a complete checkpoint; leftover temporary folders
are removed by the next save. RNG states are stored as JSON text (torch's as base64 bytes).
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autobert_zero.errors import TrainingError
from autobert_zero.io import atomic_write_text

from .engine import barrier

LATEST = "latest"
STATE_FILE = "trainer_state.json"


def tag_for(step: int) -> str:
    return f"step-{step:08d}"


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.numpy().tobytes()).decode("ascii")


def _unb64(s: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8)


def rng_state() -> dict[str, Any]:
    """This process's RNG states (python, numpy, torch, CUDA if present) as JSON-able data."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    assert isinstance(keys, np.ndarray)
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": _b64(torch.get_rng_state()),
    }
    if torch.cuda.is_available():
        state["cuda"] = [_b64(s) for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(_unb64(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_unb64(s) for s in state["cuda"]])


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())


def read_latest(root: Path) -> str | None:
    """The tag `latest` names, if it names an existing checkpoint folder."""
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    tag = pointer.read_text(encoding="utf-8").strip()
    return tag if (root / tag / STATE_FILE).is_file() else None


def save_checkpoint(engine: Any, root: Path, step: int, run_state: dict[str, Any], rank: int, keep: int) -> Path:
    """Write checkpoint `step` (every rank calls this); returns its folder."""
    tag, tmp_tag = tag_for(step), f".tmp-{tag_for(step)}"
    tmp, final = root / tmp_tag, root / tag
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    barrier()
    engine.save_checkpoint(str(root), tag=tmp_tag, save_latest=False)
    (tmp / f"rng-rank{rank}.json").write_text(json.dumps(rng_state()), encoding="utf-8")
    if rank == 0:
        (tmp / STATE_FILE).write_text(json.dumps({"step": step, **run_state}, indent=1), encoding="utf-8")
    barrier()
    if rank == 0:
        _fsync_tree(tmp)
        if final.exists():  # a re-run over the same step: keep the old one until the new one is in place
            old = root / f".old-{tag}"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        atomic_write_text(root / LATEST, tag)
        _prune(root, keep)
    barrier()
    return final


def _prune(root: Path, keep: int) -> None:
    latest = read_latest(root)
    complete = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in complete[:-keep]:
        if old.name != latest:
            shutil.rmtree(old, ignore_errors=True)
    for leftover in root.glob(".tmp-step-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def load_checkpoint(engine: Any, root: Path, rank: int, expect: dict[str, Any]) -> int:
    """Load the newest complete checkpoint into the engine, restore RNG states; returns its step.

    `expect` holds the run identity (world size, batch size, seed, schedule) that must match the saved
    one, since a different value would change the data order or the loss curve.
    """
    tag = read_latest(root)
    if tag is None:
        raise TrainingError(f"--resume: no complete checkpoint in {root} (no '{LATEST}' pointer naming a "
                            f"checkpoint folder); start without --resume")
    state = json.loads((root / tag / STATE_FILE).read_text(encoding="utf-8"))
    changed = {k: (state.get(k), v) for k, v in expect.items() if state.get(k) != v}
    if changed:
        diffs = "; ".join(f"{k}: checkpoint {old!r}, now {new!r}" for k, (old, new) in changed.items())
        raise TrainingError(f"--resume: {root / tag} was written by a run with different settings ({diffs}); "
                            f"resume with the original config and number of processes")
    load_path, _ = engine.load_checkpoint(str(root), tag=tag)
    if load_path is None:
        raise TrainingError(f"--resume: DeepSpeed could not load checkpoint {root / tag}")
    set_rng_state(json.loads((root / tag / f"rng-rank{rank}.json").read_text(encoding="utf-8")))
    barrier()
    return int(state["step"])
