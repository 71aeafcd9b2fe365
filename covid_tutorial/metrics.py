"""Metrics a clinician would ask for, with honest uncertainty.

Per class (one against the rest) and macro-averaged: accuracy, sensitivity (recall),
specificity, precision, F1 and ROC-AUC, computed with scikit-learn. Confidence
intervals come from a bootstrap over *patients*, not images: images of one patient
are alike, so resampling images would pretend we had more independent evidence.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

METRIC_NAMES = ("accuracy", "sensitivity", "specificity", "precision", "f1", "roc_auc")


def _metric_matrix(y_true: np.ndarray, y_prob: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows: classes then macro; columns: METRIC_NAMES."""
    y_pred = y_prob.argmax(axis=1)
    labels = np.arange(n_classes)
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    total = matrix.sum()
    tp = np.diag(matrix)
    fp = matrix.sum(axis=0) - tp
    fn = matrix.sum(axis=1) - tp
    tn = total - tp - fp - fn
    with np.errstate(invalid="ignore", divide="ignore"):
        specificity = np.where(tn + fp > 0, tn / (tn + fp), np.nan)
    accuracy = (tp + tn) / total
    auc = np.full(n_classes, np.nan)
    for k in labels:
        positive = y_true == k
        if 0 < positive.sum() < len(y_true):
            auc[k] = roc_auc_score(positive, y_prob[:, k])
    per_class = np.column_stack([accuracy, recall, specificity, precision, f1, auc])
    macro = np.nanmean(per_class, axis=0) if np.isfinite(per_class).any() else per_class[0]
    macro[0] = tp.sum() / total  # overall accuracy, not the mean of one-vs-rest accuracies
    return np.vstack([per_class, macro])


def classification_metrics(
    y_true,
    y_prob,
    class_names,
    groups=None,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """A tidy table: one row per (class, metric) with value and bootstrap CI over ``groups``.

    ``y_true`` holds class indices, ``y_prob`` the predicted probabilities (n, classes),
    ``groups`` the patient id of each row (default: each image is its own patient).
    The "macro" rows average the classes; its accuracy is the overall accuracy.
    """
    y_true = np.asarray(y_true)
    y_prob = np.asarray(y_prob, dtype=float)
    n_classes = len(class_names)
    point = _metric_matrix(y_true, y_prob, n_classes)
    groups = np.arange(len(y_true)) if groups is None else np.asarray(groups)
    patients, inverse = np.unique(groups, return_inverse=True)
    rows_of = [np.flatnonzero(inverse == p) for p in range(len(patients))]
    rng = np.random.default_rng(seed)
    rounds = []
    for _ in range(n_bootstrap):
        chosen = rng.integers(0, len(patients), len(patients))
        rows = np.concatenate([rows_of[p] for p in chosen])
        with np.errstate(invalid="ignore", divide="ignore"):
            rounds.append(_metric_matrix(y_true[rows], y_prob[rows], n_classes))
    alpha = (1 - confidence) / 2
    if rounds:
        with np.errstate(invalid="ignore"), _quiet_nan_warnings():
            low = np.nanquantile(np.stack(rounds), alpha, axis=0)
            high = np.nanquantile(np.stack(rounds), 1 - alpha, axis=0)
    else:
        low = high = np.full_like(point, np.nan)
    records = []
    for r, name in enumerate([*class_names, "macro"]):
        for c, metric in enumerate(METRIC_NAMES):
            records.append((name, metric, point[r, c], low[r, c], high[r, c]))
    table = pd.DataFrame(records, columns=["class", "metric", "value", "ci_low", "ci_high"])
    table.attrs.update(n_images=len(y_true), n_patients=len(patients), n_bootstrap=n_bootstrap)
    return table


class _quiet_nan_warnings:
    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)


def metrics_wide(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Classes as rows and metrics as columns, each cell "value [low, high]"."""
    cell = table.apply(
        lambda r: f"{r.value:.{digits}f} [{r.ci_low:.{digits}f}, {r.ci_high:.{digits}f}]", axis=1
    )
    wide = table.assign(cell=cell).pivot(index="class", columns="metric", values="cell")
    order = list(dict.fromkeys(table["class"]))
    return wide.loc[order, list(METRIC_NAMES)]


def summarize_folds(per_fold: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Mean and t-based CI across folds (or rounds) of a long table with a ``value`` column.

    ``per_fold`` has one row per (fold, class, metric); the CI is
    mean ± t(k-1) · sd / sqrt(k) over the k folds.
    """
    keys = [c for c in per_fold.columns if c in ("model", "class", "metric")]
    grouped = per_fold.groupby(keys, sort=False)["value"]
    summary = grouped.agg(mean="mean", sd="std", k="count").reset_index()
    t = stats.t.ppf(0.5 + confidence / 2, np.maximum(summary["k"] - 1, 1))
    half = t * summary["sd"] / np.sqrt(summary["k"])
    summary["ci_low"] = summary["mean"] - half
    summary["ci_high"] = summary["mean"] + half
    return summary


def metrics_to_json(table: pd.DataFrame, confusion: np.ndarray, class_names) -> dict:
    """A JSON-ready dict: {class: {metric: {value, ci_low, ci_high}}} plus the confusion matrix."""
    out: dict = {"classes": list(class_names), "metrics": {}}
    columns = ["class", "metric", "value", "ci_low", "ci_high"]
    for name, metric, value, low, high in table[columns].itertuples(index=False, name=None):
        out["metrics"].setdefault(name, {})[metric] = {
            "value": _finite(value),
            "ci_low": _finite(low),
            "ci_high": _finite(high),
        }
    out["confusion_matrix"] = np.asarray(confusion).tolist()
    out.update({k: v for k, v in table.attrs.items()})
    return json.loads(json.dumps(out))


def _finite(value):
    return None if value is None or not np.isfinite(value) else float(value)
