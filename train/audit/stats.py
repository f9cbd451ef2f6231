"""Rank statistics of the ranking audit: Kendall τ-b, Spearman ρ and their seeded bootstrap intervals (all
from `scipy.stats`), and the audit's own derived figures (τ among the best half, τ within equal-parameter
groups).

Every function takes score vectors where HIGHER is better; a failed candidate is scored −inf and ranks last.
NaN is refused (it cannot be ranked). A statistic that is undefined (fewer than 2 items, or one side all
tied) is NaN.
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


def top_half_tau(estimate: ArrayLike, reference: ArrayLike) -> float:
    """τ among the candidates in the best half by reference (ceil(n/2) of them)."""
    est, ref = _pair(estimate, reference)
    keep = np.argsort(-ref, kind="mergesort")[: math.ceil(len(ref) / 2)]
    return kendall_tau(est[keep], ref[keep])


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


def _num(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)
