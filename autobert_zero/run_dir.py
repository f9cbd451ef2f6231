"""Output folders of the commands that write one (compile, pretrain, finetune, supernet, search, audit).

Three rules hold for every such folder, so no command loses a user's files:

1. **Refuse a non-empty folder.** A folder that holds anything (besides this module's own lock files) is
   refused unless the run resumes (`resume=True`) or the user passed `--force`; with `force=True` only the
   outputs the command declares (`outputs=`) are removed, everything else in the folder stays.
2. **One run per folder.** An exclusive lock (`filelock`, released by the OS when the holder dies) is held
   for the whole run; a second run into the same folder is refused with the holder's pid, host and command.
3. **Outputs follow the umask** (folders made here with `mkdir`; see `autobert_zero.io` for files).

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
import shutil
import socket
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from autobert_zero.errors import ConfigError, TrainingError
from autobert_zero.io import atomic_write_text

LOCK_FILE = ".abz.lock"
"""Lock file (empty; kept after the run, since deleting a lock file races with a new holder)."""
HOLDER_FILE = ".abz.lock.json"
"""Who holds the lock: pid, host and command line (removed when the run ends)."""
SUMMARY_FILE = "summary.json"
"""Written last by a resumable command: its presence means the run finished (see `RunDir.finished`)."""
OWN_FILES = frozenset({LOCK_FILE, HOLDER_FILE})


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
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return summary if isinstance(summary, dict) else None

    def mark_finished(self, summary: dict[str, Any]) -> None:
        """Write `summary.json` atomically (primary process only): the run is complete."""
        if self.primary:
            atomic_write_text(self.path / SUMMARY_FILE, json.dumps(summary, indent=1))


def user_entries(folder: Path) -> list[str]:
    """Names in `folder` other than this module's lock files (sorted); [] if it does not exist."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name not in OWN_FILES)


def _holder(folder: Path) -> str:
    try:
        info = json.loads((folder / HOLDER_FILE).read_text(encoding="utf-8"))
        return f"pid {info['pid']} on {info['host']} ({info['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (its pid file is not readable)"


def _describe(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _acquire(path: Path) -> FileLock:
    """The folder's lock, taken without waiting; a `TrainingError` naming the holder if another run has it."""
    lock = FileLock(str(path / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise TrainingError(f"{path} is in use by {_holder(path)}; wait for that run to end or choose another "
                            f"--out folder (one run per output folder)") from None
    return lock


def check_out_dir(out: str | os.PathLike[str], command: str, *, force: bool = False, resume: bool = False,
                  can_resume: bool = True) -> None:
    """The refusals of `open_run_dir` that need no lock (a file in the way, nothing to resume, a non-empty
    folder without `--resume`/`--force`): commands call it first to fail before any slow preparation."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {path} exists and is not a folder; give a folder path")
    if (path / LOCK_FILE).exists():
        _acquire(path).release()  # a live run is named before anything else is said about its folder
    _check_contents(path, command, force, resume, can_resume)


def _check_contents(path: Path, command: str, force: bool, resume: bool, can_resume: bool) -> None:
    existing = user_entries(path)
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
    - `force=True`: a non-empty folder is accepted; the entries named in `outputs` are removed first.
    - `can_resume=False`: the refusal does not suggest `--resume` (for commands without one).
    - Otherwise a folder holding anything is refused with a `ConfigError` naming what it holds.
    A folder locked by a live run is refused with a `TrainingError` naming the holder.
    """
    path = Path(out)
    run = RunDir(path, command, primary)
    if not primary:
        yield run
        return
    check_out_dir(path, command, force=force, resume=resume, can_resume=can_resume)
    path.mkdir(parents=True, exist_ok=True)
    lock = _acquire(path)
    try:
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join([command, *sys.argv[1:]])}
        atomic_write_text(path / HOLDER_FILE, json.dumps(holder))
        _check_contents(path, command, force, resume, can_resume)  # again, now that no other run can write
        if force and not resume:
            for name in outputs:
                _remove(path / name)
        run._lock = lock
        yield run
    finally:
        with contextlib.suppress(OSError):
            (path / HOLDER_FILE).unlink()
        lock.release()
