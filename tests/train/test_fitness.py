"""The search with the real candidate evaluator (train/evaluate.py) as its fitness, at microscopic size:
results flow into the history; a search with an adapting supernet, or a size prior, resumed from points
inside and after the initial population writes the uninterrupted history; after a resume `remember` lets a
fresh evaluator recognise the same functional duplicates (of failed candidates too) as the interrupted one;
a failed GLUE stage fails its candidate; a supernet that cannot host the search's candidates is refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from autobert_zero.config.schema import Config
from autobert_zero.errors import ConfigError
from autobert_zero.evolve import HistoryLine, Search, StateStore, Status
from autobert_zero.grammar import default_language
from autobert_zero.train.evaluate import CandidateResult, Evaluator
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
    assert set(resumed.evaluator.cache) == {inside.id, failed.id}  # as the interrupted Evaluator's cache
    assert resumed.evaluator.cache[failed.id].status == "failed"
    (twin,) = resumed.evaluate([attention(NEG_OUTSIDE)])
    assert dataclasses.replace(twin, seconds=0.0) == dataclasses.replace(expected, seconds=0.0)


def test_unknown_adapt_strategy_is_refused(tmp: Path) -> None:
    with pytest.raises(ConfigError, match=r"'search\.adapt_strategy' must be one of 'population', 'fair', got"):
        tiny_config(tmp, search={"adapt_strategy": "greedy", "adapt_steps": 2})  # by the loader


def line_of(result: CandidateResult, status: Status) -> HistoryLine:
    return HistoryLine(index=0, round=0, id=result.id, genotype=result.genotype, fitness=result.score, status=status,
                       reason=result.reason, parent=None, mutation="sample", ops=[], detail="", invalid=0,
                       params=result.params, flops_per_token=result.flops_per_token, eval_loss=result.eval_loss)


def resumed_history(cfg: Config, folder: Path, prepared: PreparedMlm, stops: list[int]) -> list[HistoryLine]:
    """The history of a search stopped after `stops[0]` candidates, then resumed by a fresh Evaluator and
    search object for each further stop, then to the end."""
    def search() -> Search:
        fitness = EvaluatorFitness(Evaluator(cfg, cfg.search.supernet, prepared=prepared))
        return Search(cfg.search, default_language(), fitness, seed=7, num_layers=2, store=StateStore(folder))

    search().run(stops[0])
    for more in [*stops[1:], None]:
        resumed = search()
        resumed.restore(*StateStore(folder).load())
        resumed.run(more)
    return resumed.history


def test_a_search_with_an_adapting_supernet_resumes_exactly(tmp: Path, prepared: PreparedMlm,
                                                             supernet_dir: Path) -> None:
    cfg = tiny_config(tmp, evaluate={"estimator": "biws", "steps": 3, "eval_batch_size": 8},
                      search={"evaluations": 12, "population_size": 8, "tournament_size": 3, "adapt_steps": 3,
                              "supernet": str(supernet_dir)})
    whole = Search(cfg.search, default_language(), EvaluatorFitness(Evaluator(cfg, supernet_dir, prepared=prepared)),
                   seed=7, num_layers=2)
    whole.run()
    assert sum(line.status == Status.OK for line in whole.history) >= 8
    assert resumed_history(cfg, tmp / "adapting", prepared, [5, 5]) == whole.history  # in round 0, then round 3


def test_a_search_with_a_size_prior_resumes_exactly(tmp: Path, prepared: PreparedMlm) -> None:
    cfg = tiny_config(tmp, evaluate={"steps": 0, "size_prior": "params"},
                      search={"evaluations": 10, "population_size": 4, "tournament_size": 2})
    whole = Search(cfg.search, default_language(), EvaluatorFitness(Evaluator(cfg, prepared=prepared)), seed=7,
                   num_layers=2)
    whole.run()
    assert resumed_history(cfg, tmp / "prior", prepared, [5]) == whole.history  # ranks against raw scores


def test_a_failed_candidates_functional_twin_is_its_duplicate_after_a_resume(tmp: Path, prepared: PreparedMlm,
                                                                               supernet_dir: Path) -> None:
    cfg = tiny_config(tmp, evaluate={"estimator": "biws", "steps": 0})
    live = EvaluatorFitness(Evaluator(cfg, supernet_dir, prepared=prepared))
    failed, twin = live.evaluate([attention(NEG_INSIDE, 3), attention(NEG_OUTSIDE, 3)])  # 3 layers: not hostable
    assert failed.status == "failed" and twin.status == "duplicate" and twin.twin == failed.id
    resumed = EvaluatorFitness(Evaluator(cfg, supernet_dir, prepared=prepared))
    resumed.remember([line_of(failed, Status.FAILED)])
    (again,) = resumed.evaluate([attention(NEG_OUTSIDE, 3)])  # not trained again
    assert dataclasses.replace(again, seconds=0.0) == dataclasses.replace(twin, seconds=0.0)


def test_a_failed_glue_stage_fails_the_candidate(tmp: Path, prepared: PreparedMlm, tmp_path: Path) -> None:
    cfg = tiny_config(tmp, evaluate={"steps": 1, "glue_task": "SST-2", "glue_data_dir": str(tmp_path / "no-glue")})
    (result,) = Evaluator(cfg, prepared=prepared).evaluate([attention(VANILLA)])
    assert result.status == "failed" and result.score is None and result.glue_score is None
    assert result.reason.startswith("GLUE second stage (SST-2): DataError: GLUE folder not found")
    assert result.eval_loss is not None  # the MLM stage ran
    with pytest.raises(ConfigError, match=r"evaluate\.glue_task: .*unknown GLUE task 'sst3'; valid tasks: CoLA"):
        tiny_config(tmp, evaluate={"glue_task": "sst3"})  # at load, before any model


def test_a_supernet_that_cannot_host_the_search_is_refused_up_front(tmp: Path, prepared: PreparedMlm,
                                                                    supernet_dir: Path) -> None:
    cfg = tiny_config(tmp, evaluate={"estimator": "biws", "steps": 0}, search={"supernet": str(supernet_dir)})
    fitness = EvaluatorFitness(Evaluator(cfg, supernet_dir, prepared=prepared))
    with pytest.raises(ConfigError, match="hosts 2-layer backbones but the search's candidates have 3 layers"):
        Search(cfg.search, default_language(), fitness, seed=0, num_layers=3, store=StateStore(tmp / "unhosted"))
    assert not StateStore(tmp / "unhosted").exists()
    Search(cfg.search, default_language(), fitness, seed=0, num_layers=2)  # the supernet's layer count
