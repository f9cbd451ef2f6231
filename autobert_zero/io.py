"""Atomic file and folder writes: write to a temporary sibling, then rename over the target.

A crash or kill mid-write leaves the previous file or folder intact, never a half-written one. What is
written follows the process umask (like `open`/`mkdir` would), although the temporary files `tempfile`
makes are private (0600/0700); and an error names the target path, not the temporary one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


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


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it replaces `path` (an old folder is removed)."""
    path = Path(path)
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
    old = path.with_name(f".{path.name}.old")
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
