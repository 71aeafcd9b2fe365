"""covid_tutorial.figures: overlays and grids of pictures."""

import numpy as np
import pandas as pd
import pytest

from covid_tutorial.figures import overlay_heatmap, plot_map_grid, plot_pareto


def test_overlay_is_rgb_uint8_at_image_size():
    image = np.full((50, 40), 100, np.uint8)
    heatmap = np.zeros((4, 4), np.float32)
    heatmap[0, 0] = 1
    overlay = overlay_heatmap(image, heatmap)
    assert overlay.shape == (50, 40, 3) and overlay.dtype == np.uint8
    assert not np.array_equal(overlay[0, 0], overlay[-1, -1])


def test_plot_map_grid_draws_rows_of_pictures_with_titles():
    wide, square = np.zeros((4, 8)), np.zeros((5, 5, 3), np.uint8)
    fig = plot_map_grid([[wide, None], [square, square]], ["a", "b"], ["left", "right"])
    axes = fig.get_axes()
    assert len(axes) == 4 and axes[0].get_title() == "left" and axes[0].get_ylabel() == "a"
    assert not axes[1].axison  # an empty cell is left blank
    assert axes[0].get_position().height < axes[2].get_position().height  # the wide row is shorter


def test_plot_pareto_draws_both_costs_with_intervals_inside_zero_and_one():
    board = pd.DataFrame({"macro_f1": [0.8, 0.7, 0.6], "ci_low_corrected": [0.6, 0.5, 0.55],
                          "ci_high_corrected": [0.9, 0.85, 0.65], "latency_ms": [5.0, 2.0, 9.0],
                          "params_M": [4.0, 2.2, 23.0], "front_latency": [True, True, False],
                          "front_params": [True, True, False], "device": "CPU: test"},
                         index=["B0", "MobileNetV2", "ResNet50"])  # fmt: skip
    fig = plot_pareto(board, chance=1 / 3)
    left, right = fig.get_axes()
    assert left.get_xscale() == "log" and "latency" in left.get_xlabel() and "parameters" in right.get_xlabel()
    assert left.get_ylim() == (0, 1) and "CI" in left.get_ylabel()
    assert {t.get_text() for t in left.texts} == {"B0", "MobileNetV2", "ResNet50"}
    assert any("chance" in t.get_text() for t in left.get_legend().get_texts())
    assert "CPU: test" in fig._suptitle.get_text()


def test_threshold_tradeoff_draws_the_rule_that_keeps_the_most_probable_class():
    """An image whose most probable class is COVID-19 stays COVID-19 whatever t: the plain
    rule p >= t would lose it above its score, the course's rule does not."""
    from covid_tutorial.figures import plot_threshold_tradeoff
    from covid_tutorial.metrics import operating_point, threshold_sweep

    classes = ["COVID-19", "Normal", "Pneumonia"]
    probabilities = np.array([[0.45, 0.30, 0.25], [0.30, 0.60, 0.10], [0.20, 0.10, 0.70], [0.35, 0.40, 0.25]])
    y_true = np.array([0, 0, 1, 2])
    fig = plot_threshold_tradeoff(y_true, probabilities, classes, threshold=0.32)
    ax = fig.axes[0]
    sensitivity, specificity = (line for line in ax.lines if line.get_label() in ("sensitivity", "specificity"))
    sweep = threshold_sweep(y_true, probabilities, classes)
    np.testing.assert_array_equal(sensitivity.get_xdata(), sweep["threshold"])
    np.testing.assert_array_equal(specificity.get_ydata(), sweep["specificity"])
    assert sensitivity.get_drawstyle() == "steps-pre"  # a row holds up to its own threshold
    above_every_score = sensitivity.get_ydata()[-1]
    assert above_every_score == 0.5  # the first image (p 0.45, most probable) is still found at t = 1
    default = operating_point(y_true, probabilities, classes, n_bootstrap=0).set_index("metric")["value"]
    dots = [line for line in ax.lines if line.get_marker() == "o" and list(line.get_xdata()) == [1]]
    assert sorted(float(d.get_ydata()[0]) for d in dots) == sorted([default["sensitivity"], default["specificity"]])
    chosen = [line for line in ax.lines if line.get_gid() == "threshold"]
    assert len(chosen) == 1 and list(chosen[0].get_xdata()) == [0.32, 0.32]
    at_chosen = operating_point(y_true, probabilities, classes, threshold=0.32, n_bootstrap=0)
    at_chosen = at_chosen.set_index("metric")["value"]
    rates = next(line for line in ax.lines if line.get_gid() == "threshold-rates")
    assert list(rates.get_ydata()) == [at_chosen["sensitivity"], at_chosen["specificity"]]
    band = next(patch for patch in ax.patches if "most probable class" in patch.get_label())
    left = ax.transData.inverted().transform(band.get_verts())[:, 0].min()
    assert left == pytest.approx(0.35)  # the highest p(COVID-19) of an image called something else


def test_plot_map_grid_labels_a_row_on_its_first_picture():
    picture = np.zeros((4, 4))
    fig = plot_map_grid([[picture, picture], [None, picture]], ["first row", "second row"])
    axes = fig.get_axes()
    assert axes[0].get_ylabel() == "first row" and axes[1].get_ylabel() == ""
    assert axes[3].get_ylabel() == "second row"  # the row starts with an empty cell


def test_heatmap_overlays_brighten_steadily_with_the_value_as_a_colour_blind_safe_map_does():
    """Lightness that rises with the value is what makes a map readable without hue (jet's rises,
    then falls at red, so a reader without red-green vision sees two values as one)."""

    ramp = np.tile(np.linspace(0, 1, 256, dtype=np.float32), (4, 1))
    colored = overlay_heatmap(np.zeros((4, 256), np.uint8), ramp, alpha=1.0).astype(float)
    lightness = colored[0] @ np.array([0.299, 0.587, 0.114])
    assert np.all(np.diff(lightness) >= -1.0) and lightness[-1] - lightness[0] > 200


def test_no_jet_colormap_anywhere_in_the_package_the_tools_or_the_notebooks_code():
    import json
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    jet = re.compile(r"""['"]jet['"]|COLORMAP_JET|cm\.jet""")
    sources = {p: p.read_text() for folder in ("covid_tutorial", "tools") for p in (root / folder).rglob("*.py")}
    for notebook in (root / "notebooks").glob("*.ipynb"):
        cells = json.loads(notebook.read_text())["cells"]
        sources[notebook] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert not [str(p.relative_to(root)) for p, text in sources.items() if jet.search(text)]


def test_the_error_gallery_shows_one_kind_of_error_when_asked():
    from covid_tutorial.figures import plot_error_gallery

    classes = ["COVID-19", "Normal", "Pneumonia"]
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([1, 0, 0, 1, 0, 1])  # one missed COVID-19, two false alarms, one confusion
    y_prob = np.eye(3)[y_pred] * 0.8 + 0.1 * np.eye(3)[0]
    images = np.zeros((6, 16, 16), np.uint8)
    titles = {kind: [ax.get_title().split("\n")[0] for ax in plot_error_gallery(
        images, y_true, y_prob, classes, y_pred=y_pred, kind=kind).axes] for kind in ("missed", "false alarm", "confusion")}
    assert titles == {"missed": ["missed COVID-19"], "false alarm": ["false alarm"] * 2, "confusion": ["confusion"]}
    none_missed = plot_error_gallery(images, y_true, y_prob, classes, y_pred=np.where(y_true == 0, 0, y_pred), kind="missed")
    assert "no missed COVID-19 images among 6" in none_missed.axes[0].texts[0].get_text()
    with pytest.raises(ValueError, match="choose one of"):
        plot_error_gallery(images, y_true, y_prob, classes, y_pred=y_pred, kind="misses")


def test_pareto_labels_never_overlap_even_for_models_at_the_same_point():
    import matplotlib.pyplot as plt

    names = ["EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "ResNet50", "DenseNet121", "MobileNetV2"]
    board = pd.DataFrame({
        "macro_f1": [0.52, 0.53, 0.52, 0.80, 0.79, 0.52], "ci_low_corrected": [0.45] * 3 + [0.75, 0.7, 0.5],
        "ci_high_corrected": [0.6] * 3 + [0.85, 0.83, 0.6], "latency_ms": [7.3, 7.4, 7.5, 19.5, 20.1, 7.3],
        "params_M": [4.0, 4.1, 4.2, 23.5, 23.0, 4.0], "front_latency": [True, False, False, True, False, False],
        "front_params": [True, False, False, True, False, False], "device": "CPU",
    }, index=names)  # fmt: skip
    fig = plot_pareto(board)
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        boxes = [text.get_window_extent(renderer) for text in ax.texts]
        assert sorted(text.get_text() for text in ax.texts) == sorted(names)
        assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:]), "two model names overlap"
        assert all(label.get_text() in {"1", "2", "5", "10", "20", "50"} or label.get_text() == ""
                   for label in ax.get_xticklabels()), "ticks at 1, 2, 5 of each decade, written plainly"
    plt.close(fig)


# ---------------------------------------------------------------- alternative text

CLASSES = ["COVID-19", "Normal", "Pneumonia"]


def test_alt_text_names_a_confusion_matrix_rows_columns_and_written_values():
    from covid_tutorial.figures import describe_figure, plot_confusion_matrix

    text = describe_figure(plot_confusion_matrix(np.array([[5, 1, 0], [1, 4, 1], [0, 2, 6]]), CLASSES))
    assert text.startswith("Figure. Confusion matrix")
    assert "rows true (COVID-19, Normal, Pneumonia), columns predicted (COVID-19, Normal, Pneumonia)" in text
    assert "values written in the cells" in text


def test_alt_text_gives_bar_values_axis_labels_legend_and_panels():
    from matplotlib.figure import Figure

    from covid_tutorial.figures import describe_figure

    fig = Figure()
    bars, curves = fig.subplots(1, 2)
    bars.bar(["ResNet50", "EfficientNetB0"], [0.81, 0.774])
    bars.set(title="macro F1", ylabel="F1")
    curves.plot([1, 2, 3], [0.9, 0.5, 0.3], label="train")
    curves.plot([1, 2, 3], [1.0, 0.7, 0.6], label="validation")
    curves.legend()
    curves.set(title="loss", xlabel="epoch", ylabel="loss")
    fig.suptitle("Two panels")
    text = describe_figure(fig)
    assert text.startswith("Figure: Two panels. 2 panels.")
    assert "Panel 1 (macro F1): bars: ResNet50 0.81, EfficientNetB0 0.774; y axis: F1." in text
    assert "Panel 2 (loss): 2 lines; loss against epoch; legend: train, validation." in text


def test_alt_text_gives_a_colour_bar_its_label_range_and_colours_and_summarises_many_panels():
    from covid_tutorial.figures import describe_figure

    rng = np.random.default_rng(0)
    cells = [[rng.random((8, 8)) for _ in range(4)] for _ in range(2)]
    fig = plot_map_grid(cells, column_titles=list("abcd"), cmap="viridis", colorbar="activation, 0..1")
    text = describe_figure(fig)
    assert "8 panels. 8 of them a map in viridis colours, titled 'a', 'b', 'c', 'd'." in text
    assert text.endswith("A colour bar (activation, 0..1) from 0 to 1 (viridis colours).")
    overlays = plot_map_grid([[rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)]], colorbar="Grad-CAM")
    assert "a colour image" in describe_figure(overlays) and "(inferno colours)" in describe_figure(overlays)


def test_the_png_formatter_returns_each_figure_with_its_alt_text_and_wraps_once():
    from functools import partial

    from IPython.core.pylabtools import print_figure
    from matplotlib.figure import Figure

    from covid_tutorial.figures import alt_text_formatter, describe_figure

    fig = Figure()
    fig.subplots().plot([0, 1], [1, 0])
    formatter = alt_text_formatter(partial(print_figure, fmt="png", base64=True))
    again = alt_text_formatter(formatter)  # start_lesson called twice in one kernel
    data, metadata = again(fig)
    assert isinstance(data, str) and len(data) > 100  # base64 PNG, as IPython stores it
    assert metadata == {"alt": describe_figure(fig)}
    assert again(Figure()) is None  # an empty figure shows nothing, as IPython's own formatter does


def test_a_figure_shown_in_a_notebook_keeps_its_alt_text_in_the_output(tmp_path):
    """Through a real kernel, as the notebooks run: `plt.show()` and a figure as a cell's value
    both store the description as the PNG output's `alt`."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("from covid_tutorial.lesson import start_lesson\nprofile = start_lesson('ci')"),
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nplt.title('falling')\nplt.show()"),
        nbformat.v4.new_code_cell("from matplotlib.figure import Figure\nfig = Figure()\nfig.subplots().bar(['a'], [2.0])\nfig"),
    ]
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    alts = [output["metadata"]["image/png"]["alt"] for cell in notebook.cells[1:] for output in cell.outputs
            if "image/png" in output.get("data", {})]
    assert alts == ["Figure. falling: 1 line.", "Figure. bars: a 2."]


def test_alt_text_says_a_diagram_by_its_labels_and_a_grid_by_its_rows():
    from covid_tutorial.figures import describe_figure
    from covid_tutorial.teaching import draw_mbconv_block

    text = describe_figure(draw_mbconv_block(input_channels=24, strides=1, output_channels=24))
    assert "a diagram labelled" in text and "lines" not in text
    rng = np.random.default_rng(1)
    grid = plot_map_grid([[rng.random((8, 8))] * 4 for _ in range(3)], ["conv1", "conv2", "conv3"], None)
    assert "Rows labelled 'conv1', 'conv2', 'conv3'." in describe_figure(grid)
