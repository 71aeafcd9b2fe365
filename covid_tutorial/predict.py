"""Predict: the course's predictor for a trained RUN.

``model.predict`` is made for datasets: every call builds a data adapter, an iterator,
callbacks and a progress bar, then runs the network layer by layer. For one image at a
time that is wasted work. :class:`Predictor` does two things once, when it is made:

- it folds every BatchNormalization that follows a convolution into that convolution's
  kernel and bias (:func:`fold_batchnorm`). At inference BatchNorm is a fixed affine map
  per channel, so ``conv`` then ``BN`` is the same function as one convolution with
  rescaled weights, and the arithmetic of 53 layers of ResNet50 disappears;
- it traces the folded model into one ``tf.function`` with a fixed input signature, so
  each call runs a compiled graph with no Python in between.

XLA (``jit_compile``) is switched on only where it helps: on a GPU. On a CPU the
benchmark measures it next to the other variants, so you can see whether it does
(``covid-tutorial bench predict RUN``; figures in docs/benchmarks.md). Freezing the whole
graph into constants is faster still on a CPU, but TensorFlow's optimizer then needs
more than a gigabyte of extra memory for ResNet50, which a 2 GB Binder session cannot
spare.
"""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd

from .data import pad_and_resize, read_image, to_model_input
from .errors import DataError
from .runs import LoadedRun, load_run
from .system import gpu_available

__all__ = [
    "fold_batchnorm",
    "Predictor",
    "predictions_as_json",
]


class _FoldedBatchNormalization(keras.layers.Layer):
    """Passes its input on where a BatchNormalization stood. Not ``keras.layers.Identity``:
    the cloned graph calls it with BatchNormalization's arguments (``mask``), which
    Identity refuses."""

    def call(self, inputs, *args, **kwargs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


def _foldable_pairs(model) -> dict[str, str]:
    """{Conv2D name: BatchNormalization name} for every BN fed only by a linear Conv2D that feeds nothing else."""
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        source = layer.input._keras_history.operation
        if (
            type(source) is keras.layers.Conv2D
            and source.get_config()["activation"] == "linear"
            and len(source._outbound_nodes) == 1
        ):
            pairs[source.name] = layer.name
    return pairs


def fold_batchnorm(model) -> "keras.Model":
    """A copy of ``model`` for inference with each BatchNormalization folded into the Conv2D
    before it: kernel * s and (bias - mean) * s + beta, with s = gamma / sqrt(variance + eps).
    The same function to float rounding, with fewer operations; not for training."""
    pairs = _foldable_pairs(model)
    folded_norms = set(pairs.values())

    def clone(layer):
        if layer.name in folded_norms:
            return _FoldedBatchNormalization(name=layer.name)
        config = layer.get_config()
        if layer.name in pairs:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        target = copy.get_layer(layer.name)
        if layer.name in pairs:
            norm = model.get_layer(pairs[layer.name])
            kernel = layer.kernel.numpy()
            bias = layer.bias.numpy() if layer.use_bias else np.zeros(kernel.shape[-1], np.float32)
            gamma = norm.gamma.numpy() if norm.scale else np.ones_like(bias)
            beta = norm.beta.numpy() if norm.center else np.zeros_like(bias)
            scale = gamma / np.sqrt(norm.moving_variance.numpy() + norm.epsilon)
            target.set_weights([kernel * scale, (bias - norm.moving_mean.numpy()) * scale + beta])
        elif layer.name not in folded_norms and layer.weights:
            target.set_weights(layer.get_weights())
    return copy


class Predictor:
    """A trained classifier compiled once for fast inference.

    >>> predictor = Predictor.from_run("runs/resnet50")
    >>> predictor.predict_files(["chest.png"])        # a table: predicted class, probabilities
    >>> predictor.predict_arrays(images)              # (n, classes) probabilities

    ``fold=True`` (the default) folds BatchNorm into the convolutions first (see the module
    docstring); ``jit_compile`` defaults to XLA on a GPU and off on a CPU. ``model`` stays
    the original Keras model (Grad-CAM needs its layers).
    """

    def __init__(self, model, class_names, image_size: int, *, fold: bool = True, jit_compile: bool | None = None,
                 batch_size: int = 16):
        self.model = model
        self.class_names = list(class_names)
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        self.fold = fold
        self.jit_compile = gpu_available() if jit_compile is None else bool(jit_compile)
        self.calibration = None  # a RUN's TemperatureScaling (from_run), applied by predict_files
        self._call = self._compile()

    @classmethod
    def from_run(cls, run, **options) -> "Predictor":
        """Load a RUN folder (Keras safe mode, version and consistency checks) and compile it."""

        loaded = run if isinstance(run, LoadedRun) else load_run(run)
        predictor = cls(loaded.model, loaded.class_names, loaded.image_size, **options)
        predictor.run = loaded
        predictor.calibration = loaded.calibration
        return predictor

    def _compile(self):
        import tensorflow as tf

        network = fold_batchnorm(self.model) if self.fold else self.model
        spec = tf.TensorSpec((None, self.image_size, self.image_size, 3), tf.float32)
        return tf.function(
            lambda images: network(images, training=False), input_signature=[spec], jit_compile=self.jit_compile
        )

    def predict_arrays(self, images) -> np.ndarray:
        """Class probabilities (n, classes) for images at the model's size: uint8 or float
        in 0..255, grayscale (n, h, w) or RGB (n, h, w, 3)."""
        import tensorflow as tf

        batch = to_model_input(images, self.image_size)
        parts = [
            self._call(tf.constant(batch[start : start + self.batch_size])).numpy()
            for start in range(0, len(batch), self.batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.class_names)), np.float32)

    def predict_augmented(self, images, shift: int = 4) -> np.ndarray:
        """Probabilities of each image as it is, mirrored left to right, and shifted by ``shift``
        px up, down, left and right (edges repeated): an array (6, n, classes). Test-time
        augmentation: how much the answer moves under changes that should not matter is a
        second measure of uncertainty, at six times the cost of one prediction."""
        images = np.asarray(images)
        pad = [(0, 0), (shift, shift), (shift, shift)] + [(0, 0)] * (images.ndim - 3)
        padded = np.pad(images, pad, mode="edge")
        h, w = images.shape[1:3]
        views = [images, images[:, :, ::-1]]
        views += [padded[:, shift + dy : shift + dy + h, shift + dx : shift + dx + w]
                  for dy, dx in ((-shift, 0), (shift, 0), (0, -shift), (0, shift))]
        return np.stack([self.predict_arrays(np.ascontiguousarray(view)) for view in views])

    def load_files(self, paths) -> np.ndarray:
        """Read image files as the RUN's training did (grayscale, padded to a square, resized).
        Every unreadable file is named in one :class:`DataError`; nothing is predicted then."""
        images, problems = [], []
        for path in paths:
            try:
                images.append(pad_and_resize(read_image(path), self.image_size))
            except DataError as err:
                problems.append(str(err))
        if problems:
            raise DataError(
                f"{len(problems)} of {len(paths)} image(s) could not be read, so nothing was predicted: "
                + " ".join(problems)
            )
        return np.stack(images) if images else np.zeros((0, self.image_size, self.image_size), np.uint8)

    def predict_files(self, paths) -> pd.DataFrame:
        """One row per file: ``image``, ``predicted`` and one probability column per class; the
        probabilities after the RUN's temperature scaling when it has one (``calibration``)."""
        paths = [str(p) for p in paths]
        probabilities = self.predict_arrays(self.load_files(paths))
        if self.calibration is not None:
            probabilities = self.calibration.apply(probabilities)
        table = pd.DataFrame({"image": paths})
        table["predicted"] = [self.class_names[k] for k in probabilities.argmax(axis=1)]
        for k, name in enumerate(self.class_names):
            table[name] = probabilities[:, k]
        return table


# ---------------------------------------------------------------- operating thresholds


# ---------------------------------------------------------------- benchmark


def predictions_as_json(table: pd.DataFrame, class_names) -> list[dict]:
    """One JSON object per row of :meth:`Predictor.predict_files`: image, predicted class, probabilities."""
    return [
        {
            "image": row["image"],
            "predicted": row["predicted"],
            "probabilities": {name: round(float(row[name]), 6) for name in class_names},
        }
        for _, row in table.iterrows()
    ]
