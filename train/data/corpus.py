"""Pre-training corpora through `datasets`: local text/JSON/TSV files or folders, a hub dataset, or the
embedded default corpus.

A corpus spec is resolved in this order: `None` → the embedded corpus (`default_corpus.py`); an existing
file or folder → local files, read by `datasets`' `text`, `json` or `csv` builders chosen by suffix
(folders: every non-hidden file below, sorted); anything else that looks like a path → `DataError`;
otherwise a hub dataset `name` or `name:config` (split `train`), which needs a network. Text files are
decoded as UTF-8 with undecodable bytes replaced (some NLTK files hold Latin-1 bytes) and universal
newlines (CRLF is fine). Empty lines are dropped; a corpus with no text left is a `DataError`. Each local
file is checked first (`check_corpus_file`): an empty file, a JSON line that does not parse or lacks the
text column, or a TSV/CSV row with another number of fields than the header is a `DataError` naming the
file and line.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import datasets
from datasets.exceptions import DatasetGenerationError

from autobert_zero.errors import DataError
from autobert_zero.train.data.default_corpus import default_corpus_texts

TEXT_SUFFIXES = {"", ".txt", ".raw", ".text", ".md", ".tokens"}
JSON_SUFFIXES = {".json", ".jsonl"}
TABLE_SUFFIXES = {".tsv", ".csv"}


@dataclass(frozen=True)
class Corpus:
    """Pre-training text: a `datasets.Dataset` with one column `text`, a description and a content hash."""

    dataset: datasets.Dataset
    description: str
    fingerprint: str

    @property
    def num_texts(self) -> int:
        return len(self.dataset)


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in JSON_SUFFIXES:
        return "json"
    if suffix in TABLE_SUFFIXES:
        return suffix[1:]
    return "text"  # .txt, .raw, no suffix (NLTK's README), anything else


def _local_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataError(f"corpus folder {path} holds no files (expected text, JSON or TSV files)")
    return files


def _check_json(path: Path, text: str, text_column: str) -> None:
    """A JSON array of objects, or JSON lines (one object per line), each with `text_column`."""
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); expected a JSON array of objects "
                            f"or one JSON object per line") from None
        numbered = list(enumerate(rows if isinstance(rows, list) else [rows], start=1))
        where = "item"
    else:
        numbered = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    numbered.append((number, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{number}: not valid JSON ({exc.msg}); expected one JSON object per "
                                    f"line (JSON lines) or a JSON array of objects") from None
        where = "line"
    for number, row in numbered:
        if not isinstance(row, dict):
            raise DataError(f"{path}: {where} {number} is {type(row).__name__}, expected a JSON object with a "
                            f"'{text_column}' key")
        if text_column not in row:
            raise DataError(f"{path}: {where} {number} has no key '{text_column}' (keys: {', '.join(map(str, row))}); "
                            f"set data.text_column to the key holding the text")


def _check_table(path: Path, kind: str, text: str) -> None:
    """Every row has as many fields as the header."""
    delimiter = "\t" if kind == "tsv" else ","
    source = io.StringIO(text, newline="")
    rows = (csv.reader(source, delimiter=delimiter, quoting=csv.QUOTE_NONE) if kind == "tsv"
            else csv.reader(source, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL))
    header = next(rows, None)
    for row in rows:
        if row and header is not None and len(row) != len(header):
            raise DataError(f"{path}:{rows.line_num}: {len(row)} {'tab' if kind == 'tsv' else 'comma'}-separated "
                            f"fields, expected {len(header)} as in the header ({', '.join(header)})")


def check_corpus_file(path: Path, text_column: str) -> None:
    """Refuse an empty or malformed corpus file with its path and line, before `datasets` reads it."""
    kind = _kind(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"corpus file {path} cannot be read: {exc.strerror or exc}") from None
    text = raw.decode("utf-8", errors="replace")
    if not text.strip():
        raise DataError(f"corpus file {path} is empty: it holds no text (expected lines of text, JSON lines or a "
                        f"TSV/CSV table)")
    if kind == "json":
        _check_json(path, text, text_column)
    elif kind in ("tsv", "csv"):
        _check_table(path, kind, text)


def _load_files(kind: str, files: list[Path], text_column: str) -> datasets.Dataset:
    for path in files:
        check_corpus_file(path, text_column)
    names = [str(f) for f in files]
    try:
        return _read_files(kind, names, text_column)
    except DatasetGenerationError as exc:
        cause = exc.__cause__ or exc
        raise DataError(f"corpus file(s) {', '.join(names[:3])} could not be read as {kind}: "
                        f"{type(cause).__name__}: {cause}") from None


def _read_files(kind: str, names: list[str], text_column: str) -> datasets.Dataset:
    if kind == "text":
        ds = datasets.load_dataset("text", data_files=names, split="train", encoding_errors="replace")
    elif kind == "json":
        ds = datasets.load_dataset("json", data_files=names, split="train")
    else:
        delimiter = "\t" if kind == "tsv" else ","
        ds = datasets.load_dataset("csv", data_files=names, split="train", delimiter=delimiter,
                                   quoting=csv.QUOTE_NONE if kind == "tsv" else csv.QUOTE_MINIMAL)
    assert isinstance(ds, datasets.Dataset)
    if text_column not in ds.column_names and kind != "text":
        raise DataError(f"corpus file(s) {', '.join(names[:3])}: no column '{text_column}' (found columns: "
                        f"{', '.join(ds.column_names)}); set data.text_column to the column holding the text")
    return _text_only(ds, "text" if kind == "text" else text_column)


def _text_only(ds: datasets.Dataset, column: str) -> datasets.Dataset:
    """Keep only `column`, renamed `text` and typed `string` (so parts of any source concatenate)."""
    ds = ds.select_columns([column])
    if column != "text":
        ds = ds.rename_column(column, "text")
    return ds.cast_column("text", datasets.Value("string"))


def _load_hub(spec: str, text_column: str) -> datasets.Dataset:
    name, _, config = spec.partition(":")
    try:
        ds = datasets.load_dataset(name, config or None, split="train")
    except Exception as exc:
        raise DataError(
            f"corpus '{spec}' is not a local file or folder, and loading it as a hub dataset failed: "
            f"{type(exc).__name__}: {exc}. Give a path to text/JSON/TSV files, a reachable hub dataset "
            f"'name' or 'name:config', or no corpus for the embedded one (offline machines: use a path)"
        ) from None
    assert isinstance(ds, datasets.Dataset)
    if text_column not in ds.column_names:
        raise DataError(f"hub dataset '{spec}': no column '{text_column}' (found columns: "
                        f"{', '.join(ds.column_names)}); set data.text_column")
    return _text_only(ds, text_column)


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or "\\" in spec or Path(spec).suffix.lower() in (
        TEXT_SUFFIXES | JSON_SUFFIXES | TABLE_SUFFIXES) - {""} or spec.count("/") > 1


def _load_one(spec: str, text_column: str) -> datasets.Dataset:
    path = Path(spec).expanduser()
    if path.exists():
        files = _local_files(path)
        by_kind: dict[str, list[Path]] = {}
        for f in files:
            by_kind.setdefault(_kind(f), []).append(f)
        parts = [_load_files(kind, group, text_column) for kind, group in sorted(by_kind.items())]
        return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    if _looks_like_path(spec):
        raise DataError(f"corpus path not found: {spec} (expected a text/JSON/TSV file or a folder of them)")
    return _load_hub(spec, text_column)


def _clean(ds: datasets.Dataset) -> datasets.Dataset:
    ds = ds.filter(lambda batch: [bool(t and t.strip()) for t in batch["text"]], batched=True,
                   desc="dropping empty lines")
    return ds.map(lambda batch: {"text": [t.strip() for t in batch["text"]]}, batched=True, desc="stripping")


def fingerprint_texts(texts: datasets.Dataset) -> str:
    """sha256 over the corpus text, in order (names the trained-tokenizer cache entry)."""
    digest = hashlib.sha256()
    for batch in texts.iter(batch_size=10_000):
        for text in batch["text"]:
            digest.update(text.encode("utf-8"))
            digest.update(b"\n")
    return digest.hexdigest()


def load_corpus(spec: str | list[str] | None, text_column: str = "text") -> Corpus:
    """Load the corpus named by `spec` (see the module docstring); raise `DataError` if it holds no text."""
    if spec is None or spec == [] or spec == "":
        ds = datasets.Dataset.from_dict({"text": list(default_corpus_texts())})
        description = "embedded default corpus (pydoc_data.topics + standard-library docstrings)"
    else:
        specs = [spec] if isinstance(spec, str) else list(spec)
        parts = [_load_one(s, text_column) for s in specs]
        ds = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
        description = ", ".join(specs)
    ds = _clean(ds)
    if len(ds) == 0:
        raise DataError(f"corpus {description} holds no text (every line is empty); expected non-empty lines "
                        f"of text (JSON/TSV: in column '{text_column}')")
    return Corpus(ds, description, fingerprint_texts(ds))


def without_texts_of(corpus: Corpus, held_out: Corpus) -> Corpus:
    """`corpus` less every line that also occurs in `held_out` (so held-out documents are never trained on,
    even when the training folders contain them); raises `DataError` if nothing is left."""
    excluded = set(held_out.dataset["text"])
    kept = corpus.dataset.filter(lambda batch: [t not in excluded for t in batch["text"]], batched=True,
                                 desc="dropping held-out lines from training")
    if len(kept) == 0:
        raise DataError(f"corpus {corpus.description} holds no text outside data.eval_corpus "
                        f"{held_out.description}; the training and held-out text must differ")
    dropped = len(corpus.dataset) - len(kept)
    description = corpus.description if dropped == 0 else (
        f"{corpus.description} less {dropped} lines of {held_out.description}")
    return Corpus(kept, description, fingerprint_texts(kept))
