"""Report helpers (evolve/report.py) and the export ranking (evolve/export.py) on hand-written histories."""

from __future__ import annotations

from typing import Any

from autobert_zero.evolve.export import best_candidates
from autobert_zero.evolve.report import lineage, pareto_front, population_median, running_best


def line(index: int, fitness: float | None, status: str = "ok", id: str | None = None,
         parent: str | None = None) -> dict[str, Any]:
    return {"index": index, "id": id or f"g{index}", "fitness": fitness, "status": status, "parent": parent}


HISTORY = [line(0, 1.0), line(1, None, "failed"), line(2, 3.0, parent="g0"), line(3, 2.0, parent="g2"),
           line(4, 3.0, "duplicate", id="g2", parent="g3"), line(5, 5.0, "over-limit", parent="g2"),
           line(6, 4.0, parent="g3")]


def test_running_best_ignores_failed_and_over_limit_candidates() -> None:
    assert running_best(HISTORY) == [1.0, 1.0, 3.0, 3.0, 3.0, 3.0, 4.0]


def test_population_median_follows_the_aging_population() -> None:
    assert population_median(HISTORY, 2) == [1.0, 1.0, 2.0, 2.5, 2.5, 2.5, 3.5]


def test_pareto_front_keeps_points_nobody_beats() -> None:
    points = [(10.0, 1.0), (20.0, 0.5), (20.0, 2.0), (30.0, 1.5), (40.0, 3.0)]
    assert pareto_front(points) == [(10.0, 1.0), (20.0, 2.0), (40.0, 3.0)]


def test_lineage_walks_parents_to_the_root() -> None:
    assert [entry["index"] for entry in lineage(HISTORY, HISTORY[6])] == [6, 3, 2, 0]


def test_best_candidates_are_distinct_and_scored() -> None:
    assert [entry["index"] for entry in best_candidates(HISTORY, 3)] == [6, 2, 3]
