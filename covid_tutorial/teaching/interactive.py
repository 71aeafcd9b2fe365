"""Interactive figures for the notebooks, each with a static version for pages without a kernel.

* :func:`threshold_explorer` (notebook 04): a slider for the COVID-19 threshold t of
  :func:`~covid_tutorial.metrics.decide`, the trade-off figure with a line at t, and
  sensitivity, specificity, PPV, NPV and the confusion counts at t;
  :func:`threshold_static` draws the same figure with a table at a few thresholds.
* :func:`gradcam_explorer` (notebook 06): image, class, layer, method and opacity over
  maps computed beforehand with :func:`precompute_maps`; :func:`gradcam_static` draws a
  grid of them at one opacity.
* :func:`show_with_static_fallback` displays the static figure, then the widget. A page
  read without a kernel (GitHub, a static site) shows the PNG and, in place of the
  widget, one sentence that says how to get it back.

Built on ipywidgets 7.7 (Colab) and 8 alike: widgets observed with ``observe``, figures
sent as PNG to an ``Image`` widget, so that no matplotlib widget backend (ipympl) is needed.
"""

from __future__ import annotations

import html

import cv2
import ipywidgets as widgets
import numpy as np
import pandas as pd
from IPython.display import Image, display
from matplotlib.figure import Figure

from ..data import to_model_input
from ..errors import CourseError
from ..explain import METHOD_TITLES, Explainer
from ..figures import (
    describe_figure,
    draw_mask_outline,
    figure_to_png,
    overlay_with_outline,
    plot_map_grid,
    plot_threshold_tradeoff,
)
from ..metrics import threshold_sweep

__all__ = [
    "STATIC_VERSION_NOTE",
    "ThresholdExplorer",
    "threshold_explorer",
    "threshold_table",
    "threshold_static",
    "precompute_maps",
    "GradcamExplorer",
    "gradcam_explorer",
    "gradcam_static",
    "WidgetWithNote",
    "show_with_static_fallback",
]

STATIC_VERSION_NOTE = (
    "Interactive explorer: run this notebook in JupyterLab or Colab to move the controls; "
    "the figure above is its static version."
)
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"  # the same in ipywidgets 7 and 8


# ---------------------------------------------------------------- the COVID-19 threshold (notebook 04)

_RATE_ROWS = (
    ("sensitivity", "sensitivity", "tp", ("tp", "fn"), "{positive} images found"),
    ("specificity", "specificity", "tn", ("tn", "fp"), "other images left out"),
    ("precision (PPV)", "precision", "tp", ("tp", "fp"), "{positive} answers right"),
    ("NPV", "npv", "tn", ("tn", "fn"), "other answers right"),
)
_COUNT_ROWS = (
    ("tp", "{positive} found (TP)"),
    ("fn", "{positive} missed (FN)"),
    ("fp", "false alarms (FP)"),
    ("tn", "others left out (TN)"),
)


def _rate_cell(row: pd.Series, metric: str, part: str, whole: tuple[str, str]) -> str:
    value, total = row[metric], int(row[whole[0]] + row[whole[1]])
    shown = "–" if not np.isfinite(value) else f"{value:.3f}"
    return f"{shown} <small>({int(row[part])} of {total})</small>"


def _readout_html(at_threshold: pd.Series, default: pd.Series, positive: str) -> str:
    """A small table: each rate and count at t, next to the most probable class."""
    columns = (f"t = {at_threshold['threshold']:.3f}", "most probable class")
    lines = ["<table><tr><th></th>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>"]
    for label, metric, part, whole, _ in _RATE_ROWS:
        cells = "".join(f"<td>{_rate_cell(row, metric, part, whole)}</td>" for row in (at_threshold, default))
        lines.append(f"<tr><td>{html.escape(label)}</td>{cells}</tr>")
    for count, label in _COUNT_ROWS:
        cells = "".join(f"<td>{int(row[count])}</td>" for row in (at_threshold, default))
        lines.append(f"<tr><td>{html.escape(label.format(positive=positive))}</td>{cells}</tr>")
    return "\n".join(lines) + "</table>"


def _artist(ax, gid: str):
    return next(artist for artist in ax.get_children() if artist.get_gid() == gid)


class ThresholdExplorer(widgets.VBox):
    """The widget of :func:`threshold_explorer`. ``at_threshold`` holds the row of
    :func:`~covid_tutorial.metrics.threshold_sweep` shown for the slider's t, ``default``
    the row of the most probable class; ``figure`` is the one figure redrawn as t moves."""

    def __init__(
        self, y_true, probabilities, class_names, *, positive: str = "COVID-19", threshold: float | None = 0.5
    ):
        threshold = 1.0 if threshold is None else float(threshold)  # 1.0 decides like the most probable class
        self._data = (np.asarray(y_true), np.asarray(probabilities, dtype=float), list(class_names))
        self.positive = positive
        self.default = threshold_sweep(*self._data, positive=positive, thresholds=[np.inf]).iloc[0]
        self.figure = plot_threshold_tradeoff(*self._data, positive=positive, threshold=threshold)
        ax = self.figure.axes[0]
        self._line, self._rates = _artist(ax, "threshold"), _artist(ax, "threshold-rates")
        self._legend_text = next(t for t in ax.get_legend().get_texts() if t.get_text().startswith("chosen threshold"))
        self._legend_text.set_text("threshold t")
        self.slider = widgets.FloatSlider(
            value=threshold, min=0.0, max=1.0, step=0.01, continuous_update=True, readout_format=".2f",
            description=f"t on p({positive})",
        )  # fmt: skip
        self.slider.style.description_width = "initial"
        self.readout = widgets.HTML()
        self.plot = widgets.Image(format="png")
        super().__init__(children=[self.slider, widgets.HBox([self.plot, self.readout])])
        self.slider.observe(self._update, names="value")
        self._update()

    def _update(self, change=None) -> None:
        t = float(self.slider.value)
        self.at_threshold = threshold_sweep(*self._data, positive=self.positive, thresholds=[t]).iloc[0]
        self._line.set_xdata([t, t])
        self._rates.set_data([t, t], [self.at_threshold["sensitivity"], self.at_threshold["specificity"]])
        self.readout.value = _readout_html(self.at_threshold, self.default, self.positive)
        self.plot.value = figure_to_png(self.figure)


def threshold_explorer(
    y_true, probabilities, class_names, *, positive: str = "COVID-19", threshold: float | None = 0.5
) -> ThresholdExplorer:
    """A slider for the threshold t of the rule "``positive`` when p(``positive``) >= t, else
    the most probable class" (:func:`~covid_tutorial.metrics.decide`), the trade-off figure
    with a line at t, and sensitivity, specificity, PPV, NPV and the counts at t next to
    those of the most probable class. ``threshold``: where the slider starts (None: 1.0,
    which decides like the most probable class)."""
    return ThresholdExplorer(y_true, probabilities, class_names, positive=positive, threshold=threshold)


def threshold_table(
    y_true, probabilities, class_names, *, positive: str = "COVID-19", thresholds=(0.1, 0.25, 0.5),
    threshold: float | None = None,
) -> pd.DataFrame:  # fmt: skip
    """The explorer's readout at a few thresholds, one row per rule: each of ``thresholds``,
    the chosen ``threshold`` (if any) and the most probable class."""
    chosen = [] if threshold is None else [float(threshold)]
    values = sorted(set(map(float, thresholds)) | set(chosen))
    table = threshold_sweep(y_true, probabilities, class_names, positive=positive, thresholds=[*values, np.inf])
    names = [f"t = {t:.3f}" + (" (chosen)" if t in chosen else "") for t in values] + ["most probable class"]
    table.index = pd.Index(names, name="rule")
    return table.drop(columns="threshold")


def threshold_static(
    y_true, probabilities, class_names, *, positive: str = "COVID-19", threshold: float | None = None,
    thresholds=(0.1, 0.25, 0.5),
) -> Figure:  # fmt: skip
    """The explorer as one picture: the trade-off figure with the chosen ``threshold``, and
    below it :func:`threshold_table` at ``thresholds``."""
    table = threshold_table(y_true, probabilities, class_names, positive=positive, thresholds=thresholds,
                            threshold=threshold)  # fmt: skip
    fig = plot_threshold_tradeoff(y_true, probabilities, class_names, positive=positive, threshold=threshold)
    fig.set_size_inches(6.4, 4.2 + 0.3 * (len(table) + 1))
    grid = fig.add_gridspec(2, 1, height_ratios=[4, 0.3 * (len(table) + 1)])
    fig.axes[0].set_subplotspec(grid[0])
    below = fig.add_subplot(grid[1])
    below.axis("off")
    headers = ["sensitivity", "specificity", "PPV", "NPV", "TP", "FN", "TN", "FP"]
    cells = [
        [("–" if not np.isfinite(v) else f"{v:.3f}") for v in row[:4]] + [str(int(v)) for v in row[4:]]
        for row in table[["sensitivity", "specificity", "precision", "npv", "tp", "fn", "tn", "fp"]].to_numpy()
    ]
    widths = [0.12] * 4 + [0.07] * 4
    drawn = below.table(cellText=cells, rowLabels=list(table.index), colLabels=headers, colWidths=widths, loc="center",
                        cellLoc="center")  # fmt: skip
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(8)
    drawn.scale(1, 1.25)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- explanation maps (notebook 06)


def precompute_maps(model, images, layers, methods, *, classes=None, **options) -> np.ndarray:
    """Explanation maps for every image, class, layer and method, computed once for
    :func:`gradcam_explorer` and :func:`gradcam_static`.

    Returns float32 maps in 0..1 of shape (images, classes, layers, methods, H, W) at the
    model's input size: ``maps[i, c, l, m]`` is the map of image i for ``classes[c]``
    (default: every class of the model) at ``layers[l]`` by ``methods[m]``. One
    :class:`~covid_tutorial.explain.Explainer` is built per layer and method on the model
    itself (no copy) and let go before the next; SmoothGrad (``"saliency"``) works on the
    input pixels, so it is computed once and shared by every layer. ``options`` go to
    the explainers (``max_maps``, ``smooth_samples``, ``seed``...).
    """
    batch = to_model_input(images)
    classes = list(range(int(model.output.shape[-1]))) if classes is None else [int(k) for k in classes]
    layers, methods = list(layers), list(methods)
    maps = np.zeros((len(batch), len(classes), len(layers), len(methods), *model.input.shape[1:3]), np.float32)
    for m, method in enumerate(methods):
        for l, layer in enumerate(layers):
            if method == "saliency" and l > 0:
                maps[:, :, l, m] = maps[:, :, 0, m]
                continue
            explainer = Explainer(model, method, layer, **options)
            for c, class_index in enumerate(classes):
                maps[:, c, l, m] = explainer(batch, class_index)
            del explainer
    return maps


def _check_maps(images, maps, image_titles, class_names, layers, methods, masks, probabilities) -> np.ndarray:
    maps = np.asarray(maps)
    expected = (len(images), len(class_names), len(layers), len(methods))
    if maps.ndim != 6 or maps.shape[:4] != expected:
        raise CourseError(
            f"maps have shape {maps.shape}; expected (images, classes, layers, methods, H, W) = "
            f"{expected} + (H, W) for these images, class_names, layers and methods (see precompute_maps)."
        )
    for name, values in (("image_titles", image_titles), ("masks", masks), ("probabilities", probabilities)):
        if values is not None and len(values) != len(images):
            raise CourseError(f"{name} has {len(values)} entries for {len(images)} images; give one per image.")
    return maps


def _one_line(title) -> str:
    return " · ".join(str(title).split("\n"))


def _class_label(class_names, k: int, probabilities, i: int) -> str:
    return class_names[k] + ("" if probabilities is None else f" (p = {probabilities[i][k]:.2f})")


class GradcamExplorer(widgets.VBox):
    """The widget of :func:`gradcam_explorer`. ``overlay`` holds the RGB uint8 picture shown,
    ``selection`` its indices ``(image, class, layer, method)`` and opacity."""

    def __init__(self, images, maps, *, image_titles, class_names, layers, methods, masks=None, probabilities=None,
                 alpha: float = 0.4, width: int = 320):  # fmt: skip
        self.maps = _check_maps(images, maps, image_titles, class_names, layers, methods, masks, probabilities)
        self.images, self.masks, self.probabilities = images, masks, probabilities
        self.image_titles, self.class_names = [_one_line(t) for t in image_titles], list(class_names)
        self.layers, self.methods = list(layers), list(methods)
        start_class = 0 if probabilities is None else int(np.argmax(probabilities[0]))
        self.image_control = widgets.Dropdown(
            options=[(f"{i + 1}. {title}", i) for i, title in enumerate(self.image_titles)],
            value=0,
            description="image",
        )
        self.class_control = widgets.ToggleButtons(
            options=[(name, k) for k, name in enumerate(self.class_names)], value=start_class, description="class"
        )
        self.layer_control = widgets.Dropdown(
            options=[(n, l) for l, n in enumerate(self.layers)], value=0, description="layer"
        )
        self.method_control = widgets.Dropdown(
            options=[(METHOD_TITLES.get(name, name), m) for m, name in enumerate(self.methods)],
            value=0,
            description="method",
        )
        self.opacity_slider = widgets.FloatSlider(
            value=alpha,
            min=0.0,
            max=1.0,
            step=0.05,
            continuous_update=True,
            readout_format=".2f",
            description="opacity",
        )
        self.title = widgets.HTML()
        self.view = widgets.Image(format="png", width=str(width))
        controls = [
            self.image_control,
            self.class_control,
            self.layer_control,
            self.method_control,
            self.opacity_slider,
        ]
        super().__init__(children=[widgets.HBox(controls[:1] + controls[2:4]), self.class_control,
                                   self.opacity_slider, self.title, self.view])  # fmt: skip
        for control in controls:
            control.observe(self._update, names="value")
        self._update()

    def _update(self, change=None) -> None:
        i, c = self.image_control.value, self.class_control.value
        l, m, alpha = self.layer_control.value, self.method_control.value, float(self.opacity_slider.value)
        self.selection = (i, c, l, m, alpha)
        mask = None if self.masks is None else self.masks[i]
        self.overlay = overlay_with_outline(self.images[i], self.maps[i, c, l, m], mask, alpha)
        _, png = cv2.imencode(".png", cv2.cvtColor(self.overlay, cv2.COLOR_RGB2BGR))
        self.view.value = png.tobytes()
        parts = [
            f"<b>{html.escape(self.image_titles[i])}</b>",
            f"map for {html.escape(_class_label(self.class_names, c, self.probabilities, i))}",
            f"layer {html.escape(self.layers[l])}",
            html.escape(METHOD_TITLES.get(self.methods[m], self.methods[m])),
            f"opacity {alpha:.2f}" + (", lesion outlined in white" if mask is not None else ""),
        ]
        self.title.value = " · ".join(parts)


def gradcam_explorer(images, maps, *, image_titles, class_names, layers, methods, masks=None, probabilities=None,
                     alpha: float = 0.4) -> GradcamExplorer:  # fmt: skip
    """Controls over precomputed explanation maps: image, class, layer, method and the
    overlay's opacity; the view shows the image with the map (and the lesion outline when
    ``masks`` are given), titled with what is shown and p(class) when ``probabilities``
    (one row per image) are given. ``maps``: from :func:`precompute_maps`, shape
    (images, classes, layers, methods, H, W)."""
    return GradcamExplorer(images, maps, image_titles=image_titles, class_names=class_names, layers=layers,
                           methods=methods, masks=masks, probabilities=probabilities, alpha=alpha)  # fmt: skip


def gradcam_static(
    images, maps, *, image_titles, class_names, layers, methods, masks=None, probabilities=None, shown=(0,),
    classes=None, rows: str = "method", alpha: float = 0.4, size: float = 1.9,
) -> Figure:  # fmt: skip
    """The explorer as one grid at opacity ``alpha``: for each image in ``shown`` (indices),
    the image (with its lesion outline) and its maps at every layer, one row per method
    (``rows="method"``) or one row per layer (``rows="layer"``). The class explained is
    ``classes[n]`` for the n-th image shown, by default the most probable one when
    ``probabilities`` are given, else the first class."""
    maps = _check_maps(images, maps, image_titles, class_names, layers, methods, masks, probabilities)
    if rows not in ("method", "layer"):
        raise CourseError(f"rows must be 'method' or 'layer', not {rows!r}.")
    shown = [int(i) for i in shown]
    if classes is None:
        classes = [0 if probabilities is None else int(np.argmax(probabilities[i])) for i in shown]
    method_names = [METHOD_TITLES.get(m, m) for m in methods]
    row_names, column_names = (method_names, list(layers)) if rows == "method" else (list(layers), method_names)
    cells = [[] for _ in row_names]
    titles = []
    for i, k in zip(shown, classes):
        mask = None if masks is None else masks[i]
        picture = np.asarray(images[i], dtype=np.uint8)
        picture = np.repeat(picture[..., None], 3, axis=-1) if picture.ndim == 2 else picture
        picture = picture if mask is None or not np.any(mask) else draw_mask_outline(picture, mask)
        for r, row in enumerate(cells):
            row.append(picture if r == 0 else None)
            for j in range(len(column_names)):
                l, m = (j, r) if rows == "method" else (r, j)
                row.append(overlay_with_outline(images[i], maps[i, k, l, m], mask, alpha))
        head = f"{_one_line(image_titles[i])}\nmap for {_class_label(class_names, k, probabilities, i)}"
        titles += [f"{head}\nimage"] + column_names
    return plot_map_grid(cells, row_names, titles, size=size)


# ---------------------------------------------------------------- showing a widget with its static version


class WidgetWithNote:
    """A widget whose plain-text form is :data:`STATIC_VERSION_NOTE`.

    A notebook stores each displayed widget as a reference to a live model, plus a
    text/plain form for readers that cannot draw widgets (GitHub, a static site, a
    notebook opened without its kernel). ipywidgets 7 and 8 put ``repr(widget)`` there,
    a long list of children; this object sends the same widget reference with a sentence.
    """

    def __init__(self, widget: widgets.Widget, note: str = STATIC_VERSION_NOTE):
        self.widget, self.note = widget, note

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        view = {"version_major": 2, "version_minor": 0, "model_id": self.widget.model_id}
        return {"text/plain": self.note, _WIDGET_VIEW: view}

    def __repr__(self) -> str:
        return self.note


def show_with_static_fallback(widget: widgets.Widget, static_figure) -> None:
    """Display ``static_figure`` (a matplotlib figure is stored as PNG, so the page keeps
    it without a kernel), then ``widget`` with :data:`STATIC_VERSION_NOTE` as its text."""
    if isinstance(static_figure, Figure):  # with its alternative text, as start_lesson gives every figure
        static_figure = Image(figure_to_png(static_figure), alt=describe_figure(static_figure))
    display(static_figure)
    display(WidgetWithNote(widget))
