"""`abz audit` end to end on a microscopic supernet (2 layers, hidden 32), its resume from the caches (identical
figures), `--from-search` over a synthetic search with two supernets and an exposure control, and its bad-input
paths (one paragraph, non-zero exit, no traceback)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from autobert_zero.cli import main
from autobert_zero.errors import ConfigError
from autobert_zero.train.audit.run import (
    double_reference_config,
    fill_reference,
    load_audit_config,
    reference_cache,
    reference_convergence,
)
from autobert_zero.train.supernet import load_supernet, train_supernet
from tests.support.training import tiny_config, tiny_yaml

AUDIT = {"reference_steps": 4, "reference_warmup_steps": 1, "biws_steps": [0, 2], "bootstrap_samples": 50}
ESTIMATORS = {"biws_k0", "biws_k2", "scratch_k2", "params", "group_rule", "combo_biws_k0", "combo_biws_k2",
              "hurdle_biws_k2", "proxy_init_loss", "proxy_grad_norm", "proxy_synflow"}
FIGURES = {"kendall_tau", "spearman_rho", "top_half_tau", "top_quarter_tau", "precision_at_5", "regret_at_1",
           "regret_at_5"}


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audit")


@pytest.fixture(scope="module")
def config(tmp: Path) -> Path:
    return tiny_yaml(tmp, audit={**AUDIT, "cache_dir": str(tmp / "cache")},
                     pretrain={"max_steps": 4, "checkpoint_every": 4})


@pytest.fixture(scope="module")
def supernet_dir(tmp: Path, config: Path) -> Path:
    train_supernet(tiny_config(tmp, pretrain={"max_steps": 4, "checkpoint_every": 4}), tmp / "supernet")
    return tmp / "supernet"


def _run(*args: str) -> int:
    return main(["audit", "--quiet", *args])


def test_audit_end_to_end_and_resume(tmp: Path, config: Path, supernet_dir: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp / "out"
    assert _run("--supernet", str(supernet_dir), "--config", str(config), "--candidates", "4", "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "kendall tau" in printed and "noise ceiling" in printed and "audit.json" in printed
    assert "goal (top¼ τ ≥" in printed  # issue #15 §2's goal, checked on the report
    report = json.loads((out / "audit.json").read_text(encoding="utf-8"))
    assert (out / "audit.png").read_bytes()[:4] == b"\x89PNG"
    assert set(report["estimators"]) == ESTIMATORS
    for figures in report["estimators"].values():
        assert {"kendall_tau", "spearman_rho", "top_half_tau", "seconds_per_candidate"} <= set(figures)
        assert set(figures["kendall_tau"]) == {"value", "low", "high"}
    assert "noise_ceiling_tau" in report and report["reference"]["steps"] == 4
    assert [c["kind"] for c in report["candidates"]] == ["bert", "figure7", "neighbour", "random"]
    assert len({c["id"] for c in report["candidates"]}) == 4
    for c in report["candidates"]:
        assert set(c["scores"]) == ESTIMATORS and set(c["reference"]["seeds"]) == {"0", "1"}
        assert c["genotype"].rstrip().endswith("}") and c["params"] > 0
    matched = report["estimators"]["scratch_k2"]
    assert matched["matched_to"] == "biws_k2" and matched["steps"] >= 1
    assert matched["steps"] <= matched["max_steps"] == report["reference"]["steps"]  # never past the reference

    # every reference run is on disk: a second audit (another out folder) trains no reference again
    cfg = load_audit_config(supernet_dir, config)
    cache = reference_cache(cfg, load_supernet(supernet_dir, cfg)[1])
    assert len(list(cache.folder.glob("*.json"))) == 8
    stamp = {p.name: p.stat().st_mtime_ns for p in cache.folder.glob("*.json")}
    again = tmp / "again"
    assert _run("--supernet", str(supernet_dir), "--config", str(config), "--candidates", "4", "--out",
                str(again)) == 0
    assert {p.name: p.stat().st_mtime_ns for p in cache.folder.glob("*.json")} == stamp
    second = json.loads((again / "audit.json").read_text(encoding="utf-8"))
    assert [c["reference"] for c in second["candidates"]] == [c["reference"] for c in report["candidates"]]
    # ... and every figure is identical: the estimates and the cost timing come from their cache too
    for key in ("estimators", "paired_differences", "reference", "cost_timing", "verdict", "candidates"):
        assert second[key] == report[key], key
    for figures in report["estimators"].values():
        assert set(figures["figures"]) >= FIGURES and figures["cost"]["search_candidates"] == 300

    # an existing audit folder is refused without --force and replaced with it
    capsys.readouterr()
    assert _run("--supernet", str(supernet_dir), "--config", str(config), "--candidates", "4", "--out",
                str(out)) == 1
    err = capsys.readouterr().err
    assert "not empty" in err and "--force" in err and "--resume" not in err  # abz audit has no --resume


def test_fill_reference_without_supernet_gives_the_audits_entries(tmp: Path, config: Path,
                                                                   supernet_dir: Path) -> None:
    cfg = load_audit_config(supernet_dir, config)
    audit_cache = reference_cache(cfg, load_supernet(supernet_dir, cfg)[1]).folder
    assert len(list(audit_cache.glob("*.json"))) == 8  # written by the end-to-end test above
    folder = fill_reference(4, config, cache_dir=str(tmp / "cache2"), show=False)
    assert folder.name == audit_cache.name  # same key: the audit would find these
    for path in audit_cache.glob("*.json"):
        mine, theirs = (json.loads(p.read_text(encoding="utf-8")) for p in (folder / path.name, path))
        assert mine["outcome"]["eval_loss"] == theirs["outcome"]["eval_loss"]


def test_a_second_process_fills_the_convergence_checks_longer_references(tmp: Path, config: Path,
                                                                           supernet_dir: Path) -> None:
    report = json.loads((tmp / "out" / "audit.json").read_text(encoding="utf-8"))  # the end-to-end test's
    cfg = load_audit_config(supernet_dir, config)
    double = reference_cache(double_reference_config(cfg), load_supernet(supernet_dir, cfg)[1]).folder
    assert not double.exists()
    fill_reference(4, config, show=False, convergence_subset=3)  # the reference is cached: only the 2× runs
    assert len(list(double.glob("*.json"))) == 3 * 2  # 3 candidates × reference seeds 0 and 1
    stamp = {p.name: p.stat().st_mtime_ns for p in double.glob("*.json")}
    check = reference_convergence(report, supernet_dir, cfg, subset=3, show=False)
    assert {p.name: p.stat().st_mtime_ns for p in double.glob("*.json")} == stamp  # the same subset: no run again
    assert check["scored_at_both_budgets"] == 3 and (check["steps"], check["double_steps"]) == (4, 8)
    assert set(check["subset"]) <= {c["name"] for c in report["candidates"]} and -1 <= check["tau"] <= 1
    with pytest.raises(ConfigError, match="at least 3 scored candidates"):
        reference_convergence(report, supernet_dir, cfg, subset=2, show=False)


@pytest.mark.parametrize(("args", "message"), [
    (["--candidates", "0"], "at least 4 candidates"),
    (["--candidates", "3"], "at least 4 candidates"),
    (["--candidates", "many"], "invalid int value"),
])
def test_bad_candidate_counts(tmp: Path, config: Path, supernet_dir: Path, capsys: pytest.CaptureFixture[str],
                              args: list[str], message: str) -> None:
    code = None
    try:
        code = _run("--supernet", str(supernet_dir), "--config", str(config), "--out", str(tmp / "bad"), *args)
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code in (1, 2) and message in err and "Traceback" not in err
    assert not (tmp / "bad" / "audit.json").exists()


def test_missing_and_corrupt_supernet_folders(tmp: Path, config: Path, supernet_dir: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("--supernet", str(tmp / "nowhere"), "--candidates", "4", "--out", str(tmp / "o1")) == 1
    err = capsys.readouterr().err
    assert "no such folder" in err and "Traceback" not in err

    damaged = tmp / "damaged"
    shutil.copytree(supernet_dir, damaged)
    (damaged / "final" / "model.safetensors").write_bytes(b"\x00" * 100)
    assert _run("--supernet", str(damaged), "--config", str(config), "--candidates", "4", "--out",
                str(tmp / "o2")) == 1
    err = capsys.readouterr().err
    assert "could not be loaded" in err and "Traceback" not in err and "\n\n" not in err.strip()
    assert err.count("abz audit: error:") == 1 and not (tmp / "o2").exists()

    (tmp / "wider").mkdir()
    wider = tiny_yaml(tmp / "wider", model={"hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 64,
                                            "max_position_embeddings": 64})
    assert _run("--supernet", str(supernet_dir), "--config", str(wider), "--candidates", "4", "--out",
                str(tmp / "o4")) == 1
    err = capsys.readouterr().err
    assert "sizes disagree" in err and "hidden_size" in err and "Traceback" not in err

    (damaged / "config.json").write_text("{oops", encoding="utf-8")
    assert _run("--supernet", str(damaged), "--candidates", "4", "--out", str(tmp / "o3")) == 1
    assert "not valid JSON" in capsys.readouterr().err


@pytest.fixture(scope="module")
def search_dir(tmp: Path) -> Path:
    """A finished synthetic 2-layer search (no training), written by the search itself."""
    from tests.train.audit.test_from_search import write_search

    return write_search(tmp / "search")


@pytest.fixture(scope="module")
def second_supernet(tmp: Path) -> Path:
    """Another supernet of the same config and tokenizer (a longer run)."""
    train_supernet(tiny_config(tmp, pretrain={"max_steps": 6, "checkpoint_every": 6}), tmp / "supernet-b")
    return tmp / "supernet-b"


def test_audit_from_search_with_two_supernets_and_an_exposure_control(
        tmp: Path, config: Path, supernet_dir: Path, second_supernet: Path, search_dir: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp / "from-search"
    assert _run("--supernet", str(supernet_dir), "--supernet", str(second_supernet), "--config", str(config),
                "--candidates", "6", "--from-search", str(search_dir), "--exposure-control", "3",
                "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "lift" in printed and "paired τ differences" in printed
    report = json.loads((out / "audit.json").read_text(encoding="utf-8"))
    kinds = [c["kind"] for c in report["candidates"]]
    assert kinds.count("top") >= 2 and kinds.count("sibling") >= 3 and kinds.count("exposure") == 3
    assert len(kinds) == 9 and report["supernets"] == 2
    assert report["candidate_source"] == {"from_search": [str(search_dir)]}
    assert "group_rule" not in report["estimators"]  # no drawn groups in a search's candidates
    biws = report["estimators"]["biws_k2"]
    assert biws["supernets"] == 2 and set(biws["figures"]) >= FIGURES | {"sibling_tau", "exposure_lift"}
    assert report["exposure_control"]["members"] + len(report["excluded"]) >= 3
    assert "the weakest ok genotype" in report["exposure_control"]["base"]
    assert all(c["search_fitness"] is not None for c in report["candidates"] if c["kind"] != "exposure")
    assert len(report["candidates"][0]["scores_by_supernet"]["biws_k0"]) == 2


def test_bad_search_folders_are_refused_before_any_output(tmp: Path, config: Path, supernet_dir: Path,
                                                           search_dir: Path, capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    from tests.train.audit.test_from_search import write_search

    cases = [([str(write_search(tmp / "deep", evaluations=20, num_layers=3))], "3-layer candidates but the supernet "
                                                                             "has 2 layers"),
             ([str(write_search(tmp / "short", evaluations=4))], "4 distinct `ok` genotypes, fewer than "
                                                                  "--candidates 6"),
             ([str(write_search(tmp / "samples", evaluations=8))], "0 parents with at least 3 one-edit `ok` children"),
             ([str(tmp / "nowhere")], "no such folder")]
    (tmp / "empty").mkdir()
    cases += [([str(tmp / "empty")], "is not a readable search")]
    for folders, message in cases:
        out = tmp / "refused"
        assert _run("--supernet", str(supernet_dir), "--config", str(config), "--candidates", "6", "--from-search",
                    *folders, "--out", str(out)) == 1
        err = " ".join(capsys.readouterr().err.split())  # the message is wrapped to the terminal
        assert message in err and "Traceback" not in err and err.count("abz audit: error:") == 1, err
        assert not out.exists()
    assert _run("--supernet", str(supernet_dir), "--config", str(config), "--candidates", "4", "--from-search",
                str(search_dir), "--out", str(tmp / "refused")) == 1
    assert "--candidates 4 with --from-search" in " ".join(capsys.readouterr().err.split())
    assert _run("--supernet", str(supernet_dir), "--supernet", str(supernet_dir), "--config", str(config),
                "--candidates", "4", "--out", str(tmp / "refused")) == 1
    assert "given twice" in " ".join(capsys.readouterr().err.split())
