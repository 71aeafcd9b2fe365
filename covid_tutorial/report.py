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
