"""The ranking audit's figures: measured outcomes per candidate → the `audit.json` mapping (no I/O).

The reference score of a candidate is the mean over the reference seeds of −(held-out MLM loss); a candidate
whose reference run failed on any seed is excluded from every figure (and listed with the reason). An
estimator that failed on a candidate ranks it last (−inf).

Figures (`stats.figure_functions`), each with a 95% percentile-bootstrap interval: τ and ρ overall, τ in the
top half and top quarter by reference, τ within sibling groups (mean over groups of ≥ 3: the one-edit children
of one parent, e.g. the neighbours of Figure 7 or a search parent's children), precision@5, regret@1 and
regret@5, and, with an exposure control, the cluster's rank lift (mean rank under the reference − under the
estimator). One set of resamples (`stats.resamples`: candidates, stratified by exposure-cluster membership,
and supernets when the audit has several, each supernet's estimates made separately) serves every estimator
and figure, so `paired_differences` holds every estimator against every rival as a paired difference on the
same resamples. The noise ceiling is like for like: each reference seed against the mean of the others
(leave-one-out), for every figure; when its top-quarter τ is below `UNRESOLVABLE_BELOW` the top-quarter
figures are marked unresolvable (the reference cannot order its own best quarter).

Costs: seconds per candidate (marginal: the estimator's own seconds) and the cost ratio (seconds of ONE
reference run, i.e. one seed, over the estimator's seconds; `reference_seconds` when the caller timed one in
the estimators' process, else the reference runs' own mean); beside them the amortised seconds of an
estimator that needs a supernet: marginal + the supernet's training seconds over the audit's candidates, and
over a typical search of `TYPICAL_SEARCH` candidates.

Rivals that need no extra runs: `params` (more parameters ranks higher), `group_rule` (drawn sets only: BERT
and its exposure mutants < sampled genotypes < the Figure-7 family, tied inside), `combo_*` (an estimator's
rank combined with the size prior's rank by the Evaluator's own `combine_ranks`, the fitness the search would
use) and `hurdle_*` (BIWS keeps the better half, the cost-matched scratch run orders it). The caller adds the
zero-cost proxies, the cost-matched scratch runs and successive halving (`halving.py`) as estimators of their
own.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

import numpy as np
from scipy.stats import rankdata

from autobert_zero.train.audit.candidates import Candidate
from autobert_zero.train.audit.goal import fitness_goal
from autobert_zero.train.audit.stats import (
    Distribution,
    Interval,
    Resamples,
    ceiling_distribution,
    distribution,
    figure_functions,
    mean_rank,
    paired_difference,
    resamples,
    within_group_tau,
)

GOAL_COST_RATIO = 20.0
OUTLIER_FACTOR = 10.0
OUTLIER_MARGIN_S = 30.0
GOAL_TAU = 0.6
UNRESOLVABLE_BELOW = 0.6
"""Least leave-one-out top-quarter τ of the reference seeds for the top-quarter figures to be resolvable."""
TYPICAL_SEARCH = 300
"""Candidates of a typical search, over which a supernet's training seconds are amortised."""
EXPOSURE = "exposure"
"""The candidate kind of an exposure control's cluster."""
GROUP_ORDER = {"bert": 0, EXPOSURE: 0, "random": 1, "figure7": 2, "neighbour": 2}
"""The group rule: a score per candidate kind (drawn sets; the drawn exposure cluster mutates BERT)."""


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
    replicas: Sequence[Sequence[Outcome]] = ()
    """With several supernets: the outcomes on each (`outcomes` is the first's); () otherwise."""
    uses_supernet: bool = False
    """Whether the estimator needs a trained supernet (its cost is then amortised as well)."""

    def rows(self) -> list[Sequence[Outcome]]:
        """The outcomes per supernet (one row when it has no replicas)."""
        return list(self.replicas) if self.replicas else [self.outcomes]


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
    supernets: int = 1
    """Supernets whose estimates the replicas hold (each estimated separately)."""
    supernet_seconds: float | None = None
    """Training seconds of one supernet (their mean), for the amortised costs; None when unknown."""
    amortise_over: int = TYPICAL_SEARCH
    """Candidates of a typical search (the second amortisation)."""
    exposure_base: str | None = None
    """What the exposure cluster mutates (e.g. "bert" or a history line), when there is one."""


def build_report(inputs: AuditInputs) -> dict[str, Any]:
    """The `audit.json` mapping (see the module docstring)."""
    n = len(inputs.candidates)
    seeds = list(inputs.reference)
    if len(seeds) < 2:
        raise ValueError("the reference needs at least two seeds")
    ok = [i for i in range(n) if all(inputs.reference[s][i].ok for s in seeds)]
    seed_scores = np.array([[_value(inputs.reference[s][i]) for i in ok] for s in seeds]).reshape(len(seeds), len(ok))
    ref = seed_scores.mean(axis=0)
    params = [inputs.params[i] for i in ok]
    runs = dict(inputs.estimators)
    runs["params"] = EstimatorRun([Outcome(float(p), None, 0.0) for p in inputs.params], {"kind": "params"},
                                  "parameters")
    rule = _group_rule(inputs.candidates)
    if rule is not None:
        runs["group_rule"] = rule
    cached_seconds = fmean(inputs.reference[s][i].seconds for s in seeds for i in ok) if ok else math.nan
    ref_seconds = cached_seconds if inputs.reference_seconds is None else inputs.reference_seconds
    for name in inputs.combine:
        runs[f"combo_{name}"] = _combined(inputs, name, runs[name], ok)
    for first, second in inputs.hurdles:
        runs[f"hurdle_{first}"] = _hurdle(first, runs[first], second, runs[second], ok)

    kept = [inputs.candidates[i] for i in ok]
    cluster = [c.kind == EXPOSURE for c in kept]
    figures = figure_functions([c.group for c in kept], cluster)
    plan = (resamples(len(ok), supernets=inputs.supernets, strata=cluster if any(cluster) else None,
                      samples=inputs.bootstrap_samples, seed=inputs.seed) if len(ok) >= 3 else None)
    ceiling = {name: ceiling_distribution(fn, seed_scores, plan) for name, fn in figures.items()}
    resolvable = _at_least(ceiling["top_quarter_tau"].value, UNRESOLVABLE_BELOW)
    estimators: dict[str, dict[str, Any]] = {}
    spread: dict[str, dict[str, Distribution]] = {}
    for name, run in runs.items():
        rows = np.array([[_value(row[i]) for i in ok] for row in run.rows()]).reshape(len(run.rows()), len(ok))
        spread[name] = {fig: distribution(fn, rows, ref, plan) for fig, fn in figures.items()}
        estimators[name] = _figures(inputs, spread[name], rows, ref, params, run, ok, ref_seconds, resolvable)
    rows_out = []
    for i, c in enumerate(inputs.candidates):
        row: dict[str, Any] = {
            "name": c.name, "kind": c.kind, "id": c.id, "detail": c.detail, "group": c.group,
            "search_fitness": c.fitness, "params": inputs.params[i],
            "flops_per_token": inputs.flops_per_token[i], "genotype": c.genotype.to_text(),
            "reference": {"score": _round(float(ref[ok.index(i)])) if i in ok else None,
                          "seeds": {str(s): inputs.reference[s][i].to_json() for s in seeds}},
            "scores": {name: runs[name].outcomes[i].to_json() for name in estimators}}
        replicated = {name: [r[i].to_json() for r in runs[name].replicas] for name in estimators if runs[name].replicas}
        if replicated:
            row["scores_by_supernet"] = replicated
        rows_out.append(row)
    excluded = [{"name": c.name, "id": c.id, "reason": "; ".join(
        f"seed {s}: {inputs.reference[s][i].status} {inputs.reference[s][i].reason}".strip()
        for s in seeds if not inputs.reference[s][i].ok)} for i, c in enumerate(inputs.candidates) if i not in ok]
    noise = {fig: _interval(d.interval(), fig, resolvable) for fig, d in ceiling.items()}
    report = {**inputs.context, "candidates_requested": n, "scored": len(ok), "excluded": excluded,
              "supernets": inputs.supernets,
              "reference": {"kind": "scratch", "steps": inputs.reference_steps, "seeds": seeds,
                            "seconds_per_candidate": _round(ref_seconds),
                            "seconds_per_candidate_cached_runs": _round(cached_seconds),
                            "noise_ceiling_tau": noise["kendall_tau"],
                            "noise_ceiling": noise,
                            "noise_ceiling_method": "leave-one-out: each seed's scores against the mean of the "
                                                    "other seeds' (averaged over seeds), every figure",
                            "top_quarter_resolvable": resolvable},
              "noise_ceiling_tau": noise["kendall_tau"]["value"],
              "bootstrap": _bootstrap_note(inputs, plan),
              "figures": list(figures),
              "estimators": estimators,
              "paired_differences": _paired(spread, resolvable),
              "candidates": rows_out}
    if any(cluster):
        report["exposure_control"] = {
            "members": sum(cluster), "base": inputs.exposure_base,
            "mean_rank_reference": _round(mean_rank(ref, cluster)),
            "lift": {name: e["figures"]["exposure_lift"] for name, e in estimators.items()},
            "meaning": "lift = the cluster's mean rank under the reference − under the estimator (rank places, "
                       "1 = best); positive: the estimator ranks the cluster higher than the reference does"}
    report["verdict"] = verdict(estimators)
    report["fitness_goal"] = fitness_goal(report)
    report["timing_outliers"] = timing_outliers(inputs.estimators, inputs.candidates)
    return report


def timing_outliers(runs: Mapping[str, EstimatorRun], candidates: Sequence[Candidate]) -> list[dict[str, Any]]:
    """Measured outcomes whose seconds exceed `OUTLIER_FACTOR` × their estimator's median and the median +
    `OUTLIER_MARGIN_S`: a process paused or starved while it ran (the wall clock runs on). Their mean enters the
    cost matching, so the report names them; delete those cache entries to measure them again."""
    found = []
    for name, run in runs.items():
        for s, row in enumerate(run.rows()):
            typical = statistics.median(o.seconds for o in row)
            found += [{"estimator": name, "supernet": s, "candidate": candidates[i].name,
                       "seconds": _round(o.seconds, 2), "median_seconds": _round(typical, 2)}
                      for i, o in enumerate(row)
                      if o.seconds > max(OUTLIER_FACTOR * typical, typical + OUTLIER_MARGIN_S)]
    return found


def _at_least(value: float, bound: float) -> bool:
    return not math.isnan(value) and value >= bound


def _interval(interval: Interval, figure: str, resolvable: bool) -> dict[str, Any]:
    """An interval's JSON, marked unresolvable for a top-quarter figure the reference cannot resolve."""
    out: dict[str, Any] = dict(interval.to_json())
    if figure == "top_quarter_tau" and not resolvable:
        out["unresolvable"] = True
    return out


def _bootstrap_note(inputs: AuditInputs, plan: Resamples | None) -> dict[str, Any]:
    return {"samples": plan.samples if plan is not None else 0, "seed": inputs.seed, "confidence": 0.95,
            "resamples": "candidates with replacement (the exposure cluster and the rest each within themselves)"
                         + (" and supernets with replacement" if inputs.supernets > 1 else "")
                         + "; one set of resamples for every estimator and figure (paired differences)",
            "method": "percentile"}


def _paired(spread: Mapping[str, Mapping[str, Distribution]], resolvable: bool) -> dict[str, dict[str, Any]]:
    """Every estimator against every later one: first − second on the same resamples, per figure."""
    return {f"{a} - {b}": {fig: _interval(paired_difference(spread[a][fig], spread[b][fig]), fig, resolvable)
                           for fig in spread[a]}
            for a, b in itertools.combinations(spread, 2)}


def _group_rule(candidates: Sequence[Candidate]) -> EstimatorRun | None:
    """The group rule (`GROUP_ORDER`) when every candidate's kind has a place in it and there are two places."""
    if not all(c.kind in GROUP_ORDER for c in candidates) or len({GROUP_ORDER[c.kind] for c in candidates}) < 2:
        return None
    return EstimatorRun([Outcome(float(GROUP_ORDER[c.kind]), None, 0.0) for c in candidates], {"kind": "group-rule"},
                        "group: BERT (and its mutants) 0 < random 1 < Figure-7 family 2")


def _combined(inputs: AuditInputs, name: str, run: EstimatorRun, ok: list[int]) -> EstimatorRun:
    """The Evaluator's own rank combination (`evaluate.combine_ranks`) of a run's scores with the size prior,
    over the scored candidates (a failed candidate keeps no score and ranks last); same seconds as the run;
    on each supernet's outcomes separately."""
    rows = [_combined_row(inputs, row, ok) for row in run.rows()]
    return EstimatorRun(rows[0], {"kind": "rank-combination", "of": name, "prior": inputs.size_prior},
                        f"combined rank: {name} and {inputs.size_prior} (weight {inputs.prior_weight})",
                        replicas=rows if run.replicas else (), uses_supernet=run.uses_supernet)


def _combined_row(inputs: AuditInputs, row: Sequence[Outcome], ok: list[int]) -> list[Outcome]:
    from autobert_zero.train.evaluate import CandidateResult, combine_ranks

    results = {i: CandidateResult(inputs.candidates[i].id, "", o.score if o.ok else None,
                                  o.eval_loss if o.ok else None, inputs.params[i], inputs.flops_per_token[i],
                                  o.seconds, o.status) for i, o in ((i, row[i]) for i in ok)}
    combine_ranks(list(results.values()), inputs.size_prior, inputs.prior_weight)
    return [dataclasses.replace(o, score=results[i].score if i in results else None) for i, o in enumerate(row)]


def _hurdle(first: str, prune: EstimatorRun, second: str, rank: EstimatorRun, ok: list[int]) -> EstimatorRun:
    """Hurdles: `prune` keeps the better half (ceil(n/2)) of the scored candidates, `rank` orders that half and
    `prune` the rest below it. Seconds: `prune`'s, plus `rank`'s for the kept half only. With several
    supernets, on each supernet's outcomes (a `rank` without replicas serves them all)."""
    prune_rows, rank_rows = prune.rows(), rank.rows()
    rows = [_hurdle_row(p, rank_rows[s if len(rank_rows) > 1 else 0], ok) for s, p in enumerate(prune_rows)]
    return EstimatorRun(rows[0], {"kind": "hurdle", "prune": first, "rank": second},
                        f"hurdle: {first} keeps the better half, {second} orders it",
                        replicas=rows if len(rows) > 1 else (), uses_supernet=prune.uses_supernet or rank.uses_supernet)


def _hurdle_row(prune: Sequence[Outcome], rank: Sequence[Outcome], ok: list[int]) -> list[Outcome]:
    values = np.array([_value(prune[i]) for i in ok])
    kept = set(np.argsort(-values, kind="mergesort")[: math.ceil(len(ok) / 2)].tolist())
    top = [j for j in range(len(ok)) if j in kept]
    bottom = [j for j in range(len(ok)) if j not in kept]
    score: dict[int, float] = {}
    for j, r in zip(top, rankdata([_value(rank[ok[j]]) for j in top]), strict=True):
        score[ok[j]] = len(ok) + float(r)
    for j, r in zip(bottom, rankdata(values[bottom]) if bottom else [], strict=True):
        score[ok[j]] = float(r)
    kept_ids = {ok[j] for j in top}
    return [Outcome(score.get(i), None, o.seconds + (rank[i].seconds if i in kept_ids else 0.0),
                    "ok" if i in score else o.status, o.reason) for i, o in enumerate(prune)]


def _value(outcome: Outcome) -> float:
    return float(outcome.score) if outcome.ok and outcome.score is not None else -math.inf


def _figures(inputs: AuditInputs, spread: Mapping[str, Distribution], rows: np.ndarray, ref: np.ndarray,
             params: list[int], run: EstimatorRun, ok: list[int], ref_seconds: float, resolvable: bool
             ) -> dict[str, Any]:
    """One estimator's entry: every figure with its interval (`figures`), the older top-level keys (τ, ρ, τ in
    the best half, pooled τ within equal-parameter groups), marginal and amortised costs."""
    figures = {fig: _interval(d.interval(), fig, resolvable) for fig, d in spread.items()}
    groups = [within_group_tau(row, ref, params) for row in rows]
    seconds = fmean(row[i].seconds for row in run.rows() for i in ok) if ok else math.nan
    return {**dict(run.meta), "axis": run.axis, "kendall_tau": figures["kendall_tau"],
            "spearman_rho": figures["spearman_rho"], "top_half_tau": figures["top_half_tau"]["value"],
            "equal_params_tau": {"tau": _round(fmean(g.tau for g in groups)), "groups": groups[0].groups,
                                 "pairs": groups[0].pairs},
            "figures": figures, "supernets": len(rows), "seconds_per_candidate": _round(seconds) or 0.0,
            "cost_ratio": _round(ref_seconds / seconds) if seconds > 0 else None,
            "cost": _costs(inputs, seconds, run.uses_supernet),
            "failed": sum(any(not row[i].ok for row in run.rows()) for i in ok)}


def _costs(inputs: AuditInputs, seconds: float, uses_supernet: bool) -> dict[str, Any]:
    """Marginal seconds per candidate beside the amortised ones (a supernet's training seconds spread over the
    audit's candidates, and over a typical search); an estimator with no supernet has nothing to amortise."""
    extra = inputs.supernet_seconds if uses_supernet else 0.0
    n = len(inputs.candidates)
    return {"marginal_seconds": _round(seconds),
            "supernet_seconds": _round(extra) if uses_supernet else None,
            "amortised_seconds_over_audit": _round(seconds + extra / n) if extra is not None and n else None,
            "amortised_seconds_over_search": (_round(seconds + extra / inputs.amortise_over) if extra is not None
                                              else None),
            "search_candidates": inputs.amortise_over}


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
