"""Training: the recipe of the source articles, as small functions.

Adam (1e-4 with ImageNet weights), categorical cross-entropy with label smoothing,
ReduceLROnPlateau (factor 0.5, patience 3, min_delta 1e-4), early stopping that
restores the best validation weights, class weights against imbalance, a seed for
everything, and the history saved as CSV. Transfer learning runs in two stages:
the new head on a frozen backbone, then the top blocks fine-tuned at a tenth of the
learning rate with BatchNorm kept in inference mode.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pandas as pd
from sklearn.utils.class_weight import compute_class_weight

from .models import set_trainable_stage

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


def training_callbacks(out_dir: Path | None, patience: int = 6, verbose: int = 0) -> list:
    callbacks = [
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=3, min_delta=1e-4, verbose=verbose
        ),
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=patience, min_delta=1e-4, restore_best_weights=True
        ),
    ]
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        callbacks.append(
            keras.callbacks.ModelCheckpoint(
                out_dir / "best.weights.h5", monitor="val_loss", save_best_only=True, save_weights_only=True
            )
        )
    return callbacks


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
    out_dir: Path | None = None,
    verbose: int | str = "auto",
) -> pd.DataFrame:
    """Set the trainable layers for ``stage``, recompile, fit; return the history as a table."""
    trainable = set_trainable_stage(model, stage, fine_tune_layers)
    compile_classifier(model, learning_rate)
    if verbose:
        print(f"Stage '{stage}': {trainable:,} trainable parameters, learning rate {learning_rate:g}")
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=epochs,
        class_weight=class_weight,
        callbacks=training_callbacks(out_dir),
        verbose=verbose,
    )
    table = pd.DataFrame(history.history)
    table.insert(0, "epoch", np.arange(1, len(table) + 1))
    table.insert(0, "stage", stage)
    table.attrs["trainable_parameters"] = trainable
    return table


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
    out_dir: Path | None = None,
    verbose: int | str = "auto",
) -> pd.DataFrame:
    """Stage 1 then stage 2; without pretrained weights there is nothing to protect, so the
    whole network trains from the start ("full") and stage 2 is skipped.

    Returns the joined history (a ``stage`` column tells the stages apart).
    """
    common = dict(class_weight=class_weight, out_dir=out_dir, verbose=verbose)
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
                **common,
            )
        )
    history = pd.concat(stages, ignore_index=True)
    history.attrs["trainable_parameters"] = {s.iloc[0]["stage"]: s.attrs["trainable_parameters"] for s in stages}
    return history


def predict_probabilities(model: keras.Model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Class probabilities for uint8 grayscale images of shape (n, size, size)."""
    from .data import dataset_from_arrays

    return model.predict(dataset_from_arrays(images, batch_size=batch_size), verbose=0)
