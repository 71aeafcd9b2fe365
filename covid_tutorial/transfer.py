"""Transfer learning: where a pretrained backbone comes from, and what it is worth.

:func:`pretrained_source_network` returns the weights a classifier starts from. When
Keras holds the ImageNet weights of the backbone (or may download them), those; when it
cannot (offline, as in CI), a **source network the course pretrains itself**: the same
backbone trained from random weights on a larger, different source set, synthetic chest
X-rays of *other* patients (another seed) labelled for *another* task, "opacity" (any
lesion) against "clear" lungs. It is trained once and cached, keyed by its settings and
by the code of the generator and of this module. This is domain-specific pretraining,
the way a network pretrained on a public chest X-ray collection with other labels would
be reused; it is not ImageNet, and the page that uses it says so.

:func:`data_efficiency_curve` measures what the pretraining buys: on target training
sets of several numbers of patients, the same recipe from the source network (head on a
frozen backbone, then fine-tuning with BatchNorm in inference mode) against the same
backbone trained from scratch, scored on the same test patients with macro F1 and a
patient-bootstrap 95% CI, and the gap between them with a paired bootstrap CI.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from .data import (
    generate_phantoms,
    load_dataset,
    load_images,
    one_hot,
    phantoms,
    validation_rows,
)
from .errors import CourseError
from .feed import EpochBatches, dataset_from_arrays
from .metrics import classification_metrics, patient_bootstrap
from .models import build_classifier, get_backbone
from .system import atomic_path, cache_dir, keras_verbosity, release_memory, time_call, write_json
from .train import (
    class_weights,
    predict_probabilities,
    recalibrate_batchnorm,
    seed_everything,
    train_two_stage,
)

__all__ = [
    "SOURCE_TASK",
    "SOURCE_CLASSES",
    "IMAGENET_NOTOP_FILE",
    "SourceSettings",
    "SourceNetwork",
    "imagenet_weights_cached",
    "source_labels",
    "pretrained_source_network",
    "train_subset",
    "data_efficiency_curve",
]

SOURCE_TASK = "opacity vs clear"
SOURCE_CLASSES = ("clear", "opacity")
IMAGENET_NOTOP_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
_CACHE_KIND = "source_networks"


def imagenet_weights_cached(backbone: str = "ResNet50") -> bool:
    """Whether Keras already holds the ImageNet weights of ``backbone`` (no download needed).

    Only ResNet50's file name is known here; other backbones answer False."""
    if get_backbone(backbone).name != "ResNet50":
        return False
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return (home / "models" / IMAGENET_NOTOP_FILE).is_file()


@dataclasses.dataclass(frozen=True)
class SourceSettings:
    """What the course's own source network is trained on, and how: the cache key."""

    backbone: str = "ResNet50"
    patients: int = 300  # source phantom patients (another seed: none is a target patient)
    image_size: int = 64  # px of the source images and of the network while pretraining
    seed: int = 1  # the phantoms' seed; the target phantoms use 0
    epochs: int = 6
    batch_size: int = 16
    learning_rate: float = 1e-3
    difficulty: float = phantoms.DEFAULT_DIFFICULTY


@dataclasses.dataclass(frozen=True)
class SourceNetwork:
    """The weights a classifier starts from, and what they are.

    ``weights`` goes straight to :func:`covid_tutorial.models.build_classifier`:
    ``"imagenet"`` or the path of the cached backbone weights. ``history`` is the source
    training's epoch table (empty for ImageNet); ``summary`` says what the source set held.
    """

    kind: str  # "imagenet" or "course"
    weights: str
    description: str
    reason: str
    settings: SourceSettings | None = None
    summary: dict = dataclasses.field(default_factory=dict)
    history: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    cached: bool = False  # found in the cache rather than trained in this call
    seconds: float = 0.0  # spent pretraining in this call


def source_labels(labels) -> np.ndarray:
    """The source task's labels from phantom classes: "clear" for Normal, "opacity" for
    any lesion (COVID-19's ground glass and pneumonia's consolidation alike)."""
    return np.where(np.asarray(labels) == "Normal", SOURCE_CLASSES[0], SOURCE_CLASSES[1])


def _code_digest() -> str:
    """The generator's and this module's code: a change to either retrains the source network."""
    digest = hashlib.sha256()
    for path in (Path(phantoms.__file__), Path(__file__)):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _cache_key(settings: SourceSettings) -> str:
    text = json.dumps(dataclasses.asdict(settings), sort_keys=True) + _code_digest() + keras.__version__
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _save_backbone(model: keras.Model, backbone: str, size: int, path: Path) -> None:
    """The backbone part of a trained classifier, as the weights of a bare keras.applications
    backbone (what :func:`~covid_tutorial.models.load_backbone_weights` loads by layer name)."""
    bare = get_backbone(backbone).constructor(include_top=False, weights=None, input_shape=(size, size, 3))
    for layer in bare.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    with atomic_path(path) as tmp:
        bare.save_weights(tmp)


def _train_source(settings: SourceSettings, weights_path: Path, progress: bool) -> dict:
    """Draw the source phantoms, train the backbone on the source task, save its weights."""
    with tempfile.TemporaryDirectory(prefix="source-phantoms-") as folder:
        generate_phantoms(
            Path(folder) / "phantoms", patients=settings.patients, size=max(settings.image_size, 128),
            seed=settings.seed, difficulty=settings.difficulty, progress=progress,
        )
        table = load_dataset(Path(folder) / "phantoms")
        images, table = load_images(table, settings.image_size, progress=progress, cache=False)
    table = table.reset_index(drop=True).assign(label=lambda t: source_labels(t["label"]))
    val = validation_rows(table, settings.seed)
    labels = one_hot(table["label"], SOURCE_CLASSES)
    seed_everything(settings.seed)
    model = build_classifier(settings.backbone, len(SOURCE_CLASSES), settings.image_size, weights=None,
                             seed=settings.seed)
    history = train_two_stage(
        model,
        EpochBatches(images[~val], labels[~val], batch_size=settings.batch_size, seed=settings.seed),
        dataset_from_arrays(images[val], labels[val], batch_size=settings.batch_size),
        pretrained=False, head_epochs=settings.epochs, fine_tune_epochs=0,
        learning_rate=settings.learning_rate,
        class_weight=class_weights(table.loc[~val, "label"], SOURCE_CLASSES),
        verbose=keras_verbosity(progress),
    )
    recalibrate_batchnorm(model, images[~val][:256])  # the statistics a frozen BatchNorm will keep
    probabilities = predict_probabilities(model, images[val])
    accuracy = float(np.mean(probabilities.argmax(1) == labels[val].argmax(1)))
    _save_backbone(model, settings.backbone, settings.image_size, weights_path)
    del model
    release_memory()
    counts = table.assign(part=np.where(val, "val", "train")).groupby(["part", "label"]).size()
    return {
        "task": SOURCE_TASK,
        "patients": int(table["patient_id"].nunique()),
        "images": int(len(table)),
        "images_per_part_and_class": {f"{p} {c}": int(n) for (p, c), n in counts.items()},
        "val_accuracy": accuracy,
        "history": history.to_dict(orient="list"),
    }


def pretrained_source_network(
    settings: SourceSettings | None = None,
    *,
    prefer_imagenet: bool = True,
    download: bool = False,
    progress: bool = False,
) -> SourceNetwork:
    """The pretrained weights a transfer-learning run starts from, with the reason for them.

    ImageNet when Keras holds its weights (``~/.keras/models``), or, with ``download=True``,
    when they can be downloaded; otherwise the course's source network (see the module's
    notes), read from ``cache_dir("source_networks")`` or trained there once (minutes).
    ``prefer_imagenet=False`` always gives the course's source network.
    """
    settings = settings or SourceSettings()
    spec = get_backbone(settings.backbone)
    if prefer_imagenet:
        why = None
        if imagenet_weights_cached(spec.name):
            why = "Keras holds the ImageNet weights on this machine"
        elif download:
            try:
                spec.constructor(include_top=False, weights="imagenet", input_shape=(64, 64, 3))
                why = "the ImageNet weights could be downloaded"
            except Exception:  # offline, a proxy: fall back to the course's source network
                why = None
        if why:
            return SourceNetwork(
                kind="imagenet", weights="imagenet", reason=why,
                description=f"{spec.name} trained on ImageNet (1.28 million photographs, 1000 classes)",
            )
        reason = "no ImageNet weights on this machine (none cached, no download)"
    else:
        reason = "asked for the course's source network"
    folder = cache_dir(_CACHE_KIND)
    key = _cache_key(settings)
    weights_path = folder / f"{spec.name.lower()}-{key}.weights.h5"
    info_path = folder / f"{spec.name.lower()}-{key}.json"
    cached = weights_path.is_file() and info_path.is_file()
    seconds = 0.0
    if not cached:
        result = {}
        seconds = time_call(lambda: result.update(_train_source(settings, weights_path, progress)))
        write_json(info_path, {"settings": dataclasses.asdict(settings), **result, "train_seconds": seconds})
    info = json.loads(info_path.read_text())
    history = pd.DataFrame(info.pop("history"))
    description = (
        f"{spec.name} trained from random weights on {info['images']} synthetic chest X-rays of "
        f"{info['patients']} other patients (phantom seed {settings.seed}, {settings.image_size} px) "
        f"for another task, {SOURCE_TASK}"
    )
    return SourceNetwork(
        kind="course", weights=str(weights_path), description=description, reason=reason,
        settings=settings, summary=info, history=history, cached=cached, seconds=seconds,
    )


def train_subset(table: pd.DataFrame, patients_per_class: int, seed: int = 0) -> np.ndarray:
    """Rows of ``table``'s training split that belong to ``patients_per_class`` patients of
    each class, drawn with ``seed``; a larger subset contains every smaller one."""
    train = table[table["split"] == "train"]
    chosen = []
    for label, group in train.groupby("label", sort=True):
        patients = np.sort(group["patient_id"].unique())
        if patients_per_class > len(patients):
            raise CourseError(
                f"{patients_per_class} training patients per class asked for, but {label} has "
                f"{len(patients)}. Ask for fewer, or use more data."
            )
        order = np.random.default_rng([seed, len(chosen)]).permutation(patients)
        chosen.extend(order[:patients_per_class])
    return (table["split"] == "train").to_numpy() & table["patient_id"].isin(chosen).to_numpy()


def _macro_f1(y_true, probabilities, classes: int) -> float:
    return float(f1_score(y_true, probabilities.argmax(1), labels=range(classes), average="macro", zero_division=0))


def data_efficiency_curve(
    images,
    table: pd.DataFrame,
    class_names,
    source: SourceNetwork,
    *,
    patients_per_class=(3, 10, 30),
    backbone: str = "ResNet50",
    image_size: int = 64,
    head_epochs: int = 4,
    fine_tune_epochs: int = 8,
    scratch_epochs: int | None = None,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Pretrained against from scratch on target training sets of several sizes.

    ``images`` and ``table`` are a split target set (``split``: train/val/test, as
    :func:`covid_tutorial.pipeline.train_run` returns them). For each number of training
    patients per class (:func:`train_subset`), two ResNet50s learn on the same images and
    stop on the same validation patients: one from ``source`` in two stages (head, then
    fine-tuning at a tenth of the learning rate with BatchNorm frozen), one from random
    weights with every layer learning for ``scratch_epochs`` (default: the two stages'
    epochs together). Both are scored on the test patients: one row per (size, start)
    with macro F1, its patient-bootstrap 95% CI, epochs run and seconds;
    ``attrs["gaps"]`` holds pretrained minus scratch per size with a paired bootstrap CI
    (the same resampled patients for both).
    """
    class_names = list(class_names)
    scratch_epochs = scratch_epochs or head_epochs + fine_tune_epochs
    labels = one_hot(table["label"], class_names)
    val, test = (table["split"] == "val").to_numpy(), (table["split"] == "test").to_numpy()
    val_ds = dataset_from_arrays(images[val], labels[val], batch_size=batch_size)
    y_test, groups = labels[test].argmax(1), table.loc[test, "patient_id"].to_numpy()
    rows, gaps = [], []
    for n in patients_per_class:
        rows_n = train_subset(table, n, seed)
        scores = {}
        for start in ("pretrained", "scratch"):
            seed_everything(seed)
            weights = source.weights if start == "pretrained" else None
            model = build_classifier(backbone, len(class_names), image_size, weights=weights, seed=seed)
            started = time.perf_counter()
            history = train_two_stage(
                model, EpochBatches(images[rows_n], labels[rows_n], batch_size=batch_size, seed=seed), val_ds,
                pretrained=start == "pretrained", head_epochs=head_epochs if start == "pretrained" else scratch_epochs,
                fine_tune_epochs=fine_tune_epochs, learning_rate=learning_rate,
                class_weight=class_weights(table.loc[rows_n, "label"], class_names), verbose=0,
            )
            recalibrate_batchnorm(model, images[rows_n])  # from scratch only; frozen layers stay
            seconds = time.perf_counter() - started
            probabilities = predict_probabilities(model, images[test])
            scores[start] = probabilities
            metrics = classification_metrics(y_test, probabilities, class_names, groups=groups,
                                             n_bootstrap=n_bootstrap, seed=seed)
            f1 = metrics[(metrics["class"] == "macro") & (metrics["metric"] == "f1")].iloc[0]
            rows.append({
                "patients_per_class": n, "training_patients": int(table.loc[rows_n, "patient_id"].nunique()),
                "training_images": int(rows_n.sum()), "start": start, "macro_f1": f1["value"],
                "ci_low": f1["ci_low"], "ci_high": f1["ci_high"], "epochs": len(history),
                "best_epoch": int(history["val_loss"].to_numpy().argmin()) + 1, "seconds": seconds,
            })
            del model
            release_memory()
        k = len(class_names)
        gap = _macro_f1(y_test, scores["pretrained"], k) - _macro_f1(y_test, scores["scratch"], k)
        low, high, _ = patient_bootstrap(
            lambda r: _macro_f1(y_test[r], scores["pretrained"][r], k) - _macro_f1(y_test[r], scores["scratch"][r], k),
            len(y_test), groups, n_bootstrap=n_bootstrap, seed=seed,
        )
        gaps.append({"patients_per_class": n, "gap": gap, "ci_low": float(low), "ci_high": float(high)})
    columns = ["patients_per_class", "training_patients", "training_images", "start", "macro_f1", "ci_low",
               "ci_high", "epochs", "best_epoch", "seconds"]
    curve = pd.DataFrame(rows, columns=columns)
    gap_columns = ["patients_per_class", "gap", "ci_low", "ci_high"]
    curve.attrs["gaps"] = pd.DataFrame(gaps, columns=gap_columns).set_index("patients_per_class")
    curve.attrs["test_patients"] = int(len(np.unique(groups)))
    curve.attrs["test_images"] = int(test.sum())
    return curve
