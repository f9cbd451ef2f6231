"""The audit's `halving` estimator (`train/audit/halving.py`): BIWS k = 0 prunes, scratch rungs of growing budget
order the survivors. A fake backend's scratch loss is a known function of (candidate, steps), so the survivors
of each rung, the final order, the summed seconds, the cache and the config checks are checked exactly."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from autobert_zero.config.schema import Config
from autobert_zero.errors import ConfigError
from autobert_zero.grammar import Genotype
from autobert_zero.train.audit.candidates import Candidate, candidate_set
from autobert_zero.train.audit.halving import RUNG, successive_halving
from autobert_zero.train.audit.plot import table
from autobert_zero.train.audit.report import Outcome
from autobert_zero.train.audit.run import (
    EstimateStore,
    ReferenceCache,
    check_audit_config,
    estimator_seed,
    halving_runs,
    run_audit,
)
from tests.support.training import tiny_config
from tests.train.audit.test_report import FakeBackend

BIWS_QUALITY = [0.1, 0.9, 0.35, 0.8, None, 0.7, 0.2, 0.3, 0.4]
"""BIWS k = 0 score − (−5) per candidate; candidate 4 failed."""
A = {1: 5.0, 3: 3.5, 5: 5.5, 8: 4.4}
B = {1: 10.0, 3: 20.0, 5: 10.0, 8: 8.0}
"""Scratch loss = A + B / steps: at 10 steps 8 < 3 < 1 < 5, at 30 steps 3 < 8 (the order changes)."""
CANDIDATES = candidate_set(2, 9, seed=0)


def loss(i: int, steps: int) -> float:
    return A.get(i, 5.0 + 0.1 * i) + B.get(i, 10.0) / steps


def biws_row(quality: list[float | None] = BIWS_QUALITY) -> list[Outcome]:
    return [Outcome(None, None, 0.5, "failed", "outputs are inf") if q is None else Outcome(-5.0 + q, 5.0 - q, 0.5)
            for q in quality]


class ScratchBackend:
    """Scratch runs only: loss by `loss(candidate index, steps)`, seconds steps / 10; records every run."""

    def __init__(self, candidates: list[Candidate], fail: frozenset[tuple[int, int]] = frozenset()) -> None:
        self.index = {c.genotype.id: i for i, c in enumerate(candidates)}
        self.fail = fail
        self.asked: list[tuple[int, int, int, int]] = []  # (candidate, steps, seed, warm-up)

    def run(self, genotypes: list[Genotype], estimator: str, steps: int, seed: int, warmup: int,
            lr: float | None = None) -> list[Outcome]:
        assert estimator == "scratch"
        out = []
        for g in genotypes:
            i = self.index[g.id]
            self.asked.append((i, steps, seed, warmup))
            if (i, steps) in self.fail:
                out.append(Outcome(None, None, steps / 10, "failed", "loss is nan"))
            else:
                out.append(Outcome(-loss(i, steps), loss(i, steps), steps / 10))
        return out


def _scratch(backend: ScratchBackend) -> Callable[[Sequence[int], int], list[Outcome]]:
    def run(indices: Sequence[int], steps: int) -> list[Outcome]:
        return backend.run([CANDIDATES[i].genotype for i in indices], "scratch", steps, 0, 0)
    return run


def _config(tmp_path: Path, steps: list[int], eta: int = 2) -> Config:
    cfg = tiny_config(tmp_path)
    cfg.audit.reference_steps, cfg.audit.biws_steps = 30, [0, 5]
    cfg.audit.halving_steps, cfg.audit.halving_eta = steps, eta
    cfg.audit.cache_dir = str(tmp_path / "cache")
    return cfg


def test_survivors_order_and_seconds() -> None:
    backend = ScratchBackend(CANDIDATES)
    result = successive_halving(biws_row(), [10, 30], 2, _scratch(backend))
    # 8 scored by BIWS → the best 4 (1, 3, 5, 8); at 10 steps the best 2 of them (8, 3); at 30 steps both
    assert result.rungs == [[1, 3, 5, 8], [3, 8]]
    assert 4 not in {i for i, *_ in backend.asked}  # failed under BIWS: never trained
    scores = [o.score for o in result.outcomes]
    assert scores[3] == pytest.approx(2 * RUNG - loss(3, 30)) and scores[8] == pytest.approx(2 * RUNG - loss(8, 30))
    assert scores[1] == pytest.approx(RUNG - loss(1, 10)) and scores[0] == pytest.approx(-4.9)
    ranked = sorted((i for i in range(9) if scores[i] is not None), key=lambda i: -scores[i])  # type: ignore[operator]
    assert ranked == [3, 8, 1, 5, 2, 7, 6, 0]  # later rungs first, each rung by its own score, BIWS last
    assert result.outcomes[4].score is None and result.outcomes[4].status == "failed"
    assert result.outcomes[4].reason == "outputs are inf"
    assert [o.eval_loss for o in result.outcomes][3] == pytest.approx(loss(3, 30))
    assert [o.seconds for o in result.outcomes] == pytest.approx([0.5, 1.5, 0.5, 4.5, 0.5, 1.5, 0.5, 0.5, 4.5])
    assert all(o.status == "ok" for i, o in enumerate(result.outcomes) if i != 4)


def test_a_failed_scratch_run_does_not_complete_its_rung() -> None:
    backend = ScratchBackend(CANDIDATES, fail=frozenset({(8, 30)}))
    result = successive_halving(biws_row(), [10, 30], 2, _scratch(backend))
    eight = result.outcomes[8]
    assert eight.status == "ok" and eight.score == pytest.approx(RUNG - loss(8, 10))  # ranked by its 10-step run
    assert "scratch 30 steps failed: loss is nan" in eight.reason and eight.seconds == pytest.approx(4.5)
    assert eight.score > result.outcomes[1].score  # type: ignore[operator]  # still above the rest of rung 1


def test_halving_runs_are_cached_seeded_and_shared_by_supernets(tmp_path: Path) -> None:
    cfg = _config(tmp_path, [10, 30])
    store = EstimateStore(ReferenceCache(cfg.audit.cache_dir, "k" * 64), ["a", "b"], cfg)
    other = biws_row([0.1, 0.2, 0.35, 0.8, None, 0.7, 0.9, 0.3, 0.4])  # supernet 2 keeps 6 instead of 1
    backend = ScratchBackend(CANDIDATES)
    run = halving_runs(backend, CANDIDATES, [biws_row(), other], cfg, store, False)  # type: ignore[arg-type]
    assert run.meta == {"kind": "halving", "eta": 2, "steps": [10, 30], "survivors": [4, 2]}
    assert run.uses_supernet and len(run.replicas) == 2 and run.outcomes is run.replicas[0]
    seed = estimator_seed(cfg)
    assert {(s, w) for _, s, sd, w in backend.asked if sd == seed} == {(10, 1), (30, 3)}  # warm-up a tenth
    assert len(backend.asked) == len(set(backend.asked))  # supernet 2 reused supernet 1's runs
    assert {i for i, s, *_ in backend.asked if s == 10} == {1, 3, 5, 8, 6}
    again = ScratchBackend(CANDIDATES)
    repeat = halving_runs(again, CANDIDATES, [biws_row(), other], cfg, store, False)  # type: ignore[arg-type]
    assert again.asked == [] and repeat == run  # everything from the cache: identical outcomes


@pytest.mark.parametrize("change, key", [
    ({"halving_steps": [10, 10]}, "audit.halving_steps"),
    ({"halving_steps": [30, 10]}, "audit.halving_steps"),
    ({"halving_steps": [10, 31]}, "audit.reference_steps"),
    ({"halving_eta": 1}, "audit.halving_eta"),
    ({"biws_steps": [5, 20]}, "audit.biws_steps"),
])
def test_bad_halving_config_is_refused(tmp_path: Path, change: dict[str, object], key: str) -> None:
    cfg = _config(tmp_path, [10, 30])
    check_audit_config(cfg)
    for name, value in change.items():
        setattr(cfg.audit, name, value)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check_audit_config(cfg)


def test_halving_off_needs_no_biws_k0(tmp_path: Path) -> None:
    cfg = _config(tmp_path, [])
    cfg.audit.biws_steps = [5]
    check_audit_config(cfg)


def test_an_audit_with_halving_reports_it_and_repeats_from_the_caches(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    cfg.audit.reference_steps, cfg.audit.reference_warmup_steps = 4, 1
    cfg.audit.biws_steps, cfg.audit.bootstrap_samples, cfg.audit.cache_dir = [0, 2], 20, str(tmp_path / "cache")
    cfg.audit.halving_steps, cfg.audit.halving_eta = [2, 4], 2
    backend = FakeBackend()
    report = run_audit(backend, cfg, 6, show=False)  # type: ignore[arg-type]
    halving = report["estimators"]["halving"]
    assert halving["kind"] == "halving" and halving["steps"] == [2, 4] and halving["survivors"] == [3, 2]
    # 6 BIWS k=0 runs of 0.5 s, then 3 scratch runs and 2 scratch runs of 2 s each (the fake's seconds), over 6
    assert halving["seconds_per_candidate"] == pytest.approx((6 * 0.5 + 5 * 2.0) / 6, abs=1e-5)
    assert all("halving" in c["scores"] for c in report["candidates"])
    assert any(name.startswith("halving - ") or name.endswith(" - halving") for name in report["paired_differences"])
    assert "halving" in table(report)
    rival = report["estimators"]["scratch_halving"]  # its scratch rival at equal cost, schedule fitted to its budget
    assert rival["matched_to"] == "halving" and 1 <= rival["steps"] <= cfg.audit.reference_steps
    assert ("scratch", rival["steps"]) in backend.asked and rival["warmup"] == round(rival["steps"] / 10)
    again_backend = FakeBackend()
    again = run_audit(again_backend, cfg, 6, show=False)  # type: ignore[arg-type]
    assert again_backend.asked == []
    assert json.dumps(again, sort_keys=True) == json.dumps(report, sort_keys=True)
