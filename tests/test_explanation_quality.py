"""covid_tutorial.explain.quality: pointing game, energy in the lesion and faithfulness, on hand-made cases and a model."""

import numpy as np
import pytest

from covid_tutorial.explain.quality import (
    deletion_scores,
    energy_inside,
    explanation_quality,
    pointing_game,
    summarize_quality,
)


def test_pointing_game_and_energy_on_hand_made_maps():
    mask = np.zeros((10, 10), bool)
    mask[2:5, 2:5] = True
    inside, outside, near = np.zeros((3, 10, 10))
    inside[3, 3] = 1
    outside[8, 8] = 1
    near[6, 6] = 1  # two pixels right of and below the mask's corner (4, 4)
    masks = np.stack([mask, mask, mask, np.zeros_like(mask)])
    maps = np.stack([inside, outside, near, inside])
    np.testing.assert_array_equal(pointing_game(maps, masks), [1, 0, 0, np.nan])
    np.testing.assert_array_equal(pointing_game(maps, masks, tolerance=2), [1, 0, 1, np.nan])

    uniform = np.ones((10, 10))
    half = np.where(mask, 1.0, 0.0) + np.where(mask, 0.0, 9.0 / 91.0)  # 9 inside, 9 outside
    energy = energy_inside(np.stack([uniform, mask.astype(float), half, np.zeros((10, 10))]), np.stack([mask] * 4))
    np.testing.assert_allclose(energy, [0.09, 1.0, 0.5, np.nan])


def quadrant_model(images):
    """Hand-made classifier: class 0 when the top-left 4x4 quadrant of an 8x8 image is bright."""
    logit = (np.asarray(images)[:, :4, :4, 0].mean(axis=(1, 2)) - 128.0) / 32.0
    p0 = 1.0 / (1.0 + np.exp(-logit))
    return np.stack([p0, 1.0 - p0], axis=1)


def test_faithfulness_on_a_hand_made_case():
    image = np.zeros((8, 8), np.uint8)
    image[:4, :4] = 255
    heatmap = np.zeros((8, 8))
    heatmap[:4, :4] = 1.0
    scores = deletion_scores(quadrant_model, image[None], heatmap[None], 0, fraction=0.25, random_repeats=20)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    base, after = sigmoid(127 / 32), sigmoid((255 * 16 / 64 - 128) / 32)  # filled with the image mean
    row = scores.iloc[0]
    assert row["confidence"] == pytest.approx(base)
    assert row["drop_top"] == pytest.approx(base - after)
    assert 0 < row["drop_random"] < row["drop_top"] / 2
    wrong = deletion_scores(quadrant_model, image[None], 1 - heatmap[None], 0, fraction=0.25, fill=0)
    assert wrong.iloc[0]["drop_top"] == pytest.approx(0.0)  # removing dark pixels changes nothing


def test_quality_table_per_method_and_class(model_and_image, gray_images):
    model, _ = model_and_image
    masks = np.zeros((2, 64, 64), bool)
    masks[0, 14:34, 10:30] = True  # around the first blob
    maps = {"gradcam": np.stack([masks[0].astype(float), np.ones((64, 64))])}
    per_image = explanation_quality(
        model, gray_images, ["COVID-19", "Normal"], masks, ["COVID-19", "Normal", "Pneumonia"], maps
    )
    assert list(per_image["explained_class"]) == ["COVID-19", "Normal"]
    assert per_image["pointing_hit"].iloc[0] == 1 and np.isnan(per_image["pointing_hit"].iloc[1])
    assert per_image["energy_inside"].iloc[0] == pytest.approx(1.0)
    summary = summarize_quality(per_image)
    assert list(summary["label"]) == ["COVID-19", "Normal"]
    covid = summary.iloc[0]
    assert covid["chance_level"] == pytest.approx(400 / 4096)
    assert covid["faithfulness"] == pytest.approx(covid["drop_top"] - covid["drop_random"])


def test_central_band_and_localization_table():
    from covid_tutorial.explain.quality import central_band, localization_table

    band = central_band(9)
    assert band.sum() == 27 and band[:, 3:6].all() and not band[:, :3].any()
    masks = np.zeros((3, 9, 9), bool)
    masks[0, 1:3, 0:2] = True  # a lesion in the left lung
    masks[1, 1:3, 0:2] = True
    on_lesion, on_center = np.zeros((2, 9, 9))
    on_lesion[1, 1], on_center[4, 4] = 1.0, 1.0
    table = localization_table(np.stack([on_lesion, on_center, on_center]), masks, ["COVID-19", "COVID-19", "Normal"])
    covid, normal = table.iloc[0], table.iloc[1]
    assert covid["images"] == 2 and covid["pointing_hit_rate"] == pytest.approx(0.5)
    assert covid["energy_inside"] == pytest.approx(0.5) and covid["lesion_share"] == pytest.approx(4 / 81)
    assert covid["central_peak_rate"] == pytest.approx(0.5) and covid["central_share"] == pytest.approx(1 / 3)
    assert np.isnan(normal["pointing_hit_rate"]) and normal["central_peak_rate"] == 1.0
