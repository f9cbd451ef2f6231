"""The audit's rank statistics: against scipy.stats on random and tied inputs, and on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from autobert_zero.train.audit.stats import (
    bootstrap,
    kendall_tau,
    rank_figures,
    rankdata,
    spearman_rho,
    top_half_tau,
    within_group_tau,
)


@pytest.mark.parametrize("seed", range(6))
def test_matches_scipy_on_random_and_tied_scores(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 40))
    x = rng.normal(size=n)
    y = x + rng.normal(scale=1.0, size=n)
    if seed % 2:  # heavy ties on both sides
        x, y = np.round(x), np.round(y * 2)
    assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
    assert spearman_rho(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    np.testing.assert_allclose(rankdata(x), stats.rankdata(x))


def test_hand_made_cases() -> None:
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    # pairs: (1,2) C, (1,3) C, (2,3) D → (2 − 1) / 3
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    assert spearman_rho([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))  # one side all tied
    assert math.isnan(spearman_rho([5], [6]))
    np.testing.assert_array_equal(rankdata([3.0, -math.inf, 3.0, 7.0]), [2.5, 1.0, 2.5, 4.0])
    with pytest.raises(ValueError, match="NaN"):
        rankdata([1.0, math.nan])
    with pytest.raises(ValueError, match="equal length"):
        kendall_tau([1, 2], [1, 2, 3])


def test_failed_candidate_scored_minus_inf_ranks_last() -> None:
    assert kendall_tau([-math.inf, 1.0, 2.0], [0.0, 1.0, 2.0]) == 1.0


def test_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=24)
    y = x + rng.normal(scale=0.7, size=24)
    a = bootstrap(kendall_tau, x, y, samples=300, seed=5)
    b = bootstrap(kendall_tau, x, y, samples=300, seed=5)
    c = bootstrap(kendall_tau, x, y, samples=300, seed=6)
    assert a == b and a != c
    assert a.low < a.value < a.high and a.high - a.low < 0.8
    perfect = bootstrap(kendall_tau, x, x, samples=100, seed=0)
    assert (perfect.value, perfect.low, perfect.high) == (1.0, 1.0, 1.0)
    too_few = bootstrap(kendall_tau, [1.0, 2.0], [2.0, 3.0], samples=50)
    assert too_few.value == 1.0 and math.isnan(too_few.low)


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


def test_rank_figures() -> None:
    figures = rank_figures([1, 2, 3, 4], [1, 2, 3, 4], [7, 7, 8, 9], samples=50, seed=0).to_json()
    assert figures["kendall_tau"] == {"value": 1.0, "low": 1.0, "high": 1.0}
    assert figures["top_half_tau"] == 1.0
    assert figures["equal_params_tau"] == {"tau": 1.0, "groups": 1, "pairs": 1}
