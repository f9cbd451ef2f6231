"""Saving a model as a Hugging Face folder without DeepSpeed's start-up log.

`PreTrainedModel.save_pretrained` unwraps distributed containers first. Without accelerate, transformers
does it by hand (`model.module`); with accelerate installed, it calls accelerate's
`extract_model_from_parallel`, which imports deepspeed whenever deepspeed is installed, only to test
`isinstance(model, DeepSpeedEngine)`, and deepspeed's import logs "Setting accelerator to CPU" (on stdout)
in commands that never train (`abz compile`).

accelerate is therefore not a dependency of this package: a plain install saves without importing
deepspeed. Where accelerate is installed anyway, the import still happens (about 2 s) and its log lines
below ERROR are dropped while saving, through a filter on DeepSpeed's logger: the public `logging` API,
nothing of either library is patched, and the filter is removed after the save, so training logs as usual.
`tests/compiler/test_saving.py` fails if DeepSpeed renames its logger or stops logging at import.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEEPSPEED_LOGGER = "DeepSpeed"
"""The name of DeepSpeed's logger (`deepspeed.utils.logging.logger`)."""


class _BelowError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


@contextmanager
def deepspeed_logs_silenced() -> Iterator[None]:
    """Within the block, DeepSpeed's logger drops records below ERROR (its import-time accelerator notes)."""
    logger = logging.getLogger(DEEPSPEED_LOGGER)
    quiet = _BelowError()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def save_pretrained(model: Any, folder: str | Path, **kwargs: Any) -> None:
    """`model.save_pretrained(folder, **kwargs)` (safetensors), without DeepSpeed's start-up log."""
    with deepspeed_logs_silenced():
        model.save_pretrained(str(folder), **kwargs)
