"""The search's record: one `HistoryLine` per evaluated candidate, in order, and the `Status` it ended with.

`history.jsonl` holds one JSON object per line (`HistoryLine.to_json`, keys sorted); `HistoryLine.from_json`
reads every line the search has ever written, so old search folders load (lines written before `eval_loss`
existed read it as None). A line's `status` says what became of the candidate:

- `ok`: the fitness scored it; `duplicate`: it equals a candidate scored before (same id, or a functional twin
  the fitness recognised) and shares that score. These two are `SCORED`: they join the population, count for
  the best fitness, and are what reports and exports rank.
- `failed`: the fitness could not score it (`reason` says why); `over-limit`: scored, but over
  `search.max_params` / `search.max_flops_per_token`. Neither joins the population.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from autobert_zero.json_files import shorten


class Status(StrEnum):
    """What became of a candidate (a `str`, so it compares and serialises as its value)."""

    OK = "ok"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    OVER_LIMIT = "over-limit"


SCORED = frozenset({Status.OK, Status.DUPLICATE})
"""Statuses whose candidates hold a score that counts: they join the population and are ranked."""


@dataclass(frozen=True)
class HistoryLine:
    """One evaluated candidate (a line of `history.jsonl`)."""

    index: int
    """Its position in the history (0-based)."""
    round: int
    """0 = the initial population; each later round is one batch of children."""
    id: str
    genotype: str
    """The genotype text (canonical)."""
    fitness: float | None
    """Higher is better; None when `failed`."""
    status: Status
    reason: str
    """Why it is not `ok` (empty when it is)."""
    parent: str | None
    """The id of the tournament parent; None for seeds and samples."""
    mutation: str
    """A `Mutation` value, or `seed` / `sample` for candidates not made by mutation."""
    ops: list[str]
    """The ops the mutation drew (credited to them by operation priority)."""
    detail: str
    """What the mutation changed (the seed's file for a seed)."""
    invalid: int
    """Rejected proposals before this candidate was found."""
    params: int | None
    flops_per_token: float | None
    eval_loss: float | None = None
    """The held-out MLM loss, where the fitness reports one."""
    priority: dict[str, float | None] | None = None
    """Strategy `op` only: every op's priority u after the previous round (None for +∞, an op never chosen)."""
    glue_score: float | None = None
    """The GLUE dev score of a second stage (`evaluate.glue_task`), where the fitness reports one."""
    fidelity_scores: list[float] | None = None
    """`search.fitness: halving`: its score at each rung it completed, rung 0 (the `evaluate:` estimator) first."""

    @property
    def scored_fitness(self) -> float | None:
        """The fitness if it counts (status in `SCORED`), else None."""
        return self.fitness if self.status in SCORED else None

    @property
    def scored(self) -> bool:
        """Whether it holds a fitness that counts (joins the population, is ranked)."""
        return self.scored_fitness is not None

    def to_json(self) -> dict[str, Any]:
        """The JSON object of `history.jsonl` (`priority`, `glue_score` and `fidelity_scores` only when the line
        has one)."""
        out = dataclasses.asdict(self)
        out["status"] = self.status.value
        for optional in ("priority", "glue_score", "fidelity_scores"):
            if out[optional] is None:
                del out[optional]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HistoryLine:
        """Read a JSON object of `history.jsonl`; ValueError names what does not fit (a missing or unknown key,
        a value of the wrong JSON type, a non-finite number, an unknown status)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a history line is a JSON object, not {type(data).__name__}")
        unknown = sorted(set(data) - _FIELDS)
        missing = sorted(_REQUIRED - set(data))
        if unknown or missing:
            raise ValueError("; ".join(part for part in (f"lacks {', '.join(missing)}" if missing else "",
                                                         f"has unknown {', '.join(unknown)}" if unknown else "")
                                       if part))
        try:
            status = Status(data["status"])
        except ValueError:
            raise ValueError(f"unknown status {data['status']!r}; expected one of "
                             f"{', '.join(s.value for s in Status)}") from None
        for name, kinds in _TYPES.items():
            if name in data:
                _check_type(name, data[name], kinds)
        if data["index"] < 0 or data["round"] < 0 or data["invalid"] < 0:
            raise ValueError("index, round and invalid must not be negative")
        for op in data["ops"]:
            _check_type("ops", op, (str,))
        for op, value in (data.get("priority") or {}).items():
            _check_type(f"priority[{op!r}]", value, _NUMBER_OR_NONE)
        for rung, value in enumerate(data.get("fidelity_scores") or []):
            _check_type(f"fidelity_scores[{rung}]", value, (int, float))
        fields = dict(data)
        fields["status"] = status
        fields["ops"] = list(data["ops"])
        if fields.get("fidelity_scores") is not None:
            fields["fidelity_scores"] = [float(value) for value in fields["fidelity_scores"]]
        if fields.get("priority") is not None:
            fields["priority"] = dict(fields["priority"])
        return cls(**fields)


_NUMBER_OR_NONE = (int, float, type(None))
_TYPES: dict[str, tuple[type, ...]] = {
    "index": (int,), "round": (int,), "id": (str,), "genotype": (str,), "fitness": _NUMBER_OR_NONE,
    "status": (str,), "reason": (str,), "parent": (str, type(None)), "mutation": (str,), "ops": (list,),
    "detail": (str,), "invalid": (int,), "params": (int, type(None)), "flops_per_token": _NUMBER_OR_NONE,
    "eval_loss": _NUMBER_OR_NONE, "priority": (dict, type(None)), "glue_score": _NUMBER_OR_NONE,
    "fidelity_scores": (list, type(None)),
}
"""The JSON types of each key of a history line (numbers finite; bool is not a number here)."""


def _check_type(name: str, value: Any, kinds: tuple[type, ...]) -> None:
    """ValueError unless `value` is one of `kinds` (no bool for a number, no NaN or infinity)."""
    if isinstance(value, bool) or not isinstance(value, kinds):
        names = " or ".join("null" if kind is type(None) else kind.__name__ for kind in kinds)
        raise ValueError(f"{name} should be {names}, found {shorten(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} is {value}, expected a finite number")


_FIELDS = frozenset(field.name for field in dataclasses.fields(HistoryLine))
_REQUIRED = frozenset(field.name for field in dataclasses.fields(HistoryLine)
                      if field.default is dataclasses.MISSING)


def best_lines(lines: Iterable[HistoryLine], top: int) -> list[HistoryLine]:
    """The `top` best distinct genotypes: the first scored line of each id, by fitness (earlier first on ties)."""
    first: dict[str, HistoryLine] = {}
    for line in lines:
        if line.scored:
            first.setdefault(line.id, line)
    return sorted(first.values(), key=lambda line: (-(line.scored_fitness or 0.0), line.index))[:top]  # all scored


def best_line(lines: Iterable[HistoryLine]) -> HistoryLine | None:
    """The scored line with the highest fitness (the earliest on ties), or None while none is scored."""
    best = best_lines(lines, 1)
    return best[0] if best else None
