"""The `abz` parser as a whole: every family registered, every command's `--help`, and the exit-code table
(`autobert_zero.cli.exit_codes.ExitCode`) for each kind of failure, in-process and through `python -m`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from autobert_zero.cli import FAMILIES, commands, main
from autobert_zero.cli import genotype as cli_genotype
from autobert_zero.cli.exit_codes import ExitCode
from autobert_zero.errors import ConfigError, GenotypeError

EXPECTED = {"check": "genotype", "show": "genotype", "compile": "genotype", "search": "search", "resume": "search",
            "report": "search", "export": "search", "pretrain": "train", "finetune": "train",
            "supernet": "supernet", "evaluate": "supernet", "audit": "audit", "retrain": "retrain"}
"""Every command a user relies on, with its family module (a dropped or moved command fails here)."""


def test_every_family_is_registered_with_its_commands() -> None:
    found = commands()
    assert {name: module.rpartition(".")[2] for name, module in found.items()} == EXPECTED
    assert list(found) == list(EXPECTED)  # the `abz --help` order
    assert set(found.values()) == {family.__name__ for family in FAMILIES}  # no family registers nothing


def test_abz_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == ExitCode.OK
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("    ")}
    assert set(EXPECTED) <= listed, set(EXPECTED) - listed


@pytest.mark.parametrize("command", list(EXPECTED))
def test_every_command_help_exits_zero(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == ExitCode.OK
    out = capsys.readouterr().out
    assert out.startswith(f"usage: abz {command} ") and "options:" in out


@pytest.mark.parametrize("argv, said", [(["frobnicate"], "invalid choice: 'frobnicate'"),
                                        ([], "the following arguments are required: COMMAND"),
                                        (["compile", "g.abz"], "the following arguments are required: --out"),
                                        (["compile", "g.abz", "--out", "o", "--head", "huge"], "invalid choice"),
                                        (["show", "g.abz", "--hidden", "wide"], "invalid int value")])
def test_bad_usage_exits_two(argv: list[str], said: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == ExitCode.USAGE == 2  # argparse's own exit status is the one documented
    err = capsys.readouterr().err
    assert said in err and err.startswith("usage: abz")


@pytest.mark.parametrize("argv", [["show", "{missing}"], ["compile", "{missing}", "--out", "{out}"],
                                  ["export", "{missing}", "--out", "{out}"]])
def test_a_missing_genotype_file_is_one_message_and_writes_nothing(
        argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing, out = tmp_path / "missing.abz", tmp_path / "out"
    code = main([a.format(missing=missing, out=out) for a in argv])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE  # an unreadable genotype is an invalid one (`abz check` reports error[io])
    assert f"{missing}:1:1: error[io]: cannot read" in err and "Traceback" not in err
    assert not out.exists()


def _genotype_error() -> GenotypeError:
    from autobert_zero.grammar import parse_with_diagnostics

    _, diagnostics = parse_with_diagnostics("attention a { return frobnicate(Q) }\n", "g.abz")
    return GenotypeError(diagnostics, "g.abz")


FAILURES: list[tuple[Callable[[], BaseException], ExitCode, str]] = [
    (_genotype_error, ExitCode.USAGE, "abz check: invalid genotype:\ng.abz:1:22: error[unknown-op]"),
    (lambda: ConfigError("--top must be at least 1"), ExitCode.RUNTIME, "abz check: error: --top must be at least 1"),
    (lambda: FileNotFoundError(2, "No such file or directory", "x.txt"), ExitCode.RUNTIME,
     "abz check: error: No such file or directory (x.txt)"),
    (KeyboardInterrupt, ExitCode.INTERRUPTED, "abz check: interrupted"),
    (lambda: ZeroDivisionError("boom"), ExitCode.INTERNAL,
     "abz check: internal error: ZeroDivisionError: boom (set ABZ_DEBUG=1 for a traceback)"),
]


@pytest.mark.parametrize("make, code, said", FAILURES, ids=[f[1].name for f in FAILURES])
def test_each_kind_of_failure_gets_its_exit_code(make: Callable[[], BaseException], code: ExitCode, said: str,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    error = make()

    def fail(args: object) -> int:
        raise error

    monkeypatch.setattr(cli_genotype, "cmd_check", fail)  # `register` looks the handler up when it runs
    monkeypatch.delenv("ABZ_DEBUG", raising=False)
    assert main(["check", "g.abz"]) == code
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err


def test_abz_debug_shows_the_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(args: object) -> int:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(cli_genotype, "cmd_check", fail)
    monkeypatch.setenv("ABZ_DEBUG", "1")
    with pytest.raises(ZeroDivisionError, match="boom"):
        main(["check", "g.abz"])


def test_the_exit_codes_are_the_documented_ones() -> None:
    """The values README's "Exit codes" paragraph promises (scripts test them)."""
    assert {c.name: int(c) for c in ExitCode} == {"OK": 0, "RUNTIME": 1, "USAGE": 2, "INTERNAL": 3,
                                                  "INTERRUPTED": 130}


def test_python_m_abz_exits_with_the_code(tmp_path: Path) -> None:
    """The status reaches the shell through `sys.exit(main())` (an `ExitCode` is an int)."""
    for argv, code in ((["frobnicate"], 2), (["show", str(tmp_path / "missing.abz")], 2),
                       (["report", str(tmp_path / "nothing")], 1)):
        proc = subprocess.run([sys.executable, "-m", "autobert_zero", *argv], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == code, proc.stderr
        assert proc.stderr.strip() and "Traceback" not in proc.stderr
