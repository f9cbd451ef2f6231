"""Bounded JSON reading: damaged, deep, huge or non-finite files end in the caller's error class."""

from __future__ import annotations

from pathlib import Path

import pytest

from autobert_zero.errors import SearchError
from autobert_zero.json_files import depth_of, flatten, parse_json, read_json, require_keys, shorten


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 32"),
        ("[" * 33 + "]" * 33, "nested deeper than 32"),
        ('{"fitness": Infinity}', "not valid JSON"),
        ('{"fitness": NaN}', "not valid JSON"),
        ("{", "not valid JSON"),
    ],
)
def test_parse_json_refuses_with_the_callers_error(text: str, message: str) -> None:
    with pytest.raises(SearchError, match=message):
        parse_json(text, "state.json", SearchError)


def test_parse_json_accepts_what_the_project_writes() -> None:
    assert parse_json('{"a": [1, {"b": 2.5}]}', "x") == {"a": [1, {"b": 2.5}]}
    assert parse_json("[" * 32 + "]" * 32, "x") is not None
    assert depth_of({"a": [1, {"b": 2}]}) == 3


def test_read_json_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(SearchError, match="no such file"):
        read_json(tmp_path / "missing.json", SearchError)
    big = tmp_path / "big.json"
    big.write_text("[" + "1," * 100 + "1]", encoding="utf-8")
    with pytest.raises(SearchError, match="more than the 10 a JSON file may have"):
        read_json(big, SearchError, max_bytes=10)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(SearchError, match="not UTF-8"):
        read_json(binary, SearchError)


def test_require_keys_checks_types_and_finiteness() -> None:
    assert require_keys({"step": 3}, "x", {"step": int}) == {"step": 3}
    with pytest.raises(SearchError, match="missing key 'step'"):
        require_keys({}, "x", {"step": int}, SearchError)
    with pytest.raises(SearchError, match="should be int"):
        require_keys({"step": True}, "x", {"step": int}, SearchError)
    with pytest.raises(SearchError, match="expected a finite number"):
        require_keys({"loss": float("inf")}, "x", {"loss": float}, SearchError)


def test_shorten_cuts_long_values() -> None:
    shown = shorten("x" * 8_000_000)
    assert len(shown) < 120 and "8000000 characters" in shown


def test_flatten_gives_dotted_keys_and_keeps_an_emptied_section_only_when_asked() -> None:
    nested = {"model": {"hidden_size": 64, "extra": {}}, "seeds": [0, 1], "data": {"x": {"y": None}}}
    assert flatten(nested) == {"model.hidden_size": 64, "seeds": [0, 1], "data.x.y": None}
    assert flatten(nested, keep_empty=True) == {"model.hidden_size": 64, "model.extra": {}, "seeds": [0, 1],
                                                "data.x.y": None}
    assert flatten({}) == {} == flatten({}, keep_empty=True)
