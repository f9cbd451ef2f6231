"""The search with the real candidate evaluator (train/evaluate.py) as its fitness, at microscopic size:
results flow into the history, and after a resume `remember` lets a fresh evaluator recognise the same
functional duplicates as the interrupted one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from autobert_zero.evolve import Search, StateStore
from autobert_zero.grammar import default_language
from autobert_zero.train.evaluate import Evaluator
from autobert_zero.train.fitness import EvaluatorFitness
from autobert_zero.train.pretrain import PreparedMlm, prepare_mlm_data
from tests.support.evaluation import NEG_INSIDE, NEG_OUTSIDE, VANILLA, attention
from tests.support.training import tiny_config


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("evolve-evaluator")


@pytest.fixture(scope="module")
def prepared(tmp: Path) -> PreparedMlm:
    return prepare_mlm_data(tiny_config(tmp))


def test_search_with_the_evaluator(tmp: Path, prepared: PreparedMlm) -> None:
    cfg = tiny_config(tmp, evaluate={"steps": 2}, search={"evaluations": 4, "population_size": 2,
                                                           "tournament_size": 2, "conv_probability": 0.0})
    fitness = EvaluatorFitness(Evaluator(cfg, prepared=prepared), None)
    search = Search(cfg.search, default_language(), fitness, seed=0, num_layers=2, seeds=[attention(VANILLA)],
                    store=StateStore(tmp / "run"))
    history = search.run()
    assert len(history) == 4 and history[0]["mutation"] == "seed"
    for line in history:
        if line["status"] == "ok":
            assert line["fitness"] == -line["eval_loss"] and line["params"] > 0 and line["flops_per_token"] > 0
        else:
            assert line["status"] in ("failed", "duplicate") and line["reason"]


def test_remember_restores_functional_duplicates(tmp: Path, prepared: PreparedMlm) -> None:
    cfg = tiny_config(tmp, evaluate={"steps": 2})
    first = EvaluatorFitness(Evaluator(cfg, prepared=prepared), None)
    (inside,) = first.evaluate([attention(NEG_INSIDE)])
    (expected,) = first.evaluate([attention(NEG_OUTSIDE)])
    assert expected.status == "duplicate" and expected.twin == inside.id
    line = {"id": inside.id, "genotype": inside.genotype, "fitness": inside.score, "eval_loss": inside.eval_loss,
            "params": inside.params, "flops_per_token": inside.flops_per_token, "status": "ok"}
    resumed = EvaluatorFitness(Evaluator(cfg, prepared=prepared), None)
    resumed.remember([line])
    (twin,) = resumed.evaluate([attention(NEG_OUTSIDE)])
    assert dataclasses.replace(twin, seconds=0.0) == dataclasses.replace(expected, seconds=0.0)


def test_unknown_adapt_strategy_is_refused(tmp: Path) -> None:
    from autobert_zero.errors import ConfigError
    from autobert_zero.train.fitness import build_fitness

    cfg = tiny_config(tmp, search={"adapt_strategy": "greedy", "adapt_steps": 2})
    with pytest.raises(ConfigError, match=r"search\.adapt_strategy = 'greedy'; expected one of population, fair"):
        build_fitness(cfg)
