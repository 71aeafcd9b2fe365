"""Metrics a clinician would ask for, with honest uncertainty, and the statistics of a comparison.

Per class (one against the rest) and macro-averaged: accuracy, sensitivity (recall),
specificity, precision, F1 and ROC-AUC, computed with scikit-learn. Confidence
intervals come from a bootstrap over *patients*, not images (:func:`patient_bootstrap`):
images of one patient are alike, so resampling images would pretend we had more
independent evidence. Where every resample gives the same value (a score of 0 or 1: no
false alarm among the test patients), the bootstrap cannot widen it; such a score gets
the Wilson interval over the patients it was computed on instead
(:func:`patient_counts`, docs/intervals.md), never an interval of zero width.

Operating thresholds: :func:`threshold_for_sensitivity` picks, on validation patients,
the highest threshold on p(COVID-19) that reaches a target sensitivity; :func:`decide`
applies it; :func:`operating_point` scores the decisions, and :func:`threshold_sweep` scores
them at every threshold at once (the trade-off figure and widget). Calibration:
:func:`reliability_table`.

Across the rounds of a repeated k-fold (:mod:`covid_tutorial.compare`):
:func:`summarize_results` (mean and 95% CI, naive and corrected, on the logit scale so
that they stay within [0, 1]: :func:`logit_interval`),
:func:`corrected_resampled_ttest` and :func:`paired_tests` (Nadeau and Bengio 2003),
Holm's adjustment, :func:`pareto_front` and :func:`leaderboard`.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import (
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from .errors import DataError

__all__ = [
    "METRIC_NAMES",
    "classification_metrics",
    "patient_counts",
    "patient_bootstrap",
    "wilson_where_degenerate",
    "metrics_wide",
    "summarize_folds",
    "metrics_to_json",
    "reliability_table",
    "threshold_for_sensitivity",
    "decide",
    "operating_point",
    "threshold_sweep",
    "INTERVAL_METHOD",
    "logit_interval",
    "summarize_results",
    "corrected_resampled_ttest",
    "holm",
    "paired_tests",
    "pareto_front",
    "leaderboard",
    "summary_table",
    "KEY_COLUMNS",
    "metric_column",
    "metric_columns",
    "results_long",
]

METRIC_NAMES = ("accuracy", "sensitivity", "specificity", "precision", "f1", "roc_auc")


def patient_counts(y_true, y_pred, n_classes: int, groups=None) -> np.ndarray:
    """How many patients each score of :func:`classification_metrics` was computed on, in its
    shape (rows: classes then macro; columns: METRIC_NAMES): a patient counts where one of
    its images is in the score's denominator (sensitivity: images of the class; specificity:
    images of other classes; precision: images called the class; F1: either; ROC-AUC: images
    of the class; accuracy and the macro row: every image)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    groups = np.arange(len(y_true)) if groups is None else np.asarray(groups)

    def patients(rows) -> int:
        return len(np.unique(groups[rows]))

    everyone = patients(np.ones(len(y_true), bool))
    counts = np.full((n_classes + 1, len(METRIC_NAMES)), everyone)
    for k in range(n_classes):
        actual, called = y_true == k, y_pred == k
        counts[k, 1:] = [patients(actual), patients(~actual), patients(called), patients(actual | called),
                         patients(actual)]  # fmt: skip
    return counts


def wilson_where_degenerate(point, low, high, counts, confidence: float = 0.95):
    """Replace each interval of zero width by the Wilson interval of its score over
    ``counts`` patients; returns the new bounds and a mask of the replaced cells."""
    degenerate = np.isfinite(point) & np.isclose(low, high) & (counts > 0)
    low, high = low.copy(), high.copy()
    for r, c in zip(*np.nonzero(degenerate)):
        n = int(counts[r, c])
        successes = int(round(float(point[r, c]) * n))
        interval = stats.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
        low[r, c], high[r, c] = interval.low, interval.high
    return low, high, degenerate


def _metric_matrix(y_true: np.ndarray, y_prob: np.ndarray, n_classes: int, present=None) -> np.ndarray:
    """Rows: classes then macro; columns: METRIC_NAMES. Classes not ``present`` in the data
    scored (a RUN evaluated on a collection that lacks one of its classes) get no row
    values and stay out of the macro average."""
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
    per_class = np.column_stack([accuracy, recall, specificity, precision, f1, auc]).astype(float)
    if present is not None:
        per_class[~present] = np.nan
    scored = per_class if present is None else per_class[present]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a metric undefined for every class: NaN
        macro = np.nanmean(scored, axis=0) if np.isfinite(scored).any() else per_class[0].copy()
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
    The "macro" rows average the classes; its accuracy is the overall accuracy. A score whose
    bootstrap interval has zero width gets the Wilson interval over its patients instead;
    ``table.attrs["wilson"]`` lists those scores as "class/metric".
    """
    y_true = np.asarray(y_true)
    y_prob = np.asarray(y_prob, dtype=float)
    n_classes = len(class_names)
    present = np.bincount(y_true, minlength=n_classes)[:n_classes] > 0
    present = None if present.all() else present
    point = _metric_matrix(y_true, y_prob, n_classes, present)
    low, high, n_patients = patient_bootstrap(
        lambda rows: _metric_matrix(y_true[rows], y_prob[rows], n_classes, present),
        len(y_true), groups, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed, shape=point.shape,
    )
    counts = patient_counts(y_true, y_prob.argmax(axis=1), n_classes, groups)
    low, high, wilson = wilson_where_degenerate(point, low, high, counts, confidence)
    records = []
    for r, name in enumerate([*class_names, "macro"]):
        for c, metric in enumerate(METRIC_NAMES):
            records.append((name, metric, point[r, c], low[r, c], high[r, c]))
    table = pd.DataFrame(records, columns=["class", "metric", "value", "ci_low", "ci_high"])
    absent = [] if present is None else [name for name, here in zip(class_names, present) if not here]
    rows = [*class_names, "macro"]
    table.attrs.update(n_images=len(y_true), n_patients=n_patients, n_bootstrap=n_bootstrap, absent_classes=absent,
                       wilson=[f"{rows[r]}/{METRIC_NAMES[c]}" for r, c in zip(*np.nonzero(wilson))])  # fmt: skip
    return table


def patient_bootstrap(statistic, n_rows: int, groups=None, *, n_bootstrap: int = 1000, confidence: float = 0.95,
                      seed: int = 0, shape=()) -> tuple[np.ndarray, np.ndarray, int]:
    """Percentile interval of ``statistic(rows)`` over bootstrap resamples of whole patients.

    Each round draws as many patients as there are, with replacement, and keeps all images
    of each drawn patient: images of one patient are alike, so resampling images would
    pretend there was more independent evidence. ``groups`` holds each row's patient id
    (default: every row its own patient). Returns ``(low, high, number of patients)``;
    without rounds the interval is NaN of ``shape``.
    """
    groups = np.arange(n_rows) if groups is None else np.asarray(groups)
    patients, inverse = np.unique(groups, return_inverse=True)
    rows_of = [np.flatnonzero(inverse == p) for p in range(len(patients))]
    rng = np.random.default_rng(seed)
    rounds = []
    for _ in range(n_bootstrap):
        rows = np.concatenate([rows_of[p] for p in rng.integers(0, len(patients), len(patients))])
        with np.errstate(invalid="ignore", divide="ignore"):
            rounds.append(statistic(rows))
    if not rounds:
        return np.full(shape, np.nan), np.full(shape, np.nan), len(patients)
    alpha = (1 - confidence) / 2
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a class absent from a round: NaN, skipped
        low, high = np.nanquantile(np.stack(rounds), [alpha, 1 - alpha], axis=0)
    return low, high, len(patients)


def metrics_wide(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Classes as rows and metrics as columns, each cell "value [low, high]"; a class absent
    from the data scored says so, and the macro row says over which classes it averages."""
    absent = set(table.attrs.get("absent_classes", []))

    def cell(row) -> str:
        if row["class"] in absent:
            return "absent from these data"
        return f"{row.value:.{digits}f} [{row.ci_low:.{digits}f}, {row.ci_high:.{digits}f}]"

    cell = table.apply(cell, axis=1)
    wide = table.assign(cell=cell).pivot(index="class", columns="metric", values="cell")
    order = list(dict.fromkeys(table["class"]))
    wide = wide.loc[order, list(METRIC_NAMES)]
    if absent:
        present = [name for name in order if name not in absent and name != "macro"]
        wide = wide.rename(index={"macro": f"macro (over {', '.join(present)})"})
    return wide


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


def reliability_table(y_true, y_prob, *, class_index: int | None = None, n_bins: int = 10) -> pd.DataFrame:
    """Calibration in equal-width bins of predicted probability.

    With ``class_index=None``: the confidence of the predicted class against how often the
    prediction is right. With a class index: that class's probability against how often
    the image really is of that class. ``attrs["ece"]`` holds the expected calibration
    error: the count-weighted mean gap between confidence and observed frequency.
    """
    y_true, y_prob = np.asarray(y_true), np.asarray(y_prob, dtype=float)
    if class_index is None:
        confidence = y_prob.max(axis=1)
        hit = (y_prob.argmax(axis=1) == y_true).astype(float)
    else:
        confidence = y_prob[:, class_index]
        hit = (y_true == class_index).astype(float)
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        inside = which == b
        rows.append(
            {
                "bin_low": edges[b],
                "bin_high": edges[b + 1],
                "images": int(inside.sum()),
                "mean_confidence": confidence[inside].mean() if inside.any() else np.nan,
                "observed": hit[inside].mean() if inside.any() else np.nan,
            }
        )
    table = pd.DataFrame(rows)
    filled = table[table["images"] > 0]
    gaps = (filled["mean_confidence"] - filled["observed"]).abs()
    table.attrs["ece"] = float((gaps * filled["images"]).sum() / max(len(y_true), 1))
    return table


def threshold_for_sensitivity(
    y_true, probabilities, class_names, *, positive: str = "COVID-19", target: float = 0.95
) -> float:
    """The highest threshold on p(``positive``) at which :func:`decide` finds at least
    ``target`` of the ``positive`` images. 1.0 when the most probable class already does,
    because the threshold can only add ``positive`` answers. Choose it on validation
    patients, then report it on test patients."""
    k = list(class_names).index(positive)
    probabilities = np.asarray(probabilities, dtype=float)
    is_positive = np.asarray(y_true) == k
    if not is_positive.any():
        raise DataError(f"no {positive} images to choose a threshold on; use a split that has some.")
    scores = probabilities[is_positive, k]
    found = probabilities[is_positive].argmax(axis=1) == k
    if found.mean() >= target:
        return 1.0
    for threshold in np.unique(scores)[::-1]:
        if np.mean(found | (scores >= threshold)) >= target:
            return float(threshold)
    raise AssertionError("the lowest score finds every positive image")  # pragma: no cover


def decide(probabilities, class_names, *, positive: str = "COVID-19", threshold: float | None = None) -> np.ndarray:
    """Predicted class indices: ``positive`` whenever p(positive) >= ``threshold``, otherwise
    the most probable class. A threshold can only add ``positive`` answers, never remove
    one: it buys sensitivity with specificity. Without a threshold: the most probable class."""
    probabilities = np.asarray(probabilities, dtype=float)
    predicted = probabilities.argmax(axis=1)
    if threshold is None:
        return predicted
    k = list(class_names).index(positive)
    return np.where(probabilities[:, k] >= threshold, k, predicted)


def _binary_rates(is_positive, said_positive) -> np.ndarray:
    tp = np.sum(is_positive & said_positive)
    fn = np.sum(is_positive & ~said_positive)
    tn = np.sum(~is_positive & ~said_positive)
    fp = np.sum(~is_positive & said_positive)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.array([tp / (tp + fn), tn / (tn + fp), tp / (tp + fp), tn / (tn + fn)], dtype=float)


def operating_point(
    y_true, probabilities, class_names, *, positive: str = "COVID-19", threshold: float | None = None,
    groups=None, n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0,
) -> pd.DataFrame:
    """Sensitivity, specificity, precision (PPV) and NPV of ``positive`` against the rest for
    the decisions of :func:`decide`, with bootstrap CIs over ``groups`` (patients)."""
    k = list(class_names).index(positive)
    is_positive = np.asarray(y_true) == k
    said_positive = decide(probabilities, class_names, positive=positive, threshold=threshold) == k
    point = _binary_rates(is_positive, said_positive)
    low, high, n_patients = patient_bootstrap(
        lambda rows: _binary_rates(is_positive[rows], said_positive[rows]),
        len(is_positive), groups, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed, shape=point.shape,
    )
    table = pd.DataFrame(
        {"metric": ["sensitivity", "specificity", "precision", "npv"], "value": point, "ci_low": low, "ci_high": high}
    )
    table.attrs.update(threshold=threshold, positive=positive, n_images=len(is_positive), n_patients=n_patients)
    return table


def threshold_sweep(
    y_true, probabilities, class_names, *, positive: str = "COVID-19", thresholds=None
) -> pd.DataFrame:
    """Sensitivity, specificity, precision (PPV) and NPV of ``positive`` against the rest for the
    decisions of :func:`decide`, one row per threshold, with the counts tp, fn, tn, fp.

    ``thresholds`` None: 0, every distinct p(``positive``) and 1, ascending; the rule's
    decisions change only at those values, and a row holds for every threshold above the
    previous row's up to its own. ``np.inf`` scores the most probable class (no threshold);
    so does 1.0, since p(``positive``) = 1 makes ``positive`` the most probable class anyway.
    Rates with no images to count are NaN, as in :func:`operating_point`.
    """
    k = list(class_names).index(positive)
    probabilities = np.asarray(probabilities, dtype=float)
    is_positive = np.asarray(y_true) == k
    scores = probabilities[:, k]
    if thresholds is None:
        thresholds = np.unique(np.concatenate([[0.0], scores, [1.0]]))
    thresholds = np.asarray(thresholds, dtype=float).ravel()
    always = probabilities.argmax(axis=1) == k  # positive whatever the threshold
    counts = {}
    for truth, name in ((is_positive, "positive"), (~is_positive, "negative")):
        # images of this truth that the threshold adds: positive score >= t, not already positive
        added = np.sort(scores[truth & ~always])
        n_added = len(added) - np.searchsorted(added, thresholds, side="left")
        counts[name] = np.sum(truth & always) + n_added
    tp, fp = counts["positive"], counts["negative"]
    fn, tn = is_positive.sum() - tp, (~is_positive).sum() - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = {"sensitivity": tp / (tp + fn), "specificity": tn / (tn + fp), "precision": tp / (tp + fp),
                 "npv": tn / (tn + fn)}  # fmt: skip
    table = pd.DataFrame({"threshold": thresholds, **{m: np.asarray(v, dtype=float) for m, v in rates.items()},
                          "tp": tp, "fn": fn, "tn": tn, "fp": fp})  # fmt: skip
    table.attrs.update(positive=positive, n_images=len(is_positive))
    return table


def _t_quantile(confidence: float, df) -> np.ndarray:
    return stats.t.ppf(0.5 + confidence / 2, np.maximum(np.asarray(df, dtype=float), 1))


INTERVAL_METHOD = (
    "95% t-interval over the rounds (t with k-1 degrees of freedom; corrected: sd * sqrt(1/k + n_test/n_train), "
    "Nadeau and Bengio 2003), computed on the logit scale (delta method) and transformed back, so that it stays "
    "within [0, 1]"
)


WILSON_ACROSS_ROUNDS = (
    "; where every round gave the same score, the Wilson interval of that score over the fewest test images "
    "one round scores per class (docs/intervals.md)"
)


def logit_interval(mean, standard_error, t) -> tuple[np.ndarray, np.ndarray]:
    """A symmetric interval on the logit scale, transformed back: it stays within [0, 1].

    For a metric bounded in [0, 1] (F1, sensitivity, AUC...) averaged over few rounds, the
    usual mean +- t * se can leave [0, 1]. Here the standard error is carried to the logit
    scale by the delta method, se / (m (1 - m)), the interval logit(m) +- t * that is
    formed there, and both ends are mapped back with the logistic function. It is
    asymmetric, shrinks towards the nearer bound, and is the point ``[m, m]`` when the
    rounds agree exactly (se 0), also at m = 0 or 1. NaN where ``se`` is NaN (one round).
    """
    m = np.asarray(mean, dtype=float)
    se = np.asarray(standard_error, dtype=float)
    t = np.asarray(t, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        inside = (m > 0) & (m < 1) & (se > 0)
        safe = np.where(inside, m, 0.5)
        centre = np.log(safe / (1 - safe))
        half = t * se / (safe * (1 - safe))
        low = np.where(inside, 1 / (1 + np.exp(-(centre - half))), m)
        high = np.where(inside, 1 / (1 + np.exp(-(centre + half))), m)
    unknown = ~np.isfinite(se) | ~np.isfinite(m)
    return np.where(unknown, np.nan, low), np.where(unknown, np.nan, high)


def summarize_results(results: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Mean and 95% CI across rounds per (model, class, metric), naive and corrected, within [0, 1].

    ``ci_low``/``ci_high``: the t-interval over the k rounds, standard error sd / sqrt(k),
    the kind of interval the paper reports. Rounds of a k-fold cross-validation share
    most of their training data and are not independent, so that interval is too narrow;
    ``ci_low_corrected``/``ci_high_corrected`` widen the standard error with Nadeau and
    Bengio's correction, sd * sqrt(1/k + n_test/n_train). Every metric here lies in
    [0, 1], and with few rounds mean +- t * se would leave that range (e.g. [-2.27, 2.73]
    for two rounds): both intervals are therefore formed on the logit scale
    (:func:`logit_interval`) and stay within [0, 1]. ``attrs["interval_method"]`` says so
    in words, for a page or report to print.
    """
    summary = summarize_folds(results_long(results), confidence=confidence)
    ratio = (results["n_test_images"] / results["n_train_images"]).groupby(results["model"]).mean()
    summary["test_train_ratio"] = summary["model"].map(ratio)
    t = _t_quantile(confidence, summary["k"] - 1)
    se_naive = summary["sd"] / np.sqrt(summary["k"])
    se_corrected = summary["sd"] * np.sqrt(1 / summary["k"] + summary["test_train_ratio"])
    summary["ci_low"], summary["ci_high"] = logit_interval(summary["mean"], se_naive, t)
    summary["ci_low_corrected"], summary["ci_high_corrected"] = logit_interval(summary["mean"], se_corrected, t)
    # Rounds that agree exactly (a sensitivity of 1 in every round) leave an interval of zero
    # width: the Wilson interval over the fewest images one round scores per class replaces it.
    classes = summary.loc[summary["class"] != "macro", "class"].nunique() or 1
    images = results.groupby("model")["n_test_images"].min()
    counts = summary["model"].map(images) / np.where(summary["class"] == "macro", 1, classes)
    summary["wilson"] = False
    for low, high in (("ci_low", "ci_high"), ("ci_low_corrected", "ci_high_corrected")):
        bounds = summary[[low, high]].to_numpy(float)
        new_low, new_high, replaced = wilson_where_degenerate(
            summary[["mean"]].to_numpy(float), bounds[:, :1], bounds[:, 1:], np.floor(counts.to_numpy(float))[:, None],
            confidence)  # fmt: skip
        summary[low], summary[high] = new_low[:, 0], new_high[:, 0]
        summary["wilson"] |= replaced[:, 0]
    summary.attrs["interval_method"] = INTERVAL_METHOD + WILSON_ACROSS_ROUNDS
    return summary


def corrected_resampled_ttest(scores_a, scores_b, test_train_ratio: float, confidence: float = 0.95) -> dict:
    """Nadeau and Bengio's (2003) corrected resampled t-test of two models on the same rounds.

    With d_j = a_j - b_j on each of the J rounds (same training and test patients for
    both models), mean d and variance s^2 (ddof 1):

        t = mean(d) / sqrt((1/J + n_test/n_train) * s^2),   J - 1 degrees of freedom.

    The plain paired t-test uses 1/J alone and, because the rounds share training data,
    rejects far too often; the n_test/n_train term (1/(k-1) for k folds) corrects that
    (Bouckaert and Frank 2004 use it for repeated k-fold). Returns t, p (two-sided), the
    corrected CI of the mean difference, and the naive t and p for contrast.
    """
    d = np.asarray(scores_a, dtype=float) - np.asarray(scores_b, dtype=float)
    d = d[np.isfinite(d)]
    rounds = len(d)
    out = {"rounds": rounds, "mean_difference": float(d.mean()) if rounds else np.nan, "test_train_ratio": float(test_train_ratio)}
    if rounds < 2:
        return {**out, "sd_difference": np.nan, "t": np.nan, "df": np.nan, "p_value": np.nan,
                "ci_low": np.nan, "ci_high": np.nan, "t_naive": np.nan, "p_naive": np.nan}  # fmt: skip
    sd = float(d.std(ddof=1))
    df = rounds - 1
    se = sd * math.sqrt(1 / rounds + test_train_ratio)
    se_naive = sd * math.sqrt(1 / rounds)
    mean = out["mean_difference"]

    def t_and_p(standard_error):
        if standard_error == 0:
            return (0.0, 1.0) if mean == 0 else (math.copysign(math.inf, mean), 0.0)
        t = mean / standard_error
        return t, float(2 * stats.t.sf(abs(t), df))

    t, p = t_and_p(se)
    t_naive, p_naive = t_and_p(se_naive)
    half = float(_t_quantile(confidence, df)) * se
    return {**out, "sd_difference": sd, "t": t, "df": df, "p_value": p, "ci_low": mean - half,
            "ci_high": mean + half, "t_naive": t_naive, "p_naive": p_naive}  # fmt: skip


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of p-values for several comparisons at once."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def paired_tests(results: pd.DataFrame, metric: str = "f1", class_name: str = "macro", models=None, leaders: int = 3) -> pd.DataFrame:
    """Corrected resampled t-tests between the leading models, round by round.

    ``models`` None takes the ``leaders`` models with the highest mean of
    (``class_name``, ``metric``); every pair of them is tested on the rounds both
    finished. ``p_holm`` adjusts the p-values for the number of pairs.
    """
    column = metric_column(class_name, metric)
    means = results.groupby("model")[column].mean().sort_values(ascending=False)
    chosen = list(means.index[:leaders]) if models is None else list(models)
    rows = []
    for i, first in enumerate(chosen):
        for second in chosen[i + 1 :]:
            a = results[results["model"] == first].set_index(["repeat", "fold"])
            b = results[results["model"] == second].set_index(["repeat", "fold"])
            common = a.index.intersection(b.index)
            ratio = float((a.loc[common, "n_test_images"] / a.loc[common, "n_train_images"]).mean()) if len(common) else np.nan
            test = corrected_resampled_ttest(a.loc[common, column], b.loc[common, column], ratio)
            rows.append({"model_a": first, "model_b": second, "class": class_name, "metric": metric,
                         "mean_a": float(a.loc[common, column].mean()), "mean_b": float(b.loc[common, column].mean()),
                         **test})  # fmt: skip
    table = pd.DataFrame(rows)
    if not table.empty:
        valid = table["p_value"].notna()
        table["p_holm"] = np.nan
        table.loc[valid, "p_holm"] = holm(table.loc[valid, "p_value"])
    return table


def pareto_front(cost, score) -> np.ndarray:
    """True for the points no other point beats: none is at least as cheap *and* at least as good (one strictly)."""
    cost, score = np.asarray(cost, dtype=float), np.asarray(score, dtype=float)
    front = np.zeros(len(cost), dtype=bool)
    for i in range(len(cost)):
        if not (np.isfinite(cost[i]) and np.isfinite(score[i])):
            continue
        dominated = (cost <= cost[i]) & (score >= score[i]) & ((cost < cost[i]) | (score > score[i]))
        front[i] = not dominated.any()
    return front


def leaderboard(results: pd.DataFrame, summary: pd.DataFrame | None = None, metric: str = "f1") -> pd.DataFrame:
    """One row per model: macro ``metric`` (mean, corrected CI), rounds, parameters, latency, images/s, device."""
    summary = summarize_results(results) if summary is None else summary
    macro = summary[(summary["class"] == "macro") & (summary["metric"] == metric)].set_index("model")
    per_model = results.groupby("model").agg(
        rounds=("fold", "size"), params_M=("params", lambda p: p.iloc[0] / 1e6), latency_ms=("latency_ms", "median"),
        images_per_s=("images_per_s", "median"), image_size=("image_size", "first"), device=("device", "first"),
    )  # fmt: skip
    board = per_model.join(macro[["mean", "ci_low", "ci_high", "ci_low_corrected", "ci_high_corrected"]])
    board = board.rename(columns={"mean": f"macro_{metric}"}).sort_values(f"macro_{metric}", ascending=False)
    board["front_latency"] = pareto_front(board["latency_ms"], board[f"macro_{metric}"])
    board["front_params"] = pareto_front(board["params_M"], board[f"macro_{metric}"])
    return board


def summary_table(summary: pd.DataFrame, metrics=("f1", "sensitivity", "specificity", "precision", "roc_auc"),
                  corrected: bool = True, digits: int = 3) -> pd.DataFrame:  # fmt: skip
    """Models x classes (macro first, then each class) as rows, metrics as columns: "mean [low, high]"."""
    low, high = ("ci_low_corrected", "ci_high_corrected") if corrected else ("ci_low", "ci_high")
    shown = summary[summary["metric"].isin(metrics)].copy()
    shown["cell"] = [
        f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" if np.isfinite(m) else "-"
        for m, lo, hi in zip(shown["mean"], shown[low].fillna(np.nan), shown[high].fillna(np.nan))
    ]
    wide = shown.pivot_table(index=["model", "class"], columns="metric", values="cell", aggfunc="first")
    classes = ["macro"] + [c for c in dict.fromkeys(summary["class"]) if c != "macro"]
    models = list(dict.fromkeys(summary["model"]))
    order = [(m, c) for m in models for c in classes if (m, c) in wide.index]
    return wide.loc[order, [m for m in metrics if m in wide.columns]]


KEY_COLUMNS = ["model", "repeat", "fold"]


def metric_column(class_name: str, metric: str) -> str:
    """Name of a metric's column in a results file: ``"<class>|<metric>"``, e.g. ``"macro|f1"``."""
    return f"{class_name}|{metric}"


def metric_columns(results: pd.DataFrame) -> list[str]:
    return [c for c in results.columns if "|" in c]


def results_long(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, repeat, fold, class, metric) with its ``value``."""
    columns = metric_columns(results)
    long = results[KEY_COLUMNS + columns].melt(id_vars=KEY_COLUMNS, var_name="column", value_name="value")
    long[["class", "metric"]] = long["column"].str.split("|", n=1, expand=True)
    return long.drop(columns="column")[KEY_COLUMNS + ["class", "metric", "value"]]
