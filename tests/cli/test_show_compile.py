"""`abz show` and `abz compile`: the per-layer table, the drawings, and an HF folder that loads back."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForMaskedLM

import autobert_zero
from autobert_zero.cli import main
from autobert_zero.run_dir import OWN_FILES
from tests.support.paths import FIXTURES, GENOTYPES


def test_show_prints_every_layer_and_draws(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    svg, dot = tmp_path / "g.svg", tmp_path / "g.dot"
    code = main(["show", str(GENOTYPES / "autobert_zero.abz"), "--hidden", "64", "--heads", "4",
                 "--intermediate", "128", "--svg", str(svg), "--dot", str(dot)])
    out = capsys.readouterr().out
    assert code == 0
    assert "softmax(Q·(sqrt(K) + V + V)ᵀ/√d)·V" in out
    assert "conv light kernel=65 dilation=1" in out
    rows = [line for line in out.splitlines() if line.strip()[:2].strip().isdigit()]
    assert len(rows) == 12
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    assert dot.read_text().count("digraph") == 5


def test_show_bert_base_parameter_count(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["show", str(GENOTYPES / "bert.abz"), "--hidden", "768", "--heads", "12", "--intermediate", "3072"])
    assert code == 0
    assert "109,482,240" in capsys.readouterr().out  # transformers.BertModel(bert-base) has exactly this many


def test_show_invalid_genotype_exits_two(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["show", str(FIXTURES / "invalid" / "shape.abz")])
    err = capsys.readouterr().err
    assert code == 2
    assert "error[shape]" in err and "Traceback" not in err


def test_show_bad_sizes_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["show", str(GENOTYPES / "bert.abz"), "--hidden", "30", "--heads", "4"])
    err = capsys.readouterr().err
    assert code == 1
    assert "multiple of num_attention_heads=4" in err


def test_compile_writes_a_loadable_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model"
    code = main(["compile", str(GENOTYPES / "autobert_zero.abz"), "--out", str(out), "--hidden", "32", "--heads", "4",
                 "--intermediate", "37", "--vocab-size", "99"])
    assert code == 0, capsys.readouterr().err
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    autobert_zero.register_auto_classes()  # what a fresh process does before loading the folder
    model = AutoModelForMaskedLM.from_pretrained(out).eval()
    assert type(model).__name__ == "AutoBertZeroForMaskedLM"
    ids = torch.randint(0, 99, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert logits.shape == (2, 9, 99) and torch.isfinite(logits).all()


def test_compile_force_replaces_its_files_and_leaves_no_staging_folder(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "config.json").write_text("{}")
    code = main(["compile", str(GENOTYPES / "bert.abz"), "--out", str(out), "--force", "--hidden", "16", "--heads",
                 "2", "--intermediate", "32", "--vocab-size", "50"])
    assert code == 0, capsys.readouterr().err
    assert "wrote config.json, model.safetensors and its remote code" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir() if p.name not in OWN_FILES and p.suffix != ".py") == [
        "README.md", "config.json", "model.safetensors", "notes.txt"]  # no staging folder or temporary left
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "config.json").read_text())["hidden_size"] == 16
