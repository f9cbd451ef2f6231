"""Crash-safe engine checkpoints with the state a bit-exact resume needs.

Layout under `<out>/checkpoints/`:

    step-00000100/        one complete checkpoint: DeepSpeed's files (weights, optimizer, scheduler),
                          trainer_state.json (step and run identity), rng-rank<r>.json (RNG states),
                          manifest.json (size and sha256 of every other file, written last)
    latest                the tag of the newest complete checkpoint (written atomically)

A checkpoint is written into `.tmp-step-…/`, flushed, and renamed into place (over a folder of the same
step, when a run is re-run, through `io.replace_directory`); only then does `latest` move. A run killed at
any moment leaves `latest` naming a complete checkpoint; leftover temporary folders are removed by the
next save. RNG states are stored as JSON text (torch's as base64 bytes).

Loading runs no code from the files and continues only the same run:
- every file must match the manifest, and every `*.pt` must load with `torch.load(weights_only=True)`,
  which unpickles only tensors, plain containers and the allow-listed `SAFE_GLOBALS` (the three plain
  classes DeepSpeed's ZeRO optimizer files hold) — before DeepSpeed (which unpickles freely) reads them;
- a damaged newest checkpoint is skipped with a warning for the newest one that verifies; none → refused;
- the saved run identity (`run_identity`: genotype id, sizes, vocabulary hash, data, schedule, batch)
  must equal the current one; a difference is refused naming each key that changed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autobert_zero.errors import TrainingError
from autobert_zero.io import atomic_write_text, replace_directory
from autobert_zero.train.engine import barrier

LATEST = "latest"
STATE_FILE = "trainer_state.json"
MANIFEST_FILE = "manifest.json"


def safe_globals() -> list[Any]:
    """The non-tensor classes `torch.load(weights_only=True)` may build from DeepSpeed's checkpoint files:
    found by saving real checkpoints (ZeRO 0/1/2, fp32 and bf16) and listing what they pickle
    (`torch.serialization.get_unsafe_globals_in_checkpoint`). All three are plain data holders."""
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, ZeroStageEnum, fragment_address]


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
    try:
        tag = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return tag if tag.startswith("step-") and "/" not in tag and (root / tag / STATE_FILE).is_file() else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path) -> None:
    """Record the size and sha256 of every file in a checkpoint folder (`manifest.json`, written last)."""
    files = {str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": _sha256(p)}
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST_FILE}
    atomic_write_text(folder / MANIFEST_FILE, json.dumps({"files": files}, indent=1))


def verify_checkpoint(folder: Path) -> str | None:
    """Why the checkpoint in `folder` must not be loaded, or None when it verifies: the manifest lists
    exactly the files present with their sizes and hashes, the JSON files parse, and every `*.pt` loads
    with `torch.load(weights_only=True)` (so DeepSpeed's own unrestricted load runs no pickled code)."""
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        listed: dict[str, dict[str, Any]] = manifest["files"]
        assert isinstance(listed, dict)
    except FileNotFoundError:
        return f"no {MANIFEST_FILE}"
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        return f"{MANIFEST_FILE} is damaged"
    present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_FILE}
    if present != set(listed):
        missing, extra = sorted(set(listed) - present), sorted(present - set(listed))
        return "; ".join(filter(None, [f"missing {', '.join(missing)}" if missing else "",
                                       f"unlisted {', '.join(extra)}" if extra else ""]))
    for name, entry in sorted(listed.items()):
        path = folder / name
        if path.stat().st_size != entry.get("size") or _sha256(path) != entry.get("sha256"):
            return f"{name} differs from its manifest entry (size or sha256): truncated or modified"
    for name in sorted(listed):
        path = folder / name
        if name.endswith(".json"):
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                return f"{name} is not valid JSON"
        elif name.endswith(".pt"):
            try:
                with torch.serialization.safe_globals(safe_globals()):
                    torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # any failure of the restricted unpickler means: do not load this file
                return f"{name} does not load with torch.load(weights_only=True): {_unpickler_reason(exc)}"
    return None


def _unpickler_reason(exc: Exception) -> str:
    """The line of torch's refusal that says what was found (e.g. "unsupported GLOBAL os.system"), without
    its advice to retry with weights_only=False."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    found = [line for line in lines if "unsupported" in line.lower() or "unpickler" in line.lower()]
    reason = (found or lines or [type(exc).__name__])[0]
    return reason if "weights_only` set to `False`" not in reason else type(exc).__name__


def checkpoint_tags(root: Path) -> list[str]:
    """Checkpoint folders under `root`, newest first: the one `latest` names, then by step."""
    steps = sorted((p.name for p in root.glob("step-*") if p.is_dir()), reverse=True)
    latest = read_latest(root)
    return ([latest] if latest else []) + [tag for tag in steps if tag != latest]


def vocabulary_sha256(tokenizer: Any) -> str:
    """sha256 of a tokenizer's vocabulary (token → id pairs in id order) and its special tokens."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    text = json.dumps([vocab, sorted(tokenizer.all_special_tokens)], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_identity(*, genotype_id: str, sizes: Mapping[str, Any], tokenizer: Any, data: Mapping[str, Any],
                 schedule: Mapping[str, Any], batch: Mapping[str, Any]) -> dict[str, Any]:
    """What must not change between a checkpoint and a resumed run (flat keys, so a refusal names each one):
    the genotype's canonical id, the model sizes, the vocabulary, the data (corpus hash, block layout,
    masking), the schedule (steps, learning rate, warm-up, ...) and the batch (world size, batch, seed)."""
    identity: dict[str, Any] = {"genotype_id": genotype_id, "vocab_sha256": vocabulary_sha256(tokenizer),
                                "vocab_size": len(tokenizer)}
    for prefix, values in (("model", sizes), ("data", data), ("schedule", schedule)):
        identity.update({f"{prefix}.{key}": value for key, value in values.items()})
    identity.update(batch)
    return identity


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
        write_manifest(tmp)
        _fsync_tree(tmp)
        replace_directory(tmp, final)  # a re-run over the same step: the old one stays until the new one is in
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


def _newest_verified(root: Path) -> tuple[str, dict[str, Any]]:
    """The newest checkpoint that verifies, and its saved state; warns about each one skipped."""
    skipped: list[str] = []
    for tag in checkpoint_tags(root):
        reason = verify_checkpoint(root / tag)
        if reason is None:
            state = json.loads((root / tag / STATE_FILE).read_text(encoding="utf-8"))
            if isinstance(state, dict) and isinstance(state.get("step"), int):
                if skipped:
                    print(f"--resume: skipped damaged checkpoint(s) {'; '.join(skipped)}; resuming from {tag}",
                          file=sys.stderr)
                return tag, state
            reason = f"{STATE_FILE} holds no step"
        skipped.append(f"{tag} ({reason})")
    if not skipped:
        raise TrainingError(f"--resume: no complete checkpoint in {root} (no '{LATEST}' pointer naming a "
                            f"checkpoint folder); this folder cannot be resumed: start a new run in another --out")
    raise TrainingError(f"--resume: no checkpoint in {root} verifies: {'; '.join(skipped)}. Nothing was loaded "
                        f"or changed; start a new run in another --out folder")


def _differences(saved: Mapping[str, Any], expect: Mapping[str, Any]) -> str:
    changed = [(k, saved.get(k), v) for k, v in expect.items() if saved.get(k) != v]
    return "; ".join(f"{k}: checkpoint {_short(old)}, now {_short(new)}" for k, old, new in changed)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 or not isinstance(value, str) else repr(value[:16] + "…")


def load_checkpoint(engine: Any, root: Path, rank: int, expect: dict[str, Any]) -> int:
    """Load the newest verifying checkpoint into the engine, restore RNG states; returns its step.

    `expect` holds the run identity (see `run_identity`: genotype, sizes, vocabulary, data, schedule,
    world size, batch size, seed) that must match the saved one, since a different value would continue
    another run's weights or change the data order or the loss curve.
    """
    tag, state = _newest_verified(root)
    diffs = _differences(state, expect)
    if diffs:
        raise TrainingError(f"--resume: {root / tag} was written by a run with different settings ({diffs}); "
                            f"resume with the original genotype, config, tokenizer, data and number of processes")
    try:
        load_path, _ = engine.load_checkpoint(str(root), tag=tag)
    except (RuntimeError, KeyError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise TrainingError(f"--resume: DeepSpeed could not load checkpoint {root / tag}: {first}") from None
    if load_path is None:
        raise TrainingError(f"--resume: DeepSpeed could not load checkpoint {root / tag}")
    set_rng_state(json.loads((root / tag / f"rng-rank{rank}.json").read_text(encoding="utf-8")))
    barrier()
    return int(state["step"])
