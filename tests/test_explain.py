import json

import cv2
import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from covid_tutorial.errors import CourseError
from covid_tutorial.explain import METHODS, Explainer, GradCAM, backbone_stages, class_contrast, logits_model, randomization_test, randomize_top_layers, rank_correlation
from covid_tutorial.shortcuts import accuracy_by_test_set, box_mask, where_maps_point, write_masked_dataset, energy_in_box, mask_outside_box
from covid_tutorial.activations import channel_lesion_energy, input_resemblance, activation_statistics, depth_layers, extract_activations, maximize_filter_activation, spatial_entropy
from covid_tutorial.bench import benchmark_gradcam
from covid_tutorial.explanation_quality import deletion_scores, energy_inside, pointing_game, summarize_quality, explanation_quality
from covid_tutorial.figures import feature_map_grid, overlay_heatmap, plot_map_grid
from covid_tutorial.train import recalibrate_batchnorm
from covid_tutorial.models import build_classifier


@pytest.fixture(scope="module")
def model_and_image():
    """An untrained ResNet50 whose head is set so that every class has a map that is not flat.

    (At initialisation the maps of some classes are zero everywhere: their weighted sum of
    positive feature maps is negative at every position, and Grad-CAM's ReLU removes it.)
    """
    keras.utils.set_random_seed(0)
    model = build_classifier("resnet50", 3, 64, weights=None, seed=0)
    kernel, bias = model.get_layer("head_logits").get_weights()
    rng = np.random.default_rng(0)
    kernel[:, 0] = np.abs(rng.normal(0, kernel.std(), kernel.shape[0]))
    kernel[:, 2] = np.abs(rng.normal(0, kernel.std(), kernel.shape[0])) * (rng.random(kernel.shape[0]) < 0.5)
    model.get_layer("head_logits").set_weights([kernel, bias])
    image = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    return model, image


@pytest.fixture(scope="module")
def gray_images():
    """Two smooth grayscale images (a bright blob in different places), uint8 (2, 64, 64)."""
    y, x = np.mgrid[0:64, 0:64]
    blobs = [np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 120.0) for cx, cy in ((20, 24), (44, 40))]
    return np.stack([np.uint8(60 + 180 * b) for b in blobs])


def test_maps_for_two_classes_differ(model_and_image):
    model, image = model_and_image
    cam = GradCAM(model)
    first, second = cam(image, 0)[0], cam(image, 1)[0]
    assert first.shape == (2, 2) or first.ndim == 2
    assert first.max() <= 1 and first.min() >= 0
    assert not np.allclose(first, second)


def test_gradcam_equals_a_plain_eager_computation(model_and_image):
    model, image = model_and_image
    layer = model.get_layer("conv4_block6_out")
    probe = keras.Model(model.input, [layer.output, model.get_layer("head_logits").output])
    with tf.GradientTape() as tape:
        features, logits = probe(image, training=False)
        score = logits[:, 2]
    grads = tape.gradient(score, features).numpy()[0]
    expected = np.maximum((grads.mean(axis=(0, 1)) * features.numpy()[0]).sum(-1), 0)
    expected = expected / expected.max()
    np.testing.assert_allclose(GradCAM(model, "conv4_block6_out")(image, 2)[0], expected, atol=1e-4)


def test_softmax_sum_has_no_gradient(model_and_image):
    """The published bug: d(sum of softmax)/d(anything) is zero, so its 'map' says nothing."""
    model, image = model_and_image
    probe = keras.Model(model.input, [model.get_layer("conv5_block3_out").output, model.output])
    with tf.GradientTape() as tape:
        features, probabilities = probe(image, training=False)
        total = tf.reduce_sum(probabilities, axis=1)
    assert np.abs(tape.gradient(total, features).numpy()).max() < 1e-6


def test_overlay_is_rgb_uint8_at_image_size():
    image = np.full((50, 40), 100, np.uint8)
    heatmap = np.zeros((4, 4), np.float32)
    heatmap[0, 0] = 1
    overlay = overlay_heatmap(image, heatmap)
    assert overlay.shape == (50, 40, 3) and overlay.dtype == np.uint8
    assert not np.array_equal(overlay[0, 0], overlay[-1, -1])


# ---------------------------------------------------------------- agreement with tf-keras-vis


def test_own_gradcam_equals_tf_keras_vis_gradcam(model_and_image, gray_images):
    """Same model, same layer, same class score (the logits): tf-keras-vis Gradcam as reference."""
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.scores import CategoricalScore

    model, image = model_and_image
    batch = np.concatenate([image, np.repeat(gray_images[..., None], 3, -1).astype("float32")])
    classes = [2, 0, 2]
    reference = Gradcam(logits_model(model))
    for layer in ("conv4_block6_out", "conv5_block3_out"):
        theirs = np.asarray(reference(
            CategoricalScore(classes),
            batch,
            penultimate_layer=layer,
            seek_penultimate_conv_layer=False,
            expand_cam=False,
            normalize_cam=False,
        ))
        ours = GradCAM(model, layer)(batch, classes, normalize=False)
        assert ours.shape == theirs.shape == (3, *model.get_layer(layer).output.shape[1:3])
        assert (theirs.reshape(3, -1).max(axis=1) > 0).all()
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * np.abs(theirs).max())


# ---------------------------------------------------------------- the other methods


@pytest.mark.parametrize("method", [m for m in METHODS if m != "gradcam"])
def test_library_methods_give_input_sized_maps_that_differ_between_classes(model_and_image, gray_images, method):
    model, _ = model_and_image
    explainer = Explainer(model, method, "conv4_block6_out", max_maps=8, smooth_samples=3)
    first, second = explainer(gray_images, 0), explainer(gray_images, 1)
    assert first.shape == second.shape == (2, 64, 64)
    assert first.dtype == np.float32 and first.min() >= 0 and first.max() == pytest.approx(1.0)
    assert not np.allclose(first, second, atol=1e-3)
    if method != "saliency":  # CAM methods also come at the layer's own size
        assert explainer(gray_images, 0, upsample=False).shape == (2, 4, 4)


def test_saliency_is_reproducible_with_its_seed(model_and_image, gray_images):
    model, _ = model_and_image
    first = Explainer(model, "saliency", smooth_samples=2, seed=3)(gray_images[:1], 0)
    np.random.seed(123)
    second = Explainer(model, "saliency", smooth_samples=2, seed=3)(gray_images[:1], 0)
    after = np.random.rand()
    np.testing.assert_array_equal(first, second)
    np.random.seed(123)
    assert after == np.random.rand()  # the global NumPy stream was left as it was


def test_target_layer_is_found_and_overridable(model_and_image):
    model, _ = model_and_image
    assert Explainer(model).layer_name == "conv5_block3_out"
    assert Explainer(model, "gradcam++", "conv3_block4_out").layer_name == "conv3_block4_out"
    with pytest.raises(CourseError, match="no layer"):
        Explainer(model, "gradcam", "conv9_nothing")
    with pytest.raises(CourseError, match="feature map"):
        GradCAM(model, "head_pool")
    with pytest.raises(CourseError, match="Unknown method"):
        Explainer(model, "lime")


def test_efficientnet_works_too(gray_images):
    model = build_classifier("efficientnetb0", 3, 64, weights=None, seed=0)
    explainer = Explainer(model, "gradcam")
    assert explainer.layer_name == "top_activation"
    maps = explainer(gray_images, 1)
    assert maps.shape == (2, 64, 64) and np.isfinite(maps).all()
    layers = depth_layers(model)
    assert layers[0] == "stem_activation" and layers[-1] == "top_activation"
    assert [name for name, _ in backbone_stages(model)][1:8] == [f"block{i}" for i in range(1, 8)]
    acts = extract_activations(model, gray_images, layers)
    assert [acts[n].shape[1] for n in layers] == [32, 32, 16, 8, 4, 4, 2, 2, 2]


# ---------------------------------------------------------------- sanity checks


def test_rank_correlation_known_values():
    ramp = np.arange(16.0).reshape(4, 4)
    assert rank_correlation(ramp, ramp**3) == pytest.approx(1.0)
    assert rank_correlation(ramp, -ramp) == pytest.approx(-1.0)
    assert np.isnan(rank_correlation(ramp, np.zeros((4, 4))))


def test_randomization_test_separates_a_reinitialised_model_from_itself(model_and_image, gray_images):
    model, _ = model_and_image
    copy, names = randomize_top_layers(model, stages=1, seed=1)
    assert "head_logits" in names and "conv5_block3_out" not in names  # an Add has no weights
    assert "conv5_block3_3_conv" in names and "conv4_block6_3_conv" not in names
    np.testing.assert_array_equal(
        copy.get_layer("conv4_block6_3_conv").get_weights()[0],
        model.get_layer("conv4_block6_3_conv").get_weights()[0],
    )
    assert not np.allclose(copy.get_layer("head_logits").get_weights()[0], model.get_layer("head_logits").get_weights()[0])
    _, image = model_and_image
    images = np.concatenate([image, np.repeat(gray_images[..., None], 3, -1)])
    table = randomization_test(model, images, 0, "gradcam", "conv4_block6_out", max_stages=0)
    assert list(table["step"].unique()) == [0, 1] and table["randomized"].iloc[-1] == "head"
    itself = table[table["step"] == 0]
    randomized = table[table["step"] == 1]
    assert (itself["spearman"] > 0.999).all() and not itself["flat_map"].any()
    # a re-initialised head changes the map: a low rank correlation, or a map gone flat
    assert (randomized["flat_map"] | (randomized["spearman"].abs() < 0.6)).all()
    assert not randomized["flat_map"].all()


def test_class_contrast_is_one_for_the_same_class_and_lower_otherwise(model_and_image, gray_images):
    model, _ = model_and_image
    explainer = Explainer(model, "gradcam", "conv4_block6_out")
    same = class_contrast(explainer, gray_images, 0, 0)
    other = class_contrast(explainer, gray_images, 0, 1)
    assert np.allclose(same["spearman"], 1.0) and np.allclose(same["mean_abs_difference"], 0.0)
    # class 1's map is flat on these images (no rank correlation defined): the maps differ
    assert (other["spearman"].isna() | (other["spearman"] < 0.99)).all()
    assert (other["mean_abs_difference"] > 0.1).all()


# ---------------------------------------------------------------- measured quality


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


# ---------------------------------------------------------------- activations


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


# ---------------------------------------------------------------- shortcut helpers and speed


def test_masking_outside_a_box_and_energy_in_the_box():
    images = np.full((1, 10, 10), 200, np.uint8)
    masked = mask_outside_box(images, (0.2, 0.8, 0.3, 0.9))
    assert masked[0, 2:8, 3:9].min() == 200 and masked[0].sum() == 200 * 36
    assert images.min() == 200  # the input is untouched
    heat = np.zeros((1, 10, 10))
    heat[0, 0, 0], heat[0, 5, 5] = 3.0, 1.0
    assert energy_in_box(heat, (0, 0.1, 0, 0.1))[0] == pytest.approx(0.75)


def test_benchmark_reports_both_timings_from_one_run(model_and_image):
    model, _ = model_and_image
    result = benchmark_gradcam(model, repeats=2, warmup=1, scorecam_maps=4, scorecam_repeats=1)
    assert result["forward_ms"] > 0 and result["gradcam_ms"] > 0 and result["scorecam_ms"] > 0
    assert result["gradcam_over_forward"] == pytest.approx(result["gradcam_ms"] / result["forward_ms"])
    assert result["layer"] == "conv5_block3_out" and result["image_size"] == 64


# ---------------------------------------------------------------- the command line on a tiny RUN


@pytest.fixture(scope="module")
def tiny_run(phantom_dir, tmp_path_factory):
    from covid_tutorial.pipeline import train_run

    out = tmp_path_factory.mktemp("run")
    # MobileNetV2 trains and saves fastest; ResNet50 and EfficientNet are covered above.
    train_run(phantom_dir, out, backbone="mobilenetv2", profile="ci", image_size=64, head_epochs=1, progress=False)
    return out


def test_explain_command_writes_table_and_overlays(tiny_run, phantom_dir, tmp_path, capsys):
    from covid_tutorial.cli import main

    out = tmp_path / "explained"
    code = main(["explain", str(tiny_run), str(phantom_dir), "--method", "gradcam", "scorecam",
                 "--per-class", "2", "--max-maps", "4", "--out", str(out)])
    assert code == 0
    summary = pd.read_csv(out / "explanation_quality.csv")
    assert set(summary["method"]) == {"gradcam", "scorecam"}
    assert {"pointing_hit_rate", "energy_inside", "chance_level", "faithfulness"} <= set(summary.columns)
    lesion_rows = summary[summary["label"] != "Normal"]
    assert lesion_rows["energy_inside"].dropna().between(0, 1).all() and (lesion_rows["with_lesion"] > 0).all()
    per_image = pd.read_csv(out / "explanation_per_image.csv")
    classes = json.loads((tiny_run / "config.json").read_text())["class_names"]
    n_images = len(per_image) // 2
    assert 0 < n_images <= 2 * len(classes) and set(per_image["label"]) <= set(classes)
    assert len(list((out / "overlays" / "gradcam").glob("*.png"))) == n_images
    assert len(list((out / "overlays" / "scorecam").glob("*.png"))) == n_images
    printed = capsys.readouterr().out
    assert "pointing" in printed and "Grad-CAM" in printed


def test_explain_command_says_what_is_wrong_with_a_bad_run(tmp_path, phantom_dir, capsys):
    from covid_tutorial.cli import main

    assert main(["explain", str(tmp_path), str(phantom_dir), "--out", str(tmp_path / "x")]) == 2
    assert "not a RUN folder" in capsys.readouterr().err


def test_recalibrate_batchnorm_sets_the_running_mean_to_the_data_mean(gray_images):
    model = build_classifier("resnet50", 3, 64, weights=None, seed=0)
    model.get_layer("conv2_block1_1_bn").trainable = False
    frozen_before = model.get_layer("conv2_block1_1_bn").moving_mean.numpy().copy()
    momentum_before = model.get_layer("conv1_bn").momentum
    conv = keras.Model(model.input, model.get_layer("conv1_conv").output)
    expected = conv(np.repeat(gray_images[..., None], 3, -1).astype("float32")).numpy().mean(axis=(0, 1, 2))
    count = recalibrate_batchnorm(model, gray_images, batch_size=1)
    assert count == 52  # ResNet50 has 53 BatchNormalization layers; one is frozen
    np.testing.assert_allclose(model.get_layer("conv1_bn").moving_mean.numpy(), expected, rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(model.get_layer("conv2_block1_1_bn").moving_mean.numpy(), frozen_before)
    assert model.get_layer("conv1_bn").momentum == momentum_before and model.get_layer("augment").rotation == 10.0


def test_where_maps_point_counts_peaks_and_energy_in_a_box_and_on_lesions():
    maps = np.zeros((2, 10, 10))
    maps[0, 0, 0] = 1.0  # peak in the corner box
    maps[1, 6, 6] = 1.0  # peak on the lesion
    lesions = np.zeros((2, 10, 10), bool)
    lesions[:, 5:8, 5:8] = True
    result = where_maps_point(maps, lesions, (0, 0.2, 0, 0.2))
    assert result["peak in the box"] == 0.5 and result["peak on a lesion"] == 0.5
    assert result["energy in the box"] == pytest.approx(0.5) and result["energy on lesions"] == pytest.approx(0.5)
    assert result["box's share of the image"] == pytest.approx(0.04)
    assert result["lesions' share of the image"] == pytest.approx(0.09)
    assert box_mask((10, 20), (0, 0.5, 0.5, 1)).sum() == 50


def test_accuracy_by_test_set_with_a_hand_made_model():
    bright, dark = np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8)
    bright[:4, :4] = 255
    images = np.stack([bright, bright, dark])
    table = accuracy_by_test_set(quadrant_model, {"set": (images, ["A", "B", "B"])}, ["A", "B"])
    assert table.loc["set", "images"] == 3
    assert table.loc["set", "accuracy"] == pytest.approx(2 / 3)
    assert table.loc["set", "recall A"] == 1.0 and table.loc["set", "recall B"] == 0.5


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


def test_write_masked_dataset_masks_images_and_keeps_the_rest(tmp_path):
    from covid_tutorial.data import load_dataset, read_image
    from covid_tutorial.phantoms import generate_phantoms

    source = tmp_path / "source"
    generate_phantoms(source, patients=3, size=40, seed=0, marker_class="COVID-19", progress=False)
    out = write_masked_dataset(source, tmp_path / "masked", (0.25, 1.0, 0.0, 1.0))
    original, masked = load_dataset(source), load_dataset(out)
    assert len(masked) == len(original) and list(masked["label"]) == list(original["label"])
    image, copy = read_image(original["path"][0]), read_image(masked["path"][0])
    assert copy[:10].max() == 0 and np.array_equal(copy[10:], image[10:])
    assert sorted(p.name for p in (out / "masks").iterdir()) == sorted(p.name for p in (source / "masks").iterdir())
    with pytest.raises(CourseError, match="never writes"):
        write_masked_dataset(source, source / "inside", (0, 1, 0, 1))


def test_plot_map_grid_draws_rows_of_pictures_with_titles():
    wide, square = np.zeros((4, 8)), np.zeros((5, 5, 3), np.uint8)
    fig = plot_map_grid([[wide, None], [square, square]], ["a", "b"], ["left", "right"])
    axes = fig.get_axes()
    assert len(axes) == 4 and axes[0].get_title() == "left" and axes[0].get_ylabel() == "a"
    assert not axes[1].axison  # an empty cell is left blank
    assert axes[0].get_position().height < axes[2].get_position().height  # the wide row is shorter


def test_scorecam_map_of_an_image_does_not_depend_on_its_batch(model_and_image, gray_images):
    model, _ = model_and_image
    explainer = Explainer(model, "scorecam", "conv4_block6_out", max_maps=4)
    together = explainer(gray_images, [0, 2])
    alone = explainer(gray_images[1:], 2)
    np.testing.assert_array_equal(together[1], alone[0])
