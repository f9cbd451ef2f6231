"""Where things live on disk: the repository, the shared real-data folder, caches, shipped files."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The repository root (this file is `<repo>/train/paths.py`; valid for editable installs)."""


def data_dir() -> Path:
    """The real-data folder: `$ABZ_DATA_DIR`, else `<repo>/../shared/data` (it may not exist)."""
    env = os.environ.get("ABZ_DATA_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def tokenizer_cache_dir(configured: str | None) -> Path:
    """The trained-tokenizer cache: the configured folder, else `~/.cache/autobert_zero/tokenizers`."""
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "autobert_zero" / "tokenizers"


def resolve_shipped(path: str | os.PathLike[str]) -> Path:
    """A relative path as given if it exists from the working directory, else under the repository."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    candidate = REPO_ROOT / p
    return candidate if candidate.exists() else p
