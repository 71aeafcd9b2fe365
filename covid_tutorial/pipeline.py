"""Workflows: the course's steps joined end to end, as the command line runs them.

:func:`train_run` trains a classifier into a RUN folder (its format: :mod:`covid_tutorial.runs`),
:func:`evaluate_run` scores a RUN on any data, :func:`explain_run` draws and measures its
heatmaps, :func:`save_gradcam_overlays` explains single predictions, and :func:`run_demo`
does all of it on the phantoms and writes an HTML report. These are what
``covid-tutorial train``, ``evaluate``, ``explain``, ``predict --gradcam`` and ``demo`` call.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import platform
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix
from sklearn.neighbors import KNeighborsClassifier

from . import __version__
from .data import (
    CLASS_NAMES,
    DEFAULT_DIFFICULTY,
    check_confounders,
    confounder_warning,
    dataset_location,
    ensure_phantoms,
    generate_phantoms,
    load_dataset,
    load_images,
    one_hot,
    split_by_patient,
    splits,
    to_model_input,
)
from .card import write_model_card
from .decisions import TemperatureScaling, decision_report
from .errors import CourseError, DataError, RunError
from .explain import (
    GradCAM,
    compute_heatmaps,
    explanation_quality,
    layer_with_cells,
    load_masks,
    probability_function,
    summarize_quality,
)
from .feed import EpochBatches, dataset_from_arrays
from .figures import (
    draw_mask_outline,
    figure_to_png,
    overlay_heatmap,
    plot_calibration_change,
    plot_confusion_matrix,
    plot_decision_curve,
    plot_image_grid,
    plot_risk_coverage,
    plot_roc_curves,
    plot_training_curves,
    save_decision_figures,
    save_evaluation_figures,
    write_html_report,
)
from .metrics import classification_metrics, metrics_wide
from .models import (
    build_classifier,
    get_backbone,
)
from .predict import Predictor
from .profiles import TrainingSettings, get_profile
from .runs import (
    TRAINING_SETTINGS,
    Evaluation,
    LoadedRun,
    RunConfig,
    check_same_split,
    load_run,
    read_run_config,
    read_splits,
    trained_or_validated_digests,
    write_calibration,
    write_confounder_check,
    write_evaluation,
    write_run_config,
    write_splits,
)
from .system import device_name, keras_verbosity, refuse_output_inside, release_memory, sha1_of_file
from .train import (
    TrainingCheckpoint,
    class_weights,
    distribution_strategy,
    global_batch_size,
    inference_copy,
    predict_probabilities,
    seed_everything,
    train_two_stage,
)

__all__ = [
    "train_run",
    "score_predictions",
    "evaluate_split",
    "evaluate_run",
    "gradcam_gallery",
    "run_demo",
    "calibrate_phantoms",
    "explain_run",
    "save_gradcam_overlays",
]


def _say(step: str, progress: bool) -> None:
    if progress:
        print(f"==> {step}", flush=True)


def _settings_for_new_run(out: Path, profile, requested: dict, overwrite: bool) -> TrainingSettings:
    checkpoint_dir = out / "checkpoint"
    if not overwrite and ((out / "config.json").exists() or checkpoint_dir.exists()):
        state = "an unfinished training" if checkpoint_dir.exists() else "a run"
        raise RunError(
            f"{out}: the folder already holds {state}. Add --resume to continue it, --overwrite to "
            "start again from scratch, or choose another --out."
        )
    options = {key: value for key, value in requested.items() if key != "backbone"}
    settings = TrainingSettings.resolve(profile, backbone=get_backbone(requested["backbone"] or "resnet50"), **options)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)  # never resume an older run by accident
    return settings


def _settings_for_resume(out: Path, requested: dict) -> TrainingSettings:
    config = read_run_config(out)
    if config.status == "complete":
        raise RunError(
            f"{out}: this run finished training; there is nothing to resume. Evaluate it "
            f"(`covid-tutorial evaluate {out} DATA`) or train a new run in another folder."
        )
    settings = config.training
    if requested["backbone"] is not None:
        requested = {**requested, "backbone": get_backbone(requested["backbone"]).name}
    clashes = [
        f"{key} {requested[key]} (the run has {getattr(settings, key)})"
        for key in TRAINING_SETTINGS
        if requested.get(key) is not None and requested[key] != getattr(settings, key)
    ]
    if clashes:
        raise RunError(
            f"{out}: --resume continues a run with its own settings, but you asked for "
            + ", ".join(clashes)
            + ". Leave those options out to resume, or train a new run in another folder."
        )
    return settings


def _write_evaluation(out, evaluation: Evaluation, class_names, extra: dict) -> None:
    """The evaluation's files (:func:`covid_tutorial.runs.write_evaluation`) and its figures."""
    write_evaluation(out, evaluation, class_names, extra)
    save_evaluation_figures(Path(out) / "figures", evaluation, class_names)
    if evaluation.decisions is not None:
        save_decision_figures(Path(out) / "figures", evaluation.decisions, evaluation, class_names)


@dataclasses.dataclass(frozen=True, eq=False)
class _PreparedRun:
    """A run about to train: its folder, data and settings, and the table of its images, split,
    with the decoded images in the table's order."""

    out: Path
    data: Path
    settings: TrainingSettings
    table: pd.DataFrame
    images: np.ndarray
    class_names: list[str]

    def rows(self, split: str) -> np.ndarray:
        return (self.table["split"] == split).to_numpy()


def train_run(
    data,
    out,
    *,
    backbone: str | None = None,
    profile=None,
    image_size: int | None = None,
    batch_size: int | None = None,
    head_epochs: int | None = None,
    fine_tune_epochs: int | None = None,
    fine_tune_layers: int | None = None,
    seed: int | None = None,
    learning_rate: float | None = None,
    label_map: dict | None = None,
    classes=None,
    collection: str | None = None,
    split: str = "patient",
    progress: bool = True,
    image_dir=None,
    unmapped: str = "error",
    resume: bool = False,
    overwrite: bool = True,
    checkpoints: bool = True,
    evaluate: bool = False,
    callbacks: tuple | list = (),
    model=None,
    distribute: str | None = None,
    devices=None,
) -> dict:
    """Load ``data``, split it by patient, train a classifier and save a RUN folder in ``out``.

    The RUN holds ``config.json`` (classes, image size, preprocessing, backbone, training
    settings, versions), ``splits.csv`` (every image with its patient, split and content
    digest), ``history.csv`` and ``model.keras``; with ``evaluate=True`` also the scores on
    the held-out test patients (:func:`covid_tutorial.runs.write_evaluation`). While training,
    ``checkpoint/`` holds the last epoch's state; ``resume=True`` continues from it with
    the settings of the interrupted run and reaches the same weights an uninterrupted run
    would have (the folder is removed when training ends). ``overwrite=False`` refuses to
    start over in a folder that holds a run. Defaults come from the profile
    (:meth:`~covid_tutorial.profiles.TrainingSettings.resolve`); the backbone's default is
    ResNet50 and the seed's 0. ``model``: a classifier made by
    :func:`~covid_tutorial.models.build_classifier` with these settings, to train instead
    of building a new one (a notebook that has already built one saves the memory).
    ``distribute="mirrored"`` trains on every visible GPU (or ``devices``) at once, with
    ``batch_size`` images per device (:func:`~covid_tutorial.train.distribution_strategy`).

    Returns a dict: ``model`` (the trained classifier, for prediction), ``table`` (every
    image with its split), ``images``, ``history``, ``config`` (:class:`~covid_tutorial.runs.RunConfig`)
    and, with ``evaluate=True``, ``evaluation`` (:class:`~covid_tutorial.runs.Evaluation`).
    """
    profile = get_profile(profile)
    out, data = Path(out), Path(data)
    refuse_output_inside(out, dataset_location(data))
    requested = {
        "backbone": backbone, "image_size": image_size, "batch_size": batch_size, "head_epochs": head_epochs,
        "fine_tune_epochs": fine_tune_epochs, "fine_tune_layers": fine_tune_layers, "seed": seed,
        "learning_rate": learning_rate,
    }  # fmt: skip
    if resume:
        if not checkpoints or model is not None:
            raise ValueError("resume=True needs checkpoints=True and no model (it loads the checkpoint's)")
        settings = _settings_for_resume(out, requested)
    else:
        settings = _settings_for_new_run(out, profile, requested, overwrite)
    out.mkdir(parents=True, exist_ok=True)

    reading = dict(collection=collection, classes=classes, label_map=label_map, unmapped=unmapped)
    run = _prepare_table(out, data, settings, image_dir, reading, split=split, resume=resume, progress=progress)
    config = _starting_config(run, label_map=label_map, collection=collection)
    model, checkpoint, strategy = _build_or_resume(
        run, model, checkpoints=checkpoints, resume=resume, distribute=distribute, devices=devices, progress=progress
    )
    history = _fit(run, model, strategy, checkpoint, callbacks, progress)
    return _finish(run, config, model, history, evaluate=evaluate, progress=progress)


def _prepare_table(out: Path, data: Path, settings: TrainingSettings, image_dir, reading: dict, *, split: str,
                   resume: bool, progress: bool) -> _PreparedRun:  # fmt: skip
    """Step 1: read the data, warn about shortcuts, split by patient (or publisher), decode the
    images and record the split in ``splits.csv`` (on resume: check it is the same)."""
    _say(f"Loading {data}", progress)
    table = load_dataset(data, image_dir, **reading)
    task = table.attrs.get("classes", CLASS_NAMES)  # the task's classes, in output order
    check = check_confounders(table, max_patients_per_class=200, progress=False)
    shortcut = confounder_warning(check)
    if shortcut:
        print(shortcut, flush=True)
    seed = settings.seed
    table = splits.split_by_publisher(table, seed=seed) if split == "publisher" else split_by_patient(table, seed=seed)
    class_names = [name for name in task if name in set(table["label"])]
    images, table = load_images(table, settings.image_size, progress=progress)
    table = table.reset_index(drop=True)
    table.insert(4, "sha1", [sha1_of_file(path) for path in table["path"]])
    if resume:
        check_same_split(out, table)
    else:
        write_splits(out, table)
        write_confounder_check(out, check)
    if progress:
        print(table.groupby(["split", "label"]).size().unstack(fill_value=0).to_string(), flush=True)
    return _PreparedRun(out, data, settings, table, images, class_names)


def _starting_config(run: _PreparedRun, *, label_map, collection) -> RunConfig:
    """``config.json`` as training starts (status "training"): the RUN describes itself from the first epoch."""
    import keras
    import tensorflow as tf

    spec = get_backbone(run.settings.backbone)
    config = RunConfig(
        class_names=tuple(run.class_names),
        backbone=spec.name,
        image_size=run.settings.image_size,
        preprocessing=spec.preprocessing,
        training=run.settings,
        data=str(run.data),
        label_map=label_map,
        collection=collection,
        versions={
            "covid_tutorial": __version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "python": platform.python_version(),
        },
    )
    write_run_config(run.out, config)
    return config


def _checkpoint_fingerprint(run: _PreparedRun, replicas: int) -> dict:
    """What a resume must share with the run it continues: the settings, the classes, the training images."""
    fingerprint = {
        **{key: getattr(run.settings, key) for key in TRAINING_SETTINGS},
        "class_names": run.class_names,
        "training_images": hashlib.sha1("".join(run.table.loc[run.rows("train"), "sha1"]).encode()).hexdigest(),
    }
    if replicas > 1:  # another global batch: another training
        fingerprint["replicas"] = replicas
    return fingerprint


def _build_or_resume(run: _PreparedRun, model, *, checkpoints: bool, resume: bool, distribute, devices, progress: bool):
    """Step 2: the network to train (the checkpoint's on resume, the caller's ``model``, or a new
    one) with the checkpoint that saves every epoch and the distribution strategy."""
    settings, size, classes = run.settings, run.settings.image_size, len(run.class_names)
    strategy = distribution_strategy(distribute, devices)
    fingerprint = _checkpoint_fingerprint(run, strategy.num_replicas_in_sync)
    checkpoint = TrainingCheckpoint(run.out / "checkpoint", fingerprint) if checkpoints else None
    seed_everything(settings.seed)
    if resume:
        checkpoint.load()
        _say(f"Resuming {settings.backbone} from the checkpoint after {checkpoint.describe()}", progress)
        with strategy.scope():
            model = checkpoint.load_model()
    elif model is not None:
        if strategy.num_replicas_in_sync > 1 and model.distribute_strategy is not strategy:
            raise ValueError("distribute= needs the model built here (no model=): its variables must be mirrored")
        if tuple(model.input_shape[1:3]) != (size, size) or model.output_shape[-1] != classes:
            raise ValueError(
                f"the model takes {model.input_shape[1:3]} px and predicts {model.output_shape[-1]} classes; "
                f"this run needs {size} px and {classes} classes"
            )
    else:
        _say(f"Building {settings.backbone} at {size}px (weights: {settings.weights})", progress)
        with strategy.scope():
            model = build_classifier(settings.backbone, classes, size, weights=settings.weights, seed=settings.seed)
    return model, checkpoint, strategy


def _fit(run: _PreparedRun, model, strategy, checkpoint, callbacks, progress: bool) -> pd.DataFrame:
    """Step 3: the two-stage recipe (one stage without it) on the training split, validated on the validation split."""
    settings, train, val = run.settings, run.rows("train"), run.rows("val")
    labels = one_hot(run.table["label"], run.class_names)
    step_batch = global_batch_size(settings.batch_size, strategy)
    train_batches = EpochBatches(run.images[train], labels[train], batch_size=step_batch, seed=settings.seed)
    val_ds = dataset_from_arrays(run.images[val], labels[val], batch_size=step_batch)
    _say(f"Training on {device_name()}", progress)
    return train_two_stage(
        model,
        train_batches,
        val_ds,
        pretrained=settings.two_stages,
        head_epochs=settings.head_epochs,
        fine_tune_epochs=settings.fine_tune_epochs,
        learning_rate=settings.learning_rate,
        class_weight=class_weights(run.table.loc[train, "label"], run.class_names),
        fine_tune_layers=settings.fine_tune_layers,
        verbose=keras_verbosity(progress),
        checkpoint=checkpoint,
        callbacks=callbacks,
    )


def _finish(run: _PreparedRun, config: RunConfig, model, history: pd.DataFrame, *, evaluate: bool,
            progress: bool) -> dict:  # fmt: skip
    """Step 4: save the history and the model, mark the RUN complete, drop the checkpoint and,
    with ``evaluate``, score the test patients."""
    out = run.out
    history.to_csv(out / "history.csv", index=False)
    # From here on the model only predicts: hand back a copy without the optimizer state and
    # the compiled training functions, so that their memory can be reused (Binder has 2 GB).
    model = inference_copy(model)
    release_memory()
    model.save(out / "model.keras")
    trainable = history.attrs.get("trainable_parameters")
    if isinstance(trainable, (int, np.integer)):
        trainable = {str(history["stage"].iloc[0]): int(trainable)}
    config = dataclasses.replace(config, status="complete", trainable_parameters=trainable, epochs_trained=len(history))
    scaling = _fit_temperature(run, model, progress)
    write_run_config(out, config)
    shutil.rmtree(out / "checkpoint", ignore_errors=True)  # a finished run has nothing to resume
    result = {"model": model, "table": run.table, "images": run.images, "history": history, "config": config,
              "calibration": scaling}
    if evaluate:
        _say("Evaluating on held-out patients", progress)
        evaluation = evaluate_split(
            model, run.images, run.table, run.class_names, n_bootstrap=run.settings.bootstrap_rounds,
            seed=run.settings.seed, calibration=scaling,
        )  # fmt: skip
        _write_evaluation(out, evaluation, run.class_names, {"data": str(run.data), "scored": "the RUN's test split"})
        result["evaluation"] = evaluation
        if progress:
            print(metrics_wide(evaluation.metrics).to_string(), flush=True)
    _say(f"RUN folder: {out.resolve()}", progress)
    return result


def _fit_temperature(run: _PreparedRun, model, progress: bool) -> TemperatureScaling | None:
    """Temperature scaling fitted on the validation patients, written to calibration.json."""
    val = run.rows("val")
    if not val.any():
        return None
    probabilities = predict_probabilities(model, run.images[val], batch_size=8)
    y_val = [run.class_names.index(label) for label in run.table.loc[val, "label"]]
    scaling = TemperatureScaling.fit(y_val, probabilities, run.table.loc[val, "patient_id"].to_numpy())
    write_calibration(run.out, scaling)
    _say(f"Calibration: {scaling}", progress)
    return scaling


def score_predictions(probabilities, images, table, class_names, *, n_bootstrap=1000, seed=0,
                      calibration: TemperatureScaling | None = None, by=()) -> Evaluation:
    """An :class:`~covid_tutorial.runs.Evaluation`: metrics with bootstrap CIs over the patients
    of ``table``, the confusion matrix, the inputs kept beside them for figures and galleries,
    and what the scores mean for decisions (:func:`~covid_tutorial.decisions.decision_report`,
    auditing the columns of ``table`` named in ``by``). ``probabilities`` are the model's own;
    with ``calibration`` (the RUN's temperature) the scores are of the calibrated ones."""
    y_true = np.array([class_names.index(label) for label in table["label"]])
    uncalibrated = probabilities if calibration is not None else None
    probabilities = calibration.apply(probabilities) if calibration is not None else probabilities
    patients = table["patient_id"].to_numpy()
    metrics = classification_metrics(
        y_true, probabilities, class_names, groups=patients, n_bootstrap=n_bootstrap, seed=seed
    )
    decisions = decision_report(
        y_true, probabilities, class_names, patients, uncalibrated=uncalibrated, scaling=calibration,
        metadata=table.reset_index(drop=True), by=by, n_bootstrap=n_bootstrap, seed=seed,
    )  # fmt: skip
    return Evaluation(
        metrics=metrics,
        confusion=confusion_matrix(y_true, probabilities.argmax(1), labels=range(len(class_names))),
        y_true=y_true,
        probabilities=probabilities,
        images=images,
        table=table,
        uncalibrated=uncalibrated,
        decisions=decisions,
    )


def evaluate_split(
    model, images, table, class_names, *, split="test", n_bootstrap=1000, seed=0, batch_size=8,
    calibration: TemperatureScaling | None = None, by=(),
) -> Evaluation:
    """Predict one split and score it with bootstrap CIs over patients. Small batches keep
    the memory low (a 224-px ResNet50 batch of 32 needs a few hundred MB more than one of 8)."""
    rows = (table["split"] == split).to_numpy()
    probabilities = predict_probabilities(model, images[rows], batch_size=batch_size)
    return score_predictions(probabilities, images[rows], table[rows], class_names, n_bootstrap=n_bootstrap, seed=seed,
                             calibration=calibration, by=by)


def evaluate_run(
    run,
    data,
    *,
    image_dir=None,
    label_map: dict | None = None,
    collection: str | None = None,
    unmapped: str = "error",
    out=None,
    n_bootstrap: int | None = None,
    seed: int = 0,
    by=(),
    progress: bool = True,
) -> Evaluation:
    """Score a trained RUN on ``data`` (any dataset the loader reads) and write the results.

    Images the RUN was trained or validated on (same file content, whatever their name)
    are left out, so scoring the training data scores only its held-out test patients.
    Writes :func:`covid_tutorial.runs.write_evaluation` and the figures into ``out`` (default: the RUN folder). Labels are read
    into the RUN's task (its classes) with the RUN's label map unless ``label_map`` is given;
    a class of the task that ``data`` lacks is reported as absent and left out of the
    macro averages. The RUN's temperature (calibration.json), when it has one, is applied to
    the probabilities; the decision curve, calibration, referral table and, for each column
    named in ``by``, a subgroup audit are written beside the metrics.
    """

    loaded = run if isinstance(run, LoadedRun) else load_run(run)
    class_names = loaded.class_names
    out = Path(out) if out is not None else loaded.folder
    _say(f"Loading {data}", progress)
    table = load_dataset(
        data, image_dir, collection=collection, classes=class_names,
        label_map=loaded.config.label_map if label_map is None else label_map, unmapped=unmapped,
    )  # fmt: skip
    unknown = sorted(set(table["label"]) - set(class_names))
    if unknown:
        raise DataError(
            f"{data}: labels {unknown} are not among the {len(class_names)} classes this RUN was trained on "
            f"({class_names}). Evaluate on data with those classes, drop the others with a label map, "
            "or train a run that knows them."
        )
    table["sha1"] = [sha1_of_file(path) for path in table["path"]]
    used = table["sha1"].isin(trained_or_validated_digests(loaded.folder))
    if used.all():
        raise DataError(
            f"{data}: every image was used to train or validate this RUN, so no score on them would be "
            "honest. Evaluate on the RUN's training data (its test patients are kept) or on other data."
        )
    if used.any():
        _say(f"Left out {int(used.sum())} image(s) the RUN was trained or validated on; scoring the other "
             f"{int((~used).sum())} (held-out patients).", progress)
    missing = [column for column in by if column not in table.columns]
    if missing:  # said before the images are read, not after
        have = [c for c in table.columns if c not in ("path", "label", "mask_path", "sha1")]
        raise DataError(f"{data}: no column {', '.join(map(repr, missing))} to audit by (--by); these data have "
                        f"{', '.join(have)}")
    images, table = load_images(table[~used], loaded.image_size, progress=progress)
    table = table.reset_index(drop=True)
    probabilities = Predictor(loaded.model, class_names, loaded.image_size).predict_arrays(images)
    rounds = n_bootstrap if n_bootstrap is not None else loaded.config.training.bootstrap_rounds
    evaluation = score_predictions(probabilities, images, table, class_names, n_bootstrap=rounds, seed=seed,
                                   calibration=loaded.calibration, by=by)
    scored = "held-out images of the RUN's own data" if used.any() else "all images (not used in training)"
    _write_evaluation(out, evaluation, class_names, {"data": str(data), "scored": scored, "left_out": int(used.sum())})
    if progress:
        print(evaluation, flush=True)
        print(evaluation.decisions, flush=True)
    _say(f"Wrote metrics.json, metrics.csv, predictions.csv, decisions.json and its tables, and figures/ to "
         f"{out.resolve()}", progress)
    return evaluation


def gradcam_gallery(model, evaluation, class_names, per_class: int = 2):
    """Overlays of the predicted class's Grad-CAM for a few test images of each true class, one
    column per class, the wrong predictions first so that the errors are there to look at. The
    maps come from the deepest stage with at least 8x8 cells: coarser ones cannot place a lesion."""
    cam = GradCAM(model, layer_with_cells(model, 8))
    y_true, probabilities = evaluation.y_true, evaluation.probabilities
    predicted_all = probabilities.argmax(1)
    columns = [
        sorted(np.flatnonzero(y_true == k), key=lambda i: predicted_all[i] == k)[:per_class]
        for k in range(len(class_names))
    ]
    picks = [column[row] for row in range(per_class) for column in columns if row < len(column)]
    images = evaluation.images[picks]
    predicted = probabilities[picks].argmax(1)
    rgb = np.repeat(images[..., None], 3, axis=-1).astype(np.float32)
    heatmaps = cam(rgb, predicted)
    overlays = [overlay_heatmap(image, heatmap) for image, heatmap in zip(images, heatmaps)]
    titles = [
        f"true {class_names[y_true[i]]}\npredicted {class_names[p]} ({probabilities[i, p]:.2f})"
        + ("" if p == y_true[i] else "\nWRONG")
        for i, p in zip(picks, predicted)
    ]
    return overlays, titles, cam.layer_name


def run_demo(out="runs/demo", profile=None, *, progress: bool = True) -> Path:
    """The whole course in one call: phantoms, patient split, ResNet50, metrics with CIs, Grad-CAM, report."""
    profile = get_profile(profile)
    out = Path(out)
    _say(f"Profile '{profile.name}': {profile.description}", progress)
    _say("Making the embedded phantom dataset (skipped when it exists)", progress)
    data = ensure_phantoms(profile, progress=progress)
    run = train_run(data, out, backbone="resnet50", profile=profile, progress=progress, evaluate=True)
    config, evaluation = run["config"], run["evaluation"]
    class_names, metrics = list(config.class_names), evaluation.metrics
    _say("Grad-CAM and report", progress)
    overlays, titles, layer = gradcam_gallery(run["model"], evaluation, class_names)
    plots = {
        "confusion_matrix": plot_confusion_matrix(evaluation.confusion, class_names),
        "roc_curves": plot_roc_curves(evaluation.y_true, evaluation.probabilities, class_names),
        "training_curves": plot_training_curves(run["history"]),
        "gradcam_grid": plot_image_grid(overlays, titles, columns=len(class_names), size=3.0),
        "decision_curve": plot_decision_curve(evaluation.decisions.curve),
        "risk_coverage": plot_risk_coverage(evaluation.decisions.referral),
    }
    if evaluation.uncalibrated is not None:
        plots["calibration"] = plot_calibration_change(evaluation.y_true, evaluation.uncalibrated,
                                                       evaluation.probabilities, run["calibration"].temperature)
    for name in ("training_curves", "gradcam_grid"):
        figure_to_png(plots[name], out / "figures" / f"{name}.png")
    split_counts = run["table"].groupby(["split", "label"])["patient_id"].agg(["nunique", "size"])
    split_counts.columns = ["patients", "images"]
    settings = pd.json_normalize(config.to_json(), sep=".").T.reset_index()
    settings.columns = ["setting", "value"]
    report = write_html_report(
        out / "report.html",
        f"COVID-19 tutorial demo: {config.backbone} on the phantoms (profile {profile.name})",
        [
            ("Data and patient-wise split", split_counts.reset_index()),
            (
                f"Metrics on {metrics.attrs['n_patients']} held-out patients "
                f"({metrics.attrs['n_images']} images), 95% bootstrap CI over patients",
                metrics_wide(metrics),
            ),
            ("Confusion matrix", plots["confusion_matrix"]),
            ("ROC curves", plots["roc_curves"]),
            ("Training curves", plots["training_curves"]),
            (f"Grad-CAM of the predicted class (layer {layer})", plots["gradcam_grid"]),
            ("Decision curve: " + str(evaluation.decisions.curve).split("\n", 1)[1], plots["decision_curve"]),
            *([("Calibration: " + str(evaluation.decisions.calibration), plots["calibration"])] if "calibration" in plots else []),
            ("Referral of the least confident cases", plots["risk_coverage"]),
            ("Referral at fixed coverage", evaluation.decisions.referral.table),
            ("Configuration", settings),
        ],
    )
    write_model_card(out)
    macro_f1 = metrics.set_index(["class", "metric"]).loc[("macro", "f1")]
    _say(f"Macro F1 on held-out patients: {macro_f1['value']:.3f} "
         f"[{macro_f1['ci_low']:.3f}, {macro_f1['ci_high']:.3f}]", progress)
    _say(f"Report: {report.resolve()}; model card and reporting checklist: {(out / 'model_card.md').resolve()}", progress)
    return report


def _thumbnail_lookup(table: pd.DataFrame, size: int = 32) -> np.ndarray:
    """One-hot answers of a 1-nearest-neighbour lookup on ``size``-px thumbnails: every test
    image gets the label of the training image whose pixels are closest."""
    thumbnails, table = load_images(table, size, progress=False)
    thumbnails = thumbnails.reshape(len(table), -1).astype("float32")
    train, test = (table["split"] == "train").to_numpy(), (table["split"] == "test").to_numpy()
    lookup = KNeighborsClassifier(1).fit(thumbnails[train], table.loc[train, "label"])
    answers = lookup.predict(thumbnails[test])
    return (answers[:, None] == np.array(CLASS_NAMES)[None, :]).astype("float32")


def calibrate_phantoms(out, difficulties=(0.0, DEFAULT_DIFFICULTY, 1.0), profile=None, *,
                       progress: bool = True) -> pd.DataFrame:
    """How hard the phantoms are: the demo's network (the profile's settings, its phantom set's
    size and seed) against a 1-nearest-neighbour lookup on 32-px thumbnails, on the same held-out
    patients, at each difficulty and, at the default, with the lesions left out (the control,
    which must score at chance). Writes phantoms and RUNs under ``out`` and ``calibration.csv``."""
    profile = get_profile(profile)
    out = Path(out)
    trials = [(float(level), True) for level in difficulties] + [(DEFAULT_DIFFICULTY, False)]
    rows = []
    for level, lesions in trials:
        name = f"difficulty-{level:g}" + ("" if lesions else "-no-lesions")
        _say(f"Phantoms at difficulty {level:g}{'' if lesions else ', lesions left out'}", progress)
        generate_phantoms(out / name / "phantoms", patients=profile.phantom_patients, size=profile.phantom_size,
                          seed=0, difficulty=level, lesions=lesions, progress=progress)  # fmt: skip
        run = train_run(out / name / "phantoms", out / name / "run", profile=profile, evaluate=True,
                        checkpoints=False, progress=progress)  # fmt: skip
        table = run["table"]
        test = table[table["split"] == "test"]
        lookup = score_predictions(_thumbnail_lookup(table), None, test, list(CLASS_NAMES),
                                   n_bootstrap=run["config"].training.bootstrap_rounds)  # fmt: skip
        for model, evaluation in (("network", run["evaluation"]), ("1-NN on 32-px thumbnails", lookup)):
            macro = evaluation.metrics.set_index(["class", "metric"]).loc[("macro", "f1")]
            rows.append({"difficulty": level, "lesions": lesions, "model": model, "macro F1": macro["value"],
                         "CI low": macro["ci_low"], "CI high": macro["ci_high"],
                         "test patients": test["patient_id"].nunique()})  # fmt: skip
        release_memory()
    result = pd.DataFrame(rows)
    result.to_csv(out / "calibration.csv", index=False, float_format="%.3f")
    return result


def _select_images(run: Path, data, split: str, reading: dict) -> tuple[pd.DataFrame, str]:
    """Rows of ``data`` to explain: the RUN's ``split`` when the RUN was trained on ``data``.

    Images are matched to the RUN's ``splits.csv`` by content (SHA-1) when it records it,
    else by path, so a renamed or moved copy of the same data still finds its split.
    """

    table = load_dataset(data, **reading)
    saved = read_splits(run)
    if saved is not None:
        if "sha1" in saved.columns:
            keys, where = table["path"].map(sha1_of_file), dict(zip(saved["sha1"], saved["split"]))
        else:
            keys = table["path"].map(os.path.realpath)
            where = dict(zip(saved["path"].map(os.path.realpath), saved["split"]))
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
    image_dir=None,
    label_map: dict | None = None,
    collection: str | None = None,
    unmapped: str = "error",
    progress: bool = True,
) -> pd.DataFrame:
    """Explain a trained RUN on ``data``: overlays (PNG) and the quality table (CSV).

    Writes ``out/overlays/<method>/*.png`` (heatmap of the explained class over the image,
    lesion outline in white), ``out/explanation_per_image.csv`` and
    ``out/explanation_quality.csv`` (:func:`summarize_quality`); returns the latter.
    ``target``: "true" explains each image's true class, "predicted" the predicted one.
    """

    run, out = Path(run), Path(out)
    refuse_output_inside(out, dataset_location(data))
    if target not in ("true", "predicted"):
        raise ValueError("target must be 'true' or 'predicted'")
    loaded = load_run(run)
    model, class_names, size = loaded.model, loaded.class_names, loaded.image_size
    reading = dict(
        images=image_dir, collection=collection, classes=class_names, unmapped=unmapped,
        label_map=loaded.config.label_map if label_map is None else label_map,
    )  # fmt: skip
    table, where = _select_images(run, data, split, reading)
    table = table[table["label"].isin(class_names)]
    if per_class:
        table = table.groupby("label", sort=False).head(per_class)
    table = table.reset_index(drop=True)
    if progress:
        print(f"==> Explaining {len(table)} images ({where}) with {', '.join(methods)}", flush=True)
    images, table = load_images(table, size, progress=False)
    table = table.reset_index(drop=True)
    masks = (
        load_masks(table, size)
        if "mask_path" in table.columns
        else np.zeros(images.shape, dtype=bool)
    )
    probabilities = probability_function(model)(to_model_input(images))
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


def save_gradcam_overlays(predictor: Predictor, paths, predicted, out_dir) -> list[Path]:
    """Grad-CAM of each image's predicted class, blended over the image, as PNG files in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = predictor.load_files(paths)
    index = [predictor.class_names.index(name) for name in predicted]
    heatmaps = GradCAM(predictor.model)(images, index)
    written = []
    for number, (path, image, heatmap, name) in enumerate(zip(paths, images, heatmaps, predicted)):
        target = out_dir / f"{number:03d}_{Path(path).stem}_gradcam_{name}.png"
        cv2.imwrite(str(target), cv2.cvtColor(overlay_heatmap(image, heatmap), cv2.COLOR_RGB2BGR))
        written.append(target)
    return written
