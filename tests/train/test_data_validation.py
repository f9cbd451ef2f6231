"""Corpus and GLUE files are validated with file and line before `datasets` reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from autobert_zero.errors import DataError
from autobert_zero.train.data.corpus import load_corpus
from autobert_zero.train.data.glue import read_glue_tsv

BAD_CORPORA = [
    ("empty.txt", "", r"empty\.txt is empty"),
    ("blank.txt", "\n  \n", r"blank\.txt is empty"),
    ("empty.jsonl", "", r"empty\.jsonl is empty"),
    ("cut.jsonl", '{"text": "a b"}\n{"text": "c\n', r"cut\.jsonl:2: not valid JSON"),
    ("bad.json", '{"text": "a b"}\n{"text": oops}\n', r"bad\.json:2: not valid JSON"),
    ("array.json", '[{"text": "a"},\n {"text": ]', r"array\.json:2: not valid JSON"),
    ("scalar.jsonl", '{"text": "a"}\n3\n', r"scalar\.jsonl: line 2 is int, expected a JSON object"),
    ("nokey.jsonl", '{"text": "a"}\n{"body": "b"}\n', r"nokey\.jsonl: line 2 has no key 'text'"),
    ("short.tsv", "text\tlabel\nhello world\t1\nfoo\n", r"short\.tsv:3: 1 tab-separated fields, expected 2"),
    ("long.tsv", "text\tlabel\nhello\t1\nfoo\t1\t2\n", r"long\.tsv:3: 3 tab-separated fields, expected 2"),
    ("rag.csv", "text,label\nhello world,1\nfoo,1,2\n", r"rag\.csv:3: 3 comma-separated fields"),
]


@pytest.mark.parametrize("name, content, message", BAD_CORPORA, ids=[c[0] for c in BAD_CORPORA])
def test_bad_corpus_file_names_file_and_line(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_corpus(str(path))


def test_good_json_lines_and_array_load(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"text": "one two"}\n\n{"text": "three"}\n', encoding="utf-8")
    (tmp_path / "b.json").write_text('[{"text": "four"}, {"text": "five six"}]', encoding="utf-8")
    assert load_corpus(str(tmp_path / "a.jsonl")).num_texts == 2
    assert load_corpus(str(tmp_path / "b.json")).num_texts == 2


@pytest.mark.parametrize("task, header", [("SST-2", "sentence\tlabel"), ("RTE", "index\tsentence1\tsentence2\tlabel")])
def test_header_only_glue_file_is_refused(tmp_path: Path, task: str, header: str) -> None:
    path = tmp_path / "train.tsv"
    path.write_text(header + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.tsv .* holds no labelled rows after its header"):
        read_glue_tsv(task, path)
