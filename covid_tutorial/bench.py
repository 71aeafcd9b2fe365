"""Benchmarks: how fast the course's code runs on this machine, as ratios taken in one run.

- :func:`benchmark_predict`: one image through ``model.predict`` against compiled variants
  and the course predictor, and a batch's throughput (``covid-tutorial bench predict``);
- :func:`benchmark_gradcam`: Grad-CAM and Score-CAM of one image against one compiled
  forward pass (``covid-tutorial bench gradcam``);
- :func:`benchmark_input_pipeline`: tf-keras ImageDataGenerator against the course's
  tf.data pipeline (``covid-tutorial bench pipeline``);
- :func:`benchmark_image_loading`: reading DATA's images one by one in full against the
  course's loader and its cache (``covid-tutorial bench load``);
- :func:`speed_table`: images per second per model with mixed precision and XLA as
  options (``covid-tutorial compare speed``); :func:`measure_inference` also gives the
  comparison its latency column.

Each benchmark returns a result object (``PredictBenchmark``, ``GradcamBenchmark``,
``InputPipelineBenchmark``, ``ImageLoadingBenchmark``, ``SpeedTable``) that holds its
figures as attributes and prints as its command prints it: ``print(result)``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from . import __version__
from .data import load_images, one_hot, to_model_input
from .errors import DataError
from .explain import Explainer, GradCAM
from .models import (
    RandomAffine,
    build_classifier,
    get_backbone,
    resolve_models,
)
from .predict import Predictor
from .runs import load_run
from .system import (
    device_name,
    local_time_now,
    machine_description,
    software_versions,
    time_call,
    time_in_turns,
)
from .train import (
    build_for_comparison,
    compile_classifier,
)

__all__ = [
    "benchmark_predict",
    "PredictBenchmark",
    "benchmark_gradcam",
    "GradcamBenchmark",
    "benchmark_input_pipeline",
    "InputPipelineBenchmark",
    "benchmark_image_loading",
    "ImageLoadingBenchmark",
    "measure_inference",
    "measure_training",
    "speed_table",
    "SpeedTable",
    "append_speed_table",
]


def _load_average() -> float:
    """The 1-minute load average, NaN where the system does not keep one."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


# ---------------------------------------------------------------- bench predict


@dataclasses.dataclass(eq=False)
class PredictBenchmark:
    """What :func:`benchmark_predict` measured; ``str()`` is the Markdown report ``covid-tutorial bench predict`` prints.

    ``latency`` has a row per variant (median, 10th and 90th percentile in ms, first call in s,
    speed-up against ``model.predict``); ``throughput`` a row per batched variant.
    """

    run: str
    backbone: str
    image_size: int
    course_predictor: str
    max_abs_difference: float
    latency: pd.DataFrame
    throughput: pd.DataFrame
    machine: str
    load_average: tuple[float, float]
    date: str
    versions: str
    repeats: int

    def to_markdown(self) -> str:
        """What was measured, where, and the two tables, in Markdown."""
        course = self.latency.loc[self.latency["method"] == "course predictor", "speedup"].iloc[0]
        lines = [
            f"{self.backbone} at {self.image_size} px, RUN {self.run}",
            f"Machine: {self.machine}; 1-minute load average {self.load_average[0]:.1f} at the start, "
            f"{self.load_average[1]:.1f} at the end (above the core count, other jobs shared the CPU)",
            f"Software: {self.versions}; measured {self.date}",
            "",
            f"Latency of one image ({self.repeats} calls of each variant, taken in turns):",
            "",
            "| method | median ms | p10–p90 ms | first call s | speed-up vs model.predict |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in self.latency.itertuples():
            lines.append(
                f"| {row.method} | {row.median_ms:.1f} | {row.p10_ms:.1f}–{row.p90_ms:.1f} "
                f"| {row.first_call_s:.1f} | {row.speedup:.2f}× |"
            )
        lines += [
            "",
            f"Throughput, batches of {int(self.throughput['batch_size'].iloc[0])}:",
            "",
            "| method | median s per batch | images/s |",
            "|---|---:|---:|",
        ]
        for row in self.throughput.itertuples():
            lines.append(f"| {row.method} | {row.median_s:.3f} | {row.images_per_s:.1f} |")
        lines += [
            "",
            f"Course predictor ({self.course_predictor}): {course:.2f}× the speed of model.predict "
            f"for one image; largest difference in a probability: {self.max_abs_difference:.1e}.",
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_markdown()


def benchmark_predict(
    run, *, repeats: int = 30, batch_size: int = 16, batch_repeats: int = 5, warmup: int = 3, progress: bool = True
) -> PredictBenchmark:
    """Latency of one image and throughput of a batch: ``model.predict`` against compiled variants.

    The variants are timed in turns (one call of each, then again), so that a machine
    shared with other work slows them all alike; medians and the 10th-90th percentile
    range are reported. The first call of each variant (tracing, folding, compiling) is
    timed apart. Weights do not change the arithmetic, so any trained RUN of a backbone
    and image size gives that backbone's figures.
    """
    loaded = load_run(run)
    model, size = loaded.model, loaded.image_size
    load_before = _load_average()
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, size, size)).astype(np.uint8)
    many = rng.integers(0, 256, (batch_size, size, size)).astype(np.uint8)
    one_rgb, many_rgb = to_model_input(one, size), to_model_input(many, size)

    def say(text):
        if progress:
            print(f"==> {text}", flush=True)

    first_call, variants = {}, {}
    say("model.predict (Keras)")
    first_call["model.predict"] = time_call(lambda: model.predict(one_rgb, verbose=0))
    variants["model.predict"] = lambda: model.predict(one_rgb, verbose=0)
    builders = {
        "tf.function": dict(fold=False, jit_compile=False),
        "tf.function + XLA": dict(fold=False, jit_compile=True),
        "BatchNorm folded + XLA": dict(fold=True, jit_compile=True),
        "course predictor": dict(),
    }
    predictors = {}
    for name, options in builders.items():
        say(name)
        start = time.perf_counter()
        predictors[name] = Predictor(model, loaded.class_names, size, **options)
        predictors[name].predict_arrays(one)
        first_call[name] = time.perf_counter() - start
        variants[name] = (lambda p: lambda: p.predict_arrays(one))(predictors[name])
    course = predictors["course predictor"]
    reference = model.predict(one_rgb, verbose=0)
    difference = float(np.abs(course.predict_arrays(one) - reference).max())

    say(f"latency: {warmup} warm-up and {repeats} timed calls of each variant, in turns")
    times = time_in_turns(variants, repeats, warmup)
    base = np.median(times["model.predict"])
    latency = pd.DataFrame(
        [
            {
                "method": name,
                "median_ms": 1000 * np.median(t),
                "p10_ms": 1000 * np.percentile(t, 10),
                "p90_ms": 1000 * np.percentile(t, 90),
                "first_call_s": first_call[name],
                "speedup": base / np.median(t),
            }
            for name, t in times.items()
        ]
    )

    say(f"throughput: batches of {batch_size}, {batch_repeats} timed calls of each, in turns")
    batched = {
        "model.predict": lambda: model.predict(many_rgb, batch_size=batch_size, verbose=0),
        "course predictor": lambda: course.predict_arrays(many),
    }
    batch_times = time_in_turns(batched, batch_repeats, warmup=1)
    throughput = pd.DataFrame(
        [
            {"method": name, "batch_size": batch_size, "median_s": np.median(t), "images_per_s": batch_size / np.median(t)}
            for name, t in batch_times.items()
        ]
    )
    return PredictBenchmark(
        run=str(loaded.folder),
        backbone=loaded.config.backbone,
        image_size=size,
        course_predictor=f"BatchNorm folded, tf.function, XLA {'on' if course.jit_compile else 'off'}",
        max_abs_difference=difference,
        latency=latency,
        throughput=throughput,
        machine=machine_description(),
        load_average=(load_before, _load_average()),
        date=_dt.datetime.now().astimezone().isoformat(timespec="minutes"),
        versions=f"covid_tutorial {__version__}, TensorFlow {tf.__version__}, Keras {keras.__version__}",
        repeats=repeats,
    )


# ---------------------------------------------------------------- bench gradcam


@dataclasses.dataclass(frozen=True)
class GradcamBenchmark:
    """What :func:`benchmark_gradcam` measured, in ms and as multiples of one forward pass.

    ``str()`` is what ``covid-tutorial bench gradcam`` prints: :meth:`to_dict` as JSON, then
    one sentence. The Score-CAM fields are None when Score-CAM was skipped (and then left
    out of :meth:`to_dict`).
    """

    model: str
    image_size: int
    layer: str
    machine: str
    load_average: float
    date: str
    repeats: int
    forward_ms: float
    gradcam_ms: float
    gradcam_over_forward: float
    scorecam_maps: int | None = None
    scorecam_ms: float | None = None
    scorecam_over_forward: float | None = None

    def to_dict(self) -> dict:
        """The figures as a plain dict, without the Score-CAM keys when Score-CAM was skipped."""
        result = dataclasses.asdict(self)
        if self.scorecam_ms is None:
            for key in ("scorecam_maps", "scorecam_ms", "scorecam_over_forward"):
                del result[key]
        return result

    def __str__(self) -> str:
        sentence = (
            f"Grad-CAM of one image costs {self.gradcam_over_forward:.2f} forward passes "
            f"({self.gradcam_ms:.1f} ms vs {self.forward_ms:.1f} ms)"
        )
        if self.scorecam_ms is not None:
            sentence += f"; Score-CAM with {self.scorecam_maps} maps costs {self.scorecam_over_forward:.1f}."
        else:
            sentence += "."
        return json.dumps(self.to_dict(), indent=2) + "\n" + sentence


def benchmark_gradcam(
    model: keras.Model | None = None,
    *,
    backbone: str = "resnet50",
    image_size: int = 224,
    repeats: int = 20,
    warmup: int = 3,
    scorecam_maps: int = 32,
    scorecam_repeats: int = 3,
    layer_name: str | None = None,
    seed: int = 0,
) -> GradcamBenchmark:
    """Time Grad-CAM of one image against one compiled forward pass of the same model.

    Both are timed in the same run, after ``warmup`` calls, as the median of ``repeats``
    calls on one image. The forward pass is ``model(x, training=False)`` in a
    ``tf.function``; Grad-CAM is :class:`GradCAM` (its gradient model built once and
    compiled), including the conversion of its result to NumPy. Score-CAM with
    ``scorecam_maps`` maps (0 skips it) is timed the same way with ``scorecam_repeats``.
    Without ``model`` a ``backbone`` classifier with random weights is built: timing does
    not depend on the weights' values.
    """

    if model is None:
        model = build_classifier(backbone, 3, image_size, weights=None, seed=seed)
    size = model.input.shape[1]
    image = np.random.default_rng(seed).uniform(0, 255, (1, size, size, 3)).astype(np.float32)
    tensor = tf.constant(image)
    forward = tf.function(lambda x: model(x, training=False))
    cam = GradCAM(model, layer_name)

    def timed(call, count):
        return float(np.median([time_call(call) for _ in range(count)]))

    def run_forward():
        return forward(tensor).numpy()

    def run_gradcam():
        return cam(image, 0)

    for _ in range(warmup):
        run_forward()
        run_gradcam()
    forward_s = timed(run_forward, repeats)
    gradcam_s = timed(run_gradcam, repeats)
    measured = dict(
        model=model.name,
        image_size=int(size),
        layer=cam.layer_name,
        machine=machine_description(),
        load_average=_load_average(),
        date=_dt.datetime.now().astimezone().isoformat(timespec="minutes"),
        repeats=repeats,
        forward_ms=1000 * forward_s,
        gradcam_ms=1000 * gradcam_s,
        gradcam_over_forward=gradcam_s / forward_s,
    )
    if scorecam_maps:
        scorecam = Explainer(model, "scorecam", layer_name, max_maps=scorecam_maps)
        scorecam(image, 0)  # warm-up: builds predict
        scorecam_s = timed(lambda: scorecam(image, 0), scorecam_repeats)
        measured.update(
            scorecam_maps=scorecam_maps,
            scorecam_ms=1000 * scorecam_s,
            scorecam_over_forward=scorecam_s / forward_s,
        )
    return GradcamBenchmark(**measured)


# ---------------------------------------------------------------- bench pipeline


@dataclasses.dataclass(eq=False)
class InputPipelineBenchmark:
    """What :func:`benchmark_input_pipeline` measured: ``table`` has a row per pipeline.

    Columns: ``pipeline``, ``epoch_1_images_per_s``, ``later_epochs_images_per_s`` and
    ``course_speedup_later_epochs`` (the course pipeline's later-epoch rate over each row's).
    ``str()`` is the table as ``covid-tutorial bench pipeline`` prints it, with the course
    pipeline's speed-up over the first row.
    """

    table: pd.DataFrame

    def __str__(self) -> str:
        rates = self.table["later_epochs_images_per_s"]
        ratio = rates.iloc[-1] / rates.iloc[0]
        return (
            self.table.to_string(index=False, float_format=lambda v: f"{v:.1f}")
            + f"\nCourse pipeline against ImageDataGenerator as older tutorials use it (epochs 2+): {ratio:.1f}x"
        )


def benchmark_input_pipeline(
    table: pd.DataFrame, image_size: int = 224, batch_size: int = 32, epochs: int = 3, seed: int = 0
) -> InputPipelineBenchmark:
    """Images per second of the old way and the course's way, on the same images and augmentation.

    (a) tf-keras ``ImageDataGenerator.flow_from_dataframe``, as older tutorials load images:
        every epoch decodes and resizes each file again, then applies rotation, shift,
        zoom and shear one image at a time in NumPy/SciPy; once in RGB, as those tutorials
        do, and once in grayscale, the fairest setting of the old tool.
    (b) the course pipeline: decode and resize once (:func:`load_images`, timed in epoch 1),
        cached uint8 tensors, then one fused :class:`~covid_tutorial.models.RandomAffine` per batch.
    Every candidate warps each image once per epoch with the same ranges and hands out
    float32 batches; the course pipeline warps the one real channel of a radiograph (the
    copy to three channels comes after, in :func:`dataset_from_arrays`). Epoch 1 is reported apart;
    the "later epochs" rate is what a training run of many epochs sees.
    """
    try:
        from tf_keras.preprocessing.image import ImageDataGenerator
    except ImportError:
        raise DataError("the benchmark needs tf-keras: pip install tf-keras") from None

    labels = table["label"].astype(str).tolist()
    frame = pd.DataFrame({"path": table["path"].tolist(), "label": labels})

    def flow(color_mode):
        return ImageDataGenerator(
            rotation_range=10, width_shift_range=0.05, height_shift_range=0.05, zoom_range=0.1, shear_range=5
        ).flow_from_dataframe(
            frame, x_col="path", y_col="label", target_size=(image_size, image_size), color_mode=color_mode,
            batch_size=batch_size, seed=seed, shuffle=True, validate_filenames=False,
        )

    augment = RandomAffine(seed=seed)

    def course_epochs():
        images, kept = load_images(table, image_size, progress=False, cache=False)
        dataset = (
            tf.data.Dataset.from_tensor_slices((images[..., None], one_hot(kept["label"], sorted(set(labels)))))
            .shuffle(len(images), seed=seed)
            .batch(batch_size)
            .map(lambda x, y: (augment(tf.cast(x, tf.float32), training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE)
        )
        yield len(images)
        while True:
            for batch, _ in dataset:
                batch.numpy()
            yield len(images)

    def keras_epochs(color_mode):
        generator = flow(color_mode)
        while True:
            seen = 0
            for _ in range(len(generator)):
                seen += len(next(generator)[0])
            yield seen

    rows = []
    candidates = (
        ("ImageDataGenerator, RGB (as older tutorials load)", keras_epochs("rgb")),
        ("ImageDataGenerator, grayscale", keras_epochs("grayscale")),
        ("course pipeline (tf.data, cached uint8)", course_epochs()),
    )
    for name, epochs_iter in candidates:
        start = time.perf_counter()
        count = next(epochs_iter)
        if name.startswith("course"):  # first epoch = decode once + one augmented pass
            count = next(epochs_iter)
        first = count / (time.perf_counter() - start)
        start = time.perf_counter()
        later = sum(next(epochs_iter) for _ in range(epochs - 1)) / (time.perf_counter() - start)
        rows.append({"pipeline": name, "epoch_1_images_per_s": first, "later_epochs_images_per_s": later})
    result = pd.DataFrame(rows)
    course = result["later_epochs_images_per_s"].iloc[-1]
    result["course_speedup_later_epochs"] = course / result["later_epochs_images_per_s"]
    return InputPipelineBenchmark(result)


# ---------------------------------------------------------------- bench load


@dataclasses.dataclass(eq=False)
class ImageLoadingBenchmark:
    """What :func:`benchmark_image_loading` measured: ``table`` has a row per way of loading.

    Columns: ``load``, ``images``, ``seconds`` and ``cpu_seconds`` (medians), ``images_per_s``,
    the largest and mean pixel difference from the first way, and ``ratio``: how many times
    faster than the way named in ``faster_than``. ``str()`` is the Markdown table
    ``covid-tutorial bench load`` prints, with the machine and its load below it.
    """

    table: pd.DataFrame
    image_size: int
    workers: int
    repeats: int
    load_average_before: float
    load_average_after: float
    machine: str

    def to_markdown(self) -> str:
        shown = self.table.copy()
        shown["ratio"] = [f"{r:.1f}x" if r == r else "" for r in shown["ratio"]]
        note = (
            f"\n{self.machine}; {self.workers} workers, {self.image_size} px, median of "
            f"{self.repeats} run(s); 1-minute load average {self.load_average_before:.2f} "
            f"before, {self.load_average_after:.2f} after"
        )
        return shown.to_markdown(index=False, floatfmt=".3g") + note

    def __str__(self) -> str:
        return self.to_markdown()


def benchmark_image_loading(
    table: pd.DataFrame,
    image_size: int = 224,
    *,
    workers: int | None = None,
    repeats: int = 1,
    cache_folder=None,
) -> ImageLoadingBenchmark:
    """Seconds to load a table's images three ways, in one run (``covid-tutorial bench load``).

    (a) before: one file after the other, every file decoded in full
        (``load_images(..., workers=1, cache=False, reduced_decode=False)``);
    (b) the course's loader with an empty cache: a thread pool of ``workers`` threads
        (default: the cores this process may use), JPEGs decoded at reduced size;
    (c) the same call again: every image comes from the cache.

    Every file is read once, untimed, before the first timing, so that each way finds the
    files in the operating system's page cache alike: what is measured is decoding and
    resizing, not the disk. With ``repeats`` > 1 the three ways are timed in turns (a, b,
    c, a, b, c, ...), each (b) with an empty cache of its own, and medians are reported.
    The cache lives in a temporary folder (inside ``cache_folder`` when given) and is
    removed afterwards. The pixels of (b) and (c) are compared with those of (a): equal
    for PNG, within a few grey levels for JPEG (the reduced decode).
    """
    load_before = os.getloadavg()[0]  # other work on the machine slows (b) more than (a)
    for path in table["path"]:  # untimed: warm the page cache for every way alike
        Path(path).read_bytes()
    if cache_folder is not None:
        Path(cache_folder).mkdir(parents=True, exist_ok=True)
    names = (
        "before: one thread, full decode",
        "course loader, empty cache",
        "course loader, cached (second load)",
    )
    seconds = {name: [] for name in names}
    cpu_seconds = {name: [] for name in names}  # CPU time of all threads: the work, whatever the machine's load
    loaded = {}
    with tempfile.TemporaryDirectory(prefix="bench-load-", dir=cache_folder) as scratch:
        for turn in range(repeats):
            cache = Path(scratch) / f"cache-{turn}"
            calls = (
                lambda: load_images(table, image_size, progress=False, workers=1, cache=False, reduced_decode=False),
                lambda: load_images(table, image_size, progress=False, workers=workers, cache_folder=cache),
                lambda: load_images(table, image_size, progress=False, workers=workers, cache_folder=cache),
            )
            for name, call in zip(names, calls):
                start, cpu_start = time.perf_counter(), time.process_time()
                loaded[name] = call()[0]
                seconds[name].append(time.perf_counter() - start)
                cpu_seconds[name].append(time.process_time() - cpu_start)
    before = loaded[names[0]].astype(np.int16)
    rows = []
    for name in names:
        difference = np.abs(loaded[name].astype(np.int16) - before)
        median = float(np.median(seconds[name]))
        rows.append({
            "load": name,
            "images": len(loaded[name]),
            "seconds": median,
            "images_per_s": len(loaded[name]) / median,
            "cpu_seconds": float(np.median(cpu_seconds[name])),
            "max_abs_difference": int(difference.max()),
            "mean_abs_difference": float(difference.mean()),
        })
    result = pd.DataFrame(rows)
    result["faster_than"] = ["", names[0], names[1]]
    result["ratio"] = [float("nan"), result["seconds"][0] / result["seconds"][1], result["seconds"][1] / result["seconds"][2]]
    return ImageLoadingBenchmark(
        table=result,
        image_size=image_size,
        workers=workers or len(os.sched_getaffinity(0)),
        repeats=repeats,
        load_average_before=load_before,
        load_average_after=os.getloadavg()[0],
        machine=machine_description(),
    )


# ---------------------------------------------------------------- compare speed


def measure_inference(model, *, batch_size: int = 16, repeats: int = 20, warmup: int = 2, jit_compile: bool = False) -> dict:
    """Latency of one image and throughput of a batch, for a compiled forward pass.

    The forward pass is a ``tf.function`` (XLA-compiled with ``jit_compile``), traced
    once for any batch size; each timed call waits for its result (``.numpy()``), so a
    GPU's asynchronous launches are not mistaken for speed. Medians over ``repeats``
    calls; the first call (tracing, compiling) is timed apart. Weights do not change the
    arithmetic, so random weights give the same timings as trained ones.
    """
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


@dataclasses.dataclass(eq=False)
class SpeedTable:
    """What :func:`speed_table` measured: ``table`` has a row per (model, precision, XLA) setting.

    Columns: ``model``, ``image_size``, ``batch_size``, ``precision``, ``xla``, the figures of
    :func:`measure_inference` (and of :func:`measure_training` unless inference only) and
    ``device``. ``str()`` is the Markdown table ``covid-tutorial compare speed`` prints, with
    what was measured and where; :func:`append_speed_table` adds the rows to a CSV.
    """

    table: pd.DataFrame
    device: str
    date: str
    versions: str

    def to_markdown(self) -> str:
        table = self.table
        shown = pd.DataFrame({
            "model": table["model"],
            "px": table["image_size"],
            "batch": table["batch_size"],
            "precision": table["precision"],
            "XLA": np.where(table["xla"], "on", "off"),
            "latency ms (1 image)": table["latency_ms"],
            "inference images/s": table["images_per_s"],
            "training images/s": table["train_images_per_s"] if "train_images_per_s" in table else "-",
        })  # fmt: skip
        about = f"Device: {self.device}; {self.versions}; measured {self.date}"
        return about + "\n\n" + shown.to_markdown(index=False, floatfmt=".1f")

    def __str__(self) -> str:
        return self.to_markdown()


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
) -> SpeedTable:
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
    return SpeedTable(pd.DataFrame(rows), device=device, date=local_time_now(), versions=software_versions())


def append_speed_table(speed: SpeedTable, folder) -> Path:
    """Append the rows of :func:`speed_table` to ``folder/speed.csv`` (header written once) and return its path.

    Each device adds its own rows, named in the ``device`` column, so one file collects the
    measurements of several machines.
    """
    path = Path(folder) / "speed.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    speed.table.to_csv(path, mode="a", header=not path.is_file(), index=False)
    return path
