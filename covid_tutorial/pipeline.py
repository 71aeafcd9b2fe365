"""Pipeline: the course's steps joined end to end, as the command line runs them.

A RUN folder describes itself: ``config.json`` (classes, image size, preprocessing,
backbone, versions), ``model.keras``, ``history.csv``, ``splits.csv`` and, after
evaluation, ``metrics.json``, ``metrics.csv`` and ``report.html``.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .data import CLASS_NAMES, dataset_from_arrays, ensure_phantoms, load_dataset, load_images, one_hot, split_by_patient
from .errors import DataError
from .explain import GradCAM, overlay_heatmap
from .metrics import classification_metrics, metrics_to_json, metrics_wide
from .models import build_classifier, get_backbone
from .profiles import get_profile
from .report import (
    figure_to_png,
    plot_confusion_matrix,
    plot_image_grid,
    plot_roc_curves,
    plot_training_curves,
    write_html_report,
)
from .train import class_weights, predict_probabilities, seed_everything, train_two_stage


def _say(step: str, progress: bool) -> None:
    if progress:
        print(f"==> {step}", flush=True)


def _refuse_inside(out: Path, data: Path) -> None:
    data_dir = data if data.is_dir() else data.parent
    if out.resolve().is_relative_to(data_dir.resolve()):
        raise DataError(
            f"{out}: the output folder is inside the data folder {data_dir}; the course never "
            "writes into input data. Choose an output folder elsewhere (--out)."
        )


def train_run(
    data,
    out,
    *,
    backbone: str = "resnet50",
    profile=None,
    image_size: int | None = None,
    batch_size: int | None = None,
    head_epochs: int | None = None,
    fine_tune_epochs: int | None = None,
    fine_tune_layers: int | None = None,
    seed: int = 0,
    label_map: dict | None = None,
    progress: bool = True,
) -> dict:
    """Load ``data``, split it by patient, train a classifier and save a RUN folder in ``out``."""
    import keras
    import tensorflow as tf

    profile = get_profile(profile)
    spec = get_backbone(backbone)
    out = Path(out)
    _refuse_inside(out, Path(data))
    out.mkdir(parents=True, exist_ok=True)
    size = image_size or profile.image_size or spec.native_size
    batch_size = batch_size or profile.batch_size
    _say(f"Loading {data}", progress)
    table = split_by_patient(load_dataset(data, label_map=label_map), seed=seed)
    class_names = [name for name in CLASS_NAMES if name in set(table["label"])]
    images, table = load_images(table, size, progress=progress)
    table = table.reset_index(drop=True)
    table.to_csv(out / "splits.csv", index=False)
    counts = table.groupby(["split", "label"]).size().unstack(fill_value=0)
    if progress:
        print(counts.to_string(), flush=True)

    seed_everything(seed)
    _say(f"Building {spec.name} at {size}px (weights: {profile.weights})", progress)
    model = build_classifier(spec.name, len(class_names), size, weights=profile.weights, seed=seed)
    part = {name: (table["split"] == name).to_numpy() for name in ("train", "val")}
    labels = one_hot(table["label"], class_names)
    train_ds = dataset_from_arrays(
        images[part["train"]], labels[part["train"]], batch_size=batch_size, training=True, seed=seed
    )
    val_ds = dataset_from_arrays(images[part["val"]], labels[part["val"]], batch_size=batch_size)
    _say("Training", progress)
    history = train_two_stage(
        model,
        train_ds,
        val_ds,
        pretrained=profile.weights is not None,
        head_epochs=head_epochs if head_epochs is not None else profile.head_epochs,
        fine_tune_epochs=fine_tune_epochs if fine_tune_epochs is not None else profile.fine_tune_epochs,
        learning_rate=profile.learning_rate,
        class_weight=class_weights(table.loc[part["train"], "label"], class_names),
        fine_tune_layers=fine_tune_layers,
        out_dir=out,
        verbose="auto" if progress else 0,
    )
    history.to_csv(out / "history.csv", index=False)
    model.save(out / "model.keras")
    config = {
        "class_names": class_names,
        "backbone": spec.name,
        "image_size": size,
        "preprocessing": spec.preprocessing,
        "resize": "pad to square with black, then resize (cv2.INTER_AREA)",
        "weights": profile.weights,
        "profile": profile.name,
        "seed": seed,
        "batch_size": batch_size,
        "trainable_parameters": history.attrs.get("trainable_parameters"),
        "data": str(data),
        "versions": {
            "covid_tutorial": __version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "python": platform.python_version(),
        },
    }
    (out / "config.json").write_text(json.dumps(config, indent=2, default=str))
    return {"model": model, "table": table, "images": images, "history": history, "config": config}


def evaluate_split(model, images, table, class_names, *, split="test", n_bootstrap=1000, seed=0) -> dict:
    """Predict one split and score it with bootstrap CIs over patients."""
    from sklearn.metrics import confusion_matrix

    rows = (table["split"] == split).to_numpy()
    subset = table[rows]
    probabilities = predict_probabilities(model, images[rows])
    y_true = np.array([class_names.index(label) for label in subset["label"]])
    metrics = classification_metrics(
        y_true, probabilities, class_names, groups=subset["patient_id"], n_bootstrap=n_bootstrap, seed=seed
    )
    confusion = confusion_matrix(y_true, probabilities.argmax(1), labels=range(len(class_names)))
    return {
        "metrics": metrics,
        "confusion": confusion,
        "y_true": y_true,
        "probabilities": probabilities,
        "images": images[rows],
        "table": subset,
    }


def gradcam_gallery(model, evaluation, class_names, per_class: int = 2):
    """Overlays of the predicted class's Grad-CAM for a few test images of each true class."""
    cam = GradCAM(model)
    picks = [i for k in range(len(class_names)) for i in np.flatnonzero(evaluation["y_true"] == k)[:per_class]]
    images = evaluation["images"][picks]
    predicted = evaluation["probabilities"][picks].argmax(1)
    rgb = np.repeat(images[..., None], 3, axis=-1).astype(np.float32)
    heatmaps = cam(rgb, predicted)
    overlays = [overlay_heatmap(image, heatmap) for image, heatmap in zip(images, heatmaps)]
    titles = [
        f"true {class_names[evaluation['y_true'][i]]}\npred {class_names[p]} ({evaluation['probabilities'][i, p]:.2f})"
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
    run = train_run(data, out, backbone="resnet50", profile=profile, progress=progress)
    class_names = run["config"]["class_names"]
    _say("Evaluating on held-out patients", progress)
    evaluation = evaluate_split(
        run["model"], run["images"], run["table"], class_names, n_bootstrap=profile.bootstrap_rounds
    )
    metrics = evaluation["metrics"]
    metrics.to_csv(out / "metrics.csv", index=False)
    summary = metrics_to_json(metrics, evaluation["confusion"], class_names)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    _say("Grad-CAM and report", progress)
    overlays, titles, layer = gradcam_gallery(run["model"], evaluation, class_names)
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    plots = {
        "confusion_matrix": plot_confusion_matrix(evaluation["confusion"], class_names),
        "roc_curves": plot_roc_curves(evaluation["y_true"], evaluation["probabilities"], class_names),
        "training_curves": plot_training_curves(run["history"]),
        "gradcam_grid": plot_image_grid(overlays, titles, columns=len(class_names) * 2),
    }
    for name, fig in plots.items():
        figure_to_png(fig, figures / f"{name}.png")
    split_counts = run["table"].groupby(["split", "label"])["patient_id"].agg(["nunique", "size"])
    split_counts.columns = ["patients", "images"]
    report = write_html_report(
        out / "report.html",
        f"COVID-19 tutorial demo: {run['config']['backbone']} on the phantoms (profile {profile.name})",
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
            ("Configuration", json.dumps(run["config"], indent=2, default=str)),
        ],
    )
    macro_f1 = summary["metrics"]["macro"]["f1"]
    _say(f"Macro F1 on held-out patients: {macro_f1['value']:.3f} "
         f"[{macro_f1['ci_low']:.3f}, {macro_f1['ci_high']:.3f}]", progress)
    _say(f"Report: {report.resolve()}", progress)
    return report
