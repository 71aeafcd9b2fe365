"""Training: the recipe of the source articles, as small functions.

Adam (1e-4 with ImageNet weights), categorical cross-entropy with label smoothing,
ReduceLROnPlateau (factor 0.5, patience 3, min_delta 1e-4), early stopping that
restores the best validation weights, class weights against imbalance, a seed for
everything, and the history saved as CSV. Transfer learning runs in two stages:
the new head on a frozen backbone, then the top blocks fine-tuned at a tenth of the
learning rate with BatchNorm kept in inference mode.

Training can be stopped and resumed with the same result: :class:`covid_tutorial.feed.EpochBatches` makes
each epoch's batch order a function of (seed, stage, epoch) alone, and
:class:`TrainingCheckpoint` saves at every epoch end everything the next epoch depends
on (weights, optimizer state, the callbacks' counters, the random generators' state).

Also here: :func:`recalibrate_batchnorm` (running statistics recomputed after training
from random weights), and the speed options of the comparison, mixed precision
(:func:`to_mixed_precision`) and XLA (:class:`ExecutionOptions`), and several GPUs of one
machine (:func:`distribution_strategy`, :func:`global_batch_size`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight

from .data import to_model_input
from .errors import CourseError, RunError
from .feed import EpochBatches, dataset_from_arrays
from .models import (
    build_classifier,
    count_trainable_parameters,
    set_trainable_stage,
)
from .system import atomic_path, release_memory

__all__ = [
    "LABEL_SMOOTHING",
    "FINE_TUNE_LR_FACTOR",
    "seed_everything",
    "class_weights",
    "compile_classifier",
    "training_callbacks",
    "TrainingCheckpoint",
    "fit_stage",
    "train_two_stage",
    "inference_copy",
    "predict_probabilities",
    "recalibrate_batchnorm",
    "FLOAT32_LAYERS",
    "to_mixed_precision",
    "build_for_comparison",
    "ExecutionOptions",
    "distribution_strategy",
    "global_batch_size",
]

LABEL_SMOOTHING = 0.1
FINE_TUNE_LR_FACTOR = 0.1


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and TensorFlow in one call (keras.utils.set_random_seed)."""
    keras.utils.set_random_seed(seed)


def class_weights(labels, class_names) -> dict[int, float]:
    """Balanced class weights (scikit-learn): n_samples / (n_classes * count of the class)."""
    present = [name for name in class_names if name in set(labels)]
    weights = compute_class_weight("balanced", classes=np.array(present), y=np.asarray(labels))
    by_name = dict(zip(present, weights))
    return {i: float(by_name.get(name, 1.0)) for i, name in enumerate(class_names)}


def compile_classifier(model: keras.Model, learning_rate: float) -> keras.Model:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=LABEL_SMOOTHING),
        metrics=["accuracy"],
    )
    return model


def training_callbacks(patience: int = 6, verbose: int = 0) -> list:
    """Halve the learning rate when the validation loss stalls; stop when it no longer
    improves and go back to the best epoch's weights."""
    return [
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=3, min_delta=1e-4, verbose=verbose
        ),
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=patience, min_delta=1e-4, restore_best_weights=True
        ),
    ]


def _finite_or_none(value):
    return None if value is None or not np.isfinite(value) else float(value)


def _seed_generator_states(model: keras.Model) -> dict[str, list]:
    """The state of every random generator in ``model`` (augmentation, dropout), by layer."""
    return {
        layer.name: [np.asarray(v.numpy()).tolist() for v in layer.variables if v.name == "seed_generator_state"]
        for layer in model.layers
        if any(v.name == "seed_generator_state" for v in layer.variables)
    }


def _set_seed_generator_states(model: keras.Model, states: dict[str, list]) -> None:
    for name, values in states.items():
        variables = [v for v in model.get_layer(name).variables if v.name == "seed_generator_state"]
        for variable, value in zip(variables, values):
            variable.assign(np.asarray(value, dtype=variable.dtype))


class TrainingCheckpoint:
    """Everything an exact resume needs, saved in ``folder`` at every epoch end.

    - ``model-S-E/``: the model with its optimizer state (Adam's moments, step count and
      current learning rate) after epoch E of stage S, saved by Keras as an unzipped
      folder, which is written straight to disk instead of being assembled in memory;
    - ``best-S-E.npz``: the best weights so far, which EarlyStopping restores at the end;
    - ``state.json``, written last and atomically, so that it only ever names complete
      files: stage, epoch, history, the counters of ReduceLROnPlateau and EarlyStopping,
      and the state of the model's random generators (augmentation, dropout), which
      ``model.keras`` does not store.

    ``fingerprint`` holds the settings a resume must share with the run it continues.
    """

    STATE_FILE = "state.json"

    def __init__(self, folder, fingerprint: dict | None = None):
        self.folder = Path(folder)
        self.fingerprint = json.loads(json.dumps(fingerprint or {}, default=str))
        self.state: dict | None = None

    # ---------------------------------------------------------------- reading

    def load(self) -> "TrainingCheckpoint":
        """Read ``state.json``; from now on training continues where it stopped."""
        path = self.folder / self.STATE_FILE
        if not path.is_file():
            raise RunError(
                f"{self.folder}: no training checkpoint to resume from. Start the training "
                "without --resume."
            )
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise RunError(f"{path}: unreadable checkpoint state ({err}). Start the training again.") from None
        saved = state.get("fingerprint", {})
        changed = {
            key: (saved.get(key), value) for key, value in self.fingerprint.items() if saved.get(key) != value
        }
        if changed:
            detail = "; ".join(f"{k}: was {old!r}, now {new!r}" for k, (old, new) in changed.items())
            raise RunError(
                f"{self.folder}: cannot resume, the settings differ from the interrupted run ({detail}). "
                "Resume with the same settings, or start a new run in another folder."
            )
        self.state = state
        return self

    def load_model(self) -> keras.Model:
        """The checkpoint's model, compiled with its optimizer state (Keras safe mode on)."""
        path = self.folder / self.state["files"]["model"]
        try:
            model = keras.models.load_model(path, safe_mode=True)
        except Exception as err:  # a truncated file, another Keras version
            raise RunError(f"{path}: cannot load the checkpoint ({err}). Start the training again.") from None
        _set_seed_generator_states(model, self.state["seed_generators"])
        return model

    def stage_done(self, stage_index: int) -> bool:
        if self.state is None:
            return False
        return self.state["stage_index"] > stage_index or (
            self.state["stage_index"] == stage_index and self.state["stage_done"]
        )

    def resumes_inside(self, stage_index: int) -> bool:
        return self.state is not None and self.state["stage_index"] == stage_index and not self.state["stage_done"]

    def history(self, stage_index: int) -> pd.DataFrame:
        return pd.DataFrame(self.state["history"][stage_index])

    def describe(self) -> str:
        if self.state is None:
            return "no checkpoint"
        where = "end" if self.state["stage_done"] else f"epoch {self.state['epoch'] + 1}"
        return f"stage '{self.state['stage']}' ({where})"

    # ---------------------------------------------------------------- writing

    def callback(self, stage: str, stage_index: int, trainable: int, watched: list) -> keras.callbacks.Callback:
        """A callback that saves this checkpoint at every epoch end (put it after ``watched``)."""
        return _CheckpointCallback(self, stage, stage_index, trainable, watched)

    def save(
        self, model, *, stage, stage_index, epoch, stage_done, rows, trainable,
        callbacks=None, best_weights=None, best_epoch=None,
    ):
        previous = self.state or {"history": [], "trainable_parameters": {}, "files": {}}
        history = [list(r) for r in previous["history"][:stage_index]] + [list(rows)]
        self.folder.mkdir(parents=True, exist_ok=True)
        files = {"model": f"model-{stage_index}-{epoch + 1:03d}{'-end' if stage_done else ''}"}
        with atomic_path(self.folder / files["model"]) as tmp:
            model.save(tmp, zipped=False)
        if best_weights is not None:  # written once per improvement, not every epoch
            files["best_weights"] = f"best-{stage_index}-{best_epoch + 1:03d}.npz"
            if not (self.folder / files["best_weights"]).is_file():
                with atomic_path(self.folder / files["best_weights"]) as tmp:
                    np.savez(tmp, *best_weights)
        state = {
            "fingerprint": self.fingerprint,
            "stage": stage,
            "stage_index": stage_index,
            "epoch": epoch,
            "stage_done": stage_done,
            "callbacks": callbacks or {},
            "seed_generators": _seed_generator_states(model),
            "trainable_parameters": {**previous["trainable_parameters"], stage: trainable},
            "history": history,
            "files": files,
        }
        with atomic_path(self.folder / self.STATE_FILE) as tmp:
            tmp.write_text(json.dumps(state, indent=1))
        self.state = state
        for old in self.folder.iterdir():  # files that the new state no longer names
            if old.name != self.STATE_FILE and old.name not in files.values():
                shutil.rmtree(old) if old.is_dir() else old.unlink()

    def best_weights(self) -> list | None:
        name = self.state["files"].get("best_weights")
        if name is None:
            return None
        with np.load(self.folder / name, allow_pickle=False) as saved:
            return [saved[f"arr_{i}"] for i in range(len(saved.files))]


class _CheckpointCallback(keras.callbacks.Callback):
    """Restores the watched callbacks' counters on resume; saves the checkpoint each epoch."""

    def __init__(self, checkpoint: TrainingCheckpoint, stage: str, stage_index: int, trainable: int, watched):
        super().__init__()
        self.checkpoint, self.stage, self.stage_index, self.trainable = checkpoint, stage, stage_index, trainable
        self.reduce_lr = next(c for c in watched if isinstance(c, keras.callbacks.ReduceLROnPlateau))
        self.early_stopping = next(c for c in watched if isinstance(c, keras.callbacks.EarlyStopping))
        self.rows: list[dict] = []

    def on_train_begin(self, logs=None):
        # Runs after the watched callbacks reset themselves for a new fit.
        if not self.checkpoint.resumes_inside(self.stage_index):
            self.rows = []
            return
        state = self.checkpoint.state
        self.rows = list(state["history"][self.stage_index])
        saved = state["callbacks"]
        self.reduce_lr.best = saved["reduce_lr"]["best"]
        self.reduce_lr.wait = saved["reduce_lr"]["wait"]
        self.reduce_lr.cooldown_counter = saved["reduce_lr"]["cooldown_counter"]
        for key in ("best", "wait", "best_epoch", "stopped_epoch"):
            setattr(self.early_stopping, key, saved["early_stopping"][key])
        self.early_stopping.best_weights = self.checkpoint.best_weights()

    def _callback_state(self) -> dict:
        return {
            "reduce_lr": {
                "best": _finite_or_none(self.reduce_lr.best),
                "wait": int(self.reduce_lr.wait),
                "cooldown_counter": int(self.reduce_lr.cooldown_counter),
            },
            "early_stopping": {
                "best": _finite_or_none(self.early_stopping.best),
                "wait": int(self.early_stopping.wait),
                "best_epoch": int(self.early_stopping.best_epoch),
                "stopped_epoch": int(self.early_stopping.stopped_epoch),
            },
            "stopped": bool(self.model.stop_training),
        }

    def on_epoch_end(self, epoch, logs=None):
        row = {"stage": self.stage, "epoch": epoch + 1}
        row.update({key: float(value) for key, value in (logs or {}).items()})
        self.rows.append(row)
        self.checkpoint.save(
            self.model,
            stage=self.stage,
            stage_index=self.stage_index,
            epoch=epoch,
            stage_done=False,
            rows=self.rows,
            trainable=self.trainable,
            callbacks=self._callback_state(),
            best_weights=self.early_stopping.best_weights,
            best_epoch=self.early_stopping.best_epoch,
        )


def fit_stage(
    model: keras.Model,
    train_ds,
    val_ds,
    *,
    stage: str,
    epochs: int,
    learning_rate: float,
    class_weight: dict | None = None,
    fine_tune_layers: int | None = None,
    verbose: int | str = "auto",
    checkpoint: TrainingCheckpoint | None = None,
    stage_index: int = 0,
    callbacks: tuple | list = (),
) -> pd.DataFrame:
    """Set the trainable layers for ``stage``, recompile, fit; return the history as a table.

    ``train_ds`` is a ``tf.data.Dataset`` or, for runs that can be resumed exactly, an
    :class:`EpochBatches`. With a ``checkpoint`` every epoch end is saved there, and a
    checkpoint that stopped inside this stage continues from its next epoch with the
    model, optimizer and callback state it had. ``callbacks`` are added after ours.
    """
    if checkpoint is not None and checkpoint.stage_done(stage_index):  # finished before the interruption
        table = checkpoint.history(stage_index)
        table.attrs["trainable_parameters"] = checkpoint.state["trainable_parameters"][stage]
        return table
    resuming = checkpoint is not None and checkpoint.resumes_inside(stage_index)
    if resuming:  # the checkpoint's model keeps this stage's trainable layers and optimizer
        trainable = count_trainable_parameters(model)
        stopped = checkpoint.state["callbacks"].get("stopped", False)
        initial_epoch = epochs if stopped else checkpoint.state["epoch"] + 1
    else:
        trainable = set_trainable_stage(model, stage, fine_tune_layers)
        with model.distribute_strategy.scope():  # the optimizer's variables beside the model's
            compile_classifier(model, learning_rate)
        initial_epoch = 0
    if verbose:
        how = f"resuming after epoch {initial_epoch}" if resuming else f"learning rate {learning_rate:g}"
        print(f"Stage '{stage}': {trainable:,} trainable parameters, {how}")
    stage_callbacks = training_callbacks()
    if checkpoint is not None:
        stage_callbacks.append(checkpoint.callback(stage, stage_index, trainable, stage_callbacks))
    stage_callbacks += list(callbacks)
    replicas = model.distribute_strategy.num_replicas_in_sync
    if replicas > 1 and isinstance(train_ds, EpochBatches):
        _check_replica_batches(len(train_ds), train_ds.batch_size, replicas)
    val_ds = _even_first_batch(val_ds, replicas)
    if isinstance(train_ds, EpochBatches):
        data = {"x": train_ds.dataset(initial_epoch, epochs, stage_index), "steps_per_epoch": train_ds.steps_per_epoch}
    else:
        data = {"x": train_ds}
    history = model.fit(
        **data,
        validation_data=val_ds,
        epochs=epochs,
        initial_epoch=initial_epoch,
        class_weight=class_weight,
        callbacks=stage_callbacks,
        shuffle=False,  # the order is the dataset's (EpochBatches, or its own shuffle)
        verbose=verbose,
    )
    if checkpoint is not None:  # EarlyStopping has restored the best weights: save them as the stage's end
        done = checkpoint.state["history"] if checkpoint.state else []
        rows = done[stage_index] if stage_index < len(done) else []
        checkpoint.save(
            model, stage=stage, stage_index=stage_index, epoch=len(rows) - 1, stage_done=True,
            rows=rows, trainable=trainable,
        )
        table = checkpoint.history(stage_index)
    else:
        table = pd.DataFrame(history.history)
        table.insert(0, "epoch", np.arange(1, len(table) + 1))
        table.insert(0, "stage", stage)
    table.attrs["trainable_parameters"] = trainable
    return table


def _check_replica_batches(images: int, batch_size: int, replicas: int) -> None:
    """Refuse training batches that Keras cannot share between ``replicas`` (see :func:`_even_first_batch`)."""
    first, last = min(images, batch_size), images % batch_size
    if first % replicas or 0 < last < replicas:
        raise CourseError(
            f"{images} training images in batches of {batch_size} cannot be shared by {replicas} devices "
            f"(first batch {first}, last {last or batch_size}): the first batch must split evenly and the last "
            "must give every device an image. Choose another --batch-size or train on fewer devices."
        )


def _even_first_batch(val_ds, replicas: int):
    """Validation batches that every replica of a MirroredStrategy can share.

    Keras (3.15, TensorFlow 2.21) fails inside ``fit`` when the first validation batch
    does not split evenly between the replicas ("Inputs to operation AddN ... must have
    the same size"), and a batch smaller than the number of replicas leaves one of them
    an empty batch, which the CPU convolution refuses. So the images are batched again,
    in batches of a multiple of ``replicas`` chosen so that the last batch is either full
    or has at least one image per replica. The validation loss is a mean weighted by batch
    size, so the batching does not change it.
    """
    if replicas <= 1 or not isinstance(val_ds, tf.data.Dataset):
        return val_ds
    images = val_ds.unbatch()
    count = int(images.reduce(np.int64(0), lambda n, _: n + 1))
    if count < replicas:
        raise CourseError(f"{count} validation image(s) for {replicas} devices: each device needs at least one.")
    first = int(tf.shape(tf.nest.flatten(next(iter(val_ds.take(1))))[0])[0])
    size = max(replicas, first - first % replicas)
    while size > replicas and 0 < count % size < replicas:
        size -= replicas
    return images.batch(size).prefetch(tf.data.AUTOTUNE)


def train_two_stage(
    model: keras.Model,
    train_ds,
    val_ds,
    *,
    pretrained: bool,
    head_epochs: int,
    fine_tune_epochs: int,
    learning_rate: float,
    class_weight: dict | None = None,
    fine_tune_layers: int | None = None,
    verbose: int | str = "auto",
    checkpoint: TrainingCheckpoint | None = None,
    callbacks: tuple | list = (),
) -> pd.DataFrame:
    """Stage 1 then stage 2; without pretrained weights there is nothing to protect, so the
    whole network trains from the start ("full") and stage 2 is skipped.

    Returns the joined history (a ``stage`` column tells the stages apart). With a
    loaded ``checkpoint`` (and ``train_ds`` an :class:`EpochBatches`), finished stages are
    skipped and the interrupted one continues exactly where it stopped.
    """
    common = dict(
        class_weight=class_weight, verbose=verbose, checkpoint=checkpoint, callbacks=callbacks
    )
    if not pretrained:
        return fit_stage(
            model, train_ds, val_ds, stage="full", epochs=head_epochs, learning_rate=learning_rate, **common
        )
    stages = [
        fit_stage(model, train_ds, val_ds, stage="head", epochs=head_epochs, learning_rate=learning_rate, **common)
    ]
    if fine_tune_epochs > 0:
        stages.append(
            fit_stage(
                model,
                train_ds,
                val_ds,
                stage="fine_tune",
                epochs=fine_tune_epochs,
                learning_rate=learning_rate * FINE_TUNE_LR_FACTOR,
                fine_tune_layers=fine_tune_layers,
                stage_index=1,
                **common,
            )
        )
    history = pd.concat(stages, ignore_index=True)
    history.attrs["trainable_parameters"] = {s.iloc[0]["stage"]: s.attrs["trainable_parameters"] for s in stages}
    return history


def inference_copy(model):
    """The model without its optimizer state: a third of the size on disk after full training."""
    copy = keras.Model.from_config(model.get_config())  # not compiled: no optimizer to save
    copy.set_weights(model.get_weights())
    return copy


def predict_probabilities(model: keras.Model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Class probabilities for uint8 grayscale images of shape (n, size, size)."""

    return model.predict(dataset_from_arrays(images, batch_size=batch_size), verbose=0)


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
    images = to_model_input(images)
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


# Layers kept in float32 under mixed precision: the input scaling and the softmax.
FLOAT32_LAYERS = ("image", "augment", "preprocess", "predictions")


def to_mixed_precision(model):
    """A copy of a classifier that computes in float16 and keeps its variables in float32.

    The ``mixed_float16`` policy of Keras, applied to every layer except the input's
    augmentation and scaling (raw 0..255 pixels stay float32) and the final softmax
    (float32 already), so the probabilities and the loss are computed in float32. The
    copy's own policy is ``mixed_float16`` too, so ``compile`` wraps its optimizer in a
    ``LossScaleOptimizer`` that keeps small float16 gradients from underflowing. Pays off
    on GPUs with tensor cores; on a CPU it is usually slower.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:

        def clone(layer):
            config = layer.get_config()
            config["dtype"] = "float32" if layer.name in FLOAT32_LAYERS else "mixed_float16"
            return layer.__class__.from_config(config)

        copy = keras.models.clone_model(model, clone_function=clone)
    finally:
        keras.config.set_dtype_policy(previous)
    copy.set_weights(model.get_weights())
    return copy


def build_for_comparison(
    backbone: str,
    num_classes: int,
    image_size: int,
    weights,
    *,
    seed: int,
    mixed_precision: bool = False,
    augment: bool = True,
):
    """:func:`covid_tutorial.models.build_classifier`, then optionally :func:`to_mixed_precision`."""
    model = build_classifier(backbone, num_classes, image_size, weights=weights, augment=augment, seed=seed)
    return to_mixed_precision(model) if mixed_precision else model


class ExecutionOptions(keras.callbacks.Callback):
    """Choose how Keras runs the steps of a ``fit``: as a graph (default), XLA-compiled, or eagerly.

    :func:`covid_tutorial.train.fit_stage` compiles the model itself; Keras hands the
    model to the callbacks after that compile and before it builds its train and test
    functions, so the choice made here holds for the whole ``fit``. XLA is off unless
    asked for, also on GPUs, where Keras would otherwise switch it on by itself.
    """

    def __init__(self, run_eagerly: bool = False, jit_compile: bool = False):
        super().__init__()
        self.run_eagerly, self.jit_compile = bool(run_eagerly), bool(jit_compile)

    def set_model(self, model):
        super().set_model(model)
        model.run_eagerly = self.run_eagerly
        model.jit_compile = self.jit_compile and not self.run_eagerly


def distribution_strategy(kind: str | None = None, devices=None) -> tf.distribute.Strategy:
    """How training spreads over the devices of one machine: ``None`` or ``"mirrored"``.

    ``None`` gives TensorFlow's default strategy (one device, nothing changes).
    ``"mirrored"`` gives a ``tf.distribute.MirroredStrategy``: one copy of the model per
    device, each batch split between them, the gradients summed before every update. Its
    devices are ``devices`` (names such as ``"/gpu:0"``, a list or one comma-separated
    string) or every visible GPU. Build and compile the model inside ``strategy.scope()``
    and feed it :func:`global_batch_size` images per step.
    """
    if isinstance(devices, str):
        devices = [name.strip() for name in devices.split(",") if name.strip()]
    if kind is None or str(kind).lower() in ("", "none"):
        if devices:
            raise CourseError(f"devices {devices} were given without a strategy: add --distribute mirrored.")
        return tf.distribute.get_strategy()
    if str(kind).lower() != "mirrored":
        raise CourseError(f"--distribute {kind!r}: the course knows 'mirrored' (several GPUs of one machine).")
    if not devices:
        devices = [device.name for device in tf.config.list_logical_devices("GPU")]
        if not devices:
            raise CourseError(
                "--distribute mirrored: TensorFlow sees no GPU. Leave --distribute out to train on the CPU, "
                "or name the devices with --devices."
            )
    return tf.distribute.MirroredStrategy(devices=list(devices))


def global_batch_size(batch_size: int, strategy: tf.distribute.Strategy | None = None) -> int:
    """Images per training step: ``batch_size`` images for each replica of ``strategy``."""
    strategy = strategy or tf.distribute.get_strategy()
    return int(batch_size) * int(strategy.num_replicas_in_sync)
