"""Rank statistics of the ranking audit: Kendall τ-b, Spearman ρ, seeded bootstrap intervals, and the
audit's derived figures (τ among the best half, τ within equal-parameter groups).

Pure numpy: every function takes score vectors where HIGHER is better and works on their average ranks,
so ties (and −inf for a failed candidate, which ranks last) are handled the way `scipy.stats` does:
`kendall_tau` equals `scipy.stats.kendalltau` (variant b) and `spearman_rho` equals `scipy.stats.spearmanr`
on any input without NaN. A statistic that is undefined (fewer than 2 items, or one side all tied) is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

Statistic = Callable[[NDArray[np.float64], NDArray[np.float64]], float]

BOOTSTRAP_SAMPLES = 1000
CONFIDENCE = 0.95


def rankdata(values: ArrayLike) -> NDArray[np.float64]:
    """Average ranks, 1 = smallest (ties share the mean of their ranks), like `scipy.stats.rankdata`."""
    x = np.asarray(values, dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError("rankdata: NaN scores cannot be ranked (mark failed candidates as -inf)")
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts).astype(np.float64)  # 1-based rank of the last item of each tie group
    return (ends - (counts - 1) / 2.0)[inverse]


def _pair_signs(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """sign(x_i − x_j) for i < j, as a flat vector (ties are 0)."""
    r = rankdata(x)
    i, j = np.triu_indices(len(r), k=1)
    return np.sign(r[i] - r[j])


def kendall_tau(x: ArrayLike, y: ArrayLike) -> float:
    """Kendall's τ-b between two score vectors (NaN when undefined)."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    _same_length(a, b)
    if len(a) < 2:
        return math.nan
    sa, sb = _pair_signs(a), _pair_signs(b)
    denominator = math.sqrt(float(np.count_nonzero(sa)) * float(np.count_nonzero(sb)))
    return float(np.sum(sa * sb) / denominator) if denominator > 0 else math.nan


def spearman_rho(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman's ρ: Pearson correlation of the average ranks (NaN when undefined)."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    _same_length(a, b)
    if len(a) < 2:
        return math.nan
    ra, rb = rankdata(a), rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = math.sqrt(float(np.sum(ra * ra)) * float(np.sum(rb * rb)))
    return float(np.sum(ra * rb) / denominator) if denominator > 0 else math.nan


def _same_length(a: NDArray[np.float64], b: NDArray[np.float64]) -> None:
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"score vectors must be 1-D and of equal length, got shapes {a.shape} and {b.shape}")


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
    """`statistic(x, y)` with a seeded percentile bootstrap interval over candidates (resampled in pairs)."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    _same_length(a, b)
    value = statistic(a, b)
    rng = np.random.default_rng(seed)
    draws = np.array([statistic(a[idx], b[idx]) for idx in rng.integers(0, len(a), size=(samples, len(a)))])
    draws = draws[~np.isnan(draws)]
    if len(a) < 3 or len(draws) < samples // 2:
        return Interval(value, math.nan, math.nan)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(draws, [tail, 100.0 - tail])
    return Interval(value, float(low), float(high))


def top_half_tau(estimate: ArrayLike, reference: ArrayLike) -> float:
    """τ among the candidates in the best half by reference (ceil(n/2) of them)."""
    ref = np.asarray(reference, dtype=np.float64)
    keep = np.argsort(-ref, kind="mergesort")[: math.ceil(len(ref) / 2)]
    return kendall_tau(np.asarray(estimate, dtype=np.float64)[keep], ref[keep])


@dataclass(frozen=True)
class GroupTau:
    """τ over the pairs that lie within equal-parameter groups, pooled (C − D over untied pairs)."""

    tau: float
    groups: int
    """Groups holding at least two candidates."""
    pairs: int
    """Within-group pairs untied on both sides (the pairs the figure rests on)."""


def within_group_tau(estimate: ArrayLike, reference: ArrayLike, groups: Sequence[object]) -> GroupTau:
    """Pooled τ over pairs of candidates with the same group key (e.g. the parameter count)."""
    est, ref = np.asarray(estimate, dtype=np.float64), np.asarray(reference, dtype=np.float64)
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
