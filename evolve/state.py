"""The search state on disk: `state.json` (everything needed to continue) and `history.jsonl` (one line per
evaluated candidate, in order: `history.HistoryLine`).

After every evaluation the new history lines are appended (flushed and fsync'd), then `state.json` is
replaced atomically. The state records how many history lines it covers and a sha256 of their exact bytes
(`history_sha256`), the run identity it was started under (`run`: the whole resolved config, the supernet's
weights hash and step, the seed genotypes' texts; see `check_run`) and a sha256 of its own body. A search
writes its first state (0 lines) before its first history line, so a kill at any moment leaves a complete
`state.json` from the last good point and a history with at most some extra (or half-written) lines past
it, which are the kill's leftovers and are cut. A history without a state was not left by a kill: it is
refused, never appended to or cut.

Every read checks the whole state against its schema (bounded depth, types, a population and pending
round that fit the history) and every covered history line against the digest before anything acts on
it; nothing in the folder is changed before that has passed, and what fails is a `SearchError` naming the
file. Version 1 states (before the run identity and the history digest) are still read by `abz report`
and `abz export`, which can then check the history's form but not that it is the one the search wrote;
`abz resume` refuses them.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autobert_zero.errors import AbzError, SearchError, SupernetError
from autobert_zero.io import atomic_write_text
from autobert_zero.json_files import flatten, parse_json, read_json, require_keys, require_mapping, shorten

from .history import HistoryLine
from .priority import STREAMS, rng_state

STATE_FILE = "state.json"
HISTORY_FILE = "history.jsonl"
FORMAT = "abz-search-state"
VERSION = 3
"""2: the state records the run identity (`run`) and the digest of the history it covers (`history_sha256`);
3: a priority table per decision kind and the per-kind random streams (`priority`), the decisions of pending
candidates (`choices`); no single `rng`."""
READ_VERSIONS = (1, 2, 3)
"""Versions read; versions 1 and 2 only by report and export (a resume cannot continue their random draws)."""
IDENTITY_VERSION = 2
"""The first version that records the run identity and the history digest."""
RESUMABLE_VERSION = 3


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------------
# run identity


def supernet_identity(folder: str | Path) -> dict[str, Any]:
    """What identifies a supernet folder's weights, whatever its path: a sha256 over every file of `final/`
    (names and bytes: the weights, their config and the tokenizer) and the training step its `summary.json`
    records (None when it records none)."""
    root = Path(folder)
    final = root / "final"
    files = sorted(p for p in final.rglob("*") if p.is_file()) if final.is_dir() else []
    if not any(p.suffix == ".safetensors" for p in files):
        raise SupernetError(f"supernet folder {root}: no final/*.safetensors weights; expected the --out folder of "
                            f"a finished `abz supernet` run")
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(final).as_posix()}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    step = None
    if (root / "summary.json").is_file():
        summary = require_mapping(read_json(root / "summary.json", SupernetError), str(root / "summary.json"),
                                  SupernetError)
        steps = summary.get("steps")
        step = steps if isinstance(steps, int) and not isinstance(steps, bool) else None
    return {"sha256": digest.hexdigest(), "step": step}


def run_changes(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What differs between two run identities (`run` of a state), one "key old -> new" per difference:
    config keys by their dotted name, then the supernet's weights and step, the language's grammar and op
    sha256s, then the data and vocabulary hashes the fitness reads."""
    before = flatten(saved.get("config") or {}, keep_empty=True)
    after = flatten(current.get("config") or {}, keep_empty=True)
    def shown(values: Mapping[str, Any], key: str) -> str:
        return shorten(values[key]) if key in values else "(absent)"

    changes = [f"{key} {shown(before, key)} -> {shown(after, key)}"
               for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)]
    old, new = saved.get("supernet"), current.get("supernet")
    if old != new:
        if old is None or new is None:
            changes.append(f"supernet {'none' if old is None else 'weights'} -> {'none' if new is None else 'weights'}")
        else:
            if old.get("sha256") != new.get("sha256"):
                before_hash, after_hash = str(old.get("sha256"))[:12], str(new.get("sha256"))[:12]
                changes.append(f"supernet weights sha256 {before_hash} -> {after_hash}")
            if old.get("step") != new.get("step"):
                changes.append(f"supernet step {old.get('step')} -> {new.get('step')}")
    from autobert_zero.grammar.loading import language_changes

    changes += language_changes(saved.get("language"), current.get("language"))
    old_data, new_data = saved.get("data") or {}, current.get("data") or {}
    changes += [f"data {key} {str(old_data.get(key, '(absent)'))[:12]} -> {str(new_data.get(key, '(absent)'))[:12]}"
                for key in sorted(set(old_data) | set(new_data)) if old_data.get(key) != new_data.get(key)]
    return changes


def check_run(saved: Mapping[str, Any] | None, current: Mapping[str, Any], where: Path) -> None:
    """Refuse to continue a state whose run identity (`saved`) differs from the run about to continue it,
    naming every changed key."""
    if saved is None:
        raise SearchError(f"{where} records no run identity (it was not written by `abz search`), so a resume "
                          f"cannot check that it continues the same run; start a new search")
    changes = run_changes(saved, current)
    if changes:
        what = ("the supernet" if all(change.startswith("supernet ") for change in changes)
                else "the data" if all(change.startswith("data ") for change in changes) else "config")
        raise SearchError(f"{what} changed since the search started: {', '.join(changes)}; start a new search or "
                          f"undo the edit")


# ---------------------------------------------------------------------------------------------------
# schema of state.json


_INT = (int,)
_NUMBER = (int, float)
_NUMBER_OR_NONE = (int, float, type(None))
_BODY_KEYS: dict[str, type | tuple[type, ...]] = {
    "seed": _INT, "round": _INT, "evaluations": _INT, "config": dict, "num_layers": _INT,
    "population": list, "pending": list, "priority": dict, "rejections": dict, "fitness_calls": _INT,
    "duplicates": _INT, "supernet": (str, type(None)), "finished": bool,
}
_CONFIG_KEYS: dict[str, type | tuple[type, ...]] = {
    "strategy": str, "evaluations": _INT, "population_size": _INT, "tournament_size": _INT, "round_size": _INT,
    "fitness": str,
}
_PENDING_KEYS: dict[str, type | tuple[type, ...]] = {
    "genotype": str, "id": str, "parent": (str, type(None)), "parent_fitness": _NUMBER_OR_NONE, "mutation": str,
    "ops": list, "detail": str, "invalid": _INT, "choices": list, "record": (dict, type(None)),
}
_RUN_KEYS: dict[str, type | tuple[type, ...]] = {"config": dict, "supernet": (dict, type(None)), "seeds": list,
                                                  "data": dict}


def _positive(body: Mapping[str, Any], keys: Sequence[str], where: str) -> None:
    for key in keys:
        if body[key] < 0:
            raise SearchError(f"{where}: key {key!r} is {body[key]}, expected a count (0 or more)")


def _str_map(value: Mapping[str, Any], kinds: type | tuple[type, ...], where: str) -> None:
    for key, item in value.items():
        require_keys({key: item}, where, {key: kinds}, SearchError)


def check_body(body: Any, where: str, version: int) -> dict[str, Any]:
    """`body` (of a state.json of `version`) if it has the form a search writes, else a `SearchError`
    naming the first key that does not fit. What it says about the history is checked with the history
    (`check_against_history`)."""
    body = require_keys(body, where, _BODY_KEYS, SearchError)
    pending_keys = _PENDING_KEYS if version >= RESUMABLE_VERSION else {
        k: v for k, v in _PENDING_KEYS.items() if k != "choices"}
    _positive(body, ("round", "evaluations", "fitness_calls", "duplicates"), where)
    if "fitness_seconds" in body:
        require_keys(body, where, {"fitness_seconds": _NUMBER}, SearchError)
    config = require_keys(body["config"], f"{where}: config", _CONFIG_KEYS, SearchError)
    if min(config[k] for k in ("evaluations", "population_size", "tournament_size", "round_size")) < 1:
        raise SearchError(f"{where}: config: evaluations, population_size, tournament_size and round_size must be "
                          f"positive")
    if body["num_layers"] < 1:
        raise SearchError(f"{where}: key 'num_layers' is {body['num_layers']}, expected a positive count")
    if version < RESUMABLE_VERSION:
        require_keys(body, where, {"rng": list}, SearchError)
        _check_rng(body["rng"], f"{where}: key 'rng'")
    for member in body["population"]:
        if not (isinstance(member, list) and len(member) == 3):
            raise SearchError(f"{where}: population member {shorten(member)} is not [id, fitness, index]")
        require_keys(dict(zip(("id", "fitness", "index"), member, strict=True)), f"{where}: population member",
                     {"id": str, "fitness": _NUMBER, "index": _INT}, SearchError)
    for entry in body["pending"]:
        entry = require_keys(entry, f"{where}: pending candidate", pending_keys, SearchError)
        if set(entry) != set(pending_keys):
            raise SearchError(f"{where}: pending candidate has keys {sorted(entry)}; expected {sorted(pending_keys)}")
        if not all(isinstance(op, str) for op in entry["ops"]):
            raise SearchError(f"{where}: pending candidate ops {shorten(entry['ops'])} are not all op names")
        if not all(isinstance(c, list) and len(c) == 2 and all(isinstance(x, str) for x in c)
                   for c in entry.get("choices", [])):
            raise SearchError(f"{where}: pending candidate choices {shorten(entry['choices'])} are not all "
                              f"[kind, option] pairs")
        if entry["record"] is not None:
            try:
                HistoryLine.from_json(entry["record"])
            except (ValueError, TypeError) as error:
                raise SearchError(f"{where}: a pending candidate's record is not a history line ({error})") from None
    if version >= RESUMABLE_VERSION:
        _check_chooser(body["priority"], f"{where}: priority")
    else:
        _check_table(body["priority"], f"{where}: priority")
    _str_map(body["rejections"], _INT, f"{where}: rejections")
    if version >= IDENTITY_VERSION:
        require_keys(body, where, {"history_sha256": str, "run": (dict, type(None))}, SearchError)
        if body["run"] is not None:
            run = require_keys(body["run"], f"{where}: run", _RUN_KEYS, SearchError)
            if run["supernet"] is not None:
                require_keys(run["supernet"], f"{where}: run supernet", {"sha256": str, "step": (int, type(None))},
                             SearchError)
            for seed in run["seeds"]:
                if not (isinstance(seed, list) and len(seed) == 2 and all(isinstance(s, str) for s in seed)):
                    raise SearchError(f"{where}: run seeds hold {shorten(seed)}, expected [file, genotype text]")
    return body


def _check_rng(value: Any, where: str) -> None:
    try:
        random.Random().setstate(rng_state(value))
    except (TypeError, ValueError, OverflowError, IndexError):
        raise SearchError(f"{where} is not a saved random-number state") from None


def _check_table(value: Any, where: str) -> None:
    """One priority table (`OperationPriority.to_json`)."""
    table = require_keys(value, where, {"counts": dict, "sums": dict, "low": _NUMBER_OR_NONE,
                                        "high": _NUMBER_OR_NONE}, SearchError)
    _str_map(table["counts"], _INT, f"{where} counts")
    _str_map(table["sums"], _NUMBER, f"{where} sums")


def _check_chooser(value: Any, where: str) -> None:
    """The streams, divert counts and per-kind tables of a `Chooser.to_json`."""
    chooser = require_keys(value, where, {"streams": dict, "diverted": dict, "tables": dict}, SearchError)
    missing = sorted(set(STREAMS) - set(chooser["streams"]))
    if missing:
        raise SearchError(f"{where}: streams lack {', '.join(missing)}")
    for name, state in chooser["streams"].items():
        _check_rng(state, f"{where}: stream {name!r}")
    _str_map(chooser["diverted"], _INT, f"{where}: diverted")
    for kind, table in chooser["tables"].items():
        _check_table(table, f"{where}: table {kind!r}")


def check_against_history(body: Mapping[str, Any], history: Sequence[HistoryLine], where: str) -> None:
    """The population and the pending round must be made of the history's candidates."""
    for candidate_id, _, index in body["population"]:
        if not 0 <= index < len(history) or history[index].id != candidate_id:
            raise SearchError(f"{where}: population member {shorten(candidate_id)} names history line {index}, "
                              f"which holds another candidate")
    if len(body["population"]) > body["config"]["population_size"]:
        raise SearchError(f"{where}: {len(body['population'])} population members, more than population_size")


# ---------------------------------------------------------------------------------------------------
# the store


@dataclass
class _Covered:
    """The history lines the state on disk covers: how many, how many bytes, their running sha256."""

    count: int
    size: int
    digest: Any


class StateStore:
    """Reads and writes one search folder. `run`: the run identity recorded in every state it writes (taken
    from the state on disk when not given)."""

    def __init__(self, folder: str | Path, run: Mapping[str, Any] | None = None) -> None:
        self.folder = Path(folder)
        self.state_path = self.folder / STATE_FILE
        self.history_path = self.folder / HISTORY_FILE
        self.run: dict[str, Any] | None = dict(run) if run is not None else None
        self._covered: _Covered | None = None
        self._version = 0
        """The version of the state last loaded (0: none loaded)."""

    def exists(self) -> bool:
        return self.state_path.exists()

    def orphan_lines(self) -> int:
        """Complete history lines in a folder without a state (0 when there is a state or no history)."""
        if self.exists() or not self.history_path.exists():
            return 0
        return max(self.history_path.read_bytes().count(b"\n"), 1 if self.history_path.stat().st_size else 0)

    def refuse_orphan_history(self) -> None:
        """A history without a state: nothing says which lines are whole and were relied on, and a kill does
        not leave one (the first state is written before the first line), so it is refused, not cut."""
        if (lines := self.orphan_lines()) > 0:
            raise SearchError(f"{self.history_path} holds {lines} line(s) but there is no {STATE_FILE}: the state was "
                              f"deleted or the folder was not written by this abz, so nothing says which lines the "
                              f"run relied on; it is left as it is. Restore {STATE_FILE} from a copy, or move the "
                              f"history away to start the search afresh")

    def save(self, body: dict[str, Any], new_lines: Sequence[HistoryLine]) -> None:
        """Append `new_lines` to the history the state on disk covers (cutting any leftover lines past it),
        then write the state (which must count them) atomically."""
        covered = self._covered if self._covered is not None else self._covered_on_disk()
        if covered.count != body["evaluations"] - len(new_lines):
            raise SearchError(f"{self.state_path}: the state on disk covers {covered.count} history lines; this "
                              f"save continues from {body['evaluations'] - len(new_lines)}; another run wrote the "
                              f"folder")
        encoded = b"".join((json.dumps(line.to_json(), sort_keys=True, allow_nan=False) + "\n").encode("utf-8")
                           for line in new_lines)
        self.folder.mkdir(parents=True, exist_ok=True)
        on_disk = self.history_path.stat().st_size if self.history_path.exists() else 0
        if encoded or on_disk != covered.size:
            with self.history_path.open("ab") as handle:
                handle.truncate(covered.size)  # a kill's leftovers past the state
                handle.write(encoded)
                handle.flush()
                os.fsync(handle.fileno())
        digest = covered.digest.copy()
        digest.update(encoded)
        full = {**body, "run": self.run, "history_sha256": digest.hexdigest()}
        text = json.dumps(full, sort_keys=True, allow_nan=False)
        atomic_write_text(self.state_path, f'{{"format": "{FORMAT}", "version": {VERSION}, "sha256": '
                                           f'"{_digest(full)}", "body": {text}}}\n')
        self._covered = _Covered(body["evaluations"], covered.size + len(encoded), digest)

    def _covered_on_disk(self) -> _Covered:
        if self.exists():
            self.load(repair=False)
            assert self._covered is not None
            return self._covered
        self.refuse_orphan_history()
        return _Covered(0, 0, hashlib.sha256())

    def load(self, repair: bool = True) -> tuple[dict[str, Any], list[HistoryLine]]:
        """The last good state and the history lines it covers, both checked in full (`check_body`, the
        digest, every line). With `repair`, and only once every check passed, extra lines past the state are
        cut from the file (`repair()`; only the process that writes the folder repairs it)."""
        body, version = self._read_state()
        lines, covered = self._read_history(body, version)
        check_against_history(body, lines, str(self.state_path))
        self._covered, self._version = covered, version
        if self.run is None and version >= IDENTITY_VERSION:
            self.run = body["run"]
        if repair:
            self.repair()
        return body, lines

    def check_run(self, current: Mapping[str, Any]) -> None:
        """After `load`: refuse to continue the state under a run identity other than the one it was started
        under (`check_run`), or a state that records none."""
        self.require_resumable()
        check_run(self.run, current, self.state_path)

    def require_resumable(self) -> None:
        """After `load`: refuse a state of a version that records no run identity to check a resume against."""
        if self._version < IDENTITY_VERSION:
            raise SearchError(f"{self.state_path} has state version {self._version} (written by an abz before the "
                              f"run identity), so a resume cannot check that it continues the same run; `abz report` "
                              f"and `abz export` still read it; start a new search to go on")
        if self._version < RESUMABLE_VERSION:
            raise SearchError(f"{self.state_path} has state version {self._version} (written by an abz before the "
                              f"per-decision priorities and random streams of version {RESUMABLE_VERSION}), so a "
                              f"resume cannot continue its random draws exactly; `abz report` and `abz export` still "
                              f"read it; start a new search to go on")

    def repair(self) -> None:
        """Cut the history lines past the loaded state (a kill between the two writes of a save)."""
        covered = self._covered
        if covered is None:
            raise SearchError(f"{self.folder}: repair before load")  # a programming error, named anyway
        if self.history_path.exists() and self.history_path.stat().st_size != covered.size:
            with self.history_path.open("ab") as handle:
                handle.truncate(covered.size)

    def _read_state(self) -> tuple[dict[str, Any], int]:
        where = self.state_path
        if not where.is_file():
            raise SearchError(f"{self.folder} holds no search state ({STATE_FILE} is missing); start a search with "
                              f"`abz search --config FILE --out {self.folder}`")
        try:
            document = read_json(where, SearchError)
        except SearchError as error:
            raise SearchError(f"{where} is damaged ({error}); it is left as it is. It is written atomically, so "
                              f"damage means it was edited or its disk failed; restore it from a copy") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise SearchError(f"{where} is not an abz search state (no \"format\": \"{FORMAT}\")")
        version = document.get("version")
        if version not in READ_VERSIONS or isinstance(version, bool):
            raise SearchError(f"{where} has state version {shorten(version)}; this abz reads versions "
                              f"{', '.join(map(str, READ_VERSIONS))}")
        body = document.get("body")
        if not isinstance(body, dict) or document.get("sha256") != _digest(body):
            raise SearchError(f"{where} is damaged (its sha256 does not match its content); it is left as it is")
        return check_body(body, str(where), version), version

    def _read_history(self, body: Mapping[str, Any], version: int) -> tuple[list[HistoryLine], _Covered]:
        """The first `evaluations` lines of the history, checked against the state's digest and then one by one."""
        count = body["evaluations"]
        try:
            data = self.history_path.read_bytes() if self.history_path.exists() else b""
        except OSError as error:
            raise SearchError(f"{self.history_path} cannot be read ({error.strerror})") from None
        raw: list[bytes] = []
        start = 0
        while len(raw) < count and (end := data.find(b"\n", start)) >= 0:
            raw.append(data[start:end + 1])
            start = end + 1
        if len(raw) < count:
            raise SearchError(f"{self.history_path} has {len(raw)} complete lines but the state covers {count}; the "
                              f"history was cut, so the run cannot be resumed exactly")
        digest = hashlib.sha256(data[:start])
        if version >= IDENTITY_VERSION and digest.hexdigest() != body["history_sha256"]:
            raise SearchError(f"{self.history_path}: its first {count} lines are not the ones {STATE_FILE} covers "
                              f"(their sha256 differs from the state's history_sha256): the history was edited or "
                              f"damaged after it was written; restore it from a copy")
        lines: list[HistoryLine] = []
        for number, line in enumerate(raw, start=1):
            where = f"{self.history_path}:{number}"
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raise SearchError(f"{where} is not UTF-8 text; the history was edited or damaged") from None
            value = parse_json(text, where, SearchError)
            try:
                parsed = HistoryLine.from_json(value)
            except (ValueError, TypeError) as error:
                raise SearchError(f"{where} is not a search history line ({error}); the history was edited or "
                                  f"damaged") from None
            if parsed.index != number - 1:
                raise SearchError(f"{where} has index {parsed.index}, expected {number - 1}; the history was "
                                  f"edited or damaged")
            lines.append(parsed)
        return lines, _Covered(count, start, digest)

    def history(self) -> list[dict[str, Any]]:
        """The history as the state covers it, checked, as JSON objects (for reports and exports; the files are
        not changed)."""
        return [line.to_json() for line in self.load(repair=False)[1]]


def load_verified_history(folder: str | Path) -> tuple[dict[str, Any], list[HistoryLine]]:
    """A search folder's state and the history lines it covers, every file checked (schema, bounded depth,
    the history against the state's digest) and nothing changed: what report and export read."""
    return StateStore(folder).load(repair=False)


def checked_supernet(search: Path, folder: str | None, run: Mapping[str, Any] | None, remedy: str
                     ) -> tuple[Path, Mapping[str, Any]]:
    """The supernet folder a search was scored with and its recorded identity, after checking it is the one the
    search recorded (weights sha256 and step); a `SearchError` ending in `remedy` if it is not, or is gone."""
    recorded = (run or {}).get("supernet")
    if not isinstance(recorded, Mapping) or folder is None:
        raise SearchError(f"{search}: its state records no supernet identity (a search from before the run "
                          f"identity), so the weights of {folder or 'its supernet'} cannot be checked to be the ones "
                          f"the search scored; {remedy}")
    path = Path(folder)
    if not path.is_dir():
        raise SearchError(f"the supernet {path} that {search} was scored with is gone; {remedy}")
    try:
        current = supernet_identity(path)
    except AbzError as error:
        raise SearchError(f"the supernet {path} that {search} was scored with cannot be read ({error}); "
                          f"{remedy}") from None
    changes = []
    if current["sha256"] != recorded.get("sha256"):
        changes.append(f"weights sha256 {str(recorded.get('sha256'))[:12]} -> {current['sha256'][:12]}")
    if current["step"] != recorded.get("step"):
        changes.append(f"step {recorded.get('step')} -> {current['step']}")
    if changes:
        raise SearchError(f"the supernet {path} changed since {search} scored its candidates ({', '.join(changes)}), "
                          f"so its weights are not the ones the search scored; {remedy}")
    return path, recorded
