"""Figures: every plot of the course, heatmap overlays, and the self-contained HTML report.

Figures are built on ``matplotlib.figure.Figure`` (no pyplot state), so the same
functions draw in a notebook, in the command line and in tests. Overlays
(:func:`overlay_heatmap`, :func:`overlay_with_outline`) are RGB uint8 arrays drawn with OpenCV.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker
from matplotlib.figure import Figure
from sklearn.metrics import RocCurveDisplay

from . import NOT_FOR_CLINICAL_USE
from .decisions import AUDIT_METRICS
from .metrics import (
    reliability_table,
    threshold_sweep,
)

__all__ = [
    "save_evaluation_figures",
    "plot_confusion_matrix",
    "plot_roc_curves",
    "plot_training_curves",
    "plot_image_grid",
    "figure_to_png",
    "describe_figure",
    "alt_text_formatter",
    "write_html_report",
    "plot_precision_recall_curves",
    "plot_reliability_diagram",
    "plot_threshold_tradeoff",
    "error_order",
    "ERROR_KINDS",
    "plot_error_gallery",
    "plot_data_efficiency",
    "feature_map_grid",
    "draw_mask_outline",
    "overlay_with_outline",
    "plot_map_grid",
    "HEATMAP_COLORMAP",
    "add_heatmap_colorbar",
    "overlay_heatmap",
    "plot_pareto",
    "plot_decision_curve",
    "plot_calibration_change",
    "plot_risk_coverage",
    "plot_subgroup_audit",
    "save_decision_figures",
]


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
    lines = max((str(title).count("\n") + 1 for title in titles), default=1)
    fig = Figure(figsize=(columns * size, rows * (size + 0.2 * lines + 0.1)))
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


# ---------------------------------------------------------------- alternative text

ALT_TEXT_PANELS = 6  # panels described one by one; more are summarised by kind
ALT_TEXT_ITEMS = 8  # legend entries, tick names, bar values or titles listed before "and N more"


def _listed(items, limit: int = ALT_TEXT_ITEMS) -> str:
    items = [item for item in items if item]
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _number(value: float) -> str:
    return f"{value:.3g}"


def _colorbar_text(colorbar) -> str:
    label = _one_line(colorbar.ax.get_ylabel() if colorbar.orientation == "vertical" else colorbar.ax.get_xlabel())
    low, high = colorbar.norm.vmin, colorbar.norm.vmax
    return f"colour bar{f' ({label})' if label else ''} from {_number(low)} to {_number(high)}" + (
        f" ({colorbar.cmap.name} colours)" if colorbar.cmap is not None else ""
    )


def _tick_names(ax, axis: str) -> list[str]:
    """Tick labels that name categories (class names, models), not numbers."""
    labels = [_one_line(t.get_text()) for t in (ax.get_xticklabels() if axis == "x" else ax.get_yticklabels())]
    labels = [label for label in labels if label]
    numeric = all(label.replace("−", "-").replace(".", "", 1).lstrip("-").isdigit() for label in labels)
    return [] if numeric else labels


def _panel_kind(ax) -> str:
    """What one panel draws, in words: its images, bars, lines, points or text."""
    from matplotlib.collections import PathCollection, PolyCollection, QuadMesh
    from matplotlib.container import BarContainer

    labels = [f"'{_one_line(t.get_text())}'" for t in ax.texts if t.get_text().strip()]
    if not ax.axison and len(labels) >= 3:  # a diagram: its boxes and arrows are said by their labels
        pictures = f", with {len(ax.images)} picture{'s' if len(ax.images) > 1 else ''}" if ax.images else ""
        return "a diagram labelled " + _listed(labels) + pictures
    parts = []
    for image in ax.images:
        array = image.get_array()
        if array is not None and np.ndim(array) == 3:
            parts.append("a colour image")
        elif image.get_cmap().name in ("gray", "Greys_r", "binary_r"):
            parts.append("a greyscale image")
        else:
            parts.append(f"a map in {image.get_cmap().name} colours")
    if any(isinstance(c, QuadMesh) for c in ax.collections):
        rows, columns = _tick_names(ax, "y"), _tick_names(ax, "x")
        grid = ", ".join(
            f"{side} {label}{f' ({_listed(names)})' if names else ''}".rstrip()
            for side, label, names in (("rows", ax.get_ylabel(), rows), ("columns", ax.get_xlabel(), columns))
            if label or names
        )
        annotated = ", values written in the cells" if ax.texts else ""
        parts.append(f"a heatmap{', ' + _one_line(grid) if grid else ''}{annotated}")
    bars = [b for c in ax.containers if isinstance(c, BarContainer) for b in c]
    if bars:
        horizontal = getattr(next(c for c in ax.containers if isinstance(c, BarContainer)), "orientation", "vertical") == "horizontal"
        names = _tick_names(ax, "y" if horizontal else "x")
        values = [b.get_width() if horizontal else b.get_height() for b in bars]
        if names and len(names) == len(values) and len(values) <= ALT_TEXT_ITEMS:
            parts.append("bars: " + ", ".join(f"{n} {_number(v)}" for n, v in zip(names, values)))
        else:
            parts.append(f"{len(bars)} bars")
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) > 1]
    if lines:
        over = _tick_names(ax, "x") if not bars else []
        parts.append(f"{len(lines)} line{'s' if len(lines) > 1 else ''}" + (f" over {_listed(over)}" if over else ""))
    points = sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))
    if points:
        parts.append(f"{points} point{'s' if points > 1 else ''}")
    if any(isinstance(c, PolyCollection) for c in ax.collections):
        parts.append("shaded bands")
    if not parts and labels:
        parts.append("text: " + _listed(labels, 4))
    return " and ".join(parts) if parts else "an empty panel"


def _panel_text(ax, colorbars: dict) -> str:
    words = [_panel_kind(ax)]
    from matplotlib.collections import QuadMesh

    x, y = _one_line(ax.get_xlabel()), _one_line(ax.get_ylabel())
    if any(isinstance(c, QuadMesh) for c in ax.collections):
        pass  # a heatmap's axes are its rows and columns, said with it
    elif x and y:
        words.append(f"{y} against {x}")
    elif x or y:
        words.append(f"{'x' if x else 'y'} axis: {x or y}")
    legend = ax.get_legend()
    if legend is not None:
        words.append("legend: " + _listed([_one_line(t.get_text()) for t in legend.get_texts()]))
    for mappable in [*ax.images, *ax.collections]:
        if getattr(mappable, "colorbar", None) is not None and mappable.colorbar.ax in colorbars:
            words.append(_colorbar_text(colorbars.pop(mappable.colorbar.ax)))
    return "; ".join(words)


def describe_figure(fig: Figure) -> str:
    """Alternative text for ``fig``, read from what it was drawn with: its title, each panel's
    title, what the panel draws (images, heatmaps, bars with their values, lines, points),
    its axis labels and legend, and each colour bar's label and range. Every figure a
    notebook shows carries it (:func:`alt_text_formatter`), and the course site puts it in
    the image's ``alt`` attribute, so a screen reader says what the figure shows."""
    colorbars = {ax: ax._colorbar for ax in fig.axes if getattr(ax, "_colorbar", None) is not None}
    panels = [ax for ax in fig.axes if ax not in colorbars and ax.get_visible()]
    panels = [ax for ax in panels if ax.has_data() or ax.texts or ax.get_title()]
    title = _one_line(fig.get_suptitle()) if hasattr(fig, "get_suptitle") else ""
    sentences = [f"Figure: {title}." if title else "Figure."]
    if len(panels) == 1:
        ax = panels[0]
        heading = _one_line(ax.get_title())
        sentences.append(f"{heading + ': ' if heading else ''}{_panel_text(ax, colorbars)}.")
    elif len(panels) <= ALT_TEXT_PANELS:
        sentences.append(f"{len(panels)} panels.")
        for number, ax in enumerate(panels, 1):
            heading = _one_line(ax.get_title())
            sentences.append(f"Panel {number}{f' ({heading})' if heading else ''}: {_panel_text(ax, colorbars)}.")
    else:
        kinds: dict[str, list[str]] = {}
        for ax in panels:
            kinds.setdefault(_panel_kind(ax), []).append(_one_line(ax.get_title()))
        sentences.append(f"{len(panels)} panels.")
        for kind, titles in kinds.items():
            named = [f"'{t}'" for t in titles if t]
            sentences.append(f"{len(titles)} of them {kind}" + (f", titled {_listed(named, 4)}" if named else "") + ".")
        rows = [f"'{_one_line(ax.get_ylabel())}'" for ax in panels if ax.get_ylabel().strip()]
        if rows:
            sentences.append(f"Rows labelled {_listed(rows, 6)}.")
    sentences += [f"A {_colorbar_text(bar)}." for bar in colorbars.values()]
    return " ".join(sentences)


def alt_text_formatter(png_formatter):
    """A PNG formatter for IPython that returns, with each figure's image, its
    :func:`describe_figure` as the ``alt`` of the output's metadata (where Jupyter and the
    course site read alternative text). ``png_formatter`` is the one it wraps."""
    inner = getattr(png_formatter, "wrapped", png_formatter)

    def formatter(fig):
        data = inner(fig)
        return None if data is None else (data, {"alt": describe_figure(fig)})

    formatter.wrapped = inner
    return formatter


def write_html_report(path: Path, title: str, sections: list[tuple[str, object]]) -> Path:
    """Write one self-contained HTML file. Each section is (heading, content) where content
    is a Figure, a DataFrame, or text (HTML-escaped)."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:960px;margin:2em auto;padding:0 1em}"
        "img{max-width:100%;height:auto}table{border-collapse:collapse;font-size:13px;margin:.5em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
        ".warn{background:#fff3cd;padding:.6em;border:1px solid #e0c060}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='warn'>{html.escape(NOT_FOR_CLINICAL_USE)}</p>",
    ]
    for heading, content in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if isinstance(content, Figure):
            encoded = base64.b64encode(figure_to_png(content)).decode("ascii")
            parts.append(f"<img alt='{html.escape(describe_figure(content), quote=True)}' src='data:image/png;base64,{encoded}'>")
        elif isinstance(content, pd.DataFrame):
            numbered_rows = isinstance(content.index, pd.RangeIndex)
            parts.append(content.to_html(na_rep="–", index=not numbered_rows, border=0))
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


def plot_threshold_tradeoff(
    y_true, probabilities, class_names, *, positive: str = "COVID-19", threshold: float | None = None
) -> Figure:
    """Sensitivity and specificity of ``positive`` against the rest under the rule of
    :func:`~covid_tutorial.metrics.decide` (``positive`` when p(positive) >= t, otherwise the
    most probable class) as t sweeps 0..1 (:func:`~covid_tutorial.metrics.threshold_sweep`).

    Dots at the right edge mark the default rule (the most probable class); the shaded band
    is where a threshold decides exactly like it. ``threshold`` draws a dashed line with
    its two rates; that line and its dots carry the gids ``"threshold"`` and
    ``"threshold-rates"``, so that an interactive view can move them.
    """
    sweep = threshold_sweep(y_true, probabilities, class_names, positive=positive)
    default = threshold_sweep(y_true, probabilities, class_names, positive=positive, thresholds=[np.inf]).iloc[0]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for metric, color in (("sensitivity", "tab:blue"), ("specificity", "tab:orange")):
        # a row holds from the previous threshold (excluded) up to its own: "pre" steps
        ax.step(sweep["threshold"], sweep[metric], where="pre", color=color, label=metric)
        ax.plot([1], [default[metric]], "o", color=color, ms=6, clip_on=False)
    probabilities = np.asarray(probabilities, dtype=float)
    k = list(class_names).index(positive)
    others = probabilities.argmax(axis=1) != k
    same_above = probabilities[others, k].max() if others.any() else 0.0
    ax.axvspan(same_above, 1, color="grey", alpha=0.12, lw=0,
               label="same decisions as the most probable class (dots)")
    if threshold is not None:
        chosen = threshold_sweep(y_true, probabilities, class_names, positive=positive, thresholds=[threshold]).iloc[0]
        label = f"chosen threshold {threshold:.3f}"
        ax.axvline(threshold, color="tab:red", ls="--", lw=1, label=label, gid="threshold")
        ax.plot([threshold] * 2, [chosen["sensitivity"], chosen["specificity"]], "o", color="tab:red", ms=4,
                gid="threshold-rates")
    ax.set(xlabel=f"threshold t on p({positive})", ylabel="rate", xlim=(0, 1), ylim=(0, 1.05),
           title=f"{positive} when p({positive}) >= t, else the most probable class")
    ax.title.set_fontsize(10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
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


ERROR_KINDS = ("missed", "false alarm", "confusion")


def plot_error_gallery(
    images, y_true, y_prob, class_names, *, positive: str = "COVID-19", y_pred=None,
    max_images: int = 12, columns: int = 4, size: float = 2.6, kind: str | None = None,
) -> Figure:
    """The misclassified images, false negatives of ``positive`` first (:func:`error_order`),
    each titled on three short lines: the kind of error, true -> predicted class, p(positive).
    ``kind`` shows one kind only: "missed" (``positive`` images called something else),
    "false alarm" (other images called ``positive``) or "confusion" (between the others)."""
    if kind is not None and kind not in ERROR_KINDS:
        raise ValueError(f"kind {kind!r}: choose one of {', '.join(ERROR_KINDS)}, or None for all")
    y_true, y_prob = np.asarray(y_true), np.asarray(y_prob)
    y_pred = y_prob.argmax(axis=1) if y_pred is None else np.asarray(y_pred)
    k = list(class_names).index(positive)
    kinds = np.where(y_true == k, "missed", np.where(y_pred == k, "false alarm", "confusion"))
    order = [i for i in error_order(y_true, y_pred, y_prob, k) if kind is None or kinds[i] == kind][:max_images]
    if len(order) == 0:
        fig = Figure(figsize=(4, 1))
        ax = fig.subplots()
        ax.axis("off")
        what = "misclassified images" if kind is None else f"{kind} {positive} images" if kind == "missed" else f"{kind}s"
        ax.text(0.5, 0.5, f"no {what} among {len(y_true)}", ha="center", va="center")
        return fig
    titles = []
    for i in order:
        label = f"missed {positive}" if kinds[i] == "missed" else str(kinds[i])
        titles.append(f"{label}\ntrue {class_names[y_true[i]]} → {class_names[y_pred[i]]}\np({positive}) = {y_prob[i, k]:.2f}")
    fig = plot_image_grid([images[i] for i in order], titles, columns=min(columns, len(order)), size=size)
    for ax in fig.axes:
        ax.title.set_fontsize(9)
    fig.tight_layout()
    return fig


def plot_data_efficiency(curve: pd.DataFrame, metric_label: str = "macro F1 on test patients") -> Figure:
    """Score against the number of training patients per class, one line per start
    (``start`` column: pretrained, scratch), with the 95% CI as error bars."""
    fig = Figure(figsize=(5.2, 3.6))
    ax = fig.subplots()
    for offset, (start, rows) in zip((-0.03, 0.03), curve.groupby("start", sort=False)):
        x = rows["patients_per_class"] * (1 + offset)
        error = np.vstack([rows["macro_f1"] - rows["ci_low"], rows["ci_high"] - rows["macro_f1"]])
        ax.errorbar(x, rows["macro_f1"], yerr=np.nan_to_num(error), fmt="o-", capsize=3, label=start)
    sizes = sorted(curve["patients_per_class"].unique())
    ax.set(xscale="log", xlabel="training patients per class", ylabel=metric_label, ylim=(0, 1.02),
           title="Pretrained vs from scratch, 95% CI over test patients")
    ax.title.set_fontsize(10)
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    if len(curve):
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def feature_map_grid(activation, channels=None, columns: int = 8) -> np.ndarray:
    """Tile channels of one activation (h, w, c) into a 2-D image, each channel scaled to 0..1.

    ``channels``: which ones (default: the first ``columns * 2``). Gaps of 1 px (NaN) separate tiles.
    """
    activation = np.asarray(activation, dtype=np.float32)
    channels = list(range(min(activation.shape[-1], columns * 2))) if channels is None else list(channels)
    height, width = activation.shape[:2]
    rows = -(-len(channels) // columns)
    grid = np.full((rows * (height + 1) - 1, columns * (width + 1) - 1), np.nan, np.float32)
    for k, channel in enumerate(channels):
        tile = activation[..., channel]
        low, high = tile.min(), tile.max()
        tile = (tile - low) / (high - low) if high > low else np.zeros_like(tile)
        r, c = divmod(k, columns)
        grid[r * (height + 1) : r * (height + 1) + height, c * (width + 1) : c * (width + 1) + width] = tile
    return grid


def draw_mask_outline(overlay: np.ndarray, mask: np.ndarray, color=(255, 255, 255)) -> np.ndarray:
    """Draw the outline of a boolean mask (any size) on an RGB uint8 image."""
    overlay = overlay.copy()
    mask = cv2.resize(mask.astype(np.uint8), (overlay.shape[1], overlay.shape[0]), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(overlay, contours, -1, color, 1)
    return overlay


def overlay_with_outline(image, heatmap, mask=None, alpha: float = 0.4) -> np.ndarray:
    """:func:`overlay_heatmap`, plus the outline of ``mask`` (a lesion, a marker box) in white."""
    overlay = overlay_heatmap(image, heatmap, alpha)
    return draw_mask_outline(overlay, mask) if mask is not None and np.any(mask) else overlay


HEATMAP_COLORMAP = "inferno"  # overlay_heatmap's colours, by name for matplotlib (cv2.COLORMAP_INFERNO)


def plot_map_grid(cells, row_titles=None, column_titles=None, size: float = 1.7, cmap: str = "gray",
                  colorbar: str | None = None):  # fmt: skip
    """A grid of pictures: ``cells[r][c]`` is a 2-D array (drawn with ``cmap``), an RGB image or None.

    Each row is as tall as its most elongated picture needs; a row's title labels its first
    picture. ``colorbar``: the label of a colour bar of the heatmap overlays
    (:func:`add_heatmap_colorbar`), saying what the colours measure, e.g. "each map divided by
    its own maximum". Returns a ``matplotlib.figure.Figure`` (a notebook shows it;
    :func:`figure_to_png` saves it).
    """
    from matplotlib.figure import Figure

    rows, columns = len(cells), max(len(row) for row in cells)
    ratios = [max(np.shape(p)[0] / np.shape(p)[1] for p in row if p is not None) for row in cells]
    fig = Figure(figsize=(columns * size + (0.9 if row_titles else 0), size * sum(ratios) + 0.35 * rows))
    axes = np.array(fig.subplots(rows, columns, squeeze=False, gridspec_kw={"height_ratios": ratios}))
    for r, row in enumerate(cells):
        for c in range(columns):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            picture = row[c] if c < len(row) else None
            if picture is None:
                ax.axis("off")
                continue
            ax.imshow(picture, cmap=cmap if np.ndim(picture) == 2 else None)
            if row_titles and all(p is None for p in row[:c]):
                ax.set_ylabel(row_titles[r], fontsize=8)
            if column_titles and r == 0:
                ax.set_title(column_titles[c], fontsize=9)
    fig.tight_layout()
    if colorbar:  # in the colours of the 2-D pictures, else of the overlays
        flat = any(np.ndim(p) == 2 for row in cells for p in row if p is not None)
        add_heatmap_colorbar(fig, colorbar, cmap=cmap if flat else HEATMAP_COLORMAP)
    return fig




def add_heatmap_colorbar(fig: Figure, label: str, low: float = 0.0, high: float = 1.0, width: float = 0.14,
                         cmap: str = HEATMAP_COLORMAP):
    """Add a colour bar of :func:`overlay_heatmap`'s colours (or ``cmap``'s), from ``low`` to ``high``, at the
    right of ``fig``, labelled with what the colours measure; the pictures move left to make room
    (``width`` inches of bar, plus its ticks and label). Returns the colour bar.

    An overlay stretched to its own maximum looks equally bright whatever the map's size,
    so say so in ``label`` ("each map divided by its own maximum"); maps drawn on one
    fixed scale say which ("score units, 0 to the largest map's maximum").
    """
    import textwrap

    from matplotlib import cm, colors

    inches, tall = fig.get_size_inches()
    bottom, top = min(ax.get_position().y0 for ax in fig.axes), max(ax.get_position().y1 for ax in fig.axes)
    height = 0.8 * (top - bottom)
    lines = textwrap.wrap(label, max(12, int(height * tall * 72 / (8 * 0.6))))  # 8 pt letters along the bar
    room = min(0.4, (width + 0.6 + 0.15 * len(lines)) / inches)  # bar, ticks and the label's lines
    fig.subplots_adjust(right=1 - room)
    bar = fig.add_axes((1 - room + 0.12 / inches, bottom + 0.1 * (top - bottom), width / inches, height))
    mappable = cm.ScalarMappable(norm=colors.Normalize(low, high), cmap=cmap)
    colorbar = fig.colorbar(mappable, cax=bar)
    colorbar.set_label("\n".join(lines), fontsize=8)
    colorbar.ax.tick_params(labelsize=7)
    return colorbar


def overlay_heatmap(
    image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4, colormap: int = cv2.COLORMAP_INFERNO
) -> np.ndarray:
    """Blend a 0..1 heatmap (any size) over a grayscale or RGB uint8 image; returns RGB uint8.
    Values outside 0..1 are clipped, so maps drawn on one fixed scale (divided by a common
    number, not each by its own maximum) keep their relative brightness; pair the figure with
    :func:`add_heatmap_colorbar`. The colormap is perceptually uniform and colour-blind safe
    (inferno: black, red, yellow)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = cv2.cvtColor(image.astype(np.uint8), cv2.COLOR_GRAY2RGB)
    image = image.astype(np.uint8)
    resized = cv2.resize(heatmap.astype(np.float32), (image.shape[1], image.shape[0]))
    colored = cv2.applyColorMap(np.uint8(255 * np.clip(resized, 0, 1)), colormap)
    colored = cv2.cvtColor(colored, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(colored, alpha, image, 1 - alpha, 0)


def place_labels(ax, x, y, names, fontsize: int = 8, step_points: float = 9.0) -> list:
    """Name each point (x, y) of ``ax`` with a label that overlaps no other label: each label
    starts up and to the right of its point and moves down or up in steps of
    ``step_points`` until its box is clear of those already placed. Returns the labels."""
    fig = ax.figure
    fig.canvas.draw()  # the transforms below need the final layout
    renderer = fig.canvas.get_renderer()
    placed, labels = [], []
    order = np.argsort(-np.asarray(y, dtype=float))
    for index in order:
        for shift in (0, -1, 1, -2, 2, -3, 3, -4, 4, -5, 5, -6, 6):
            label = ax.annotate(names[index], (x[index], y[index]), fontsize=fontsize,
                                xytext=(6, 3 + shift * step_points), textcoords="offset points")
            box = label.get_window_extent(renderer).expanded(1.02, 1.1)
            if not any(box.overlaps(other) for other in placed):
                break
            label.remove()
        else:  # pragma: no cover - more labels than steps: keep the first place
            label = ax.annotate(names[index], (x[index], y[index]), fontsize=fontsize, xytext=(6, 3),
                                textcoords="offset points")
            box = label.get_window_extent(renderer)
        placed.append(box)
        labels.append(label)
    return labels


def plot_pareto(board: pd.DataFrame, metric: str = "f1", title: str | None = None, chance: float | None = None):
    """Macro ``metric`` (mean, corrected 95% CI) against latency per image and against parameters.

    One panel per cost, log scale; each model a point with its interval and its name; the
    models on the Pareto front joined by a red step line and drawn filled, the others
    hollow. ``chance`` draws the score of guessing as a dashed line. The y-axis shows
    [0, 1], the range of the metric, so that intervals can be read against it.
    """
    import matplotlib.pyplot as plt

    score = f"macro_{metric}"
    name = metric.upper() if metric == "f1" else metric
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, cost, label, front in (
        (axes[0], "latency_ms", "latency per image, ms (log scale)", "front_latency"),
        (axes[1], "params_M", "parameters, millions (log scale)", "front_params"),
    ):
        for on_front, rows in board.groupby(board[front].astype(bool)):
            error = np.vstack([rows[score] - rows["ci_low_corrected"], rows["ci_high_corrected"] - rows[score]])
            ax.errorbar(rows[cost], rows[score], yerr=np.nan_to_num(np.clip(error, 0, None)), fmt="o", capsize=4,
                        color="tab:red" if on_front else "tab:blue", mfc="tab:red" if on_front else "white",
                        label="on the Pareto front" if on_front else "dominated")  # fmt: skip
        line = board[board[front].astype(bool)].sort_values(cost)
        ax.step(line[cost], line[score], where="post", color="tab:red", alpha=0.5)
        if chance is not None:
            ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label=f"chance ({chance:.2f})")
        low, high = board[cost].min(), board[cost].max()
        ax.set(xscale="log", xlabel=label, ylim=(0, 1), xlim=(low / 1.6, high * 1.6))
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1, 2, 5)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    axes[0].set_ylabel(f"macro {name} (mean, corrected 95% CI)")
    device = board["device"].dropna().unique()
    fig.suptitle(title or f"Macro {name} against cost; latency on {', '.join(device)}", fontsize=10)
    fig.tight_layout()
    for ax, cost in zip(axes, ("latency_ms", "params_M")):
        place_labels(ax, board[cost].to_numpy(float), board[score].to_numpy(float), list(board.index))
    return fig


def save_evaluation_figures(folder, evaluation, class_names) -> None:
    """The figures of an evaluation (:class:`covid_tutorial.runs.Evaluation`) as PNG files in
    ``folder``: confusion matrix, ROC, precision-recall and reliability diagram (the RUN
    folder's ``figures/``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    y_true, probabilities = evaluation.y_true, evaluation.probabilities
    plots = {
        "confusion_matrix": plot_confusion_matrix(evaluation.confusion, class_names),
        "roc_curves": plot_roc_curves(y_true, probabilities, class_names),
        "precision_recall": plot_precision_recall_curves(y_true, probabilities, class_names),
        "reliability": plot_reliability_diagram(y_true, probabilities),
    }
    for name, fig in plots.items():
        figure_to_png(fig, folder / f"{name}.png")


# ---------------------------------------------------------------- from scores to decisions


def plot_decision_curve(curve) -> Figure:
    """Net benefit of the model's decision across threshold probabilities, with its 95% band
    over patients, beside treating everyone and no one (a :class:`~covid_tutorial.decisions.DecisionCurve`);
    the range where the model helps by its whole band is shaded."""
    table = curve.table
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    ax.fill_between(table["threshold"], table["ci_low"], table["ci_high"], color="tab:blue", alpha=0.25,
                    label="model, 95% interval over patients")
    ax.plot(table["threshold"], table["model"], color="tab:blue", lw=2, label="model")
    ax.plot(table["threshold"], table["treat_all"], color="black", ls="--", label=f"test everyone as {curve.positive}")
    ax.plot(table["threshold"], table["treat_none"], color="grey", ls=":", lw=2, label="test no one")
    useful = curve.useful_range()
    if useful is not None:
        ax.axvspan(*useful, color="tab:green", alpha=0.12, label="model helps (whole interval above both)")
    top = max(curve.prevalence, float(np.nanmax(table["ci_high"])))
    ax.set(xlabel=f"threshold probability of {curve.positive}", ylabel="net benefit (true positives per case)",
           xlim=(0, 1), ylim=(-0.05, top + 0.05),
           title=f"Decision curve: {curve.n_images} images of {curve.n_patients} patients")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def plot_calibration_change(y_true, uncalibrated, calibrated, temperature: float, n_bins: int = 10) -> Figure:
    """Reliability of the predicted class before and after temperature scaling, side by side."""
    fig = Figure(figsize=(8.4, 3.8))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, probabilities, name in zip(axes, (uncalibrated, calibrated), ("model's own", f"temperature {temperature:.2f}")):
        table = reliability_table(y_true, probabilities, n_bins=n_bins)
        centres = (table["bin_low"] + table["bin_high"]) / 2
        ax.bar(centres, table["observed"].fillna(0), width=0.9 / n_bins, color="tab:blue", alpha=0.7, label="accuracy in the bin")
        ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfect calibration")
        ax.set(title=f"{name}: ECE {table.attrs['ece']:.3f}", xlabel="confidence of the predicted class", xlim=(0, 1),
               ylim=(0, 1.02))
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def plot_risk_coverage(*referrals) -> Figure:
    """Risk (1 - accuracy) of the cases the model keeps against the share it keeps, one line per
    source of uncertainty (:class:`~covid_tutorial.decisions.RiskCoverage`), with the chosen coverages marked."""
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.subplots()
    for referral in referrals:
        ax.plot(referral.curve["coverage"], referral.curve["risk"],
                label=f"{referral.uncertainty} (area {referral.aurc:.3f})")
        table = referral.table
        ax.errorbar(table["coverage"], 1 - table["accuracy"],
                    yerr=[table["accuracy_high"] - table["accuracy"], table["accuracy"] - table["accuracy_low"]],
                    fmt="o", capsize=3, color=ax.lines[-1].get_color())
    ax.set(xlabel="coverage (share of cases the model answers)", ylabel="risk (error rate on the cases kept)",
           xlim=(0, 1.02), ylim=(0, None), title="Referral: answer the confident cases, refer the rest")
    ax.legend(fontsize=8, title="uncertainty", title_fontsize=8)
    fig.tight_layout()
    return fig


def plot_subgroup_audit(audit) -> Figure:
    """Each group's scores with 95% intervals over patients (a :class:`~covid_tutorial.decisions.SubgroupAudit`)."""
    names = {"accuracy": "accuracy", "macro_f1": "macro F1", "sensitivity": f"{audit.positive} sensitivity"}
    table = audit.table
    fig = Figure(figsize=(3.2 * len(AUDIT_METRICS), 0.5 * len(table) + 1.6))
    axes = fig.subplots(1, len(AUDIT_METRICS), sharey=True)
    rows = np.arange(len(table))
    for ax, metric in zip(axes, AUDIT_METRICS):
        values = table[metric].to_numpy(float)
        errors = [values - table[f"{metric}_low"].to_numpy(float), table[f"{metric}_high"].to_numpy(float) - values]
        ax.errorbar(values, rows, xerr=errors, fmt="o", capsize=3, color="tab:blue")
        ax.set(xlim=(0, 1.02), xlabel=names[metric], title=names[metric] + (" (audited)" if metric == audit.metric else ""))
    labels = [f"{g} ({n} patients)" for g, n in zip(table["group"], table["patients"])]
    axes[0].set_yticks(rows, labels)
    axes[0].set_ylabel(audit.column)
    axes[0].invert_yaxis()
    fig.suptitle(f"Audit by {audit.column}: gap {audit.gap[0]:.3f} [{audit.gap[1]:.3f}, {audit.gap[2]:.3f}]", fontsize=10)
    fig.tight_layout()
    return fig


def save_decision_figures(folder, report, evaluation, class_names) -> None:
    """The figures of a :class:`~covid_tutorial.decisions.DecisionReport` as PNG files in ``folder``:
    decision_curve, risk_coverage, calibration (before and after, when the RUN has a temperature)
    and subgroups_<column>."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plots = {"decision_curve": plot_decision_curve(report.curve), "risk_coverage": plot_risk_coverage(report.referral)}
    if report.calibration is not None:
        plots["calibration"] = plot_calibration_change(evaluation.y_true, evaluation.uncalibrated,
                                                       evaluation.probabilities, report.calibration.temperature)
    for audit in report.audits:
        plots[f"subgroups_{audit.column}"] = plot_subgroup_audit(audit)
    for name, fig in plots.items():
        figure_to_png(fig, folder / f"{name}.png")
