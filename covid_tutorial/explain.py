"""Explain: where a classifier looks, whether that picture can be trusted, and what its layers compute.

Grad-CAM (Selvaraju et al. 2017) weights each channel of a convolutional feature map
by the average gradient of one class *score* with respect to it, sums the weighted
channels, and keeps the positive part. We take the score before the softmax (the
``head_logits`` layer): the gradient of a sum of softmax outputs is zero, because
they always add up to one, which makes a map that is not about any class at all.

The module follows notebooks 06 to 08:

* **Maps** (notebook 06): our own :class:`GradCAM`, and Grad-CAM++, Score-CAM and
  SmoothGrad saliency through tf-keras-vis, all behind one :class:`Explainer`.
* **Sanity checks** (Adebayo et al. 2018): :func:`randomization_test` re-initialises
  the top layers and measures how much the map changes (Spearman rank correlation);
  :func:`class_contrast` compares the maps of two classes on the same image.
* **Measured quality** on phantoms, whose lesion masks are known:
  :func:`pointing_game`, :func:`energy_inside`, :func:`deletion_scores` (faithfulness),
  joined per method and class by :func:`explanation_quality` and :func:`summarize_quality`.
* **Intermediate activations** (notebook 07): :func:`depth_layers`,
  :func:`extract_activations`, :func:`activation_statistics`,
  :func:`maximize_filter_activation`.
* **Shortcut learning** (notebook 08): :func:`energy_in_box`, :func:`mask_outside_box`,
  :func:`write_masked_dataset`.
* **Speed**: :func:`benchmark_gradcam`; the command line runs it as
  ``covid-tutorial bench gradcam``.

Every map is a float array in 0..1 (divided by its own maximum); methods that work at a
layer's resolution are resized to the input size with :func:`upsample_maps` (bilinear).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import logging
import os
import warnings
from pathlib import Path

import cv2
import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from .errors import CourseError
from .models import HEAD_LAYERS, _stage_prefix, backbone_layers, last_feature_layer
from .train import release_memory

METHODS = ("gradcam", "gradcam++", "scorecam", "saliency")
METHOD_TITLES = {
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "scorecam": "Score-CAM",
    "saliency": "SmoothGrad",
}
SCORE_LAYER = "head_logits"


# ---------------------------------------------------------------- inputs and layers


def as_model_input(images) -> np.ndarray:
    """Float32 RGB batch in 0..255 from grayscale (n, h, w), (n, h, w, 1) or RGB (n, h, w, 3) images."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 2:  # one grayscale image
        images = images[None]
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"images must have shape (n, h, w), (n, h, w, 1) or (n, h, w, 3); got {images.shape}."
        )
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return images


def target_layer(model: keras.Model, layer_name: str | None = None) -> str:
    """The layer a class activation map is computed on: ``layer_name`` if given, else the last 4-D one.

    Raises :class:`CourseError` when the name is unknown or the layer has no spatial map.
    """
    if layer_name is None:
        return last_feature_layer(model)
    try:
        layer = model.get_layer(layer_name)
    except ValueError:
        raise CourseError(
            f"{model.name} has no layer {layer_name!r}. See depth_layers(model) for the last "
            "layer of each stage, or leave the layer out to use the last feature map."
        ) from None
    if len(layer.output.shape) != 4:
        raise CourseError(
            f"layer {layer_name!r} outputs {tuple(layer.output.shape)}, not a (batch, height, "
            "width, channels) feature map; choose a convolutional layer."
        )
    return layer_name


def logits_model(model: keras.Model, score_layer: str = SCORE_LAYER) -> keras.Model:
    """The same graph (shared weights) ending at the class scores before the softmax."""
    return keras.Model(model.input, model.get_layer(score_layer).output, name=f"{model.name}_logits")


def _class_indices(class_index, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(class_index, dtype=np.int32), (n,)).copy()


def normalize_maps(maps) -> np.ndarray:
    """Divide each map by its own maximum (an all-zero map stays zero)."""
    maps = np.asarray(maps, dtype=np.float32)
    peak = maps.reshape(len(maps), -1).max(axis=1).reshape((-1,) + (1,) * (maps.ndim - 1))
    return np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)


def upsample_maps(maps, size: int | tuple[int, int]) -> np.ndarray:
    """Resize (n, h, w) maps to ``size`` (px, or (height, width)) with bilinear interpolation."""
    height, width = (size, size) if np.isscalar(size) else size
    maps = np.asarray(maps, dtype=np.float32)
    if maps.shape[1:] == (height, width):
        return maps
    return np.stack([cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR) for m in maps])


@contextlib.contextmanager
def _quiet_keras():
    """No progress bars from model.predict, no input-structure warnings from tf-keras-vis, and
    no retracing notices (each new model traces its own compiled function once, by design)."""
    interactive = keras.config.is_interactive_logging_enabled()
    logger = tf.get_logger()
    level = logger.level
    keras.config.disable_interactive_logging()
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*structure of `inputs`.*")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)
        if interactive:
            keras.config.enable_interactive_logging()


@contextlib.contextmanager
def _numpy_seed(seed: int):
    """Seed NumPy's global generator for a block, then put its state back."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


# ---------------------------------------------------------------- Grad-CAM, ours


class GradCAM:
    """Grad-CAM for one model and one layer; the gradient model is built once and compiled.

    >>> cam = GradCAM(model)                      # last 4-D layer, found automatically
    >>> heatmaps = cam(images, class_index=0)     # (n, h, w) in 0..1, at the layer's size
    """

    def __init__(self, model: keras.Model, layer_name: str | None = None, score_layer: str = SCORE_LAYER):
        self.layer_name = target_layer(model, layer_name)
        score = model.get_layer(score_layer).output if score_layer else model.output
        self.gradient_model = keras.Model(model.input, [model.get_layer(self.layer_name).output, score])
        self._compiled = tf.function(self._maps, reduce_retracing=True)

    def _maps(self, images, class_index):
        with tf.GradientTape() as tape:
            features, scores = self.gradient_model(images, training=False)
            class_score = tf.gather(scores, class_index, axis=1, batch_dims=1)
        gradients = tape.gradient(class_score, features)
        channel_weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        return tf.nn.relu(tf.reduce_sum(channel_weights * features, axis=-1))

    def __call__(self, images, class_index, normalize: bool = True) -> np.ndarray:
        """Heatmaps for a batch of images (0..255, gray or RGB); ``class_index`` is an int or one per image.

        ``normalize=False`` returns the raw ReLU(sum of weighted channels), in score units.
        """
        images = tf.convert_to_tensor(as_model_input(images))
        index = _class_indices(class_index, images.shape[0])
        with _quiet_keras():
            maps = self._compiled(images, tf.constant(index)).numpy()
        return normalize_maps(maps) if normalize else maps


# ---------------------------------------------------------------- every method behind one door


class Explainer:
    """One explanation method for one model, built once: ``Explainer(model, "scorecam")(images, 0)``.

    - ``gradcam``: our :class:`GradCAM` (compiled).
    - ``gradcam++``: tf-keras-vis ``GradcamPlusPlus`` on the logits (Chattopadhay et al. 2018).
    - ``scorecam``: tf-keras-vis ``Scorecam`` (Wang et al. 2020): each of the ``max_maps``
      feature maps with the largest spatial spread masks the input, and the softmax score
      of the masked image is that map's weight. Costs about ``max_maps`` forward passes.
    - ``saliency``: tf-keras-vis ``Saliency`` with SmoothGrad (Smilkov et al. 2017): the
      absolute input gradient, averaged over ``smooth_samples`` noisy copies.

    The three library methods take one image per call. tf-keras-vis records a whole
    forward pass on a gradient tape, so a batch costs memory in proportion (a 2 GB Binder
    session holds only a few images of ResNet50 at 160 px), and given a batch Score-CAM
    would use the union of every image's top maps for all of them, so that a map would
    depend on its neighbours.

    The CAM methods use ``layer_name`` (default: the last 4-D layer); saliency works on
    the input pixels. Maps come back at the input size, each scaled to 0..1.
    """

    def __init__(
        self,
        model: keras.Model,
        method: str = "gradcam",
        layer_name: str | None = None,
        *,
        score_layer: str = SCORE_LAYER,
        max_maps: int = 32,
        smooth_samples: int = 20,
        smooth_noise: float = 0.2,
        batch_size: int = 8,
        seed: int = 0,
    ):
        if method not in METHODS:
            raise CourseError(f"Unknown method {method!r}. Choose one of: {', '.join(METHODS)}.")
        self.method, self.model = method, model
        self.layer_name = None if method == "saliency" else target_layer(model, layer_name)
        self.max_maps, self.batch_size, self.seed = int(max_maps), int(batch_size), seed
        self.smooth_samples, self.smooth_noise = int(smooth_samples), float(smooth_noise)
        self.input_size = tuple(model.input.shape[1:3])
        if self.layer_name is not None:
            self._layer_size = tuple(model.get_layer(self.layer_name).output.shape[1:3])
        if method == "gradcam":
            self._tool = GradCAM(model, self.layer_name, score_layer)
            return
        from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
        from tf_keras_vis.saliency import Saliency
        from tf_keras_vis.scorecam import Scorecam

        tool = {"gradcam++": GradcamPlusPlus, "scorecam": Scorecam, "saliency": Saliency}[method]
        # The logits model shares the trained weights; Score-CAM applies the softmax itself.
        self._tool = tool(logits_model(model, score_layer), clone=False)

    @property
    def title(self) -> str:
        return METHOD_TITLES[self.method]

    def _library_map(self, image, class_index: int) -> np.ndarray:
        """One tf-keras-vis map (1, h, w) of one image: see the class docstring for why one."""
        from tf_keras_vis.utils.scores import CategoricalScore

        score, one = CategoricalScore([class_index]), image[None]
        layer = dict(penultimate_layer=self.layer_name, seek_penultimate_conv_layer=False)
        if self.method == "gradcam++":
            maps = self._tool(score, one, **layer, expand_cam=False, normalize_cam=False)
        elif self.method == "scorecam":
            maps = self._tool(
                score, one, **layer, max_N=self.max_maps, batch_size=self.batch_size, expand_cam=False,
                normalize_cam=False,
            )  # fmt: skip
        else:
            with _numpy_seed(self.seed):  # tf-keras-vis draws SmoothGrad's noise with np.random
                maps = self._tool(
                    score, tf.constant(one), smooth_samples=self.smooth_samples, smooth_noise=self.smooth_noise,
                    normalize_map=False,
                )  # fmt: skip
        return np.asarray(maps, dtype=np.float32).reshape(1, *np.shape(maps)[-2:])

    def __call__(self, images, class_index, upsample: bool = True) -> np.ndarray:
        """Maps (n, H, W) in 0..1; at the input size unless ``upsample=False`` (CAM methods only)."""
        batch = as_model_input(images)
        index = _class_indices(class_index, len(batch))
        if self.method == "gradcam":
            maps = self._tool(batch, index, normalize=False)
        else:
            with _quiet_keras():
                maps = np.concatenate([self._library_map(image, int(i)) for image, i in zip(batch, index)])
        if upsample:
            maps = upsample_maps(maps, self.input_size)
        return normalize_maps(maps)


def compute_heatmaps(model, images, class_index, methods=("gradcam",), layer_name=None, batch_size=4, **options):
    """``{method: maps (n, H, W)}`` for several methods, computed in batches."""
    images = as_model_input(images)
    index = _class_indices(class_index, len(images))
    result = {}
    for method in methods:
        explainer = Explainer(model, method, layer_name, **options)
        parts = [
            explainer(images[start : start + batch_size], index[start : start + batch_size])
            for start in range(0, len(images), batch_size)
        ]
        result[method] = np.concatenate(parts)
    return result


# ---------------------------------------------------------------- sanity checks


def rank_correlation(first, second) -> float:
    """Spearman rank correlation of two maps of the same shape (NaN when one is flat)."""
    from scipy.stats import spearmanr

    first, second = np.ravel(first), np.ravel(second)
    if first.shape != second.shape:
        raise ValueError(f"maps differ in size: {np.shape(first)} and {np.shape(second)}")
    if np.ptp(first) == 0 or np.ptp(second) == 0:
        return float("nan")
    return float(spearmanr(first, second).statistic)


def backbone_stages(model: keras.Model) -> list[tuple[str, list[str]]]:
    """Backbone layers grouped by stage, input to output: ``[("conv1", [...]), ("conv2", [...]), ...]``.

    A stage is a run of layers sharing a name prefix (ResNet ``conv2``..``conv5``, EfficientNet
    ``stem``, ``block1``..``block7``, ``top``); padding, pooling and input scaling are left out.
    """
    groups: list[tuple[str, list[str]]] = []
    for layer in backbone_layers(model):
        prefix = _stage_prefix(layer.name)
        if groups and groups[-1][0] == prefix:
            groups[-1][1].append(layer.name)
        else:
            groups.append((prefix, [layer.name]))
    keep = [g for g in groups if g[0].startswith(("conv", "block", "stem")) or g[0] == "top"]
    return keep if len(keep) >= 2 else groups


def depth_layers(model: keras.Model) -> list[str]:
    """The last layer with a 4-D output of each stage: the stem, each ResNet stage or EfficientNet block."""
    names = []
    for _, layers in backbone_stages(model):
        spatial = [n for n in layers if len(model.get_layer(n).output.shape) == 4]
        if spatial:
            names.append(spatial[-1])
    return names


def randomize_top_layers(model: keras.Model, stages: int = 1, seed: int = 0) -> tuple[keras.Model, list[str]]:
    """A copy of ``model`` whose head and top ``stages`` backbone stages are re-initialised.

    The copy is made with ``keras.models.clone_model`` (fresh weights from each layer's own
    initialiser, seeded with ``seed``); every other layer gets the trained weights back.
    ``stages=0`` re-initialises the head only. Returns the copy and the re-initialised names.
    This is the cascading model-parameter randomisation of Adebayo et al. (2018).
    """
    stage_list = backbone_stages(model)
    if not 0 <= stages <= len(stage_list):
        raise ValueError(f"stages must lie between 0 and {len(stage_list)}, got {stages}.")
    randomized = set(HEAD_LAYERS)
    for _, layers in stage_list[len(stage_list) - stages :]:
        randomized.update(layers)
    keras.utils.set_random_seed(seed)
    copy = keras.models.clone_model(model)
    for layer in model.layers:
        if layer.weights and layer.name not in randomized:
            copy.get_layer(layer.name).set_weights(layer.get_weights())
    names = [layer.name for layer in model.layers if layer.name in randomized and layer.weights]
    return copy, names


def _maps_of_randomized_copy(model, stages, methods, layer_name, images, index, seed, options) -> dict:
    """Maps of a copy with the top ``stages`` re-initialised; the copy is freed before returning."""
    copy, _ = randomize_top_layers(model, stages=stages, seed=seed + 1)
    maps = {m: Explainer(copy, m, layer_name, seed=seed, **options)(images, index) for m in methods}
    del copy
    gc.collect()
    return maps


def randomization_test(
    model: keras.Model,
    images,
    class_index,
    methods="gradcam",
    layer_name: str | None = None,
    *,
    max_stages: int = 2,
    seed: int = 0,
    return_maps: bool = False,
    **options,
):
    """Adebayo et al.'s model-parameter randomisation test, cascading from the top.

    Step 0 explains the trained model again (the map must come back unchanged, rho = 1);
    then the head is re-initialised, then the head and the top stage, and so on up to
    ``max_stages`` stages. One row per method, step and image, with the Spearman rank
    correlation between the trained model's map and the copy's, both at the input size
    (NaN when the copy's map is flat, ``flat_map``). A method passes when the correlation
    drops as soon as weights it depends on are random: a map that survives randomisation
    shows the image, not what the model learned. ``return_maps=True`` also returns the
    maps, ``{(method, step): (n, H, W)}``, for figures.
    """
    methods = [methods] if isinstance(methods, str) else list(methods)
    images = as_model_input(images)
    index = _class_indices(class_index, len(images))
    explainers = {m: Explainer(model, m, layer_name, seed=seed, **options) for m in methods}
    reference = {m: explainer(images, index) for m, explainer in explainers.items()}
    stage_names = [name for name, _ in backbone_stages(model)]
    rows, all_maps = [], {}
    for step in range(-1, max_stages + 1):
        if step < 0:
            label = "none (the trained model again)"
            step_maps = {m: explainer(images, index) for m, explainer in explainers.items()}
        else:
            label = " + ".join(["head", *stage_names[len(stage_names) - step :][::-1]])
            step_maps = _maps_of_randomized_copy(model, step, methods, layer_name, images, index, seed, options)
        for method in methods:
            maps = all_maps[(method, step + 1)] = step_maps[method]
            for i in range(len(images)):
                rows.append(
                    {
                        "method": method,
                        "image": i,
                        "step": step + 1,
                        "randomized": label,
                        "spearman": rank_correlation(reference[method][i], maps[i]),
                        "flat_map": bool(np.ptp(maps[i]) == 0),
                    }
                )
    table = pd.DataFrame(rows)
    return (table, all_maps) if return_maps else table


def class_contrast(explainer: Explainer, images, first_class: int, second_class: int) -> pd.DataFrame:
    """Per image: the Spearman rank correlation between the maps for two classes.

    A class-discriminative method gives clearly different maps (correlation well below 1);
    a map that is the same whatever class you ask about only shows where the image has edges.
    """
    first = explainer(images, first_class)
    second = explainer(images, second_class)
    return pd.DataFrame(
        {
            "image": np.arange(len(first)),
            "spearman": [rank_correlation(a, b) for a, b in zip(first, second)],
            "mean_abs_difference": np.abs(first - second).mean(axis=(1, 2)),
        }
    )


# ---------------------------------------------------------------- measured quality


def resolve_mask_path(path) -> Path | None:
    """The lesion mask file for a ``mask_path`` entry, or None when there is none."""
    if path is None or (isinstance(path, float) and np.isnan(path)) or str(path) == "":
        return None
    path = Path(str(path))
    if path.is_file():
        return path
    raise CourseError(f"{path}: lesion mask not found. Regenerate the phantoms or fix mask_path.")


def load_masks(table: pd.DataFrame, size: int) -> np.ndarray:
    """Lesion masks (n, size, size) bool for the rows of ``table`` (column ``mask_path``).

    Masks get the same pad-and-resize as the images, so they line up pixel for pixel;
    rows with no mask (Normal, or data without masks) are all False.
    """
    from .data import pad_and_resize, read_image

    if "mask_path" not in table.columns:
        raise CourseError(
            "the table has no mask_path column: lesion masks are known only for the phantoms "
            "(covid-tutorial phantoms) or data that ship masks."
        )
    masks = np.zeros((len(table), size, size), dtype=bool)
    for i, entry in enumerate(table["mask_path"]):
        path = resolve_mask_path(entry)
        if path is not None:
            masks[i] = pad_and_resize(read_image(path), size) > 127
    return masks


def pointing_game(heatmaps, masks, tolerance: int = 0) -> np.ndarray:
    """1.0 where the map's maximum falls inside the mask (grown by ``tolerance`` px), else 0.0.

    Zhang et al. (2018). NaN for an empty mask (nothing to point at) or a flat map (no
    maximum). The maximum is the first in row-major order when several pixels tie.
    """
    heatmaps, masks = np.asarray(heatmaps, dtype=np.float32), np.asarray(masks, dtype=bool)
    if heatmaps.shape != masks.shape:
        raise ValueError(f"heatmaps {heatmaps.shape} and masks {masks.shape} must have the same shape")
    hits = np.full(len(heatmaps), np.nan)
    kernel = np.ones((2 * tolerance + 1, 2 * tolerance + 1), np.uint8)
    for i, (heatmap, mask) in enumerate(zip(heatmaps, masks)):
        if not mask.any() or np.ptp(heatmap) == 0:
            continue
        if tolerance > 0:
            mask = cv2.dilate(mask.astype(np.uint8), kernel) > 0
        row, col = np.unravel_index(np.argmax(heatmap), heatmap.shape)
        hits[i] = float(mask[row, col])
    return hits


def energy_inside(heatmaps, masks) -> np.ndarray:
    """Share of each map's total (its 'energy') that lies inside the mask, 0..1.

    The energy-based pointing game of Wang et al. (2020). A map spread evenly over the
    image scores the mask's share of the image area, the chance level to compare with.
    NaN for an empty mask or an all-zero map.
    """
    heatmaps, masks = np.asarray(heatmaps, dtype=np.float64), np.asarray(masks, dtype=bool)
    if heatmaps.shape != masks.shape:
        raise ValueError(f"heatmaps {heatmaps.shape} and masks {masks.shape} must have the same shape")
    total = heatmaps.reshape(len(heatmaps), -1).sum(axis=1)
    inside = (heatmaps * masks).reshape(len(heatmaps), -1).sum(axis=1)
    empty = ~masks.reshape(len(masks), -1).any(axis=1) | (total <= 0)
    return np.where(empty, np.nan, inside / np.where(total > 0, total, 1.0))


def _probability_function(model_or_function, batch_size: int = 8):
    """A function images (n, h, w, 3) float -> class probabilities (n, k), batched."""
    if not isinstance(model_or_function, keras.Model):
        return lambda images: np.asarray(model_or_function(images), dtype=np.float64)
    forward = tf.function(lambda x: model_or_function(x, training=False), reduce_retracing=True)

    def predict(images):
        with _quiet_keras():
            parts = [
                forward(tf.constant(images[start : start + batch_size])).numpy()
                for start in range(0, len(images), batch_size)
            ]
        return np.concatenate(parts).astype(np.float64)

    return predict


def remove_pixels(images, keep_out, fill="mean") -> np.ndarray:
    """Images (n, h, w, 3) with the pixels where ``keep_out`` (n, h, w) is True replaced by ``fill``.

    ``fill="mean"`` uses each image's own mean gray value, so removal adds no new edge
    brightness of its own; a number fills with that value.
    """
    images = as_model_input(images).copy()
    keep_out = np.asarray(keep_out, dtype=bool)
    for image, out in zip(images, keep_out):
        value = image.mean(axis=(0, 1)) if fill == "mean" else float(fill)
        image[out] = value
    return images


def deletion_scores(
    model,
    images,
    heatmaps,
    class_index,
    *,
    fraction: float = 0.1,
    fill="mean",
    random_repeats: int = 3,
    seed: int = 0,
    batch_size: int = 8,
) -> pd.DataFrame:
    """Faithfulness: how much the class probability drops when the map's top pixels go.

    For each image the ``fraction`` of pixels with the highest map values is removed
    (:func:`remove_pixels`), and separately the same number of pixels drawn at random
    (averaged over ``random_repeats`` draws). A faithful map points at pixels the model
    needs, so ``drop_top`` clearly exceeds ``drop_random``. ``model`` is a Keras model
    (its softmax output is used) or any function images -> probabilities.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie strictly between 0 and 1, got {fraction!r}.")
    images = as_model_input(images)
    heatmaps = upsample_maps(heatmaps, images.shape[1:3])
    index = _class_indices(class_index, len(images))
    predict = _probability_function(model, batch_size)
    rows = np.arange(len(images))
    pixels = images.shape[1] * images.shape[2]
    count = max(1, int(round(fraction * pixels)))
    base = predict(images)[rows, index]
    order = np.argsort(-heatmaps.reshape(len(images), -1), axis=1, kind="stable")[:, :count]
    top = np.zeros((len(images), pixels), dtype=bool)
    np.put_along_axis(top, order, True, axis=1)
    after_top = predict(remove_pixels(images, top.reshape(heatmaps.shape), fill))[rows, index]
    rng = np.random.default_rng(seed)
    after_random = np.zeros(len(images))
    for _ in range(random_repeats):
        chosen = np.zeros((len(images), pixels), dtype=bool)
        for i in rows:
            chosen[i, rng.choice(pixels, count, replace=False)] = True
        after_random += predict(remove_pixels(images, chosen.reshape(heatmaps.shape), fill))[rows, index]
    after_random /= random_repeats
    return pd.DataFrame(
        {
            "confidence": base,
            "confidence_top_removed": after_top,
            "confidence_random_removed": after_random,
            "drop_top": base - after_top,
            "drop_random": base - after_random,
        }
    )


def explanation_quality(
    model,
    images,
    labels,
    masks,
    class_names,
    heatmaps: dict,
    class_index=None,
    *,
    fraction: float = 0.1,
    random_repeats: int = 3,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per image and method: pointing game, energy inside the lesion, faithfulness.

    ``heatmaps`` is ``{method: (n, H, W)}`` as :func:`compute_heatmaps` gives; ``labels``
    are class names; ``class_index`` is the class each map explains (default: the true
    class). ``mask_share`` is the lesion's share of the image: the chance level of both
    the pointing game (a random point) and the energy share (a flat map).
    """
    images = as_model_input(images)
    labels = np.asarray(labels)
    true_index = np.array([list(class_names).index(label) for label in labels])
    index = true_index if class_index is None else _class_indices(class_index, len(images))
    masks = np.asarray(masks, dtype=bool)
    predict = _probability_function(model)
    probabilities = predict(images)
    frames = []
    for method, maps in heatmaps.items():
        maps = upsample_maps(maps, images.shape[1:3])
        deletion = deletion_scores(
            predict, images, maps, index, fraction=fraction, random_repeats=random_repeats, seed=seed
        )
        frame = pd.DataFrame(
            {
                "image": np.arange(len(images)),
                "method": method,
                "label": labels,
                "explained_class": [class_names[i] for i in index],
                "predicted": [class_names[i] for i in probabilities.argmax(1)],
                "flat_map": np.ptp(maps.reshape(len(maps), -1), axis=1) == 0,
                "pointing_hit": pointing_game(maps, masks),
                "energy_inside": energy_inside(maps, masks),
                "mask_share": np.where(masks.any(axis=(1, 2)), masks.mean(axis=(1, 2)), np.nan),
            }
        )
        frames.append(pd.concat([frame, deletion.drop(columns="confidence_random_removed")], axis=1))
    return pd.concat(frames, ignore_index=True)


def summarize_quality(per_image: pd.DataFrame) -> pd.DataFrame:
    """Means per method and true class; ``faithfulness`` = drop_top - drop_random.

    Localisation columns are over images with a lesion only (NaN for Normal), and leave
    out flat maps (all zero: nothing to point with), which ``flat_maps`` counts.
    """
    grouped = per_image.groupby(["method", "label"], sort=False)
    table = grouped.agg(
        images=("image", "size"),
        with_lesion=("mask_share", "count"),
        flat_maps=("flat_map", "sum"),
        pointing_hit_rate=("pointing_hit", "mean"),
        energy_inside=("energy_inside", "mean"),
        chance_level=("mask_share", "mean"),
        confidence=("confidence", "mean"),
        drop_top=("drop_top", "mean"),
        drop_random=("drop_random", "mean"),
    )
    table["faithfulness"] = table["drop_top"] - table["drop_random"]
    return table.reset_index()


# ---------------------------------------------------------------- intermediate activations


def activation_model(model: keras.Model, layer_names) -> keras.Model:
    """One multi-output model from the input to each named layer (shared weights)."""
    outputs = [model.get_layer(name).output for name in layer_names]
    return keras.Model(model.input, outputs, name=f"{model.name}_activations")


def extract_activations(model: keras.Model, images, layer_names=None, batch_size: int = 8) -> dict:
    """``{layer name: array (n, h, w, c)}`` for ``layer_names`` (default :func:`depth_layers`), one pass."""
    layer_names = list(layer_names or depth_layers(model))
    probe = activation_model(model, layer_names)
    forward = tf.function(lambda x: probe(x, training=False), reduce_retracing=True)
    images = as_model_input(images)
    with _quiet_keras():
        parts = [forward(tf.constant(images[s : s + batch_size])) for s in range(0, len(images), batch_size)]
        return {name: np.concatenate([np.asarray(p[k]) for p in parts]) for k, name in enumerate(layer_names)}


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
            entropy = spatial_entropy(part)
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


def input_resemblance(activations: dict, images) -> pd.DataFrame:
    """Per layer: how much the mean feature map looks like the input image.

    For each image, the mean over channels of the layer's activation is compared with the
    image shrunk to the layer's size (``cv2.INTER_AREA``) by Spearman rank correlation;
    the table gives the mean and spread over images. High values mean the layer still
    carries the picture's layout and brightness, which convolutions and identity
    shortcuts do by construction, trained or not.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 4:
        images = images.mean(axis=-1)
    rows = []
    for depth, (name, values) in enumerate(activations.items()):
        height, width = values.shape[1:3]
        small = [cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA) for image in images]
        rhos = np.array([rank_correlation(v.mean(axis=-1), s) for v, s in zip(values, small)])
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


def channel_lesion_energy(activation, masks) -> np.ndarray:
    """Per channel: the mean share of its positive activation that falls inside the lesion mask.

    ``activation`` (n, h, w, c) and ``masks`` (n, H, W); images without a lesion are left
    out, and each channel's map is resized to the mask size first. Compare with the
    lesions' share of the image (:func:`energy_inside` of a flat map): a channel far above
    it responds to lesions more than to the rest of the image.
    """
    activation, masks = np.maximum(np.asarray(activation, dtype=np.float32), 0), np.asarray(masks, dtype=bool)
    keep = masks.reshape(len(masks), -1).any(axis=1)
    if not keep.any():
        raise ValueError("no image has a lesion: channel_lesion_energy needs lesion masks")
    shares = []
    for values, mask in zip(activation[keep], masks[keep]):
        maps = np.moveaxis(values, -1, 0)  # (c, h, w)
        shares.append(energy_inside(upsample_maps(maps, mask.shape), np.repeat(mask[None], len(maps), axis=0)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a channel that is never positive: NaN
        return np.nanmean(np.stack(shares), axis=0)


def feature_map_grid(activation, channels=None, columns: int = 8) -> np.ndarray:
    """Tile channels of one activation (h, w, c) into a 2-D image, each channel scaled to 0..1.

    ``channels``: which ones (default: the first ``columns * 2``). Gaps of 1 px (NaN) separate tiles.
    """
    activation = np.asarray(activation, dtype=np.float32)
    channels = list(range(min(activation.shape[-1], columns * 2))) if channels is None else list(channels)
    height, width = activation.shape[:2]
    rows = -(-len(channels) // columns)
    grid = np.full((rows * (height + 1) - 1, columns * (width + 1) - 1), np.nan, np.float32)
    for k, channel in enumerate(channels):
        tile = activation[..., channel]
        low, high = tile.min(), tile.max()
        tile = (tile - low) / (high - low) if high > low else np.zeros_like(tile)
        r, c = divmod(k, columns)
        grid[r * (height + 1) : r * (height + 1) + height, c * (width + 1) : c * (width + 1) + width] = tile
    return grid


def maximize_filter_activation(
    model: keras.Model,
    layer_name: str,
    filters,
    *,
    steps: int = 40,
    step_size: float = 4.0,
    border: int = 1,
    seed: int = 0,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Activation maximisation: the gray image that a filter responds to most (Erhan et al. 2009).

    Starts from mid-gray plus a little noise and climbs the mean activation of each filter
    (positions ``border`` px away from the map's edges), with the gradient scaled to unit
    standard deviation and ``step_size`` gray levels per step; one grayscale channel, copied
    to RGB, so the picture stays in the model's input domain. Returns the images (k, S, S)
    uint8 and a table of each filter's mean activation before and after.
    """
    filters = [int(f) for f in np.atleast_1d(filters)]
    feature_model = keras.Model(model.input, model.get_layer(layer_name).output)
    channels = feature_model.output.shape[-1]
    if max(filters) >= channels:
        raise CourseError(f"layer {layer_name!r} has {channels} filters; got filter {max(filters)}.")
    size = model.input.shape[1:3]
    picks = tf.constant(filters, dtype=tf.int32)

    def mean_activation(gray):
        act = feature_model(tf.repeat(gray, 3, axis=-1), training=False)
        height, width = act.shape[1], act.shape[2]
        b = border if min(height, width) > 2 * border else 0
        act = act[:, b : height - b, b : width - b, :]
        chosen = tf.one_hot(picks, channels, dtype=act.dtype)[:, None, None, :]  # image i -> filter i
        return tf.reduce_sum(tf.reduce_mean(act * chosen, axis=(1, 2)), axis=-1)

    @tf.function
    def ascend(gray):
        with tf.GradientTape() as tape:
            tape.watch(gray)
            total = tf.reduce_sum(mean_activation(gray))  # images are independent: one gradient each
        gradient = tape.gradient(total, gray)
        scale = tf.math.reduce_std(gradient, axis=(1, 2, 3), keepdims=True) + 1e-8
        return tf.clip_by_value(gray + step_size * gradient / scale, 0.0, 255.0)

    rng = np.random.default_rng(seed)
    start = (128 + 8 * rng.standard_normal((len(filters), *size, 1))).astype(np.float32)
    gray = tf.constant(start)
    before = mean_activation(gray).numpy()
    for _ in range(steps):
        gray = ascend(gray)
    after = mean_activation(gray).numpy()
    table = pd.DataFrame(
        {
            "layer": layer_name,
            "filter": filters,
            "activation_start": before.astype(np.float64),
            "activation_end": after.astype(np.float64),
        }
    )
    return np.round(gray.numpy()[..., 0]).astype(np.uint8), table


# ---------------------------------------------------------------- shortcut learning


def box_mask(size, box) -> np.ndarray:
    """Boolean (height, width) mask of a box given as fractions (top, bottom, left, right)."""
    height, width = (size, size) if np.isscalar(size) else size
    top, bottom, left, right = box
    mask = np.zeros((height, width), dtype=bool)
    mask[round(top * height) : round(bottom * height), round(left * width) : round(right * width)] = True
    return mask


def energy_in_box(heatmaps, box) -> np.ndarray:
    """Share of each map's energy inside a box given as fractions (top, bottom, left, right)."""
    heatmaps = np.asarray(heatmaps, dtype=np.float64)
    masks = np.repeat(box_mask(heatmaps.shape[1:3], box)[None], len(heatmaps), axis=0)
    return energy_inside(heatmaps, masks)


def mask_outside_box(images, box, fill: int = 0) -> np.ndarray:
    """Images with everything outside a box (fractions top, bottom, left, right) set to ``fill``."""
    images = np.array(images, copy=True)
    images[:, ~box_mask(images.shape[1:3], box)] = fill
    return images


def where_maps_point(maps, lesion_masks, box) -> pd.Series:
    """Does a set of maps point at a box (an artefact's corner, say) or at the lesions?

    Pointing-game hit rate and mean energy share for the box and for the lesion masks,
    next to their chance levels (the box's and the lesions' share of the image). Images
    without a lesion and flat maps are left out of the lesion figures.
    """
    maps, lesion_masks = np.asarray(maps, dtype=np.float32), np.asarray(lesion_masks, dtype=bool)
    region = np.repeat(box_mask(maps.shape[1:3], box)[None], len(maps), axis=0)
    with_lesion = lesion_masks.reshape(len(lesion_masks), -1).any(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no lesion at all: NaN
        return pd.Series(
            {
                "peak in the box": np.nanmean(pointing_game(maps, region)),
                "peak on a lesion": np.nanmean(pointing_game(maps, lesion_masks)),
                "energy in the box": np.nanmean(energy_inside(maps, region)),
                "energy on lesions": np.nanmean(energy_inside(maps, lesion_masks)),
                "box's share of the image": float(region[0].mean()),
                "lesions' share of the image": float(lesion_masks[with_lesion].mean()) if with_lesion.any() else np.nan,
            }
        )


def accuracy_by_test_set(model, test_sets: dict, class_names) -> pd.DataFrame:
    """One row per test set: images, accuracy and the recall of each class.

    ``test_sets`` maps a name to ``(images, labels)`` (uint8 grayscale images, class names).
    """
    predict = _probability_function(model)
    rows = {}
    for name, (images, labels) in test_sets.items():
        truth = np.array([list(class_names).index(label) for label in labels])
        guess = predict(as_model_input(images)).argmax(1)
        row = {"images": len(truth), "accuracy": float((guess == truth).mean())}
        for k, cls in enumerate(class_names):
            row[f"recall {cls}"] = float((guess[truth == k] == k).mean()) if (truth == k).any() else np.nan
        rows[name] = row
    table = pd.DataFrame(rows).T
    return table.astype({"images": int})


def write_masked_dataset(source, out, box, fill: int = 0) -> Path:
    """Copy a phantom-style dataset (``metadata.csv``, ``images/``, ``masks/``) with images masked to ``box``.

    The metadata and lesion masks are copied unchanged; each image gets
    :func:`mask_outside_box`. Returns ``out``. Never writes into ``source``.
    """
    import shutil

    from .data import read_image

    source, out = Path(source), Path(out)
    if out.resolve() == source.resolve() or out.resolve().is_relative_to(source.resolve()):
        raise CourseError(f"{out} is inside {source}; the course never writes into input data.")
    metadata = pd.read_csv(source / "metadata.csv", dtype=str, keep_default_na=False)
    (out / "images").mkdir(parents=True, exist_ok=True)
    if (source / "masks").is_dir():
        shutil.copytree(source / "masks", out / "masks", dirs_exist_ok=True)
    for folder, name in zip(metadata.get("folder", ["images"] * len(metadata)), metadata["filename"]):
        image = read_image(source / (folder or "images") / name)
        masked = mask_outside_box(image[None], box, fill)[0]
        (out / (folder or "images")).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out / (folder or "images") / name), masked)
    metadata.to_csv(out / "metadata.csv", index=False, lineterminator="\n")
    return out


# ---------------------------------------------------------------- a model worth explaining


def recalibrate_batchnorm(model: keras.Model, images, batch_size: int = 4) -> int:
    """Recompute the running statistics of every trainable BatchNormalization layer on ``images``.

    A network trained from scratch for a few dozen steps (the ``ci`` profile) keeps running
    averages that still remember their initial values (momentum 0.99: after 50 steps, 60%
    of the start value is left), so in inference mode it behaves like another model. This
    sets each running mean and variance to the average over ``images`` ("precise BN", Wu &
    Johnson 2021), with augmentation switched off. Frozen BatchNorm layers (pretrained
    backbones) are left alone. Returns the number of layers recalibrated. Small batches keep
    the memory of the training-mode forward passes low.
    """
    layers = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization) and l.trainable]
    if not layers:
        return 0
    images = as_model_input(images)
    augment = next((l for l in model.layers if l.name == "augment"), None)
    saved_ranges = {k: getattr(augment, k) for k in ("rotation", "shift", "zoom", "shear")} if augment else {}
    saved_momentum = [l.momentum for l in layers]
    try:
        for key in saved_ranges:
            setattr(augment, key, 0.0)
        for chunk, start in enumerate(range(0, len(images), batch_size)):
            for layer in layers:
                layer.momentum = chunk / (chunk + 1)  # a running average over the chunks
            model(tf.constant(images[start : start + batch_size]), training=True)
    finally:
        for layer, momentum in zip(layers, saved_momentum):
            layer.momentum = momentum
        for key, value in saved_ranges.items():
            setattr(augment, key, value)
        release_memory()
    return len(layers)


# ---------------------------------------------------------------- explaining a RUN folder


def draw_mask_outline(overlay: np.ndarray, mask: np.ndarray, color=(255, 255, 255)) -> np.ndarray:
    """Draw the outline of a boolean mask (any size) on an RGB uint8 image."""
    overlay = overlay.copy()
    mask = cv2.resize(mask.astype(np.uint8), (overlay.shape[1], overlay.shape[0]), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(overlay, contours, -1, color, 1)
    return overlay


def _select_images(run: Path, data, split: str) -> tuple[pd.DataFrame, str]:
    """Rows of ``data`` to explain: the RUN's ``split`` when the RUN was trained on ``data``.

    Images are matched to the RUN's ``splits.csv`` by content (SHA-1) when it records it,
    else by path, so a renamed or moved copy of the same data still finds its split.
    """
    from .data import load_dataset
    from .pipeline import file_digest

    table = load_dataset(data)
    splits_file = run / "splits.csv"
    if splits_file.is_file():
        splits = pd.read_csv(splits_file, dtype=str, keep_default_na=False)
        if "sha1" in splits.columns:
            keys, where = table["path"].map(file_digest), dict(zip(splits["sha1"], splits["split"]))
        else:
            keys = table["path"].map(os.path.realpath)
            where = dict(zip(splits["path"].map(os.path.realpath), splits["split"]))
        table["split"] = keys.map(where)
        if table["split"].notna().any():
            chosen = table[table["split"] == split]
            if chosen.empty:
                raise CourseError(f"{run}: no images in split {split!r}; choose train, val or test.")
            return chosen.reset_index(drop=True), f"the RUN's {split} split"
    return table.reset_index(drop=True), "all images (the RUN was not trained on these data)"


def explain_run(
    run,
    data,
    out,
    methods=("gradcam",),
    *,
    split: str = "test",
    per_class: int | None = 8,
    layer_name: str | None = None,
    target: str = "true",
    fraction: float = 0.1,
    max_maps: int = 32,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Explain a trained RUN on ``data``: overlays (PNG) and the quality table (CSV).

    Writes ``out/overlays/<method>/*.png`` (heatmap of the explained class over the image,
    lesion outline in white), ``out/explanation_per_image.csv`` and
    ``out/explanation_quality.csv`` (:func:`summarize_quality`); returns the latter.
    ``target``: "true" explains each image's true class, "predicted" the predicted one.
    """
    from .data import load_images
    from .pipeline import load_run

    run, out = Path(run), Path(out)
    if target not in ("true", "predicted"):
        raise ValueError("target must be 'true' or 'predicted'")
    loaded = load_run(run)
    model, class_names, config = loaded.model, loaded.class_names, loaded.config
    table, where = _select_images(run, data, split)
    table = table[table["label"].isin(class_names)]
    if per_class:
        table = table.groupby("label", sort=False).head(per_class)
    table = table.reset_index(drop=True)
    if progress:
        print(f"==> Explaining {len(table)} images ({where}) with {', '.join(methods)}", flush=True)
    images, table = load_images(table, config["image_size"], progress=False)
    table = table.reset_index(drop=True)
    masks = (
        load_masks(table, config["image_size"])
        if "mask_path" in table.columns
        else np.zeros(images.shape, dtype=bool)
    )
    probabilities = _probability_function(model)(as_model_input(images))
    true_index = np.array([class_names.index(label) for label in table["label"]])
    index = true_index if target == "true" else probabilities.argmax(1)
    heatmaps = compute_heatmaps(model, images, index, methods, layer_name, max_maps=max_maps, seed=seed)
    per_image = explanation_quality(
        model, images, table["label"], masks, class_names, heatmaps, index, fraction=fraction, seed=seed
    )
    per_image.insert(1, "path", np.tile(table["path"].to_numpy(), len(methods)))
    out.mkdir(parents=True, exist_ok=True)
    for method, maps in heatmaps.items():
        folder = out / "overlays" / method.replace("+", "p")
        folder.mkdir(parents=True, exist_ok=True)
        for i, (image, heatmap, mask) in enumerate(zip(images, maps, masks)):
            overlay = draw_mask_outline(overlay_heatmap(image, heatmap), mask) if mask.any() else overlay_heatmap(image, heatmap)
            predicted = class_names[int(probabilities[i].argmax())]
            name = f"{i:03d}_{Path(table['path'][i]).stem}_true-{table['label'][i]}_pred-{predicted}.png"
            cv2.imwrite(str(folder / name), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
    summary = summarize_quality(per_image)
    per_image.to_csv(out / "explanation_per_image.csv", index=False)
    summary.to_csv(out / "explanation_quality.csv", index=False)
    return summary


# ---------------------------------------------------------------- speed


def benchmark_gradcam(
    model: keras.Model | None = None,
    *,
    backbone: str = "resnet50",
    image_size: int = 224,
    repeats: int = 20,
    warmup: int = 3,
    scorecam_maps: int = 32,
    scorecam_repeats: int = 3,
    layer_name: str | None = None,
    seed: int = 0,
) -> dict:
    """Time Grad-CAM of one image against one compiled forward pass of the same model.

    Both are timed in the same run, after ``warmup`` calls, as the median of ``repeats``
    calls on one image. The forward pass is ``model(x, training=False)`` in a
    ``tf.function``; Grad-CAM is :class:`GradCAM` (its gradient model built once and
    compiled), including the conversion of its result to NumPy. Score-CAM with
    ``scorecam_maps`` maps (0 skips it) is timed the same way with ``scorecam_repeats``.
    Without ``model`` a ``backbone`` classifier with random weights is built: timing does
    not depend on the weights' values.
    """
    from .models import build_classifier
    from .predict import machine_description, time_call

    if model is None:
        model = build_classifier(backbone, 3, image_size, weights=None, seed=seed)
    size = model.input.shape[1]
    image = np.random.default_rng(seed).uniform(0, 255, (1, size, size, 3)).astype(np.float32)
    tensor = tf.constant(image)
    forward = tf.function(lambda x: model(x, training=False))
    cam = GradCAM(model, layer_name)

    def timed(call, count):
        return float(np.median([time_call(call) for _ in range(count)]))

    def run_forward():
        return forward(tensor).numpy()

    def run_gradcam():
        return cam(image, 0)

    for _ in range(warmup):
        run_forward()
        run_gradcam()
    forward_s = timed(run_forward, repeats)
    gradcam_s = timed(run_gradcam, repeats)
    result = {
        "model": model.name,
        "image_size": int(size),
        "layer": cam.layer_name,
        "machine": machine_description(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="minutes"),
        "repeats": repeats,
        "forward_ms": 1000 * forward_s,
        "gradcam_ms": 1000 * gradcam_s,
        "gradcam_over_forward": gradcam_s / forward_s,
    }
    if scorecam_maps:
        scorecam = Explainer(model, "scorecam", layer_name, max_maps=scorecam_maps)
        scorecam(image, 0)  # warm-up: builds predict
        scorecam_s = timed(lambda: scorecam(image, 0), scorecam_repeats)
        result.update(
            {
                "scorecam_maps": scorecam_maps,
                "scorecam_ms": 1000 * scorecam_s,
                "scorecam_over_forward": scorecam_s / forward_s,
            }
        )
    return result


# ---------------------------------------------------------------- drawing


def overlay_with_outline(image, heatmap, mask=None, alpha: float = 0.4) -> np.ndarray:
    """:func:`overlay_heatmap`, plus the outline of ``mask`` (a lesion, a marker box) in white."""
    overlay = overlay_heatmap(image, heatmap, alpha)
    return draw_mask_outline(overlay, mask) if mask is not None and np.any(mask) else overlay


def plot_map_grid(cells, row_titles=None, column_titles=None, size: float = 1.7, cmap: str = "gray"):
    """A grid of pictures: ``cells[r][c]`` is a 2-D array (drawn with ``cmap``), an RGB image or None.

    Each row is as tall as its most elongated picture needs. Returns a
    ``matplotlib.figure.Figure`` (a notebook shows it; :func:`figure_to_png` saves it).
    """
    from matplotlib.figure import Figure

    rows, columns = len(cells), max(len(row) for row in cells)
    ratios = [max(np.shape(p)[0] / np.shape(p)[1] for p in row if p is not None) for row in cells]
    fig = Figure(figsize=(columns * size + (0.9 if row_titles else 0), size * sum(ratios) + 0.35 * rows))
    axes = np.array(fig.subplots(rows, columns, squeeze=False, gridspec_kw={"height_ratios": ratios}))
    for r, row in enumerate(cells):
        for c in range(columns):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            picture = row[c] if c < len(row) else None
            if picture is None:
                ax.axis("off")
                continue
            ax.imshow(picture, cmap=cmap if np.ndim(picture) == 2 else None)
            if row_titles and c == 0:
                ax.set_ylabel(row_titles[r], fontsize=8)
            if column_titles and r == 0:
                ax.set_title(column_titles[c], fontsize=9)
    fig.tight_layout()
    return fig


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
