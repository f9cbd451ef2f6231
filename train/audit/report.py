"""The ranking audit's figures: measured outcomes per candidate → the `audit.json` mapping (no I/O).

The reference score of a candidate is the mean over the reference seeds of −(held-out MLM loss); a
candidate whose reference run failed on any seed is excluded from every figure (and listed with the
reason). Against the reference, each estimator gets τ and ρ with seeded bootstrap intervals, τ among the
best half, τ within equal-parameter groups, seconds per candidate and the cost ratio (seconds of ONE
reference run, i.e. one seed, over the estimator's seconds; `reference_seconds` when the caller timed one
in the estimators' process, else the reference runs' own mean). An estimator that failed on a candidate ranks
it last (−inf). The noise ceiling is τ between the first two reference seeds. Derived estimators need no
extra runs: `params` (more parameters ranks higher), `combo_*` (an estimator's rank combined with the
size prior's rank by the Evaluator's own `combine_ranks`, the fitness the search would use) and `hurdle_*`
(BIWS keeps the better half, the cost-matched scratch run orders it).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

import numpy as np
from scipy.stats import rankdata

from autobert_zero.train.audit.candidates import Candidate
from autobert_zero.train.audit.stats import bootstrap, kendall_tau, rank_figures

GOAL_COST_RATIO = 20.0
GOAL_TAU = 0.6


@dataclass(frozen=True)
class Outcome:
    """One candidate under one estimator: higher `score` is better (None when it failed)."""

    score: float | None
    eval_loss: float | None
    seconds: float
    status: str = "ok"
    """"ok", "failed" or "duplicate"."""
    reason: str = ""
    params: int | None = None
    flops_per_token: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.score is not None and math.isfinite(self.score)

    def to_json(self) -> dict[str, Any]:
        return {"score": _round(self.score), "eval_loss": _round(self.eval_loss), "seconds": round(self.seconds, 3),
                "status": self.status, "reason": self.reason}


@dataclass(frozen=True)
class EstimatorRun:
    """Every candidate's outcome under one estimator, and what the estimator was."""

    outcomes: Sequence[Outcome]
    meta: Mapping[str, Any] = field(default_factory=dict)
    """E.g. {"kind": "biws", "k": 5} or {"kind": "scratch", "steps": 12, "matched_to": "biws_k5"}."""
    axis: str = "score (−held-out MLM loss)"
    """x-axis label of its scatter."""


@dataclass(frozen=True)
class AuditInputs:
    """Everything measured: the candidates with their sizes, the reference runs and the estimators' runs."""

    candidates: Sequence[Candidate]
    params: Sequence[int]
    flops_per_token: Sequence[float]
    reference: Mapping[int, Sequence[Outcome]]
    """Seed → outcome per candidate (full-budget scratch training)."""
    reference_steps: int
    estimators: Mapping[str, EstimatorRun]
    reference_seconds: float | None = None
    """Seconds of one reference run timed in the estimators' process; None = the reference runs' own mean."""
    size_prior: str = "params"
    """"params" or "flops": the prior of the rank combinations."""
    prior_weight: float = 0.5
    """Weight of the prior's rank in a combination (`evaluate.prior_weight`)."""
    combine: Sequence[str] = ()
    """Estimators that also get a `combo_<name>` (their rank + the size prior's rank)."""
    hurdles: Sequence[tuple[str, str]] = ()
    """(pruning estimator, ranking estimator) pairs that get a `hurdle_<pruning>` (see `_hurdle`)."""
    bootstrap_samples: int = 1000
    seed: int = 0
    context: Mapping[str, Any] = field(default_factory=dict)
    """Top-level facts copied into the report (supernet, config, sizes, ...)."""


def build_report(inputs: AuditInputs) -> dict[str, Any]:
    """The `audit.json` mapping (see the module docstring)."""
    n = len(inputs.candidates)
    seeds = list(inputs.reference)
    if len(seeds) < 2:
        raise ValueError("the reference needs at least two seeds")
    ok = [i for i in range(n) if all(inputs.reference[s][i].ok for s in seeds)]
    ref = np.array([fmean(_value(inputs.reference[s][i]) for s in seeds) for i in ok])
    params = [inputs.params[i] for i in ok]
    runs = dict(inputs.estimators)
    runs["params"] = EstimatorRun([Outcome(float(p), None, 0.0) for p in inputs.params], {"kind": "params"},
                                  "parameters")
    cached_seconds = fmean(inputs.reference[s][i].seconds for s in seeds for i in ok) if ok else math.nan
    ref_seconds = cached_seconds if inputs.reference_seconds is None else inputs.reference_seconds
    estimators: dict[str, dict[str, Any]] = {}
    scores: dict[str, np.ndarray] = {}
    for name in inputs.combine:
        runs[f"combo_{name}"] = _combined(inputs, name, runs[name], ok)
    for first, second in inputs.hurdles:
        runs[f"hurdle_{first}"] = _hurdle(first, runs[first], second, runs[second], ok)
    for name, run in runs.items():
        scores[name] = np.array([_value(run.outcomes[i]) for i in ok])
        estimators[name] = _figures(inputs, scores[name], ref, params, run, ok, ref_seconds)
    ceiling = _noise_ceiling(inputs, seeds, ok)
    rows = []
    for i, c in enumerate(inputs.candidates):
        row: dict[str, Any] = {
            "name": c.name, "kind": c.kind, "id": c.id, "detail": c.detail, "params": inputs.params[i],
            "flops_per_token": inputs.flops_per_token[i], "genotype": c.genotype.to_text(),
            "reference": {"score": _round(float(ref[ok.index(i)])) if i in ok else None,
                          "seeds": {str(s): inputs.reference[s][i].to_json() for s in seeds}},
            "scores": {}}
        for name in estimators:
            row["scores"][name] = runs[name].outcomes[i].to_json()
        rows.append(row)
    excluded = [{"name": c.name, "id": c.id, "reason": "; ".join(
        f"seed {s}: {inputs.reference[s][i].status} {inputs.reference[s][i].reason}".strip()
        for s in seeds if not inputs.reference[s][i].ok)} for i, c in enumerate(inputs.candidates) if i not in ok]
    report = {**inputs.context, "candidates_requested": n, "scored": len(ok), "excluded": excluded,
              "reference": {"kind": "scratch", "steps": inputs.reference_steps, "seeds": seeds,
                            "seconds_per_candidate": _round(ref_seconds),
                            "seconds_per_candidate_cached_runs": _round(cached_seconds),
                            "noise_ceiling_tau": ceiling},
              "noise_ceiling_tau": ceiling["value"],
              "estimators": estimators, "candidates": rows}
    report["verdict"] = verdict(estimators)
    return report


def _combined(inputs: AuditInputs, name: str, run: EstimatorRun, ok: list[int]) -> EstimatorRun:
    """The Evaluator's own rank combination (`evaluate.combine_ranks`) of a run's scores with the size prior,
    over the scored candidates (a failed candidate keeps no score and ranks last); same seconds as the run."""
    from autobert_zero.train.evaluate import CandidateResult, combine_ranks

    results = {i: CandidateResult(inputs.candidates[i].id, "", o.score if o.ok else None,
                                  o.eval_loss if o.ok else None, inputs.params[i], inputs.flops_per_token[i],
                                  o.seconds, o.status) for i, o in ((i, run.outcomes[i]) for i in ok)}
    combine_ranks(list(results.values()), inputs.size_prior, inputs.prior_weight)
    outcomes = [dataclasses.replace(o, score=results[i].score if i in results else None)
                for i, o in enumerate(run.outcomes)]
    return EstimatorRun(outcomes, {"kind": "rank-combination", "of": name, "prior": inputs.size_prior},
                        f"combined rank: {name} and {inputs.size_prior} (weight {inputs.prior_weight})")


def _hurdle(first: str, prune: EstimatorRun, second: str, rank: EstimatorRun, ok: list[int]) -> EstimatorRun:
    """Hurdles: `prune` keeps the better half (ceil(n/2)) of the scored candidates, `rank` orders that half and
    `prune` the rest below it. Seconds: `prune`'s, plus `rank`'s for the kept half only."""
    values = np.array([_value(prune.outcomes[i]) for i in ok])
    kept = set(np.argsort(-values, kind="mergesort")[: math.ceil(len(ok) / 2)].tolist())
    top = [j for j in range(len(ok)) if j in kept]
    bottom = [j for j in range(len(ok)) if j not in kept]
    score: dict[int, float] = {}
    for j, r in zip(top, rankdata([_value(rank.outcomes[ok[j]]) for j in top]), strict=True):
        score[ok[j]] = len(ok) + float(r)
    for j, r in zip(bottom, rankdata(values[bottom]) if bottom else [], strict=True):
        score[ok[j]] = float(r)
    kept_ids = {ok[j] for j in top}
    outcomes = [Outcome(score.get(i), None, o.seconds + (rank.outcomes[i].seconds if i in kept_ids else 0.0),
                        "ok" if i in score else o.status, o.reason) for i, o in enumerate(prune.outcomes)]
    return EstimatorRun(outcomes, {"kind": "hurdle", "prune": first, "rank": second},
                        f"hurdle: {first} keeps the better half, {second} orders it")


def _value(outcome: Outcome) -> float:
    return float(outcome.score) if outcome.ok and outcome.score is not None else -math.inf


def _figures(inputs: AuditInputs, estimate: np.ndarray, ref: np.ndarray, params: list[int], run: EstimatorRun,
             ok: list[int], ref_seconds: float) -> dict[str, Any]:
    figures = rank_figures(estimate, ref, params, samples=inputs.bootstrap_samples, seed=inputs.seed).to_json()
    seconds = fmean(run.outcomes[i].seconds for i in ok) if ok else math.nan
    return {**dict(run.meta), "axis": run.axis, **figures, "seconds_per_candidate": _round(seconds) or 0.0,
            "cost_ratio": _round(ref_seconds / seconds) if seconds > 0 else None,
            "failed": sum(not run.outcomes[i].ok for i in ok)}


def _noise_ceiling(inputs: AuditInputs, seeds: list[int], ok: list[int]) -> dict[str, float | None]:
    a = [_value(inputs.reference[seeds[0]][i]) for i in ok]
    b = [_value(inputs.reference[seeds[1]][i]) for i in ok]
    return bootstrap(kendall_tau, a, b, samples=inputs.bootstrap_samples, seed=inputs.seed).to_json()


def verdict(estimators: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The audit's goal (τ ≥ `GOAL_TAU` at a cost ratio ≥ `GOAL_COST_RATIO`, above the cost-matched scratch run
    and the parameter count), checked for the best-ranking BIWS-based estimator (plain or combined), and the
    best estimator overall among those at most as costly as it."""

    def tau(name: str) -> float:
        value = estimators[name]["kendall_tau"]["value"]
        return -math.inf if value is None else float(value)

    biws = [n for n, e in estimators.items() if e.get("kind") == "biws" or str(e.get("of", "")).startswith("biws")]
    if not biws:
        return {}
    best = max(biws, key=tau)
    cost = estimators[best]["seconds_per_candidate"]
    affordable = [n for n, e in estimators.items() if e["seconds_per_candidate"] <= cost * 1.05]
    matched = [n for n, e in estimators.items() if e.get("kind") == "scratch"]
    ratio = estimators[best]["cost_ratio"]
    return {
        "best_biws": best, "best_biws_tau": estimators[best]["kendall_tau"]["value"],
        "best_at_biws_cost": max(affordable, key=tau),
        "cost_ratio_at_least_20": ratio is None or ratio >= GOAL_COST_RATIO,
        "tau_at_least_0_6": tau(best) >= GOAL_TAU,
        "above_matched_scratch": all(tau(best) > tau(m) for m in matched) if matched else None,
        "above_params": tau(best) > tau("params") if "params" in estimators else None,
    }


def _round(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)
