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
- `trainer_state.json`, `rng-rank<r>.json` and `manifest.json` must also pass a schema (types, lengths,
  ranges, finite numbers; `read_json`'s bounded depth and size) before anything is loaded, so a hand-edited
  file with a recomputed manifest is skipped like a damaged one, never half-applied;
- the saved run identity (`run_identity`: every config key that shapes the run, the genotype id, the
  vocabulary and corpus hashes, the batch layout) must equal the current one; a difference is refused
  naming each key that changed.
"""

from __future__ import annotations

import base64
import binascii
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
from autobert_zero.json_files import read_json, shorten
from autobert_zero.train.engine import barrier

LATEST = "latest"
STATE_FILE = "trainer_state.json"
MANIFEST_FILE = "manifest.json"
IDENTITY_VERSION = 2
"""Version of the run identity a checkpoint records (2: every config key that shapes the run)."""


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
    if not (folder / MANIFEST_FILE).is_file():
        return f"no {MANIFEST_FILE}"
    try:
        listed = _manifest_files(folder / MANIFEST_FILE)
    except TrainingError as problem:
        return f"{MANIFEST_FILE} is damaged ({_relative(problem, folder)})"
    present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_FILE}
    if present != set(listed):
        missing, extra = sorted(set(listed) - present), sorted(present - set(listed))
        return "; ".join(filter(None, [f"missing {', '.join(missing)}" if missing else "",
                                       f"unlisted {', '.join(extra)}" if extra else ""]))
    for name, entry in sorted(listed.items()):
        path = folder / name
        if path.stat().st_size != entry["size"] or _sha256(path) != entry["sha256"]:
            return f"{name} differs from its manifest entry (size or sha256): truncated or modified"
    for name in sorted(listed):
        path = folder / name
        if name.endswith(".json"):
            try:
                check = read_trainer_state if name == STATE_FILE else read_rng_state if _is_rng(name) else read_json
                check(path, TrainingError)
            except TrainingError as problem:
                return _relative(problem, folder)
        elif name.endswith(".pt"):
            try:
                with torch.serialization.safe_globals(safe_globals()):
                    torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # any failure of the restricted unpickler means: do not load this file
                return f"{name} does not load with torch.load(weights_only=True): {_unpickler_reason(exc)}"
    return None


def _relative(problem: TrainingError, folder: Path) -> str:
    """A validation message with the checkpoint folder's prefix taken off its file name."""
    return str(problem).replace(f"{folder}{os.sep}", "")


def _is_rng(name: str) -> bool:
    return name.startswith("rng-rank") and name[len("rng-rank"):-len(".json")].isdigit()


def _manifest_files(path: Path) -> dict[str, dict[str, Any]]:
    """The `files` of a manifest, checked: relative names mapped to {size: int ≥ 0, sha256: 64 hex digits}."""
    manifest = read_json(path, TrainingError)
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(listed, dict):
        raise TrainingError(f"{path}: expected a JSON object with a 'files' object")
    for name, entry in listed.items():
        ok = (isinstance(entry, dict) and isinstance(entry.get("size"), int) and not isinstance(entry["size"], bool)
              and entry["size"] >= 0 and isinstance(entry.get("sha256"), str) and len(entry["sha256"]) == 64)
        if not ok or name.startswith("/") or ".." in Path(name).parts:
            raise TrainingError(f"{path}: entry {shorten(name)} should be a relative file name mapped to "
                                f"{{size, sha256}}, found {shorten(entry)}")
    return listed


def read_trainer_state(path: Path, error: type[TrainingError] = TrainingError) -> dict[str, Any]:
    """`trainer_state.json`, checked: a JSON object (bounded depth, finite numbers) whose `step` is an integer
    ≥ 0 equal to the folder's step; else `error` naming the file and key. Its other keys are the run identity,
    compared whole on resume."""
    state = read_json(path, error)
    if not isinstance(state, dict):
        raise error(f"{path}: expected a JSON object (the step and the run identity)")
    step = state.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise error(f"{path}: key 'step' should be an integer ≥ 0, found {shorten(step)}")
    if path.parent.name.startswith("step-") and path.parent.name != tag_for(step):
        raise error(f"{path}: key 'step' is {step}, but the folder is {path.parent.name}")
    return state


def _uint32_list(value: Any, length: int) -> bool:
    return (isinstance(value, list) and len(value) == length
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32 for v in value))


def _b64_bytes(value: Any) -> int | None:
    """Byte length of a base64 text, or None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        return len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return None


def read_rng_state(path: Path, error: type[TrainingError] = TrainingError) -> dict[str, Any]:
    """`rng-rank<r>.json`, checked against what `rng_state` writes (python: [3, 625 words, gauss], numpy:
    ["MT19937", 624 words, position ≤ 624, 0/1, finite float], torch: base64 of this torch's CPU state size,
    cuda: a list of base64 texts); else `error` naming the file and part."""
    state = read_json(path, error)

    def bad(part: str, expected: str) -> TrainingError:
        return error(f"{path}: {part} should be {expected}; the file is damaged or was edited")

    if not isinstance(state, dict) or not {"python", "numpy", "torch"} <= set(state) or not set(state) <= {
            "python", "numpy", "torch", "cuda"}:
        raise bad("the file", "a JSON object with the keys python, numpy, torch (and cuda)")
    python = state["python"]
    if not (isinstance(python, list) and len(python) == 3 and python[0] == 3 and _uint32_list(python[1], 625)
            and python[1][-1] <= 624 and (python[2] is None or isinstance(python[2], float))):
        raise bad("'python'", "[3, 625 integers in [0, 2**32) ending with a position ≤ 624, null or a number]")
    numpy_state = state["numpy"]
    if not (isinstance(numpy_state, list) and len(numpy_state) == 5 and numpy_state[0] == "MT19937"
            and _uint32_list(numpy_state[1], 624) and isinstance(numpy_state[2], int)
            and not isinstance(numpy_state[2], bool) and 0 <= numpy_state[2] <= 624 and numpy_state[3] in (0, 1)
            and isinstance(numpy_state[4], float | int) and not isinstance(numpy_state[4], bool)):
        raise bad("'numpy'", '["MT19937", 624 integers in [0, 2**32), a position in 0..624, 0 or 1, a number]')
    expected = torch.get_rng_state().numel()
    if _b64_bytes(state["torch"]) != expected:
        raise bad("'torch'", f"base64 text of {expected} bytes (torch's CPU generator state)")
    cuda = state.get("cuda", [])
    if not isinstance(cuda, list) or any(_b64_bytes(s) is None for s in cuda):
        raise bad("'cuda'", "a list of base64 texts (one CUDA generator state per device)")
    return state


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


def run_identity(*, genotype_id: str, tokenizer: Any, config: Mapping[str, Any],
                 derived: Mapping[str, Any]) -> dict[str, Any]:
    """What must not change between a checkpoint and a resumed run (flat keys, so a refusal names each one):
    the identity version, the genotype's canonical id, the vocabulary (sha256 and size), every config key that
    shapes the run (`config`, flattened, e.g. "supernet.conv_probability") and what follows from the data
    and processes (`derived`: corpus hash, block counts, world size, ...)."""
    identity: dict[str, Any] = {"identity_version": IDENTITY_VERSION, "genotype_id": genotype_id,
                                "vocab_sha256": vocabulary_sha256(tokenizer), "vocab_size": len(tokenizer)}
    identity.update(config)
    identity.update(derived)
    return json.loads(json.dumps(identity))  # as it reads back from trainer_state.json (tuples → lists)


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
            state = read_trainer_state(root / tag / STATE_FILE)  # verified: it passes the schema
            if skipped:
                print(f"--resume: skipped damaged checkpoint(s) {'; '.join(skipped)}; resuming from {tag}",
                      file=sys.stderr)
            return tag, state
        skipped.append(f"{tag} ({reason})")
    if not skipped:
        raise TrainingError(f"--resume: no checkpoint in {root}: the run stopped before its first checkpoint "
                            f"(pretrain.checkpoint_every), so there is nothing to continue. Start it again from "
                            f"step 0 with --force instead of --resume (it replaces only this command's outputs in "
                            f"that folder), or start a new run in another --out")
    raise TrainingError(f"--resume: no checkpoint in {root} verifies: {'; '.join(skipped)}. Nothing was loaded "
                        f"or changed; start a new run in another --out folder")


def _differences(saved: Mapping[str, Any], expect: Mapping[str, Any]) -> list[str]:
    """"key old -> new" for each identity key that differs (a key only one side has shows as "(none)")."""
    keys = [k for k in expect if k != "step"] + sorted(k for k in saved if k not in expect and k != "step")
    missing = object()
    changed = [(k, saved.get(k, missing), expect.get(k, missing)) for k in keys
               if saved.get(k, missing) != expect.get(k, missing)]
    return [f"{k} {_short(old, missing)} -> {_short(new, missing)}" for k, old, new in changed]


def _short(value: Any, missing: object) -> str:
    if value is missing:
        return "(none)"
    if isinstance(value, str) and len(value) > 24:
        return repr(value[:16] + "…")
    return shorten(value, 60)


def load_checkpoint(engine: Any, root: Path, rank: int, expect: dict[str, Any]) -> int:
    """Load the newest verifying checkpoint into the engine, restore RNG states; returns its step.

    `expect` holds the run identity (see `run_identity`: genotype, sizes, vocabulary, data, schedule,
    world size, batch size, seed) that must match the saved one, since a different value would continue
    another run's weights or change the data order or the loss curve.
    """
    tag, state = _newest_verified(root)
    if state.get("identity_version") != expect.get("identity_version"):
        raise TrainingError(f"--resume: {root / tag} records run identity version "
                            f"{shorten(state.get('identity_version', 1))}, this version of abz checks version "
                            f"{expect.get('identity_version')} (every config key that shapes the run), so it cannot "
                            f"tell whether the run is the same; start a new run in another --out")
    diffs = _differences(state, expect)
    if diffs:
        raise TrainingError(f"--resume: config changed since the run started: {'; '.join(diffs)}. Resume "
                            f"{root.parent} with the original config, genotype, tokenizer, data and number of "
                            f"processes (keys that cannot change the result, listed in train/mlm.py "
                            f"RESUME_EXEMPT, may differ), or start a new run in another --out")
    try:
        load_path, _ = engine.load_checkpoint(str(root), tag=tag)
    except (RuntimeError, KeyError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise TrainingError(f"--resume: DeepSpeed could not load checkpoint {root / tag}: {first}") from None
    if load_path is None:
        raise TrainingError(f"--resume: DeepSpeed could not load checkpoint {root / tag}")
    set_rng_state(read_rng_state(root / tag / f"rng-rank{rank}.json"))
    barrier()
    return int(state["step"])
