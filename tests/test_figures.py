"""covid_tutorial.figures: overlays and grids of pictures."""

import numpy as np

import pandas as pd

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
