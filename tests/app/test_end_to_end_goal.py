"""The end-to-end experiment's pre-registered goal (issue #16 §4) and its RESULTS section, on analyses made by
the retrain's own `analyse` from per-seed values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import benchmarks.results_md as results_md
from autobert_zero.train.retrain.report import analyse, paired
from benchmarks.bench_end_to_end import goal

SEEDS = [0, 1, 2, 3, 4]
ARMS = [{"name": "found-op", "kind": "found"}, {"name": "found-random", "kind": "found"},
        {"name": "bert", "kind": "baseline"}, {"name": "autobert_zero", "kind": "baseline"}]
NOISE = [0.010, -0.004, 0.006, -0.012, 0.0]


def _analysis(loss_gap: float, glue_gap: float) -> dict[str, Any]:
    """found-op better than BERT by `loss_gap` nats and `glue_gap` GLUE points per seed, plus seed noise."""
    base = {"found-op": (5.30 - loss_gap, 60.0 + glue_gap), "found-random": (5.31, 59.5), "bert": (5.30, 60.0),
            "autobert_zero": (5.29, 60.2)}
    pretrain = {arm: {s: {"heldout_loss": loss + NOISE[s] * (i + 1)} for s in SEEDS}
                for i, (arm, (loss, _)) in enumerate(base.items())}
    glue = {task: {"scores": {arm: {s: [score + 100 * NOISE[s] * (i + 1), score] for s in SEEDS}
                              for i, (arm, (_, score)) in enumerate(base.items())}} for task in ("SST-2", "CoLA")}
    return analyse(ARMS, pretrain, glue, SEEDS)


def test_the_goal_is_met_only_when_both_intervals_exclude_zero_the_right_way() -> None:
    clear = goal(_analysis(loss_gap=0.2, glue_gap=5.0))
    assert clear["met"] and clear["heldout_met"] and clear["glue_met"]
    assert clear["heldout_loss"]["high"] < 0 < clear["glue_average"]["low"]
    loss_only = goal(_analysis(loss_gap=0.2, glue_gap=0.0))
    assert loss_only["heldout_met"] and not loss_only["glue_met"] and not loss_only["met"]
    worse = goal(_analysis(loss_gap=-0.2, glue_gap=-5.0))  # found-op clearly worse: intervals exclude 0 too
    assert not worse["heldout_met"] and not worse["glue_met"]
    no_glue = goal({"contrasts": [c for c in _analysis(0.2, 5.0)["contrasts"] if c["endpoint"] == "heldout_loss"]})
    assert no_glue["heldout_met"] and no_glue["glue_average"] is None and not no_glue["met"]


@pytest.mark.parametrize(("loss_gap", "glue_gap", "verdict"), [(0.2, 5.0, "met"), (0.0, 0.0, "not met")])
def test_results_page_gives_the_goal_verdict_with_its_intervals(loss_gap: float, glue_gap: float,
                                                                verdict: str) -> None:
    analysis = _analysis(loss_gap, glue_gap)
    arms = [{**a, "params": 1_000_000, "params_ratio": 1.0, "intermediate_size": 256, "flops_per_token": 1e6,
             "seconds_per_step": 0.2, "lr": 2e-3} for a in ARMS]
    values = analysis["arms"]
    data = {"budget_steps": 2000, "commit": {"sha": "0" * 40},
            "retrain": {"arms": arms, "analysis": analysis, "seeds": SEEDS},
            "found_op_minus_found_random": {e: paired(values["found-op"][e]["values"],
                                                      values["found-random"][e]["values"]) for e in values["bert"]}}
    text = results_md.end_to_end_figures(data)
    assert f"intervals excluding 0): {verdict}.**" in text
    assert "| found-op |" in text and "found-op − bert" in text and "5 pre-training seeds" in text
    mean = goal(analysis)["heldout_loss"]["mean"]
    assert f"Held-out loss: {mean:+.4f} [" in text


def test_the_lr_edge_check_is_shown_as_exploratory_with_every_lr_in_order() -> None:
    data = {"commit": {"sha": "1" * 40}, "sweep_steps": 500,
            "scores": {"bert": {"0.0005": 6.75, "0.001": 6.69, "0.002": 6.62, "0.004": 6.79, "0.008": None}},
            "best": {"bert": 0.002}}
    text = results_md.lr_edge(data)
    assert text.startswith("Exploratory, not pre-registered")
    assert "| arm | lr 0.0005 | lr 0.001 | lr 0.002 | lr 0.004 | lr 0.008 | best |" in text
    assert "| bert | 6.750 | 6.690 | 6.620 | 6.790 | – | 0.002 |" in text


def _retrain_folder(root: Path, seeds_done: int) -> Path:
    """A running retrain's small files (what the commit loop keeps): its record and each finished seed's
    heldout.json, found-op 0.2 nats better than BERT at every seed."""
    losses = {"found-op": 5.30, "found-random": 5.35, "bert": 5.50, "autobert_zero": 5.32}
    plan = {"arms": ARMS, "settings": {"lrs": [1e-3, 2e-3], "seeds": 5, "sweep_steps": 500}}
    root.mkdir(parents=True)
    (root / "retrain.json").write_text(json.dumps(plan), encoding="utf-8")
    for i, (arm, loss) in enumerate(losses.items()):
        for seed in range(seeds_done):
            run = root / "runs" / arm / f"seed{seed}"
            run.mkdir(parents=True)
            (run / "heldout.json").write_text(json.dumps({"heldout_loss": loss + NOISE[seed] * (i + 1)}))
    return root


def test_the_primary_endpoint_is_analysed_once_every_seed_is_in_and_not_before(tmp_path: Path) -> None:
    partial = results_md.retrain_progress(_retrain_folder(tmp_path / "partial", seeds_done=4))
    assert "| found-op | 4 / 5 |" in partial and "Primary endpoint" not in partial
    text = results_md.retrain_progress(_retrain_folder(tmp_path / "full", seeds_done=5))
    assert "**Primary endpoint, final**" in text and "| found-op | 5 / 5 |" in text
    assert "heldout_loss (lower is better) | found-op − bert | -0.2" in text
    assert "Held-out half of the goal (found-op − bert interval below 0): met" in text
    assert "found-op − found-random (paired t, not Holm-corrected): -0.05" in text


def test_glue_scores_are_shown_per_task_once_a_seeds_every_fine_tune_is_done(tmp_path: Path) -> None:
    folder = _retrain_folder(tmp_path / "r", seeds_done=5)
    plan = json.loads((folder / "retrain.json").read_text())
    plan["settings"].update(glue_tasks=["SST-2", "CoLA"], finetune_seeds=2)
    (folder / "retrain.json").write_text(json.dumps(plan))
    assert "GLUE dev so far" not in results_md.retrain_progress(folder)

    def finetuned(arm: str, seed: int, run: str, score: float) -> None:
        path = folder / "runs" / arm / f"seed{seed}" / "glue" / run
        path.mkdir(parents=True)
        (path / "eval.json").write_text(json.dumps({"score": score}))

    finetuned("bert", 0, "SST-2-ft0", 0.60)
    finetuned("bert", 0, "SST-2-ft1", 0.70)  # seed 0 done: mean 0.65
    finetuned("bert", 1, "SST-2-ft0", 0.90)  # seed 1 half done: not counted
    finetuned("bert", 0, "SST-2-select-lr0.001", 0.99)  # lr selection on a train slice: never counted
    text = results_md.retrain_progress(folder)
    assert "| bert | 0.6500 (n=1) | running / to come |" in text
    assert "| found-op | running / to come | running / to come |" in text


def test_a_contrast_without_a_p_value_is_shown_not_a_crash() -> None:
    """Identical per-seed differences have an interval but no t-test p (zero variance): shown as '–'."""
    analysis = _analysis(0.2, 5.0)
    for contrast in analysis["contrasts"]:
        contrast.update(p=None, p_holm=None)
    data = {"budget_steps": 2000, "commit": {"sha": "0" * 40},
            "retrain": {"arms": [{**a, "params": 1, "params_ratio": 1.0, "intermediate_size": 1, "flops_per_token": 1,
                                  "seconds_per_step": None, "lr": 1e-3} for a in ARMS],
                        "analysis": analysis, "seeds": SEEDS},
            "found_op_minus_found_random": {}}
    assert "Holm p –" in results_md.end_to_end_figures(data)
