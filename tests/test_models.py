import math

import keras
import numpy as np
import pandas as pd
import pytest

from covid_tutorial import models
from covid_tutorial.errors import CourseError
from covid_tutorial.models import (
    BACKBONES,
    BackbonePreprocessing,
    RandomAffine,
    backbone_layers,
    build_classifier,
    get_backbone,
    is_flat,
    last_feature_layer,
    set_trainable_stage,
)


@pytest.fixture(scope="module")
def resnet():
    return build_classifier("resnet50", 3, 64, weights=None, seed=0)


def test_classifier_is_one_flat_graph(resnet):
    assert is_flat(resnet)
    assert resnet.get_layer("conv1_conv") is not None
    assert last_feature_layer(resnet) == "conv5_block3_out"
    assert resnet.output.shape == (None, 3)


def test_trainable_counts_follow_the_stages(resnet):
    head = set_trainable_stage(resnet, "head")
    assert head == 2048 * 3 + 3, "only the new Dense head learns"
    fine = set_trainable_stage(resnet, "fine_tune")
    full = set_trainable_stage(resnet, "fine_tune", fine_tune_layers=10_000)
    everything = set_trainable_stage(resnet, "full")
    assert head < fine < full < everything
    set_trainable_stage(resnet, "fine_tune")
    trainable = [l for l in backbone_layers(resnet) if l.trainable]
    assert trainable and all(l.name.startswith("conv5_") for l in trainable), "only the last stage"
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in trainable), "BatchNorm frozen"
    set_trainable_stage(resnet, "full")
    moving_statistics = sum(np.prod(w.shape) for w in resnet.non_trainable_weights)
    assert everything == resnet.count_params() - moving_statistics


@pytest.mark.parametrize(
    "name, module",
    [("ResNet50", "resnet"), ("ResNet50V2", "resnet_v2"), ("DenseNet121", "densenet"), ("Xception", "xception")],
)
def test_preprocessing_layer_matches_keras_applications(name, module):
    images = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    expected = getattr(keras.applications, module).preprocess_input(images.copy())
    layer = BackbonePreprocessing(get_backbone(name).preprocessing)
    np.testing.assert_allclose(np.asarray(layer(images)), expected, rtol=1e-5, atol=1e-4)


def test_efficientnet_scales_inputs_itself():
    assert get_backbone("efficientnetb3").preprocessing == "none"
    assert get_backbone("EfficientNetB7").native_size == 600
    model = build_classifier("efficientnetb0", 2, 64, weights=None)
    assert is_flat(model) and last_feature_layer(model) == "top_activation"


def test_unknown_or_too_small_backbone_is_a_clear_error():
    with pytest.raises(CourseError, match="Choose one of"):
        get_backbone("resnet5")
    with pytest.raises(CourseError, match="at least 75 px"):
        build_classifier("inceptionv3", 3, 64, weights=None)


def test_random_affine_only_in_training():
    images = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    layer = RandomAffine(seed=0)
    np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)
    moved = np.asarray(layer(images, training=True))
    assert moved.shape == images.shape and not np.allclose(moved, images)


def test_random_affine_identity_when_ranges_are_zero():
    images = np.random.default_rng(2).uniform(0, 255, (2, 16, 16, 1)).astype("float32")
    layer = RandomAffine(rotation=0, shift=0, zoom=0, shear=0, seed=0)
    np.testing.assert_allclose(np.asarray(layer(images, training=True)), images, atol=1e-3)


def test_saved_model_loads_in_safe_mode_with_same_predictions(resnet, tmp_path):
    images = np.random.default_rng(3).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    resnet.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), resnet.predict(images, verbose=0), atol=1e-5)


def test_pretrained_weights_are_copied_by_layer_name(tmp_path):
    bare = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(64, 64, 3))
    bare.save_weights(tmp_path / "bare.weights.h5")
    model = build_classifier("resnet50", 3, 64, weights=str(tmp_path / "bare.weights.h5"))
    for name in ("conv1_conv", "conv5_block3_3_conv", "conv5_block3_3_bn"):
        for ours, theirs in zip(model.get_layer(name).get_weights(), bare.get_layer(name).get_weights()):
            np.testing.assert_array_equal(ours, theirs)


def test_missing_weights_say_what_to_do(tmp_path):
    with pytest.raises(CourseError, match="--profile ci"):
        build_classifier("resnet50", 3, 64, weights=str(tmp_path / "missing.weights.h5"))


# The slowest builds and steps of the zoo (about 10-25 s each on 2 busy CPU cores); they
# still run by default: `-m "not slow"` skips them.
SLOWEST = {"EfficientNetB7", "ResNet152V2", "InceptionResNetV2", "DenseNet201", "EfficientNetB6"}


def test_the_zoo_is_the_papers_twenty_plus_three_modern_references():
    assert len(models.PAPER_MODELS) == 20 and len(set(models.PAPER_MODELS)) == 20
    assert models.ZOO == models.PAPER_MODELS + ("EfficientNetV2B0", "EfficientNetV2S", "ConvNeXtTiny")
    assert all(name.lower() in BACKBONES for name in models.ZOO)
    assert models.resolve_models(["EFFICIENTNETB0", "resnet50", "efficientnetb0"]) == ["EfficientNetB0", "ResNet50"]
    assert models.resolve_models("efficientnets") == [f"EfficientNetB{i}" for i in range(8)]
    with pytest.raises(CourseError, match="Choose one of"):
        models.resolve_models(["resnet51"])


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOWEST else n for n in models.ZOO]
)
def test_every_zoo_model_builds_and_trains_one_step(name):
    """Build at the smallest size the model takes (75 px for the Inception family, else 32), predict,
    and take one optimizer step on two images: the graph is complete, differentiable and trainable."""
    size = 75 if get_backbone(name).min_size > 32 else 32
    keras.backend.clear_session()
    model = build_classifier(name, 3, size, weights=None, seed=0)
    images = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    probabilities = np.asarray(model(images, training=False))
    assert probabilities.shape == (2, 3) and np.allclose(probabilities.sum(1), 1, atol=1e-5)
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="categorical_crossentropy", run_eagerly=True)
    before = model.get_layer("head_logits").kernel.numpy().copy()
    loss = model.train_on_batch(images, np.eye(3, dtype="float32")[[0, 2]])
    assert np.isfinite(loss)
    assert not np.allclose(before, model.get_layer("head_logits").kernel.numpy()), "no step taken"
    assert all(np.isfinite(w.numpy()).all() for w in model.trainable_weights)


def test_efficientnet_b0_read_off_the_model():
    row = models.describe_backbone("EfficientNetB0")
    assert row["native_size"] == 224 and row["image_size"] == 224
    assert row["params"] == 4_049_571  # keras.applications, no top
    assert row["blocks"] == 16 and row["se_blocks"] == 16, "B0 has 16 MBConv blocks, each with squeeze-and-excitation"
    assert row["stem_width"] == 32 and row["head_width"] == 1280
    assert 0.38e9 < row["macs"] < 0.40e9, "Tan and Le (2019) give 0.39 B FLOPs (multiply-adds) for B0"


def test_efficientnet_scaling_ratios_and_phi_by_hand():
    zoo = pd.DataFrame(
        {
            "model": ["EfficientNetB0", "EfficientNetB3"],
            "native_size": [224, 300],
            "blocks": [16, 26],
            "head_width": [1280, 1536],
            "params_M": [4.0, 10.8],
            "GMACs": [0.4, 1.8],
            "macs": [0.4e9, 1.8e9],
        }
    )
    scaling = models.efficientnet_scaling(zoo).loc["EfficientNetB3"]
    assert scaling["depth_ratio"] == pytest.approx(26 / 16)
    assert scaling["width_ratio"] == pytest.approx(1536 / 1280)
    assert scaling["resolution_ratio"] == pytest.approx(300 / 224)
    assert scaling["phi_from_depth"] == pytest.approx(math.log(26 / 16) / math.log(1.2))
    assert scaling["phi_from_width"] == pytest.approx(math.log(1.2) / math.log(1.1))
    assert scaling["predicted_cost_ratio"] == pytest.approx(26 / 16 * 1.2**2 * (300 / 224) ** 2)
    assert scaling["measured_cost_ratio"] == pytest.approx(4.5)
