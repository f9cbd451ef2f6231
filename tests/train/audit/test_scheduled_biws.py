"""Scheduled BIWS fine-tunes (`audit.biws_lrs`): each k > 0 at each learning rate, with a warm-up of k / 10."""

from __future__ import annotations

import json
from pathlib import Path

from autobert_zero.grammar import Genotype
from autobert_zero.train.audit.report import Outcome
from autobert_zero.train.audit.run import run_audit
from tests.support.training import tiny_config
from tests.train.audit.test_report import FakeBackend


class LrBackend(FakeBackend):
    """`FakeBackend` that also records the warm-up and learning rate of every BIWS run (and lets the lr move
    the score, so two lrs give two different estimators)."""

    def __init__(self) -> None:
        super().__init__()
        self.biws: list[tuple[int, int, float | None]] = []

    def run(self, genotypes: list[Genotype], estimator: str, steps: int, seed: int, warmup: int,
            lr: float | None = None) -> list[Outcome]:
        outcomes = super().run(genotypes, estimator, steps, seed, warmup)
        if estimator != "biws":
            return outcomes
        self.biws.append((steps, warmup, lr))
        shift = 0.0 if lr is None else 10 * lr
        return [Outcome((o.score or 0.0) + shift, (o.eval_loss or 0.0) - shift, o.seconds, params=o.params,
                        flops_per_token=o.flops_per_token) for o in outcomes]


def test_each_k_runs_at_each_lr_with_a_tenth_warm_up_and_repeats_from_the_cache(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    cfg.audit.reference_steps, cfg.audit.reference_warmup_steps = 40, 4
    cfg.audit.biws_steps, cfg.audit.biws_lrs = [0, 20], [3e-4, 3e-3]
    cfg.audit.bootstrap_samples, cfg.audit.cache_dir = 20, str(tmp_path / "cache")
    backend = LrBackend()
    report = run_audit(backend, cfg, 6, show=False)  # type: ignore[arg-type]
    assert {(k, w, lr) for k, w, lr in backend.biws if lr is not None} == {(20, 2, 3e-4), (20, 2, 3e-3)}
    assert {(k, w) for k, w, lr in backend.biws if lr is None} == {(0, 0), (20, 0)}  # the plain ones as before
    for lr in ("0.0003", "0.003"):
        run = report["estimators"][f"biws_k20_lr{lr}"]
        assert run["kind"] == "biws" and run["k"] == 20 and run["warmup"] == 2 and run["lr"] == float(lr)
    low, high = (report["candidates"][0]["scores"][f"biws_k20_lr{lr}"]["score"] for lr in ("0.0003", "0.003"))
    assert high > low  # two estimators, not one under two names
    again = LrBackend()
    assert json.dumps(run_audit(again, cfg, 6, show=False), sort_keys=True) == json.dumps(report, sort_keys=True)  # type: ignore[arg-type]
    assert again.biws == []
