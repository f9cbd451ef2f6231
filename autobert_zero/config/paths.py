"""Where things live on disk: the source checkout, the shared real-data folder, caches, shipped files.

The shipped genotypes (`genotypes/*.abz`) and configs (`configs/*.yaml`) are package data of
`autobert_zero.genotypes` and `autobert_zero.configs`, read through `importlib.resources`, so a wheel
installed anywhere finds them: `resolve_shipped("configs/tiny.yaml")` is the file in the working directory
when there is one, else the shipped copy.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePath

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The source checkout (this file is `<repo>/autobert_zero/config/paths.py`); only meaningful for a run from
the source tree or an editable install (in a wheel install it is site-packages' parent)."""

SHIPPED_FOLDERS = {"genotypes": "autobert_zero.genotypes", "configs": "autobert_zero.configs"}
"""The folders a relative path may name to mean the shipped copy: folder → package holding the files."""

_EXTRACTED = contextlib.ExitStack()
atexit.register(_EXTRACTED.close)


def data_dir() -> Path:
    """The real-data folder: `$ABZ_DATA_DIR`, else `<repo>/../shared/data` (it may not exist)."""
    env = os.environ.get("ABZ_DATA_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def tokenizer_cache_dir(configured: str | None) -> Path:
    """The trained-tokenizer cache: the configured folder, else `~/.cache/autobert_zero/tokenizers`."""
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "autobert_zero" / "tokenizers"


def shipped_names(folder: str) -> list[str]:
    """The shipped files of `folder` ("genotypes" or "configs") as the relative names `resolve_shipped` takes,
    sorted: e.g. `["genotypes/autobert_zero.abz", "genotypes/bert.abz"]`."""
    return sorted(f"{folder}/{entry.name}" for entry in _shipped_root(folder).iterdir()
                  if entry.is_file() and not entry.name.startswith(("_", ".")))


def shipped_file(path: str | os.PathLike[str]) -> Path | None:
    """The shipped copy of `genotypes/<name>` or `configs/<name>` as a file on disk; None for any other path
    and for a name that is not shipped."""
    parts = [part for part in PurePath(path).parts if part != "."]
    if len(parts) != 2 or parts[0] not in SHIPPED_FOLDERS:
        return None
    resource = _shipped_root(parts[0]).joinpath(parts[1])
    if not resource.is_file():
        return None
    if isinstance(resource, Path):
        return resource
    # a zipped install: extract once, kept until the process exits
    return _EXTRACTED.enter_context(resources.as_file(resource))


def resolve_shipped(path: str | os.PathLike[str]) -> Path:
    """A path as given if it is absolute or exists from the working directory, else the shipped copy of
    `genotypes/<name>` or `configs/<name>` when there is one, else the path as given (the caller reports it
    missing)."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    return shipped_file(p) or p


def _shipped_root(folder: str) -> Traversable:
    """The shipped folder: the package's resources in an installed wheel; the source tree's folder when the
    package cannot be imported (setuptools' editable installs do not map data-only sub-packages)."""
    try:
        return resources.files(SHIPPED_FOLDERS[folder])
    except ModuleNotFoundError:
        return REPO_ROOT / folder
