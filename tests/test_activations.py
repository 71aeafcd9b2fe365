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
