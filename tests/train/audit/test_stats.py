"""The audit's rank statistics on hand-made cases whose answers are known: permutations, ties, failed
candidates, undefined figures, the seeded bootstrap; precision@5, regret@1/@5, τ in the top quarter and within
sibling groups, the rank lift of a cluster, the leave-one-out noise ceiling, paired differences on shared
resamples and the two-level (candidates × supernets, stratified) resampling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autobert_zero.train.audit.stats import (
    bootstrap,
    ceiling_distribution,
    distribution,
    figure_functions,
    group_mean_tau,
    kendall_tau,
    mean_rank,
    paired_difference,
    precision_at_k,
    rank_figures,
    rank_lift,
    regret_at_k,
    resamples,
    spearman_rho,
    top_half_tau,
    top_quarter_tau,
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


def test_precision_and_regret_on_a_hand_made_case() -> None:
    reference = [10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0]  # candidate 0 is the best; top 5 = 0..4
    estimate = [1.0, 8.0, 7.0, 6.0, 5.0, 4.0, 9.0, 3.0]  # its top 5: 6, 1, 2, 3, 4
    assert precision_at_k(estimate, reference, 5) == pytest.approx(4 / 5)  # 6 is not in the reference's top 5
    assert regret_at_k(estimate, reference, 1) == pytest.approx(10.0 - 4.0)  # picks 6 (reference 4), best is 10
    assert regret_at_k(estimate, reference, 5) == pytest.approx(10.0 - 9.0)  # best of its top 5 is candidate 1
    assert regret_at_k(reference, reference, 1) == 0.0 and precision_at_k(reference, reference, 5) == 1.0
    assert precision_at_k([1.0, 2.0, 3.0], [3.0, 2.0, 1.0], 5) == 1.0  # fewer than 5 candidates: k = n (all)
    assert precision_at_k([1.0, 2.0, 3.0], [3.0, 2.0, 1.0], 1) == 0.0
    # a failed candidate (−inf) is never the estimate's pick while another is scored
    assert regret_at_k([-math.inf, 1.0, 0.0], [5.0, 3.0, 4.0], 1) == pytest.approx(2.0)


def test_top_quarter_and_sibling_group_tau() -> None:
    reference = [8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    estimate = [7.0, 8.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]  # only the best two swapped
    assert top_quarter_tau(estimate, reference) == -1.0  # the top quarter (2 candidates) is backwards
    assert top_half_tau(estimate, reference) == pytest.approx((5 - 1) / 6)
    groups = ["a", "a", "a", "b", "b", "b", None, "c"]
    # group a: candidates 0,1,2 → pairs (0,1) D, (0,2) C, (1,2) C → 1/3; group b: all concordant → 1; c too small
    assert group_mean_tau(estimate, reference, groups) == pytest.approx((1 / 3 + 1.0) / 2)
    assert math.isnan(group_mean_tau(estimate, reference, [None] * 8))
    assert math.isnan(group_mean_tau(estimate, reference, ["a", "a", "b", "b", "c", "c", "d", "d"]))


def test_rank_lift_of_a_cluster() -> None:
    reference = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    cluster = [False, False, False, False, True, True]  # reference ranks 5 and 6: mean 5.5
    estimate = [1.0, 2.0, 3.0, 4.0, 6.0, 5.0]  # the estimate ranks them 1 and 2: mean 1.5
    assert mean_rank(reference, cluster) == 5.5 and mean_rank(estimate, cluster) == 1.5
    assert rank_lift(estimate, reference, cluster) == pytest.approx(4.0)  # lifted by four places
    assert rank_lift(reference, reference, cluster) == 0.0
    assert math.isnan(rank_lift(estimate, reference, [False] * 6))


def test_leave_one_out_noise_ceiling_is_each_seed_against_the_mean_of_the_others() -> None:
    seeds = np.array([[1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 3.0, 4.0], [1.0, 2.0, 4.0, 3.0]])
    figures = figure_functions()
    plan = resamples(4, samples=200, seed=0)
    ceiling = ceiling_distribution(figures["kendall_tau"], seeds, plan)
    expected = np.mean([kendall_tau(seeds[s], np.delete(seeds, s, axis=0).mean(axis=0)) for s in range(3)])
    assert ceiling.value == pytest.approx(expected)
    # with two seeds it is τ between them (either way round)
    two = ceiling_distribution(figures["kendall_tau"], seeds[:2], plan)
    assert two.value == pytest.approx(kendall_tau(seeds[0], seeds[1]))
    assert two.interval().low <= two.value <= two.interval().high
    with pytest.raises(ValueError, match="two reference seeds"):
        ceiling_distribution(figures["kendall_tau"], seeds[:1], plan)


def test_paired_differences_share_the_resamples() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=20)
    good = reference + rng.normal(scale=0.1, size=20)
    poor = reference + rng.normal(scale=2.0, size=20)
    plan = resamples(20, samples=300, seed=1)
    tau = figure_functions()["kendall_tau"]
    a, b = distribution(tau, good, reference, plan), distribution(tau, poor, reference, plan)
    forward, backward = paired_difference(a, b), paired_difference(b, a)
    assert forward.value == pytest.approx(a.value - b.value) and forward.value > 0
    assert forward.low > 0  # the better estimate wins on (nearly) every shared resample
    assert (backward.value, backward.low, backward.high) == pytest.approx((-forward.value, -forward.high,
                                                                           -forward.low))
    same = paired_difference(a, a)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)  # paired: no spread of its own
    assert a.value == kendall_tau(good, reference)  # the point value is the plain figure


def test_resamples_keep_strata_and_draw_supernets() -> None:
    strata = [False] * 6 + [True] * 3
    plan = resamples(9, supernets=2, strata=strata, samples=100, seed=0)
    assert plan.candidates.shape == (100, 9) and plan.supernets.shape == (100, 2)
    assert (plan.candidates[:, 6:] >= 6).all() and (plan.candidates[:, :6] < 6).all()  # each within its stratum
    assert set(np.unique(plan.supernets)) == {0, 1}
    again = resamples(9, supernets=2, strata=strata, samples=100, seed=0)
    assert (again.candidates == plan.candidates).all() and (again.supernets == plan.supernets).all()
    # an estimate per supernet: the point value is the mean over supernets of the figure
    reference = np.arange(9, dtype=float)
    rows = np.array([reference, reference[::-1]])
    result = distribution(figure_functions()["kendall_tau"], rows, reference, plan)
    assert result.value == pytest.approx(0.0)  # +1 on one supernet, −1 on the other
    assert result.interval().low == pytest.approx(-1.0) and result.interval().high == pytest.approx(1.0)
    with pytest.raises(ValueError, match="3 rows of estimates for 2 supernets"):
        distribution(figure_functions()["kendall_tau"], np.vstack([rows, rows[:1]]), reference, plan)
    assert math.isnan(distribution(figure_functions()["kendall_tau"], reference, reference, None).interval().low)


def test_figure_functions_include_groups_and_the_cluster_only_when_present() -> None:
    assert "sibling_tau" not in figure_functions(["a", "a", None])
    assert "sibling_tau" in figure_functions(["a", "a", "a"])
    assert "exposure_lift" not in figure_functions(cluster=[False, False])
    figures = figure_functions(["a", "a", "a", None], [False, False, True, True])
    assert {"kendall_tau", "spearman_rho", "top_half_tau", "top_quarter_tau", "precision_at_5", "regret_at_1",
            "regret_at_5", "sibling_tau", "exposure_lift"} == set(figures)
    # a figure sees the candidates' original indices: the groups follow the resampled candidates
    estimate, reference = np.array([1.0, 2.0, 3.0, 0.0]), np.array([1.0, 2.0, 3.0, 4.0])
    assert figures["sibling_tau"](estimate, reference, np.arange(4)) == 1.0
    index = np.array([0, 0, 1, 3])
    assert figures["sibling_tau"](estimate[index], reference[index], index) == pytest.approx(1.0)  # a: 0, 0, 1
    index = np.array([0, 1, 3, 3])  # group a has 2 members in this resample: no group of 3, no figure
    assert math.isnan(figures["sibling_tau"](estimate[index], reference[index], index))
