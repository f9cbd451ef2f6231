"""Output folders of the commands that write one (compile, pretrain, finetune, supernet, search, audit).

Three rules hold for every such folder, so no command loses a user's files:

1. **Refuse a non-empty folder.** A folder that holds anything (besides this module's own files and the
   temporaries of `autobert_zero.io`) is refused unless the run resumes (`resume=True`) or the user passed
   `--force`.
2. **`--force` replaces only the command's own files.** Each run records in the folder's manifest
   (`.abz-manifest.json`) every file it wrote (new or changed while it held the folder), under the command
   that owns the run (`abz resume` counts as `abz search`). `--force` deletes the files the manifest gives to
   the same command (and the folders that leaves empty), never another file: a user's file inside an output
   folder (`plots/`, `rank1/`) stays. A declared output (`outputs=`) that another command wrote (a search into
   a supernet's folder would replace its `summary.json`) is refused, naming that command; a top-level
   declared output file that no run recorded (a folder from before manifests) is replaced, as before.
3. **One run per folder.** An exclusive lock (`filelock`, released by the OS when the holder dies) is held
   for the whole run; a second run into the same folder is refused with the holder's pid, host and command.
   While holding it, the temporaries a killed writer left (`.NAME.XXXXXXXX.tmp`) are deleted, and a run the
   kill interrupted is recorded in the manifest as if it had ended.
4. **Outputs follow the umask** (folders made here with `mkdir`; see `autobert_zero.io` for files).

Use:

    with open_run_dir(args.out, "abz compile", force=args.force, outputs=("config.json",)) as run:
        ...write into run.path...   (run.finished() / run.mark_finished(summary) for resumable commands)

Only the primary process of a multi-process run (`primary=True`, rank 0) checks and locks; the other
ranks get a `RunDir` that does nothing but name the folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from autobert_zero.errors import AbzError, ConfigError, TrainingError
from autobert_zero.io import atomic_write_text, is_temporary, remove_temporaries
from autobert_zero.json_files import read_json, require_mapping

LOCK_FILE = ".abz.lock"
"""Lock file (empty; kept after the run, since deleting a lock file races with a new holder)."""
HOLDER_FILE = ".abz.lock.json"
"""Who holds the lock: pid, host and command line (removed when the run ends)."""
SUMMARY_FILE = "summary.json"
"""Written last by a resumable command: its presence means the run finished (see `RunDir.finished`)."""
MANIFEST_FILE = ".abz-manifest.json"
"""Which command wrote which file of the folder (see rule 2 of the module doc)."""
OWN_FILES = frozenset({LOCK_FILE, HOLDER_FILE, MANIFEST_FILE})
RUN_OWNER = {"abz resume": "abz search"}
"""Commands that continue another command's run, and whose files therefore count as that command's."""


@dataclass
class RunDir:
    """A locked output folder; write only inside `path`."""

    path: Path
    command: str
    primary: bool = True
    _lock: FileLock | None = field(default=None, repr=False)

    def finished(self) -> dict[str, Any] | None:
        """The summary a finished run left (`summary.json`), or None if there is none or it is unreadable."""
        path = self.path / SUMMARY_FILE
        if not path.is_file():
            return None
        try:
            summary = read_json(path)
        except AbzError:  # damaged, too deep, too large: not a finished run's summary
            return None
        return summary if isinstance(summary, dict) else None

    def mark_finished(self, summary: dict[str, Any]) -> None:
        """Write `summary.json` atomically (primary process only): the run is complete."""
        if self.primary:
            atomic_write_text(self.path / SUMMARY_FILE, json.dumps(summary, indent=1))


def user_entries(folder: Path) -> list[str]:
    """Names in `folder` other than this module's files and `autobert_zero.io`'s temporaries (sorted); [] if
    it does not exist."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name not in OWN_FILES and not is_temporary(p.name))


def _holder(folder: Path) -> str:
    try:
        info = read_json(folder / HOLDER_FILE)
        return f"pid {info['pid']} on {info['host']} ({str(info['command'])[:200]})"
    except (AbzError, KeyError, TypeError):
        return "another process (its pid file is not readable)"


# ---------------------------------------------------------------------------------------------------
# the manifest: which command wrote which file


def _owner(command: str) -> str:
    return RUN_OWNER.get(command, command)


def _files(folder: Path) -> dict[str, list[int]]:
    """Every file under `folder` (relative POSIX path → [mtime_ns, size]), but this module's own files and
    `autobert_zero.io`'s temporaries; symbolic links are not followed."""
    found: dict[str, list[int]] = {}
    for root, dirs, names in os.walk(folder):
        dirs[:] = [name for name in dirs if not is_temporary(name)]
        for name in names:
            path = Path(root) / name
            if is_temporary(name) or (path.parent == folder and name in OWN_FILES):
                continue
            with contextlib.suppress(OSError):
                stat = path.lstat()
                found[path.relative_to(folder).as_posix()] = [stat.st_mtime_ns, stat.st_size]
    return found


def _read_manifest(folder: Path) -> dict[str, Any]:
    """The folder's manifest: {"files": {path: command}, "running": {"command", "before"} or None}."""
    path = folder / MANIFEST_FILE
    if not path.exists():
        return {"files": {}, "running": None}
    data = require_mapping(read_json(path, TrainingError), str(path), TrainingError)
    files, running = data.get("files"), data.get("running")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()) or not (
            running is None or (isinstance(running, dict) and isinstance(running.get("command"), str)
                                and isinstance(running.get("before"), dict))):
        raise TrainingError(f"{path}: not a manifest of abz (damaged?); delete it, and --force will then replace "
                            f"only files of the names the command writes")
    return {"files": files, "running": running}


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    atomic_write_text(folder / MANIFEST_FILE, json.dumps(manifest, indent=1, sort_keys=True))


def _settle(folder: Path, manifest: dict[str, Any]) -> None:
    """Record the run the manifest says is running (ended, or killed): every file new or changed since it
    started is its command's; files gone are dropped."""
    running = manifest.get("running")
    now = _files(folder)
    files = {name: command for name, command in manifest["files"].items() if name in now}
    if running is not None:
        for name, stamp in now.items():
            if running["before"].get(name) != stamp:
                files[name] = running["command"]
    manifest.update(files=files, running=None)


def _foreign_outputs(folder: Path, manifest: dict[str, Any], owner: str, outputs: Iterable[str]) -> list[str]:
    """Declared outputs that hold a file the manifest gives to another command, as `NAME (COMMAND)`."""
    found = []
    for name in outputs:
        others = {command for path, command in manifest["files"].items()
                  if (path == name or path.startswith(f"{name}/")) and command != owner}
        if others:
            found.append(f"{name} ({', '.join(sorted(others))})")
    return found


def _remove_own(folder: Path, manifest: dict[str, Any], owner: str, outputs: Iterable[str]) -> None:
    """`--force`: delete the files the manifest gives to `owner` (then the folders that leaves empty) and the
    top-level declared output files no run recorded."""
    own = [name for name, command in manifest["files"].items() if command == owner]
    unrecorded = [name for name in outputs
                  if name not in manifest["files"] and ((folder / name).is_file() or (folder / name).is_symlink())]
    for name in [*own, *unrecorded]:
        path = folder / name
        if path.is_symlink() or path.is_file():
            path.unlink()
            for parent in path.parents:  # the folders this leaves empty, up to the run folder
                if parent == folder or any(parent.iterdir()):
                    break
                parent.rmdir()
    manifest["files"] = {name: command for name, command in manifest["files"].items() if command != owner}


def _describe(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


HANDOVER_S = 15.0
"""How long `_acquire` waits for a lock whose holder names no one: a holder writes its name just after taking
the lock and removes it just before letting go, so a held lock without a name is a run starting or ending (a
resume started the moment the run before it returned meets the latter)."""


def _acquire(path: Path) -> FileLock:
    """The folder's lock; a `TrainingError` naming the holder if another run has it (at once when the holder
    is named, after `HANDOVER_S` when it is not)."""
    lock = FileLock(str(path / LOCK_FILE), timeout=0)
    for wait in (0.0, HANDOVER_S):
        try:
            lock.acquire(timeout=wait)
            return lock
        except Timeout:
            if (path / HOLDER_FILE).is_file():
                break  # a named holder: no handover under way
    raise TrainingError(f"{path} is in use by {_holder(path)}; wait for that run to end or choose another "
                        f"--out folder (one run per output folder)")


def check_out_dir(out: str | os.PathLike[str], command: str, *, force: bool = False, resume: bool = False,
                  can_resume: bool = True, outputs: Iterable[str] = ()) -> None:
    """The refusals of `open_run_dir` that need no lock (a file in the way, nothing to resume, a non-empty
    folder without `--resume`/`--force`): commands call it first to fail before any slow preparation."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {path} exists and is not a folder; give a folder path")
    if (path / LOCK_FILE).exists():
        _acquire(path).release()  # a live run is named before anything else is said about its folder
    _check_contents(path, command, force, resume, can_resume, outputs)


def _check_contents(path: Path, command: str, force: bool, resume: bool, can_resume: bool,
                    outputs: Iterable[str] = ()) -> None:
    existing = user_entries(path)
    if existing and force and not resume:
        foreign = _foreign_outputs(path, _read_manifest(path), _owner(command), outputs)
        if foreign:
            raise ConfigError(f"--out {path} holds files another command wrote where {command} writes its own: "
                              f"{_describe(foreign)}; --force replaces only {command}'s files, so choose another "
                              f"folder")
    if resume and not existing:
        raise TrainingError(f"--resume: {path} holds no earlier run to continue; start without --resume")
    if existing and not resume and not force:
        resume_hint = "pass --resume to continue a run there, " if can_resume else ""
        raise ConfigError(f"--out {path} is not empty (it holds {_describe(existing)}); choose a new folder, "
                          f"{resume_hint}or pass --force to replace only the files {command} writes")


@contextlib.contextmanager
def open_run_dir(out: str | os.PathLike[str], command: str, *, force: bool = False, resume: bool = False,
                 outputs: Iterable[str] = (), primary: bool = True, can_resume: bool = True) -> Iterator[RunDir]:
    """Create (if needed), check and lock the output folder `out` for one run of `command`.

    - `resume=True`: the folder must already hold a run (it is not refused for being non-empty).
    - `force=True`: a non-empty folder is accepted; the files this command wrote there are removed first (see
      the module doc: never a user's file, never another command's; a declared output another command wrote
      is refused).
    - `can_resume=False`: the refusal does not suggest `--resume` (for commands without one).
    - Otherwise a folder holding anything is refused with a `ConfigError` naming what it holds.
    A folder locked by a live run is refused with a `TrainingError` naming the holder.
    """
    path = Path(out)
    run = RunDir(path, command, primary)
    if not primary:
        yield run
        return
    outputs = list(outputs)
    check_out_dir(path, command, force=force, resume=resume, can_resume=can_resume, outputs=outputs)
    path.mkdir(parents=True, exist_ok=True)
    lock = _acquire(path)
    manifest: dict[str, Any] | None = None
    try:
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command}
        atomic_write_text(path / HOLDER_FILE, json.dumps(holder))
        remove_temporaries(path)  # what a killed writer left: no writer is alive now
        manifest = _read_manifest(path)
        _settle(path, manifest)  # a run a kill interrupted
        _check_contents(path, command, force, resume, can_resume, outputs)  # again: no other run can write now
        if force and not resume:
            _remove_own(path, manifest, _owner(command), outputs)
        manifest["running"] = {"command": _owner(command), "before": _files(path)}
        _write_manifest(path, manifest)
        run._lock = lock
        yield run
    finally:
        if manifest is not None and manifest["running"] is not None:
            with contextlib.suppress(OSError):
                _settle(path, manifest)
                _write_manifest(path, manifest)
        with contextlib.suppress(OSError):
            (path / HOLDER_FILE).unlink()
        lock.release()
