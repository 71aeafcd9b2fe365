"""covid_tutorial.teaching.interactive: the widgets driven without a browser, their static versions,
and the same widget tests again under ipywidgets 7.7 (Colab's version)."""

import base64
import os
import subprocess
import sys
from pathlib import Path

import cv2
import ipywidgets
import keras
import numpy as np
import pytest
from IPython.core.formatters import DisplayFormatter
from matplotlib.figure import Figure

from covid_tutorial.teaching import interactive
from covid_tutorial.errors import CourseError
from covid_tutorial.explain.maps import METHOD_TITLES, Explainer
from covid_tutorial.figures import figure_to_png, overlay_heatmap, overlay_with_outline
from covid_tutorial.teaching.interactive import (
    STATIC_VERSION_NOTE,
    gradcam_explorer,
    gradcam_static,
    precompute_maps,
    show_with_static_fallback,
    threshold_explorer,
    threshold_static,
    threshold_table,
)
from covid_tutorial.metrics import operating_point, threshold_sweep

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["COVID-19", "Normal", "Pneumonia"]
LAYERS = ["conv_fine", "conv_coarse"]
METHODS = ["gradcam", "gradcam++", "scorecam", "saliency"]
# tasks.py installs ipywidgets 7.7 here, beside the 8.x of the virtual environment
IPYWIDGETS_7 = Path(sys.executable).parent.parent / "ipywidgets7"


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, 90)
    logits = rng.normal(0, 1, (90, 3))
    logits[np.arange(90), y_true] += 1.0
    return y_true, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


@pytest.fixture
def precomputed():
    """Three 24 px grayscale images, maps at 6x6 for 3 classes, 2 layers, 4 methods, lesion masks."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 24, 24), dtype=np.uint8)
    maps = rng.uniform(0, 1, (3, len(CLASSES), len(LAYERS), len(METHODS), 6, 6)).astype(np.float32)
    masks = np.zeros((3, 24, 24), bool)
    masks[:, 6:14, 8:18] = True
    probabilities = rng.dirichlet(np.ones(3), 3)
    return images, maps, masks, probabilities


def _decoded(png: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


# ---------------------------------------------------------------- the threshold explorer


def test_threshold_explorer_reads_out_the_decide_rule_at_the_slider_value(predictions):
    y_true, probabilities = predictions
    explorer = threshold_explorer(y_true, probabilities, CLASSES, threshold=0.5)
    assert isinstance(explorer, ipywidgets.Widget) and explorer.slider.continuous_update
    pictures = set()
    for t in (0.0, 0.13, float(probabilities[4, 0]), 0.61, 1.0):  # a score itself: p >= t counts it
        explorer.slider.value = t
        expected = operating_point(y_true, probabilities, CLASSES, threshold=t, n_bootstrap=0).set_index("metric")[
            "value"
        ]
        counts = threshold_sweep(y_true, probabilities, CLASSES, thresholds=[t]).iloc[0]
        for metric in ("sensitivity", "specificity", "precision", "npv"):
            assert explorer.at_threshold[metric] == pytest.approx(expected[metric], nan_ok=True)
            shown = f"{expected[metric]:.3f}" if np.isfinite(expected[metric]) else "–"  # NaN: no images to count
            assert f"{shown} <small>" in explorer.readout.value
        for count in ("tp", "fn", "tn", "fp"):
            assert explorer.at_threshold[count] == counts[count]
            assert f"<td>{int(counts[count])}</td>" in explorer.readout.value
        line = next(artist for artist in explorer.figure.axes[0].lines if artist.get_gid() == "threshold")
        assert list(line.get_xdata()) == [t, t]
        assert _decoded(explorer.plot.value).ndim == 3
        pictures.add(explorer.plot.value)
    assert len(pictures) == 5  # the picture is redrawn for each threshold


def test_threshold_explorer_shows_the_most_probable_class_beside_t(predictions):
    y_true, probabilities = predictions
    explorer = threshold_explorer(y_true, probabilities, CLASSES, positive="Pneumonia", threshold=None)
    assert explorer.slider.value == 1.0  # no threshold: the slider starts where the rule is the default
    default = operating_point(y_true, probabilities, CLASSES, positive="Pneumonia", n_bootstrap=0)
    for metric, value in default.set_index("metric")["value"].items():
        assert explorer.default[metric] == pytest.approx(value) == explorer.at_threshold[metric]
    assert "most probable class" in explorer.readout.value and "Pneumonia found (TP)" in explorer.readout.value


def test_threshold_static_draws_the_curve_and_a_table_of_a_few_rules(predictions):
    y_true, probabilities = predictions
    table = threshold_table(y_true, probabilities, CLASSES, thresholds=(0.1, 0.5), threshold=0.3)
    assert list(table.index) == ["t = 0.100", "t = 0.300 (chosen)", "t = 0.500", "most probable class"]
    sweep = threshold_sweep(y_true, probabilities, CLASSES, thresholds=[0.1, 0.3, 0.5, np.inf])
    np.testing.assert_array_equal(table["sensitivity"], sweep["sensitivity"])
    np.testing.assert_array_equal(table["fp"], sweep["fp"])
    fig = threshold_static(y_true, probabilities, CLASSES, threshold=0.3, thresholds=(0.1, 0.5))
    drawn = fig.axes[1].tables[0]
    texts = {cell.get_text().get_text() for cell in drawn.get_celld().values()}
    assert {"t = 0.300 (chosen)", "most probable class", f"{table['specificity'].iloc[1]:.3f}"} <= texts
    assert _decoded(figure_to_png(fig)).shape[2] == 3


# ---------------------------------------------------------------- the Grad-CAM explorer


def test_gradcam_explorer_shows_the_selected_map_at_the_selected_opacity(precomputed):
    images, maps, _, probabilities = precomputed
    explorer = gradcam_explorer(images, maps, image_titles=["a\nfirst", "b", "c"], class_names=CLASSES,
                                layers=LAYERS, methods=METHODS, probabilities=probabilities)  # fmt: skip
    assert explorer.class_control.value == int(np.argmax(probabilities[0]))  # starts at the predicted class
    for i, c, l, m, alpha in ((0, 0, 0, 0, 0.4), (2, 1, 1, 2, 0.75), (1, 2, 0, 3, 0.0), (1, 2, 1, 1, 1.0)):
        explorer.image_control.value, explorer.class_control.value = i, c
        explorer.layer_control.value, explorer.method_control.value = l, m
        explorer.opacity_slider.value = alpha
        expected = overlay_heatmap(images[i], maps[i, c, l, m], alpha)
        np.testing.assert_array_equal(explorer.overlay, expected)
        np.testing.assert_array_equal(_decoded(explorer.view.value), expected)  # what the browser gets
        for part in (CLASSES[c], f"p = {probabilities[i, c]:.2f}", LAYERS[l], METHOD_TITLES[METHODS[m]]):
            assert part in explorer.title.value
    explorer.image_control.value = 0
    assert explorer.image_control.label == "1. a · first" and "<b>a · first</b>" in explorer.title.value


def test_gradcam_explorer_outlines_the_lesion_when_masks_are_given(precomputed):
    images, maps, masks, _ = precomputed
    explorer = gradcam_explorer(images, maps, image_titles=["a", "b", "c"], class_names=CLASSES, layers=LAYERS,
                                methods=METHODS, masks=masks)  # fmt: skip
    explorer.image_control.value = 2
    expected = overlay_with_outline(images[2], maps[2, 0, 0, 0], masks[2], 0.4)
    np.testing.assert_array_equal(_decoded(explorer.view.value), expected)
    assert not np.array_equal(expected, overlay_heatmap(images[2], maps[2, 0, 0, 0], 0.4))
    assert "lesion" in explorer.title.value


def test_gradcam_explorer_says_which_axis_of_the_maps_is_wrong(precomputed):
    images, maps, _, _ = precomputed
    with pytest.raises(CourseError, match=r"\(images, classes, layers, methods, H, W\)"):
        gradcam_explorer(images, maps[:, :2], image_titles=["a", "b", "c"], class_names=CLASSES, layers=LAYERS,
                         methods=METHODS)  # fmt: skip
    with pytest.raises(CourseError, match="image_titles has 2 entries for 3 images"):
        gradcam_explorer(images, maps, image_titles=["a", "b"], class_names=CLASSES, layers=LAYERS, methods=METHODS)


@pytest.mark.parametrize("rows", ["method", "layer"])
def test_gradcam_static_draws_one_row_per_method_or_layer(precomputed, rows):
    images, maps, masks, probabilities = precomputed
    fig = gradcam_static(images, maps, image_titles=["a", "b", "c"], class_names=CLASSES, layers=LAYERS,
                         methods=METHODS, masks=masks, probabilities=probabilities, shown=(0, 2), rows=rows,
                         alpha=0.5)  # fmt: skip
    row_names = [METHOD_TITLES[m] for m in METHODS] if rows == "method" else LAYERS
    per_row = 2 * (1 + (len(LAYERS) if rows == "method" else len(METHODS)))  # each image, then its maps
    axes = np.array(fig.axes).reshape(len(row_names), per_row)
    assert [next(ax.get_ylabel() for ax in row if ax.get_ylabel()) for row in axes] == row_names
    k = int(np.argmax(probabilities[2]))
    l, m = (1, 3) if rows == "method" else (1, 1)  # last row, second map of the second image
    drawn = axes[-1, per_row // 2 + 2].get_images()[0].get_array()
    np.testing.assert_array_equal(drawn, overlay_with_outline(images[2], maps[2, k, l, m], masks[2], 0.5))
    assert CLASSES[k] in axes[0, per_row // 2].get_title()
    assert _decoded(figure_to_png(fig)).shape[2] == 3


# ---------------------------------------------------------------- a widget after its static version


def test_show_with_static_fallback_displays_the_png_then_the_widget_with_a_sentence(monkeypatch, predictions):
    y_true, probabilities = predictions
    shown = []
    monkeypatch.setattr(interactive, "display", shown.append)
    explorer = threshold_explorer(y_true, probabilities, CLASSES)
    static = threshold_static(y_true, probabilities, CLASSES, threshold=0.5)
    show_with_static_fallback(explorer, static)
    picture, widget = (DisplayFormatter().format(obj)[0] for obj in shown)
    assert base64.b64decode(picture["image/png"]) == figure_to_png(static)
    assert widget["text/plain"] == STATIC_VERSION_NOTE
    assert widget["text/plain"].startswith("Interactive explorer: run this notebook in JupyterLab or Colab")
    assert widget["application/vnd.jupyter.widget-view+json"]["model_id"] == explorer.model_id
    assert isinstance(static, Figure)


# ---------------------------------------------------------------- maps computed once


def _tiny_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name=LAYERS[0])(x)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name=LAYERS[1])(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(3, name="head_logits")(x)
    return keras.Model(inputs, keras.layers.Softmax(name="predictions")(logits))


def test_precompute_maps_equals_the_explainer_called_directly():
    model = _tiny_model()
    images = np.random.default_rng(0).integers(0, 256, (2, 16, 16), dtype=np.uint8)
    options = {"max_maps": 3, "smooth_samples": 3, "seed": 0}
    maps = precompute_maps(model, images, LAYERS, METHODS, classes=[2, 0], **options)
    assert maps.shape == (2, 2, len(LAYERS), len(METHODS), 16, 16) and maps.dtype == np.float32
    assert np.ptp(maps, axis=(-2, -1)).mean() > 0.5  # most maps are not flat: the comparison means something
    for l, layer in enumerate(LAYERS):
        for m, method in enumerate(METHODS):
            explainer = Explainer(model, method, layer, **options)
            for c, class_index in enumerate([2, 0]):
                np.testing.assert_allclose(maps[:, c, l, m], explainer(images, class_index), atol=1e-6)


# ---------------------------------------------------------------- ipywidgets 7.7, as on Colab


def test_the_widgets_also_work_with_ipywidgets_7():
    """Runs this file's widget tests in a fresh interpreter with ipywidgets 7.7 first on the path."""
    if os.environ.get("COVID_TUTORIAL_IPYWIDGETS_7_RUN"):
        pytest.skip("already the ipywidgets 7 run")
    if ipywidgets.__version__.startswith("7."):  # e.g. Colab's versions (python3 tasks.py test-colab)
        pytest.skip(f"ipywidgets {ipywidgets.__version__} is installed: this file's tests ran with it")
    assert IPYWIDGETS_7.is_dir(), f"{IPYWIDGETS_7} is missing: `python3 tasks.py test` installs it"
    script = (
        "import sys, ipywidgets, pytest\n"
        "assert ipywidgets.__version__.startswith('7.'), ipywidgets.__version__\n"
        "sys.exit(pytest.main(sys.argv[1:]))\n"
    )
    # precompute_maps needs no widget, and the run would only repeat TensorFlow's work
    selection = "not precompute_maps and not ipywidgets_7"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(IPYWIDGETS_7), os.environ.get("PYTHONPATH", "")]),
           "COVID_TUTORIAL_IPYWIDGETS_7_RUN": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}  # fmt: skip
    command = [sys.executable, "-c", script, "-q", "-p", "no:nbval", "-p", "no:cacheprovider", "-o", "addopts=",
               "-k", selection, __file__]  # fmt: skip
    result = subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and " failed" not in result.stdout
