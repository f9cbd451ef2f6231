"""The official GLUE dev metrics, computed by scikit-learn and scipy (never by hand).

CoLA: Matthews correlation; MRPC and QQP: F1 (positive class 1) and accuracy; STS-B: Pearson and Spearman
correlation; every other task: accuracy. `predictions` are class indices, or scores for STS-B.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from autobert_zero.train.data.glue import GlueTask, get_task


def _one(metric: str, predictions: np.ndarray, labels: np.ndarray) -> float:
    if metric == "accuracy":
        return float(accuracy_score(labels, predictions))
    if metric == "f1":
        return float(f1_score(labels, predictions, zero_division=0.0))
    if metric == "matthews_corrcoef":
        return float(matthews_corrcoef(labels, predictions))
    if metric in ("pearson", "spearman"):
        if np.ptp(predictions) == 0 or np.ptp(labels) == 0:
            return 0.0  # correlation with a constant is undefined; report no correlation
        stat = pearsonr(predictions, labels) if metric == "pearson" else spearmanr(predictions, labels)
        return float(stat[0])
    raise AssertionError(f"no implementation for metric {metric}")


def glue_metrics(task: GlueTask | str, predictions: Sequence[float] | np.ndarray,
                 labels: Sequence[float] | np.ndarray) -> dict[str, float]:
    """The task's official metrics, named as in `GlueTask.metrics`."""
    task = get_task(task) if isinstance(task, str) else task
    preds, gold = np.asarray(predictions), np.asarray(labels)
    if preds.shape != gold.shape:
        raise ValueError(f"{len(preds)} predictions for {len(gold)} labels")
    if not task.is_regression:
        preds, gold = preds.astype(np.int64), gold.astype(np.int64)
    return {name: _one(name, preds, gold) for name in task.metrics}


def primary_score(task: GlueTask | str, metrics: dict[str, float]) -> float:
    """One number per task, as the GLUE leaderboard averages them (mean of the task's metrics)."""
    task = get_task(task) if isinstance(task, str) else task
    return float(np.mean([metrics[name] for name in task.metrics]))
