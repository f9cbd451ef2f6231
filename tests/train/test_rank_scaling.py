"""What lets a search use more ranks, in one process: a round size the ranks cannot share evenly is refused
(`train/fitness.py check_round_split`), a candidate past `search.candidate_timeout_s` is recorded failed with
the reason and the next one is scored, and an error of a rank's share that is no candidate failure is
gathered and raised alike on every rank (`Evaluator._score_all`). The launcher runs are in
tests/cli/test_search_ranks.py (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autobert_zero.errors import ConfigError, TrainingError
from autobert_zero.evolve import SyntheticFitness
from autobert_zero.grammar import Genotype
from autobert_zero.train.evaluate import CandidateResult, Evaluator
from autobert_zero.train.fitness import EvaluatorFitness, build_fitness, check_round_split
from autobert_zero.train.mlm import PreparedMlm
from tests.support.evaluation import NEG_INSIDE, VANILLA, attention
from tests.support.training import tiny_config


def test_a_round_the_ranks_cannot_share_evenly_is_refused(tmp: Path) -> None:
    synthetic = tiny_config(tmp, search={"fitness": "synthetic", "round_size": 3})
    with pytest.raises(ConfigError, match=r"search\.round_size = 3 does not split evenly over the 2 processes") as err:
        check_round_split(synthetic, 2)
    assert "multiple of 2 (e.g. 4)" in str(err.value) and "divides 3 (1, 3)" in str(err.value)
    with pytest.raises(ConfigError, match="round_size = 3"):
        build_fitness(synthetic, world_size=2)  # before anything is built
    with pytest.raises(ConfigError, match=r"round_size = 1 does not split evenly over the 4 .*e\.g\. 4"):
        check_round_split(tiny_config(tmp, search={"fitness": "synthetic"}), 4)  # the default round of 1
    check_round_split(synthetic, 1)  # one process: any round size, the history as before
    assert isinstance(build_fitness(synthetic, world_size=1), SyntheticFitness)
    check_round_split(tiny_config(tmp, search={"fitness": "synthetic", "round_size": 6}), 3)
    evaluator = tiny_config(tmp, search={"round_size": 3}, evaluate={"estimator": "scratch"})
    with pytest.raises(ConfigError, match="round_size = 3"):
        check_round_split(evaluator, 2)
    # not split: with a size prior one candidate per call, with a GLUE stage every rank scores every candidate
    check_round_split(tiny_config(tmp, search={"round_size": 3}, evaluate={"size_prior": "params"}), 2)
    check_round_split(tiny_config(tmp, search={"round_size": 3}, evaluate={"glue_task": "SST-2"}), 2)


def test_a_candidate_past_its_time_limit_fails_with_the_reason(tmp: Path, prepared: PreparedMlm) -> None:
    cfg = tiny_config(tmp, evaluate={"steps": 2})
    unlimited = Evaluator(cfg, prepared=prepared).evaluate([attention(VANILLA), attention(NEG_INSIDE)])
    late = Evaluator(cfg, prepared=prepared, candidate_timeout_s=1e-9)
    first, second = late.evaluate([attention(VANILLA), attention(NEG_INSIDE)])
    for result in (first, second):  # the first check (before step 1) stops each: the run goes on after one
        assert result.status == "failed" and result.score is None and result.eval_loss is None
        assert result.reason == ("timed out after 1e-09 s (search.candidate_timeout_s), stopped before training "
                                 "step 1 of 2")
    assert late._deadline is None  # no limit left over for the next call
    untrained = Evaluator(tiny_config(tmp, evaluate={"steps": 0}), prepared=prepared, candidate_timeout_s=1e-9)
    (result,) = untrained.evaluate([attention(VANILLA)])
    assert result.status == "failed" and result.reason.endswith("stopped before the held-out loss")
    roomy = Evaluator(cfg, prepared=prepared, candidate_timeout_s=1e6).evaluate([attention(VANILLA),
                                                                                 attention(NEG_INSIDE)])
    assert [r.eval_loss for r in roomy] == [r.eval_loss for r in unlimited]  # a limit not reached changes nothing
    assert all(r.status == "ok" for r in roomy)


def test_the_search_setting_reaches_the_evaluator(tmp: Path) -> None:
    cfg = tiny_config(tmp, search={"candidate_timeout_s": 90.0}, evaluate={"estimator": "scratch"})
    fitness = build_fitness(cfg)
    assert isinstance(fitness, EvaluatorFitness) and fitness.evaluator.timeout_s == 90.0
    assert tiny_config(tmp).search.candidate_timeout_s is None  # off unless set
    with pytest.raises(ConfigError, match="candidate_timeout_s"):
        tiny_config(tmp, search={"candidate_timeout_s": 0})


def test_an_error_of_a_share_is_gathered_and_raised_on_every_rank(tmp: Path, prepared: PreparedMlm,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a split a rank's share that raises (a bug, not a failed candidate) must not leave the other ranks
    in the gather: it hands over the error as its results, and every rank raises it after the gather. Here
    the split path runs in one process (the gather of a group of one)."""
    ev = Evaluator(tiny_config(tmp, evaluate={"steps": 0}), prepared=prepared)
    ev.split = True
    bug = attention(NEG_INSIDE)
    scored = Evaluator._scored

    def buggy(self: Evaluator, genotype: Genotype) -> CandidateResult:
        if genotype.id == bug.id:
            raise TypeError("a bug")
        return scored(self, genotype)

    monkeypatch.setattr(Evaluator, "_scored", buggy)
    assert ev._share_or_error([bug, attention(VANILLA)]) == ["TypeError on rank 0: a bug"] * 2
    assert [r.status for r in ev.evaluate([attention(VANILLA)])] == ["ok"]
    with pytest.raises(TrainingError, match="scoring a candidate raised TypeError on rank 0: a bug"):
        ev.evaluate([attention(VANILLA, 3), bug])
