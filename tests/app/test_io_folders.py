"""Folder writes (autobert_zero/io.py): a crash at any moment leaves the old or the new folder, never none;
and a cache entry written by two processes keeps the first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autobert_zero import io
from autobert_zero.io import atomic_directory, atomic_new_directory, recover_directory
from tests.support.paths import REPO
from tests.support.training import subprocess_env

KILLED_BETWEEN_THE_RENAMES = """
import os, signal, sys
from pathlib import Path
from autobert_zero import io

io._exchange = lambda a, b: False  # the two-rename path (systems without renameat2's exchange)
rename = os.replace

def replace(src, dst):
    if str(src).endswith(".tmp"):  # the new folder is about to move in; the old one is already aside
        os.kill(os.getpid(), signal.SIGKILL)
    rename(src, dst)

os.replace = replace
with io.atomic_directory(Path(sys.argv[1])) as tmp:
    (tmp / "version").write_text("new")
"""


def write(target: Path, version: str) -> None:
    with atomic_directory(target) as tmp:
        (tmp / "version").write_text(version)


def test_a_crash_between_the_two_renames_is_undone_by_the_next_use(tmp_path: Path) -> None:
    target = tmp_path / "final"
    write(target, "old")
    proc = subprocess.run([sys.executable, "-c", KILLED_BETWEEN_THE_RENAMES, str(target)], env=subprocess_env(),
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]
    aside = tmp_path / ".final.old"
    assert not target.exists() and (aside / "version").read_text() == "old"  # the window the crash hit
    with pytest.raises(RuntimeError), atomic_directory(target):
        raise RuntimeError("the next writer fails too")
    assert (target / "version").read_text() == "old" and not aside.exists()  # put back before writing
    write(target, "new")
    assert (target / "version").read_text() == "new"


def test_recover_finishes_a_replacement_whose_cleanup_was_lost(tmp_path: Path) -> None:
    target, aside = tmp_path / "final", tmp_path / ".final.old"
    write(target, "new")
    aside.mkdir()
    (aside / "version").write_text("old")
    recover_directory(target)
    assert (target / "version").read_text() == "new" and not aside.exists()
    recover_directory(tmp_path / "never-written")  # nothing to do


def exchange_works(folder: Path) -> bool:
    (folder / "a").mkdir()
    (folder / "b").mkdir()
    return io._exchange(folder / "a", folder / "b")


def test_with_renameat2_the_target_is_swapped_in_one_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    if not exchange_works(probe):
        pytest.skip("no renameat2 RENAME_EXCHANGE on this system or file system")
    target = tmp_path / "final"
    write(target, "old")

    def two_step_rename(src: object, dst: object) -> None:
        raise AssertionError(f"os.replace({src}, {dst}): the target would be missing for a moment")

    monkeypatch.setattr(os, "replace", two_step_rename)
    write(target, "new")
    assert (target / "version").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final", "probe"]  # the old folder is gone


def test_a_new_cache_entry_keeps_the_first_writer(tmp_path: Path) -> None:
    target = tmp_path / "entry"
    with atomic_new_directory(target) as tmp:
        (tmp / "version").write_text("first")
    with atomic_new_directory(target) as tmp:
        (tmp / "version").write_text("second")
    assert (target / "version").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry"]  # the loser's copy is dropped
