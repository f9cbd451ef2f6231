"""Plots without a display: matplotlib's file-only backend, chosen once, and atomic PNG writes.

matplotlib is the `[report]` extra; `pyplot()` imports it on first use so that nothing else pays for it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

from autobert_zero.errors import ConfigError


def pyplot() -> Any:
    """`matplotlib.pyplot` on the Agg backend (no display needed; chosen before pyplot is first imported);
    `ConfigError` naming the `[report]` extra when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("plots need matplotlib, which is not installed; install it with "
                          "`pip install 'autobert-zero[report]'`") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Write `fig` to `path` as a PNG through a temporary sibling (a kill mid-write leaves the old plot), then
    close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        pyplot().close(fig)
    return path
