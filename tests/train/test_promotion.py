"""`search.fitness: halving` (train/promotion.py): asynchronous successive halving. The promotion rule on stub
rungs (who goes on, at what fitness, duplicates, failures, over-limit candidates); `remember` rebuilds the rung
lists, so a search stopped anywhere and resumed writes the uninterrupted history; the config checks name the
key; and a real `abz search` with scratch rungs, interrupted and resumed through the command line."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from autobert_zero.cli import main
from autobert_zero.config.load import config_from_dict
from autobert_zero.config.schema import Config
from autobert_zero.errors import ConfigError
from autobert_zero.evolve import FitnessResult, Search, SearchSettings, StateStore, Status, SyntheticFitness
from autobert_zero.grammar import AttentionLayer, Genotype, default_language, parse_genotype
from autobert_zero.train.evaluate import CandidateResult
from autobert_zero.train.fitness import EvaluatorFitness, build_fitness
from autobert_zero.train.mlm import PreparedMlm
from autobert_zero.train.promotion import PromotionFitness, check_promotion
from tests.support.training import tiny_dict, tiny_yaml


@dataclass(frozen=True)
class Fake:
    """A stand-in genotype: its id is its name."""

    id: str

    def to_text(self) -> str:
        return self.id


class StubEvaluator:
    """Rung 0 without a model, as `EvaluatorFitness` drives the Evaluator: scores from `score(genotype)` (None:
    failed), functional twins by `key(genotype)`, a result cache and fingerprint table (and `remember`) alike."""

    def __init__(self, score: Callable[[Any], float | None], key: Callable[[Any], str] = lambda g: g.id,
                 params: Callable[[Any], int] = lambda g: 100) -> None:
        self.score, self.key, self.params, self.cfg = score, key, params, Config()
        self.cache: dict[str, CandidateResult] = {}
        self.fingerprints: dict[str, str] = {}

    def evaluate(self, genotypes: Sequence[Any]) -> list[CandidateResult]:
        for g in genotypes:
            if g.id in self.cache:
                continue
            twin = self.fingerprints.setdefault(self.key(g), g.id)
            if twin != g.id:
                self.cache[g.id] = dataclasses.replace(self.cache[twin], id=g.id, genotype=g.to_text(),
                                                       status="duplicate", reason=f"computes as {twin}", twin=twin)
                continue
            s = self.score(g)
            self.cache[g.id] = CandidateResult(g.id, g.to_text(), s, None if s is None else -s, self.params(g), 1.0,
                                               0.0, "failed" if s is None else "ok", "no loss" if s is None else "")
        return [dataclasses.replace(self.cache[g.id]) for g in genotypes]

    def remember(self, results: Sequence[CandidateResult]) -> None:
        for r in results:
            if r.id not in self.cache:
                self.cache[r.id] = r
                self.fingerprints.setdefault(self.key(parse_genotype(r.genotype)), r.id)

    def check_space(self, space: Any, num_layers: int) -> None:
        pass


def scratch_table(table: dict[tuple[int, str], float | None], calls: list[tuple[int, str]]
                  ) -> Callable[[int, Any], FitnessResult]:
    """Scratch runs read from `table` ((steps, id) → score; None: the run fails), each call logged in `calls`."""
    def run(steps: int, genotype: Any) -> FitnessResult:
        calls.append((steps, genotype.id))
        score = table[steps, genotype.id]
        if score is None:
            return FitnessResult(genotype.id, None, "failed", "out of memory")
        return FitnessResult(genotype.id, score, eval_loss=-score)
    return run


RUNG0 = {"a": -5.0, "b": -3.0, "c": -4.0, "d": -1.0, "e": -6.0, "f": -2.0, "g": -3.0, "h": -9.0, "i": None,
         "j": -0.5, "k": -0.1}
SCRATCH = {(10, "b"): -2.5, (10, "d"): -2.0, (20, "d"): -1.5, (10, "f"): -3.0, (10, "j"): None}


def test_the_promotion_rule_on_stub_rungs() -> None:
    calls: list[tuple[int, str]] = []
    rung0 = StubEvaluator(lambda g: RUNG0[g.id], key=lambda g: "d" if g.id == "h" else g.id,  # h computes as d
                          params=lambda g: 10**9 if g.id == "k" else 100)
    fitness = PromotionFitness(EvaluatorFitness(rung0), scratch_table(SCRATCH, calls), [10, 20], 2, (10**6, None))
    results = {r.id: r for r in fitness.evaluate([Fake(name) for name in RUNG0])}
    # a: alone; b: best of 2 → rung 1 (alone there); c: 2nd of 3; d: best of 4 → rung 1, best of 2 → rung 2;
    # e: last; f: 2nd of 6 (keep 3) → rung 1, 3rd of 3 there; g: ties b, the earlier wins → 4th of 7 (keep 3);
    # h: d's twin; i: failed; j: best of 8 → its scratch run fails; k: over the parameter limit, never promoted
    assert calls == [(10, "b"), (10, "d"), (20, "d"), (10, "f"), (10, "j")]
    expected = {"a": [-5.0], "b": [-3.0, -2.5], "c": [-4.0], "d": [-1.0, -2.0, -1.5], "e": [-6.0], "f": [-2.0, -3.0],
                "g": [-3.0], "h": [-1.0, -2.0, -1.5], "j": [-0.5], "k": [-0.1]}
    for name, scores in expected.items():
        assert results[name].fidelity_scores == scores, name
        assert results[name].score == 1000 * (len(scores) - 1) + scores[-1], name
        assert results[name].eval_loss == -scores[-1], name
    assert results["h"].status == "duplicate" and results["d"].status == "ok"
    assert results["i"].status == "failed" and results["i"].score is None and results["i"].fidelity_scores is None
    assert "scratch run of 10 steps failed: out of memory" in results["j"].reason and results["j"].status == "ok"
    assert fitness.rungs == [[-5.0, -3.0, -4.0, -1.0, -6.0, -2.0, -3.0, -0.5], [-2.5, -2.0, -3.0], [-1.5]]


def synthetic_rungs(settings: SearchSettings) -> PromotionFitness:
    """A halving fitness for a real search loop at no cost: rung 0 the synthetic fitness (a few fail), twins
    by a coarse key (the ops of each layer, unordered: many functional duplicates), scratch runs from a hash
    (a few fail)."""
    synthetic = SyntheticFitness(0)

    def noise(*parts: object) -> float:
        return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

    def score(g: Genotype) -> float | None:
        return None if noise("fail", g.id) < 0.08 else synthetic.evaluate([g])[0].score

    def key(g: Genotype) -> str:
        return repr([sorted(c.op for c in g.graph(layer.graph).calls) if isinstance(layer, AttentionLayer)
                     else (layer.kind, layer.kernel) for layer in g.layers])

    def scratch(steps: int, g: Genotype) -> FitnessResult:
        if noise("scratch", steps, g.id) < 0.1:
            return FitnessResult(g.id, None, "failed", "loss became nan")
        value = -3.0 + steps / 100 + noise(steps, g.id)
        return FitnessResult(g.id, value, eval_loss=-value)

    def params(g: Genotype) -> int:
        return synthetic.evaluate([g])[0].params or 0

    rung0 = EvaluatorFitness(StubEvaluator(score, key, params))  # type: ignore[arg-type]
    return PromotionFitness(rung0, scratch, settings.halving_steps, settings.halving_eta,
                            (settings.max_params, settings.max_flops_per_token))


def search(settings: SearchSettings, folder: Path | None = None) -> Search:
    return Search(settings, LANGUAGE, synthetic_rungs(settings), seed=0, num_layers=4,
                  store=StateStore(folder) if folder else None)


LANGUAGE = default_language()


def test_remember_rebuilds_the_rungs_so_a_resumed_search_writes_the_same_history(tmp_path: Path) -> None:
    settings = SearchSettings(evaluations=60, population_size=8, tournament_size=3, round_size=2, fitness="halving",
                              halving_steps=[10, 20], halving_eta=2, max_params=176_768)  # a sixth over the limit
    whole = search(settings)
    whole.run()
    lines = whole.history
    assert {Status.OK, Status.DUPLICATE, Status.FAILED, Status.OVER_LIMIT} <= {line.status for line in lines}
    assert any(line.reason.startswith("computes as") for line in lines)  # functional twins, answered by rung 0
    assert any("failed" in line.reason for line in lines if line.status == Status.OK)  # a failed scratch run
    assert max(len(line.fidelity_scores or []) for line in lines) == 3  # rung 2 reached
    assert all(line.fitness == 1000 * (len(line.fidelity_scores) - 1) + line.fidelity_scores[-1]
               for line in lines if line.fidelity_scores)
    for stop in (7, 37):  # inside the initial population, and later
        search(settings, tmp_path / str(stop)).run(stop_after=stop)
        resumed = search(settings, tmp_path / str(stop))
        resumed.restore(*StateStore(tmp_path / str(stop)).load())
        resumed.run()
        assert resumed.history == lines, stop
        assert isinstance(resumed.fitness, PromotionFitness) and isinstance(whole.fitness, PromotionFitness)
        assert resumed.fitness.rungs == whole.fitness.rungs and resumed.fitness.results == whole.fitness.results


@pytest.mark.parametrize("search_keys, fragment", [
    ({"fitness": "halving"}, "search.fitness = 'halving' needs search.halving_steps: expected a non-empty list"),
    ({"fitness": "halving", "halving_steps": [4, 4]}, "search.halving_steps = [4, 4]: expected strictly increasing"),
    ({"halving_steps": [8, 2]}, "search.halving_steps = [8, 2]: expected strictly increasing"),
    ({"fitness": "halving", "halving_steps": [2], "adapt_steps": 3}, "search.adapt_steps = 3 with search.fitness"),
])
def test_the_checks_name_the_key(tmp_path: Path, search_keys: dict[str, Any], fragment: str) -> None:
    cfg = config_from_dict(tiny_dict(tmp_path, search=search_keys), "c.yaml", world_size=1)
    with pytest.raises(ConfigError) as info:
        build_fitness(cfg)  # refused before any data is prepared or model built
    assert str(info.value).startswith("c.yaml: ") and fragment in str(info.value)


def test_the_loader_and_a_launcher_are_refused_with_the_key(tmp_path: Path) -> None:
    for keys, fragment in (({"halving_eta": 1}, "'search.halving_eta' must be between 2 and"),
                           ({"halving_steps": [0, 5]}, "'search.halving_steps[0]' must be positive")):
        with pytest.raises(ConfigError) as info:
            config_from_dict(tiny_dict(tmp_path, search=keys), "c.yaml", world_size=1)
        assert fragment in str(info.value)
    cfg = config_from_dict(tiny_dict(tmp_path, search={"fitness": "halving", "halving_steps": [2]},
                                     evaluate={"size_prior": "params"}), "c.yaml", world_size=1)
    with pytest.raises(ConfigError, match=r"evaluate\.size_prior with search\.fitness = 'halving'"):
        check_promotion(cfg)
    cfg.evaluate.size_prior = None
    with pytest.raises(ConfigError, match="does not split its candidates across the 2 processes"):
        check_promotion(cfg, world_size=2)


def history(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "history.jsonl").read_text(encoding="utf-8").splitlines()]


def test_abz_search_with_scratch_rungs_interrupted_and_resumed(tmp: Path, prepared: PreparedMlm,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_yaml(tmp, evaluate={"estimator": "scratch", "steps": 1, "eval_batch_size": 8},
                       search={"fitness": "halving", "halving_steps": [2, 4], "halving_eta": 2, "evaluations": 8,
                               "population_size": 4, "tournament_size": 2, "round_size": 2})
    assert main(["search", "--config", str(config), "--out", str(tmp / "whole")]) == 0
    lines = history(tmp / "whole")
    assert len(lines) == 8 and all("fidelity_scores" in line for line in lines if line["status"] == "ok")
    levels = {len(line["fidelity_scores"]) - 1 for line in lines if line["status"] == "ok"}
    assert levels == {0, 1, 2}  # some candidate reached rung 2
    for line in lines:
        if line["status"] == "ok":
            scores = line["fidelity_scores"]
            assert line["fitness"] == 1000 * (len(scores) - 1) + scores[-1] and line["eval_loss"] == -scores[-1]
    ranked = sorted((line for line in lines if line["status"] == "ok"), key=lambda line: -line["fitness"])
    assert [len(line["fidelity_scores"]) for line in ranked] == sorted(
        (len(line["fidelity_scores"]) for line in ranked), reverse=True)  # a higher rung ranks above a lower one

    original = PromotionFitness.evaluate
    calls = []

    def interrupted(self: PromotionFitness, genotypes: Sequence[Genotype]) -> list[FitnessResult]:
        calls.append(len(genotypes))
        if len(calls) == 6:
            raise RuntimeError("the machine went away")
        return original(self, genotypes)

    monkeypatch.setattr(PromotionFitness, "evaluate", interrupted)
    assert main(["search", "--config", str(config), "--out", str(tmp / "killed")]) != 0
    monkeypatch.setattr(PromotionFitness, "evaluate", original)
    assert 0 < len(history(tmp / "killed")) < 8
    assert main(["resume", str(tmp / "killed")]) == 0
    assert (tmp / "killed" / "history.jsonl").read_bytes() == (tmp / "whole" / "history.jsonl").read_bytes()
