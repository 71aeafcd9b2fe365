import keras
import numpy as np
import pytest
import tensorflow as tf

from covid_tutorial.explain import GradCAM, overlay_heatmap
from covid_tutorial.models import build_classifier


@pytest.fixture(scope="module")
def model_and_image():
    keras.utils.set_random_seed(0)
    model = build_classifier("resnet50", 3, 64, weights=None, seed=0)
    image = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    return model, image


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
