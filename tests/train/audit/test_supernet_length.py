"""`benchmarks/audit_supernet_length.py`: per-supernet BIWS rows of two audits of the same candidates, compared
as paired differences (an audit against itself differs by exactly 0), and audits of other candidates refused."""

from __future__ import annotations

import copy

import pytest

from autobert_zero.train.audit.report import build_report
from benchmarks.audit_supernet_length import compare, label
from tests.train.audit.test_report import _inputs


def _audit(folder: str) -> dict[str, object]:
    report = build_report(_inputs())
    report.update(supernet_dirs=[folder], config_hash="same config")
    return report


def test_an_audit_against_itself_differs_by_zero_and_keeps_its_figures() -> None:
    short, long = _audit("runs/short"), _audit("runs/long")
    result = compare(short, long, samples=200)
    assert set(result["supernets"]) == {"runs/short", "runs/long"}
    assert result["supernets"]["runs/short"]["kendall_tau"] == result["supernets"]["runs/long"]["kendall_tau"]
    (difference,) = result["differences"].values()
    assert all(d["value"] == d["low"] == d["high"] == 0 for d in difference.values())
    assert result["supernets"]["runs/short"]["kendall_tau"]["value"] == pytest.approx(
        short["estimators"]["biws_k0"]["kendall_tau"]["value"], abs=1e-4)  # the audit's own figure
    assert label("runs/long - runs/short") == "long − short"


def test_audits_of_other_candidates_are_refused() -> None:
    short = _audit("runs/short")
    other = copy.deepcopy(short)
    other["candidates"] = list(reversed(other["candidates"]))  # type: ignore[call-overload]
    with pytest.raises(SystemExit, match="different candidates"):
        compare(short, other)
