"""Issue #15 §2's goal for a search's fitness, checked on an audit report (the `audit.json` mapping; no I/O).

An estimator meets the goal when, on the audit's candidates:
- τ in the top quarter ≥ `TOP_QUARTER_TAU`, or ≥ `CEILING_SHARE` of the reference's own top-quarter agreement
  (its leave-one-out noise ceiling), whichever is lower;
- τ within sibling groups ≥ `SIBLING_TAU`;
- precision@5 ≥ `PRECISION_AT_5`;
- and in each of those three figures it is above every rival with the paired 95% interval excluding 0.

Rivals are what needs no supernet: the parameter count, the zero-cost proxies, the group rule (drawn sets),
and scratch training that costs no more than the estimator (`matched_to` it, or seconds per candidate at most
`COST_SLACK` × its own, amortised over a typical search where a supernet is used). When the reference cannot
resolve its own top quarter, the top-quarter checks are None ("unresolvable"), and the goal is then met only
if nothing else fails: `met` is True, False, or None (undecided: nothing failed, something unresolvable).
Works on the reports of earlier audits too (it reads only `estimators`, `paired_differences`, `reference`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TOP_QUARTER_TAU = 0.6
CEILING_SHARE = 0.75
SIBLING_TAU = 0.5
PRECISION_AT_5 = 0.6
COST_SLACK = 1.05
GOAL_FIGURES = ("top_quarter_tau", "sibling_tau", "precision_at_5")
RIVAL_KINDS = ("params", "zero-cost", "group-rule")
"""Rivals at any cost (they cost nothing); scratch runs are rivals when they cost no more (`rivals`)."""
CANDIDATE_KINDS = ("biws", "rank-combination", "hurdle", "halving")
"""The kinds of estimator the goal is checked for (a search's fitness); the rest are rivals or references."""


def fitness_goal(report: Mapping[str, Any]) -> dict[str, Any]:
    """The goal's checks for every candidate estimator of `report`, and which meet it (see the module)."""
    estimators: Mapping[str, Mapping[str, Any]] = report["estimators"]
    reference = report["reference"]
    resolvable = bool(reference.get("top_quarter_resolvable", True))
    ceiling = _value(reference.get("noise_ceiling", {}).get("top_quarter_tau"))
    top_quarter = TOP_QUARTER_TAU if ceiling is None or ceiling <= 0 else min(TOP_QUARTER_TAU,
                                                                             CEILING_SHARE * ceiling)
    thresholds = {"top_quarter_tau": top_quarter, "sibling_tau": SIBLING_TAU, "precision_at_5": PRECISION_AT_5}
    paired = report.get("paired_differences", {})  # audits before paired differences: every rival unresolved
    checked = {name: _check(name, estimators, paired, thresholds, resolvable)
               for name, e in estimators.items() if e.get("kind") in CANDIDATE_KINDS}
    return {"thresholds": {k: round(v, 4) for k, v in thresholds.items()},
            "top_quarter_resolvable": resolvable,
            "met_by": [n for n, c in checked.items() if c["met"] is True],
            "undecided": [n for n, c in checked.items() if c["met"] is None],
            "estimators": checked}


def nearest(goal: Mapping[str, Any]) -> str | None:
    """The checked estimator nearest the goal: fewest thresholds missed, then fewest rival figures it is not
    above (None when nothing was checked)."""
    checked = goal["estimators"]
    if not checked:
        return None
    return min(checked, key=lambda n: (sum(v is False for v in checked[n]["reached"].values()),
                                       len(checked[n]["not_above"])))


def rivals(name: str, estimators: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The rivals of estimator `name`: every estimator of `RIVAL_KINDS`, and the scratch runs matched to it or
    costing at most `COST_SLACK` × its seconds per candidate (amortised over a search when it has a supernet)."""
    own = estimators[name]
    cost = _cost(own)
    found = []
    for other, e in estimators.items():
        free = e.get("kind") in RIVAL_KINDS
        cheaper_scratch = e.get("kind") == "scratch" and (
            e.get("matched_to") == name or float(e["seconds_per_candidate"]) <= COST_SLACK * cost)
        if other != name and (free or cheaper_scratch):
            found.append(other)
    return found


def _check(name: str, estimators: Mapping[str, Mapping[str, Any]], paired: Mapping[str, Mapping[str, Any]],
           thresholds: Mapping[str, float], resolvable: bool) -> dict[str, Any]:
    figures = estimators[name].get("figures", {})
    values = {f: _value(figures.get(f)) for f in GOAL_FIGURES}
    reached: dict[str, bool | None] = {}
    for f in GOAL_FIGURES:
        value = values[f]
        reached[f] = None if value is None or (f == "top_quarter_tau" and not resolvable) else value >= thresholds[f]
    opponents = rivals(name, estimators)
    not_above: list[str] = []
    unresolved: list[str] = []
    for rival in opponents:
        for f in GOAL_FIGURES:
            above = _above(name, rival, f, paired)
            if above is None or (f == "top_quarter_tau" and not resolvable):
                unresolved.append(f"{rival}:{f}")
            elif not above:
                not_above.append(f"{rival}:{f}")
    checks = [*reached.values(), not not_above]
    met = False if False in checks else (None if None in checks or unresolved else True)
    return {"values": values, "reached": reached, "rivals": opponents, "not_above": not_above,
            "unresolved": unresolved, "met": met}


def paired_interval(paired: Mapping[str, Mapping[str, Any]], first: str, second: str,
                    figure: str) -> dict[str, Any] | None:
    """`first` − `second` in `figure` from a report's `paired_differences` (stored once per pair, in either
    order: flipped when stored as `second` − `first`); None when not recorded."""
    if f"{first} - {second}" in paired:
        found: dict[str, Any] | None = paired[f"{first} - {second}"].get(figure)
        return found
    stored = paired.get(f"{second} - {first}", {}).get(figure)
    if stored is None:
        return None

    def minus(x: float | None) -> float | None:
        return None if x is None else -x

    return {**stored, "value": minus(stored.get("value")), "low": minus(stored.get("high")),
            "high": minus(stored.get("low"))}


def _above(name: str, rival: str, figure: str, paired: Mapping[str, Mapping[str, Any]]) -> bool | None:
    """Is `name` above `rival` in `figure` (higher is better) with the paired 95% interval excluding 0? None
    when the difference is not recorded."""
    interval = paired_interval(paired, name, rival, figure)
    if not interval or interval.get("low") is None or interval.get("high") is None:
        return None
    return bool(interval["low"] > 0)


def _cost(estimator: Mapping[str, Any]) -> float:
    """Seconds per candidate, amortised over a typical search when the estimator needs a supernet."""
    amortised = estimator.get("cost", {}).get("amortised_seconds_over_search")
    return float(amortised if amortised is not None else estimator["seconds_per_candidate"])


def _value(figure: Mapping[str, Any] | None) -> float | None:
    if not figure or figure.get("value") is None:
        return None
    return float(figure["value"])
