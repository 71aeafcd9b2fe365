"""Explain: Grad-CAM heatmaps and overlays.

Grad-CAM (Selvaraju et al. 2017) weights each channel of a convolutional feature map
by the average gradient of one class *score* with respect to it, sums the weighted
channels, and keeps the positive part. We take the score before the softmax (the
``head_logits`` layer): the gradient of a sum of softmax outputs is zero, because
they always add up to one, which makes a map that is not about any class at all.
"""

from __future__ import annotations

import cv2
import keras
import numpy as np
import tensorflow as tf

from .models import last_feature_layer


class GradCAM:
    """Grad-CAM for one model and one layer; the gradient model is built once and compiled.

    >>> cam = GradCAM(model)                      # last 4-D layer, found automatically
    >>> heatmaps = cam(images, class_index=0)     # (n, h, w) in 0..1, at the layer's size
    """

    def __init__(self, model: keras.Model, layer_name: str | None = None, score_layer: str = "head_logits"):
        self.layer_name = layer_name or last_feature_layer(model)
        score = model.get_layer(score_layer).output if score_layer else model.output
        self.gradient_model = keras.Model(model.input, [model.get_layer(self.layer_name).output, score])
        self._compiled = tf.function(self._maps, reduce_retracing=True)

    def _maps(self, images, class_index):
        with tf.GradientTape() as tape:
            features, scores = self.gradient_model(images, training=False)
            class_score = tf.gather(scores, class_index, axis=1, batch_dims=1)
        gradients = tape.gradient(class_score, features)
        channel_weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(channel_weights * features, axis=-1))
        peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
        return tf.math.divide_no_nan(cam, peak)

    def __call__(self, images, class_index) -> np.ndarray:
        """Heatmaps for a batch of RGB images (0..255); ``class_index`` is an int or one per image."""
        images = tf.convert_to_tensor(np.asarray(images, dtype=np.float32))
        index = np.broadcast_to(np.asarray(class_index, dtype=np.int32), (images.shape[0],))
        return self._compiled(images, tf.constant(index)).numpy()


def gradcam(model: keras.Model, images, class_index, layer_name: str | None = None) -> np.ndarray:
    """One-off Grad-CAM (builds a :class:`GradCAM`); reuse the class for many calls."""
    return GradCAM(model, layer_name)(images, class_index)


def overlay_heatmap(
    image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4, colormap: int = cv2.COLORMAP_JET
) -> np.ndarray:
    """Blend a 0..1 heatmap (any size) over a grayscale or RGB uint8 image; returns RGB uint8."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = cv2.cvtColor(image.astype(np.uint8), cv2.COLOR_GRAY2RGB)
    image = image.astype(np.uint8)
    resized = cv2.resize(heatmap.astype(np.float32), (image.shape[1], image.shape[0]))
    colored = cv2.applyColorMap(np.uint8(255 * np.clip(resized, 0, 1)), colormap)
    colored = cv2.cvtColor(colored, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(colored, alpha, image, 1 - alpha, 0)
