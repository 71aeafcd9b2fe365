"""covid_tutorial.explain.activations: feature maps, their statistics, activation maximisation."""

import cv2
import numpy as np
import pytest

from covid_tutorial.explain.activations import (
    activation_statistics,
    channel_lesion_energy,
    depth_layers,
    extract_activations,
    high_frequency_share,
    input_resemblance,
    maximize_filter_activation,
    spatial_entropy,
)
from covid_tutorial.errors import CourseError
from covid_tutorial.figures import feature_map_grid


def test_activation_extraction_returns_the_requested_layers(model_and_image, gray_images):
    model, _ = model_and_image
    layers = depth_layers(model)
    assert layers == ["conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out"]
    acts = extract_activations(model, gray_images, ["conv1_relu", "conv3_block4_out"], batch_size=1)
    assert list(acts) == ["conv1_relu", "conv3_block4_out"]
    assert acts["conv1_relu"].shape == (2, 32, 32, 64) and acts["conv3_block4_out"].shape == (2, 8, 8, 512)
    stats = activation_statistics(acts, ["COVID-19", "Normal"])
    assert len(stats) == 4 and set(stats["label"]) == {"COVID-19", "Normal"}
    assert ((stats["sparsity"] >= 0) & (stats["sparsity"] <= 1)).all()
    grid = feature_map_grid(acts["conv3_block4_out"][0], columns=4)
    assert grid.shape == (2 * 9 - 1, 4 * 9 - 1)  # 8 channels by default: two rows of four


def test_spatial_entropy_and_sparsity_known_values():
    maps = np.zeros((1, 4, 4, 3))
    maps[0, :, :, 0] = 1.0  # spread evenly: entropy 1
    maps[0, 1, 2, 1] = 5.0  # one position: entropy 0
    maps[0, :, :, 2] = -1.0  # nothing positive: NaN
    np.testing.assert_allclose(spatial_entropy(maps)[0], [1.0, 0.0, np.nan])
    stats = activation_statistics({"layer": maps})
    assert stats.loc[0, "sparsity"] == pytest.approx(1 - 17 / 48)
    assert stats.loc[0, "dead_channels"] == pytest.approx(1 / 3)
    assert stats.loc[0, "spatial_entropy"] == pytest.approx(0.5)


def test_activation_maximization_raises_the_filter_activation(model_and_image):
    model, _ = model_and_image
    images, table = maximize_filter_activation(model, "conv2_block3_out", [0, 5], steps=6)
    assert images.shape == (2, 64, 64) and images.dtype == np.uint8
    assert (table["activation_end"] > table["activation_start"]).all()
    with pytest.raises(CourseError, match="filters"):
        maximize_filter_activation(model, "conv1_relu", [64], steps=1)


def test_regularised_activation_maximization_is_smoother_and_still_climbs(model_and_image):
    model, _ = model_and_image
    args = dict(steps=12, seed=1)
    regularised = dict(jitter=2, blur_sigma=1.0, **args)
    plain, plain_table = maximize_filter_activation(model, "conv2_block3_out", [0, 5], **args)
    smooth, smooth_table = maximize_filter_activation(model, "conv2_block3_out", [0, 5], **regularised)
    assert smooth.shape == plain.shape == (2, 64, 64)
    assert (smooth_table["activation_end"] > smooth_table["activation_start"]).all()
    # the regularisers remove fine texture: much less energy above 0.25 cycles/px
    assert (high_frequency_share(smooth) < 0.5 * high_frequency_share(plain)).all()
    np.testing.assert_allclose(smooth_table["high_frequency"], high_frequency_share(smooth))
    one_by_one, _ = maximize_filter_activation(model, "conv2_block3_out", [0, 5], filters_per_batch=1, **regularised)
    assert np.abs(one_by_one.astype(int) - smooth).mean() < 0.5  # the same ascent, one filter at a time


def test_high_frequency_share_known_values():
    y, x = np.mgrid[0:32, 0:32]
    slow = np.cos(2 * np.pi * x / 16)  # 1/16 cycles per px: all energy below the cutoff
    fast = np.cos(2 * np.pi * x * 10 / 32)  # 10/32 cycles per px: all above
    shares = high_frequency_share(np.stack([slow, fast, slow + fast]))
    np.testing.assert_allclose(shares, [0.0, 1.0, 0.5], atol=1e-6)
    assert np.isnan(high_frequency_share(np.ones((8, 8))))


def test_input_resemblance_and_channel_lesion_energy_known_values(gray_images):
    small = np.stack([cv2.resize(image.astype("float32"), (8, 8), interpolation=cv2.INTER_AREA) for image in gray_images])
    resemblance = input_resemblance({"copy": np.repeat(small[..., None], 4, -1), "flipped": -small[..., None]}, gray_images)
    assert resemblance["resemblance"].tolist() == pytest.approx([1.0, -1.0])
    masks = np.zeros((2, 8, 8), bool)
    masks[:, :4, :4] = True
    activation = np.zeros((2, 8, 8, 2), np.float32)
    activation[:, :4, :4, 0] = 1.0  # exactly the lesion
    activation[..., 1] = 1.0  # everywhere
    np.testing.assert_allclose(channel_lesion_energy(activation, masks), [1.0, 0.25], atol=1e-6)


def test_per_image_forms_agree_with_the_summaries(gray_images):
    from covid_tutorial.explain.activations import (
        activation_statistics,
        channel_lesion_shares,
        image_statistics,
        input_resemblance_per_image,
    )

    rng = np.random.default_rng(0)
    acts = {"a": rng.normal(size=(4, 8, 8, 3)).astype("float32"), "b": np.maximum(rng.normal(size=(4, 4, 4, 5)), 0)}
    acts["b"][1] = 0.0  # an image on which every channel is dead
    per_image = image_statistics(acts)
    assert len(per_image) == 8 and per_image["image"].tolist() == [0, 1, 2, 3] * 2
    summary = activation_statistics(acts)
    for column in ("sparsity", "dead_channels"):
        np.testing.assert_allclose(per_image.groupby("layer", sort=False)[column].mean(), summary[column])
    assert per_image.loc[(per_image["layer"] == "b") & (per_image["image"] == 1), "dead_channels"].item() == 1.0
    assert np.isnan(per_image.loc[(per_image["layer"] == "b") & (per_image["image"] == 1), "spatial_entropy"].item())

    small = np.stack([cv2.resize(image.astype("float32"), (8, 8), interpolation=cv2.INTER_AREA) for image in gray_images])
    rho = input_resemblance_per_image({"copy": small[..., None], "flipped": -small[..., None]}, gray_images)
    assert rho.shape == (2, 2) and rho["copy"].tolist() == pytest.approx([1, 1]) and rho["flipped"].tolist() == pytest.approx([-1, -1])

    masks = np.zeros((3, 8, 8), bool)
    masks[0, :4, :4] = masks[2, :, :4] = True  # image 1 has no lesion and is left out
    activation = np.zeros((3, 8, 8, 2), np.float32)
    activation[..., :4, 0] = 1.0  # the left half
    activation[..., 1] = 1.0  # everywhere
    np.testing.assert_allclose(channel_lesion_shares(activation, masks), [[0.5, 0.25], [1.0, 0.5]], atol=1e-6)


def test_measure_with_intervals_resamples_patients_and_decides_a_difference():
    from covid_tutorial.explain.activations import measure_with_intervals

    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(30), 2)
    trained = rng.normal(0.5, 0.1, 60)
    control = trained - 0.2 + rng.normal(0, 0.01, 60)  # lower on every image
    table = measure_with_intervals({"trained": lambda rows: trained[rows].mean(),
                                    "trained minus control": lambda rows: (trained[rows] - control[rows]).mean()},
                                   60, patients, n_bootstrap=200, seed=1)
    assert table.index.tolist() == ["trained", "trained minus control"] and table.attrs["n_patients"] == 30
    assert table.loc["trained", "value"] == pytest.approx(trained.mean())
    low, high = table.loc["trained minus control", ["ci_low", "ci_high"]]
    assert 0 < low < 0.2 < high, "the interval holds the true difference and excludes 0"
    wider = measure_with_intervals({"trained": lambda rows: trained[rows].mean()}, 60, np.zeros(60), n_bootstrap=50)
    assert wider.loc["trained", "ci_low"] == wider.loc["trained", "ci_high"], "one patient: nothing to resample"
    with pytest.raises(CourseError, match="at least one measure"):
        measure_with_intervals({}, 60)
