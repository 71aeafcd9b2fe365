"""Report: the figures of the course and a self-contained HTML page that shows them.

Figures are built on ``matplotlib.figure.Figure`` (no pyplot state), so the same
functions draw in a notebook, in the command line and in tests.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from sklearn.metrics import RocCurveDisplay

from . import NOT_FOR_CLINICAL_USE


def plot_confusion_matrix(confusion: np.ndarray, class_names) -> Figure:
    fig = Figure(figsize=(4.5, 4))
    ax = fig.subplots()
    sns.heatmap(
        confusion, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax,
        xticklabels=class_names, yticklabels=class_names,
    )
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix (test patients)")
    fig.tight_layout()
    return fig


def plot_roc_curves(y_true, y_prob, class_names) -> Figure:
    """One-vs-rest ROC curve per class (scikit-learn's RocCurveDisplay)."""
    fig = Figure(figsize=(4.5, 4))
    ax = fig.subplots()
    for k, name in enumerate(class_names):
        positive = np.asarray(y_true) == k
        if 0 < positive.sum() < len(positive):
            RocCurveDisplay.from_predictions(positive, np.asarray(y_prob)[:, k], name=name, ax=ax)
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    ax.set(title="ROC, one class against the rest", xlabel="1 - specificity", ylabel="sensitivity")
    fig.tight_layout()
    return fig


def plot_training_curves(history: pd.DataFrame) -> Figure:
    """Loss and accuracy per epoch, training against validation, stages joined."""
    fig = Figure(figsize=(8, 3.2))
    axes = fig.subplots(1, 2)
    epochs = np.arange(1, len(history) + 1)
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, history[metric], label="train")
        ax.plot(epochs, history[f"val_{metric}"], label="validation")
        changes = np.flatnonzero(history["stage"].to_numpy()[1:] != history["stage"].to_numpy()[:-1])
        for change in changes:
            ax.axvline(change + 1.5, color="grey", ls="--", lw=1)
        ax.set(xlabel="epoch", title=metric)
        ax.legend()
    fig.tight_layout()
    return fig


def plot_image_grid(images, titles, columns: int = 4, size: float = 2.2) -> Figure:
    """A grid of grayscale or RGB images with titles (e.g. Grad-CAM overlays)."""
    rows = int(np.ceil(len(images) / columns))
    fig = Figure(figsize=(columns * size, rows * (size + 0.3)))
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, image, title in zip(axes, images, titles):
        ax.imshow(image, cmap="gray" if np.ndim(image) == 2 else None)
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def figure_to_png(fig: Figure, path: Path | None = None) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    data = buffer.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def write_html_report(path: Path, title: str, sections: list[tuple[str, object]]) -> Path:
    """Write one self-contained HTML file. Each section is (heading, content) where content
    is a Figure, a DataFrame, or text (HTML-escaped)."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:960px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}"
        ".warn{background:#fff3cd;padding:.6em;border:1px solid #e0c060}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='warn'>{html.escape(NOT_FOR_CLINICAL_USE)}</p>",
    ]
    for heading, content in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if isinstance(content, Figure):
            encoded = base64.b64encode(figure_to_png(content)).decode("ascii")
            parts.append(f"<img alt='{html.escape(heading)}' src='data:image/png;base64,{encoded}'>")
        elif isinstance(content, pd.DataFrame):
            parts.append(content.to_html(na_rep="–"))
        else:
            parts.append(f"<pre>{html.escape(str(content))}</pre>")
    parts.append("</body></html>")
    path = Path(path)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


# ---------------------------------------------------------------- evaluation figures (notebook 04)


def plot_precision_recall_curves(y_true, y_prob, class_names) -> Figure:
    """One-vs-rest precision-recall curve per class, with each class's prevalence (the
    precision of guessing) as a dotted line: unlike ROC, these curves change with prevalence."""
    from sklearn.metrics import PrecisionRecallDisplay

    fig = Figure(figsize=(4.5, 4))
    ax = fig.subplots()
    y_true, y_prob = np.asarray(y_true), np.asarray(y_prob)
    for k, name in enumerate(class_names):
        positive = y_true == k
        if 0 < positive.sum() < len(positive):
            display = PrecisionRecallDisplay.from_predictions(positive, y_prob[:, k], name=name, ax=ax)
            ax.axhline(positive.mean(), ls=":", lw=1, color=display.line_.get_color())
    ax.set(
        title="Precision-recall, one class against the rest",
        xlabel="recall (sensitivity)", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.05),
    )
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


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


def plot_reliability_diagram(y_true, y_prob, *, class_index: int | None = None, class_name: str | None = None, n_bins: int = 10) -> Figure:
    """Reliability diagram: observed frequency against predicted probability per bin, the
    diagonal for a perfectly calibrated model, and how many images fall in each bin."""
    table = reliability_table(y_true, y_prob, class_index=class_index, n_bins=n_bins)
    fig = Figure(figsize=(4.5, 5))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    centres = (table["bin_low"] + table["bin_high"]) / 2
    width = 1.0 / n_bins
    top.bar(centres, table["observed"].fillna(0), width=width * 0.9, color="tab:blue", alpha=0.7, label="observed")
    top.plot([0, 1], [0, 1], ls="--", color="grey", label="perfect calibration")
    top.plot(table["mean_confidence"], table["observed"], "o", color="tab:red", ms=4, label="mean confidence")
    what = "predicted class" if class_index is None else (class_name or f"class {class_index}")
    top.set(
        ylabel="observed frequency" if class_index is not None else "accuracy",
        ylim=(0, 1.02),
        title=f"Reliability ({what}), ECE {table.attrs['ece']:.3f}",
    )
    top.legend(fontsize=8, loc="upper left")
    bottom.bar(centres, table["images"], width=width * 0.9, color="grey")
    bottom.set(xlabel=f"predicted probability ({what})", ylabel="images", xlim=(0, 1))
    fig.tight_layout()
    return fig


def plot_threshold_tradeoff(positive, scores, *, threshold: float | None = None, name: str = "COVID-19") -> Figure:
    """Sensitivity and specificity for one class as its decision threshold moves."""
    from sklearn.metrics import roc_curve

    positive, scores = np.asarray(positive, dtype=bool), np.asarray(scores, dtype=float)
    fpr, tpr, thresholds = roc_curve(positive, scores)
    keep = np.isfinite(thresholds)
    fig = Figure(figsize=(5, 3.4))
    ax = fig.subplots()
    ax.step(thresholds[keep], tpr[keep], where="post", label="sensitivity")
    ax.step(thresholds[keep], 1 - fpr[keep], where="post", label="specificity")
    if threshold is not None:
        ax.axvline(threshold, color="tab:red", ls="--", lw=1, label=f"chosen threshold {threshold:.3f}")
    ax.set(xlabel=f"threshold on p({name})", ylabel="rate", xlim=(0, 1), ylim=(0, 1.05),
           title=f"{name} against the rest: what a threshold buys and costs")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def error_order(y_true, y_pred, y_prob, positive_index: int) -> np.ndarray:
    """Indices of the misclassified images, most costly first: missed positives (false
    negatives, the most confidently missed first), then false alarms (false positives,
    most confident first), then confusions between the other classes."""
    y_true, y_pred, y_prob = np.asarray(y_true), np.asarray(y_pred), np.asarray(y_prob)
    score = y_prob[:, positive_index]
    missed = np.flatnonzero((y_true == positive_index) & (y_pred != positive_index))
    alarms = np.flatnonzero((y_true != positive_index) & (y_pred == positive_index))
    others = np.flatnonzero((y_true != y_pred) & (y_true != positive_index) & (y_pred != positive_index))
    confidence = y_prob[np.arange(len(y_pred)), y_pred]
    return np.concatenate(
        [
            missed[np.argsort(score[missed], kind="stable")],
            alarms[np.argsort(-score[alarms], kind="stable")],
            others[np.argsort(-confidence[others], kind="stable")],
        ]
    ).astype(int)


def plot_error_gallery(
    images, y_true, y_prob, class_names, *, positive: str = "COVID-19", y_pred=None,
    max_images: int = 12, columns: int = 6, size: float = 2.0,
) -> Figure:
    """The misclassified images, false negatives of ``positive`` first (:func:`error_order`),
    each titled with its kind of error, true and predicted class and p(positive)."""
    y_true, y_prob = np.asarray(y_true), np.asarray(y_prob)
    y_pred = y_prob.argmax(axis=1) if y_pred is None else np.asarray(y_pred)
    k = list(class_names).index(positive)
    order = error_order(y_true, y_pred, y_prob, k)[:max_images]
    if len(order) == 0:
        fig = Figure(figsize=(4, 1))
        ax = fig.subplots()
        ax.axis("off")
        ax.text(0.5, 0.5, f"no misclassified images among {len(y_true)}", ha="center", va="center")
        return fig
    titles = []
    for i in order:
        kind = "MISSED" if y_true[i] == k else ("false alarm" if y_pred[i] == k else "confusion")
        titles.append(f"{kind}: {class_names[y_true[i]]} → {class_names[y_pred[i]]}\np({positive}) = {y_prob[i, k]:.2f}")
    return plot_image_grid([images[i] for i in order], titles, columns=min(columns, len(order)), size=size)
