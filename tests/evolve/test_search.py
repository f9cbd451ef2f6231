"""The search loop with a deterministic pure-python fitness: strategies, aging population, duplicates,
constraints, failures, adapt between rounds, exact resume from any saved point, damaged state."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from autobert_zero.errors import ConfigError, SearchError
from autobert_zero.evolve import (
    AgingPopulation,
    Fitness,
    FitnessResult,
    HistoryLine,
    Member,
    Mutation,
    Search,
    StateStore,
    Status,
    SyntheticFitness,
)
from autobert_zero.evolve.settings import SearchSettings
from autobert_zero.grammar import Genotype, Language, default_language, load_genotype
from tests.support.paths import GENOTYPES

SMALL = SearchSettings(evaluations=40, population_size=6, tournament_size=3, fitness="synthetic")


def run(config: SearchSettings = SMALL, fitness: Any = None, folder: Path | None = None, seed: int = 0,
        stop_after: int | None = None, **kwargs: Any) -> Search:
    search = Search(config, default_language(), fitness or SyntheticFitness(0), seed=seed, num_layers=4,
                    store=StateStore(folder) if folder else None, **kwargs)
    search.run(stop_after)
    return search


def test_aging_population_drops_the_oldest_and_tournaments_pick_the_fittest() -> None:
    population = AgingPopulation(3)
    for i, fitness in enumerate([5.0, 1.0, 2.0, 3.0]):
        population.add(Member(f"m{i}", "", fitness, i))
    assert [m.id for m in population] == ["m1", "m2", "m3"]  # m0 aged out although it was the fittest
    rng = random.Random(0)
    assert population.tournament(rng, 3).id == "m3"
    winners = {population.tournament(rng, 2).id for _ in range(200)}
    assert winners == {"m2", "m3"}  # the weakest never wins a tournament of two; the others eventually do


@pytest.mark.parametrize("strategy", ["op", "evolution", "random"])
def test_strategies_share_the_loop(strategy: str) -> None:
    search = run(dataclasses.replace(SMALL, strategy=strategy))
    history = search.history
    assert len(history) == 40 and [line.index for line in history] == list(range(40))
    later = history[SMALL.population_size:]
    if strategy == "random":
        assert {line.mutation for line in history} == {"sample"} and all(line.parent is None for line in later)
    else:
        assert {line.mutation for line in later} <= {m.value for m in Mutation}
        ids = {line.id for line in history}
        assert all(line.parent in ids for line in later)
    assert ("priority" in history[-1].to_json()) == (strategy == "op")
    assert search.finished and len(search.population) == SMALL.population_size


def test_an_attention_free_search_samples_and_mutates_convolutions_only() -> None:
    """`conv_probability: 1` with the conv mutations only: every candidate is conv layers only."""
    settings = dataclasses.replace(SMALL, conv_probability=1.0,
                                   mutations=["conv-type", "conv-kernel", "conv-dilation"])
    history = run(settings).history
    assert len(history) == 40 and {line.mutation for line in history[SMALL.population_size:]} <= {
        "conv-type", "conv-kernel", "conv-dilation"}
    assert all("attention" not in line.genotype for line in history)


def test_op_and_evolution_share_the_initial_population_and_first_children() -> None:
    """Common random numbers: the same seed draws the same initial population for all three strategies, and
    OP's first child (every table still unseen, so uniform) is evolution's."""
    runs = {s: run(dataclasses.replace(SMALL, strategy=s)).history for s in ("op", "evolution", "random")}
    first = [[line.id for line in history[:SMALL.population_size]] for history in runs.values()]
    assert first[0] == first[1] == first[2]
    assert runs["op"][SMALL.population_size].id == runs["evolution"][SMALL.population_size].id


def test_operation_priority_counts_the_ops_its_children_used() -> None:
    search = run(dataclasses.replace(SMALL, evaluations=80))
    credited = sum(len(line.ops) for line in search.history if line.mutation != "seed")
    assert sum(search.priority.counts.values()) == credited > 0


class CountingFitness(SyntheticFitness):
    """Synthetic scores; records every genotype it is asked about, and the adapt calls."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(0)
        self.asked: list[str] = []
        self.adapted: list[tuple[int, int]] = []
        self.adapted_on: list[list[str]] = []
        self.remembered: list[str] = []
        self.__dict__.update(kwargs)

    def evaluate(self, genotypes: Sequence[Genotype]) -> list[FitnessResult]:
        self.asked += [g.id for g in genotypes]
        return super().evaluate(genotypes)

    def adapt(self, population: Sequence[Genotype], steps: int) -> None:
        self.adapted.append((len(population), steps))
        self.adapted_on.append([g.id for g in population])

    def remember(self, lines: Sequence[HistoryLine]) -> None:
        self.remembered += [line.id for line in lines]


def test_duplicates_reuse_the_cached_fitness() -> None:
    fitness = CountingFitness()
    config = dataclasses.replace(SMALL, evaluations=120, kernels=[3, 5], conv_types=["light"],
                                 mutations=["conv-kernel", "copy-layer", "flip-layer"])
    search = run(config, fitness)
    duplicates = [line for line in search.history if line.status == Status.DUPLICATE]
    assert duplicates and len(fitness.asked) == len(set(fitness.asked)) == 120 - len(duplicates)
    first = {line.id: line for line in reversed(search.history)}
    for line in duplicates:
        assert line.fitness == first[line.id].fitness and line.reason.startswith("same id as #")
    assert search.duplicates == len(duplicates)


class TwinFitness(SyntheticFitness):
    """Answers `duplicate` (a functional twin it recognised) for every third new genotype."""

    def evaluate(self, genotypes: Sequence[Genotype]) -> list[FitnessResult]:
        results = super().evaluate(genotypes)
        return [dataclasses.replace(r, status="duplicate", reason="twin") if self.calls % 3 == 0 else r
                for r in results]


def test_functional_duplicates_from_the_fitness_are_counted_and_join() -> None:
    search = run(dataclasses.replace(SMALL, population_size=40), TwinFitness(0))  # nobody ages out
    twins = [line for line in search.history if line.reason == "twin"]
    same_id = [line for line in search.history if line.reason.startswith("same id")]
    assert twins and all(line.status == Status.DUPLICATE and line.fitness is not None for line in twins)
    assert search.duplicates == len(twins) + len(same_id)
    assert {line.id for line in twins} <= {m.id for m in search.population}


class FailingFitness(SyntheticFitness):
    """Fails genotypes that use `softsign`; raises on the call number `raise_at` (if set)."""

    raise_at: int | None = None

    def evaluate(self, genotypes: Sequence[Genotype]) -> list[FitnessResult]:
        if self.raise_at is not None and self.calls + len(genotypes) > self.raise_at:
            raise RuntimeError("the evaluator's GPU fell off the bus")
        results = super().evaluate(genotypes)
        return [dataclasses.replace(r, score=None, status="failed", reason="softsign is not supported")
                if "softsign(" in g.to_text() else r for g, r in zip(genotypes, results, strict=True)]


def test_failed_candidates_are_recorded_and_the_search_goes_on() -> None:
    search = run(dataclasses.replace(SMALL, evaluations=80), FailingFitness(0))
    failed = [line for line in search.history if line.status == Status.FAILED]
    assert failed and all(line.reason == "softsign is not supported" and line.fitness is None for line in failed)
    assert not {line.id for line in failed} & {m.id for m in search.population}
    assert len(search.history) == 80


def test_a_raising_fitness_stops_with_a_clear_error_and_keeps_the_state(tmp_path: Path) -> None:
    fitness = FailingFitness(0)
    fitness.raise_at = 15
    with pytest.raises(SearchError, match=r"fitness raised RuntimeError: the evaluator's GPU.*abz resume"):
        run(SMALL, fitness, tmp_path)
    body, history = StateStore(tmp_path).load()
    assert len(history) == body["evaluations"] == 15


def test_constraints_keep_large_candidates_out_of_the_population() -> None:
    probe = run(SMALL)
    params = sorted(line.params or 0 for line in probe.history)
    limit = params[len(params) // 2]
    search = run(dataclasses.replace(SMALL, max_params=limit))
    over = [line for line in search.history if line.status == Status.OVER_LIMIT]
    assert over and all((line.params or 0) > limit and "search.max_params" in line.reason for line in over)
    assert all((line.params or 0) <= limit for line in search.history
               if line.id in {m.id for m in search.population})
    flops = sorted(line.flops_per_token or 0.0 for line in probe.history)[len(params) // 2]
    by_flops = run(dataclasses.replace(SMALL, max_flops_per_token=flops))
    assert all((line.flops_per_token or 0.0) <= flops for line in by_flops.history
               if line.id in {m.id for m in by_flops.population})
    assert any("search.max_flops_per_token" in line.reason for line in by_flops.history)


def test_adapt_runs_between_rounds_when_enabled() -> None:
    fitness = CountingFitness()
    run(dataclasses.replace(SMALL, evaluations=18, round_size=4, adapt_steps=5), fitness)
    assert fitness.adapted == [(6, 5)] * 3  # rounds: the initial 6, then 4 + 4 + 4
    silent = CountingFitness()
    run(dataclasses.replace(SMALL, evaluations=18, round_size=4), silent)
    assert silent.adapted == []


def test_resume_replays_adapt_and_hands_the_fitness_its_results(tmp_path: Path) -> None:
    config = dataclasses.replace(SMALL, evaluations=30, round_size=4, adapt_steps=3)
    whole = CountingFitness()
    run(config, whole)
    run(config, CountingFitness(), tmp_path, stop_after=17)  # rounds: 6, 4, 4, then 3 of the fourth
    resumed = CountingFitness()
    search = Search(config, default_language(), resumed, seed=0, num_layers=4, store=StateStore(tmp_path))
    search.restore(*StateStore(tmp_path).load())
    assert resumed.adapted_on == whole.adapted_on[:3]  # the supernet is rebuilt on the same populations
    assert resumed.remembered == [line.id for line in search.history[14:17]]  # results since the last adapt
    search.run()
    assert resumed.adapted_on == whole.adapted_on


class PlainFitness(Fitness):
    """Only `evaluate`: no adapt, remember, chunk size or supernet of its own (the base class's defaults)."""

    def __init__(self) -> None:
        self.scores = SyntheticFitness(0)

    def evaluate(self, genotypes: Sequence[Genotype]) -> list[FitnessResult]:
        return self.scores.evaluate(genotypes)


def test_a_fitness_with_only_evaluate_runs_adapts_and_resumes(tmp_path: Path) -> None:
    config = dataclasses.replace(SMALL, evaluations=30, round_size=4, adapt_steps=3)
    whole = run(config, SyntheticFitness(0)).history
    run(config, PlainFitness(), tmp_path, stop_after=17)
    search = Search(config, default_language(), PlainFitness(), seed=0, num_layers=4, store=StateStore(tmp_path))
    search.restore(*StateStore(tmp_path).load())
    search.run()
    assert search.history == whole and search.finished
    body, _ = StateStore(tmp_path).load()
    assert body["supernet"] is None and all(line.eval_loss is None for line in search.history)


def test_chunked_evaluation_gives_the_same_history() -> None:
    config = dataclasses.replace(SMALL, round_size=5, evaluations=50)
    one = run(config, CountingFitness())
    chunked = run(config, CountingFitness(chunk_size=4))
    assert chunked.history == one.history


def test_resume_from_any_saved_point_reproduces_the_history(tmp_path: Path) -> None:
    config = dataclasses.replace(SMALL, evaluations=60, round_size=3)
    whole = run(config, folder=tmp_path / "full")
    full = whole.history
    folder = tmp_path / "cut"
    run(config, folder=folder, stop_after=7)
    for more in (1, 5, 11):
        search = Search(config, default_language(), SyntheticFitness(0), seed=0, num_layers=4,
                        store=StateStore(folder))
        search.restore(*StateStore(folder).load())
        search.run(more)
    search = Search(config, default_language(), SyntheticFitness(0), seed=0, num_layers=4, store=StateStore(folder))
    search.restore(*StateStore(folder).load())
    assert search.run() == [line.to_json() for line in full] and search.history == full
    # the per-kind priority tables, their random streams and the divert counts resume exactly too
    assert search.chooser.to_json() == whole.chooser.to_json() and sum(search.priority.counts.values()) > 0
    on_disk = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
    assert on_disk == [line.to_json() for line in full]


class TextFitness(SyntheticFitness):
    """Scores the genotype object as handed over (its own text, not its id) and records the texts it is asked
    about and adapts on: as a real model's loss depends on how a graph is written, not only on what it computes."""

    def __init__(self) -> None:
        super().__init__(0)
        self.seen: list[str] = []
        self.adapted_on: list[list[str]] = []

    def evaluate(self, genotypes: Sequence[Genotype]) -> list[FitnessResult]:
        self.seen += [g.to_text() for g in genotypes]
        return [dataclasses.replace(r, score=int(hashlib.sha256(g.to_text().encode()).hexdigest()[:8], 16) / 2**32)
                for g, r in zip(genotypes, super().evaluate(genotypes), strict=True)]

    def adapt(self, population: Sequence[Genotype], steps: int) -> None:
        self.adapted_on.append([g.to_text() for g in population])


def test_a_candidate_is_its_text_so_a_resumed_run_hands_the_fitness_the_same_genotypes(tmp_path: Path) -> None:
    config = dataclasses.replace(SMALL, population_size=8, evaluations=40, adapt_steps=3)
    whole = TextFitness()
    full = run(config, whole, seed=7).history
    texts = {line.genotype for line in full}
    assert set(whole.seen) <= texts and all(set(p) <= texts for p in whole.adapted_on)  # only parsed texts
    run(config, TextFitness(), tmp_path, seed=7, stop_after=3)  # inside the initial population (samples)
    for more in (9, 14):
        search = Search(config, default_language(), TextFitness(), seed=7, num_layers=4, store=StateStore(tmp_path))
        search.restore(*StateStore(tmp_path).load())
        search.run(more)
    resumed = TextFitness()
    search = Search(config, default_language(), resumed, seed=7, num_layers=4, store=StateStore(tmp_path))
    search.restore(*StateStore(tmp_path).load())
    search.run()
    assert search.history == full
    assert resumed.adapted_on == whole.adapted_on  # the replayed adapt calls, then the live ones


def test_a_finished_run_resumed_replays_only_the_adapt_calls_it_made(tmp_path: Path) -> None:
    config = dataclasses.replace(SMALL, evaluations=14, round_size=4, adapt_steps=3)
    whole = DriftingFitness(0)
    run(config, whole, tmp_path)
    assert whole.drift == 2.0
    body, history = StateStore(tmp_path).load()
    assert body["finished"] and body["round"] == 3  # the counter is past the last round (2)
    resumed = CountingFitness()
    search = Search(config, default_language(), resumed, seed=0, num_layers=4, store=StateStore(tmp_path))
    search.restore(body, history)
    assert len(resumed.adapted) == 2  # e.g. killed during the summary's re-scoring: the final weights are rebuilt
    assert resumed.remembered == [line.id for line in history if line.round == 2]  # since the last adapt call


class AllFailFitness(SyntheticFitness):
    """Fails every genotype (as a supernet that cannot host any candidate would)."""

    def evaluate(self, genotypes: Sequence[Genotype]) -> list[FitnessResult]:
        return [dataclasses.replace(r, score=None, status="failed", reason="the supernet hosts 2-layer backbones")
                for r in super().evaluate(genotypes)]


def test_a_search_whose_candidates_all_fail_stops_after_a_bounded_run(tmp_path: Path) -> None:
    config = dataclasses.replace(SMALL, evaluations=200, population_size=12)
    with pytest.raises(SearchError, match=r"the last 12 candidates all failed \('the supernet hosts 2-layer "
                                          r"backbones' \(12×\)\).*abz resume"):
        run(config, AllFailFitness(0), tmp_path)
    assert len(StateStore(tmp_path).load()[1]) == 12  # saved, for a resume once the cause is fixed
    search = Search(config, default_language(), SyntheticFitness(0), seed=0, num_layers=4, store=StateStore(tmp_path))
    search.restore(*StateStore(tmp_path).load())
    search.run()  # fixed: the run goes on
    assert search.finished and search.history[12].status == Status.OK
    assert dataclasses.replace(SMALL, population_size=3).population_size < 10 == Search(
        dataclasses.replace(SMALL, population_size=3), default_language(), SyntheticFitness(0), seed=0,
        num_layers=4).failure_limit  # at least 10 in a row
    failing = FailingFitness(0)  # some failures among successes never stop a run
    assert len(run(dataclasses.replace(SMALL, evaluations=80), failing).history) == 80


class NanFitness(SyntheticFitness):
    """A NaN score for every other genotype, and a NaN held-out loss for every one."""

    def evaluate(self, genotypes: Sequence[Genotype]) -> list[FitnessResult]:
        return [dataclasses.replace(r, score=math.nan if self.calls % 2 else r.score, eval_loss=math.inf)
                for r in super().evaluate(genotypes)]


def test_history_lines_hold_finite_numbers_only_so_a_run_reloads(tmp_path: Path) -> None:
    search = run(dataclasses.replace(SMALL, evaluations=12, round_size=4), NanFitness(0), tmp_path)
    nan = [line for line in search.history if line.status == Status.FAILED]
    assert nan and all(line.reason == "the fitness gave the score nan" and line.fitness is None for line in nan)
    assert all(line.eval_loss is None for line in search.history)
    assert StateStore(tmp_path).load()[1] == search.history


class RefusingFitness(SyntheticFitness):
    def check(self, space: Language, num_layers: int) -> None:
        if num_layers != 2:
            raise ConfigError(f"the supernet hosts 2-layer backbones, not {num_layers}")


def test_a_fitness_refuses_a_search_space_it_cannot_score_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="hosts 2-layer backbones, not 4"):
        run(SMALL, RefusingFitness(0), tmp_path)
    assert not StateStore(tmp_path).exists()


def test_resume_under_other_settings_is_refused(tmp_path: Path) -> None:
    run(SMALL, folder=tmp_path, stop_after=10)
    other = Search(dataclasses.replace(SMALL, tournament_size=2), default_language(), SyntheticFitness(0), seed=0,
                   num_layers=4)
    with pytest.raises(SearchError, match=r"other search settings.*tournament_size: 3 → 2"):
        other.restore(*StateStore(tmp_path).load())


def test_damaged_state_is_refused_and_left_alone(tmp_path: Path) -> None:
    run(SMALL, folder=tmp_path, stop_after=10)
    state = tmp_path / "state.json"
    good = state.read_bytes()
    state.write_bytes(good[: len(good) // 2])
    with pytest.raises(SearchError, match=r"state.json is damaged"):
        StateStore(tmp_path).load()
    assert state.read_bytes() == good[: len(good) // 2]
    state.write_bytes(good.replace(b'"round": ', b'"round": 1'))
    with pytest.raises(SearchError, match="sha256"):
        StateStore(tmp_path).load()


def test_history_lines_past_the_state_are_dropped(tmp_path: Path) -> None:
    run(SMALL, folder=tmp_path, stop_after=10)
    history = tmp_path / "history.jsonl"
    good = history.read_text()
    history.write_text(good + good.splitlines()[0] + "\n" + '{"half a li')  # a kill between the two writes
    _, lines = StateStore(tmp_path).load()
    assert len(lines) == 10 and history.read_text() == good
    history.write_text("\n".join(good.splitlines()[:4]) + "\n")
    with pytest.raises(SearchError, match="has 4 complete lines but the state covers 10"):
        StateStore(tmp_path).load()


def test_seed_genotypes_start_the_population_and_are_checked() -> None:
    bert = load_genotype(GENOTYPES / "bert.abz")
    config = dataclasses.replace(SMALL, evaluations=8)
    search = Search(config, default_language(), SyntheticFitness(0), seed=0, num_layers=12, seeds=[bert])
    search.run()
    assert search.history[0].mutation == "seed" and search.history[0].id == bert.id
    with pytest.raises(SearchError, match="has 12 layers; this search has 4"):
        Search(config, default_language(), SyntheticFitness(0), seed=0, num_layers=4, seeds=[bert])
    narrow = dataclasses.replace(config, ops=["matmul", "transpose", "scale", "neg"])
    with pytest.raises(SearchError, match=r"outside the search space.*softmax"):
        Search(narrow, default_language(), SyntheticFitness(0), seed=0, num_layers=12, seeds=[bert])


@pytest.mark.parametrize(("key", "value", "message"), [  # choices (strategy, mutations): the config schema's
    ("ops", ["matmul", "gelu"], "op 'gelu' is not in the language"),
    ("kernels", [4], "conv kernel 4 is not in the language"),
])
def test_bad_search_config_is_refused(key: str, value: Any, message: str) -> None:
    with pytest.raises(SearchError, match=message):
        Search(dataclasses.replace(SMALL, **{key: value}), default_language(), SyntheticFitness(0), seed=0,
               num_layers=4)


class DriftingFitness(SyntheticFitness):
    """Synthetic scores plus one point per `adapt` call: the scale moves as a training supernet's would."""

    drift = 0.0

    def evaluate(self, genotypes: Sequence[Genotype]) -> list[FitnessResult]:
        return [dataclasses.replace(r, score=r.score + self.drift) if r.score is not None else r
                for r in super().evaluate(genotypes)]

    def adapt(self, population: Sequence[Genotype], steps: int) -> None:
        self.drift += 1.0

    @property
    def supernet_reference(self) -> str | None:
        return "a drifting supernet"  # it has final weights to re-score on


def test_summary_rescores_the_best_and_the_seeds_on_the_final_weights() -> None:
    from types import SimpleNamespace

    from autobert_zero.cli.search import _rescore, _summary

    bert, figure7 = load_genotype(GENOTYPES / "bert.abz"), load_genotype(GENOTYPES / "autobert_zero.abz")
    config = dataclasses.replace(SMALL, evaluations=14, round_size=4, adapt_steps=3)
    fitness = DriftingFitness(0)
    search = Search(config, default_language(), fitness, seed=0, num_layers=12, seeds=[bert, figure7])
    history = search.run()
    assert fitness.drift == 2.0  # the seeds were scored before any adapt call
    rescored = _rescore(SimpleNamespace(search=config), search, history)  # type: ignore[arg-type]
    seeds = [line for line in history if line["mutation"] == "seed"]
    assert [line["id"] for line in seeds] == [bert.id, figure7.id]
    for line in seeds:  # scored at drift 0, scored again after the two adapt calls
        assert rescored[line["id"]] == pytest.approx(line["fitness"] + 2.0)
    text = _summary(search, history, rescored)["text"]
    assert text.count("on the final supernet") == 3  # the best and both seeds
    off = dataclasses.replace(config, adapt_steps=0)
    assert _rescore(SimpleNamespace(search=off), search, history) == {}  # type: ignore[arg-type]
