"""Rank statistics of the ranking audit: Kendall τ-b, Spearman ρ (`scipy.stats`), the audit's derived figures
and their seeded bootstrap intervals.

Figures of one estimate against the reference (`FIGURES` builds them): τ and ρ overall; τ among the best half
and the best quarter by reference (`top_fraction_tau`); τ within sibling groups (`group_mean_tau`: the mean of
the τ inside each group of ≥ 3 members, e.g. the one-edit children of one search parent); precision@5 (how
many of the estimate's best 5 are among the reference's best 5, out of 5); regret@1 and regret@5 (the best
reference score minus the best reference score among the estimate's top 1 or 5: with scores −loss, the
reference loss of the estimate's pick minus the best loss; ≥ 0); the rank lift of a marked cluster
(`rank_lift`: its mean rank under the reference minus under the estimate, in rank places, positive when the
estimate ranks the cluster higher than the reference does). τ within equal-parameter groups stays pooled
(`within_group_tau`). Ties at a top-k cut are broken by candidate order (stable), so a figure is a function of
its inputs.

Intervals. `bootstrap` is scipy's percentile bootstrap over candidate pairs (one level). The audit itself uses
`Resamples` + `distribution`: one set of index resamples, drawn once, shared by every estimator and figure, so
that the difference of two estimators on the same resamples is a PAIRED difference (`paired_difference`).
Each resample draws candidates with replacement (stratified when strata are given: the exposure cluster and
the rest are each resampled within themselves, so every resample holds the cluster at its size), and, with
several supernets, supernets with replacement too; a supernet-dependent estimate's figure on a resample is
the mean over the drawn supernets of its figure on the drawn candidates. `scipy.stats.bootstrap` resamples
one level of observations and each call draws its own resamples, so it can express neither the two levels,
the strata, nor one resample set shared by all figures (what makes the differences paired): hence the
numpy loop over index arrays. Percentile intervals, as scipy's `method="percentile"`. The noise ceiling
(`ceiling_distribution`) is like for like: each reference seed against the mean of the other seeds
(leave-one-out), averaged over seeds, on the same candidate resamples.

Every function takes score vectors where HIGHER is better; a failed candidate is scored −inf and ranks last.
NaN is refused (it cannot be ranked). A statistic that is undefined (fewer than 2 items, or one side all
tied) is NaN, and a resample where a figure is undefined is left out of its percentiles.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

Statistic = Callable[[NDArray[np.float64], NDArray[np.float64]], float]

BOOTSTRAP_SAMPLES = 1000
CONFIDENCE = 0.95


def _pair(x: ArrayLike, y: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"score vectors must be 1-D and of equal length, got shapes {a.shape} and {b.shape}")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("NaN scores cannot be ranked (mark failed candidates as -inf)")
    return a, b


def kendall_tau(x: ArrayLike, y: ArrayLike) -> float:
    """Kendall's τ-b between two score vectors (`scipy.stats.kendalltau`; NaN when undefined)."""
    a, b = _pair(x, y)
    return float(stats.kendalltau(a, b).statistic) if len(a) >= 2 else math.nan


def spearman_rho(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman's ρ between two score vectors (`scipy.stats.spearmanr`; NaN when undefined)."""
    a, b = _pair(x, y)
    if len(a) < 2:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)  # one side all tied: NaN, as documented
        return float(stats.spearmanr(a, b).statistic)


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile-bootstrap interval (NaN bounds when too few resamples are defined)."""

    value: float
    low: float
    high: float

    def to_json(self) -> dict[str, float | None]:
        return {k: (None if math.isnan(v) else round(v, 4)) for k, v in asdict(self).items()}


def bootstrap(statistic: Statistic, x: ArrayLike, y: ArrayLike, *, samples: int = BOOTSTRAP_SAMPLES,
              seed: int = 0, confidence: float = CONFIDENCE) -> Interval:
    """`statistic(x, y)` with a seeded percentile-bootstrap interval over candidates, resampled in pairs
    (`scipy.stats.bootstrap`). A resample on which the statistic is undefined (e.g. every candidate drawn is
    the same one) is left out of the percentiles; fewer than 3 candidates, or fewer than half the resamples
    defined, give no interval."""
    a, b = _pair(x, y)
    value = float(statistic(a, b))
    if len(a) < 3:
        return Interval(value, math.nan, math.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)  # undefined resamples: handled below
        result = stats.bootstrap((a, b), statistic, paired=True, vectorized=False, n_resamples=samples,
                                 method="percentile", confidence_level=confidence,
                                 random_state=np.random.default_rng(seed))
    draws = np.asarray(result.bootstrap_distribution, dtype=np.float64)
    defined = draws[~np.isnan(draws)]
    if len(defined) < samples // 2:
        return Interval(value, math.nan, math.nan)
    if len(defined) == len(draws):
        low, high = result.confidence_interval
    else:
        tail = (1.0 - confidence) / 2.0
        low, high = np.quantile(defined, [tail, 1.0 - tail])
    return Interval(value, float(low), float(high))


def _best(scores: NDArray[np.float64], k: int) -> NDArray[np.intp]:
    """Indices of the `k` highest scores (ties: the earlier candidate first)."""
    return np.argsort(-scores, kind="mergesort")[:k]


def top_fraction_tau(estimate: ArrayLike, reference: ArrayLike, fraction: float) -> float:
    """τ among the candidates in the best `fraction` by reference (ceil(n · fraction) of them)."""
    est, ref = _pair(estimate, reference)
    keep = _best(ref, math.ceil(len(ref) * fraction))
    return kendall_tau(est[keep], ref[keep])


def top_half_tau(estimate: ArrayLike, reference: ArrayLike) -> float:
    """τ among the candidates in the best half by reference (ceil(n/2) of them)."""
    return top_fraction_tau(estimate, reference, 0.5)


def top_quarter_tau(estimate: ArrayLike, reference: ArrayLike) -> float:
    """τ among the candidates in the best quarter by reference (ceil(n/4) of them)."""
    return top_fraction_tau(estimate, reference, 0.25)


def precision_at_k(estimate: ArrayLike, reference: ArrayLike, k: int = 5) -> float:
    """Share of the estimate's best `k` that are among the reference's best `k` (k = n when fewer candidates;
    NaN for none)."""
    est, ref = _pair(estimate, reference)
    k = min(k, len(ref))
    if k < 1:
        return math.nan
    return len(set(_best(est, k).tolist()) & set(_best(ref, k).tolist())) / k


def regret_at_k(estimate: ArrayLike, reference: ArrayLike, k: int = 1) -> float:
    """The best reference score minus the best reference score among the estimate's top `k` (≥ 0; 0 when the
    estimate's top k hold the true best). With reference scores −loss: the loss of the pick minus the best loss."""
    est, ref = _pair(estimate, reference)
    if len(ref) == 0 or not np.isfinite(ref).all():
        return math.nan
    return float(ref.max() - ref[_best(est, min(k, len(ref)))].max())


def group_mean_tau(estimate: ArrayLike, reference: ArrayLike, groups: Sequence[object], *,
                   min_size: int = 3) -> float:
    """Mean over the groups of at least `min_size` members (key None: in no group) of τ within the group; the
    groups where τ is undefined are left out; NaN when none is left."""
    est, ref = _pair(estimate, reference)
    by_key: dict[object, list[int]] = {}
    for index, key in enumerate(groups):
        if key is not None:
            by_key.setdefault(key, []).append(index)
    taus = [kendall_tau(est[idx], ref[idx]) for idx in by_key.values() if len(idx) >= min_size]
    taus = [t for t in taus if not math.isnan(t)]
    return float(np.mean(taus)) if taus else math.nan


def mean_rank(scores: ArrayLike, members: ArrayLike) -> float:
    """Mean rank (1 = best; ties get their average rank) of the marked candidates; NaN when none is marked."""
    values = np.asarray(scores, dtype=np.float64)
    mask = np.asarray(members, dtype=bool)
    if not mask.any():
        return math.nan
    return float(stats.rankdata(-values)[mask].mean())


def rank_lift(estimate: ArrayLike, reference: ArrayLike, members: ArrayLike) -> float:
    """How many rank places the estimate lifts the marked candidates above where the reference puts them:
    mean rank under the reference − mean rank under the estimate (positive: the estimate favours them)."""
    est, ref = _pair(estimate, reference)
    return mean_rank(ref, members) - mean_rank(est, members)


@dataclass(frozen=True)
class GroupTau:
    """τ over the pairs that lie within equal-parameter groups, pooled (C − D over untied pairs)."""

    tau: float
    groups: int
    """Groups holding at least two candidates."""
    pairs: int
    """Within-group pairs untied on both sides (the pairs the figure rests on)."""


def _pair_signs(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """sign(x_i − x_j) for i < j, as a flat vector (ties are 0; compared by rank, so −inf ties −inf)."""
    r = stats.rankdata(x)
    i, j = np.triu_indices(len(r), k=1)
    return np.sign(r[i] - r[j])


def within_group_tau(estimate: ArrayLike, reference: ArrayLike, groups: Sequence[object]) -> GroupTau:
    """Pooled τ over pairs of candidates with the same group key (e.g. the parameter count): the within-group
    concordant minus discordant pairs over the within-group pairs untied on both sides."""
    est, ref = _pair(estimate, reference)
    by_key: dict[object, list[int]] = {}
    for index, key in enumerate(groups):
        by_key.setdefault(key, []).append(index)
    concordant = discordant = 0
    members = [idx for idx in by_key.values() if len(idx) >= 2]
    for idx in members:
        product = _pair_signs(est[idx]) * _pair_signs(ref[idx])
        concordant += int(np.count_nonzero(product > 0))
        discordant += int(np.count_nonzero(product < 0))
    pairs = concordant + discordant
    return GroupTau((concordant - discordant) / pairs if pairs else math.nan, len(members), pairs)


@dataclass(frozen=True)
class RankFigures:
    """Every figure the audit reports for one estimator against the reference."""

    kendall_tau: Interval
    spearman_rho: Interval
    top_half_tau: float
    equal_params: GroupTau

    def to_json(self) -> dict[str, object]:
        group = self.equal_params
        return {"kendall_tau": self.kendall_tau.to_json(), "spearman_rho": self.spearman_rho.to_json(),
                "top_half_tau": _num(self.top_half_tau),
                "equal_params_tau": {"tau": _num(group.tau), "groups": group.groups, "pairs": group.pairs}}


def rank_figures(estimate: ArrayLike, reference: ArrayLike, params: Sequence[int], *,
                 samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> RankFigures:
    """τ and ρ with bootstrap intervals, τ in the best half and τ within equal-parameter groups."""
    return RankFigures(bootstrap(kendall_tau, estimate, reference, samples=samples, seed=seed),
                       bootstrap(spearman_rho, estimate, reference, samples=samples, seed=seed),
                       top_half_tau(estimate, reference), within_group_tau(estimate, reference, params))


FigureFn = Callable[[NDArray[np.float64], NDArray[np.float64], NDArray[np.intp]], float]
"""A figure on a (resampled) candidate set: (estimate, reference, the candidates' original indices) → value."""


def figure_functions(groups: Sequence[object] | None = None, cluster: Sequence[bool] | None = None
                     ) -> dict[str, FigureFn]:
    """The audit's figures by name (see the module docstring): `sibling_tau` when `groups` name any group of
    3 or more, `exposure_lift` when `cluster` marks any candidate."""
    figures: dict[str, FigureFn] = {
        "kendall_tau": lambda e, r, i: kendall_tau(e, r),
        "spearman_rho": lambda e, r, i: spearman_rho(e, r),
        "top_half_tau": lambda e, r, i: top_half_tau(e, r),
        "top_quarter_tau": lambda e, r, i: top_quarter_tau(e, r),
        "precision_at_5": lambda e, r, i: precision_at_k(e, r, 5),
        "regret_at_1": lambda e, r, i: regret_at_k(e, r, 1),
        "regret_at_5": lambda e, r, i: regret_at_k(e, r, 5),
    }
    if groups is not None:
        keys = list(groups)
        sizes: dict[object, int] = {}
        for key in keys:
            if key is not None:
                sizes[key] = sizes.get(key, 0) + 1
        if any(size >= 3 for size in sizes.values()):
            figures["sibling_tau"] = lambda e, r, i: group_mean_tau(e, r, [keys[j] for j in i])
    if cluster is not None and any(cluster):
        mask = np.asarray(cluster, dtype=bool)
        figures["exposure_lift"] = lambda e, r, i: rank_lift(e, r, mask[i])
    return figures


@dataclass(frozen=True)
class Resamples:
    """Bootstrap index resamples shared by every figure: candidates (samples × n) and supernets (samples × S)."""

    candidates: NDArray[np.intp]
    supernets: NDArray[np.intp]
    confidence: float = CONFIDENCE

    @property
    def samples(self) -> int:
        return int(self.candidates.shape[0])


def resamples(n: int, *, supernets: int = 1, strata: Sequence[object] | None = None,
              samples: int = BOOTSTRAP_SAMPLES, seed: int = 0, confidence: float = CONFIDENCE) -> Resamples:
    """`samples` seeded resamples of `n` candidates with replacement (within each stratum when `strata` are
    given, so each position keeps its stratum) and of `supernets` supernets with replacement."""
    if n < 1 or supernets < 1 or samples < 1:
        raise ValueError(f"resamples of {n} candidates and {supernets} supernets, {samples} times: expected ≥ 1 each")
    rng = np.random.default_rng(seed)
    if strata is None:
        candidates = rng.integers(0, n, size=(samples, n))
    else:
        keys = list(strata)
        if len(keys) != n:
            raise ValueError(f"{len(keys)} strata for {n} candidates")
        candidates = np.empty((samples, n), dtype=np.intp)
        for key in dict.fromkeys(keys):
            positions = np.array([i for i, k in enumerate(keys) if k == key], dtype=np.intp)
            candidates[:, positions] = positions[rng.integers(0, len(positions), size=(samples, len(positions)))]
    return Resamples(candidates.astype(np.intp), rng.integers(0, supernets, size=(samples, supernets)).astype(np.intp),
                     confidence)


@dataclass(frozen=True)
class Distribution:
    """A figure's point value and its value on each resample (NaN where undefined)."""

    value: float
    draws: NDArray[np.float64]
    confidence: float = CONFIDENCE

    def interval(self) -> Interval:
        """Percentile interval over the defined resamples; none when fewer than half of them are defined."""
        return _percentiles(self.value, self.draws, self.confidence)


def _percentiles(value: float, draws: NDArray[np.float64], confidence: float) -> Interval:
    defined = draws[~np.isnan(draws)]
    if len(draws) == 0 or len(defined) < len(draws) / 2:
        return Interval(value, math.nan, math.nan)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(defined, [tail, 1.0 - tail])
    return Interval(value, float(low), float(high))


def _mean(values: Sequence[float]) -> float:
    return math.nan if any(math.isnan(v) for v in values) else float(np.mean(values))


def distribution(figure: FigureFn, estimates: ArrayLike, reference: ArrayLike, plan: Resamples | None
                 ) -> Distribution:
    """`figure` of an estimate against the reference, and on every resample of `plan` (None: no interval,
    e.g. fewer than 3 candidates). `estimates` is one row per supernet (S rows, S as in `plan`) or a single
    row (an estimate that needs no supernet); a row's figure is averaged over the supernets a resample draws,
    the point value over all supernets."""
    rows = np.asarray(estimates, dtype=np.float64)
    rows = rows.reshape(1, -1) if rows.ndim == 1 else rows
    ref = np.asarray(reference, dtype=np.float64)
    per_supernet = rows.shape[0] > 1
    if per_supernet and plan is not None and rows.shape[0] != plan.supernets.shape[1]:
        raise ValueError(f"{rows.shape[0]} rows of estimates for {plan.supernets.shape[1]} supernets")
    for row in rows:
        _pair(row, ref)
    everything = np.arange(len(ref))
    value = _mean([figure(row, ref, everything) for row in rows])
    if plan is None:
        return Distribution(value, np.empty(0))
    draws = np.empty(plan.samples)
    for b in range(plan.samples):
        idx = plan.candidates[b]
        chosen = plan.supernets[b] if per_supernet else (0,)
        draws[b] = _mean([figure(rows[s][idx], ref[idx], idx) for s in chosen])
    return Distribution(value, draws, plan.confidence)


def ceiling_distribution(figure: FigureFn, seeds: ArrayLike, plan: Resamples | None) -> Distribution:
    """The noise ceiling of `figure`, like for like: each reference seed's scores (a row of `seeds`) as the
    estimate against the mean of the other seeds as the reference (leave-one-out), averaged over the seeds;
    on the candidate resamples of `plan` (the seeds are not resampled)."""
    rows = np.asarray(seeds, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] < 2:
        raise ValueError("the noise ceiling needs the scores of at least two reference seeds")
    others = [np.delete(rows, s, axis=0).mean(axis=0) for s in range(rows.shape[0])]
    everything = np.arange(rows.shape[1])
    value = _mean([figure(rows[s], others[s], everything) for s in range(rows.shape[0])])
    if plan is None:
        return Distribution(value, np.empty(0))
    draws = np.empty(plan.samples)
    for b in range(plan.samples):
        idx = plan.candidates[b]
        draws[b] = _mean([figure(rows[s][idx], others[s][idx], idx) for s in range(rows.shape[0])])
    return Distribution(value, draws, plan.confidence)


def paired_difference(first: Distribution, second: Distribution) -> Interval:
    """first − second, with the percentile interval of the differences on the same resamples (paired)."""
    if first.draws.shape != second.draws.shape:
        raise ValueError("paired differences need the same resamples")
    return _percentiles(first.value - second.value, first.draws - second.draws, first.confidence)


def _num(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)
