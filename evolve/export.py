"""The best genotypes of a search as `.abz` files: `OUT/rank1/genotype.abz`, `OUT/rank2/...`.

Each file starts with comment lines (fitness, id, history index, the formula of every attention graph) and
parses back to the candidate (`abz check` accepts it). The Hugging Face folders beside them are written
by the `abz export` command (`autobert_zero/cli/search.py`), which may import the compiler.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from autobert_zero.grammar import formula, parse_genotype
from autobert_zero.io import atomic_write_text

from .history import HistoryLine, best_lines


def best_candidates(history: Sequence[Mapping[str, Any]], top: int) -> list[dict[str, Any]]:
    """The `top` best distinct genotypes (by fitness, earliest first on ties) of a history, as JSON objects
    (`StateStore.history`)."""
    return [line.to_json() for line in best_lines(map(HistoryLine.from_json, history), top)]


def genotype_file_text(line: Mapping[str, Any]) -> str:
    """A history line's genotype as a commented .abz text."""
    genotype = parse_genotype(line["genotype"])
    header = [f"# found by abz search: fitness {line['fitness']:.6g}, candidate #{line['index']}, "
              f"id {line['id']}"]
    header += [f"#   {g.name}: {formula(g)}" for g in genotype.graphs]
    return "\n".join(header) + "\n\n" + line["genotype"]


def write_genotypes(best: Sequence[Mapping[str, Any]], out: Path) -> list[Path]:
    """Write `out/rank{i}/genotype.abz` for each line; returns the rank folders."""
    folders = []
    for rank, line in enumerate(best, start=1):
        folder = out / f"rank{rank}"
        atomic_write_text(folder / "genotype.abz", genotype_file_text(line))
        folders.append(folder)
    return folders
