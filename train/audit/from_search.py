"""Audit candidates drawn from the search's own distribution (`abz audit --from-search DIR [DIR ...]`).

Each folder is read as `abz report` reads it (`evolve.state.load_verified_history`: `state.json` and the
`history.jsonl` lines it covers, every line checked against the state's digest), nothing in it changed. Only
`ok` lines are used (not duplicates, failures or over-limit candidates), each genotype once: the first line
of an id (folders in the order given), then the first of a functional fingerprint (the Evaluator would score a
twin as a duplicate). The mix of `count` candidates, seeded by the config seed:

- sibling groups, at least a quarter (ceil(count/4)): whole groups first, each of at least `MIN_SIBLINGS`
  one-edit children of one parent — history lines with the same `parent` id whose `mutation` is an edit (not
  `seed` or `sample`: every mutation the search makes is one edit of its tournament parent). Groups are drawn
  in a seeded order; a group gives all its members up to what is still wanted, never fewer than
  `MIN_SIBLINGS` (so the share may pass a quarter by up to two);
- at least a third (ceil(count/3)) from the top decile by fitness: the best ceil(10%) distinct genotypes of
  each search (fitness is comparable within one search only), not drawn already;
- the rest uniformly over every distinct genotype not drawn yet.

Bad input raises `AuditSourceError` naming the folder or file and what is missing: not a folder, not a search
(no or a damaged `state.json`, a history that does not match it), candidates at another layer count than the
supernet (`state.json`'s `num_layers`), a genotype that does not parse, validate or keep its id under the
audit's language (a search made with another grammar or op table), or too few genotypes, groups or top-decile
genotypes for the mix asked for. `SearchPool.weakest` is the base of an exposure control.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from autobert_zero.errors import ConfigError, SearchError
from autobert_zero.evolve.history import HistoryLine, Status
from autobert_zero.evolve.state import HISTORY_FILE, STATE_FILE, load_verified_history
from autobert_zero.grammar import Genotype, Language, current_language, parse_with_diagnostics
from autobert_zero.train.audit.candidates import Candidate
from autobert_zero.train.evaluate import genotype_fingerprint

TOP_SHARE = 1 / 3
"""Least share of the candidates drawn from the top decile."""
SIBLING_SHARE = 1 / 4
"""Least share of the candidates drawn as sibling groups."""
TOP_FRACTION = 0.1
"""The top decile: the best ceil(10%) distinct genotypes of each search."""
MIN_SIBLINGS = 3
"""Fewest members of a sibling group."""
NOT_EDITS = frozenset({"seed", "sample"})
"""History `mutation` values of candidates that are no edit of a parent."""


class AuditSourceError(SearchError):
    """A `--from-search` folder cannot give the audit's candidates (not a search, damaged, another language or
    depth, too few genotypes for the mix)."""


@dataclass(frozen=True)
class Entry:
    """One distinct `ok` genotype of a search history."""

    folder: Path
    line: HistoryLine
    genotype: Genotype
    top: bool
    """Among the top decile of its own search."""

    @property
    def where(self) -> str:
        return f"{self.folder / HISTORY_FILE}:{self.line.index + 1}"


@dataclass(frozen=True)
class SearchPool:
    """The distinct `ok` genotypes of one or more searches, in order (folder, history line)."""

    folders: tuple[Path, ...]
    entries: tuple[Entry, ...]

    @property
    def histories(self) -> str:
        return ", ".join(str(f / HISTORY_FILE) for f in self.folders)

    def weakest(self) -> Entry:
        """The `ok` genotype with the lowest fitness (the earliest on ties): an exposure control's base."""
        ranked = [(e.line.fitness if e.line.fitness is not None else math.inf, i) for i, e in enumerate(self.entries)]
        return self.entries[min(ranked)[1]]


def read_search(folder: str | Path, num_layers: int, language: Language | None = None) -> list[Entry]:
    """The `ok` lines of one search folder as entries (one per id, first line kept), checked (module doc)."""
    folder = Path(folder)
    language = language or current_language()
    if not folder.is_dir():
        raise AuditSourceError(f"--from-search {folder}: no such folder (expected the --out folder of `abz search`)")
    try:
        body, lines = load_verified_history(folder)
    except SearchError as error:
        raise AuditSourceError(f"--from-search {folder} is not a readable search: {error}") from None
    if body["num_layers"] != num_layers:
        raise AuditSourceError(f"{folder / STATE_FILE}: the search made {body['num_layers']}-layer candidates but the "
                               f"supernet has {num_layers} layers; audit a search made at the supernet's depth")
    history = folder / HISTORY_FILE
    entries: dict[str, tuple[HistoryLine, Genotype]] = {}
    for line in lines:
        if line.status is not Status.OK or line.id in entries:
            continue
        where = f"{history}:{line.index + 1}"
        genotype, problems = parse_with_diagnostics(line.genotype, where, language=language)
        if genotype is None or problems:
            first = problems[0].render(where) if problems else "it does not parse"
            raise AuditSourceError(f"{where}: candidate {line.id[:12]} is not a genotype of the audit's language "
                                   f"({first}); the search used another grammar or op table")
        if genotype.id != line.id:
            raise AuditSourceError(f"{where}: the genotype text has id {genotype.id[:12]} under the audit's language "
                                   f"but the history records {line.id[:12]}; the search used another language")
        if genotype.num_layers != num_layers:
            raise AuditSourceError(f"{where}: a {genotype.num_layers}-layer genotype in a search of {num_layers} "
                                   f"layers; the history was edited")
        entries[line.id] = (line, genotype)
    if not entries:
        raise AuditSourceError(f"{history}: no `ok` line among its {len(lines)} lines; nothing to audit")
    ranked = sorted(entries.values(), key=lambda pair: (-(pair[0].fitness or 0.0), pair[0].index))
    top = {line.id for line, _ in ranked[:math.ceil(TOP_FRACTION * len(ranked))]}
    return [Entry(folder, line, genotype, line.id in top) for line, genotype in entries.values()]


def read_searches(folders: Sequence[str | Path], num_layers: int, language: Language | None = None) -> SearchPool:
    """Every folder's entries, distinct by id and then by function across all of them (the first kept)."""
    if not folders:
        raise ConfigError("--from-search needs at least one search folder")
    ids: set[str] = set()
    fingerprints: set[str] = set()
    kept: list[Entry] = []
    for folder in folders:
        for entry in read_search(folder, num_layers, language):
            key = genotype_fingerprint(entry.genotype)
            if entry.line.id in ids or key in fingerprints:
                continue
            ids.add(entry.line.id)
            fingerprints.add(key)
            kept.append(entry)
    return SearchPool(tuple(Path(f) for f in folders), tuple(kept))


def mix(count: int) -> tuple[int, int]:
    """(top-decile, sibling) candidates wanted of `count`; ConfigError when the two do not fit in `count`."""
    top, siblings = math.ceil(count * TOP_SHARE), max(MIN_SIBLINGS, math.ceil(count * SIBLING_SHARE))
    if top + siblings > count:
        raise ConfigError(f"--candidates {count} with --from-search: the mix needs {top} from the top decile and "
                          f"{siblings} in sibling groups of at least {MIN_SIBLINGS}; ask for at least 6 candidates")
    return top, siblings


def sibling_groups(pool: SearchPool) -> dict[str, list[Entry]]:
    """Parent id → its distinct one-edit `ok` children (history order), for the parents with at least
    `MIN_SIBLINGS` of them."""
    groups: dict[str, list[Entry]] = {}
    for entry in pool.entries:
        if entry.line.parent is not None and entry.line.mutation not in NOT_EDITS:
            groups.setdefault(entry.line.parent, []).append(entry)
    return {parent: members for parent, members in groups.items() if len(members) >= MIN_SIBLINGS}


def draw_from_searches(pool: SearchPool, count: int, seed: int = 0) -> list[Candidate]:
    """`count` candidates of the pool in the mix of the module docstring: top decile, sibling groups, uniform."""
    wanted_top, wanted_siblings = mix(count)
    if len(pool.entries) < count:
        raise AuditSourceError(f"{pool.histories}: {len(pool.entries)} distinct `ok` genotypes, fewer than "
                               f"--candidates {count}; run the search longer or ask for fewer candidates")
    rng = random.Random(f"audit-search-{seed}")
    groups = sibling_groups(pool)
    order = sorted(groups)
    rng.shuffle(order)
    siblings: list[tuple[int, Entry]] = []
    for number, parent in enumerate(order, start=1):
        if len(siblings) >= wanted_siblings:
            break
        members = groups[parent]
        take = min(len(members), max(MIN_SIBLINGS, wanted_siblings - len(siblings)))
        siblings += [(number, e) for e in sorted(rng.sample(members, take), key=members.index)]
    if len(siblings) < wanted_siblings:
        held = sum(len(m) for m in groups.values())
        raise AuditSourceError(f"{pool.histories}: {len(groups)} parents with at least {MIN_SIBLINGS} one-edit `ok` "
                               f"children ({held} candidates in all); the mix needs {wanted_siblings} candidates in "
                               f"sibling groups (a quarter of {count}); run the search longer or ask for fewer "
                               f"candidates")
    taken = {e.line.id for _, e in siblings}
    top_pool = [e for e in pool.entries if e.top and e.line.id not in taken]
    if len(top_pool) < wanted_top:
        raise AuditSourceError(f"{pool.histories}: the top deciles hold {len(top_pool)} distinct `ok` genotypes not "
                               f"drawn as siblings; the mix needs {wanted_top} (a third of {count}); run the search "
                               f"longer or ask for fewer candidates")
    top = sorted(rng.sample(top_pool, wanted_top), key=pool.entries.index)
    taken |= {e.line.id for e in top}
    rest = [e for e in pool.entries if e.line.id not in taken]
    uniform = sorted(rng.sample(rest, count - len(siblings) - len(top)), key=pool.entries.index)
    chosen = [_candidate(f"top-{i}", "top", e) for i, e in enumerate(top, start=1)]
    within: dict[int, int] = {}
    for number, e in siblings:
        within[number] = within.get(number, 0) + 1
        chosen.append(_candidate(f"sibling-{number}.{within[number]}", "sibling", e, group=e.line.parent))
    chosen += [_candidate(f"uniform-{i}", "uniform", e) for i, e in enumerate(uniform, start=1)]
    return chosen


def _candidate(name: str, kind: str, entry: Entry, group: str | None = None) -> Candidate:
    line = entry.line
    edit = f"{line.mutation}: {line.detail}" if line.detail else line.mutation
    return Candidate(name, kind, entry.genotype, f"{entry.where} (fitness {line.fitness}; {edit})", group=group,
                     fitness=line.fitness)
