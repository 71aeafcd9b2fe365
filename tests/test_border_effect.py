"""Where explanation maps peak (notebook 06, "Maps at the border"): the border band, the share of
peaks in a region against chance with a Wilson interval, the turn test, intervals for the pointing
game and the energy share, raw maps, and the colour bar that says what an overlay's colours mean."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from covid_tutorial.explain.quality import (
    PeakShare,
    border_band,
    compared_with_chance,
    localization_table,
    peak_share,
    peak_share_table,
    peaks_follow,
    summarize_quality,
)


def peaked(n: int, row: int, col: int, size: int = 16) -> np.ndarray:
    """``n`` maps of ``size`` px, low noise everywhere and a clear maximum at (row, col)."""
    maps = np.random.default_rng(row * 100 + col).random((n, size, size)) * 0.1
    maps[:, row, col] = 1.0
    return maps


# ---------------------------------------------------------------- the band


def test_border_band_is_one_cell_of_an_eight_by_eight_map_at_any_size():
    small = border_band((8, 8))
    assert small.sum() == 28 and not small[1:-1, 1:-1].any() and small[0].all() and small[:, -1].all()
    large = border_band((128, 128))
    assert large[:16].all() and large[-16:].all() and large[:, :16].all() and not large[16:-16, 16:-16].any()
    assert large.mean() == pytest.approx(small.mean()) == pytest.approx(1 - (6 / 8) ** 2)


def test_border_band_of_one_side_and_its_rounding():
    top = border_band((64, 32), width=1 / 16, sides=("top",))
    assert top[:4].all() and not top[4:].any()
    right = border_band((10, 10), width=0.01, sides=("right",))  # rounds to 0 px: at least one column
    assert right[:, -1].all() and right.sum() == 10
    with pytest.raises(ValueError, match="sides"):
        border_band((8, 8), sides=("middle",))
    with pytest.raises(ValueError, match="width"):
        border_band((8, 8), width=0.5)


# ---------------------------------------------------------------- counting peaks


def test_a_corner_peak_is_counted_and_a_central_one_is_not():
    band = border_band((16, 16))
    corner, centre = peak_share(peaked(1, 0, 15), band), peak_share(peaked(1, 8, 8), band)
    assert (corner.peaks, corner.images) == (1, 1) and (centre.peaks, centre.images) == (0, 1)
    mixed = peak_share(np.concatenate([peaked(3, 0, 15), peaked(2, 8, 8), peaked(1, 15, 3)]), band)
    assert (mixed.peaks, mixed.images) == (4, 6) and mixed.share == pytest.approx(4 / 6)


def test_chance_is_the_band_share_of_the_image_and_flat_maps_are_left_out():
    band = border_band((16, 16), sides=("top", "right"))
    maps = np.concatenate([peaked(2, 0, 5), np.zeros((3, 16, 16))])
    result = peak_share(maps, band)
    assert result.chance == pytest.approx(band.mean()) == pytest.approx((16 * 16 - 14 * 14) / 256)
    assert result.images == 2 and result.peaks == 2
    assert np.isnan(result.in_region[2:]).all()


def test_the_interval_is_wilson_of_real_width_and_holds_the_share():
    band = border_band((16, 16))
    result = peak_share(np.concatenate([peaked(7, 0, 0), peaked(3, 8, 8)]), band)
    expected = stats.binomtest(7, 10).proportion_ci(confidence_level=0.95, method="wilson")
    assert result.interval == pytest.approx((expected.low, expected.high))
    low, high = result.interval
    assert low < result.share < high and high - low > 0.2
    everything = peak_share(peaked(10, 0, 0), band)  # all ten in the band: no interval of zero width
    low, high = everything.interval
    assert everything.share == 1 and high == pytest.approx(1) and low < 0.8
    assert low == pytest.approx(10 / (10 + 1.959964**2), abs=1e-4)


def test_the_verdict_follows_the_numbers_both_ways():
    band = border_band((16, 16))
    assert peak_share(peaked(20, 0, 15), band).compared_with_chance == "more than chance"
    assert peak_share(peaked(20, 8, 8), band).compared_with_chance == "less than chance"
    near = peak_share(np.concatenate([peaked(5, 0, 15), peaked(5, 8, 8)]), band)  # 0.5 against 0.44
    assert near.compared_with_chance == "not different from chance"
    assert compared_with_chance(0.6, 0.9, 0.5) == "more than chance"
    assert compared_with_chance(0.1, 0.4, 0.5) == "less than chance"
    assert compared_with_chance(0.4, 0.6, 0.5) == "not different from chance"
    assert compared_with_chance(np.nan, np.nan, 0.5) == "not measured"


def test_a_peak_share_reads_as_a_sentence():
    result = peak_share(np.concatenate([peaked(14, 0, 15), peaked(16, 8, 8)]), border_band((16, 16)),
                        name="the border band")  # fmt: skip
    text = str(result)
    assert text.startswith("14 of 30 peaks in the border band (0.47 [")
    assert text.endswith("against 0.44 by chance: not different from chance")


def test_peak_share_refuses_shapes_that_do_not_match_and_empty_regions():
    with pytest.raises(ValueError, match="must be"):
        peak_share(np.zeros((2, 8, 8)), border_band((16, 16)))
    with pytest.raises(ValueError, match="region"):
        peak_share(peaked(2, 0, 0), np.zeros((16, 16), bool))


def test_peak_share_table_has_one_row_per_set_of_maps():
    band = border_band((16, 16))
    table = peak_share_table(
        {("trained", "Grad-CAM"): peaked(10, 8, 8), ("random head", "Grad-CAM"): peaked(10, 0, 15)},
        band, name="the border band", names=("model", "method"),
    )  # fmt: skip
    assert table.index.names == ["model", "method"]
    trained, control = table.loc[("trained", "Grad-CAM")], table.loc[("random head", "Grad-CAM")]
    assert (trained["peaks"], control["peaks"]) == (0, 10)
    assert trained["compared_with_chance"] == "less than chance" and control["compared_with_chance"] == "more than chance"
    assert control["ci_low"] < control["share"] <= control["ci_high"] and control["chance"] == pytest.approx(band.mean())
    assert isinstance(control["result"], PeakShare)


def test_peaks_follow_the_frame_or_the_picture():
    top = border_band((16, 16), sides=("top",))
    stuck = peaked(20, 0, 15)  # the turned images' maps still peak at the frame's top
    frame, picture = peak_share(stuck, top), peak_share(stuck[:, ::-1, ::-1], top)
    assert peaks_follow(frame, picture) == "the frame"
    moved = peaked(20, 15, 0)  # the peak turned with the image: the frame's bottom, the picture's top
    assert peaks_follow(peak_share(moved, top), peak_share(moved[:, ::-1, ::-1], top)) == "the image"
    spread = np.concatenate([peaked(10, 0, 15), peaked(10, 15, 0)])
    assert peaks_follow(peak_share(spread, top), peak_share(spread[:, ::-1, ::-1], top)) == "neither clearly"


# ---------------------------------------------------------------- intervals for the quality table


def per_image_frame(hits, energies, label="COVID-19", method="gradcam"):
    n = len(hits)
    return pd.DataFrame({
        "image": np.arange(n), "method": method, "label": label, "flat_map": False,
        "pointing_hit": hits, "energy_inside": energies, "mask_share": 0.05,
        "confidence": 0.9, "drop_top": 0.2, "drop_random": 0.1,
    })  # fmt: skip


def test_summarize_quality_gives_the_pointing_game_a_wilson_interval_over_the_images():
    hits = np.array([1.0] * 7 + [0.0] * 3)
    energies = np.linspace(0.1, 0.3, 10)
    normal = per_image_frame([np.nan] * 4, [np.nan] * 4, label="Normal")
    summary = summarize_quality(pd.concat([per_image_frame(hits, energies), normal], ignore_index=True))
    covid, healthy = summary.iloc[0], summary.iloc[1]
    expected = stats.binomtest(7, 10).proportion_ci(confidence_level=0.95, method="wilson")
    assert covid["scored_images"] == 10 and covid["pointing_hit_rate"] == pytest.approx(0.7)
    assert (covid["pointing_ci_low"], covid["pointing_ci_high"]) == pytest.approx((expected.low, expected.high))
    assert covid["energy_ci_low"] < energies.mean() < covid["energy_ci_high"]
    assert covid["energy_ci_low"] > energies.min() and covid["energy_ci_high"] < energies.max()
    assert healthy["scored_images"] == 0 and np.isnan(healthy[["pointing_ci_low", "energy_ci_high"]].astype(float)).all()
    assert "over the scored images" in summary.attrs["interval"]


def test_a_perfect_pointing_game_still_gets_an_interval_of_real_width():
    summary = summarize_quality(per_image_frame(np.ones(8), np.full(8, 0.4)))
    row = summary.iloc[0]
    assert row["pointing_hit_rate"] == 1 and row["pointing_ci_high"] == pytest.approx(1)
    assert row["pointing_ci_low"] < 0.8


def test_localization_intervals_are_drawn_over_patients_when_given():
    masks = np.zeros((8, 9, 9), bool)
    masks[:, 1:3, 0:2] = True
    on_lesion, elsewhere = np.zeros((2, 9, 9))
    on_lesion[1, 1], elsewhere[7, 7] = 1.0, 1.0
    maps = np.stack([on_lesion] * 6 + [elsewhere] * 2)
    labels = ["COVID-19"] * 8
    by_image = localization_table(maps, masks, labels).iloc[0]
    by_patient = localization_table(maps, masks, labels, groups=[0, 0, 1, 1, 2, 2, 3, 3]).iloc[0]
    assert by_image["units"] == 8 and by_patient["units"] == 4
    assert by_image["pointing_hit_rate"] == by_patient["pointing_hit_rate"] == pytest.approx(0.75)
    assert by_patient["pointing_ci_high"] - by_patient["pointing_ci_low"] > by_image["pointing_ci_high"] - by_image["pointing_ci_low"]
    expected = stats.binomtest(3, 4).proportion_ci(confidence_level=0.95, method="wilson")
    assert (by_patient["pointing_ci_low"], by_patient["pointing_ci_high"]) == pytest.approx((expected.low, expected.high))


# ---------------------------------------------------------------- raw maps and the colour bar


def test_raw_maps_keep_their_scale_and_normalised_ones_are_divided_by_their_maximum(model_and_image, gray_images):
    from covid_tutorial.explain import Explainer, compute_heatmaps

    model, _ = model_and_image
    explainer = Explainer(model, "gradcam")
    raw, scaled = explainer(gray_images, 0, normalize=False), explainer(gray_images, 0)
    peaks = raw.reshape(len(raw), -1).max(axis=1)
    assert (peaks > 0).all() and not np.allclose(peaks, 1)
    np.testing.assert_allclose(scaled, raw / peaks[:, None, None], rtol=1e-5, atol=1e-6)
    both = compute_heatmaps(model, gray_images, 0, ("gradcam",), normalize=False)
    np.testing.assert_allclose(both["gradcam"], raw, rtol=1e-5, atol=1e-6)


def test_map_grid_draws_a_labelled_colour_bar_in_the_overlay_colours_only_when_asked():
    from covid_tutorial.figures import HEATMAP_COLORMAP, overlay_heatmap, plot_map_grid

    ramp = np.tile(np.linspace(0, 1, 32), (32, 1))
    cells = [[overlay_heatmap(np.zeros((32, 32), np.uint8), ramp, alpha=1.0)] * 2]
    plain = plot_map_grid(cells, None, ["a", "b"])
    assert len(plain.axes) == 2
    fig = plot_map_grid(cells, None, ["a", "b"], colorbar="each map divided by its own maximum")
    assert len(fig.axes) == 3
    bar = fig.axes[-1]
    assert "divided by its own maximum" in bar.get_ylabel().replace("\n", " ")
    assert bar.get_ylim() == pytest.approx((0, 1))
    drawn = [c.get_cmap().name for c in bar.collections if type(c).__name__ == "QuadMesh"]
    assert drawn == [HEATMAP_COLORMAP] and HEATMAP_COLORMAP in ("inferno", "magma", "viridis", "cividis")
    # the bar's colours are the overlay's: the top of the ramp drawn by OpenCV matches inferno's end
    from matplotlib import colormaps

    top = cells[0][0][16, -1].astype(float)
    np.testing.assert_allclose(top, np.array(colormaps[HEATMAP_COLORMAP](1.0)[:3]) * 255, atol=3)
    right = max(ax.get_position().x1 for ax in fig.axes[:2])
    assert right < bar.get_position().x0  # the pictures make room for the bar
