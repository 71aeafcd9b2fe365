"""Compare: many backbones under one protocol, as Garg et al. (2022) compared 20 CNNs.

The protocol (Garg, Salehi, La Rocca, Garner, Duncan, Expert Systems with Applications,
2022, doi:10.1016/j.eswa.2022.116540) in our words: split the *patients* into k folds,
train every model on k-1 folds and test it on the last, repeat the whole k-fold R times
with new folds, and report each metric per class as a mean with a 95% confidence
interval over the k x R rounds. Every model sees exactly the same folds, so two models
can be compared round by round.

:func:`run_comparison` runs the protocol for any list of backbones, appending each
(model, repeat, fold) result to a CSV file the moment it is known, so that a run killed
at any point resumes where it stopped, and several machines can share the work (one
results file each, merged when read: :func:`read_results`). :func:`write_report` writes
the summary, the paired tests, the Pareto plot and ``report.md``. The statistics live in
:mod:`covid_tutorial.metrics`, the zoo in :mod:`covid_tutorial.models`, the speed table in
:mod:`covid_tutorial.bench`.

The command line is ``covid-tutorial compare`` (see ``covid-tutorial compare --help``).
Teaching material only: not for clinical use.
"""

from __future__ import annotations

import csv
import dataclasses
import gc
import hashlib
import io
import json
import os
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from .bench import measure_inference
from .data import (
    CLASS_NAMES,
    VALIDATION_FRACTION,
    comparison_folds,
    dataset_location,
    load_dataset,
    load_images,
    one_hot,
    shared_patients,
    validation_rows,
)
from .errors import CourseError, DataError, RunError
from .feed import EpochBatches, HostAugmentedBatches, dataset_from_arrays
from .figures import figure_to_png, plot_pareto
from .metrics import (
    INTERVAL_METHOD,
    KEY_COLUMNS,
    METRIC_NAMES,
    classification_metrics,
    leaderboard,
    metric_column,
    paired_tests,
    summarize_results,
    summary_table,
)
from .models import get_backbone, resolve_models
from .profiles import TrainingSettings, get_profile
from .system import (
    device_name,
    local_time_now,
    refuse_output_inside,
    software_versions,
)
from .train import (
    ExecutionOptions,
    build_for_comparison,
    class_weights,
    distribution_strategy,
    global_batch_size,
    inference_copy,
    recalibrate_batchnorm,
    seed_everything,
    train_two_stage,
)

__all__ = [
    "RESULTS_GLOB",
    "MANIFEST",
    "FOLDS_FILE",
    "RUN_COLUMNS",
    "MUST_MATCH",
    "results_columns",
    "data_fingerprint",
    "SHARDS_ENV",
    "parse_shard",
    "scheduler_shard",
    "results_file_name",
    "append_result",
    "read_results",
    "run_one",
    "comparison_tasks",
    "run_comparison",
    "describe_comparison",
    "report_tables",
    "write_report",
    "ZOO_COLUMNS",
    "format_zoo_table",
    "save_zoo_table",
    "format_comparison",
]

# ---------------------------------------------------------------- folds and files

RESULTS_GLOB = "results*.csv"
MANIFEST = "comparison.json"
FOLDS_FILE = "folds.csv"
RUN_COLUMNS = [
    *KEY_COLUMNS, "split_seed", "train_seed", "image_size", "weights", "precision", "xla", "eager", "batch_size",
    "epochs_trained", "n_train_images", "n_val_images", "n_test_images", "n_test_patients", "params",
    "train_s", "latency_ms", "images_per_s", "device", "finished",
]  # fmt: skip
MUST_MATCH = (
    "data_fingerprint", "class_names", "folds", "seed", "image_size", "batch_size", "head_epochs",
    "fine_tune_epochs", "learning_rate", "weights", "two_stages", "mixed_precision", "validation_fraction", "replicas",
)  # fmt: skip


def results_columns(class_names) -> list[str]:
    return RUN_COLUMNS + [metric_column(c, m) for c in [*class_names, "macro"] for m in METRIC_NAMES]


def data_fingerprint(table: pd.DataFrame) -> str:
    """SHA-1 of the sorted (file name, label, patient) triples: the same data on any machine or path."""
    lines = sorted(f"{Path(p).name}|{label}|{patient}" for p, label, patient in table[["path", "label", "patient_id"]].itertuples(index=False))
    return hashlib.sha1("\n".join(lines).encode()).hexdigest()


SHARDS_ENV = "COVID_TUTORIAL_SHARDS"  # the number of shards, where the scheduler does not say it (Kubernetes)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/n"`` (1-based) -> (i, n): this machine does the runs i, i+n, i+2n, ... of the task list.

    ``"auto"`` asks the scheduler instead (:func:`scheduler_shard`).
    """
    if text is None:
        return None
    if str(text).strip().lower() == "auto":
        return scheduler_shard()
    try:
        index, count = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise CourseError(f"--shard {text!r}: write it as i/n, e.g. 1/3 on the first of three machines.") from None
    if not 1 <= index <= count:
        raise CourseError(f"--shard {text!r}: i must lie between 1 and n.")
    return index, count


def scheduler_shard(environ=None) -> tuple[int, int]:
    """(i, n) of this task, 1-based, read from a Slurm job array or a Kubernetes Indexed Job.

    Slurm (``sbatch --array=0-3`` or ``1-4``, a range with an optional ``:step``):
    ``SLURM_ARRAY_TASK_ID`` with ``SLURM_ARRAY_TASK_MIN``, ``SLURM_ARRAY_TASK_STEP`` and
    ``SLURM_ARRAY_TASK_COUNT`` (or ``..._MAX``). Kubernetes (``completionMode: Indexed``):
    ``JOB_COMPLETION_INDEX`` (0-based); the Job does not tell its pods how many completions
    it has, so the manifest sets ``COVID_TUTORIAL_SHARDS`` to its ``completions``.
    """
    env = os.environ if environ is None else environ
    try:
        if env.get("SLURM_ARRAY_TASK_ID"):
            task = int(env["SLURM_ARRAY_TASK_ID"])
            low, step = int(env.get("SLURM_ARRAY_TASK_MIN", 0)), int(env.get("SLURM_ARRAY_TASK_STEP", 1) or 1)
            if env.get("SLURM_ARRAY_TASK_COUNT"):
                count = int(env["SLURM_ARRAY_TASK_COUNT"])
            else:
                count = (int(env["SLURM_ARRAY_TASK_MAX"]) - low) // step + 1
            where = "Slurm array task"
            index, off_step = divmod(task - low, step)
            index += 1
        elif env.get("JOB_COMPLETION_INDEX"):
            if not env.get(SHARDS_ENV):
                raise CourseError(
                    f"--shard auto: JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but {SHARDS_ENV} is not. "
                    f"Set {SHARDS_ENV} to the Job's spec.completions in the manifest's env."
                )
            index, count, off_step, where = int(env["JOB_COMPLETION_INDEX"]) + 1, int(env[SHARDS_ENV]), 0, "Kubernetes index"
        else:
            raise CourseError(
                "--shard auto: no scheduler found (neither SLURM_ARRAY_TASK_ID of a Slurm job array nor "
                "JOB_COMPLETION_INDEX of a Kubernetes Indexed Job is set). Give --shard I/N yourself."
            )
    except (KeyError, ValueError) as err:
        raise CourseError(f"--shard auto: the scheduler's variables are incomplete or not numbers ({err}).") from None
    if off_step or not 1 <= index <= count:
        raise CourseError(
            f"--shard auto: {where} gives shard {index} of {count}. Use a plain range of indices "
            "(--array=0-N or 1-N, optionally :step), not a list."
        )
    return index, count


def results_file_name(shard: tuple[int, int] | None = None, name: str | None = None) -> str:
    """results.csv, results-shard1of3.csv, or results-NAME.csv: each machine appends to its own file."""
    if name:
        stem = Path(name).name
        stem = stem[:-4] if stem.endswith(".csv") else stem
        return stem + ".csv" if stem.startswith("results") else f"results-{stem}.csv"
    if shard is not None:
        return f"results-shard{shard[0]}of{shard[1]}.csv"
    return "results.csv"


def append_result(path: Path, row: dict, columns: list[str]) -> None:
    """Append one run as one CSV line, written in one call and flushed to disk.

    A line cut short by a kill (no final newline) is removed first, so the file always
    holds whole runs.
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size:
        with open(path, "rb+") as handle:
            data = handle.read()
            if not data.endswith(b"\n"):
                handle.truncate(data.rfind(b"\n") + 1)
        header = next(csv.reader(io.StringIO(path.read_text(encoding="utf-8").split("\n", 1)[0])), [])
        if header and header != columns:
            missing = sorted(set(columns) - set(header))
            if missing:
                raise RunError(
                    f"{path}: written for other classes or another version (columns {missing} missing). "
                    "Use another --out or --results-file."
                )
            columns = header
        write_header = not header
    else:
        write_header = True
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    if write_header:
        writer.writeheader()
    writer.writerow({key: _csv_value(row.get(key)) for key in columns})
    with open(path, "a", encoding="utf-8", newline="") as handle:
        handle.write(buffer.getvalue())
        handle.flush()
        os.fsync(handle.fileno())


def _csv_value(value):
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return value


def read_results(folder, files=None) -> pd.DataFrame:
    """Every finished run in ``folder``'s ``results*.csv`` files (one per machine), merged.

    A run found in two files is kept once (from the file whose name sorts first). Rows
    cut short by a kill are dropped. The order is (repeat, fold, model) as run.
    """
    folder = Path(folder)
    paths = sorted(Path(p) for p in files) if files is not None else sorted(folder.glob(RESULTS_GLOB))
    frames = []
    for path in paths:
        if path.is_file() and path.stat().st_size:
            frame = pd.read_csv(path, dtype={"model": str, "device": str, "weights": str, "precision": str})
            frame["results_file"] = path.name
            frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=RUN_COLUMNS + ["results_file"])
    results = pd.concat(frames, ignore_index=True)
    results = results.dropna(subset=["model", "repeat", "fold", "finished"])
    results[["repeat", "fold"]] = results[["repeat", "fold"]].astype(int)
    results = results.drop_duplicates(KEY_COLUMNS, keep="first")
    return results.sort_values(["repeat", "fold", "finished"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------- statistics


# ---------------------------------------------------------------- the protocol


def _private_temp(path: Path) -> Path:
    """A temporary name beside ``path`` that no other process uses (shards share the folder)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")


def _write_shared(path: Path, text: str | bytes, *, only_if_new: bool) -> bool:
    """Write ``text`` to ``path`` whole or not at all, safe when several shards do it at once.

    The text goes to a temporary file of this process first. ``only_if_new``: it is then
    hard-linked to ``path``, which fails if another shard created ``path`` first (an
    atomic create, also on NFS); returns False then, and the caller reads and checks that
    shard's file. Otherwise ``os.replace`` puts it in place atomically. Readers see the
    old file or the new one, never a part.
    """
    tmp = _private_temp(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(text if isinstance(text, bytes) else text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        if not only_if_new:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _manifest_settings(settings: dict) -> dict:
    return json.loads(json.dumps(settings, default=str))


def _recorded_settings(saved: dict) -> dict:
    """The settings of a ``comparison.json``; those written before ``two_stages`` was recorded
    trained in two stages exactly when they had weights."""
    return {"two_stages": saved.get("weights") is not None, **saved}


def _check_manifest(out: Path, settings: dict, command: str | None) -> dict:
    path = out / MANIFEST
    if not path.is_file():
        manifest = {
            "format": 1,
            "protocol": "stratified patient-grouped k-fold, repeated with seeds seed + r; same folds for every model; "
            "validation: a patient-grouped share of each training fold; see covid_tutorial.compare",
            "settings": settings,
            "created": local_time_now(),
            "command": command,
            "versions": software_versions(),
        }
        if _write_shared(path, json.dumps(manifest, indent=2, default=str), only_if_new=True):
            return manifest
        # another shard created it a moment ago: check its settings like any resume
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except ValueError as err:
            raise RunError(f"{path}: unreadable ({err}). Remove it or use another --out.") from None
        recorded = _recorded_settings(saved["settings"])
        changed = {key: (recorded.get(key), settings.get(key)) for key in MUST_MATCH if recorded.get(key) != settings.get(key)}
        if changed:
            detail = "; ".join(f"{k}: was {old!r}, now {new!r}" for k, (old, new) in changed.items())
            raise RunError(
                f"{out}: the comparison there was made with other settings ({detail}). Resume it with the same "
                "data and settings (models and repeats may be added), or use another --out."
            )
        if settings["repeats"] > saved["settings"].get("repeats", 0):
            saved["settings"]["repeats"] = settings["repeats"]
            _write_shared(path, json.dumps(saved, indent=2, default=str), only_if_new=False)
        return saved
    raise RunError(f"{path}: vanished while this shard was starting. Start it again.")  # pragma: no cover


def _check_folds(out: Path, folds_table: pd.DataFrame, repeats: int) -> None:
    path = out / FOLDS_FILE
    columns = [f"fold_{r}" for r in range(repeats)]
    current = folds_table.assign(image=[Path(p).name for p in folds_table["path"]])[["image", "label", "patient_id", *columns]]
    if not path.is_file() and _write_shared(path, current.to_csv(index=False), only_if_new=True):
        return  # else another shard wrote it first: check it
    if path.is_file():
        saved = pd.read_csv(path, dtype={"image": str, "label": str, "patient_id": str})
        shared = [c for c in columns if c in saved.columns]
        same = len(saved) == len(current) and (saved[["image", "label", "patient_id"]].to_numpy() == current[["image", "label", "patient_id"]].to_numpy()).all()
        same = same and all((saved[c].to_numpy() == current[c].to_numpy()).all() for c in shared)
        if not same:
            raise RunError(
                f"{path}: the folds saved there differ from the folds of these data. The data changed since the "
                "comparison started: resume with the same data, or use another --out."
            )
        if len(shared) == len(columns):
            return
    _write_shared(path, current.to_csv(index=False), only_if_new=False)  # more repeats: same folds, more columns


class _ImageCache:
    """Decoded images at one size at a time (a second size replaces the first: memory stays bounded)."""

    def __init__(self, table: pd.DataFrame, progress: bool):
        self.table, self.progress, self.size, self.images = table, progress, None, None

    def get(self, size: int) -> np.ndarray:
        if size != self.size:
            self.images = None
            gc.collect()
            images, kept = load_images(self.table, size, progress=self.progress)
            if len(kept) != len(self.table):
                raise DataError(f"{len(self.table) - len(kept)} image(s) could not be read; fix or remove them first.")
            self.size, self.images = size, images
        return self.images


@dataclasses.dataclass(frozen=True)
class _Round:
    """One (repeat, fold) round of the protocol: its seeds, and the rows it fits on, validates
    on (a patient-grouped share of the training folds) and tests on (the fold)."""

    repeat: int
    fold: int
    split_seed: int
    train_seed: int
    fit: np.ndarray  # row indices
    val: np.ndarray  # row indices
    test: np.ndarray  # a mask over the rows

    @classmethod
    def of(cls, folds_table: pd.DataFrame, repeat: int, fold: int, seed: int, validation_fraction: float) -> "_Round":
        train_seed = seed + 1000 * repeat + fold
        test = (folds_table[f"fold_{repeat}"] == fold).to_numpy()
        train = np.flatnonzero(~test)
        val = validation_rows(folds_table.iloc[train], seed=train_seed, fraction=validation_fraction)
        return cls(repeat, fold, seed + repeat, train_seed, train[~val], train[val], test)


def _train_round(spec, images, folds_table, class_names, round_: _Round, settings: TrainingSettings, strategy, *,
                 mixed_precision: bool, xla: bool, eager: bool, callbacks) -> tuple:  # fmt: skip
    """Build the round's model and train it; returns (model, history, seconds of training and recalibration)."""
    labels = one_hot(folds_table["label"], class_names)
    keras.backend.clear_session()
    seed_everything(round_.train_seed)
    with strategy.scope():
        model = build_for_comparison(
            spec.name, len(class_names), int(images.shape[1]), settings.weights, seed=round_.train_seed,
            mixed_precision=mixed_precision, augment=not xla,
        )  # fmt: skip
    step_batch = global_batch_size(settings.batch_size, strategy)
    batches = (HostAugmentedBatches if xla else EpochBatches)(
        images[round_.fit], labels[round_.fit], batch_size=step_batch, seed=round_.train_seed
    )
    val_ds = dataset_from_arrays(images[round_.val], labels[round_.val], batch_size=step_batch)
    start = time.perf_counter()
    history = train_two_stage(
        model, batches, val_ds,
        pretrained=settings.two_stages,
        head_epochs=settings.head_epochs,
        fine_tune_epochs=settings.fine_tune_epochs,
        learning_rate=settings.learning_rate,
        class_weight=class_weights(folds_table["label"].iloc[round_.fit], class_names),
        fine_tune_layers=settings.fine_tune_layers,
        verbose=0,
        callbacks=[ExecutionOptions(run_eagerly=eager, jit_compile=xla), *callbacks],
    )  # fmt: skip
    if strategy.num_replicas_in_sync > 1:  # predict and time on one device, as the results of one GPU
        model = inference_copy(model)
    if settings.weights is None:  # from scratch: running BatchNorm statistics from the training fold
        recalibrate_batchnorm(model, images[round_.fit], batch_size=settings.batch_size)
    return model, history, time.perf_counter() - start


def _test_round(model, images, folds_table, class_names, round_: _Round, batch_size: int) -> pd.DataFrame:
    """The round's scores on its test fold (no bootstrap: the intervals come from the rounds)."""
    test_batches = dataset_from_arrays(images[round_.test], batch_size=batch_size)  # float32 RGB batch by batch
    probabilities = np.asarray(model.predict(test_batches, verbose=0), dtype=float)
    y_true = np.array([class_names.index(label) for label in folds_table["label"][round_.test]])
    return classification_metrics(
        y_true, probabilities, class_names, groups=folds_table["patient_id"][round_.test], n_bootstrap=0
    )


def run_one(
    model_name: str,
    images: np.ndarray,
    folds_table: pd.DataFrame,
    class_names: list[str],
    *,
    repeat: int,
    fold: int,
    settings: TrainingSettings,
    validation_fraction: float = VALIDATION_FRACTION,
    mixed_precision: bool = False,
    xla: bool = False,
    eager: bool = False,
    latency: dict | None = None,
    latency_repeats: int = 20,
    callbacks=(),
    strategy=None,
) -> tuple[dict, dict]:
    """Train ``model_name`` on every fold but ``fold`` of ``repeat``, test it on ``fold``; one results row.

    ``settings``: the comparison's :class:`~covid_tutorial.profiles.TrainingSettings` (its seed
    is the comparison's; the image size is that of ``images``). The training fold loses a
    patient-grouped validation share (early stopping, the best epoch's weights); test
    patients are never seen in training. Without pretrained weights, BatchNorm's running
    statistics are then recomputed on the training images
    (:func:`covid_tutorial.train.recalibrate_batchnorm`): after the few steps of a small
    run they still remember their initial values. Returns (row, latency):
    pass the latency back in to skip timing the same model again in this process.
    """
    spec = get_backbone(model_name)
    round_ = _Round.of(folds_table, repeat, fold, settings.seed, validation_fraction)
    model, history, train_seconds = _train_round(
        spec, images, folds_table, class_names, round_, settings, strategy or distribution_strategy(None),
        mixed_precision=mixed_precision, xla=xla, eager=eager, callbacks=callbacks,
    )  # fmt: skip
    scores = _test_round(model, images, folds_table, class_names, round_, settings.batch_size)
    if latency is None:
        latency = measure_inference(model, batch_size=settings.batch_size, repeats=latency_repeats, jit_compile=xla)
    test = round_.test
    row = {
        "model": spec.name, "repeat": repeat, "fold": fold, "split_seed": round_.split_seed,
        "train_seed": round_.train_seed, "image_size": int(images.shape[1]), "weights": settings.weights or "none",
        "precision": "mixed_float16" if mixed_precision else "float32", "xla": bool(xla), "eager": bool(eager),
        "batch_size": settings.batch_size, "epochs_trained": len(history),
        "n_train_images": int(len(round_.fit) + len(round_.val)), "n_val_images": int(len(round_.val)),
        "n_test_images": int(test.sum()), "n_test_patients": int(folds_table["patient_id"][test].nunique()),
        "params": int(model.count_params()), "train_s": train_seconds, "latency_ms": latency["latency_ms"],
        "images_per_s": latency["images_per_s"], "device": device_name(), "finished": local_time_now(),
    }  # fmt: skip
    for class_name, metric, value in scores[["class", "metric", "value"]].itertuples(index=False):
        row[metric_column(class_name, metric)] = float(value)
    del model
    keras.backend.clear_session()
    return row, latency


_LATENCIES: dict = {}


def comparison_tasks(models, repeats: int, folds: int) -> list[tuple[int, int, str]]:
    """(repeat, fold, model) in the order they run: every model on a round before the next round,
    so that a comparison stopped early still compares every model on the same rounds."""
    return [(r, k, m) for r in range(repeats) for k in range(folds) for m in models]


def _comparison_table(data, out: Path, reading: dict) -> tuple[pd.DataFrame, str]:
    """The images to compare on, and how the manifest names them."""
    if isinstance(data, pd.DataFrame):
        return data.reset_index(drop=True), f"a table of {len(data)} images"
    refuse_output_inside(out, dataset_location(data))
    return load_dataset(data, **reading), str(data)


def _comparison_settings(table: pd.DataFrame, data_name: str, training: TrainingSettings, *, folds: int,
                         repeats: int, mixed_precision: bool, replicas: int) -> dict:  # fmt: skip
    """The settings of ``comparison.json``: the data, the protocol and the training every model shares."""
    task = table.attrs.get("classes", CLASS_NAMES)  # the task's classes, in output order
    settings = {
        "data": data_name,
        "data_fingerprint": data_fingerprint(table),
        "n_images": int(len(table)),
        "n_patients": int(table["patient_id"].nunique()),
        "class_names": [name for name in task if name in set(table["label"])],
        "folds": int(folds),
        "repeats": int(repeats),
        "seed": training.seed,
        "image_size": training.image_size or "native",
        "batch_size": training.batch_size,
        "head_epochs": training.head_epochs,
        "fine_tune_epochs": training.fine_tune_epochs,
        "learning_rate": training.learning_rate,
        "weights": training.weights,
        "two_stages": training.two_stages,
        "mixed_precision": bool(mixed_precision),
        "validation_fraction": VALIDATION_FRACTION,
        "profile": training.profile,
    }
    if replicas > 1:  # absent for one device, so older folders still match
        settings["replicas"] = replicas
    return settings


def _start_comparison(out: Path, table: pd.DataFrame, settings: dict, command: str | None) -> pd.DataFrame:
    """Create or check ``comparison.json`` and ``folds.csv`` in ``out``; return every image's folds."""
    out.mkdir(parents=True, exist_ok=True)
    _check_manifest(out, _manifest_settings(settings), command)
    folds_table = comparison_folds(table, settings["folds"], settings["repeats"], settings["seed"])
    for r in range(settings["repeats"]):
        leaked = shared_patients(folds_table[f"fold_{r}"], folds_table["patient_id"])
        if leaked:  # pragma: no cover - patient_folds checks this too
            raise DataError(f"patients {leaked[:5]} are in two folds of repeat {r}.")
    _check_folds(out, folds_table, settings["repeats"])
    return folds_table


def _runs_to_do(out: Path, models, settings: dict, shard) -> tuple[list[tuple[int, int, str]], int]:
    """This machine's (repeat, fold, model) runs not yet in any results file, and how many it has in all."""
    tasks = comparison_tasks(models, settings["repeats"], settings["folds"])
    if shard is not None:
        tasks = [task for i, task in enumerate(tasks) if i % shard[1] == shard[0] - 1]
    done = set(map(tuple, read_results(out)[KEY_COLUMNS].itertuples(index=False)))
    return [(r, k, m) for r, k, m in tasks if (m, r, k) not in done], len(tasks)


def run_comparison(
    data,
    out,
    *,
    models,
    folds: int | None = None,
    repeats: int | None = None,
    profile=None,
    seed: int = 0,
    image_size: int | None = None,
    batch_size: int | None = None,
    head_epochs: int | None = None,
    fine_tune_epochs: int | None = None,
    learning_rate: float | None = None,
    mixed_precision: bool = False,
    xla: bool = False,
    eager: bool = False,
    shard: str | tuple[int, int] | None = None,
    results_file: str | None = None,
    max_runs: int | None = None,
    on_result=None,
    latency_repeats: int = 20,
    image_dir=None,
    label_map: dict | None = None,
    classes=None,
    collection: str | None = None,
    unmapped: str = "error",
    command: str | None = None,
    progress: bool = True,
    distribute: str | None = None,
    devices=None,
) -> pd.DataFrame:
    """Compare ``models`` with stratified patient-grouped k-fold, repeated, resumable; return all results.

    ``data`` is anything :func:`covid_tutorial.data.load_dataset` reads, or a table it
    returned (columns path, label, patient_id). Results go to ``out``:
    ``comparison.json`` (the settings, which a resume must share), ``folds.csv`` (every
    image's fold in each repeat) and ``results*.csv``, where each finished
    (model, repeat, fold) is appended as one line at once. Calling again with the same
    ``out`` skips every run already in any results file there, so a killed run resumes
    where it stopped; models and repeats may be added later, and the folds stay the same.

    ``shard="i/n"`` makes this machine do every n-th run (starting with the i-th) into
    ``results-shard<i>of<n>.csv``; ``results_file`` names the file instead. Copy the
    files into one folder and they merge when read (:func:`read_results`).

    Defaults come from the profile, as for ``covid-tutorial train``
    (:meth:`~covid_tutorial.profiles.TrainingSettings.resolve`): image size (None in ``gpu``:
    each model's native size), weights, two stages or one, batch size, epochs, learning
    rate; and folds, repeats. ``max_runs`` stops after that many new runs; ``on_result(row)``
    is called after each one is saved.
    ``eager`` runs the training steps without building a graph, which is faster only
    for the tiny runs of the ``ci`` profile. ``distribute="mirrored"`` trains each model on
    every visible GPU (or ``devices``) with ``batch_size`` images per GPU; the number of
    replicas is then a setting a resume must share. Not for clinical use.
    """
    profile = get_profile(profile)
    out = Path(out)
    models = resolve_models(models)
    shard = parse_shard(shard) if isinstance(shard, (str, type(None))) else tuple(shard)
    training = TrainingSettings.resolve(
        profile, image_size=image_size, batch_size=batch_size, head_epochs=head_epochs,
        fine_tune_epochs=fine_tune_epochs, learning_rate=learning_rate, seed=seed,
    )  # fmt: skip
    reading = dict(images=image_dir, collection=collection, classes=classes, label_map=label_map, unmapped=unmapped)
    table, data_name = _comparison_table(data, out, reading)
    strategy = distribution_strategy(distribute, devices)
    settings = _comparison_settings(
        table, data_name, training, folds=folds or profile.folds, repeats=repeats or profile.repeats,
        mixed_precision=mixed_precision, replicas=strategy.num_replicas_in_sync,
    )  # fmt: skip
    folds_table = _start_comparison(out, table, settings, command)
    results_path, columns = out / results_file_name(shard, results_file), results_columns(settings["class_names"])
    todo, planned = _runs_to_do(out, models, settings, shard)
    if progress:
        print(f"==> {planned - len(todo)} of {planned} runs already in {out}; {len(todo)} to do "
              f"({len(models)} models, {settings['folds']} folds x {settings['repeats']} repeats) on {device_name()}",
              flush=True)  # fmt: skip
    if max_runs is not None:
        todo = todo[: max(0, int(max_runs))]
    images = _ImageCache(folds_table, progress)
    latencies = _LATENCIES  # weights do not change the timing: one measurement per model and setting per process
    for number, (repeat, fold, name) in enumerate(todo, start=1):
        run_settings = training.for_backbone(get_backbone(name))
        key = (name, run_settings.image_size, run_settings.batch_size, mixed_precision, xla, latency_repeats)
        row, latencies[key] = run_one(
            name, images.get(run_settings.image_size), folds_table, settings["class_names"], repeat=repeat,
            fold=fold, settings=run_settings, mixed_precision=mixed_precision, xla=xla, eager=eager,
            latency=latencies.get(key), latency_repeats=latency_repeats, strategy=strategy,
        )  # fmt: skip
        append_result(results_path, row, columns)
        if progress:
            print(f"[{number}/{len(todo)}] {name} repeat {repeat} fold {fold}: macro F1 {row['macro|f1']:.3f}, "
                  f"{row['epochs_trained']} epochs in {row['train_s']:.0f} s, {row['latency_ms']:.1f} ms per image",
                  flush=True)  # fmt: skip
        if on_result is not None:
            on_result(row)
    return read_results(out)


# ---------------------------------------------------------------- the report


def describe_comparison(out) -> dict:
    """Where a comparison folder's results come from: settings, data, devices, dates, versions."""
    out = Path(out)
    path = out / MANIFEST
    if not path.is_file():
        raise RunError(f"{out}: no {MANIFEST}; not a folder written by `covid-tutorial compare`.")
    manifest = json.loads(path.read_text())
    results = read_results(out)
    manifest["devices"] = sorted(results["device"].dropna().unique().tolist()) if len(results) else []
    manifest["runs"] = int(len(results))
    manifest["first_finished"] = results["finished"].min() if len(results) else None
    manifest["last_finished"] = results["finished"].max() if len(results) else None
    manifest["results_files"] = sorted(results["results_file"].unique().tolist()) if len(results) else []
    return manifest


def report_tables(out, *, metric: str = "f1", leaders: int = 3) -> dict:
    """The tables of a comparison folder, computed from its results files, without writing anything.

    ``results`` (every finished run, merged), ``summary`` (:func:`summarize_results`),
    ``leaderboard``, ``paired_tests`` and ``about`` (:func:`describe_comparison`).
    """
    out = Path(out)
    results = read_results(out)
    if results.empty:
        raise RunError(f"{out}: no finished runs in {RESULTS_GLOB}. Run `covid-tutorial compare run DATA --models NAME... --out {out}` first.")
    summary = summarize_results(results)
    return {
        "results": results,
        "summary": summary,
        "leaderboard": leaderboard(results, summary, metric),
        "paired_tests": paired_tests(results, metric=metric, leaders=leaders),
        "about": describe_comparison(out),
    }


def write_report(out, *, metric: str = "f1", leaders: int = 3) -> dict:
    """Merge every results file in ``out`` and write the summary, the tests and the plot.

    Writes ``merged_results.csv``, ``summary.csv`` (mean and naive/corrected CI per
    model, class and metric), ``paired_tests.csv``, ``pareto.png`` and ``report.md``.
    Returns :func:`report_tables`.
    """

    out = Path(out)
    tables = report_tables(out, metric=metric, leaders=leaders)
    results, summary, board, tests, about = (tables[k] for k in ("results", "summary", "leaderboard", "paired_tests", "about"))
    # Shards sharing the folder each write the report after their runs: every file whole, replaced atomically.
    for name, table in (("merged_results.csv", results), ("summary.csv", summary), ("paired_tests.csv", tests)):
        _write_shared(out / name, table.to_csv(index=False), only_if_new=False)
    figure = plot_pareto(board, metric)
    _write_shared(out / "pareto.png", figure_to_png(figure), only_if_new=False)
    import matplotlib.pyplot as plt

    plt.close(figure)
    settings = about["settings"]
    lines = [
        "# Model comparison",
        "",
        f"Data: {settings['data']} ({settings['n_images']} images of {settings['n_patients']} patients; "
        f"classes {', '.join(settings['class_names'])}). Profile `{settings['profile']}`, weights {settings['weights']}, "
        f"image size {settings['image_size']}, {settings['head_epochs']}+{settings['fine_tune_epochs']} epochs, "
        f"batch {settings['batch_size']}.",
        f"Protocol: {settings['folds']}-fold stratified patient-grouped cross-validation, {settings['repeats']} repeat(s) "
        f"({about['runs']} runs finished). Device(s): {'; '.join(about['devices'])}. Finished between "
        f"{about['first_finished']} and {about['last_finished']}; {about['versions']}.",
        f"Command: `{about.get('command') or 'run_comparison(...)'}`",
        "",
        "## Leaderboard (macro F1; 95% CI across rounds, corrected for shared training data)",
        "",
        f"Intervals: {INTERVAL_METHOD}.",
        "",
        board.reset_index().to_markdown(index=False, floatfmt=".3f"),
        "",
        "## Per class and macro (mean [corrected 95% CI])",
        "",
        summary_table(summary).reset_index().to_markdown(index=False),
        "",
        "## Paired corrected resampled t-tests (Nadeau and Bengio 2003)",
        "",
        tests.to_markdown(index=False, floatfmt=".4f") if not tests.empty else "Fewer than two models.",
        "",
        "Teaching material only: not for clinical use.",
    ]
    _write_shared(out / "report.md", "\n".join(lines) + "\n", only_if_new=False)
    return tables


ZOO_COLUMNS = ["model", "family", "in_paper", "native_size", "params_M", "GMACs", "GFLOPs", "conv_layers", "blocks"]


def format_zoo_table(table: pd.DataFrame) -> str:
    """A :func:`covid_tutorial.models.zoo_table` as the Markdown table ``covid-tutorial compare zoo`` prints."""
    return table[[c for c in ZOO_COLUMNS if c in table.columns]].to_markdown(index=False, floatfmt=".2f")


def save_zoo_table(table: pd.DataFrame, folder) -> Path:
    """Write a :func:`covid_tutorial.models.zoo_table` to ``folder/zoo.csv`` and return the path."""
    path = Path(folder) / "zoo.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return path


def format_comparison(tables: dict, out=None) -> str:
    """The summary of a finished comparison (:func:`write_report`'s result) as the command line prints it.

    Runs and devices, the leaderboard (macro F1 with its corrected 95% CI, size, latency,
    throughput) and the paired corrected resampled t-tests; with ``out``, the files written there.
    """
    about, board, tests = tables["about"], tables["leaderboard"], tables["paired_tests"]
    columns = ["rounds", "macro_f1", "ci_low_corrected", "ci_high_corrected", "params_M", "latency_ms", "images_per_s"]
    lines = [
        f"{about['runs']} runs on {'; '.join(about['devices'])}",
        board[columns].reset_index().to_markdown(index=False, floatfmt=".3f"),
    ]
    if not tests.empty:
        tested = ["model_a", "model_b", "rounds", "mean_difference", "t", "p_value", "p_naive", "p_holm"]
        lines += ["", "Paired corrected resampled t-tests (macro F1):", tests[tested].to_markdown(index=False, floatfmt=".4f")]
    if out is not None:
        lines += ["", f"Wrote merged_results.csv, summary.csv, paired_tests.csv, pareto.png and report.md to {out}"]
    return "\n".join(lines)
