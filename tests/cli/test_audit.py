"""`abz audit` end to end on a microscopic supernet (2 layers, hidden 32), its resume from the reference cache,
and its bad-input paths (one paragraph, non-zero exit, no traceback)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from autobert_zero.cli import main
from autobert_zero.train.audit.run import fill_reference, load_audit_config, reference_cache
from autobert_zero.train.supernet import load_supernet, train_supernet
from tests.support.training import tiny_config, tiny_yaml

AUDIT = {"reference_steps": 4, "reference_warmup_steps": 1, "biws_steps": [0, 2], "bootstrap_samples": 50}
ESTIMATORS = {"biws_k0", "biws_k2", "scratch_k2", "params", "combo_biws_k0", "combo_biws_k2", "hurdle_biws_k2"}


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
