import json

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from covid_tutorial.explain.activations import (
    depth_layers,
    extract_activations,
)
from covid_tutorial.errors import CourseError
from covid_tutorial.explain import (
    EXPLANATION_METHODS,
    Explainer,
    GradCAM,
    backbone_stages,
    class_contrast,
    logits_model,
    randomization_test,
    randomize_top_layers,
    rank_correlation,
)
from covid_tutorial.models import build_classifier


def test_maps_for_two_classes_differ(model_and_image):
    model, image = model_and_image
    cam = GradCAM(model)
    first, second = cam(image, 0)[0], cam(image, 1)[0]
    assert first.shape == (2, 2) or first.ndim == 2
    assert first.max() <= 1 and first.min() >= 0
    assert not np.allclose(first, second)


def test_gradcam_in_batches_equals_one_batch(model_and_image, gray_images):
    model, _ = model_and_image
    cam = GradCAM(model, "conv4_block6_out")
    images = np.concatenate([gray_images, gray_images[::-1], gray_images])
    classes = np.array([0, 1, 2, 0, 1, 2])
    np.testing.assert_allclose(cam(images, classes, batch_size=4), cam(images, classes, batch_size=64), atol=1e-5)
    assert cam(images, classes).shape == (6, 4, 4)
    assert cam(images[:0], classes[:0]).shape == (0, 4, 4)  # no images (a run with no errors to explain)
    assert Explainer(model, "gradcam", "conv4_block6_out")(images[:0], 0).shape == (0, 64, 64)


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


@pytest.mark.parametrize("method", [m for m in EXPLANATION_METHODS if m != "gradcam"])
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


# ---------------------------------------------------------------- activations


# ---------------------------------------------------------------- shortcut helpers and speed


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


def test_scorecam_map_of_an_image_does_not_depend_on_its_batch(model_and_image, gray_images):
    model, _ = model_and_image
    explainer = Explainer(model, "scorecam", "conv4_block6_out", max_maps=4)
    together = explainer(gray_images, [0, 2])
    alone = explainer(gray_images[1:], 2)
    np.testing.assert_array_equal(together[1], alone[0])
