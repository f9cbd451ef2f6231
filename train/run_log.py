"""Metrics of a run: JSON lines in `<out>/metrics.jsonl` and, when asked, TensorBoard event files.

Only rank 0 writes. On resume, lines after the resumed step (written by the killed run after its last
checkpoint) are dropped first, and so is a line a kill cut short, so the file reads as one uninterrupted run.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import TracebackType
from typing import Any

from autobert_zero.errors import ConfigError
from autobert_zero.io import atomic_write_text

METRICS_FILE = "metrics.jsonl"


class RunLog:
    """Append-only metric records (`{"step": …, "loss": …, …}`) for one output folder."""

    def __init__(self, out_dir: Path, enabled: bool, tensorboard: bool, resume_step: int | None = None) -> None:
        self.path = out_dir / METRICS_FILE
        self.enabled = enabled
        self._tb: Any = None
        if tensorboard:  # on every rank, so that all of them stop, not rank 0 alone
            require_tensorboard()
        if not enabled:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            atomic_write_text(self.path, "")
        else:
            self._truncate_after(resume_step)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(out_dir / "tensorboard"), purge_step=resume_step)

    def _truncate_after(self, step: int) -> None:
        if not self.path.is_file():
            return
        keep = [line for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines()
                if (record := _record(line)) is not None and record.get("step", 0) <= step]
        atomic_write_text(self.path, "".join(f"{line}\n" for line in keep))

    def write(self, record: dict[str, Any], prefix: str = "train") -> None:
        """Append one record; numeric fields also go to TensorBoard as `<prefix>/<name>`."""
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        self.scalars(record, prefix)

    def scalars(self, record: dict[str, Any], prefix: str) -> None:
        """Numeric fields of `record` to TensorBoard only (e.g. final evaluations)."""
        if self._tb is not None:
            step = int(record.get("step", 0))
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float):
                    self._tb.add_scalar(f"{prefix}/{key}", value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def require_tensorboard() -> None:
    """Raise `ConfigError` naming the extra to install when `logging.tensorboard: true` but TensorBoard is not
    installed (checked before the run writes anything)."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("logging.tensorboard: true needs TensorBoard, which is not installed; install it with "
                          "`pip install 'autobert-zero[tensorboard]'` or set logging.tensorboard: false")


def _record(line: str) -> dict[str, Any] | None:
    """One metrics line as a record; None for a blank line or one a kill cut short (not a JSON object)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def read_metrics(out_dir: str | Path) -> list[dict[str, Any]]:
    """The records of `<out_dir>/metrics.jsonl`, in order."""
    path = Path(out_dir) / METRICS_FILE
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def logged_loss(out_dir: str | Path, step: int) -> float | None:
    """The training loss `<out_dir>/metrics.jsonl` records for `step`, or None (no such record or file)."""
    path = Path(out_dir) / METRICS_FILE
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    losses = [record["loss"] for line in lines if (record := _record(line)) is not None
              and record.get("step") == step and isinstance(record.get("loss"), int | float)
              and not isinstance(record.get("loss"), bool)]
    return float(losses[-1]) if losses else None
