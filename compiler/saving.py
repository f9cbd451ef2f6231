"""Saving a model as a Hugging Face folder without importing DeepSpeed.

`PreTrainedModel.save_pretrained` unwraps distributed containers through accelerate's
`extract_model_from_parallel`, which imports deepspeed whenever it is installed, only to test
`isinstance(model, DeepSpeedEngine)`; the import prints DeepSpeed's accelerator warnings in commands that
never train (`abz compile`). An object cannot be a `DeepSpeedEngine` unless deepspeed has been imported,
so while saving, accelerate is told deepspeed is available only when it is already in `sys.modules`: the
unwrapped model is the same, the import is skipped. Under training (deepspeed imported) nothing changes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def deepspeed_import_deferred() -> Iterator[None]:
    """Within the block, accelerate's unwrapping does not import deepspeed unless it is imported already."""
    try:
        from accelerate.utils import other
    except ImportError:  # no accelerate: transformers unwraps without it
        yield
        return
    original: Callable[[], bool] | None = getattr(other, "is_deepspeed_available", None)
    if original is None:  # another accelerate layout: save as it would
        yield
        return
    other.is_deepspeed_available = lambda: "deepspeed" in sys.modules and original()
    try:
        yield
    finally:
        other.is_deepspeed_available = original


def save_pretrained(model: Any, folder: str | Path, **kwargs: Any) -> None:
    """`model.save_pretrained(folder, **kwargs)` without importing deepspeed."""
    with deepspeed_import_deferred():
        model.save_pretrained(str(folder), **kwargs)
