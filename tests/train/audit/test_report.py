"""The audit's report, outputs, reference and estimate caches, config hash and cost matching, on measured-looking
numbers: figures against scipy, sibling groups, the exposure control's lift, paired differences, two supernets,
amortised costs, the unresolvable top quarter, and identical figures from a second run over filled caches."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from autobert_zero.config.load import config_from_dict
from autobert_zero.config.schema import Config
from autobert_zero.errors import AbzError, ConfigError
from autobert_zero.grammar import Genotype
from autobert_zero.train.audit.candidates import candidate_set, exposure_cluster
from autobert_zero.train.audit.plot import table
from autobert_zero.train.audit.report import AuditInputs, EstimatorRun, Outcome, build_report
from autobert_zero.train.audit.run import (
    MIN_STEP_SECONDS,
    ReferenceCache,
    _digest,
    check_audit_config,
    config_hash,
    estimator_seed,
    load_audit_config,
    matched_steps,
    run_audit,
    timed_reference,
    write_outputs,
)
from tests.support.training import tiny_config, tiny_dict

ESTIMATOR_KEYS = {"kendall_tau", "spearman_rho", "top_half_tau", "equal_params_tau", "seconds_per_candidate",
                  "cost_ratio", "failed", "axis"}


def _inputs(n: int = 8) -> AuditInputs:
    candidates = candidate_set(2, n, seed=0)
    rng = np.random.default_rng(0)
    truth = rng.normal(size=n)
    loss = {s: 5.0 - truth + rng.normal(scale=0.1, size=n) for s in (0, 1)}
    reference = {s: [Outcome(-float(v), float(v), 10.0) for v in loss[s]] for s in (0, 1)}
    reference[1][3] = Outcome(None, None, 4.0, "failed", "loss is nan at step 7")
    biws = truth + rng.normal(scale=0.5, size=n)
    outcomes = [Outcome(float(v), -float(v), 0.5) for v in biws]
    outcomes[5] = Outcome(None, None, 0.5, "failed", "outputs are inf")
    params = [1000 + 10 * (i % 3) for i in range(n)]
    return AuditInputs(candidates=candidates, params=params, flops_per_token=[2.0 * p for p in params],
                       reference=reference, reference_steps=100,
                       estimators={"biws_k0": EstimatorRun(outcomes, {"kind": "biws", "k": 0})},
                       combine=["biws_k0"], bootstrap_samples=200, seed=0, context={"supernet": "x"})


def test_report_figures_match_scipy_and_failures_are_handled() -> None:
    inputs = _inputs()
    report = build_report(inputs)
    assert report["scored"] == 7 and [e["name"] for e in report["excluded"]] == [inputs.candidates[3].name]
    assert "seed 1: failed loss is nan" in report["excluded"][0]["reason"]
    ok = [i for i in range(8) if i != 3]
    ref = [np.mean([-inputs.reference[s][i].eval_loss for s in (0, 1)]) for i in ok]  # type: ignore[operator]
    biws = [inputs.estimators["biws_k0"].outcomes[i].score for i in ok]
    biws = [-math.inf if v is None else v for v in biws]  # the failed candidate ranks last
    e = report["estimators"]["biws_k0"]
    assert e["kendall_tau"]["value"] == pytest.approx(stats.kendalltau(biws, ref).statistic, abs=1e-4)
    assert e["spearman_rho"]["value"] == pytest.approx(stats.spearmanr(biws, ref).statistic, abs=1e-4)
    assert e["failed"] == 1 and e["cost_ratio"] == pytest.approx(20.0)
    assert set(report["estimators"]) == {"biws_k0", "params", "group_rule", "combo_biws_k0"}
    for figures in report["estimators"].values():
        assert set(figures) >= ESTIMATOR_KEYS
    params_tau = stats.kendalltau([inputs.params[i] for i in ok], ref).statistic
    assert report["estimators"]["params"]["kendall_tau"]["value"] == pytest.approx(params_tau, abs=1e-4)
    seed_tau = stats.kendalltau([-inputs.reference[0][i].eval_loss for i in ok],  # type: ignore[operator]
                                [-inputs.reference[1][i].eval_loss for i in ok]).statistic  # type: ignore[operator]
    assert report["noise_ceiling_tau"] == pytest.approx(seed_tau, abs=1e-4)

    row = report["candidates"][0]
    assert row["id"] == inputs.candidates[0].id and row["genotype"].startswith("attention")
    assert set(row["scores"]) == set(report["estimators"]) and set(row["reference"]["seeds"]) == {"0", "1"}
    assert report["verdict"]["best_biws"] in ("biws_k0", "combo_biws_k0")

def test_cost_ratio_uses_the_reference_seconds_timed_in_the_audit_process() -> None:
    # the cached runs took 10 s each (another load); timed next to the estimators, one takes 4 s
    report = build_report(dataclasses.replace(_inputs(), reference_seconds=4.0))
    assert report["reference"]["seconds_per_candidate"] == pytest.approx(4.0)
    assert report["reference"]["seconds_per_candidate_cached_runs"] == pytest.approx(10.0)
    assert report["estimators"]["biws_k0"]["cost_ratio"] == pytest.approx(8.0)


def test_hurdle_prunes_with_one_estimator_and_orders_with_the_other() -> None:
    inputs = _inputs(6)
    reference = {s: [Outcome(float(v), -float(v), 10.0) for v in range(6)] for s in (0, 1)}
    prune = EstimatorRun([Outcome(float(v), None, 1.0) for v in (0, 1, 2, 5, 4, 3)])  # best half: 3, 4, 5
    order = EstimatorRun([Outcome(float(v), None, 2.0) for v in (9, 9, 9, 0, 2, 1)])  # orders them 3 < 5 < 4
    report = build_report(dataclasses.replace(inputs, reference=reference, estimators={"p": prune, "s": order},
                                              combine=(), hurdles=[("p", "s")]))
    scores = [c["scores"]["hurdle_p"]["score"] for c in report["candidates"]]
    assert scores == [1.0, 2.0, 3.0, 7.0, 9.0, 8.0]  # bottom half by `p`, then the kept half by `s`, above
    assert [c["scores"]["hurdle_p"]["seconds"] for c in report["candidates"]] == [1.0] * 3 + [3.0] * 3
    figures = report["estimators"]["hurdle_p"]
    assert figures["kind"] == "hurdle" and figures["seconds_per_candidate"] == pytest.approx(2.0)
    assert figures["top_half_tau"] == pytest.approx(stats.kendalltau([0, 2, 1], [3, 4, 5]).statistic, abs=1e-4)


def test_outputs_written(tmp_path: Path) -> None:
    text = write_outputs(build_report(_inputs()), tmp_path)
    data = json.loads((tmp_path / "audit.json").read_text(encoding="utf-8"))
    assert data["reference"]["steps"] == 100 and "noise_ceiling_tau" in data
    png = (tmp_path / "audit.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "biws_k0" in text and "noise ceiling" in text and "7 candidates scored, 1 excluded" in text


def test_reference_cache_round_trip_and_damage(tmp_path: Path) -> None:
    cache = ReferenceCache(tmp_path, "a" * 64)
    outcome = Outcome(-3.5, 3.5, 12.25)
    assert cache.get("g1", 0) is None
    cache.put("g1", 0, outcome)
    assert cache.get("g1", 0) == outcome and cache.get("g1", 1) is None
    assert ReferenceCache(tmp_path, "a" * 16 + "b" * 48).get("g1", 0) is None  # same folder, other config
    path = next(cache.folder.glob("g1-seed0.json"))
    path.write_text('{"config_hash": "aaa', encoding="utf-8")  # truncated by a kill: recomputed, no error
    assert cache.get("g1", 0) is None
    assert not list(cache.folder.glob(".*.tmp"))


def _tampered(record: dict[str, Any], how: str) -> dict[str, Any]:
    if how == "edited score":
        record["outcome"]["score"] = 99.0  # the digest no longer matches
    elif how == "deep nesting":
        record["outcome"]["reason"] = json.loads("[" * 50 + "]" * 50)
    elif how == "wrong type, digest recomputed":
        record["outcome"]["seconds"] = "fast"
        record["digest"] = _digest(record)
    elif how == "unknown status, digest recomputed":
        record["outcome"]["status"] = "great"
        record["digest"] = _digest(record)
    elif how == "no digest":
        del record["digest"]
    elif how == "not an object":
        return [record]  # type: ignore[return-value]
    return record


@pytest.mark.parametrize("how", ["edited score", "deep nesting", "wrong type, digest recomputed",
                                 "unknown status, digest recomputed", "no digest", "not an object"])
def test_a_tampered_reference_cache_entry_is_reported_and_run_again(tmp_path: Path, how: str,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    cache = ReferenceCache(tmp_path, "a" * 64)
    cache.put("g1", 0, Outcome(-3.5, 3.5, 12.25))
    path = next(cache.folder.glob("g1-seed0.json"))
    path.write_text(json.dumps(_tampered(json.loads(path.read_text(encoding="utf-8")), how)), encoding="utf-8")
    assert cache.get("g1", 0) is None  # not used: the reference runs it again
    assert f"ignoring reference cache entry {path}" in capsys.readouterr().err


def test_config_hash_and_checks(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    base = config_hash(cfg, "v" * 64)
    assert config_hash(cfg, "w" * 64) != base  # another vocabulary (a WordPiece trained anew): other references
    cfg.audit.biws_steps = [0, 3]
    cfg.audit.bootstrap_samples = 10
    cfg.pretrain.max_steps, cfg.pretrain.warmup_steps, cfg.pretrain.lr = 7, 1, 0.5  # the supernet's schedule
    cfg.supernet.per_branch = ["norm"]
    assert config_hash(cfg, "v" * 64) == base  # estimator and supernet choices do not touch the reference
    cfg.pretrain.micro_batch_size += 1
    assert config_hash(cfg, "v" * 64) != base
    cfg.pretrain.micro_batch_size -= 1
    cfg.audit.reference_steps += 1
    assert config_hash(cfg, "v" * 64) != base
    cfg.audit.reference_seeds = [1, 1]
    with pytest.raises(ConfigError, match="reference_seeds"):
        check_audit_config(cfg)
    cfg.audit.reference_seeds = [0, 1]
    assert estimator_seed(cfg) == 2
    cfg.evaluate.init_seed = 1
    with pytest.raises(ConfigError, match="also a reference seed"):
        check_audit_config(cfg)
    cfg.evaluate.init_seed = 7
    assert estimator_seed(cfg) == 7
    with pytest.raises(ConfigError, match="size_prior"):  # refused by the loader, before any audit check
        config_from_dict(tiny_dict(tmp_path, audit={"size_prior": "depth"}))


def test_supernet_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such folder"):
        load_audit_config(tmp_path / "missing", None)
    with pytest.raises(AbzError, match=r"no config\.json"):
        load_audit_config(tmp_path, None)
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(AbzError, match="not valid JSON"):
        load_audit_config(tmp_path, None)


def test_matched_steps_are_clamped_to_one_and_the_reference_budget() -> None:
    # overhead 2 s, 1 s per step; BIWS 7 s → 5 steps of scratch; never fewer than 1, never more than the cap
    assert matched_steps(7.0, 2.0, 1.0, cap=100) == 5
    assert matched_steps(1.0, 2.0, 1.0, cap=100) == 1
    assert matched_steps(7.0, 2.0, 1e-9, cap=100) == 100  # a vanishing per-step time asks for ~10^9 steps
    assert matched_steps(7.0, 2.0, 0.0, cap=100) == 100
    assert matched_steps(7.0, 2.0, -1.0, cap=100) == 100
    assert matched_steps(math.inf, 2.0, 1.0, cap=100) == 100
    assert matched_steps(7.0, 2.0, 1.0, cap=3) == 3


class FakeTimer:
    """Scripted seconds of the timed scratch runs, by step count (no wall clock); records every call."""

    def __init__(self, seconds: dict[int, list[float]]) -> None:
        self.seconds = {steps: list(values) for steps, values in seconds.items()}
        self.calls: list[tuple[int, int, int]] = []

    def __call__(self, steps: int, seed: int, warmup: int) -> float:
        self.calls.append((steps, seed, warmup))
        return self.seconds[steps].pop(0)


def _timing_config(tmp_path: Path, reference_steps: int = 300) -> Config:
    cfg = tiny_config(tmp_path)
    cfg.audit.reference_steps, cfg.audit.reference_warmup_steps = reference_steps, 10
    return cfg


def test_timing_uses_medians_of_interleaved_repeats(tmp_path: Path) -> None:
    cfg = _timing_config(tmp_path)
    candidate = candidate_set(2, 4, seed=0)[0]
    # one repeat is disturbed (the short run slow, then a long run slow): the medians ignore both
    timer = FakeTimer({1: [1.0, 9.0, 1.2], 101: [11.0, 11.2, 30.0]})
    timing = timed_reference(None, candidate, cfg, timer=timer)  # type: ignore[arg-type]
    assert [steps for steps, _, _ in timer.calls] == [1, 101] * 3  # interleaved
    assert len({seed for _, seed, _ in timer.calls}) == 3  # a fresh seed per repeat: never a cached result
    assert all(warmup == (10 if steps == 101 else 0) for steps, _, warmup in timer.calls)
    assert timing.per_step == pytest.approx((11.2 - 1.2) / 100) and not timing.floored
    assert timing.reference_seconds == pytest.approx(1.2 + 0.1 * 299)
    record = timing.to_json()
    assert record["repeats"] == 3 and record["median_short_seconds"] == 1.2 and record["median_long_seconds"] == 11.2
    assert (record["short_steps"], record["long_steps"]) == (1, 101)


def test_a_short_run_slower_than_the_long_one_cannot_ask_for_an_unbounded_budget(tmp_path: Path) -> None:
    cfg = _timing_config(tmp_path)
    candidate = candidate_set(2, 4, seed=0)[0]
    timer = FakeTimer({1: [5.0, 5.1, 5.2], 101: [4.0, 4.1, 4.2]})  # a loaded machine: short runs slower
    timing = timed_reference(None, candidate, cfg, timer=timer)  # type: ignore[arg-type]
    assert timing.floored and timing.per_step == MIN_STEP_SECONDS
    assert timing.reference_seconds > 0
    steps = matched_steps(3.0, 1.0, timing.per_step, cap=cfg.audit.reference_steps)
    assert 1 <= steps <= cfg.audit.reference_steps


def test_a_one_step_reference_is_timed_by_one_step_runs(tmp_path: Path) -> None:
    cfg = _timing_config(tmp_path, reference_steps=1)
    timer = FakeTimer({1: [0.5, 0.7, 0.6]})
    timing = timed_reference(None, candidate_set(2, 4, seed=0)[0], cfg, timer=timer)  # type: ignore[arg-type]
    assert len(timer.calls) == 3 and timing.per_step == pytest.approx(0.6)
    assert timing.reference_seconds == pytest.approx(0.6)


class FakeBackend:
    """The audit's evaluation stack without training: seeded scores, scripted seconds (a short scratch run
    slower than a long one, as under load); records every step count asked for."""

    num_layers = 2
    identity = "fake supernet"

    class Tokenizer:
        all_special_tokens = ("[PAD]",)

        def get_vocab(self) -> dict[str, int]:
            return {"[PAD]": 0, "a": 1}

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []
        self.prepared = type("Prepared", (), {"tokenizer": self.Tokenizer()})()

    def run(self, genotypes: list[Genotype], estimator: str, steps: int, seed: int, warmup: int,
            lr: float | None = None) -> list[Outcome]:
        self.asked.append((estimator, steps))
        outcomes = []
        for g in genotypes:
            quality = int(g.id[:6], 16) / 16**6
            # a scratch run of 1 step is the slowest (load): its difference to a longer one is negative
            seconds = (3.0 if steps == 1 else 2.0) if estimator == "scratch" else 0.5 + 0.1 * steps
            noise = ((seed * 7 + steps) % 5) / 50
            outcomes.append(Outcome(-(5 - quality - noise), 5 - quality - noise, seconds, params=1000 + len(g.id),
                                    flops_per_token=2.0))
        return outcomes

    def zero_cost(self, genotype: Genotype, seed: int) -> dict[str, Outcome]:
        self.asked.append(("zero-cost", 0))
        quality = int(genotype.id[6:12], 16) / 16**6
        return {"grad_norm": Outcome(quality, None, 0.01), "synflow": Outcome(1 - quality, None, 0.01)}


def test_audit_under_load_asks_for_no_more_steps_than_the_reference(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    cfg.audit.reference_steps, cfg.audit.reference_warmup_steps = 4, 1
    cfg.audit.biws_steps, cfg.audit.bootstrap_samples, cfg.audit.cache_dir = [0, 2], 20, str(tmp_path / "cache")
    backend = FakeBackend()
    report = run_audit(backend, cfg, 4, show=False)  # type: ignore[arg-type]
    assert max(steps for _, steps in backend.asked) <= cfg.audit.reference_steps
    matched = report["estimators"]["scratch_k2"]
    assert 1 <= matched["steps"] <= cfg.audit.reference_steps and matched["max_steps"] == 4
    timing = report["cost_timing"]
    assert timing["floored"] and timing["repeats"] == 3 and timing["long_steps"] == 4


def _grouped_inputs(supernets: int = 2) -> AuditInputs:
    """8 drawn candidates (5 neighbours of Figure 7: one sibling group) and 3 exposure mutants of BERT; three
    reference seeds; a BIWS estimate per supernet that favours the exposure cluster, a fair scratch estimate."""
    drawn = candidate_set(2, 10, seed=0, neighbours=5)
    cluster = exposure_cluster(drawn[0].genotype, 3, 0, label="bert", existing=drawn)
    candidates = [*drawn, *cluster]
    n = len(candidates)
    rng = np.random.default_rng(1)
    truth = rng.normal(size=n)
    truth[-3:] -= 3.0  # the cluster is weak under the reference
    reference = {s: [Outcome(float(v), -float(v), 10.0) for v in truth + rng.normal(scale=0.05, size=n)]
                 for s in (0, 1, 2)}
    rows = []
    for _ in range(supernets):
        biws = truth + rng.normal(scale=0.3, size=n)
        biws[-3:] += 10.0  # exposure: the supernet's fitness lifts the over-trained cluster to the top
        rows.append([Outcome(float(v), -float(v), 0.5) for v in biws])
    scratch = [Outcome(float(v), -float(v), 2.0) for v in truth + rng.normal(scale=0.3, size=n)]
    params = [1000 + 10 * (i % 4) for i in range(n)]
    return AuditInputs(candidates=candidates, params=params, flops_per_token=[2.0 * p for p in params],
                       reference=reference, reference_steps=100,
                       estimators={"biws_k0": EstimatorRun(rows[0], {"kind": "biws", "k": 0},
                                                           replicas=rows if supernets > 1 else (),
                                                           uses_supernet=True),
                                   "scratch_k5": EstimatorRun(scratch, {"kind": "scratch", "steps": 5})},
                       combine=["biws_k0"], hurdles=[("biws_k0", "scratch_k5")], bootstrap_samples=100, seed=0,
                       supernets=supernets, supernet_seconds=300.0, exposure_base="bert")


def test_groups_exposure_paired_differences_and_two_supernets() -> None:
    inputs = _grouped_inputs()
    report = build_report(inputs)
    names = list(report["estimators"])
    assert names == ["biws_k0", "scratch_k5", "params", "group_rule", "combo_biws_k0", "hurdle_biws_k0"]
    assert report["supernets"] == 2 and report["figures"] == [
        "kendall_tau", "spearman_rho", "top_half_tau", "top_quarter_tau", "precision_at_5", "regret_at_1",
        "regret_at_5", "sibling_tau", "exposure_lift"]
    for e in report["estimators"].values():
        assert set(e["figures"]) == set(report["figures"])
        assert all(set(f) >= {"value", "low", "high"} for f in e["figures"].values())
    biws = report["estimators"]["biws_k0"]
    assert biws["supernets"] == 2 and report["estimators"]["scratch_k5"]["supernets"] == 1
    ref = np.mean([[-o.eval_loss for o in inputs.reference[s]] for s in (0, 1, 2)], axis=0)  # type: ignore[operator]
    per_supernet = [stats.kendalltau([o.score for o in row], ref).statistic
                    for row in inputs.estimators["biws_k0"].rows()]
    assert biws["kendall_tau"]["value"] == pytest.approx(np.mean(per_supernet), abs=1e-4)  # the mean over supernets
    # exposure: the BIWS estimate lifts the cluster (positive, interval above 0), the fair scratch one does not
    lift = report["exposure_control"]["lift"]
    assert lift["biws_k0"]["low"] > 0 and lift["biws_k0"]["value"] > lift["scratch_k5"]["value"]
    assert report["exposure_control"]["members"] == 3 and report["exposure_control"]["base"] == "bert"
    assert report["exposure_control"]["mean_rank_reference"] > 8  # the cluster is at the bottom of 13
    # every estimator against every rival, every figure, on the same resamples
    pairs = report["paired_differences"]
    assert len(pairs) == len(names) * (len(names) - 1) // 2 and "biws_k0 - scratch_k5" in pairs
    diff = pairs["biws_k0 - scratch_k5"]["exposure_lift"]
    assert diff["value"] == pytest.approx(lift["biws_k0"]["value"] - lift["scratch_k5"]["value"], abs=1e-3)
    assert diff["low"] > 0
    # sibling groups: the neighbours of Figure 7 and the exposure cluster
    assert {c["group"] for c in report["candidates"]} == {None, "figure7", "exposure:bert"}
    # costs: a supernet's seconds amortised over the audit's 13 candidates and over a 300-candidate search
    cost = biws["cost"]
    assert cost["marginal_seconds"] == pytest.approx(0.5) and cost["supernet_seconds"] == pytest.approx(300.0)
    assert cost["amortised_seconds_over_audit"] == pytest.approx(0.5 + 300.0 / 13, abs=1e-4)
    assert cost["amortised_seconds_over_search"] == pytest.approx(0.5 + 1.0) and cost["search_candidates"] == 300
    scratch_cost = report["estimators"]["scratch_k5"]["cost"]
    assert scratch_cost["amortised_seconds_over_search"] == scratch_cost["marginal_seconds"] == pytest.approx(2.0)
    assert report["estimators"]["hurdle_biws_k0"]["supernets"] == 2  # derived per supernet
    assert report["estimators"]["combo_biws_k0"]["cost"]["supernet_seconds"] == pytest.approx(300.0)
    row = report["candidates"][0]
    assert len(row["scores_by_supernet"]["biws_k0"]) == 2 and "scratch_k5" not in row["scores_by_supernet"]
    # the noise ceiling: leave-one-out over the three seeds, every figure
    ceiling = report["reference"]["noise_ceiling"]
    assert set(ceiling) == set(report["figures"]) and ceiling["kendall_tau"]["value"] > 0.8
    assert report["noise_ceiling_tau"] == ceiling["kendall_tau"]["value"]
    table_text = table(report)
    assert "lift" in table_text and "paired τ differences" in table_text and "noise ceiling (LOO)" in table_text


def test_top_quarter_is_unresolvable_when_the_reference_seeds_disagree_there() -> None:
    inputs = _grouped_inputs(supernets=1)
    n = len(inputs.candidates)
    order = np.arange(n, dtype=float)
    swapped = order.copy()
    top = np.argsort(-order)[:4]
    swapped[top] = swapped[top[::-1]]  # the seeds agree everywhere but in the best quarter, which one reverses
    reference = {0: [Outcome(float(v), -float(v), 1.0) for v in order],
                 1: [Outcome(float(v), -float(v), 1.0) for v in swapped]}
    report = build_report(dataclasses.replace(inputs, reference=reference))
    assert report["reference"]["top_quarter_resolvable"] is False
    assert report["reference"]["noise_ceiling"]["top_quarter_tau"]["value"] == -1.0
    assert all(e["figures"]["top_quarter_tau"].get("unresolvable") for e in report["estimators"].values())
    assert "unresolvable" not in report["estimators"]["biws_k0"]["figures"]["kendall_tau"]
    assert "unresolvable" in table(report)
    resolved = build_report(inputs)  # three nearly equal seeds: resolvable
    assert resolved["reference"]["top_quarter_resolvable"] is True
    assert not any("unresolvable" in e["figures"]["top_quarter_tau"] for e in resolved["estimators"].values())


def test_a_second_audit_over_filled_caches_gives_identical_figures(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tiny_config(tmp_path)
    cfg.audit.reference_steps, cfg.audit.reference_warmup_steps = 4, 1
    cfg.audit.biws_steps, cfg.audit.bootstrap_samples, cfg.audit.cache_dir = [0, 2], 30, str(tmp_path / "cache")
    first_backend = FakeBackend()
    first = run_audit(first_backend, cfg, 5, show=False)  # type: ignore[arg-type]
    assert {"proxy_init_loss", "proxy_grad_norm", "proxy_synflow"} <= set(first["estimators"])
    assert ("scratch", 0) in first_backend.asked and ("zero-cost", 0) in first_backend.asked
    again_backend = FakeBackend()
    again = run_audit(again_backend, cfg, 5, show=False)  # type: ignore[arg-type]
    assert again_backend.asked == []  # everything came from the caches: reference, estimates, timing
    assert json.dumps(again, sort_keys=True) == json.dumps(first, sort_keys=True)
    # a damaged estimate entry is run again (and reported), the figures stay the same
    entry = next((Path(first["estimate_cache"])).rglob("*-seed*.json"))
    entry.write_text("{", encoding="utf-8")
    third_backend = FakeBackend()
    third = run_audit(third_backend, cfg, 5, show=False)  # type: ignore[arg-type]
    assert len(third_backend.asked) == 1
    assert third["estimators"] == first["estimators"]
    # a damaged cost timing is measured again (the fake backend's seconds are scripted: the same timing)
    timing = next(Path(first["estimate_cache"]).glob("timing-*.json"))
    timing.write_text(json.dumps({"key": "x", "timing": {}, "digest": "y"}), encoding="utf-8")
    fourth_backend = FakeBackend()
    fourth = run_audit(fourth_backend, cfg, 5, show=False)  # type: ignore[arg-type]
    assert fourth_backend.asked and {steps for _, steps in fourth_backend.asked} <= {1, 4}  # the timed runs only
    assert "ignoring cached cost timing" in capsys.readouterr().err
    assert fourth["estimators"] == first["estimators"] and fourth["cost_timing"] == first["cost_timing"]


def test_an_estimate_paused_while_it_ran_is_named_as_a_timing_outlier() -> None:
    inputs = _inputs()
    outcomes = list(inputs.estimators["biws_k0"].outcomes)
    outcomes[2] = dataclasses.replace(outcomes[2], seconds=2675.0)  # SIGSTOPped for 45 min; the median is 0.5 s
    paused = dataclasses.replace(inputs, estimators={"biws_k0": EstimatorRun(outcomes, {"kind": "biws", "k": 0})})
    report = build_report(paused)
    assert report["timing_outliers"] == [{"estimator": "biws_k0", "supernet": 0, "candidate": inputs.candidates[2].name,
                                          "seconds": 2675.0, "median_seconds": 0.5}]
    assert build_report(inputs)["timing_outliers"] == []
    assert "WARNING: biws_k0 on" in table(report) and "took 2675.0 s against a median of 0.5 s" in table(report)
