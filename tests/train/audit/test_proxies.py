"""The zero-cost proxies (`train/audit/proxies.py`) on a microscopic model: finite, deterministic, the caller's
random stream untouched, a failure reported as a failed outcome."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from autobert_zero.train.audit.candidates import candidate_set
from autobert_zero.train.audit.proxies import PROXIES, fixed_batch, zero_cost
from autobert_zero.train.mlm import prepare_mlm_data
from tests.support.training import tiny_config


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    cfg = tiny_config(tmp_path_factory.mktemp("proxies"))
    return cfg, prepare_mlm_data(cfg)


def test_proxies_are_finite_deterministic_and_leave_the_rng_alone(setting: tuple[Any, Any]) -> None:
    cfg, prepared = setting
    candidates = candidate_set(2, 4, seed=0)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = [zero_cost(c.genotype, cfg, prepared, seed=5) for c in candidates]
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's stream is not consumed
    again = [zero_cost(c.genotype, cfg, prepared, seed=5) for c in candidates]
    for a, b in zip(first, again, strict=True):
        assert set(a) == set(PROXIES)
        for name in PROXIES:
            assert a[name].ok and a[name].score is not None and math.isfinite(a[name].score) and a[name].score > 0
            assert a[name].score == b[name].score  # deterministic for (genotype, seed)
            assert a[name].seconds > 0 and a[name].params and a[name].params > 0
    assert len({r["synflow"].score for r in first}) == len(candidates)  # it tells the genotypes apart
    other = zero_cost(candidates[0].genotype, cfg, prepared, seed=6)
    assert other["grad_norm"].score != first[0]["grad_norm"].score  # another initialisation, another value


def test_the_fixed_batch_is_the_same_every_time(setting: tuple[Any, Any]) -> None:
    cfg, prepared = setting
    a, b = fixed_batch(prepared, 4), fixed_batch(prepared, 4)
    assert a["input_ids"].shape == (4, cfg.data.max_seq_length)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (a["labels"] != -100).any()


def test_a_proxy_that_cannot_run_is_a_failed_outcome(setting: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
                                                     ) -> None:
    from autobert_zero.train.audit import proxies

    cfg, prepared = setting

    def broken(model: Any, length: int) -> float:
        raise RuntimeError("no flow")

    monkeypatch.setattr(proxies, "synflow", broken)
    result = zero_cost(candidate_set(2, 4, seed=0)[0].genotype, cfg, prepared, seed=5)
    assert result["grad_norm"].ok
    assert result["synflow"].status == "failed" and "no flow" in result["synflow"].reason
    assert result["synflow"].score is None
