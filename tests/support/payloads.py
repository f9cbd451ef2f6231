"""Hostile payloads and the ways a run folder gets damaged."""

from __future__ import annotations

import os
from pathlib import Path

from autobert_zero.train import checkpoint

MODEL_FILE = "mp_rank_00_model_states.pt"
"""The engine's model file inside a checkpoint tag folder."""


class Payload:
    """A pickle that, when unpickled without restriction, creates a folder (standing in for any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.makedirs, (self.marker,))


def damage(folder: Path, how: str) -> None:
    model = folder / MODEL_FILE
    if how == "truncated .pt":
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    elif how == "empty .pt":
        model.write_bytes(b"")
    elif how == "missing .pt":
        model.unlink()
    elif how == "empty state":
        (folder / checkpoint.STATE_FILE).write_text("")
    elif how == "truncated rng":
        rng = folder / "rng-rank0.json"
        rng.write_text(rng.read_text()[:50])
    elif how == "no manifest":
        (folder / checkpoint.MANIFEST_FILE).unlink()
    elif how == "garbage manifest":
        (folder / checkpoint.MANIFEST_FILE).write_text("{\"files\": ")
    elif how == "unlisted file":
        (folder / "extra.pt").write_bytes(b"x")
