"""A search-space language named in a config (`language:`) or with `--language`, from files outside the package:
the commands use it, what they make records it, folders that carry its op code run it only with consent, and
bad input is one clear error with nothing written."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from autobert_zero.cli import main
from autobert_zero.grammar import loading
from tests.support.languages import MUL_GENOTYPE, OP_MODULE, write_language, write_language_yaml
from tests.support.training import tiny_dict

SIZES = ("--hidden", "32", "--heads", "2", "--intermediate", "64", "--vocab-size", "100")


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture()
def abz(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    def run(*args: object) -> Run:
        code = main([str(arg) for arg in args])
        out, err = capsys.readouterr()
        return Run(code, out, " ".join(err.split()))
    return run


@pytest.fixture()
def new_process(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """`forget()`: from now on, as in a new process, no custom language is known and no op module has run."""
    def forget() -> None:
        monkeypatch.setattr(loading, "_KNOWN", {})
        monkeypatch.setattr(loading, "_MODULES", {})
    forget()
    return forget


@pytest.fixture()
def space(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """A grammar file and an op module in a folder outside the package, a YAML naming them, two genotypes."""
    folder = tmp_path / "space"
    folder.mkdir()
    section = write_language(folder)
    (folder / "qk.abz").write_text(MUL_GENOTYPE.format("Q", "K"), encoding="utf-8")
    (folder / "kq.abz").write_text(MUL_GENOTYPE.format("K", "Q"), encoding="utf-8")
    yield {"yaml": write_language_yaml(folder, section), "qk": folder / "qk.abz", "kq": folder / "kq.abz",
           "ops": Path(section["ops"]), "grammar": Path(section["grammar"]), "folder": folder}


def test_check_gives_a_commutative_custom_op_one_id(space: dict[str, Path], abz: Callable[..., Run],
                                                    new_process: Callable[[], None]) -> None:
    checked = abz("check", "--json", "--language", space["yaml"], space["qk"], space["kq"])
    assert checked.code == 0, checked.err
    reports = json.loads(checked.out)
    assert all(r["valid"] for r in reports) and reports[0]["id"] == reports[1]["id"]
    plain = abz("check", space["qk"])
    assert plain.code == 2 and "unknown op 'half'" in plain.out
    shown = abz("show", space["qk"], "--language", space["yaml"])
    assert shown.code == 0 and "Q⊙K" in shown.out, shown.err


def test_the_no_fork_path_check_search_export_reload(tmp_path: Path, space: dict[str, Path], abz: Callable[..., Run],
                                                      new_process: Callable[[], None]) -> None:
    """A grammar and an op module in a folder of one's own, a config naming them: `abz check`, a search, its
    report and export, a compiled model reloaded with trust_remote_code=True (refused without)."""
    section = yaml.safe_load(space["yaml"].read_text())["language"]
    data = tiny_dict(tmp_path, genotype=str(space["qk"]), language=section,
                     search={"fitness": "synthetic", "evaluations": 24, "population_size": 6, "tournament_size": 3,
                             "round_size": 2, "seed_genotypes": [str(space["kq"])]})
    config = tmp_path / "search.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert abz("check", "--language", config, space["qk"]).code == 0  # a whole config works as --language too

    run = tmp_path / "run"
    searched = abz("search", "--config", config, "--out", run)
    assert searched.code == 0, searched.err
    state = json.loads((run / "state.json").read_text())
    record = state["body"]["run"]["language"]
    assert record["ops"]["source"] == OP_MODULE and record["grammar"]["file"] == str(space["grammar"])
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert any("mul(" in line["genotype"] for line in history)  # the seed at least

    assert abz("report", run).code == 0
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump(tiny_dict(tmp_path)), encoding="utf-8")
    other = abz("retrain", run, "--config", plain, "--out", tmp_path / "retrain")
    assert other.code == 1 and "the language differs from the one search" in other.err
    assert not (tmp_path / "retrain").exists()
    best = tmp_path / "best"
    exported = abz("export", run, "--top", "1", "--untrained", "--out", best, *SIZES)
    assert exported.code == 0, exported.err
    assert json.loads((best / "rank1" / "hf" / "config.json").read_text())["language"]["sha256"] == record["sha256"]

    model_dir = tmp_path / "model"
    compiled = abz("compile", space["qk"], "--language", space["yaml"], "--out", model_dir, *SIZES)
    assert compiled.code == 0 and "remote code" in compiled.out, compiled.err
    custom = (model_dir / "portable_custom_ops.py").read_text()
    assert "def half(x):" in custom and "SCALE = 0.5" in custom and "'mul': mul" in custom

    from transformers import AutoModelForMaskedLM

    from autobert_zero.errors import LanguageError

    new_process()  # loading where the language was never built: its op code runs only with consent
    with pytest.raises(LanguageError, match=r"model/config\.json carries a custom language whose op code \(ops\.py"):
        AutoModelForMaskedLM.from_pretrained(model_dir)
    model = AutoModelForMaskedLM.from_pretrained(model_dir, trust_remote_code=True).eval()
    ids = json.loads(abz("check", "--json", "--language", space["yaml"], space["kq"]).out)[0]["id"]
    assert model.config.parsed_genotype().id == ids
    assert model.config.resolved_language().sha256 == json.loads((model_dir / "config.json").read_text())[
        "language"]["sha256"]
    with torch.no_grad():
        assert model(input_ids=torch.randint(0, 100, (2, 9))).logits.shape == (2, 9, 100)

    new_process()  # a search folder's language: consent for report and resume; resume refuses an edited op module
    refused = abz("report", run)
    assert refused.code == 1 and "state.json carries a custom language" in refused.err
    assert "--trust-language-code" in refused.err and "Traceback" not in refused.err
    assert abz("report", run, "--trust-language-code").code == 0
    (run / "summary.json").unlink()
    space["ops"].write_text(OP_MODULE.replace("SCALE = 0.5", "SCALE = 0.25"), encoding="utf-8")
    before = (run / "history.jsonl").read_bytes(), (run / "state.json").read_bytes()
    refused = abz("resume", run)
    assert refused.code == 1 and "--trust-language-code" in refused.err and "ops.py" in refused.err
    changed = abz("resume", run, "--trust-language-code")
    assert changed.code == 1 and "language changed since the search started: language ops sha256" in changed.err
    assert ((run / "history.jsonl").read_bytes(), (run / "state.json").read_bytes()) == before


def test_a_run_records_its_language_and_resume_refuses_another(tmp_path: Path, space: dict[str, Path],
                                                               abz: Callable[..., Run],
                                                               new_process: Callable[[], None]) -> None:
    """`abz pretrain` in a custom language: the language's sha256s in the run identity, its record in final/;
    `--resume` after the grammar changed names language.grammar_sha256; `abz finetune --init` of the folder
    needs consent before anything is read or written."""
    section = yaml.safe_load(space["yaml"].read_text())["language"]
    data = tiny_dict(tmp_path, genotype=str(space["qk"]), language=section,
                     pretrain={"max_steps": 4, "checkpoint_every": 2})
    config = tmp_path / "pretrain.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    run = tmp_path / "pretrain"
    trained = abz("pretrain", "--config", config, "--out", run, "--max-steps", "2")
    assert trained.code == 0, trained.err
    final = json.loads((run / "final" / "config.json").read_text())
    assert final["language"]["ops"]["source"] == OP_MODULE
    state = json.loads(next((run / "checkpoints").glob("*/trainer_state.json")).read_text())
    assert state["language.ops_sha256"] == final["language"]["ops"]["sha256"]

    new_process()
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump(tiny_dict(tmp_path)), encoding="utf-8")
    refused = abz("finetune", "--config", plain, "--task", "SST-2", "--init", run / "final", "--out", tmp_path / "ft")
    assert refused.code == 1 and "final/config.json carries a custom language" in refused.err
    assert not (tmp_path / "ft").exists()

    space["grammar"].write_text(space["grammar"].read_text() + "// edited\n", encoding="utf-8")
    resumed = abz("pretrain", "--config", config, "--out", run, "--resume")
    assert resumed.code == 1 and "language.grammar_sha256" in resumed.err, resumed.err
    assert "language.ops_sha256" not in resumed.err


BAD = {
    "unimplemented op in the grammar": (lambda f: _grammar_with(f, '| "gelu"'), None,
                                        "lists gelu but the op table has no entry"),
    "op module raises on import": (None, "import math\nraise ValueError('no ops today')\n",
                                   "raised ValueError: no ops today (line 2)"),
    "plugin not installed": (None, None, "no op plugin named 'abz_no_such_plugin' is installed"),
    "op shadows a built-in": (None, OP_MODULE.replace('OpSpec("half"', 'OpSpec("matmul"'),
                              "defines op 'matmul', which is a built-in op"),
    "grammar syntax error": (lambda f: _grammar_with(f, '| "half" ((('), None, "is not a valid Lark grammar"),
}


def _grammar_with(folder: Path, tail: str) -> Path:
    text = (folder / "space.lark").read_text().replace('| "mul" | "half"', f'| "mul" {tail}')
    (folder / "edited.lark").write_text(text, encoding="utf-8")
    return folder / "edited.lark"


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_languages_are_one_clear_error_and_nothing_is_written(tmp_path: Path, space: dict[str, Path],
                                                                   abz: Callable[..., Run], case: str,
                                                                   new_process: Callable[[], None]) -> None:
    grammar, ops, message = BAD[case]
    section: dict[str, str] = {"grammar": str(space["grammar"]), "ops": str(space["ops"])}
    if grammar is not None:
        section["grammar"] = str(grammar(space["folder"]))
    if ops is not None:
        space["ops"].write_text(ops, encoding="utf-8")
    if case == "plugin not installed":
        section = {"plugin": "abz_no_such_plugin"}
    language = write_language_yaml(tmp_path, section, "bad.yaml")
    compiled = abz("compile", space["qk"], "--language", language, "--out", tmp_path / "out", *SIZES)
    assert compiled.code == 1 and message in compiled.err, compiled.err
    assert "Traceback" not in compiled.err and not (tmp_path / "out").exists()
    config = tmp_path / "search.yaml"
    config.write_text(yaml.safe_dump(tiny_dict(tmp_path, genotype=str(space["qk"]), language=section,
                                               search={"fitness": "synthetic"})), encoding="utf-8")
    searched = abz("search", "--config", config, "--out", tmp_path / "search")
    assert searched.code == 1 and message in searched.err and not (tmp_path / "search").exists()
    shutil.rmtree(tmp_path / "tokenizers", ignore_errors=True)
