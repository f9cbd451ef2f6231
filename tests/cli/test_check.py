"""`abz check`: exit codes, the text and JSON reports, and any input at all without a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autobert_zero.cli import main
from tests.support.paths import FIXTURES, GENOTYPES


def run_check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_valid_files_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_check(capsys, str(GENOTYPES / "bert.abz"), str(GENOTYPES / "autobert_zero.abz"))
    assert code == 0
    assert out.count(": ok") == 2


def test_invalid_file_prints_position_and_exits_two(capsys: pytest.CaptureFixture[str]) -> None:
    path = FIXTURES / "invalid" / "cycle.abz"
    code, out, _ = run_check(capsys, str(GENOTYPES / "bert.abz"), str(path))
    assert code == 2
    assert f"{path}:4:18: error[cycle]: bindings form a cycle: x → y → x" in out


def test_json_report(capsys: pytest.CaptureFixture[str]) -> None:
    bad = FIXTURES / "invalid" / "unknown_op.abz"
    code, out, _ = run_check(capsys, "--json", str(GENOTYPES / "bert.abz"), str(bad))
    assert code == 2
    report = json.loads(out)
    assert [r["valid"] for r in report] == [True, False]
    assert len(report[0]["id"]) == 64 and report[0]["errors"] == []
    assert report[1]["id"] is None
    assert report[1]["errors"] == [{"line": 3, "column": 12, "code": "unknown-op",
                                    "message": report[1]["errors"][0]["message"]}]
    assert set(report[0]) == {"file", "valid", "id", "errors"}


DEEP = b"attention a { return " + b"neg(" * 5000 + b"Q" + b")" * 5000 + b" }"


@pytest.mark.parametrize("content", [b"", b"\x00\x01\x02junk", b"\xff\xfe\xfd", b"attention a { return",
                                     b"backbone {" * 500, b"}" * 10_000, DEEP, "ü€𝄞".encode(), b"\r\n\r\n"])
def test_any_input_gets_a_report_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 content: bytes) -> None:
    path = tmp_path / "input.abz"
    path.write_bytes(content)
    code, out, err = run_check(capsys, "--json", str(path))
    assert code == 2
    report = json.loads(out)
    assert report[0]["valid"] is False and report[0]["errors"]
    assert "Traceback" not in out + err


def test_missing_file_and_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_check(capsys, str(tmp_path / "missing.abz"), str(tmp_path))
    assert code == 2
    assert out.count("error[io]") == 2


def test_console_script_runs_in_a_fresh_process() -> None:
    result = subprocess.run([sys.executable, "-m", "autobert_zero", "check", str(FIXTURES / "invalid" / "arity.abz")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "error[arity]: add takes 2 operands, got 1" in result.stdout
    assert "Traceback" not in result.stderr
