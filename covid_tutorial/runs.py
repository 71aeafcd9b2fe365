"""The RUN folder: what ``covid-tutorial train`` writes and every later command reads.

A RUN folder describes itself:

- ``config.json``: a :class:`RunConfig` (classes in output order, image size, input
  scaling, backbone, the training settings, package versions, the RUN format);
- ``model.keras``: the trained classifier, loaded in Keras safe mode;
- ``splits.csv``: every image with its label, patient, split and content digest (SHA-1),
  so that ``evaluate`` can leave out what the RUN trained or validated on;
- ``history.csv``: one row per epoch;
- ``confounders.json``: the confounder check of the training data (can file properties
  alone tell the classes apart?), which ``train`` runs before it splits;
- ``calibration.json``: the temperature fitted on the validation patients after training
  (:class:`~covid_tutorial.decisions.TemperatureScaling`), which ``predict`` and ``evaluate``
  apply to the model's probabilities;
- after evaluation (an :class:`Evaluation`): ``metrics.json``, ``metrics.csv``,
  ``predictions.csv``, ``figures/`` and what the scores mean for decisions
  (``decisions.json``, ``decision_curve.csv``, ``calibration.csv``, ``risk_coverage.csv``,
  ``subgroups_<column>.csv``);
- while training runs: ``checkpoint/``, what ``--resume`` needs.

This module reads and writes those files and nothing else; :mod:`covid_tutorial.pipeline`
trains and evaluates.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from . import __version__
from .decisions import DecisionReport, TemperatureScaling
from .errors import RunError
from .metrics import metrics_to_json, metrics_wide
from .models import CUSTOM_LAYERS
from .profiles import TrainingSettings
from .system import write_json

__all__ = [
    "RUN_FORMAT",
    "TRAINING_SETTINGS",
    "TrainingSettings",
    "RunConfig",
    "LoadedRun",
    "read_run_config",
    "write_run_config",
    "load_run",
    "write_splits",
    "check_same_split",
    "read_splits",
    "trained_or_validated_digests",
    "Evaluation",
    "write_evaluation",
    "CALIBRATION_FILE",
    "write_calibration",
    "read_calibration",
    "write_decisions",
    "CONFIG_FILE",
    "SPLITS_FILE",
    "CONFOUNDERS_FILE",
    "write_confounder_check",
    "read_confounder_check",
]

RUN_FORMAT = 1  # bump when the layout or the meaning of a RUN folder changes
CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
SPLITS_FILE = "splits.csv"
CHECKPOINT_FOLDER = "checkpoint"
CALIBRATION_FILE = "calibration.json"
CONFOUNDERS_FILE = "confounders.json"
INPUT_DESCRIPTION = "raw RGB in 0..255 (grayscale repeated over 3 channels); scaling is inside the model"
RESIZE_DESCRIPTION = "pad to square with black, then resize (cv2.INTER_AREA)"

# The settings a resumed run must share with the run it continues (TrainingSettings, made by
# covid_tutorial.profiles from a profile and the user's options, is recorded in config.json).
TRAINING_SETTINGS = (
    "backbone", "image_size", "batch_size", "head_epochs", "fine_tune_epochs", "fine_tune_layers", "seed",
    "learning_rate",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The content of a RUN's ``config.json``. ``class_names`` is the task: the classes the
    model tells apart, in the order of its outputs (the course's three, COVID-19 against
    Non-COVID, or the user's own)."""

    class_names: tuple[str, ...]
    backbone: str
    image_size: int
    preprocessing: str
    training: TrainingSettings
    data: str
    versions: dict
    label_map: dict | None = None  # the user's label -> class rules, applied again by evaluate and explain
    collection: str | None = None  # the registry entry whose rules read the training data
    status: str = "training"  # "complete" once model.keras is written
    trainable_parameters: dict | None = None  # per stage
    epochs_trained: int | None = None
    run_format: int = RUN_FORMAT
    input: str = INPUT_DESCRIPTION
    resize: str = RESIZE_DESCRIPTION

    @property
    def weights(self) -> str | None:
        return self.training.weights

    @property
    def profile(self) -> str:
        return self.training.profile

    @property
    def seed(self) -> int:
        return self.training.seed

    @property
    def batch_size(self) -> int:
        return self.training.batch_size

    def to_json(self) -> dict:
        content = dataclasses.asdict(self)
        content["class_names"] = list(self.class_names)
        # kept at the top level too, as RUNs of format 1 always had them
        content.update(weights=self.weights, profile=self.profile, seed=self.seed, batch_size=self.batch_size)
        return content

    @classmethod
    def from_json(cls, content: dict, where: Path) -> "RunConfig":
        try:
            training = TrainingSettings.from_json(content["training"])
            known = {field.name for field in dataclasses.fields(cls)} - {"training", "class_names"}
            return cls(
                class_names=tuple(content["class_names"]),
                training=training,
                **{key: value for key, value in content.items() if key in known},
            )
        except (KeyError, TypeError) as err:
            raise RunError(f"{where}: incomplete ({type(err).__name__}: {err}). Train the run again.") from None


def read_run_config(run) -> RunConfig:
    """``config.json`` of a RUN folder, or a :class:`RunError` that says what to do."""
    run = Path(run)
    if not run.is_dir():
        raise RunError(f"{run}: no such RUN folder. Train one with `covid-tutorial train DATA --out {run}`.")
    path = run / CONFIG_FILE
    if not path.is_file():
        raise RunError(
            f"{run}: not a RUN folder (no config.json). Give the folder that `covid-tutorial train "
            "--out` wrote, or train one."
        )
    try:
        content = json.loads(path.read_text())
    except ValueError as err:
        raise RunError(f"{path}: unreadable ({err}). Train the run again.") from None
    made_by = content.get("versions", {}).get("covid_tutorial", "an unknown version")
    run_format = content.get("run_format")
    if not isinstance(run_format, int) or run_format > RUN_FORMAT:
        raise RunError(
            f"{run}: made by covid_tutorial {made_by} (RUN format {run_format}); this is covid_tutorial "
            f"{__version__}, which reads RUN format {RUN_FORMAT}. Train it again with this version, or "
            f"install covid_tutorial {made_by} to use it."
        )
    return RunConfig.from_json(content, path)


def write_run_config(run, config: RunConfig) -> None:
    """Write ``config.json`` atomically: a crash never leaves half a file."""
    write_json(Path(run) / CONFIG_FILE, config.to_json())


def write_splits(run, table: pd.DataFrame) -> None:
    """``splits.csv``: every image with its label, patient, split and SHA-1."""
    table.to_csv(Path(run) / SPLITS_FILE, index=False)


def check_same_split(run, table: pd.DataFrame) -> None:
    """Refuse to resume a RUN on other data than it started with."""
    run = Path(run)
    saved = pd.read_csv(run / SPLITS_FILE, dtype=str, keep_default_na=False)
    same = len(saved) == len(table) and (saved["sha1"].to_numpy() == table["sha1"].to_numpy()).all() and (
        saved["split"].to_numpy() == table["split"].to_numpy()
    ).all()
    if not same:
        raise RunError(
            f"{run}: the data differ from those the interrupted run started with (splits.csv). Resume "
            "with the same DATA, or train a new run in another folder."
        )


def read_splits(run) -> pd.DataFrame | None:
    """``splits.csv`` of a RUN, or None when the RUN has none."""
    path = Path(run) / SPLITS_FILE
    return pd.read_csv(path, dtype=str, keep_default_na=False) if path.is_file() else None


def trained_or_validated_digests(run) -> set[str]:
    """SHA-1 of every image the RUN trained or validated on (empty for a RUN without splits.csv)."""
    splits = read_splits(run)
    if splits is None or "sha1" not in splits:
        return set()
    return set(splits.loc[splits["split"].isin(["train", "val"]), "sha1"])


@dataclasses.dataclass
class LoadedRun:
    """A trained RUN folder: its configuration and its model (loaded in Keras safe mode)."""

    folder: Path
    config: RunConfig
    model: keras.Model

    @property
    def class_names(self) -> list[str]:
        return list(self.config.class_names)

    @property
    def image_size(self) -> int:
        return int(self.config.image_size)

    @property
    def calibration(self) -> TemperatureScaling | None:
        """The temperature fitted after training (None for a RUN made before it was)."""
        return read_calibration(self.folder)


def write_calibration(run, scaling: TemperatureScaling) -> Path:
    path = Path(run) / CALIBRATION_FILE
    write_json(path, scaling.to_json())
    return path


def write_confounder_check(run, check: dict | None) -> None:
    """``confounders.json``: what :func:`covid_tutorial.data.check_confounders` found (or
    ``{"checked": false}`` where the data could not be checked)."""
    write_json(Path(run) / CONFOUNDERS_FILE, check if check is not None else {"checked": False})


def read_confounder_check(run) -> dict | None:
    """The RUN's confounder check, or None for a RUN trained before it was recorded."""
    path = Path(run) / CONFOUNDERS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def read_calibration(run) -> TemperatureScaling | None:
    """The RUN's :class:`~covid_tutorial.decisions.TemperatureScaling`, or None if it has none."""
    path = Path(run) / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        return TemperatureScaling.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as err:
        raise RunError(f"{path}: unreadable ({err}); delete it to use the model's own probabilities, "
                       "or train the run again") from None


def load_run(run) -> LoadedRun:
    """Load a RUN folder made by ``covid-tutorial train``, checking that it is complete, was
    made by a compatible version and that its files agree; else a :class:`RunError` that
    says what to do."""
    run = Path(run)
    config = read_run_config(run)
    path = run / MODEL_FILE
    if config.status != "complete" or not path.is_file():
        if (run / CHECKPOINT_FOLDER / "state.json").is_file():
            raise RunError(
                f"{run}: training was interrupted before it finished. Continue it with "
                f"`covid-tutorial train {config.data} --out {run} --resume`."
            )
        raise RunError(f"{run}: no trained model (model.keras). Train the run again.")
    made_with = str(config.versions.get("keras", "?"))
    if made_with.split(".")[0] != keras.__version__.split(".")[0]:
        raise RunError(
            f"{run}: made with Keras {made_with}; this is Keras {keras.__version__}, which cannot read "
            "it reliably. Train the run again here, or use the Keras version that made it."
        )
    custom_objects = {keras.saving.get_registered_name(layer): layer for layer in CUSTOM_LAYERS}
    try:
        model = keras.models.load_model(path, custom_objects=custom_objects, safe_mode=True, compile=False)
    except Exception as err:  # truncated file, unknown layer, lambda refused by safe mode
        raise RunError(
            f"{path}: cannot be loaded ({type(err).__name__}: {str(err).splitlines()[0][:300]}). It was made "
            f"with Keras {made_with} and covid_tutorial {config.versions.get('covid_tutorial')}; "
            "train the run again with this version."
        ) from None
    outputs, classes = model.output_shape[-1], len(config.class_names)
    if outputs != classes:
        raise RunError(
            f"{run}: config.json lists {classes} classes {list(config.class_names)} but model.keras "
            f"predicts {outputs}; the folder mixes files of different runs. Train the run again."
        )
    if tuple(model.input_shape[1:3]) != (config.image_size, config.image_size):
        raise RunError(
            f"{run}: config.json says {config.image_size} px but model.keras takes "
            f"{model.input_shape[1:3]}; the folder mixes files of different runs. Train the run again."
        )
    return LoadedRun(run, config, model)


@dataclasses.dataclass(frozen=True, eq=False)
class Evaluation:
    """A classifier scored on a set of images: the metrics with their 95% CIs over patients,
    the confusion matrix, and the inputs kept beside them for figures and galleries.

    ``print(evaluation)`` shows the metrics table with its intervals.
    """

    metrics: pd.DataFrame  # class, metric, value, ci_low, ci_high; attrs n_images, n_patients, n_bootstrap
    confusion: np.ndarray  # rows: true class, columns: predicted class
    y_true: np.ndarray  # class index of each image
    probabilities: np.ndarray  # (images, classes)
    images: np.ndarray | None  # the images scored (None where only predictions were kept)
    table: pd.DataFrame  # one row per image: path, label, patient_id, ...
    uncalibrated: np.ndarray | None = None  # the model's own probabilities, where the RUN's temperature was applied
    decisions: DecisionReport | None = None  # decision curve, calibration, referral, subgroup audits

    def __str__(self) -> str:
        attrs = self.metrics.attrs
        return (
            f"Scores on {attrs.get('n_images', len(self.y_true))} images of {attrs.get('n_patients', '?')} patients, "
            f"95% bootstrap CI over patients ({attrs.get('n_bootstrap', '?')} rounds):\n"
            + metrics_wide(self.metrics).to_string()
        )


def write_evaluation(out, evaluation: Evaluation, class_names, extra: dict | None = None) -> dict:
    """Write an :class:`Evaluation` into ``out``: metrics.json and metrics.csv (values with 95% CIs
    over patients) and predictions.csv (one row per image). Returns the metrics.json content.
    Its figures are :func:`covid_tutorial.figures.save_evaluation_figures`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = evaluation.metrics
    metrics.to_csv(out / "metrics.csv", index=False)
    summary = {**metrics_to_json(metrics, evaluation.confusion, class_names), **(extra or {})}
    write_json(out / "metrics.json", summary)
    probabilities = evaluation.probabilities
    predictions = evaluation.table[["path", "label", "patient_id"]].reset_index(drop=True)
    predictions["predicted"] = [class_names[k] for k in probabilities.argmax(1)]
    for k, name in enumerate(class_names):
        predictions[f"p_{name}"] = probabilities[:, k]
    if evaluation.uncalibrated is not None:
        for k, name in enumerate(class_names):
            predictions[f"p_{name}_uncalibrated"] = evaluation.uncalibrated[:, k]
    predictions.to_csv(out / "predictions.csv", index=False)
    if evaluation.decisions is not None:
        write_decisions(out, evaluation.decisions)
    return summary


def write_decisions(out, report: DecisionReport) -> None:
    """``decisions.json`` (each part's figures and verdict) and one CSV per table:
    decision_curve.csv, risk_coverage.csv (and risk_coverage_curve.csv), calibration.csv,
    subgroups_<column>.csv."""
    out = Path(out)
    write_json(out / "decisions.json", report.to_json())
    report.curve.table.to_csv(out / "decision_curve.csv", index=False)
    report.referral.table.to_csv(out / "risk_coverage.csv", index=False)
    report.referral.curve.to_csv(out / "risk_coverage_curve.csv", index=False)
    if report.calibration is not None:
        report.calibration.to_frame().to_csv(out / "calibration.csv", index=False)
    for audit in report.audits:
        audit.table.to_csv(out / f"subgroups_{audit.column}.csv", index=False)
