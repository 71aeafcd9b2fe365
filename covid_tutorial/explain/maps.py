"""Explanation maps: where a classifier looks, and whether that picture can be trusted (notebook 06).

Grad-CAM (Selvaraju et al. 2017) weights each channel of a convolutional feature map
by the average gradient of one class *score* with respect to it, sums the weighted
channels, and keeps the positive part. We take the score before the softmax (the
``head_logits`` layer): the gradient of a sum of softmax outputs is zero, because
they always add up to one, which makes a map that is not about any class at all.

* **Maps**: our own :class:`GradCAM`, and Grad-CAM++, Score-CAM and SmoothGrad saliency
  through tf-keras-vis, all behind one :class:`Explainer`; :func:`compute_heatmaps` runs
  several methods at once.
* **Sanity checks** (Adebayo et al. 2018): :func:`randomization_test` re-initialises
  the top layers and measures how much the map changes (Spearman rank correlation);
  :func:`class_contrast` compares the maps of two classes on the same image.

Every map is a float array in 0..1 (divided by its own maximum, unless ``normalize=False``
keeps its raw values); methods that work at a layer's resolution are resized to the input size with :func:`upsample_maps` (bilinear).
How good the maps are is measured in :mod:`covid_tutorial.explain.quality`.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import warnings

import cv2
import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from ..data import to_model_input
from ..errors import CourseError
from ..models import HEAD_LAYERS, backbone_layers, last_feature_layer, stage_prefix

__all__ = [
    "EXPLANATION_METHODS",
    "METHOD_TITLES",
    "SCORE_LAYER",
    "target_layer",
    "logits_model",
    "class_indices",
    "normalize_maps",
    "upsample_maps",
    "quiet_keras",
    "GradCAM",
    "Explainer",
    "compute_heatmaps",
    "rank_correlation",
    "backbone_stages",
    "depth_layers",
    "layer_with_cells",
    "randomize_top_layers",
    "randomization_test",
    "class_contrast",
]

EXPLANATION_METHODS = ("gradcam", "gradcam++", "scorecam", "saliency")
METHOD_TITLES = {
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "scorecam": "Score-CAM",
    "saliency": "SmoothGrad",
}
SCORE_LAYER = "head_logits"


# ---------------------------------------------------------------- inputs and layers


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


def class_indices(class_index, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(class_index, dtype=np.int32), (n,)).copy()


def normalize_maps(maps) -> np.ndarray:
    """Divide each map by its own maximum (an all-zero map stays zero)."""
    maps = np.asarray(maps, dtype=np.float32)
    if len(maps) == 0:  # no images: nothing to scale
        return maps
    peak = maps.reshape(len(maps), -1).max(axis=1).reshape((-1,) + (1,) * (maps.ndim - 1))
    return np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)


def upsample_maps(maps, size: int | tuple[int, int]) -> np.ndarray:
    """Resize (n, h, w) maps to ``size`` (px, or (height, width)) with bilinear interpolation."""
    height, width = (size, size) if np.isscalar(size) else size
    maps = np.asarray(maps, dtype=np.float32)
    if len(maps) == 0:
        return np.zeros((0, height, width), dtype=np.float32)
    if maps.shape[1:] == (height, width):
        return maps
    return np.stack([cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR) for m in maps])


@contextlib.contextmanager
def quiet_keras():
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

    def __call__(self, images, class_index, normalize: bool = True, batch_size: int = 16) -> np.ndarray:
        """Heatmaps for images (0..255, gray or RGB); ``class_index`` is an int or one per image.

        ``normalize=False`` returns the raw ReLU(sum of weighted channels), in score units.
        The images go through the network ``batch_size`` at a time: the gradient tape holds
        a whole forward pass, so the memory grows with the batch, not with the image count.
        """
        images = to_model_input(images)
        index = class_indices(class_index, len(images))
        with quiet_keras():
            maps = [
                self._compiled(tf.constant(images[start : start + batch_size]), tf.constant(index[start : start + batch_size])).numpy()
                for start in range(0, len(images), batch_size)
            ]
        if not maps:  # no images: an empty stack of maps of the layer's size
            return np.zeros((0, *self.gradient_model.outputs[0].shape[1:3]), np.float32)
        maps = np.concatenate(maps)
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
        if method not in EXPLANATION_METHODS:
            raise CourseError(f"Unknown method {method!r}. Choose one of: {', '.join(EXPLANATION_METHODS)}.")
        self.method, self.model = method, model
        self.layer_name = None if method == "saliency" else target_layer(model, layer_name)
        self.max_maps, self.batch_size, self.seed = int(max_maps), int(batch_size), seed
        self.smooth_samples, self.smooth_noise = int(smooth_samples), float(smooth_noise)
        self.input_size = tuple(model.input.shape[1:3])
        if method == "gradcam":
            self._tool = GradCAM(model, self.layer_name, score_layer)
            return
        from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
        from tf_keras_vis.saliency import Saliency
        from tf_keras_vis.scorecam import Scorecam

        tool = {"gradcam++": GradcamPlusPlus, "scorecam": Scorecam, "saliency": Saliency}[method]
        # The logits model shares the trained weights; Score-CAM applies the softmax itself.
        self._tool = tool(logits_model(model, score_layer), clone=False)

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

    def __call__(self, images, class_index, upsample: bool = True, normalize: bool = True) -> np.ndarray:
        """Maps (n, H, W) in 0..1; at the input size unless ``upsample=False`` (CAM methods only).

        ``normalize=False`` keeps each map's own units (score units for Grad-CAM, the
        library's for the others), so that maps can be compared on one scale: divided by its
        own maximum, a map with almost no evidence is drawn as bright as a strong one.
        """
        batch = to_model_input(images)
        index = class_indices(class_index, len(batch))
        if len(batch) == 0:
            return np.zeros((0, *self.input_size), dtype=np.float32)
        if self.method == "gradcam":
            maps = self._tool(batch, index, normalize=False)
        else:
            with quiet_keras():
                maps = np.concatenate([self._library_map(image, int(i)) for image, i in zip(batch, index)])
        if upsample:
            maps = upsample_maps(maps, self.input_size)
        return normalize_maps(maps) if normalize else maps


def compute_heatmaps(
    model, images, class_index, methods=("gradcam",), layer_name=None, batch_size=4, normalize: bool = True, **options
):
    """``{method: maps (n, H, W)}`` for several methods, computed in batches; each map divided by
    its own maximum unless ``normalize=False`` (see :meth:`Explainer.__call__`)."""
    images = to_model_input(images)
    index = class_indices(class_index, len(images))
    result = {}
    for method in methods:
        explainer = Explainer(model, method, layer_name, **options)
        parts = [
            explainer(images[start : start + batch_size], index[start : start + batch_size], normalize=normalize)
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
        prefix = stage_prefix(layer.name)
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


def layer_with_cells(model: keras.Model, cells: int = 8) -> str:
    """The deepest stage output (:func:`depth_layers`) whose map has at least ``cells`` x ``cells``
    cells, for maps fine enough to place a lesion; the first stage's if none has."""
    stages = depth_layers(model)
    fine = [name for name in stages if min(model.get_layer(name).output.shape[1:3]) >= cells]
    return fine[-1] if fine else stages[0]


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
    images = to_model_input(images)
    index = class_indices(class_index, len(images))
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


# ---------------------------------------------------------------- intermediate activations


# ---------------------------------------------------------------- shortcut learning


# ---------------------------------------------------------------- a model worth explaining


# ---------------------------------------------------------------- explaining a RUN folder


# ---------------------------------------------------------------- speed


# ---------------------------------------------------------------- drawing


