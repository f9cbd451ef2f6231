"""The search state on disk: `state.json` (everything needed to continue) and `history.jsonl` (one line per
evaluated candidate, in order: `history.HistoryLine`).

After every evaluation the new history lines are appended (flushed and fsync'd), then `state.json` is
replaced atomically; it records how many history lines it covers and a sha256 of its own body. A kill at
any moment therefore leaves a complete `state.json` from the last good point and a history with at most
some extra (or half-written) lines past it; `load` drops those, so a resumed run continues exactly where
the state says. A `state.json` that is truncated, edited or from another program is refused with a
`SearchError` and nothing in the folder is changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autobert_zero.errors import SearchError
from autobert_zero.io import atomic_write_text

from .history import HistoryLine

STATE_FILE = "state.json"
HISTORY_FILE = "history.jsonl"
FORMAT = "abz-search-state"
VERSION = 1


def rng_to_json(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def rng_from_json(data: list[Any]) -> random.Random:
    rng = random.Random()
    rng.setstate((data[0], tuple(data[1]), data[2]))
    return rng


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


class StateStore:
    """Reads and writes one search folder."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.state_path = self.folder / STATE_FILE
        self.history_path = self.folder / HISTORY_FILE

    def exists(self) -> bool:
        return self.state_path.exists()

    def save(self, body: dict[str, Any], new_lines: Sequence[HistoryLine]) -> None:
        """Append `new_lines` to the history, then write the state (which must count them) atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if new_lines:
            with self.history_path.open("a", encoding="utf-8") as handle:
                handle.write("".join(json.dumps(line.to_json(), sort_keys=True) + "\n" for line in new_lines))
                handle.flush()
                os.fsync(handle.fileno())
        text = json.dumps(body, sort_keys=True)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        atomic_write_text(self.state_path, f'{{"format": "{FORMAT}", "version": {VERSION}, "sha256": "{digest}", '
                                           f'"body": {text}}}\n')

    def load(self, repair: bool = True) -> tuple[dict[str, Any], list[HistoryLine]]:
        """The last good state and the history lines it covers; with `repair`, extra lines past it are
        dropped from the file (only the process that writes the folder repairs it)."""
        where = self.state_path
        if not where.is_file():
            raise SearchError(f"{self.folder} holds no search state ({STATE_FILE} is missing); start a search with "
                              f"`abz search --config FILE --out {self.folder}`")
        try:
            document = json.loads(where.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise SearchError(f"{where} is damaged (not complete JSON: {error}); it is left as it is. It is written "
                              f"atomically, so damage means it was edited or its disk failed; restore it from a "
                              f"copy to resume") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise SearchError(f"{where} is not an abz search state (no \"format\": \"{FORMAT}\")")
        if document.get("version") != VERSION:
            raise SearchError(f"{where} has state version {document.get('version')!r}; this abz reads version "
                              f"{VERSION}")
        body = document.get("body")
        if not isinstance(body, dict) or document.get("sha256") != _digest(body):
            raise SearchError(f"{where} is damaged (its sha256 does not match its content); it is left as it is")
        return body, self._history(int(body["evaluations"]), repair)

    def _history(self, count: int, repair: bool) -> list[HistoryLine]:
        text = self.history_path.read_text(encoding="utf-8") if self.history_path.exists() else ""
        raw = text.split("\n")
        if len(raw) - 1 < count:
            raise SearchError(f"{self.history_path} has {max(len(raw) - 1, 0)} complete lines but the state covers "
                              f"{count}; the history was cut, so the run cannot be resumed exactly")
        lines: list[HistoryLine] = []
        for number, line in enumerate(raw[:count], start=1):
            try:
                lines.append(HistoryLine.from_json(json.loads(line)))
            except json.JSONDecodeError:
                raise SearchError(f"{self.history_path}:{number} is not a JSON line; the history was edited or "
                                  f"damaged") from None
            except (ValueError, TypeError) as error:
                raise SearchError(f"{self.history_path}:{number} is not a search history line ({error}); the "
                                  f"history was edited or damaged") from None
        if repair and (len(raw) - 1 > count or raw[-1]):
            # lines written after the last saved state (a kill between the two writes): drop them
            atomic_write_text(self.history_path, "".join(line + "\n" for line in raw[:count]))
        return lines

    def history(self) -> list[dict[str, Any]]:
        """The history as the state covers it, as JSON objects (for reports and exports; the files are not
        changed)."""
        return [line.to_json() for line in self.load(repair=False)[1]]
