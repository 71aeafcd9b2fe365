"""The input feed: images in memory (uint8 grayscale) or a table of files in, ``tf.data`` out.

The images stay uint8 and single-channel in memory (a third of the RGB size); each batch
becomes float32 RGB in 0..255 in one place, :func:`to_float_rgb`. Each backbone's own
scaling, and the augmentation, live inside the model so that they run on the accelerator;
:class:`HostAugmentedBatches` runs the same augmentation in the input pipeline instead,
for an XLA-compiled step that cannot hold it.

- :func:`dataset_from_arrays`: arrays in, batches out (shuffled when training).
- :func:`make_dataset`: a table of files in (read by :func:`covid_tutorial.data.load_images`).
- :class:`EpochBatches`: training batches whose order depends on (seed, stage, epoch)
  alone, so a resumed run sees the batches of the run it continues.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from .data import CLASS_NAMES, load_images, one_hot
from .models import RandomAffine

__all__ = [
    "to_float_rgb",
    "dataset_from_arrays",
    "make_dataset",
    "EpochBatches",
    "HostAugmentedBatches",
]


def to_float_rgb(batch):
    """A batch of uint8 grayscale images (n, h, w, 1) as float32 RGB in 0..255."""
    return tf.image.grayscale_to_rgb(tf.cast(batch, tf.float32))


def dataset_from_arrays(images, labels=None, *, batch_size=16, training=False, seed=0):
    """uint8 grayscale images (n, size, size), and one-hot labels if any, as batches of
    float32 RGB: shuffled each epoch when ``training``, batched, converted, prefetched."""
    images = np.asarray(images, dtype=np.uint8)[..., None]
    items = images if labels is None else (images, np.asarray(labels, dtype=np.float32))
    ds = tf.data.Dataset.from_tensor_slices(items)
    if training:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    ds = ds.map(to_float_rgb if labels is None else (lambda x, y: (to_float_rgb(x), y)))
    return ds.prefetch(tf.data.AUTOTUNE)


def make_dataset(
    table, image_size, batch_size, class_names=CLASS_NAMES, *, training=False, seed=0, progress=False
):
    """Load the images of ``table`` and return a batched ``tf.data.Dataset`` of (image, one-hot)."""
    images, kept = load_images(table, image_size, progress=progress)
    labels = one_hot(kept["label"], class_names)
    return dataset_from_arrays(images, labels, batch_size=batch_size, training=training, seed=seed)


class EpochBatches:
    """Training batches whose order is a function of (seed, stage, epoch) alone.

    A ``tf.data`` shuffle draws each epoch's order from the iterator's history, so a
    run resumed from a checkpoint would see other batches than the run it continues.
    Here epoch ``e`` of stage ``s`` uses the permutation drawn by
    ``np.random.default_rng([seed, s, e])``: resume at any epoch, same batches.
    ``images`` are uint8 grayscale (n, size, size); each batch becomes float32 RGB in
    0..255, as :func:`dataset_from_arrays` makes them.
    """

    def __init__(self, images, labels, *, batch_size: int = 16, seed: int = 0):
        self.images = np.asarray(images, dtype=np.uint8)
        self.labels = np.asarray(labels, dtype=np.float32)
        self.batch_size = int(batch_size)
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self) / self.batch_size)

    def order(self, epoch: int, stage_index: int = 0) -> np.ndarray:
        """The image indices of one epoch, in the order they are batched."""
        return np.random.default_rng([self.seed, stage_index, epoch]).permutation(len(self))

    def dataset(self, initial_epoch: int, epochs: int, stage_index: int = 0):
        """Batches of epochs ``initial_epoch`` to ``epochs - 1``, one after another; give
        ``model.fit`` ``steps_per_epoch=self.steps_per_epoch`` with it."""
        orders = np.array(
            [self.order(e, stage_index) for e in range(initial_epoch, epochs)], dtype=np.int64
        ).reshape(-1, len(self))
        images = tf.constant(self.images[..., None])
        labels = tf.constant(self.labels)

        def gather(index):
            return to_float_rgb(tf.gather(images, index)), tf.gather(labels, index)

        batches = tf.data.Dataset.from_tensor_slices(orders).flat_map(
            lambda order: tf.data.Dataset.from_tensor_slices(order).batch(self.batch_size)
        )
        return batches.map(gather).prefetch(tf.data.AUTOTUNE)


class HostAugmentedBatches(EpochBatches):
    """:class:`EpochBatches` with the augmentation done in the input pipeline.

    Used with XLA: the augmentation's image resampling (``ImageProjectiveTransformV3``)
    has no XLA kernel, so an XLA-compiled training step cannot contain it. The same
    :class:`covid_tutorial.models.RandomAffine` layer runs on the host instead, in tf.data.
    """

    def __init__(self, images, labels, *, batch_size: int = 16, seed: int = 0):
        super().__init__(images, labels, batch_size=batch_size, seed=seed)
        self.augment = RandomAffine(seed=seed, name="augment")

    def dataset(self, initial_epoch: int, epochs: int, stage_index: int = 0):
        batches = super().dataset(initial_epoch, epochs, stage_index)
        return batches.map(lambda x, y: (self.augment(x, training=True), y))
