"""GLUE: the nine tasks, read from the standard GLUE TSV layout or from the hub dataset `glue`.

Every loader returns a `datasets.Dataset` with columns `text_a`, `text_b` (empty for single-sentence tasks)
and `label` (class index, or float score for STS-B). The TSV reader follows the GLUE files' quirks: no
quoting at all (sentences contain `"`), an optional UTF-8 BOM (MRPC), no header (CoLA train/dev), and a
check that the header holds the expected columns — otherwise a `DataError` names the file, the expected
columns and the columns found. Label lists are ordered as the hub dataset `glue` orders them, so both
sources give the same class indices.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import datasets

from autobert_zero.errors import DataError


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task: where its files are, which columns to read, how labels and metrics work."""

    name: str
    folder: str
    text_a: str
    text_b: str | None
    label: str
    labels: tuple[str, ...] | None  # None: regression (STS-B)
    metrics: tuple[str, ...]
    hub_config: str
    hub_columns: tuple[str, str | None]
    header: tuple[str, ...] | None = None  # positional columns of a headerless file (CoLA)
    dev_file: str = "dev.tsv"
    hub_dev_split: str = "validation"

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    @property
    def is_regression(self) -> bool:
        return self.labels is None


_NLI2 = ("entailment", "not_entailment")
TASKS: dict[str, GlueTask] = {t.name: t for t in (
    GlueTask("cola", "CoLA", "sentence", None, "label", ("0", "1"), ("matthews_corrcoef",), "cola",
             ("sentence", None), header=("source", "label", "original_mark", "sentence")),
    GlueTask("sst2", "SST-2", "sentence", None, "label", ("0", "1"), ("accuracy",), "sst2", ("sentence", None)),
    GlueTask("mrpc", "MRPC", "#1 String", "#2 String", "Quality", ("0", "1"), ("f1", "accuracy"), "mrpc",
             ("sentence1", "sentence2")),
    GlueTask("stsb", "STS-B", "sentence1", "sentence2", "score", None, ("pearson", "spearman"), "stsb",
             ("sentence1", "sentence2")),
    GlueTask("qqp", "QQP", "question1", "question2", "is_duplicate", ("0", "1"), ("f1", "accuracy"), "qqp",
             ("question1", "question2")),
    GlueTask("mnli", "MNLI", "sentence1", "sentence2", "gold_label", ("entailment", "neutral", "contradiction"),
             ("accuracy",), "mnli", ("premise", "hypothesis"), dev_file="dev_matched.tsv",
             hub_dev_split="validation_matched"),
    GlueTask("qnli", "QNLI", "question", "sentence", "label", _NLI2, ("accuracy",), "qnli", ("question", "sentence")),
    GlueTask("rte", "RTE", "sentence1", "sentence2", "label", _NLI2, ("accuracy",), "rte", ("sentence1", "sentence2")),
    GlueTask("wnli", "WNLI", "sentence1", "sentence2", "label", ("0", "1"), ("accuracy",), "wnli",
             ("sentence1", "sentence2")),
)}
_ALIASES = {t.folder.lower().replace("-", ""): t.name for t in TASKS.values()} | {"mnli-m": "mnli", "sts-b": "stsb",
                                                                                 "sst-2": "sst2"}


def get_task(name: str) -> GlueTask:
    """The task called `name` (case and `-` ignored: `SST-2`, `sst2`, `STS-B` all work)."""
    key = name.lower().replace("_", "-")
    key = _ALIASES.get(key, _ALIASES.get(key.replace("-", ""), key))
    if key not in TASKS:
        raise DataError(f"unknown GLUE task '{name}'; valid tasks: {', '.join(t.folder for t in TASKS.values())}")
    return TASKS[key]


def _read_rows(path: Path) -> list[list[str]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            return [row for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if row]
    except FileNotFoundError:
        raise DataError(f"GLUE file not found: {path} (expected the standard GLUE layout "
                        f"<data-dir>/{path.parent.name}/{path.name})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"GLUE file {path} is not UTF-8 text: {exc}") from None


def _label_index(task: GlueTask, raw: str, path: Path, line: int) -> int | float:
    if task.labels is None:
        try:
            return float(raw)
        except ValueError:
            raise DataError(f"{path}:{line}: score {raw!r} is not a number (STS-B scores are floats 0–5)") from None
    if raw not in task.labels:
        raise DataError(f"{path}:{line}: label {raw!r} is not one of {', '.join(task.labels)}")
    return task.labels.index(raw)


def _check_columns(task: GlueTask, path: Path, columns: list[str], wanted: list[str],
                   body: list[list[str]]) -> None:
    if task.header is not None:  # headerless: the columns are positional, so check the row width
        widths = sorted({len(r) for r in body[:50]})
        if widths != [len(columns)]:
            raise DataError(f"GLUE file {path} ({task.folder}): expected {len(columns)} tab-separated columns "
                            f"without a header ({', '.join(columns)}); found rows of {widths} columns")
        return
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise DataError(f"GLUE file {path} ({task.folder}): expected columns {', '.join(wanted)} in the header; "
                        f"found columns {', '.join(columns)} (missing: {', '.join(missing)})")


def read_glue_tsv(task: GlueTask | str, path: str | Path) -> datasets.Dataset:
    """One labelled GLUE TSV file of `task` → Dataset(text_a, text_b, label)."""
    task = get_task(task) if isinstance(task, str) else task
    path = Path(path)
    rows = _read_rows(path)
    if task.header is not None:
        columns, body, first_line = list(task.header), rows, 1
    else:
        if not rows:
            raise DataError(f"GLUE file {path} is empty (expected a header line and labelled rows)")
        columns, body, first_line = rows[0], rows[1:], 2
    wanted = [task.text_a, *([task.text_b] if task.text_b else []), task.label]
    _check_columns(task, path, columns, wanted, body)
    if not body:
        raise DataError(f"GLUE file {path} ({task.folder}) holds no labelled rows"
                        f"{' after its header' if task.header is None else ''}; expected one example per line")
    ia, il = columns.index(task.text_a), columns.index(task.label)
    ib = columns.index(task.text_b) if task.text_b else None
    text_a: list[str] = []
    text_b: list[str] = []
    labels: list[int | float] = []
    for n, row in enumerate(body, start=first_line):
        if len(row) != len(columns):
            raise DataError(f"{path}:{n}: {len(row)} tab-separated fields, expected {len(columns)} "
                            f"({', '.join(columns)})")
        text_a.append(row[ia])
        text_b.append(row[ib] if ib is not None else "")
        labels.append(_label_index(task, row[il], path, n))
    return datasets.Dataset.from_dict({"text_a": text_a, "text_b": text_b, "label": labels})


def load_glue_split(task: GlueTask | str, split: str, data_dir: str | os.PathLike[str] | None) -> datasets.Dataset:
    """`train` or `dev` of `task` from `<data_dir>/<Folder>/`, or from the hub dataset `glue` if
    `data_dir` is None (needs a network)."""
    task = get_task(task) if isinstance(task, str) else task
    if split not in ("train", "dev"):
        raise DataError(f"GLUE split {split!r}: expected 'train' or 'dev' (test splits have no labels)")
    if data_dir is not None:
        folder = Path(data_dir) / task.folder
        if not folder.is_dir():
            raise DataError(f"GLUE folder not found: {folder} (expected --data-dir to hold {task.folder}/ with "
                            f"train.tsv and {task.dev_file}, the standard GLUE layout)")
        return read_glue_tsv(task, folder / ("train.tsv" if split == "train" else task.dev_file))
    return _load_hub_split(task, "train" if split == "train" else task.hub_dev_split)


def _load_hub_split(task: GlueTask, split: str) -> datasets.Dataset:
    try:
        ds = datasets.load_dataset("glue", task.hub_config, split=split)
    except Exception as exc:
        raise DataError(f"GLUE task {task.folder}: loading hub dataset 'glue/{task.hub_config}' failed: "
                        f"{type(exc).__name__}: {exc}. Offline machines: pass --data-dir with the GLUE TSV "
                        f"folders") from None
    assert isinstance(ds, datasets.Dataset)
    col_a, col_b = task.hub_columns
    return datasets.Dataset.from_dict({
        "text_a": list(ds[col_a]),
        "text_b": list(ds[col_b]) if col_b else [""] * len(ds),
        "label": [float(x) for x in ds["label"]] if task.is_regression else list(ds["label"]),
    })
