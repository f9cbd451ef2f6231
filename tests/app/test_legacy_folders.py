"""Folders written before the layout change still load: a search, a supernet and a pre-trained model written
by the code at commit 3028dac (tests/fixtures/legacy-3028dac, tiny sizes) are read by today's `abz report`,
`abz export`, `load_supernet` and the `abz finetune --init` checks, and give the numbers they held. `abz resume`
refuses the old search state by name (it records no run identity to check a resume against)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autobert_zero.config.load import config_from_dict
from tests.support.paths import FIXTURES, REPO
from tests.support.training import subprocess_env

LEGACY = FIXTURES / "legacy-3028dac"
ABZ = [sys.executable, "-m", "autobert_zero.cli"]


def abz(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ABZ, *args], cwd=REPO, capture_output=True, text=True, env=subprocess_env(),
                          timeout=300)


@pytest.fixture()
def legacy(tmp_path: Path) -> Path:
    """A writable copy (report and export write beside or into the folders they read)."""
    copy = tmp_path / "legacy"
    shutil.copytree(LEGACY, copy)
    return copy


def history(folder: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (folder / "history.jsonl").read_text(encoding="utf-8").splitlines()]


def test_report_reads_an_old_search_folder(legacy: Path) -> None:
    lines = history(legacy / "search")
    best = max((line for line in lines if line["status"] == "ok"), key=lambda line: float(line["fitness"]))
    done = abz("report", str(legacy / "search"), "--top", "2")
    assert done.returncode == 0, done.stderr
    report = (legacy / "search" / "report.md").read_text(encoding="utf-8")
    first = report.split("### 2.")[0]
    assert f"`{str(best['id'])[:12]}`" in first and f"fitness {float(best['fitness']):.4f}" in first
    assert "| 6 | 6 | 6 | 0 | 0 |" in report
    assert (legacy / "search" / "plots" / "fitness.png").stat().st_size > 0


def test_export_writes_the_best_genotypes_of_an_old_search(legacy: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    done = abz("export", str(legacy / "search"), "--out", str(out), "--top", "1", "--vocab-size", "200",
               "--hidden", "16", "--heads", "2", "--intermediate", "32", "--untrained")  # scratch: no weights kept
    assert done.returncode == 0, done.stderr
    written = sorted(out.glob("*/genotype.abz"))
    assert [path.parent.name for path in written] == ["rank1"]
    assert (out / "rank1" / "hf" / "model.safetensors").is_file()
    lines = history(legacy / "search")
    best = max((line for line in lines if line["status"] == "ok"), key=lambda line: float(line["fitness"]))
    text = written[0].read_text(encoding="utf-8")
    assert f"id {best['id']}" in text.splitlines()[0]
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#")).strip()
    assert body == str(best["genotype"]).strip()


def test_an_old_search_folder_is_not_resumed_and_is_left_as_it_is(legacy: Path) -> None:
    """Its state (version 1) records no run identity and no history digest: report and export read it, but a
    resume could not check that it continues the same run, so it is refused by name."""
    search = legacy / "search"
    (search / "summary.json").unlink()  # else `abz resume` only says the search is finished
    before = {p.name: p.read_bytes() for p in search.iterdir() if not p.name.startswith(".")}
    done = abz("resume", str(search))
    assert done.returncode == 1, done.stderr
    assert "state version 1" in " ".join(done.stderr.split()) and "Traceback" not in done.stderr
    assert {p.name: p.read_bytes() for p in search.iterdir() if not p.name.startswith(".")} == before


def test_an_old_supernet_loads_and_scores_like_before(legacy: Path) -> None:
    from autobert_zero.train.supernet import load_supernet, saved_config

    folder = legacy / "supernet"
    cfg = saved_config(folder)
    assert cfg.model.hidden_size == 16
    supernet, tokenizer = load_supernet(folder, cfg)
    assert len(tokenizer) == supernet.config.vocab_size == 200
    torch.manual_seed(0)
    ids = torch.randint(5, 200, (2, 12))
    with torch.no_grad():
        logits = supernet(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    assert logits.shape[-1] == 200 and bool(torch.isfinite(logits).all())


def test_an_old_pretrain_folder_passes_the_finetune_init_checks(legacy: Path) -> None:
    from autobert_zero.train.models import build_classifier, check_init_folder

    final = legacy / "pretrain" / "final"
    tokenizer = check_init_folder(final)
    model = build_classifier(final, num_labels=2)
    batch = tokenizer(["a short sentence", "another one"], return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, 2) and bool(torch.isfinite(logits).all())


def test_an_old_config_json_is_still_a_valid_config() -> None:
    for name in ("pretrain", "supernet"):
        data = json.loads((LEGACY / name / "config.json").read_text(encoding="utf-8"))
        data.pop("source", None)
        cfg = config_from_dict(data, name)
        assert cfg.model.hidden_size == 16 and cfg.data.vocab_size == 200
