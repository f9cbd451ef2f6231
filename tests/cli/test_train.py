"""`abz pretrain` / `abz finetune`: argument wiring through `register`, and clean errors for bad input."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from autobert_zero.cli.train import register
from autobert_zero.errors import ConfigError, DataError
from tests.support.training import REPO, subprocess_env, tiny_yaml


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="abz")
    register(p.add_subparsers(dest="command", required=True))
    return p


def test_register_adds_both_commands_with_their_options() -> None:
    args = parser().parse_args(["pretrain", "--config", "c.yaml", "--out", "o", "--corpus", "a.txt", "--corpus",
                                "b", "--max-steps", "3", "--resume", "--genotype", "g.abz"])
    assert (args.config, args.out, args.corpus, args.max_steps, args.resume, args.genotype) == (
        "c.yaml", "o", ["a.txt", "b"], 3, True, "g.abz")
    assert callable(args.func)
    args = parser().parse_args(["finetune", "--config", "c.yaml", "--task", "RTE", "--data-dir", "d", "--init", "i",
                                "--out", "o"])
    assert (args.task, args.data_dir, args.init) == ("RTE", "d", "i") and callable(args.func)
    with pytest.raises(SystemExit):
        parser().parse_args(["finetune", "--config", "c.yaml", "--task", "RTE"])  # --init and --out missing


def test_pretrain_then_finetune_through_the_parser(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tiny_yaml(tmp_path)
    args = parser().parse_args(["pretrain", "--config", str(config), "--out", str(tmp_path / "pt"),
                                "--max-steps", "2"])
    assert args.func(args) == 0
    assert "pre-trained 2 steps" in capsys.readouterr().out
    assert [r["step"] for r in map(json.loads, (tmp_path / "pt" / "metrics.jsonl").read_text().splitlines())] == [1, 2]
    glue = tmp_path / "glue" / "WNLI"
    glue.mkdir(parents=True)
    for split in ("train", "dev"):
        (glue / f"{split}.tsv").write_text("index\tsentence1\tsentence2\tlabel\n"
                                           + "".join(f"{i}\tIt rained.\tIt was wet.\t{i % 2}\n" for i in range(16)))
    args = parser().parse_args(["finetune", "--config", str(config), "--task", "wnli", "--data-dir",
                                str(tmp_path / "glue"), "--init", str(tmp_path / "pt" / "final"),
                                "--out", str(tmp_path / "ft")])
    assert args.func(args) == 0
    assert json.loads((tmp_path / "ft" / "eval.json").read_text())["task"] == "WNLI"


def test_handlers_raise_project_errors(tmp_path: Path) -> None:
    args = parser().parse_args(["pretrain", "--config", str(tmp_path / "none.yaml"), "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match="config file not found"):
        args.func(args)
    args = parser().parse_args(["finetune", "--config", str(tiny_yaml(tmp_path)), "--task", "squad", "--init",
                                str(tmp_path), "--out", str(tmp_path / "o")])
    with pytest.raises(DataError, match="valid tasks: CoLA, SST-2"):
        args.func(args)


def run_abz(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "autobert_zero.cli", *argv], cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)


def test_abz_prints_one_clean_paragraph_for_bad_input(tmp_path: Path) -> None:
    config = tmp_path / "typo.yaml"
    config.write_text("pretrain:\n  max_step: 10\n")
    proc = run_abz("pretrain", "--config", str(config), "--out", str(tmp_path / "o"))
    assert proc.returncode == 1
    assert "unknown key 'pretrain.max_step'" in proc.stderr and "did you mean 'pretrain.max_steps'" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_abz("finetune", "--config", str(tiny_yaml(tmp_path)), "--task", "MNLI-mm", "--init", str(tmp_path),
                   "--out", str(tmp_path / "o"))
    assert proc.returncode == 1 and "unknown GLUE task 'MNLI-mm'" in proc.stderr and "Traceback" not in proc.stderr


def test_a_missing_or_invalid_genotype_file_exits_as_abz_compile_does(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from autobert_zero.cli import main

    config = str(tiny_yaml(tmp_path))
    bad = tmp_path / "bad.abz"
    bad.write_text("attention a { return matmul(Q, K) }\nbackbone { attention a }\n", encoding="utf-8")
    for genotype in (str(tmp_path / "missing.abz"), str(bad)):
        expected = main(["compile", genotype, "--out", str(tmp_path / "compiled")])
        assert expected == 2
        assert main(["pretrain", "--config", config, "--genotype", genotype, "--out", str(tmp_path / "pt")]) == expected
        missing_host = tiny_yaml(tmp_path, genotype=genotype)
        assert main(["supernet", "--config", str(missing_host), "--out", str(tmp_path / "sn")]) == expected
        err = capsys.readouterr().err
        assert "Traceback" not in err and "internal error" not in err
        assert not (tmp_path / "pt").exists() and not (tmp_path / "sn").exists()


def test_a_run_killed_before_its_first_checkpoint_is_told_to_restart_with_force(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from autobert_zero.cli import main

    config = str(tiny_yaml(tmp_path))
    out = tmp_path / "pt"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1, "loss": 6.2}\n')  # what a kill before step 4 leaves
    assert main(["pretrain", "--config", config, "--out", str(out), "--max-steps", "2"]) == 1
    assert "pass --resume" in capsys.readouterr().err  # the folder holds a run: resuming is suggested first
    assert main(["pretrain", "--config", config, "--out", str(out), "--max-steps", "2", "--resume"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "stopped before its first checkpoint" in err and "with --force instead of --resume" in err
    assert main(["pretrain", "--config", config, "--out", str(out), "--max-steps", "2", "--force"]) == 0
    assert "pre-trained 2 steps" in capsys.readouterr().out
