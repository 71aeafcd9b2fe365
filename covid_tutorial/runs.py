"""runs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd

from . import __version__
from .errors import RunError
from .figures import (
    figure_to_png,
    plot_confusion_matrix,
    plot_precision_recall_curves,
    plot_reliability_diagram,
    plot_roc_curves,
)
from .metrics import metrics_to_json
from .system import write_json

RUN_FORMAT = 1  # bump when the layout or the meaning of a RUN folder changes


TRAINING_SETTINGS = (
    "backbone", "image_size", "batch_size", "head_epochs", "fine_tune_epochs", "fine_tune_layers", "seed",
    "learning_rate",
)


def read_run_config(run) -> dict:
    """``config.json`` of a RUN folder, or a :class:`RunError` that says what to do."""
    run = Path(run)
    if not run.is_dir():
        raise RunError(f"{run}: no such RUN folder. Train one with `covid-tutorial train DATA --out {run}`.")
    path = run / "config.json"
    if not path.is_file():
        raise RunError(
            f"{run}: not a RUN folder (no config.json). Give the folder that `covid-tutorial train "
            "--out` wrote, or train one."
        )
    try:
        config = json.loads(path.read_text())
    except ValueError as err:
        raise RunError(f"{path}: unreadable ({err}). Train the run again.") from None
    made_by = config.get("versions", {}).get("covid_tutorial", "an unknown version")
    run_format = config.get("run_format")
    if not isinstance(run_format, int) or run_format > RUN_FORMAT:
        raise RunError(
            f"{run}: made by covid_tutorial {made_by} (RUN format {run_format}); this is covid_tutorial "
            f"{__version__}, which reads RUN format {RUN_FORMAT}. Train it again with this version, or "
            f"install covid_tutorial {made_by} to use it."
        )
    return config


def _check_same_split(out: Path, table: pd.DataFrame) -> None:
    saved = pd.read_csv(out / "splits.csv", dtype=str, keep_default_na=False)
    same = len(saved) == len(table) and (saved["sha1"].to_numpy() == table["sha1"].to_numpy()).all() and (
        saved["split"].to_numpy() == table["split"].to_numpy()
    ).all()
    if not same:
        raise RunError(
            f"{out}: the data differ from those the interrupted run started with (splits.csv). Resume "
            "with the same DATA, or train a new run in another folder."
        )


def write_evaluation(out, evaluation: dict, class_names, extra: dict | None = None) -> dict:
    """Write an evaluation into ``out``: metrics.json and metrics.csv (values with 95% CIs
    over patients), predictions.csv (one row per image) and figures/ (confusion matrix,
    ROC, precision-recall, reliability diagram). Returns the metrics.json content."""
    out = Path(out)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    metrics = evaluation["metrics"]
    metrics.to_csv(out / "metrics.csv", index=False)
    summary = {**metrics_to_json(metrics, evaluation["confusion"], class_names), **(extra or {})}
    write_json(out / "metrics.json", summary)
    probabilities = evaluation["probabilities"]
    predictions = evaluation["table"][["path", "label", "patient_id"]].reset_index(drop=True)
    predictions["predicted"] = [class_names[k] for k in probabilities.argmax(1)]
    for k, name in enumerate(class_names):
        predictions[f"p_{name}"] = probabilities[:, k]
    predictions.to_csv(out / "predictions.csv", index=False)
    y_true = evaluation["y_true"]
    plots = {
        "confusion_matrix": plot_confusion_matrix(evaluation["confusion"], class_names),
        "roc_curves": plot_roc_curves(y_true, probabilities, class_names),
        "precision_recall": plot_precision_recall_curves(y_true, probabilities, class_names),
        "reliability": plot_reliability_diagram(y_true, probabilities),
    }
    for name, fig in plots.items():
        figure_to_png(fig, figures / f"{name}.png")
    return summary


@dataclasses.dataclass
class LoadedRun:
    """A trained RUN folder: its configuration and its model (loaded in Keras safe mode)."""

    folder: Path
    config: dict
    model: object

    @property
    def class_names(self) -> list[str]:
        return list(self.config["class_names"])

    @property
    def image_size(self) -> int:
        return int(self.config["image_size"])


def load_run(run) -> LoadedRun:
    """Load a RUN folder made by ``covid-tutorial train``, checking that it is complete, was
    made by a compatible version and that its files agree; else a :class:`RunError` that
    says what to do."""
    import keras

    run = Path(run)
    config = read_run_config(run)
    path = run / "model.keras"
    if config.get("status") != "complete" or not path.is_file():
        if (run / "checkpoint" / "state.json").is_file():
            raise RunError(
                f"{run}: training was interrupted before it finished. Continue it with "
                f"`covid-tutorial train {config.get('data', 'DATA')} --out {run} --resume`."
            )
        raise RunError(f"{run}: no trained model (model.keras). Train the run again.")
    made_with = str(config.get("versions", {}).get("keras", "?"))
    if made_with.split(".")[0] != keras.__version__.split(".")[0]:
        raise RunError(
            f"{run}: made with Keras {made_with}; this is Keras {keras.__version__}, which cannot read "
            "it reliably. Train the run again here, or use the Keras version that made it."
        )
    try:
        model = keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as err:  # truncated file, unknown layer, lambda refused by safe mode
        raise RunError(
            f"{path}: cannot be loaded ({type(err).__name__}: {str(err).splitlines()[0][:300]}). It was made "
            f"with Keras {made_with} and covid_tutorial {config.get('versions', {}).get('covid_tutorial')}; "
            "train the run again with this version."
        ) from None
    outputs, classes = model.output_shape[-1], len(config["class_names"])
    if outputs != classes:
        raise RunError(
            f"{run}: config.json lists {classes} classes {config['class_names']} but model.keras "
            f"predicts {outputs}; the folder mixes files of different runs. Train the run again."
        )
    if tuple(model.input_shape[1:3]) != (config["image_size"], config["image_size"]):
        raise RunError(
            f"{run}: config.json says {config['image_size']} px but model.keras takes "
            f"{model.input_shape[1:3]}; the folder mixes files of different runs. Train the run again."
        )
    return LoadedRun(run, config, model)
