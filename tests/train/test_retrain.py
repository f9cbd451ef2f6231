"""`abz retrain`: equal size, the statistics, a whole retrain (re-scored pick, lr sweep, held-out loss, GLUE
with the fine-tuning lr chosen on train), exact resume after a kill, and the bad inputs."""

from __future__ import annotations

import json
import math
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from autobert_zero.cli import main
from autobert_zero.grammar import parse_genotype
from autobert_zero.train.retrain.arms import Candidate, equal_size
from autobert_zero.train.retrain.report import holm, mean_interval, paired
from tests.support.glue import write_sst2
from tests.support.paths import GENOTYPES, REPO
from tests.support.training import subprocess_env, tiny_config, tiny_dict

CONV_ONLY = """
backbone {
    conv depthwise kernel=3
    conv sepconv kernel=5
}
"""


def test_every_arm_is_sized_within_two_percent_of_the_first_baseline(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, model={"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64})
    bert = parse_genotype((GENOTYPES / "bert.abz").read_text())
    figure7 = parse_genotype((GENOTYPES / "autobert_zero.abz").read_text())
    conv = parse_genotype(CONV_ONLY)
    arms = equal_size([Candidate("bert", "baseline", bert, "b"), Candidate("fig7", "baseline", figure7, "f"),
                       Candidate("conv", "found", conv, "c")], cfg, vocab_size=512)
    assert arms[0].intermediate_size == 64 and arms[0].params_ratio == 1.0
    assert all(arm.within_tolerance and abs(arm.params_ratio - 1) <= 0.02 for arm in arms)
    assert arms[2].intermediate_size != 64  # another mixer: another FFN width
    assert all(arm.flops_per_token > 0 for arm in arms)


def test_statistics() -> None:
    assert holm([0.01, 0.04, None, 0.03]) == [0.03, pytest.approx(0.06), None, pytest.approx(0.06)]
    one = mean_interval([2.0])
    assert one["low"] is None and one["n"] == 1
    spread = mean_interval([1.0, 2.0, 3.0])
    assert spread["mean"] == 2.0 and spread["low"] < 2.0 < spread["high"]
    better = paired([1.0, 1.1, 0.9, 1.0], [1.5, 1.4, 1.6, 1.5])  # found − baseline < 0
    assert better["mean"] == pytest.approx(-0.5) and better["high"] < 0 and better["p"] < 0.01


def _configs(tmp: Path) -> tuple[Path, Path]:
    """A search config (scratch estimator, fitness on the first 8 of 16 held-out blocks) and a retrain config."""
    search = tiny_dict(tmp, data={"eval_blocks": 16},
                       evaluate={"estimator": "scratch", "steps": 2, "eval_batch_size": 8, "eval_limit": 8},
                       search={"fitness": "evaluate", "evaluations": 6, "population_size": 4, "tournament_size": 2,
                               "seed_genotypes": []})
    (search_yaml := tmp / "search.yaml").write_text(yaml.safe_dump(search), encoding="utf-8")
    retrain = tiny_dict(tmp, pretrain={"max_steps": 6, "checkpoint_every": 2, "warmup_steps": 1},
                        evaluate={"eval_batch_size": 8})
    retrain["finetune"]["max_steps"] = 4
    (retrain_yaml := tmp / "retrain.yaml").write_text(yaml.safe_dump(retrain), encoding="utf-8")
    return search_yaml, retrain_yaml


def _retrain_args(tmp: Path, config: Path, out: Path) -> list[str]:
    return ["retrain", str(tmp / "search"), "--config", str(config), "--out", str(out),
            "--baselines", str(GENOTYPES / "bert.abz"), "--lrs", "1e-3", "3e-3", "--sweep-steps", "3",
            "--glue", "SST-2", "--glue-data", str(tmp / "glue"), "--finetune-seeds", "2",
            "--finetune-lrs", "1e-3", "2e-3", "--select-examples", "8"]


@pytest.fixture(scope="module")
def retrained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("retrain")
    search_yaml, retrain_yaml = _configs(tmp)
    write_sst2(tmp / "glue")
    assert main(["search", "--config", str(search_yaml), "--out", str(tmp / "search")]) == 0
    assert main(_retrain_args(tmp, retrain_yaml, tmp / "out")) == 0
    return tmp, retrain_yaml, json.loads((tmp / "out" / "results.json").read_text())


def test_a_retrain_reports_every_arm_and_contrast(retrained: tuple[Path, Path, dict[str, Any]]) -> None:
    tmp, _, results = retrained
    names = [arm["name"] for arm in results["arms"]]
    assert names == ["found-1", "bert"]
    found = results["arms"][0]
    assert found["rescored_loss"] is not None and math.isfinite(found["rescored_loss"])  # re-scored, not raw
    assert all(abs(arm["params_ratio"] - 1) <= 0.02 for arm in results["arms"])
    assert set(results["lr_sweep"]) == {"found-1", "bert"}
    assert all(len(rows) == 2 for rows in results["lr_sweep"].values())
    assert {arm["lr"] for arm in results["arms"]} <= {1e-3, 3e-3}
    assert results["glue"]["SST-2"]["chosen_lr"]["bert"] in (1e-3, 2e-3)
    assert len(results["glue"]["SST-2"]["scores"]["bert"]["0"]) == 2  # two fine-tuning seeds
    endpoints = {c["endpoint"] for c in results["analysis"]["contrasts"]}
    assert endpoints == {"heldout_loss", "SST-2", "glue_average"}
    # every run is an ordinary run folder; the selection runs scored a slice of train, never dev
    select = json.loads((tmp / "out" / "runs" / "bert" / "seed0" / "glue" / "SST-2-select-lr0.001" / "eval.json"
                         ).read_text())
    assert select["split"] == "train-slice"
    final = json.loads((tmp / "out" / "runs" / "bert" / "seed0" / "glue" / "SST-2-ft0" / "eval.json").read_text())
    assert final["split"] == "dev"
    assert (tmp / "out" / "runs" / "found-1" / "seed0" / "final" / "config.json").is_file()
    report = (tmp / "out" / "report.md").read_text()
    assert "found-1 − bert" in report and "can and cannot show" in report
    # the same held-out blocks for every arm: the pre-training seed's own eval and the fixed one agree here
    for arm in names:
        run = results["pretrain"][arm]["0"]
        assert run["heldout_loss"] == pytest.approx(run["eval_loss"], abs=1e-5)


def test_resume_of_a_finished_retrain_changes_nothing_and_other_settings_are_refused(
        retrained: tuple[Path, Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    tmp, retrain_yaml, _ = retrained
    before = (tmp / "out" / "results.json").read_text()
    assert main([*_retrain_args(tmp, retrain_yaml, tmp / "out"), "--resume"]) == 0
    again = json.loads((tmp / "out" / "results.json").read_text())
    assert again["analysis"] == json.loads(before)["analysis"]
    capsys.readouterr()
    args = _retrain_args(tmp, retrain_yaml, tmp / "out")
    args[args.index("--finetune-seeds") + 1] = "3"
    assert main([*args, "--resume"]) == 1
    assert "retrain of another search, config or settings" in capsys.readouterr().err
    assert main(_retrain_args(tmp, retrain_yaml, tmp / "out")) == 1  # not empty, no --resume
    assert "is not empty" in capsys.readouterr().err


KILL_WHEN = "runs/bert/seed0/checkpoints/latest"


def test_a_retrain_killed_mid_run_resumes_to_the_same_results(
        retrained: tuple[Path, Path, dict[str, Any]]) -> None:
    """SIGKILL once the baseline's pre-training has its first checkpoint (mid-run: it has 6 steps, checkpoints
    every 2), then --resume: the same figures as the retrain that never stopped."""
    tmp, retrain_yaml, results = retrained
    out = tmp / "killed"
    command = [sys.executable, "-m", "autobert_zero.cli", *_retrain_args(tmp, retrain_yaml, out)]
    proc = subprocess.Popen(command, cwd=REPO, env=subprocess_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (out / KILL_WHEN).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the retrain ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (out / "results.json").exists()
    assert main([*_retrain_args(tmp, retrain_yaml, out), "--resume"]) == 0
    resumed = json.loads((out / "results.json").read_text())
    assert resumed["analysis"] == results["analysis"]
    assert resumed["lr_sweep"] == results["lr_sweep"]


def test_bad_inputs_get_one_clear_error_and_write_nothing(
        retrained: tuple[Path, Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tmp, retrain_yaml, _ = retrained

    def fails(args: list[str], message: str, code: int = 1) -> None:
        out = tmp_path / "out"
        assert main(args) == code
        assert message in " ".join(capsys.readouterr().err.split())
        assert not out.exists()

    base = _retrain_args(tmp, retrain_yaml, tmp_path / "out")
    not_search = [*base]
    not_search[1] = str(tmp_path)
    fails(not_search, "is not a search folder")
    fails([*base[:-2], "--select-examples", "8", "--top", "50"], "is more than the")
    (bad := tmp_path / "bad.abz").write_text("layers { 1: attention nowhere }")
    fails([*base, "--baselines", str(bad)], "", code=2)
    missing_glue = [*base]
    missing_glue[missing_glue.index("--glue") + 1] = "CoLA"
    fails(missing_glue, "CoLA/train.tsv not found")
    fails([*base, "--seeds", "2"], "needs data.eval_corpus")
    fails([*base, "--resume"], "holds no retrain to resume")


@pytest.mark.slow  # about 30 s: two worker processes
def test_two_workers_split_the_runs_and_give_the_one_worker_results(
        retrained: tuple[Path, Path, dict[str, Any]]) -> None:
    """A second `abz retrain --resume` on the same folder works beside the first: each run is claimed by one of
    them (no run twice), and the results equal the one-worker retrain's. The first worker is paused (SIGSTOP)
    until the second has finished a run of its own, so both surely take part however fast the runs are."""
    tmp, retrain_yaml, results = retrained
    out = tmp / "two"
    command = [sys.executable, "-m", "autobert_zero.cli", *_retrain_args(tmp, retrain_yaml, out)]
    env = subprocess_env()  # the threads of the kill test's child, whose figures equal the in-process run's
    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.monotonic() + 120
    while not (out / "retrain.json").exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGSTOP)
    finished = len(list(out.glob("runs/*/*/summary.json")))
    second = subprocess.Popen([*command, "--resume"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    while len(list(out.glob("runs/*/*/summary.json"))) == finished and second.poll() is None:
        time.sleep(0.05)
    first.send_signal(signal.SIGCONT)
    _, second_err = second.communicate(timeout=300)
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, first_err[-2000:] + second_err[-2000:]

    def ran(err: str) -> set[str]:
        return {line.split("] ", 1)[1].rsplit(":", 1)[0] for line in err.splitlines() if "(worker pid " in line}

    assert ran(first_err) and ran(second_err), (first_err[-1000:], second_err[-1000:])
    assert not ran(first_err) & ran(second_err)
    assert json.loads((out / "results.json").read_text())["analysis"] == results["analysis"]


def test_export_of_a_retrain_carries_the_trained_weights(
        retrained: tuple[Path, Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch
    from transformers import AutoModelForMaskedLM

    tmp, _, results = retrained
    out = tmp_path / "export"
    assert main(["export", str(tmp / "out"), "--top", "2", "--out", str(out)]) == 0
    best = min(results["arms"], key=lambda a: results["analysis"]["arms"][a["name"]]["heldout_loss"]["mean"])
    card = (out / "rank1" / "README.md").read_text()
    assert best["name"] in card and "pre-trained from scratch by `abz retrain`" in card
    assert "held-out MLM loss" in card and "SST-2" in card
    exported = AutoModelForMaskedLM.from_pretrained(str(out / "rank1" / "hf"))
    trained = AutoModelForMaskedLM.from_pretrained(str(tmp / "out" / "runs" / best["name"] / "seed0" / "final"))
    assert all(torch.equal(a, b) for a, b in zip(exported.state_dict().values(), trained.state_dict().values(),
                                                 strict=True))
    assert main(["export", str(tmp / "out"), "--top", "1", "--all-seeds", "--out", str(tmp_path / "all")]) == 0
    assert (tmp_path / "all" / "rank1" / "hf-seed0" / "config.json").is_file()
    capsys.readouterr()
    assert main(["export", str(tmp / "out"), "--top", "3", "--out", str(tmp_path / "x")]) == 1
    assert "is more than the 2 arms" in capsys.readouterr().err
    assert main(["export", str(tmp / "out"), "--untrained", "--out", str(tmp_path / "y")]) == 1
    assert "is a retrain" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_retrain_continues_from_its_small_result_files_alone(
        retrained: tuple[Path, Path, dict[str, Any]], tmp_path: Path) -> None:
    """Another machine with only the committed result files (no models, no checkpoints) and one fine-tune
    missing: the resume trains the model that fine-tune needs again, to the same weights, and every figure
    comes out the same."""
    import shutil

    tmp, retrain_yaml, results = retrained
    out = tmp_path / "copy"
    keep = {"summary.json", "heldout.json", "eval.json", "metrics.jsonl", "retrain.json"}
    for path in (tmp / "out").rglob("*"):
        if path.is_file() and path.name in keep and "final" not in path.parts and "checkpoints" not in path.parts:
            (out / path.relative_to(tmp / "out")).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out / path.relative_to(tmp / "out"))
    (out / "runs" / "bert" / "seed0" / "glue" / "SST-2-ft1" / "eval.json").unlink()
    assert main([*_retrain_args(tmp, retrain_yaml, out), "--resume"]) == 0
    resumed = json.loads((out / "results.json").read_text())
    assert resumed["analysis"] == results["analysis"]
    assert (out / "runs" / "bert" / "seed0" / "final" / "config.json").is_file()  # trained again for the fine-tune
    assert not (out / "runs" / "found-1" / "seed0" / "final").exists()  # not needed: not trained again


@pytest.mark.slow  # about 40 s: two processes under the deepspeed launcher
def test_under_the_launcher_each_process_is_a_worker(retrained: tuple[Path, Path, dict[str, Any]]) -> None:
    """`deepspeed --num_gpus 2 ... retrain`: the two processes split the runs (none runs twice) and the results
    equal the one-process retrain's."""
    import shutil as sh

    from autobert_zero.train.engine import free_port

    tmp, retrain_yaml, results = retrained
    out = tmp / "launched"
    launcher = sh.which("deepspeed") or str(Path(sys.executable).with_name("deepspeed"))
    done = subprocess.run([launcher, "--num_gpus", "2", "--master_port", str(free_port()), "--no_local_rank",
                           "--module", "autobert_zero.cli", *_retrain_args(tmp, retrain_yaml, out)],
                          cwd=REPO, capture_output=True, text=True, env=subprocess_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in (done.stdout + done.stderr).splitlines() if "(worker pid " in line]
    ran = [line.split("] ", 1)[1].rsplit(":", 1)[0] for line in lines]
    assert ran and len(ran) == len(set(ran)), ran  # every run once
    assert len({line.rsplit("pid ", 1)[1] for line in lines}) == 2  # by both processes
    assert json.loads((out / "results.json").read_text())["analysis"] == results["analysis"]


def test_the_results_page_shows_a_running_retrain_as_the_retrain_itself_decides(
        retrained: tuple[Path, Path, dict[str, Any]]) -> None:
    """RESULTS.md's interim view of a retrain (lr sweep, finished seeds) reads the run folders with the
    retrain's own scoring, so it names the same lr and the same held-out losses as results.json."""
    import benchmarks.results_md as results_md

    tmp, _, results = retrained
    text = results_md.retrain_progress(tmp / "out")
    for arm in results["arms"]:
        sweep_row, seed_row, glue_row = [line for line in text.splitlines() if line.startswith(f"| {arm['name']} |")]
        glue = statistics.fmean(results["glue"]["SST-2"]["scores"][arm["name"]]["0"])
        assert glue_row == f"| {arm['name']} | {glue:.4f} (n=1) |"
        assert sweep_row.split(" | ")[-1].rstrip(" |") == f"{arm['lr']:g}"
        swept = {r["lr"]: r["score"] for r in results["lr_sweep"][arm["name"]]}
        assert sweep_row.split(" | ")[1:3] == [f"{swept[1e-3]:.3f}", f"{swept[3e-3]:.3f}"]
        assert seed_row.split(" | ")[1:3] == ["1 / 1", f"{results['pretrain'][arm['name']]['0']['heldout_loss']:.4f}"]
    assert results_md.retrain_progress(tmp / "nothing") == ""


def test_the_end_to_end_plots_are_drawn_from_a_retrains_small_files(
        retrained: tuple[Path, Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmarks.plot_end_to_end as plot_end_to_end

    tmp, _, results = retrained
    monkeypatch.setattr(plot_end_to_end, "RETRAIN", tmp / "out")
    monkeypatch.setattr(plot_end_to_end, "PLOTS", tmp_path / "plots")
    plot_end_to_end.main()
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {"loss_curves.png", "scores.png"}
    plan = json.loads((tmp / "out" / "retrain.json").read_text())
    heldout = {a["name"]: {0: results["pretrain"][a["name"]]["0"]} for a in plan["arms"]}
    finished = plot_end_to_end.scores(tmp / "out", plan, heldout, [0])["analysis"]
    assert finished == results["analysis"] and "SST-2" in next(iter(finished["arms"].values()))
    running = plot_end_to_end.scores(tmp_path / "plots", plan, heldout, [0])["analysis"]  # no results.json there
    assert {endpoint for by in running["arms"].values() for endpoint in by} == {"heldout_loss"}
    assert running["arms"]["bert"]["heldout_loss"]["mean"] == pytest.approx(heldout["bert"][0]["heldout_loss"])
    monkeypatch.setattr(plot_end_to_end, "RETRAIN", tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "retrain.json").write_text((tmp / "out" / "retrain.json").read_text())
    with pytest.raises(SystemExit, match="no pre-training seed is finished"):
        plot_end_to_end.main()
