"""Issue #15 §2's goal on audit reports: thresholds (fixed and from the reference's own top quarter), rivals at
no more cost, paired intervals that must exclude 0, the unresolvable top quarter, and the report's own copy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from autobert_zero.train.audit.goal import fitness_goal, paired_interval, rivals
from autobert_zero.train.audit.plot import goal_line
from autobert_zero.train.audit.report import build_report
from tests.train.audit.test_report import _inputs


def _figures(top_quarter: float, sibling: float, precision: float) -> dict[str, Any]:
    return {"top_quarter_tau": {"value": top_quarter, "low": top_quarter - 0.2, "high": top_quarter + 0.2},
            "sibling_tau": {"value": sibling, "low": sibling - 0.2, "high": sibling + 0.2},
            "precision_at_5": {"value": precision, "low": precision - 0.2, "high": precision + 0.2}}


def _difference(low: float, high: float) -> dict[str, Any]:
    return {f: {"value": (low + high) / 2, "low": low, "high": high}
            for f in ("top_quarter_tau", "sibling_tau", "precision_at_5")}


def _report(*, ceiling: float = 0.9, resolvable: bool = True) -> dict[str, Any]:
    """Halving meets every threshold and is above every rival; BIWS k = 0 reaches the thresholds but is not
    above params in precision@5; a costly scratch run is no rival of the cheap BIWS."""
    estimators = {
        "halving": {"kind": "halving", "seconds_per_candidate": 30.0, "figures": _figures(0.7, 0.6, 0.8)},
        "biws_k0": {"kind": "biws", "seconds_per_candidate": 1.0, "figures": _figures(0.65, 0.55, 0.6),
                    "cost": {"amortised_seconds_over_search": 2.0}},
        "scratch_halving": {"kind": "scratch", "matched_to": "halving", "seconds_per_candidate": 29.0,
                            "figures": _figures(0.2, 0.1, 0.4)},
        "params": {"kind": "params", "seconds_per_candidate": 0.0, "figures": _figures(0.1, 0.0, 0.4)},
    }
    paired = {"halving - biws_k0": _difference(0.01, 0.2), "halving - scratch_halving": _difference(0.1, 0.5),
              "halving - params": _difference(0.2, 0.6), "biws_k0 - scratch_halving": _difference(0.1, 0.4),
              "params - biws_k0": {**_difference(-0.5, -0.1), "precision_at_5": {"low": -0.4, "high": 0.1}}}
    reference = {"top_quarter_resolvable": resolvable,
                 "noise_ceiling": {"top_quarter_tau": {"value": ceiling, "low": 0.5, "high": 1.0}}}
    return {"estimators": estimators, "paired_differences": paired, "reference": reference}


def test_an_estimator_above_every_rival_meets_the_goal_and_one_tie_fails_it() -> None:
    goal = fitness_goal(_report())
    assert goal["met_by"] == ["halving"] and goal["undecided"] == []
    assert goal["thresholds"] == {"top_quarter_tau": 0.6, "sibling_tau": 0.5, "precision_at_5": 0.6}
    biws = goal["estimators"]["biws_k0"]
    assert biws["reached"] == {"top_quarter_tau": True, "sibling_tau": True, "precision_at_5": True}
    assert biws["not_above"] == ["params:precision_at_5"] and biws["met"] is False  # its interval holds 0
    assert set(goal["estimators"]) == {"halving", "biws_k0"}  # scratch and params are rivals, not checked


def test_rivals_are_the_free_estimators_and_scratch_at_no_more_cost() -> None:
    estimators = _report()["estimators"]
    assert rivals("halving", estimators) == ["scratch_halving", "params"]
    assert rivals("biws_k0", estimators) == ["params"]  # 29 s of scratch is more than BIWS's 2 s amortised
    estimators["biws_k0"]["cost"]["amortised_seconds_over_search"] = 40.0
    assert rivals("biws_k0", estimators) == ["scratch_halving", "params"]


def test_a_low_reference_ceiling_lowers_the_top_quarter_threshold() -> None:
    report = _report(ceiling=0.4)
    report["estimators"]["halving"]["figures"]["top_quarter_tau"]["value"] = 0.35
    goal = fitness_goal(report)
    assert goal["thresholds"]["top_quarter_tau"] == 0.3  # 0.75 of the reference's own 0.4
    assert goal["estimators"]["halving"]["reached"]["top_quarter_tau"] is True and goal["met_by"] == ["halving"]
    assert fitness_goal(_report(ceiling=0.3))["estimators"]["halving"]["met"] is True  # 0.7 ≥ 0.225


def test_an_unresolvable_top_quarter_leaves_the_goal_undecided_not_met() -> None:
    goal = fitness_goal(_report(resolvable=False))
    halving = goal["estimators"]["halving"]
    assert halving["reached"]["top_quarter_tau"] is None and halving["met"] is None
    assert goal["met_by"] == [] and goal["undecided"] == ["halving"]
    assert "params:top_quarter_tau" in halving["unresolved"]
    assert goal["estimators"]["biws_k0"]["met"] is False  # a failed check still fails


def test_the_report_carries_the_goal_of_its_own_estimators() -> None:
    report = build_report(_inputs())
    assert report["fitness_goal"] == fitness_goal(report)
    assert set(report["fitness_goal"]["estimators"]) == {"biws_k0", "combo_biws_k0"}


def test_the_printed_goal_line_names_who_meets_it_or_the_nearest_miss() -> None:
    assert goal_line(fitness_goal(_report())).endswith("met by halving")
    assert "undecided (top quarter unresolvable) for halving" in goal_line(fitness_goal(_report(resolvable=False)))
    report = _report()
    for figure in ("sibling_tau", "precision_at_5"):  # two misses: BIWS k = 0, one tie with params, is nearer
        report["estimators"]["halving"]["figures"][figure]["value"] = 0.1
    line = goal_line(fitness_goal(report))
    assert "not met; nearest biws_k0 (misses no threshold, not above 1 rival figures)" in line


def test_results_md_shows_the_search_audit_with_its_goal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmarks.results_md as results_md

    monkeypatch.setattr(results_md, "RESULTS", tmp_path)
    assert "No figure yet" in results_md.audit_search()  # no audit-e2e.json yet
    report = build_report(_inputs())
    report.update(command="python -m benchmarks.bench_audit --tag e2e", when="2026-12-06T22:00:00+0000",
                  commit={"sha": "0123456789"}, candidate_source={"from_search": ["runs/search-a", "runs/search-b"]},
                  reference_convergence={"steps": 100, "double_steps": 200, "scored_at_both_budgets": 7,
                                         "tau": 0.9, "converged": True, "threshold": 0.85})
    (tmp_path / "audit-e2e.json").write_text(json.dumps(report), encoding="utf-8")
    text = results_md.audit_search()
    assert "(search-a, search-b)" in text and "| biws_k0 |" in text and "| noise ceiling (leave-one-out) |" in text
    assert "**Goal of #15 §2** (`train/audit/goal.py`): not met; nearest" in text
    assert "= 0.9 (converged; threshold 0.85)" in text and "commit `0123456`" in text


def test_a_paired_difference_is_read_in_either_order() -> None:
    paired = _report()["paired_differences"]
    assert paired_interval(paired, "halving", "params", "sibling_tau") == {"value": 0.4, "low": 0.2, "high": 0.6}
    flipped = paired_interval(paired, "params", "halving", "sibling_tau")
    assert flipped == {"value": -0.4, "low": -0.6, "high": -0.2}
    assert paired_interval(paired, "params", "halving", "regret_at_1") is None  # not recorded
    assert paired_interval(paired, "params", "nobody", "sibling_tau") is None
