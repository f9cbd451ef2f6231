"""GLUE loaders on the real TSV files, the official metrics, and the errors for bad folders and names."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from autobert_zero.errors import DataError
from autobert_zero.train.data.glue import TASKS, get_task, load_glue_split
from autobert_zero.train.data.metrics import glue_metrics, primary_score

# Row counts (excluding headers) from shared/data/README.md.
ROWS = {
    "cola": (8551, 1043), "sst2": (67349, 872), "mrpc": (3668, 408), "stsb": (5749, 1500),
    "rte": (2490, 277), "wnli": (635, 71), "qnli": (None, 5463),
}


@pytest.mark.parametrize("name", sorted(ROWS))
def test_real_glue_splits_have_the_documented_rows_and_labels(shared_data: Path, name: str,
                                                              tsv_labels: Callable[[str, str], list[float]]) -> None:
    task = get_task(name)
    for split, expected in zip(("train", "dev"), ROWS[name], strict=True):
        if expected is None:
            with pytest.raises(DataError, match="GLUE file not found"):
                load_glue_split(task, split, shared_data / "glue")
            continue
        ds = load_glue_split(task, split, shared_data / "glue")
        assert len(ds) == expected
        assert ds["label"] == tsv_labels(task.folder, split)  # each row's label column, under GLUE's label ids
        labels = np.asarray(ds["label"])
        if task.is_regression:
            assert labels.dtype == np.float64 and labels.min() >= 0.0 and labels.max() <= 5.0
        else:
            assert set(np.unique(labels)) == set(range(task.num_labels))
        assert all(ds["text_a"][:50])
        assert all(ds["text_b"][:50]) == (task.text_b is not None)


def test_quotes_bom_and_headerless_files_are_read_verbatim(shared_data: Path) -> None:
    mrpc = load_glue_split("MRPC", "train", shared_data / "glue")  # BOM before `Quality`
    assert mrpc[0]["text_a"].startswith("Amrozi accused his brother") and '"the witness"' in mrpc[0]["text_a"]
    cola = load_glue_split("CoLA", "dev", shared_data / "glue")  # no header, no final newline
    assert cola[0] == {"text_a": "The sailors rode the breeze clear of the rocks.", "text_b": "", "label": 1}
    assert cola[len(cola) - 1]["text_a"]


def write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_qqp_and_mnli_layouts(tmp_path: Path) -> None:
    write(tmp_path / "QQP" / "train.tsv", ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
                                           '0\t1\t2\tWhy "this"?\tWhy that?\t1', "1\t3\t4\tA?\tB?\t0"])
    qqp = load_glue_split("QQP", "train", tmp_path)
    assert qqp["label"] == [1, 0] and qqp[0]["text_a"] == 'Why "this"?'
    header = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
              "sentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label")
    rows = ["0\t1\t2\tg\tb\tb\tp\tp\tA man.\tA person.\tentailment\tentailment",
            "1\t1\t2\tg\tb\tb\tp\tp\tX.\tY.\tneutral\tcontradiction"]
    write(tmp_path / "MNLI" / "dev_matched.tsv", [header, *rows])
    mnli = load_glue_split("MNLI", "dev", tmp_path)
    assert mnli["label"] == [0, 2] and mnli[1]["text_b"] == "Y."


def test_wrong_columns_name_file_expected_and_found(tmp_path: Path) -> None:
    path = write(tmp_path / "RTE" / "dev.tsv", ["index\tpremise\thypothesis\tlabel", "0\ta\tb\tentailment"])
    with pytest.raises(DataError) as info:
        load_glue_split("rte", "dev", tmp_path)
    message = str(info.value)
    assert str(path) in message
    assert "expected columns sentence1, sentence2, label" in message
    assert "found columns index, premise, hypothesis, label" in message


def test_headerless_file_with_wrong_width(tmp_path: Path) -> None:
    write(tmp_path / "CoLA" / "dev.tsv", ["sentence\tlabel", "Hi.\t1"])
    with pytest.raises(DataError, match=r"expected 4 tab-separated columns without a header .*found rows of \[2\]"):
        load_glue_split("cola", "dev", tmp_path)


def test_bad_label_and_ragged_row_name_the_line(tmp_path: Path) -> None:
    write(tmp_path / "RTE" / "dev.tsv", ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tmaybe"])
    with pytest.raises(DataError, match=r"dev.tsv:2: label 'maybe' is not one of entailment, not_entailment"):
        load_glue_split("rte", "dev", tmp_path)
    write(tmp_path / "SST-2" / "dev.tsv", ["sentence\tlabel", "fine\t1", "a tab\tinside\t0"])
    with pytest.raises(DataError, match=r"dev.tsv:3: 3 tab-separated fields, expected 2"):
        load_glue_split("sst2", "dev", tmp_path)


def test_missing_folder_and_unknown_task(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"GLUE folder not found: .*SST-2"):
        load_glue_split("SST-2", "train", tmp_path)
    with pytest.raises(DataError) as info:
        get_task("squad")
    assert "unknown GLUE task 'squad'" in str(info.value)
    for task in TASKS.values():
        assert task.folder in str(info.value)


def test_task_names_are_forgiving() -> None:
    assert get_task("SST-2") is get_task("sst2") is TASKS["sst2"]
    assert get_task("STS-B").name == "stsb" and get_task("mnli-m").name == "mnli"


def test_hub_path_fails_cleanly_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError, match=r"hub dataset 'glue/rte' failed.*--data-dir"):
        load_glue_split("rte", "dev", None)


def test_metrics_on_toy_predictions_computed_by_hand() -> None:
    """Values worked out on paper, so a wrong library call, argument or positive class fails."""
    gold = [1, 0, 1, 1, 0, 0, 1, 0]
    pred = [1, 0, 0, 1, 0, 1, 1, 1]  # TP 3 (0, 3, 6), TN 2 (1, 4), FP 2 (5, 7), FN 1 (2)
    accuracy, f1 = 5 / 8, 2 * 3 / (2 * 3 + 2 + 1)  # F1 of class 1; class 0's would be 4/7
    mcc = (3 * 2 - 2 * 1) / math.sqrt((3 + 2) * (3 + 1) * (2 + 2) * (2 + 1))
    assert glue_metrics("cola", pred, gold) == {"matthews_corrcoef": pytest.approx(mcc)}
    assert glue_metrics("mrpc", pred, gold) == {"f1": pytest.approx(f1), "accuracy": accuracy}
    assert glue_metrics("qqp", pred, gold) == {"f1": pytest.approx(f1), "accuracy": accuracy}
    assert primary_score("mrpc", glue_metrics("mrpc", pred, gold)) == pytest.approx((f1 + accuracy) / 2)
    for name in ("sst2", "rte", "qnli", "wnli"):
        assert glue_metrics(name, pred, gold) == {"accuracy": accuracy}
    assert glue_metrics("mnli", [0, 2, 2, 1], [0, 1, 2, 2]) == {"accuracy": 0.5}  # three classes
    assert glue_metrics("mrpc", [0, 0, 0], [1, 0, 1])["f1"] == 0.0  # no positive predicted: 0, not an error

    scores, truth = [1.0, 2.0, 3.0, 4.0], [1.0, 4.0, 9.0, 16.0]  # monotone, not linear
    pearson = 25 / math.sqrt(5 * 129)  # Σdx·dy / √(Σdx² · Σdy²) around the means 2.5 and 7.5
    m = glue_metrics("stsb", scores, truth)
    assert m == {"pearson": pytest.approx(pearson), "spearman": pytest.approx(1.0)}
    assert primary_score("stsb", m) == pytest.approx((pearson + 1.0) / 2)
    assert glue_metrics("stsb", scores, truth[::-1])["spearman"] == pytest.approx(-1.0)
    assert glue_metrics("stsb", [2.5] * 4, truth) == {"pearson": 0.0, "spearman": 0.0}  # constant: no correlation
