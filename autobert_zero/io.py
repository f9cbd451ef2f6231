"""Atomic file and folder writes: write to a temporary sibling, then rename over the target.

A crash or kill mid-write leaves the previous file or folder intact, never a half-written one. What is
written follows the process umask (like `open`/`mkdir` would), although the temporary files `tempfile`
makes are private (0600/0700); and an error names the target path, not the temporary one.

A folder cannot be renamed over a non-empty folder, so replacing one takes two steps. On Linux they are one:
`renameat2(RENAME_EXCHANGE)` swaps the two folders atomically, and the old one is deleted afterwards.
Elsewhere (or on a file system without the exchange) the old folder is first renamed aside to `.NAME.old`,
the new one renamed in, and the old one deleted; a crash between the two renames leaves the target missing
and `.NAME.old` beside it, and the next `replace_directory` or `atomic_directory` on that target (or
`recover_directory`) puts the old folder back.

Several files written as one output (a model's `config.json` and `model.safetensors`) go through `atomic_files`:
all are written into a temporary folder first and then moved over their namesakes, all or none.

Every temporary name is `.NAME.XXXXXXXX.tmp` (`TEMPORARY_NAME`); a kill leaves such siblings behind, which
`remove_temporaries` deletes (only safe while no writer is alive: the run folder's lock, `autobert_zero.run_dir`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

TEMPORARY_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")
"""The names of this module's temporary files and folders: `.NAME.` + tempfile's 8 random characters + `.tmp`."""
STAGING_NAME = "abz-save"
"""NAME of the temporary folder `atomic_files` stages in (`.abz-save.XXXXXXXX.tmp`, inside the target folder)."""

AT_FDCWD = -100
RENAME_EXCHANGE = 1 << 1
"""renameat2 flag (linux/fs.h): swap the two paths atomically (both must exist)."""


def current_umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _follow_umask(path: str | Path, directory: bool) -> None:
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def follow_umask_tree(folder: str | Path) -> None:
    """Give `folder` and everything below it the modes the umask allows (libraries such as safetensors
    write through private temporary files, 0600, that would otherwise end up in the output)."""
    root = Path(folder)
    _follow_umask(root, directory=True)
    for path in root.rglob("*"):
        if not path.is_symlink():
            _follow_umask(path, directory=path.is_dir())


def _renamed(error: OSError, tmp: str | Path, target: Path) -> OSError:
    """`error` with the temporary path replaced by the user's target path."""
    if error.filename is not None and str(error.filename).startswith(str(tmp)):
        return type(error)(error.errno, error.strerror, str(target))
    return error


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` atomically (the old content survives a crash mid-write)."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically (the old content survives a crash mid-write)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _follow_umask(tmp, directory=False)
        os.replace(tmp, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _renamed(error, tmp, path) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """libc's renameat2 (Linux, glibc 2.28 or later), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically; False where the system or file system cannot (nothing changed)."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOENT):
        return False  # no such system call, a file system without the exchange, or a path gone meanwhile
    raise OSError(code, os.strerror(code), str(b))


def _aside(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


def recover_directory(path: str | Path) -> None:
    """Finish a folder replacement a crash interrupted: if `path` is missing but its `.NAME.old` (the previous
    folder, renamed aside) exists, put it back; if both exist, the replacement was done and only the
    deletion of `.NAME.old` was lost, so delete it."""
    path = Path(path)
    old = _aside(path)
    if not old.exists():
        return
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(old, path)


def replace_directory(new: str | Path, path: str | Path) -> None:
    """Move the folder `new` to `path`, replacing the folder there (if any) so that `path` holds the old or
    the new folder at any moment a crash could happen (see the module doc). `new` must be on the same file
    system (a sibling)."""
    new, path = Path(new), Path(path)
    recover_directory(path)
    if path.exists() and _exchange(new, path):
        shutil.rmtree(new, ignore_errors=True)  # it now holds the old folder
        return
    old = _aside(path)
    moved_aside = path.exists()
    if moved_aside:
        os.replace(path, old)
    try:
        os.replace(new, path)
    except OSError:
        if moved_aside:
            os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _temporary_sibling(path: Path) -> Iterator[Path]:
    """A new private folder beside `path` (removed if the block fails; errors name `path`); on success its
    tree is given the modes the umask allows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    _follow_umask(tmp, directory=True)
    try:
        yield tmp
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _renamed(error, tmp, path) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    follow_umask_tree(tmp)


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it replaces `path` (`replace_directory`: an old
    folder is removed, and at no moment is `path` missing or half-written for good)."""
    path = Path(path)
    recover_directory(path)
    with _temporary_sibling(path) as tmp:
        yield tmp
    try:
        replace_directory(tmp, path)
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _renamed(error, tmp, path) from None


@contextlib.contextmanager
def atomic_new_directory(path: str | Path) -> Iterator[Path]:
    """Like `atomic_directory`, but a folder already at `path` wins: the new one is renamed in only where
    nothing is there, else dropped. For caches that concurrent processes may fill with the same entry, so
    that none replaces a folder another is reading."""
    path = Path(path)
    with _temporary_sibling(path) as tmp:
        yield tmp
    try:
        os.rename(tmp, path)
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if not path.is_dir():  # not a lost race with another process: a real failure
            raise _renamed(error, tmp, path) from None


def is_temporary(name: str) -> bool:
    """Whether `name` is one of this module's temporary names (`TEMPORARY_NAME`)."""
    return TEMPORARY_NAME.fullmatch(name) is not None


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files and folders (`TEMPORARY_NAME`) that killed writers left anywhere under
    `folder`; returns what was deleted. Only while no writer into `folder` is alive (hold its lock)."""
    removed: list[Path] = []
    for root, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            if is_temporary(name):
                path = Path(root) / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                removed.append(path)
        dirs[:] = [name for name in dirs if not is_temporary(name)]
    return removed


def _renamed_into(error: OSError, tmp: Path, folder: Path) -> OSError:
    """`error` with a path inside the staging folder `tmp` replaced by the same path inside `folder`."""

    def mapped(name: object) -> object:
        if name is None:
            return None
        path = Path(os.fsdecode(name))  # type: ignore[arg-type]
        return str(folder / path.relative_to(tmp)) if path == tmp or tmp in path.parents else name

    filename, filename2 = mapped(error.filename), mapped(error.filename2)
    if (filename, filename2) == (error.filename, error.filename2):
        return error
    return type(error)(error.errno, error.strerror, filename, None, filename2)


@contextlib.contextmanager
def atomic_files(folder: str | Path) -> Iterator[Path]:
    """Yield a temporary folder inside `folder` (created if needed); on success each file written there
    replaces its namesake in `folder`, all or none: a folder in the way is refused before anything moves, and a
    move that fails puts the files already moved back. Every other entry of `folder` stays. Errors name paths
    in `folder`, never the temporary folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{STAGING_NAME}.", suffix=".tmp", dir=folder))
    try:
        try:
            yield tmp
            follow_umask_tree(tmp)
            _move_files(tmp, folder)
        except OSError as error:
            raise _renamed_into(error, tmp, folder) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _move_files(staged: Path, folder: Path) -> None:
    names = sorted(p.name for p in staged.iterdir())
    for name in names:  # refuse before anything moves
        if (staged / name).is_dir() or ((folder / name).is_dir() and not (folder / name).is_symlink()):
            raise IsADirectoryError(errno.EISDIR, "a folder is in the way of a file to write", str(staged / name))
    aside = staged / ".replaced"
    aside.mkdir()
    done: list[tuple[str, bool]] = []
    try:
        for name in names:
            existed = os.path.lexists(folder / name)
            if existed:
                os.replace(folder / name, aside / name)
            done.append((name, existed))
            os.replace(staged / name, folder / name)
    except OSError:
        for name, existed in reversed(done):  # put the previous files back
            with contextlib.suppress(OSError):
                if existed:
                    os.replace(aside / name, folder / name)
                else:
                    os.unlink(folder / name)
        raise
