"""Report helpers (evolve/report.py) and the export ranking (evolve/export.py) on hand-written histories, and a
whole report of a small search."""

from __future__ import annotations

from pathlib import Path

from autobert_zero.evolve import Search, StateStore, SyntheticFitness
from autobert_zero.evolve.export import best_candidates
from autobert_zero.evolve.history import HistoryLine, Status
from autobert_zero.evolve.report import lineage, pareto_front, population_median, running_best, write_report
from autobert_zero.evolve.settings import SearchSettings
from autobert_zero.grammar import default_language


def line(index: int, fitness: float | None, status: str = "ok", id: str | None = None,
         parent: str | None = None) -> HistoryLine:
    return HistoryLine(index=index, round=0, id=id or f"g{index}", genotype="", fitness=fitness, status=Status(status),
                       reason="", parent=parent, mutation="sample", ops=[], detail="", invalid=0, params=None,
                       flops_per_token=None)


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
    assert [entry.index for entry in lineage(HISTORY, HISTORY[6])] == [6, 3, 2, 0]


def test_best_candidates_are_distinct_and_scored() -> None:
    best = best_candidates([entry.to_json() for entry in HISTORY], 3)  # the JSON lines `abz export` reads
    assert [entry["index"] for entry in best] == [6, 2, 3]
    assert best == [HISTORY[i].to_json() for i in (6, 2, 3)]


def test_write_report_draws_its_plots_and_links_them(tmp_path: Path) -> None:
    config = SearchSettings(evaluations=20, population_size=4, tournament_size=2, fitness="synthetic")
    search = Search(config, default_language(), SyntheticFitness(0), seed=0, num_layers=2, store=StateStore(tmp_path))
    search.run()
    text = write_report(tmp_path, top=2).read_text(encoding="utf-8")
    for name in ("fitness", "priority", "rates", "pareto"):
        assert (tmp_path / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"](plots/{name}.png)" in text
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "best1.svg", "best2.svg", "fitness.png", "pareto.png", "priority.png", "rates.png"]  # no temporary files left
    ok, duplicates = (sum(line.status == status for line in search.history) for status in (Status.OK, Status.DUPLICATE))
    assert f"| 20 | {search.fitness_calls} | {ok} | {duplicates} | 0 | 0 |" in text
