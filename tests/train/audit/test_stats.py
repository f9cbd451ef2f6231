"""The audit's rank statistics on hand-made cases whose answers are known: permutations, ties, failed
candidates, undefined figures, and the seeded bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autobert_zero.train.audit.stats import (
    bootstrap,
    kendall_tau,
    rank_figures,
    spearman_rho,
    top_half_tau,
    within_group_tau,
)


def test_known_permutations_and_ties() -> None:
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    # pairs: (1,2) C, (1,3) C, (2,3) D → (2 − 1) / 3
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    assert spearman_rho([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    # τ-b with a tie in x: C = 4, D = 1 (the pair (1, 3)), pairs untied in x 5 of 6, in y 6 of 6 → 3 / sqrt(5 · 6)
    assert kendall_tau([1, 2, 2, 3], [2, 3, 1, 4]) == pytest.approx(3 / math.sqrt(30))
    # ρ on average ranks: x ranks 1, 2.5, 2.5, 4 against 2, 3, 1, 4 → 3 / sqrt(4.5 · 5)
    assert spearman_rho([1, 2, 2, 3], [2, 3, 1, 4]) == pytest.approx(3 / math.sqrt(4.5 * 5))


def test_undefined_and_refused_inputs() -> None:
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))  # one side all tied
    assert math.isnan(spearman_rho([1, 1, 1], [1, 2, 3]))
    assert math.isnan(kendall_tau([5], [6])) and math.isnan(spearman_rho([5], [6]))
    with pytest.raises(ValueError, match="NaN"):
        kendall_tau([1.0, math.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="equal length"):
        kendall_tau([1, 2], [1, 2, 3])


def test_failed_candidate_scored_minus_inf_ranks_last() -> None:
    assert kendall_tau([-math.inf, 1.0, 2.0], [0.0, 1.0, 2.0]) == 1.0
    assert spearman_rho([-math.inf, 1.0, 2.0], [0.0, 1.0, 2.0]) == pytest.approx(1.0)
    # two failures tie with each other (not NaN), below every scored candidate
    assert kendall_tau([-math.inf, -math.inf, 1.0], [0.0, 1.0, 2.0]) == pytest.approx(2 / math.sqrt(2 * 3))


def test_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=24)
    y = x + rng.normal(scale=0.7, size=24)
    a = bootstrap(kendall_tau, x, y, samples=300, seed=5)
    b = bootstrap(kendall_tau, x, y, samples=300, seed=5)
    c = bootstrap(kendall_tau, x, y, samples=300, seed=6)
    assert a == b and a != c
    assert a.value == kendall_tau(x, y)
    assert a.low < a.value < a.high and a.high - a.low < 0.8
    rho = bootstrap(spearman_rho, x, y, samples=300, seed=5)
    assert rho.low < rho.value < rho.high
    perfect = bootstrap(kendall_tau, x, x, samples=100, seed=0)
    assert (perfect.value, perfect.low, perfect.high) == pytest.approx((1.0, 1.0, 1.0))
    too_few = bootstrap(kendall_tau, [1.0, 2.0], [2.0, 3.0], samples=50)
    assert too_few.value == 1.0 and math.isnan(too_few.low) and math.isnan(too_few.high)


def test_bootstrap_leaves_out_undefined_resamples() -> None:
    # with 3 candidates, 1 resample in 9 draws one candidate thrice (τ undefined); the rest are all τ = 1
    interval = bootstrap(kendall_tau, [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], samples=200, seed=0)
    assert (interval.value, interval.low, interval.high) == pytest.approx((1.0, 1.0, 1.0))
    # every resample undefined (x all tied): no interval, not an error
    flat = bootstrap(kendall_tau, [1.0, 1.0, 1.0], [1.0, 2.0, 3.0], samples=50, seed=0)
    assert math.isnan(flat.value) and math.isnan(flat.low) and math.isnan(flat.high)


def test_top_half_and_equal_parameter_groups() -> None:
    reference = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    estimate = [4.0, 5.0, 6.0, 3.0, 2.0, 1.0]  # halves swapped; the best half backwards, the worst in order
    assert kendall_tau(estimate, reference) == pytest.approx((3 - 12) / 15)  # 9 cross pairs and 3 top: D
    assert top_half_tau(estimate, reference) == -1.0  # reference 4, 5, 6 estimated 3, 2, 1
    groups = [100, 100, 100, 200, 200, 300]  # group 100: 3 concordant pairs; group 200: 1 discordant pair
    result = within_group_tau(estimate, reference, groups)
    assert (result.groups, result.pairs) == (2, 4)
    assert result.tau == pytest.approx((3 - 1) / 4)
    none = within_group_tau(estimate, reference, list(range(6)))
    assert none.groups == 0 and math.isnan(none.tau)
    # two failed candidates in one group tie: the pair counts for neither side
    tied = within_group_tau([-math.inf, -math.inf, 1.0], [1.0, 2.0, 3.0], [7, 7, 8])
    assert (tied.groups, tied.pairs) == (1, 0) and math.isnan(tied.tau)


def test_rank_figures() -> None:
    figures = rank_figures([1, 2, 3, 4], [1, 2, 3, 4], [7, 7, 8, 9], samples=50, seed=0).to_json()
    assert figures["kendall_tau"] == {"value": 1.0, "low": 1.0, "high": 1.0}
    assert figures["top_half_tau"] == 1.0
    assert figures["equal_params_tau"] == {"tau": 1.0, "groups": 1, "pairs": 1}
