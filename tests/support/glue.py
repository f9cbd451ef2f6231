"""A tiny SST-2 folder in the GLUE TSV layout."""

from __future__ import annotations

from pathlib import Path


def write_sst2(folder: Path) -> Path:
    rows = [("a fine , moving film", 1), ("dull and lifeless", 0), ('a "great" joy', 1), ("a mess", 0)] * 6
    for split in ("train", "dev"):
        path = folder / "SST-2" / f"{split}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in rows), encoding="utf-8")
    return folder
