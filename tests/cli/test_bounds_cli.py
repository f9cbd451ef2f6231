"""Every count or size the command line takes is bounded before anything is allocated (hardening issue #18,
item 16): a value out of bounds is a clean error (exit 1) stating the bounds, and no output folder is made."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from autobert_zero.cli import main
from tests.support.training import write_genotype


@pytest.fixture(scope="module")
def search_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished search (synthetic fitness: seconds)."""
    root = tmp_path_factory.mktemp("search")
    genotype = write_genotype(root, layers=2)
    config = root / "search.yaml"
    config.write_text(yaml.safe_dump({"genotype": str(genotype), "seed": 0, "logging": {"progress_bar": False},
                                      "search": {"evaluations": 12, "population_size": 4, "tournament_size": 2,
                                                 "fitness": "synthetic"}}), encoding="utf-8")
    assert main(["search", "--config", str(config), "--out", str(root / "search")]) == 0
    return root / "search"


@pytest.mark.parametrize("flags, message", [
    (["--top", "100000000"], "--top must be at least 1 and at most 1,000, got 100000000"),
    (["--top", "0"], "--top must be at least 1"),
    (["--vocab-size", "0"], "'--vocab-size' must be between 6 and 1,000,000, got 0"),
    (["--vocab-size", "100000000"], "'--vocab-size' must be between 6 and 1,000,000"),
    (["--seed", str(2**40)], "'--seed' must be non-negative and at most 4,294,967,295"),
    (["--hidden", "0"], "'--hidden' must be positive"),
])
def test_export_of_a_search_checks_what_compile_checks(search_dir: Path, tmp_path: Path, flags: list[str],
                                                       message: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "best"
    assert main(["export", str(search_dir), "--out", str(out), "--untrained", *flags]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert message in err and "internal error" not in err
    assert not out.exists()


def test_export_refuses_sizes_no_machine_holds_before_writing(search_dir: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "best"
    assert main(["export", str(search_dir), "--out", str(out), "--untrained", "--hidden", "65536", "--heads", "1",
                 "--intermediate", "262144", "--vocab-size", "1000000"]) == 1
    assert "more than this machine's" in " ".join(capsys.readouterr().err.split())
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["audit", "--supernet", "nowhere", "--candidates", "1000000000", "--out", "x"],
     "--candidates must be at least 4 candidates and at most 1,000, got 1000000000"),
    (["evaluate", "--steps", "-1", "g.abz"], "'--steps' must be non-negative"),
    (["pretrain", "--config", "c.yaml", "--out", "x", "--max-steps", "0"], "'--max-steps' must be positive"),
    (["show", "g.abz", "--seq-len", "100000000"], "'--seq-len' must be positive and at most 65,536"),
    (["report", "r", "--top", "1" * 5000], "expected an integer, got '1111"),
])
def test_counts_are_bounded_when_the_command_line_is_read(argv: list[str], message: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as usage:  # argparse's own usage errors (not an integer at all)
        code = usage.code
    err = " ".join(capsys.readouterr().err.split())
    assert code in (1, 2) and message in err and len(err) < 1000
    assert list(tmp_path.iterdir()) == []
