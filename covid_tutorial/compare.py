"""Compare: many backbones under one protocol, as Garg et al. (2022) compared 20 CNNs.

The protocol (source 004 of the course: Garg, Salehi, La Rocca, Garner, Duncan, Expert
Systems with Applications, 2022, doi:10.1016/j.eswa.2022.116540) in our words: split
the *patients* into k folds, train every model on k-1 folds and test it on the last,
repeat the whole k-fold R times with new folds, and report each metric per class as a
mean with a 95% confidence interval over the k x R rounds. Every model sees exactly
the same folds, so two models can be compared round by round.

What this module adds to that protocol:

- :data:`ZOO`: the paper's 20 backbones plus three modern references, and
  :func:`zoo_table`, their parameters, multiply-accumulates and native resolution
  computed from the Keras models themselves.
- :func:`run_comparison`: the k-fold x R protocol for any list of backbones, appending
  each (model, repeat, fold) result to a CSV file the moment it is known, so that a run
  killed at any point resumes where it stopped, and several machines can share the work
  (one results file each, merged when read).
- :func:`summarize_results` (mean and 95% CI across rounds, naive and corrected),
  :func:`corrected_resampled_ttest` and :func:`paired_tests` (Nadeau and Bengio 2003:
  rounds of a k-fold share most of their training data, so their spread understates the
  uncertainty; overlapping intervals are not a test), :func:`pareto_front` and
  :func:`plot_pareto` (macro F1 against latency and size).
- :func:`speed_table`: images per second per model, with mixed precision and XLA as
  options, on whatever device runs it, named by :func:`device_name`.

The command line is ``covid-tutorial compare`` (see ``covid-tutorial compare --help``).
Teaching material only: not for clinical use.
"""

from __future__ import annotations

import csv
import datetime as _dt
import gc
import hashlib
import io
import json
import math
import os
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from scipy import stats

from . import __version__
from .data import CLASS_NAMES, _grouped_folds, dataset_from_arrays, load_dataset, load_images, one_hot, patient_folds
from .errors import CourseError, DataError, RunError
from .explain import recalibrate_batchnorm
from .metrics import METRIC_NAMES, classification_metrics, summarize_folds
from .models import RandomAffine, build_classifier, get_backbone
from .predict import cpu_name_and_cores, time_call
from .profiles import get_profile
from .train import EpochBatches, class_weights, compile_classifier, seed_everything, train_two_stage

# ---------------------------------------------------------------- the zoo

EFFICIENTNETS = tuple(f"EfficientNetB{i}" for i in range(8))
PAPER_MODELS = (
    *EFFICIENTNETS,
    "ResNet50", "ResNet50V2", "ResNet101V2", "ResNet152V2",
    "DenseNet121", "DenseNet169", "DenseNet201",
    "InceptionV3", "InceptionResNetV2", "Xception",
    "VGG16", "VGG19",
)  # fmt: skip
MODERN_REFERENCES = ("EfficientNetV2B0", "EfficientNetV2S", "ConvNeXtTiny")
ZOO = PAPER_MODELS + MODERN_REFERENCES
MODEL_GROUPS = {"zoo": ZOO, "paper": PAPER_MODELS, "efficientnets": EFFICIENTNETS, "modern": MODERN_REFERENCES}

# EfficientNet's compound scaling constants (Tan and Le 2019, "EfficientNet: Rethinking
# Model Scaling for Convolutional Neural Networks", ICML): depth d = ALPHA**phi, width
# w = BETA**phi, resolution r = GAMMA**phi, chosen so that ALPHA * BETA**2 * GAMMA**2 ~ 2.
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15


def resolve_models(names) -> list[str]:
    """keras.applications names (any case) or a group (zoo, paper, efficientnets, modern), in order."""
    if isinstance(names, str):
        names = [names]
    chosen: list[str] = []
    for name in names:
        group = MODEL_GROUPS.get(str(name).lower())
        for model in group or [get_backbone(name).name]:
            if model not in chosen:
                chosen.append(model)
    if not chosen:
        raise CourseError("No models given. Name keras.applications backbones, e.g. --models efficientnetb0 resnet50.")
    return chosen


def model_family(name: str) -> str:
    """The family a backbone belongs to, grouped as Garg et al. (2022) group them."""
    for prefix, family in (
        ("EfficientNetV2", "EfficientNetV2"), ("EfficientNet", "EfficientNet"), ("ResNet", "ResNet"),
        ("DenseNet", "DenseNet"), ("Inception", "Inception"), ("Xception", "Inception"), ("VGG", "VGG"),
        ("ConvNeXt", "ConvNeXt"), ("MobileNet", "MobileNet"),
    ):  # fmt: skip
        if name.startswith(prefix):
            return family
    return "other"


def describe_backbone(name: str, image_size: int | None = None) -> dict:
    """Everything read off one keras.applications backbone (no top, random weights).

    Parameters, multiply-accumulates for one image (:func:`covid_tutorial.fundamentals.count_macs`;
    a FLOP count in the strict sense is about twice that), convolution layers, and for
    the EfficientNet families the MBConv blocks (one ``*_project_conv`` each), the blocks
    with squeeze-and-excitation and the widths of the stem and of the last convolution.
    """
    from .fundamentals import layer_costs

    spec = get_backbone(name)
    size = image_size or spec.native_size
    model = spec.constructor(include_top=False, weights=None, input_shape=(size, size, 3))
    costs = layer_costs(model)
    names = costs["layer"]
    convolutions = costs["type"].isin(["Conv2D", "DepthwiseConv2D", "SeparableConv2D"])
    row = {
        "model": spec.name,
        "family": model_family(spec.name),
        "in_paper": spec.name in PAPER_MODELS,
        "native_size": spec.native_size,
        "image_size": size,
        "preprocessing": spec.preprocessing,
        "params": int(model.count_params()),
        "macs": int(costs["macs"].sum()),
        "conv_layers": int(convolutions.sum()),
        "blocks": int(names.str.fullmatch(r"block\d+[a-z]_project_conv").sum()),
        "se_blocks": int(names.str.fullmatch(r"block\d+[a-z]_se_reduce").sum()),
        "stem_width": _filters(model, ("stem_conv", "conv1_conv", "conv1", "block1_conv1")),
        "head_width": int(model.output.shape[-1]),
    }
    del model
    keras.backend.clear_session()
    return row


def _filters(model, candidates) -> int | None:
    for candidate in candidates:
        try:
            return int(model.get_layer(candidate).filters)
        except (ValueError, AttributeError):
            continue
    return None


def zoo_table(names=ZOO, image_size: int | None = None, *, progress: bool = False) -> pd.DataFrame:
    """One row per backbone: size, cost and shape, computed from the models (see :func:`describe_backbone`).

    ``image_size`` None uses each model's native resolution (the ImageNet training size
    the Keras documentation gives, which is also the default input of its classifier).
    Adds ``params_M``, ``GMACs`` and ``GFLOPs`` (= 2 x MACs).
    """
    rows = []
    for name in resolve_models(names):
        start = time.perf_counter()
        rows.append(describe_backbone(name, image_size))
        if progress:
            print(f"  {rows[-1]['model']}: {rows[-1]['params'] / 1e6:.1f} M parameters ({time.perf_counter() - start:.0f} s)", flush=True)
    table = pd.DataFrame(rows)
    table["params_M"] = table["params"] / 1e6
    table["GMACs"] = table["macs"] / 1e9
    table["GFLOPs"] = 2 * table["GMACs"]
    return table


def efficientnet_scaling(zoo: pd.DataFrame) -> pd.DataFrame:
    """Compound scaling of EfficientNet-B0..B7 read off a :func:`zoo_table` (rows B0..B7).

    Each model's depth (MBConv blocks), width (channels of the last convolution) and
    resolution relative to B0, the scaling exponent phi that each of them implies with
    Tan and Le's constants (d = 1.2**phi, w = 1.1**phi, r = 1.15**phi), and the cost ratio
    the rule predicts (d * w**2 * r**2) next to the measured one.
    """
    rows = zoo.set_index("model").loc[[m for m in EFFICIENTNETS if m in set(zoo["model"])]]
    if "EfficientNetB0" not in rows.index:
        raise CourseError("efficientnet_scaling needs EfficientNetB0 in the zoo table, as the baseline.")
    base = rows.loc["EfficientNetB0"]
    out = pd.DataFrame(index=rows.index)
    out["resolution"] = rows["native_size"]
    out["blocks"] = rows["blocks"]
    out["head_width"] = rows["head_width"]
    out["params_M"] = rows["params_M"]
    out["GMACs"] = rows["GMACs"]
    out["depth_ratio"] = rows["blocks"] / base["blocks"]
    out["width_ratio"] = rows["head_width"] / base["head_width"]
    out["resolution_ratio"] = rows["native_size"] / base["native_size"]
    out["phi_from_depth"] = np.log(out["depth_ratio"]) / math.log(ALPHA)
    out["phi_from_width"] = np.log(out["width_ratio"]) / math.log(BETA)
    out["phi_from_resolution"] = np.log(out["resolution_ratio"]) / math.log(GAMMA)
    out["predicted_cost_ratio"] = out["depth_ratio"] * out["width_ratio"] ** 2 * out["resolution_ratio"] ** 2
    out["measured_cost_ratio"] = rows["macs"] / base["macs"]
    return out


# ---------------------------------------------------------------- devices and speed


def device_name() -> str:
    """The device TensorFlow computes on: GPU names from tf.config, else the CPU model and cores."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = []
        for gpu in gpus:
            try:
                details = tf.config.experimental.get_device_details(gpu)
            except (ValueError, RuntimeError):
                details = {}
            names.append(details.get("device_name", gpu.name))
        return "GPU: " + ", ".join(names)
    cpu, cores = cpu_name_and_cores()
    return f"CPU: {cpu}, {cores} cores"


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


class HostAugmentedBatches(EpochBatches):
    """:class:`covid_tutorial.train.EpochBatches` with the augmentation done in the input pipeline.

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


def measure_inference(model, *, batch_size: int = 16, repeats: int = 20, warmup: int = 2, jit_compile: bool = False) -> dict:
    """Latency of one image and throughput of a batch, for a compiled forward pass.

    The forward pass is a ``tf.function`` (XLA-compiled with ``jit_compile``), traced
    once for any batch size; each timed call waits for its result (``.numpy()``), so a
    GPU's asynchronous launches are not mistaken for speed. Medians over ``repeats``
    calls; the first call (tracing, compiling) is timed apart. Weights do not change the
    arithmetic, so random weights give the same timings as trained ones.
    """
    import tensorflow as tf

    size = int(model.input_shape[1])
    forward = tf.function(
        lambda x: model(x, training=False),
        jit_compile=jit_compile,
        input_signature=[tf.TensorSpec((None, size, size, 3), tf.float32)],
    )
    rng = np.random.default_rng(0)
    one = tf.constant(rng.uniform(0, 255, (1, size, size, 3)).astype("float32"))
    batch = tf.constant(rng.uniform(0, 255, (batch_size, size, size, 3)).astype("float32"))
    first_call = time_call(lambda: forward(one).numpy())
    forward(batch).numpy()  # XLA compiles once per shape
    for _ in range(warmup):
        forward(one).numpy()
    single = [time_call(lambda: forward(one).numpy()) for _ in range(max(1, repeats))]
    batched = [time_call(lambda: forward(batch).numpy()) for _ in range(max(3, repeats // 4))]
    return {
        "latency_ms": 1000 * float(np.median(single)),
        "latency_p10_ms": 1000 * float(np.percentile(single, 10)),
        "latency_p90_ms": 1000 * float(np.percentile(single, 90)),
        "images_per_s": batch_size / float(np.median(batched)),
        "first_call_s": first_call,
    }


def measure_training(model, *, batch_size: int = 16, steps: int = 5, jit_compile: bool = False, learning_rate: float = 1e-4) -> dict:
    """Images per second of one training step (forward, backward, Adam update) on random data."""
    size, classes = int(model.input_shape[1]), int(model.output_shape[-1])
    compile_classifier(model, learning_rate)
    model.jit_compile = jit_compile
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (batch_size, size, size, 3)).astype("float32")
    y = np.eye(classes, dtype="float32")[rng.integers(0, classes, batch_size)]
    first_step = time_call(lambda: model.train_on_batch(x, y))
    model.train_on_batch(x, y)
    times = [time_call(lambda: model.train_on_batch(x, y)) for _ in range(max(1, steps))]
    return {"train_images_per_s": batch_size / float(np.median(times)), "train_first_step_s": first_step}


def speed_table(
    models,
    *,
    image_size: int | None = None,
    batch_size: int = 16,
    precisions=("float32",),
    xla=(False,),
    repeats: int = 20,
    train_steps: int = 5,
    train: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """Images per second of each model under each (precision, XLA) setting, on this device.

    ``precisions`` holds "float32" and/or "mixed_float16"; ``xla`` holds False and/or
    True. For each model and setting: latency of one image and inference throughput
    (:func:`measure_inference`) and, with ``train``, training throughput
    (:func:`measure_training`; the augmentation is left out, as it runs on the host
    under XLA). ``image_size`` None uses each model's native resolution.
    """
    rows = []
    device = device_name()
    for name in resolve_models(models):
        spec = get_backbone(name)
        size = max(image_size or spec.native_size, spec.min_size)
        for precision in precisions:
            for jit in xla:
                if progress:
                    print(f"==> {spec.name} at {size} px, {precision}, XLA {'on' if jit else 'off'}", flush=True)
                keras.backend.clear_session()
                model = build_for_comparison(
                    spec.name, 3, size, None, seed=0, mixed_precision=precision == "mixed_float16", augment=False
                )
                row = {"model": spec.name, "image_size": size, "batch_size": batch_size, "precision": precision, "xla": bool(jit)}
                row.update(measure_inference(model, batch_size=batch_size, repeats=repeats, jit_compile=jit))
                if train:
                    row.update(measure_training(model, batch_size=batch_size, steps=train_steps, jit_compile=jit))
                row["device"] = device
                rows.append(row)
                del model
    keras.backend.clear_session()
    table = pd.DataFrame(rows)
    table.attrs.update(device=device, date=_now(), versions=_versions())
    return table


def speed_markdown(table: pd.DataFrame) -> str:
    """The speed table as Markdown, with what was measured and where."""
    lines = [
        f"Device: {table.attrs.get('device', table['device'].iloc[0])}; "
        f"{table.attrs.get('versions', '')}; measured {table.attrs.get('date', '')}",
        "",
        "| model | px | batch | precision | XLA | latency ms (1 image) | inference images/s | training images/s |",
        "|---|---:|---:|---|---|---:|---:|---:|",
    ]
    for row in table.itertuples():
        train = f"{row.train_images_per_s:.1f}" if "train_images_per_s" in table else "-"
        lines.append(
            f"| {row.model} | {row.image_size} | {row.batch_size} | {row.precision} | {'on' if row.xla else 'off'} "
            f"| {row.latency_ms:.1f} | {row.images_per_s:.1f} | {train} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- folds and files

RESULTS_GLOB = "results*.csv"
MANIFEST = "comparison.json"
FOLDS_FILE = "folds.csv"
VALIDATION_FRACTION = 0.15  # of each training fold's patients: the paper's 85/15 split
KEY_COLUMNS = ["model", "repeat", "fold"]
RUN_COLUMNS = [
    *KEY_COLUMNS, "split_seed", "train_seed", "image_size", "weights", "precision", "xla", "eager", "batch_size",
    "epochs_trained", "n_train_images", "n_val_images", "n_test_images", "n_test_patients", "params",
    "train_s", "latency_ms", "images_per_s", "device", "finished",
]  # fmt: skip
MUST_MATCH = (
    "data_fingerprint", "class_names", "folds", "seed", "image_size", "batch_size", "head_epochs",
    "fine_tune_epochs", "learning_rate", "weights", "mixed_precision", "validation_fraction",
)  # fmt: skip


def metric_column(class_name: str, metric: str) -> str:
    """Name of a metric's column in a results file: ``"<class>|<metric>"``, e.g. ``"macro|f1"``."""
    return f"{class_name}|{metric}"


def results_columns(class_names) -> list[str]:
    return RUN_COLUMNS + [metric_column(c, m) for c in [*class_names, "macro"] for m in METRIC_NAMES]


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _versions() -> str:
    import tensorflow as tf

    return f"covid_tutorial {__version__}, TensorFlow {tf.__version__}, Keras {keras.__version__}"


def data_fingerprint(table: pd.DataFrame) -> str:
    """SHA-1 of the sorted (file name, label, patient) triples: the same data on any machine or path."""
    lines = sorted(f"{Path(p).name}|{label}|{patient}" for p, label, patient in table[["path", "label", "patient_id"]].itertuples(index=False))
    return hashlib.sha1("\n".join(lines).encode()).hexdigest()


def comparison_folds(table: pd.DataFrame, folds: int, repeats: int, seed: int = 0) -> pd.DataFrame:
    """The table with one column ``fold_r`` per repeat r: stratified, patient-grouped k-fold.

    Repeat r uses :func:`covid_tutorial.data.patient_folds` with seed ``seed + r``; the
    folds depend on the data and the seed only, never on the model, so every model is
    trained and tested on the same patients in each round.
    """
    table = table.reset_index(drop=True).copy()
    for r in range(repeats):
        table[f"fold_{r}"] = patient_folds(table, folds=folds, seed=seed + r)["fold"].to_numpy()
    return table


def shared_patients(assignment: pd.Series, patients: pd.Series) -> list:
    """Patients whose images sit in more than one fold (must be empty)."""
    counts = pd.DataFrame({"fold": assignment, "patient_id": patients}).groupby("patient_id")["fold"].nunique()
    return counts[counts > 1].index.tolist()


def validation_rows(train_table: pd.DataFrame, seed: int, fraction: float = VALIDATION_FRACTION) -> np.ndarray:
    """A patient-grouped, stratified validation share (about ``fraction``) of a training fold."""
    per_class = int(train_table.groupby("label")["patient_id"].nunique().min())
    if per_class < 2:
        raise DataError(
            "a training fold has a class with fewer than 2 patients, so no patient-wise validation "
            "split is possible. Use fewer folds or more data."
        )
    splits = int(min(max(2, round(1 / fraction)), per_class))
    return _grouped_folds(train_table.reset_index(drop=True), splits, seed) == 0


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/n"`` (1-based) -> (i, n): this machine does the runs i, i+n, i+2n, ... of the task list."""
    if text is None:
        return None
    try:
        index, count = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise CourseError(f"--shard {text!r}: write it as i/n, e.g. 1/3 on the first of three machines.") from None
    if not 1 <= index <= count:
        raise CourseError(f"--shard {text!r}: i must lie between 1 and n.")
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


def metric_columns(results: pd.DataFrame) -> list[str]:
    return [c for c in results.columns if "|" in c]


def results_long(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, repeat, fold, class, metric) with its ``value``."""
    columns = metric_columns(results)
    long = results[KEY_COLUMNS + columns].melt(id_vars=KEY_COLUMNS, var_name="column", value_name="value")
    long[["class", "metric"]] = long["column"].str.split("|", n=1, expand=True)
    return long.drop(columns="column")[KEY_COLUMNS + ["class", "metric", "value"]]


# ---------------------------------------------------------------- statistics


def _t_quantile(confidence: float, df) -> np.ndarray:
    return stats.t.ppf(0.5 + confidence / 2, np.maximum(np.asarray(df, dtype=float), 1))


def summarize_results(results: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Mean and 95% CI across rounds per (model, class, metric), naive and corrected.

    ``ci_low``/``ci_high`` come from :func:`covid_tutorial.metrics.summarize_folds`:
    mean +- t(k-1) sd / sqrt(k) over the k rounds, the interval the paper reports. Rounds
    of a k-fold cross-validation share most of their training data and are not
    independent, so that interval is too narrow; ``ci_low_corrected``/``ci_high_corrected``
    widen it with Nadeau and Bengio's correction: sd * sqrt(1/k + n_test/n_train).
    """
    summary = summarize_folds(results_long(results), confidence=confidence)
    ratio = (results["n_test_images"] / results["n_train_images"]).groupby(results["model"]).mean()
    summary["test_train_ratio"] = summary["model"].map(ratio)
    t = _t_quantile(confidence, summary["k"] - 1)
    half = t * summary["sd"] * np.sqrt(1 / summary["k"] + summary["test_train_ratio"])
    summary["ci_low_corrected"] = summary["mean"] - half
    summary["ci_high_corrected"] = summary["mean"] + half
    return summary


def corrected_resampled_ttest(scores_a, scores_b, test_train_ratio: float, confidence: float = 0.95) -> dict:
    """Nadeau and Bengio's (2003) corrected resampled t-test of two models on the same rounds.

    With d_j = a_j - b_j on each of the J rounds (same training and test patients for
    both models), mean d and variance s^2 (ddof 1):

        t = mean(d) / sqrt((1/J + n_test/n_train) * s^2),   J - 1 degrees of freedom.

    The plain paired t-test uses 1/J alone and, because the rounds share training data,
    rejects far too often; the n_test/n_train term (1/(k-1) for k folds) corrects that
    (Bouckaert and Frank 2004 use it for repeated k-fold). Returns t, p (two-sided), the
    corrected CI of the mean difference, and the naive t and p for contrast.
    """
    d = np.asarray(scores_a, dtype=float) - np.asarray(scores_b, dtype=float)
    d = d[np.isfinite(d)]
    rounds = len(d)
    out = {"rounds": rounds, "mean_difference": float(d.mean()) if rounds else np.nan, "test_train_ratio": float(test_train_ratio)}
    if rounds < 2:
        return {**out, "sd_difference": np.nan, "t": np.nan, "df": np.nan, "p_value": np.nan,
                "ci_low": np.nan, "ci_high": np.nan, "t_naive": np.nan, "p_naive": np.nan}  # fmt: skip
    sd = float(d.std(ddof=1))
    df = rounds - 1
    se = sd * math.sqrt(1 / rounds + test_train_ratio)
    se_naive = sd * math.sqrt(1 / rounds)
    mean = out["mean_difference"]

    def t_and_p(standard_error):
        if standard_error == 0:
            return (0.0, 1.0) if mean == 0 else (math.copysign(math.inf, mean), 0.0)
        t = mean / standard_error
        return t, float(2 * stats.t.sf(abs(t), df))

    t, p = t_and_p(se)
    t_naive, p_naive = t_and_p(se_naive)
    half = float(_t_quantile(confidence, df)) * se
    return {**out, "sd_difference": sd, "t": t, "df": df, "p_value": p, "ci_low": mean - half,
            "ci_high": mean + half, "t_naive": t_naive, "p_naive": p_naive}  # fmt: skip


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of p-values for several comparisons at once."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def paired_tests(results: pd.DataFrame, metric: str = "f1", class_name: str = "macro", models=None, leaders: int = 3) -> pd.DataFrame:
    """Corrected resampled t-tests between the leading models, round by round.

    ``models`` None takes the ``leaders`` models with the highest mean of
    (``class_name``, ``metric``); every pair of them is tested on the rounds both
    finished. ``p_holm`` adjusts the p-values for the number of pairs.
    """
    column = metric_column(class_name, metric)
    means = results.groupby("model")[column].mean().sort_values(ascending=False)
    chosen = list(means.index[:leaders]) if models is None else resolve_models(models)
    rows = []
    for i, first in enumerate(chosen):
        for second in chosen[i + 1 :]:
            a = results[results["model"] == first].set_index(["repeat", "fold"])
            b = results[results["model"] == second].set_index(["repeat", "fold"])
            common = a.index.intersection(b.index)
            ratio = float((a.loc[common, "n_test_images"] / a.loc[common, "n_train_images"]).mean()) if len(common) else np.nan
            test = corrected_resampled_ttest(a.loc[common, column], b.loc[common, column], ratio)
            rows.append({"model_a": first, "model_b": second, "class": class_name, "metric": metric,
                         "mean_a": float(a.loc[common, column].mean()), "mean_b": float(b.loc[common, column].mean()),
                         **test})  # fmt: skip
    table = pd.DataFrame(rows)
    if not table.empty:
        valid = table["p_value"].notna()
        table["p_holm"] = np.nan
        table.loc[valid, "p_holm"] = holm(table.loc[valid, "p_value"])
    return table


def pareto_front(cost, score) -> np.ndarray:
    """True for the points no other point beats: none is at least as cheap *and* at least as good (one strictly)."""
    cost, score = np.asarray(cost, dtype=float), np.asarray(score, dtype=float)
    front = np.zeros(len(cost), dtype=bool)
    for i in range(len(cost)):
        if not (np.isfinite(cost[i]) and np.isfinite(score[i])):
            continue
        dominated = (cost <= cost[i]) & (score >= score[i]) & ((cost < cost[i]) | (score > score[i]))
        front[i] = not dominated.any()
    return front


def leaderboard(results: pd.DataFrame, summary: pd.DataFrame | None = None, metric: str = "f1") -> pd.DataFrame:
    """One row per model: macro ``metric`` (mean, corrected CI), rounds, parameters, latency, images/s, device."""
    summary = summarize_results(results) if summary is None else summary
    macro = summary[(summary["class"] == "macro") & (summary["metric"] == metric)].set_index("model")
    per_model = results.groupby("model").agg(
        rounds=("fold", "size"), params_M=("params", lambda p: p.iloc[0] / 1e6), latency_ms=("latency_ms", "median"),
        images_per_s=("images_per_s", "median"), image_size=("image_size", "first"), device=("device", "first"),
    )  # fmt: skip
    board = per_model.join(macro[["mean", "ci_low", "ci_high", "ci_low_corrected", "ci_high_corrected"]])
    board = board.rename(columns={"mean": f"macro_{metric}"}).sort_values(f"macro_{metric}", ascending=False)
    board["front_latency"] = pareto_front(board["latency_ms"], board[f"macro_{metric}"])
    board["front_params"] = pareto_front(board["params_M"], board[f"macro_{metric}"])
    return board


def summary_table(summary: pd.DataFrame, metrics=("f1", "sensitivity", "specificity", "precision", "roc_auc"),
                  corrected: bool = True, digits: int = 3) -> pd.DataFrame:  # fmt: skip
    """Models x classes (macro first, then each class) as rows, metrics as columns: "mean [low, high]"."""
    low, high = ("ci_low_corrected", "ci_high_corrected") if corrected else ("ci_low", "ci_high")
    shown = summary[summary["metric"].isin(metrics)].copy()
    shown["cell"] = [
        f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" if np.isfinite(m) else "-"
        for m, lo, hi in zip(shown["mean"], shown[low].fillna(np.nan), shown[high].fillna(np.nan))
    ]
    wide = shown.pivot_table(index=["model", "class"], columns="metric", values="cell", aggfunc="first")
    classes = ["macro"] + [c for c in dict.fromkeys(summary["class"]) if c != "macro"]
    models = list(dict.fromkeys(summary["model"]))
    order = [(m, c) for m in models for c in classes if (m, c) in wide.index]
    return wide.loc[order, [m for m in metrics if m in wide.columns]]


def plot_pareto(board: pd.DataFrame, metric: str = "f1", title: str | None = None):
    """Macro ``metric`` (mean, corrected 95% CI) against latency per image and against parameters."""
    import matplotlib.pyplot as plt

    score = f"macro_{metric}"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, cost, label, front in (
        (axes[0], "latency_ms", "latency per image, ms (log scale)", "front_latency"),
        (axes[1], "params_M", "parameters, millions (log scale)", "front_params"),
    ):
        error = np.vstack([board[score] - board["ci_low_corrected"], board["ci_high_corrected"] - board[score]])
        ax.errorbar(board[cost], board[score], yerr=np.nan_to_num(error), fmt="o", capsize=3, alpha=0.8)
        for name, row in board.iterrows():
            ax.annotate(name, (row[cost], row[score]), fontsize=8, xytext=(4, 4), textcoords="offset points")
        line = board[board[front]].sort_values(cost)
        ax.step(line[cost], line[score], where="post", color="tab:red", alpha=0.6, label="Pareto front")
        ax.set(xscale="log", xlabel=label)
        ax.legend(loc="lower right", fontsize=8)
    axes[0].set_ylabel(f"macro {metric.upper() if metric == 'f1' else metric} (mean, 95% CI corrected)")
    device = board["device"].dropna().unique()
    fig.suptitle(title or f"Score against cost; latency on {', '.join(device)}", fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- the protocol


def _manifest_settings(settings: dict) -> dict:
    return json.loads(json.dumps(settings, default=str))


def _check_manifest(out: Path, settings: dict, command: str | None) -> dict:
    path = out / MANIFEST
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except ValueError as err:
            raise RunError(f"{path}: unreadable ({err}). Remove it or use another --out.") from None
        changed = {key: (saved["settings"].get(key), settings.get(key)) for key in MUST_MATCH if saved["settings"].get(key) != settings.get(key)}
        if changed:
            detail = "; ".join(f"{k}: was {old!r}, now {new!r}" for k, (old, new) in changed.items())
            raise RunError(
                f"{out}: the comparison there was made with other settings ({detail}). Resume it with the same "
                "data and settings (models and repeats may be added), or use another --out."
            )
        if settings["repeats"] > saved["settings"].get("repeats", 0):
            saved["settings"]["repeats"] = settings["repeats"]
            _write_json(path, saved)
        return saved
    manifest = {
        "format": 1,
        "protocol": "stratified patient-grouped k-fold, repeated with seeds seed + r; same folds for every model; "
        "validation: a patient-grouped share of each training fold; see covid_tutorial.compare",
        "settings": settings,
        "created": _now(),
        "command": command,
        "versions": _versions(),
    }
    _write_json(path, manifest)
    return manifest


def _write_json(path: Path, content: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(content, indent=2, default=str))
    os.replace(tmp, path)


def _check_folds(out: Path, folds_table: pd.DataFrame, repeats: int) -> None:
    path = out / FOLDS_FILE
    columns = [f"fold_{r}" for r in range(repeats)]
    current = folds_table.assign(image=[Path(p).name for p in folds_table["path"]])[["image", "label", "patient_id", *columns]]
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
    current.to_csv(path, index=False)


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


def run_one(
    model_name: str,
    images: np.ndarray,
    folds_table: pd.DataFrame,
    class_names: list[str],
    *,
    repeat: int,
    fold: int,
    settings: dict,
    mixed_precision: bool = False,
    xla: bool = False,
    eager: bool = False,
    latency: dict | None = None,
    latency_repeats: int = 20,
    callbacks=(),
) -> tuple[dict, dict]:
    """Train ``model_name`` on every fold but ``fold`` of ``repeat``, test it on ``fold``; one results row.

    The training fold loses a patient-grouped validation share (early stopping, the best
    epoch's weights); test patients are never seen in training. Without pretrained
    weights, BatchNorm's running statistics are then recomputed on the training images
    (:func:`covid_tutorial.explain.recalibrate_batchnorm`): after the few steps of a small
    run they still remember their initial values. Returns (row, latency):
    pass the latency back in to skip timing the same model again in this process.
    """
    spec = get_backbone(model_name)
    size = int(images.shape[1])
    split_seed = settings["seed"] + repeat
    train_seed = settings["seed"] + 1000 * repeat + fold
    test = (folds_table[f"fold_{repeat}"] == fold).to_numpy()
    train_idx = np.flatnonzero(~test)
    val = validation_rows(folds_table.iloc[train_idx], seed=train_seed, fraction=settings["validation_fraction"])
    fit_idx, val_idx = train_idx[~val], train_idx[val]
    labels = one_hot(folds_table["label"], class_names)

    keras.backend.clear_session()
    seed_everything(train_seed)
    model = build_for_comparison(
        spec.name, len(class_names), size, settings["weights"], seed=train_seed, mixed_precision=mixed_precision, augment=not xla
    )
    batches = (HostAugmentedBatches if xla else EpochBatches)(
        images[fit_idx], labels[fit_idx], batch_size=settings["batch_size"], seed=train_seed
    )
    val_ds = dataset_from_arrays(images[val_idx], labels[val_idx], batch_size=settings["batch_size"])
    start = time.perf_counter()
    history = train_two_stage(
        model, batches, val_ds,
        pretrained=settings["weights"] is not None,
        head_epochs=settings["head_epochs"],
        fine_tune_epochs=settings["fine_tune_epochs"],
        learning_rate=settings["learning_rate"],
        class_weight=class_weights(folds_table["label"].iloc[fit_idx], class_names),
        verbose=0,
        callbacks=[ExecutionOptions(run_eagerly=eager, jit_compile=xla), *callbacks],
    )  # fmt: skip
    if settings["weights"] is None:  # from scratch: running BatchNorm statistics from the training fold
        recalibrate_batchnorm(model, images[fit_idx], batch_size=settings["batch_size"])
    train_seconds = time.perf_counter() - start
    test_batches = dataset_from_arrays(images[test], batch_size=settings["batch_size"])  # float32 RGB batch by batch
    probabilities = np.asarray(model.predict(test_batches, verbose=0), dtype=float)
    y_true = np.array([class_names.index(label) for label in folds_table["label"][test]])
    scores = classification_metrics(
        y_true, probabilities, class_names, groups=folds_table["patient_id"][test], n_bootstrap=0
    )
    if latency is None:
        latency = measure_inference(model, batch_size=settings["batch_size"], repeats=latency_repeats, jit_compile=xla)
    row = {
        "model": spec.name, "repeat": repeat, "fold": fold, "split_seed": split_seed, "train_seed": train_seed,
        "image_size": size, "weights": settings["weights"] or "none",
        "precision": "mixed_float16" if mixed_precision else "float32", "xla": bool(xla), "eager": bool(eager),
        "batch_size": settings["batch_size"], "epochs_trained": len(history),
        "n_train_images": int(len(train_idx)), "n_val_images": int(len(val_idx)), "n_test_images": int(test.sum()),
        "n_test_patients": int(folds_table["patient_id"][test].nunique()), "params": int(model.count_params()),
        "train_s": train_seconds, "latency_ms": latency["latency_ms"], "images_per_s": latency["images_per_s"],
        "device": device_name(), "finished": _now(),
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
    unmapped: str = "error",
    command: str | None = None,
    progress: bool = True,
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

    Defaults come from the profile: image size (None in ``gpu``: each model's native
    size), weights, batch size, epochs, learning rate, folds, repeats. ``max_runs`` stops
    after that many new runs; ``on_result(row)`` is called after each one is saved.
    ``eager`` runs the training steps without building a graph, which is faster only
    for the tiny runs of the ``ci`` profile. Not for clinical use.
    """
    profile = get_profile(profile)
    out = Path(out)
    models = resolve_models(models)
    shard = parse_shard(shard) if isinstance(shard, (str, type(None))) else tuple(shard)
    if isinstance(data, pd.DataFrame):
        table, data_name = data.reset_index(drop=True), f"a table of {len(data)} images"
    else:
        table, data_name = load_dataset(data, image_dir, label_map=label_map, unmapped=unmapped), str(data)
        data_dir = Path(data) if Path(data).is_dir() else Path(data).parent
        if out.resolve().is_relative_to(data_dir.resolve()):
            raise DataError(f"{out}: inside the data folder {data_dir}; the course never writes into input data.")
    class_names = [name for name in CLASS_NAMES if name in set(table["label"])]
    settings = {
        "data": data_name,
        "data_fingerprint": data_fingerprint(table),
        "n_images": int(len(table)),
        "n_patients": int(table["patient_id"].nunique()),
        "class_names": class_names,
        "folds": int(folds or profile.folds),
        "repeats": int(repeats or profile.repeats),
        "seed": int(seed),
        "image_size": image_size or profile.image_size or "native",
        "batch_size": int(batch_size or profile.batch_size),
        "head_epochs": int(profile.head_epochs if head_epochs is None else head_epochs),
        "fine_tune_epochs": int(profile.fine_tune_epochs if fine_tune_epochs is None else fine_tune_epochs),
        "learning_rate": float(learning_rate or profile.learning_rate),
        "weights": profile.weights,
        "mixed_precision": bool(mixed_precision),
        "validation_fraction": VALIDATION_FRACTION,
        "profile": profile.name,
    }
    out.mkdir(parents=True, exist_ok=True)
    _check_manifest(out, _manifest_settings(settings), command)
    folds_table = comparison_folds(table, settings["folds"], settings["repeats"], settings["seed"])
    for r in range(settings["repeats"]):
        leaked = shared_patients(folds_table[f"fold_{r}"], folds_table["patient_id"])
        if leaked:  # pragma: no cover - patient_folds checks this too
            raise DataError(f"patients {leaked[:5]} are in two folds of repeat {r}.")
    _check_folds(out, folds_table, settings["repeats"])
    results_path = out / results_file_name(shard, results_file)
    columns = results_columns(class_names)
    tasks = comparison_tasks(models, settings["repeats"], settings["folds"])
    if shard is not None:
        tasks = [task for i, task in enumerate(tasks) if i % shard[1] == shard[0] - 1]
    done = set(map(tuple, read_results(out)[KEY_COLUMNS].itertuples(index=False)))
    todo = [(r, k, m) for r, k, m in tasks if (m, r, k) not in done]
    if progress:
        print(f"==> {len(tasks) - len(todo)} of {len(tasks)} runs already in {out}; {len(todo)} to do "
              f"({len(models)} models, {settings['folds']} folds x {settings['repeats']} repeats) on {device_name()}",
              flush=True)  # fmt: skip
    if max_runs is not None:
        todo = todo[: max(0, int(max_runs))]
    images = _ImageCache(folds_table, progress)
    latencies = _LATENCIES  # weights do not change the timing: one measurement per model and setting per process
    for number, (repeat, fold, name) in enumerate(todo, start=1):
        spec = get_backbone(name)
        size = max(int(settings["image_size"]) if settings["image_size"] != "native" else spec.native_size, spec.min_size)
        key = (name, size, settings["batch_size"], mixed_precision, xla, latency_repeats)
        row, latencies[key] = run_one(
            name, images.get(size), folds_table, class_names, repeat=repeat, fold=fold, settings=settings,
            mixed_precision=mixed_precision, xla=xla, eager=eager, latency=latencies.get(key),
            latency_repeats=latency_repeats,
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


def markdown_table(table: pd.DataFrame, index: bool = True, digits: int = 3) -> str:
    """A DataFrame as a Markdown table (floats rounded to ``digits``), without extra packages."""
    frame = table.reset_index() if index else table

    def cell(value):
        if isinstance(value, (float, np.floating)):
            return "" if not np.isfinite(value) else f"{value:.{digits}f}"
        return str(value)

    names = [" / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in frame.columns]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def report_tables(out, *, metric: str = "f1", leaders: int = 3) -> dict:
    """The tables of a comparison folder, computed from its results files, without writing anything.

    ``results`` (every finished run, merged), ``summary`` (:func:`summarize_results`),
    ``leaderboard``, ``paired_tests`` and ``about`` (:func:`describe_comparison`).
    """
    out = Path(out)
    results = read_results(out)
    if results.empty:
        raise RunError(f"{out}: no finished runs in {RESULTS_GLOB}. Run `covid-tutorial compare DATA --out {out}` first.")
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
    from .report import figure_to_png

    out = Path(out)
    tables = report_tables(out, metric=metric, leaders=leaders)
    results, summary, board, tests, about = (tables[k] for k in ("results", "summary", "leaderboard", "paired_tests", "about"))
    results.to_csv(out / "merged_results.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    tests.to_csv(out / "paired_tests.csv", index=False)
    figure = plot_pareto(board, metric)
    figure_to_png(figure, out / "pareto.png")
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
        markdown_table(board),
        "",
        "## Per class and macro (mean [corrected 95% CI])",
        "",
        markdown_table(summary_table(summary)),
        "",
        "## Paired corrected resampled t-tests (Nadeau and Bengio 2003)",
        "",
        markdown_table(tests, index=False, digits=4) if not tests.empty else "Fewer than two models.",
        "",
        "Teaching material only: not for clinical use.",
    ]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tables


__all__ = [
    "ZOO", "PAPER_MODELS", "MODERN_REFERENCES", "EFFICIENTNETS", "resolve_models", "describe_backbone", "zoo_table",
    "efficientnet_scaling", "device_name", "to_mixed_precision", "ExecutionOptions", "HostAugmentedBatches", "measure_inference",
    "measure_training", "speed_table", "speed_markdown", "comparison_folds", "run_comparison", "read_results",
    "results_long", "summarize_results", "corrected_resampled_ttest", "paired_tests", "pareto_front", "leaderboard",
    "summary_table", "plot_pareto", "report_tables", "write_report", "describe_comparison", "markdown_table",
]  # fmt: skip
