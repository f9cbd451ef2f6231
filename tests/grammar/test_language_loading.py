"""Languages named by files, modules and plugins (`grammar.loading`): what they build, what they record, and
the consent a record's op code needs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from autobert_zero.errors import LanguageError
from autobert_zero.grammar import default_language, loading, parse_genotype
from autobert_zero.grammar.loading import (
    ENTRY_POINT_GROUP,
    language_changes,
    language_from_record,
    load_language,
    record_hashes,
    trust_language_code,
)
from tests.support.languages import MUL_GENOTYPE, OP_MODULE, write_language


@pytest.fixture()
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A process that has built no custom language and run no op module yet."""
    monkeypatch.setattr(loading, "_KNOWN", {})
    monkeypatch.setattr(loading, "_MODULES", {})
    yield


def test_nothing_named_is_the_built_in_language() -> None:
    assert load_language() is default_language() and default_language().record is None
    assert language_from_record(None, where="x") is default_language()


def test_an_op_module_extends_the_built_in_grammar_and_records_its_sources(tmp_path: Path, fresh: None) -> None:
    section = write_language(tmp_path, grammar=False)
    language = load_language(ops=section["ops"])
    assert language.op_names[-2:] == ("mul", "half") and set(language.impls) == {"mul", "half"}
    record = language.record
    assert record is not None and record["ops"]["source"] == OP_MODULE and record["grammar"]["file"] is None
    assert '| "mul"' in record["grammar"]["text"] and language.sha256 == record["sha256"]
    assert load_language(ops=section["ops"]) is language  # one object per language in a process
    a = parse_genotype(MUL_GENOTYPE.format("Q", "K"), language=language)
    b = parse_genotype(MUL_GENOTYPE.format("K", "Q"), language=language)
    assert a.id == b.id  # mul is commutative in this language
    json.dumps(record)  # plain JSON data


def test_a_grammar_file_and_an_op_module(tmp_path: Path, fresh: None) -> None:
    section = write_language(tmp_path)
    language = load_language(section["grammar"], section["ops"])
    assert language.record is not None and language.record["grammar"]["file"] == section["grammar"]
    assert set(record_hashes(language.record)) == {"language.grammar_sha256", "language.ops_sha256"}


def test_a_record_rebuilds_the_language_only_with_consent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          fresh: None) -> None:
    section = write_language(tmp_path)
    record = load_language(section["grammar"], section["ops"]).record
    monkeypatch.setattr(loading, "_KNOWN", {})
    monkeypatch.setattr(loading, "_MODULES", {})
    with pytest.raises(LanguageError, match=r"folder/config\.json carries a custom language whose op code \(ops\.py"
                                            r".*--trust-language-code"):
        language_from_record(record, where="folder/config.json")
    with trust_language_code():
        rebuilt = language_from_record(record, where="folder/config.json")
    assert rebuilt.sha256 == record["sha256"] and rebuilt.op_names[-2:] == ("mul", "half")
    assert language_from_record(record, where="x") is rebuilt  # known now: no consent asked again
    text = MUL_GENOTYPE.format("Q", "K")
    assert parse_genotype(text, language=rebuilt).id == parse_genotype(text, language=rebuilt).id
    import inspect

    assert "x * SCALE" in inspect.getsource(rebuilt.impls["half"])  # its source travels on (exports)


def test_a_damaged_record_is_refused(tmp_path: Path, fresh: None) -> None:
    record = load_language(**write_language(tmp_path)).record
    assert record is not None
    tampered = json.loads(json.dumps(record))
    tampered["ops"]["source"] += "\nimport os\n"
    with pytest.raises(LanguageError, match=r"damaged.*op module source does not match its sha256"):
        language_from_record(tampered, where="f", trust=True)
    with pytest.raises(LanguageError, match="damaged"):
        language_from_record({"format": "other"}, where="f", trust=True)


def test_language_changes_name_the_part_that_changed(tmp_path: Path, fresh: None) -> None:
    section = write_language(tmp_path)
    before = load_language(section["grammar"], section["ops"]).record
    Path(section["ops"]).write_text(OP_MODULE.replace("SCALE = 0.5", "SCALE = 0.25"), encoding="utf-8")
    after = load_language(section["grammar"], section["ops"]).record
    changes = language_changes(before, after)
    assert len(changes) == 1 and changes[0].startswith("language ops sha256 ")
    assert language_changes(before, None) == ["language custom -> built-in"]
    assert language_changes(before, before) == []


def test_an_importable_module_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh: None) -> None:
    (tmp_path / "abz_test_ops_module.py").write_text(OP_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    language = load_language(ops="abz_test_ops_module")
    assert language.record is not None and language.record["ops"]["module"] == "abz_test_ops_module"
    assert language.op_names[-2:] == ("mul", "half")


def test_a_plugin_is_found_by_its_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh: None) -> None:
    """An installed distribution, as pip lays it out on a path entry (the module and its .dist-info with
    entry_points.txt), found through importlib.metadata like any other."""
    (tmp_path / "abz_test_ops_plugin.py").write_text(OP_MODULE, encoding="utf-8")
    info = tmp_path / "abz_test_ops_plugin-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: abz-test-ops-plugin\nVersion: 0.3\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\ndemo = abz_test_ops_plugin\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "demo" in loading.installed_plugins()
    language = load_language(plugin="demo")
    record = language.record
    assert record is not None and record["ops"]["plugin"] == "demo" and "source" not in record["ops"]
    assert "0.3" in json.dumps(record["ops"])  # the installed version is recorded
    monkeypatch.setattr(loading, "_KNOWN", {})
    assert language_from_record(record, where="f").sha256 == language.sha256  # installed code: no consent
    with pytest.raises(LanguageError, match=r"no op plugin named 'missing' is installed.*installed: demo"):
        load_language(plugin="missing")


BAD_MODULES = {
    "raises": ("import math\nraise RuntimeError('boom')\n", r"raised RuntimeError: boom \(line 2\)"),
    "syntax": ("def f(:\n", r"raised SyntaxError.*line 1"),
    "shadow": (OP_MODULE.replace('OpSpec("half"', 'OpSpec("softmax"'), "cannot shadow a built-in op"),
    "no-impl": (OP_MODULE.replace('IMPLS = {"mul": mul, "half": half}', 'IMPLS = {"mul": mul}'),
                r"'half' has an OpSpec in OPS but no implementation in IMPLS"),
    "no-ops": ("X = 1\n", "defines no OPS"),
}


@pytest.mark.parametrize("case", sorted(BAD_MODULES))
def test_a_bad_op_module_is_one_clear_error(tmp_path: Path, case: str, fresh: None) -> None:
    text, message = BAD_MODULES[case]
    section = write_language(tmp_path, grammar=False, ops=text)
    with pytest.raises(LanguageError, match=message):
        load_language(ops=section["ops"])


def test_bad_grammars_and_missing_files(tmp_path: Path, fresh: None) -> None:
    section = write_language(tmp_path)
    (tmp_path / "bad.lark").write_text("start: item*\n?item: (\n", encoding="utf-8")
    with pytest.raises(LanguageError, match=r"bad\.lark is not a valid Lark grammar"):
        load_language(tmp_path / "bad.lark", section["ops"])
    grammar = Path(section["grammar"]).read_text(encoding="utf-8").replace('| "half"', '| "half" | "gelu"')
    (tmp_path / "gelu.lark").write_text(grammar, encoding="utf-8")
    with pytest.raises(LanguageError, match=r"lists gelu but the op table has no entry"):
        load_language(tmp_path / "gelu.lark", section["ops"])
    with pytest.raises(LanguageError, match="grammar file not found"):
        load_language(tmp_path / "none.lark")
    with pytest.raises(LanguageError, match="op module file not found"):
        load_language(ops=str(tmp_path / "none.py"))
    with pytest.raises(LanguageError, match="not importable"):
        load_language(ops="abz_no_such_module_anywhere")
    with pytest.raises(LanguageError, match="not both"):
        load_language(ops=section["ops"], plugin="x")
