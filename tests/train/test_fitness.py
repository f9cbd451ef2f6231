"""The search with the real candidate evaluator (train/evaluate.py) as its fitness, at microscopic size:
results flow into the history, and after a resume `remember` lets a fresh evaluator recognise the same
functional duplicates as the interrupted one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from autobert_zero.evolve import HistoryLine, Search, StateStore, Status
from autobert_zero.grammar import default_language
from autobert_zero.train.evaluate import Evaluator
from autobert_zero.train.fitness import EvaluatorFitness
from autobert_zero.train.mlm import PreparedMlm
from tests.support.evaluation import NEG_INSIDE, NEG_OUTSIDE, VANILLA, attention
from tests.support.training import tiny_config


def test_search_with_the_evaluator(tmp: Path, prepared: PreparedMlm) -> None:
    cfg = tiny_config(tmp, evaluate={"steps": 2}, search={"evaluations": 4, "population_size": 2,
                                                           "tournament_size": 2, "conv_probability": 0.0})
    fitness = EvaluatorFitness(Evaluator(cfg, prepared=prepared))
    search = Search(cfg.search, default_language(), fitness, seed=0, num_layers=2, seeds=[attention(VANILLA)],
                    store=StateStore(tmp / "run"))
    search.run()
    history = search.history
    assert len(history) == 4 and history[0].mutation == "seed"
    assert history[0].status == Status.OK  # BERT's attention scores: an evaluator that fails everything does not pass
    for line in history:
        if line.status == Status.OK:
            assert line.eval_loss is not None and line.fitness == -line.eval_loss
            assert (line.params or 0) > 0 and (line.flops_per_token or 0) > 0
        else:
            assert line.status in (Status.FAILED, Status.DUPLICATE) and line.reason
    assert StateStore(tmp / "run").load()[0]["supernet"] is None


def test_remember_restores_functional_duplicates(tmp: Path, prepared: PreparedMlm) -> None:
    cfg = tiny_config(tmp, evaluate={"steps": 2})
    first = EvaluatorFitness(Evaluator(cfg, prepared=prepared))
    (inside,) = first.evaluate([attention(NEG_INSIDE)])
    (expected,) = first.evaluate([attention(NEG_OUTSIDE)])
    assert expected.status == "duplicate" and expected.twin == inside.id
    line = HistoryLine(index=0, round=0, id=inside.id, genotype=inside.genotype, fitness=inside.score,
                       status=Status.OK, reason="", parent=None, mutation="seed", ops=[], detail="", invalid=0,
                       params=inside.params, flops_per_token=inside.flops_per_token, eval_loss=inside.eval_loss)
    failed = dataclasses.replace(line, id=attention(VANILLA).id, genotype=attention(VANILLA).to_text(), fitness=None,
                                 status=Status.FAILED, reason="out of memory")
    resumed = EvaluatorFitness(Evaluator(cfg, prepared=prepared))
    resumed.remember([dataclasses.replace(line, status=Status.OVER_LIMIT), failed])  # scored, then refused by limit
    assert set(resumed.evaluator.cache) == {inside.id}  # a failure is no result to reuse
    (twin,) = resumed.evaluate([attention(NEG_OUTSIDE)])
    assert dataclasses.replace(twin, seconds=0.0) == dataclasses.replace(expected, seconds=0.0)


def test_unknown_adapt_strategy_is_refused(tmp: Path) -> None:
    from autobert_zero.errors import ConfigError

    with pytest.raises(ConfigError, match=r"'search\.adapt_strategy' must be one of 'population', 'fair', got"):
        tiny_config(tmp, search={"adapt_strategy": "greedy", "adapt_steps": 2})  # by the loader
