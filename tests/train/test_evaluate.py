"""Candidate evaluation (train/evaluate.py): scratch and BIWS estimators on real DeepSpeed engines, the
fixed held-out batches, failures, the id cache, fingerprint duplicates and the size-prior rank combination."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from autobert_zero.compiler.analysis import StaticSizes, parameter_report
from autobert_zero.errors import ConfigError
from autobert_zero.grammar import Genotype, parse_genotype
from autobert_zero.train.evaluate import CandidateResult, Evaluator
from autobert_zero.train.mlm import PreparedMlm, mean_loss
from tests.support.evaluation import NEG_INSIDE, NEG_OUTSIDE, VANILLA, attention
from tests.support.glue import write_sst2
from tests.support.training import tiny_config

EXPLODING = "matmul(matmul(matmul(Q, transpose(K)), matmul(Q, transpose(K))), matmul(matmul(Q, transpose(K)), V))"




def conv_first() -> Genotype:
    return parse_genotype(f"attention a {{ return {VANILLA} }}\n"
                          "backbone {\n  conv depthwise kernel=3 dilation=2\n  attention a\n}\n")


def test_scratch_scores_are_reproducible_and_independent_of_order(tmp: Path, prepared: PreparedMlm) -> None:
    cfg = tiny_config(tmp, evaluate={"steps": 3})
    a, b = Evaluator(cfg, prepared=prepared), Evaluator(cfg, prepared=prepared)
    first = a.evaluate([attention(VANILLA), conv_first()])
    second = b.evaluate([conv_first(), attention(VANILLA)])
    assert [r.status for r in first] == ["ok", "ok"]
    assert first[0].eval_loss == second[1].eval_loss and first[1].eval_loss == second[0].eval_loss
    assert first[0].eval_loss != first[1].eval_loss
    assert first[0].score == -first[0].eval_loss  # higher is better
    # counted from the sizes (no model built): the base model, no pooler, plus the MLM head (dense h² + h, LayerNorm 2h,
    # decoder bias vocab; its weight is tied to the word embeddings)
    h, vocab = cfg.model.hidden_size, len(prepared.tokenizer)
    sizes = StaticSizes(hidden_size=h, num_attention_heads=cfg.model.num_attention_heads,
                        intermediate_size=cfg.model.intermediate_size, vocab_size=vocab,
                        max_position_embeddings=cfg.model.max_position_embeddings)
    expected = parameter_report(attention(VANILLA), sizes, pooler=False).total + h * h + 3 * h + vocab
    assert first[0].params == expected and first[1].params != first[0].params
    assert first[0].flops_per_token is not None and first[0].flops_per_token > 0
    untrained = Evaluator(tiny_config(tmp, evaluate={"steps": 0}), prepared=prepared).evaluate([attention(VANILLA)])
    assert untrained[0].eval_loss is not None and first[0].eval_loss is not None
    assert first[0].eval_loss < untrained[0].eval_loss  # the 3 steps trained it


def test_cache_duplicates_and_failures(tmp: Path, prepared: PreparedMlm) -> None:
    ev = Evaluator(tiny_config(tmp, evaluate={"steps": 4, "lr": 10.0}, deepspeed={"steps_per_print": 10**9}),
                   prepared=prepared)
    results = ev.evaluate([attention(NEG_INSIDE), attention(NEG_OUTSIDE), attention(EXPLODING), attention(VANILLA, 3)])
    inside, outside, exploding, three = results
    assert inside.status == "ok" and inside.id != outside.id
    assert outside.status == "duplicate" and outside.twin == inside.id and outside.score == inside.score
    assert inside.id in outside.reason
    assert exploding.status == "failed" and exploding.score is None
    assert exploding.reason == "training loss became nan at step 2"
    assert three.status == "ok"  # the run went on after the failure
    again = ev.evaluate([attention(NEG_INSIDE)])[0]
    assert again.seconds == inside.seconds and again.eval_loss == inside.eval_loss  # from the cache
    assert ev.evaluate([])[:] == []


def test_one_call_equals_one_call_per_genotype(tmp: Path, prepared: PreparedMlm,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Scoring, caching and duplicate detection follow the list order as if each genotype came in a call of
    its own (what lets the search hand over a whole round per call when the ranks split the candidates):
    the same results, the same genotypes scored in the same order, the same cache and fingerprint table."""
    def conv(body: str) -> Genotype:
        return parse_genotype(f"attention a {{ return {body} }}\n"
                              "backbone {\n  conv depthwise kernel=3 dilation=2\n  attention a\n}\n")

    batch = [attention(VANILLA), conv(NEG_OUTSIDE), attention(NEG_INSIDE), attention(VANILLA),
             attention(NEG_OUTSIDE), conv(NEG_INSIDE), attention(VANILLA, 3)]
    scored: list[str] = []
    score = Evaluator._score

    def recording(self: Evaluator, genotype: Genotype, result: CandidateResult) -> None:
        scored.append(genotype.id)
        score(self, genotype, result)

    monkeypatch.setattr(Evaluator, "_score", recording)
    cfg = tiny_config(tmp, evaluate={"steps": 0})
    runs = []
    for per_genotype in (False, True):
        ev = Evaluator(cfg, prepared=prepared)
        ev.evaluate([conv(NEG_INSIDE)])  # cached before the list comes
        results = [ev.evaluate([g])[0] for g in batch] if per_genotype else ev.evaluate(batch)
        runs.append(([dataclasses.replace(r, seconds=0.0) for r in results], scored[:], list(ev.cache),
                     dict(ev.fingerprints)))
        scored.clear()
    assert runs[0] == runs[1]
    results, order, _, _ = runs[0]
    assert order == [conv(NEG_INSIDE).id, batch[0].id, batch[2].id, batch[6].id]
    assert [r.status for r in results] == ["ok", "duplicate", "ok", "ok", "duplicate", "ok", "ok"]
    assert [r.twin for r in results] == [None, conv(NEG_INSIDE).id, None, None, batch[2].id, None, None]
    assert results[3] == results[0] and results[4].eval_loss == results[2].eval_loss


def test_size_prior_rank_combination(tmp: Path, prepared: PreparedMlm) -> None:
    cfg = tiny_config(tmp, evaluate={"steps": 0, "size_prior": "params", "prior_weight": 0.5})
    ev = Evaluator(cfg, prepared=prepared)
    results = ev.evaluate([attention(VANILLA), conv_first(), attention(VANILLA, 3)])
    losses = [r.eval_loss for r in results]
    assert all(loss is not None for loss in losses)
    loss_rank = {r.id: sorted(losses, reverse=True).index(r.eval_loss) / 2 for r in results}
    size_rank = {r.id: sorted(r2.params for r2 in results).index(r.params) / 2 for r in results}
    for r in results:
        assert r.score == pytest.approx(0.5 * loss_rank[r.id] + 0.5 * size_rank[r.id])
    # A later call ranks against everything this Evaluator has scored: the same score for the same candidate.
    assert ev.evaluate([attention(VANILLA, 3)])[0].score == results[2].score
    assert Evaluator(cfg, prepared=prepared).evaluate([conv_first()])[0].score == 0.5  # alone: mid-rank


def test_biws_inherits_the_supernet_without_changing_it(tmp: Path, supernet_dir: Path) -> None:
    cfg = tiny_config(tmp, evaluate={"estimator": "biws", "steps": 0})
    ev = Evaluator(cfg, supernet_dir)
    before = {k: v.clone() for k, v in ev.supernet.state_dict().items()}
    inherited = ev.evaluate([attention(VANILLA), conv_first()])
    assert [r.status for r in inherited] == ["ok", "ok"]
    child = ev.supernet.extract(attention(VANILLA))
    child.config.sparse_mlm_logits = True
    assert inherited[0].eval_loss == pytest.approx(mean_loss(child, ev.eval_batches), abs=1e-6)
    trained = Evaluator(tiny_config(tmp, evaluate={"estimator": "biws", "steps": 2}), supernet_dir)
    after_steps = trained.evaluate([attention(VANILLA)])[0]
    assert after_steps.status == "ok" and after_steps.eval_loss != inherited[0].eval_loss
    assert all(torch.equal(before[k], v) for k, v in ev.supernet.state_dict().items())
    wrong = ev.evaluate([attention(VANILLA, 3)])[0]
    assert wrong.status == "failed" and "3 layers; this supernet hosts 2-layer" in wrong.reason


def test_adapt_trains_the_supernet_and_empties_the_cache(tmp: Path, supernet_dir: Path) -> None:
    ev = Evaluator(tiny_config(tmp, evaluate={"estimator": "biws", "steps": 0}), supernet_dir)
    population = [attention(VANILLA), conv_first()]
    before = ev.evaluate(population)
    ev.adapt(population, 2)
    after = ev.evaluate(population)  # scored anew: the cache held the old weights' scores
    assert ev.adapted_steps == 2
    assert all(math.isfinite(r.eval_loss or math.nan) for r in after)

    def mean_loss_of(results: list[CandidateResult]) -> float:
        return sum(r.eval_loss for r in results if r.eval_loss is not None) / len(results)

    assert mean_loss_of(after) < mean_loss_of(before)  # training on the population improves it on held-out data


def test_evaluator_config_errors(tmp: Path, prepared: PreparedMlm) -> None:
    with pytest.raises(ConfigError, match=r"'evaluate.estimator' must be one of 'scratch', 'biws', got 'oneshot'"):
        tiny_config(tmp, evaluate={"estimator": "oneshot"})  # refused by the loader, before any Evaluator
    with pytest.raises(ConfigError, match="needs a supernet: pass --supernet DIR"):
        Evaluator(tiny_config(tmp, evaluate={"estimator": "biws"}), prepared=prepared)
    with pytest.raises(ConfigError, match="sizes disagree with the supernet"):
        Evaluator(tiny_config(tmp, model={"intermediate_size": 128}, evaluate={"estimator": "biws"}),
                  tmp / "supernet")


def test_glue_second_stage_scores_by_the_dev_metric(tmp: Path, prepared: PreparedMlm, tmp_path: Path) -> None:
    glue = write_sst2(tmp_path / "glue")
    mlm_only = Evaluator(tiny_config(tmp, evaluate={"steps": 2}), prepared=prepared).evaluate([attention(VANILLA)])[0]
    staged = Evaluator(tiny_config(tmp, evaluate={"steps": 2, "glue_task": "SST-2", "glue_data_dir": str(glue)},
                                   finetune={"max_steps": 2}), prepared=prepared).evaluate([attention(VANILLA)])[0]
    assert staged.status == "ok" and staged.glue_score is not None
    assert staged.score == staged.glue_score != -mlm_only.eval_loss  # ranked by the GLUE dev score
    assert staged.eval_loss == mlm_only.eval_loss  # the MLM stage is the same


def test_an_evaluator_that_keeps_no_results_scores_every_call_afresh(tmp: Path, prepared: PreparedMlm) -> None:
    """`keep_results=False` (a promotion rung): a genotype scored before, and a functional twin of one, are trained
    and scored again, to the same loss (the runs are seeded), and nothing is left in the cache."""
    ev = Evaluator(tiny_config(tmp, evaluate={"steps": 2}), prepared=prepared, keep_results=False)
    (first,) = ev.evaluate([attention(NEG_INSIDE)])
    (again,) = ev.evaluate([attention(NEG_INSIDE)])
    (twin,) = ev.evaluate([attention(NEG_OUTSIDE)])
    assert [first.status, again.status, twin.status] == ["ok", "ok", "ok"]
    assert again.eval_loss == first.eval_loss and twin.eval_loss == first.eval_loss
    assert ev.cache == {} and ev.fingerprints == {}
    inside, outside = ev.evaluate([attention(NEG_INSIDE), attention(NEG_OUTSIDE)])  # within one call: still a twin
    assert outside.status == "duplicate" and outside.twin == inside.id
