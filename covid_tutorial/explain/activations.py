"""Intermediate activations: what the layers of a trained network compute (notebook 07).

:func:`activation_model` is one multi-output model over chosen layers,
:func:`extract_activations` runs it in small batches; :func:`depth_layers` picks one layer
per stage. :func:`activation_statistics` (sparsity, spatial entropy), :func:`input_resemblance`
and :func:`channel_lesion_energy` summarise the maps per layer and class, and their per-image
forms (:func:`image_statistics`, :func:`input_resemblance_per_image`,
:func:`channel_lesion_shares`) feed :func:`measure_with_intervals`, which gives any such
measure, or a difference between a trained network and its control, a bootstrap interval over
patients;
:func:`maximize_filter_activation` draws the input a filter responds to most, with or without
the regularisers (jitter, blur) that make such pictures readable; :func:`high_frequency_share`
measures how much of a picture is fine-grained texture.
"""

from __future__ import annotations

import warnings

import cv2
import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from ..data import to_model_input
from ..errors import CourseError
from ..metrics import patient_bootstrap
from .maps import depth_layers, quiet_keras, rank_correlation, upsample_maps
from .quality import energy_inside

__all__ = [
    "activation_model",
    "extract_activations",
    "spatial_entropy",
    "activation_statistics",
    "image_statistics",
    "input_resemblance",
    "input_resemblance_per_image",
    "channel_lesion_energy",
    "channel_lesion_shares",
    "measure_with_intervals",
    "maximize_filter_activation",
    "high_frequency_share",
]


def activation_model(model: keras.Model, layer_names) -> keras.Model:
    """One multi-output model from the input to each named layer (shared weights)."""
    outputs = [model.get_layer(name).output for name in layer_names]
    return keras.Model(model.input, outputs, name=f"{model.name}_activations")


def extract_activations(model: keras.Model, images, layer_names=None, batch_size: int = 8, dtype=np.float32) -> dict:
    """``{layer name: array (n, h, w, c)}`` for ``layer_names`` (default :func:`depth_layers`), one pass.

    ``dtype``: of the arrays kept (``np.float16`` halves their memory; enough for pictures
    and statistics). Each batch is converted as soon as it is computed.
    """
    layer_names = list(layer_names or depth_layers(model))
    probe = activation_model(model, layer_names)
    forward = tf.function(lambda x: probe(x, training=False), reduce_retracing=True)
    images = to_model_input(images)
    parts = {name: [] for name in layer_names}
    with quiet_keras():
        for s in range(0, len(images), batch_size):
            outputs = forward(tf.constant(images[s : s + batch_size]))
            for name, values in zip(layer_names, outputs):
                parts[name].append(np.asarray(values).astype(dtype, copy=False))
            del outputs
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def spatial_entropy(maps) -> np.ndarray:
    """Normalised entropy (0..1) of each positive map (…, h, w, c), one value per channel.

    The positive part of a channel is read as a distribution over its h*w positions: 1
    means spread evenly over the image, 0 means all on one position. NaN for a channel
    with no positive value, and for a 1x1 map.
    """
    maps = np.maximum(np.asarray(maps, dtype=np.float64), 0)
    positions = maps.shape[-3] * maps.shape[-2]
    flat = maps.reshape(*maps.shape[:-3], positions, maps.shape[-1])
    total = flat.sum(axis=-2, keepdims=True)
    p = np.divide(flat, total, out=np.zeros_like(flat), where=total > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-2)
    if positions < 2:
        return np.full(entropy.shape, np.nan)
    return np.where(total[..., 0, :] > 0, entropy / np.log(positions), np.nan)


def activation_statistics(activations: dict, image_labels=None) -> pd.DataFrame:
    """Per layer (and image label): size, sparsity, dead channels and spatial entropy.

    - ``sparsity``: share of activations that are <= 0 (exact zeros after a ReLU).
    - ``dead_channels``: share of channels with no positive value anywhere in the image.
    - ``spatial_entropy``: mean of :func:`spatial_entropy` over the live channels.
    Averages over the images (grouped by ``image_labels`` when given).
    """
    rows = []
    for depth, (name, values) in enumerate(activations.items()):
        values = np.asarray(values)
        groups = {"all": np.arange(len(values))}
        if image_labels is not None:
            labels = np.asarray(image_labels)
            groups = {label: np.flatnonzero(labels == label) for label in dict.fromkeys(labels)}
        for label, rows_of in groups.items():
            part = values[rows_of]
            alive = (part > 0).any(axis=(1, 2))
            entropy = np.stack([spatial_entropy(one) for one in part])  # one image at a time: small temporaries
            rows.append(
                {
                    "depth": depth,
                    "layer": name,
                    "label": label,
                    "height": part.shape[1],
                    "width": part.shape[2],
                    "channels": part.shape[3],
                    "sparsity": float((part <= 0).mean()),
                    "dead_channels": float(1 - alive.mean()),
                    "spatial_entropy": float(np.nanmean(entropy)) if np.isfinite(entropy).any() else np.nan,
                }
            )
    table = pd.DataFrame(rows)
    return table.drop(columns="label") if image_labels is None else table


def image_statistics(activations: dict) -> pd.DataFrame:
    """:func:`activation_statistics` image by image: one row per (layer, image).

    Columns ``image`` (the row of the images given), ``depth``, ``layer``, ``sparsity``,
    ``dead_channels`` and ``spatial_entropy`` (mean over the image's live channels, NaN if
    none is live). The per-image values are what a bootstrap over images or patients
    resamples (:func:`measure_with_intervals`).
    """
    parts = []
    for depth, (name, values) in enumerate(activations.items()):
        values = np.asarray(values)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an image without a live channel: NaN
            entropy = np.array([np.nanmean(spatial_entropy(one)) for one in values])
        parts.append(pd.DataFrame({
            "image": np.arange(len(values)),
            "depth": depth,
            "layer": name,
            "sparsity": (values <= 0).mean(axis=(1, 2, 3)),
            "dead_channels": 1 - (values > 0).any(axis=(1, 2)).mean(axis=1),
            "spatial_entropy": entropy,
        }))
    return pd.concat(parts, ignore_index=True)


def input_resemblance_per_image(activations: dict, images) -> pd.DataFrame:
    """Per image (rows) and layer (columns): the Spearman rank correlation between the layer's
    mean feature map and the image shrunk to the layer's size (``cv2.INTER_AREA``); NaN where
    either is flat. :func:`input_resemblance` averages it over the images."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 4:
        images = images.mean(axis=-1)
    columns = {}
    for name, values in activations.items():
        height, width = values.shape[1:3]
        small = [cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA) for image in images]
        columns[name] = [rank_correlation(v.mean(axis=-1), s) for v, s in zip(values, small)]
    return pd.DataFrame(columns)


def input_resemblance(activations: dict, images) -> pd.DataFrame:
    """Per layer: how much the mean feature map looks like the input image.

    For each image, the mean over channels of the layer's activation is compared with the
    image shrunk to the layer's size (``cv2.INTER_AREA``) by Spearman rank correlation;
    the table gives the mean and spread over images. High values mean the layer still
    carries the picture's layout and brightness, which convolutions and identity
    shortcuts do by construction, trained or not.
    """
    per_image = input_resemblance_per_image(activations, images)
    rows = []
    for depth, name in enumerate(activations):
        rhos = per_image[name].to_numpy(float)
        finite = rhos[np.isfinite(rhos)]
        rows.append(
            {
                "depth": depth,
                "layer": name,
                "resemblance": finite.mean() if finite.size else np.nan,
                "spread": finite.std() if finite.size else np.nan,
            }
        )
    return pd.DataFrame(rows)


def channel_lesion_shares(activation, masks) -> np.ndarray:
    """Per image with a lesion (rows, in order) and channel (columns): the share of the channel's
    positive activation that falls inside the image's lesion mask.

    ``activation`` (n, h, w, c) and ``masks`` (n, H, W); images without a lesion are left
    out, and each channel's map is resized to the mask size first. NaN where a channel has
    no positive value on an image. :func:`channel_lesion_energy` averages over the images.
    """
    activation, masks = np.maximum(np.asarray(activation, dtype=np.float32), 0), np.asarray(masks, dtype=bool)
    keep = masks.reshape(len(masks), -1).any(axis=1)
    if not keep.any():
        raise ValueError("no image has a lesion: channel_lesion_energy needs lesion masks")
    shares, chunk = [], 64  # channels at a time: a 512-channel layer upsampled at once takes hundreds of MB
    for values, mask in zip(activation[keep], masks[keep]):
        maps = np.moveaxis(values, -1, 0)  # (c, h, w)
        parts = []
        for s in range(0, len(maps), chunk):
            part = upsample_maps(maps[s : s + chunk], mask.shape)
            parts.append(energy_inside(part, np.repeat(mask[None], len(part), axis=0)))
        shares.append(np.concatenate(parts))
    return np.stack(shares)


def channel_lesion_energy(activation, masks) -> np.ndarray:
    """Per channel: the mean share of its positive activation that falls inside the lesion mask.

    ``activation`` (n, h, w, c) and ``masks`` (n, H, W); images without a lesion are left
    out, and each channel's map is resized to the mask size first. Compare with the
    lesions' share of the image (:func:`energy_inside` of a flat map): a channel far above
    it responds to lesions more than to the rest of the image.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a channel that is never positive: NaN
        return np.nanmean(channel_lesion_shares(activation, masks), axis=0)


def measure_with_intervals(measures: dict, n_images: int, patients=None, *, n_bootstrap: int = 1000,
                           confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Named measures of a set of images, each with a bootstrap interval over patients.

    ``measures`` maps a name to a function of image rows (an index array into the
    ``n_images`` images) that returns one number: a mean activation statistic, the lesion
    share of a network's best channel, or the difference between a trained network and its
    untrained control on the same rows. Each is computed on all images (``value``), then on
    ``n_bootstrap`` resamples of whole patients (``patients``: each image's patient id;
    default, each image its own) for a percentile interval (``ci_low``, ``ci_high``;
    :func:`covid_tutorial.metrics.patient_bootstrap`). ``table.attrs["n_patients"]`` says
    over how many patients.
    """
    names = list(measures)
    if not names:
        raise CourseError("measure_with_intervals needs at least one measure: a name and a function of image rows.")

    def evaluate(rows) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a resample without one class: NaN, skipped
            return np.array([measures[name](rows) for name in names], dtype=float)

    point = evaluate(np.arange(n_images))
    low, high, n_patients = patient_bootstrap(evaluate, n_images, patients, n_bootstrap=n_bootstrap,
                                              confidence=confidence, seed=seed, shape=point.shape)
    table = pd.DataFrame({"value": point, "ci_low": low, "ci_high": high}, index=pd.Index(names, name="measure"))
    table.attrs.update(n_patients=n_patients, n_bootstrap=n_bootstrap, confidence=confidence)
    return table


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-(x**2) / (2 * sigma**2))
    k = np.outer(k, k)
    return (k / k.sum()).astype(np.float32)[..., None, None]  # (kh, kw, 1, 1)


def maximize_filter_activation(
    model: keras.Model,
    layer_name: str,
    filters,
    *,
    steps: int = 40,
    step_size: float = 4.0,
    border: int = 1,
    seed: int = 0,
    jitter: int = 0,
    blur_sigma: float = 0.0,
    filters_per_batch: int | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Activation maximisation: the gray image that a filter responds to most (Erhan et al. 2009).

    Starts from mid-gray plus a little noise and climbs the mean activation of each filter
    (positions ``border`` px away from the map's edges), with the gradient scaled to unit
    standard deviation and ``step_size`` gray levels per step; one grayscale channel, copied
    to RGB, so the picture stays in the model's input domain. Returns the images (k, S, S)
    uint8 and a table of each filter's mean activation before and after (measured on the
    image as it is, without jitter).

    Without regularisation the ascent fills the image with high-frequency patterns. Two
    regularisers from the feature-visualisation literature (Olah et al. 2017, Distill,
    "Feature Visualization"; Yosinski et al. 2015) make the pictures readable:

    - ``jitter``: each step sees the image shifted by up to ``jitter`` px (a random
      circular roll), so a pattern must excite the filter wherever it lies, not only at one
      pixel phase (transformation robustness);
    - ``blur_sigma``: each step's gradient is blurred with a Gaussian of that sigma in px
      before it is added, so the ascent changes the image only at the scales a blob of that
      size holds and stops piling up pixel-level texture (a frequency penalty applied to the
      update; a blurred gradient still points uphill, since a Gaussian kernel is positive
      definite).

    ``filters_per_batch``: optimise that many filters at a time (default all at once);
    fewer keep the memory of the backward pass low.
    """
    filters = [int(f) for f in np.atleast_1d(filters)]
    feature_model = keras.Model(model.input, model.get_layer(layer_name).output)
    channels = feature_model.output.shape[-1]
    if max(filters) >= channels:
        raise CourseError(f"layer {layer_name!r} has {channels} filters; got filter {max(filters)}.")
    size = model.input.shape[1:3]
    kernel = tf.constant(_gaussian_kernel(blur_sigma)) if blur_sigma > 0 else None
    pad = (kernel.shape[0] // 2) if kernel is not None else 0

    def mean_activation(gray, picks):
        act = feature_model(tf.repeat(gray, 3, axis=-1), training=False)
        height, width = act.shape[1], act.shape[2]
        b = border if min(height, width) > 2 * border else 0
        act = act[:, b : height - b, b : width - b, :]
        chosen = tf.one_hot(picks, channels, dtype=act.dtype)[:, None, None, :]  # image i -> filter i
        return tf.reduce_sum(tf.reduce_mean(act * chosen, axis=(1, 2)), axis=-1)

    @tf.function(reduce_retracing=True)
    @tf.autograph.experimental.do_not_convert  # no tensor-dependent Python control flow to convert
    def ascend(gray, picks, step):
        shift = tf.random.stateless_uniform([2], seed=[seed, step], minval=-jitter, maxval=jitter + 1, dtype=tf.int32)
        with tf.GradientTape() as tape:
            tape.watch(gray)
            seen = tf.roll(gray, shift, axis=[1, 2]) if jitter else gray
            total = tf.reduce_sum(mean_activation(seen, picks))  # images are independent: one gradient each
        gradient = tape.gradient(total, gray)
        if kernel is not None:  # keep the low frequencies of the step, drop the fine ones
            padded = tf.pad(gradient, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
            gradient = tf.nn.conv2d(padded, kernel, strides=1, padding="VALID")
        scale = tf.math.reduce_std(gradient, axis=(1, 2, 3), keepdims=True) + 1e-8
        return tf.clip_by_value(gray + step_size * gradient / scale, 0.0, 255.0)

    rng = np.random.default_rng(seed)
    start = (128 + 8 * rng.standard_normal((len(filters), *size, 1))).astype(np.float32)
    chunk = filters_per_batch or len(filters)
    found, before, after = [], [], []
    for first in range(0, len(filters), chunk):
        picks = tf.constant(filters[first : first + chunk], dtype=tf.int32)
        gray = tf.constant(start[first : first + chunk])
        before.append(mean_activation(gray, picks).numpy())
        for step in range(steps):
            gray = ascend(gray, picks, tf.constant(step, tf.int32))
        after.append(mean_activation(gray, picks).numpy())
        found.append(gray.numpy()[..., 0])
    before, after, gray = np.concatenate(before), np.concatenate(after), np.concatenate(found)
    pictures = np.round(gray).astype(np.uint8)
    table = pd.DataFrame(
        {
            "layer": layer_name,
            "filter": filters,
            "activation_start": before.astype(np.float64),
            "activation_end": after.astype(np.float64),
            "high_frequency": high_frequency_share(pictures),
        }
    )
    return pictures, table


def high_frequency_share(images, cutoff: float = 0.25) -> np.ndarray:
    """Share (0..1) of each image's spectral energy above ``cutoff`` cycles per pixel.

    ``images`` (k, h, w) or (h, w); the mean is removed first, so a flat image has no energy
    (NaN). 0.25 cycles/px is half the highest frequency a pixel grid holds: detail finer
    than 4 px per period. White noise has about 80 % of its energy there; a smooth picture
    almost none.
    """
    images = np.asarray(images, dtype=np.float64)
    single = images.ndim == 2
    images = images[None] if single else images
    centred = images - images.mean(axis=(-2, -1), keepdims=True)
    power = np.abs(np.fft.fft2(centred)) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(images.shape[-2]), np.fft.fftfreq(images.shape[-1]), indexing="ij")
    high = np.hypot(fy, fx) > cutoff
    total = power.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, power[..., high].sum(axis=-1) / total, np.nan)
    return share[0] if single else share
