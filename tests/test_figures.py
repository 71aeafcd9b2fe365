"""covid_tutorial.figures: overlays and grids of pictures."""

import numpy as np

from covid_tutorial.figures import overlay_heatmap, plot_map_grid


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
