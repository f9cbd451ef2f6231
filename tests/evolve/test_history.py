"""The history line (evolve/history.py): it reads and writes exactly the history.jsonl lines the search writes
today and wrote before (a folder from commit 3028dac, lines from before `eval_loss` existed), refuses what is
not a history line, and the scored set and best line are the ones the search and the reports use."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from autobert_zero.errors import SearchError
from autobert_zero.evolve import (
    SCORED,
    FitnessResult,
    HistoryLine,
    Search,
    StateStore,
    Status,
    SyntheticFitness,
    best_line,
)
from autobert_zero.evolve.settings import SearchSettings
from autobert_zero.grammar import Genotype, default_language
from tests.support.paths import FIXTURES

LEGACY = FIXTURES / "legacy-3028dac" / "search"


def raw_lines(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "history.jsonl").read_text(encoding="utf-8").splitlines()]


def test_lines_of_an_old_folder_round_trip_exactly() -> None:
    lines = raw_lines(LEGACY)
    assert lines
    for raw in lines:
        line = HistoryLine.from_json(raw)
        assert line.to_json() == raw
        assert json.dumps(line.to_json(), sort_keys=True) == json.dumps(raw, sort_keys=True)
        assert line.status is Status.OK and line.priority is not None and line.eval_loss == raw["eval_loss"]
    _, loaded = StateStore(LEGACY).load(repair=False)
    assert [line.to_json() for line in loaded] == lines
    assert StateStore(LEGACY).history() == lines


def test_a_line_from_before_eval_loss_loads() -> None:
    raw = raw_lines(LEGACY)[1]
    del raw["eval_loss"]  # history lines carry eval_loss since commit e532d9d
    line = HistoryLine.from_json(raw)
    assert line.eval_loss is None and line.fitness == raw["fitness"]
    assert line.to_json() == {**raw, "eval_loss": None}


class MixedFitness(SyntheticFitness):
    """Synthetic scores with an eval_loss; genotypes that use `softsign` fail."""

    def evaluate(self, genotypes: Sequence[Genotype]) -> list[FitnessResult]:
        return [dataclasses.replace(r, score=None, status="failed", reason="softsign") if "softsign(" in g.to_text()
                else dataclasses.replace(r, eval_loss=-(r.score or 0.0))
                for g, r in zip(genotypes, super().evaluate(genotypes), strict=True)]


@pytest.mark.parametrize("strategy", ["op", "evolution", "random"])
def test_lines_the_search_writes_round_trip_exactly(tmp_path: Path, strategy: str) -> None:
    config = SearchSettings(evaluations=60, population_size=6, tournament_size=3, fitness="synthetic",
                            strategy=strategy, kernels=[3], conv_types=["light"], dilations=[1], max_nodes=3,
                            max_params=88_000)
    search = Search(config, default_language(), MixedFitness(0), seed=1, num_layers=2, store=StateStore(tmp_path))
    search.run()
    on_disk = raw_lines(tmp_path)
    assert {raw["status"] for raw in on_disk} == set(Status)  # every kind of line is in the file
    assert [HistoryLine.from_json(raw) for raw in on_disk] == search.history
    assert [line.to_json() for line in search.history] == on_disk
    assert all(("priority" in raw) == (strategy == "op") for raw in on_disk)
    written = (tmp_path / "history.jsonl").read_text(encoding="utf-8")
    assert written == "".join(json.dumps(line.to_json(), sort_keys=True) + "\n" for line in search.history)


@pytest.mark.parametrize(("change", "message"), [
    ({"status": "lost"}, "unknown status 'lost'"),
    ({"score": 1.0}, "has unknown score"),
    ({"fitness": dataclasses.MISSING}, "lacks fitness"),
    ({"fitness": "high"}, "fitness should be int or float or null, found 'high'"),  # valid JSON, not a line
    ({"ops": {"matmul": 1}}, "ops should be list"),
    ({"index": True}, "index should be int, found True"),
    ({"priority": {"matmul": [1.0]}}, r"priority\['matmul'\] should be int or float or null"),
])
def test_what_is_not_a_history_line_is_refused(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    raw = raw_lines(LEGACY)[0]
    bad = {k: v for k, v in {**raw, **change}.items() if v is not dataclasses.MISSING}
    with pytest.raises(ValueError, match=message):
        HistoryLine.from_json(bad)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "state.json").write_bytes((LEGACY / "state.json").read_bytes())
    lines = (LEGACY / "history.jsonl").read_text(encoding="utf-8").splitlines()
    lines[2] = json.dumps(bad)
    (folder / "history.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(SearchError, match=rf"history.jsonl:3 is not a search history line \({message}"):
        StateStore(folder).load()


def test_scored_lines_and_the_best_line() -> None:
    assert {"ok", "duplicate"} == SCORED  # plain strings (JSON values) are members too
    raw = raw_lines(LEGACY)[0]

    def line(index: int, fitness: float | None, status: Status) -> HistoryLine:
        return dataclasses.replace(HistoryLine.from_json(raw), index=index, id=f"g{index}", fitness=fitness,
                                   status=status)

    history = [line(0, 1.0, Status.OK), line(1, None, Status.FAILED), line(2, 9.0, Status.OVER_LIMIT),
               line(3, 2.0, Status.DUPLICATE), line(4, 2.0, Status.OK)]
    assert [entry.scored for entry in history] == [True, False, False, True, True]
    best = best_line(history)
    assert best is not None and best.index == 3  # over-limit never counts; the earlier of equal fitness wins
    assert best_line(history[1:3]) is None
