"""The report's plots draw a legend only where they have labelled artists (matplotlib warns otherwise)."""

from __future__ import annotations

import warnings
from pathlib import Path

from autobert_zero.evolve import Search, StateStore, SyntheticFitness
from autobert_zero.evolve.report import write_report
from autobert_zero.evolve.settings import SearchSettings
from autobert_zero.grammar import default_language


def test_a_report_with_nothing_to_label_draws_no_legend_and_warns_nothing(tmp_path: Path) -> None:
    # only the initial population: every op's priority is still +inf (None), so the priority plot has no line
    config = SearchSettings(evaluations=4, population_size=4, tournament_size=2, fitness="synthetic", strategy="op")
    search = Search(config, default_language(), SyntheticFitness(0), seed=0, num_layers=2, store=StateStore(tmp_path))
    search.run()
    assert all(line.priority and set(line.priority.values()) == {None} for line in search.history)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "No artists with labels found to put in legend" would raise
        write_report(tmp_path)
    assert (tmp_path / "plots" / "priority.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
