"""Predict: the course's predictor for a trained RUN, decision thresholds, and a benchmark.

``model.predict`` is made for datasets: every call builds a data adapter, an iterator,
callbacks and a progress bar, then runs the network layer by layer. For one image at a
time that is wasted work. :class:`Predictor` does two things once, when it is made:

- it folds every BatchNormalization that follows a convolution into that convolution's
  kernel and bias (:func:`fold_batchnorm`). At inference BatchNorm is a fixed affine map
  per channel, so ``conv`` then ``BN`` is the same function as one convolution with
  rescaled weights, and the arithmetic of 53 layers of ResNet50 disappears;
- it traces the folded model into one ``tf.function`` with a fixed input signature, so
  each call runs a compiled graph with no Python in between.

XLA (``jit_compile``) is switched on only where it helps: on a GPU. On a CPU the
benchmark measures it next to the other variants, so you can see whether it does
(``covid-tutorial bench predict RUN``; figures in docs/benchmarks.md). Freezing the whole
graph into constants is faster still on a CPU, but TensorFlow's optimizer then needs
more than a gigabyte of extra memory for ResNet50, which a 2 GB Binder session cannot
spare.

Thresholds: :func:`threshold_for_sensitivity` picks, on validation patients, the highest
threshold on p(COVID-19) that reaches a target sensitivity; :func:`decide` applies it
(COVID-19 when p(COVID-19) reaches it, else the most probable class);
:func:`operating_point` scores the decisions with bootstrap CIs over patients.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from .data import pad_and_resize, read_image
from .errors import DataError


def gpu_available() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _as_rgb_batch(images, size: int) -> np.ndarray:
    """Float32 RGB (n, size, size, 3) in 0..255 from gray (n, h, w[, 1]) or RGB images."""
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(f"images must be (n, h, w), (n, h, w, 1) or (n, h, w, 3) arrays, not {images.shape}.")
    if images.shape[1:3] != (size, size):
        raise DataError(
            f"images are {images.shape[1]}x{images.shape[2]} px but the model takes {size}x{size}; "
            "resize them with covid_tutorial.data.pad_and_resize, or use Predictor.predict_files."
        )
    images = images.astype(np.float32)
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


class _FoldedAway(keras.layers.Layer):
    """Stands where a BatchNormalization was folded into the convolution before it."""

    def call(self, inputs, *args, **kwargs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


def _foldable_pairs(model) -> dict[str, str]:
    """{Conv2D name: BatchNormalization name} for every BN fed only by a linear Conv2D that feeds nothing else."""
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        source = layer.input._keras_history.operation
        if (
            type(source) is keras.layers.Conv2D
            and source.get_config()["activation"] == "linear"
            and len(source._outbound_nodes) == 1
        ):
            pairs[source.name] = layer.name
    return pairs


def fold_batchnorm(model) -> "keras.Model":
    """A copy of ``model`` for inference with each BatchNormalization folded into the Conv2D
    before it: kernel * s and (bias - mean) * s + beta, with s = gamma / sqrt(variance + eps).
    The same function to float rounding, with fewer operations; not for training."""
    pairs = _foldable_pairs(model)
    folded_norms = set(pairs.values())

    def clone(layer):
        if layer.name in folded_norms:
            return _FoldedAway(name=layer.name)
        config = layer.get_config()
        if layer.name in pairs:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        target = copy.get_layer(layer.name)
        if layer.name in pairs:
            norm = model.get_layer(pairs[layer.name])
            kernel = layer.kernel.numpy()
            bias = layer.bias.numpy() if layer.use_bias else np.zeros(kernel.shape[-1], np.float32)
            gamma = norm.gamma.numpy() if norm.scale else np.ones_like(bias)
            beta = norm.beta.numpy() if norm.center else np.zeros_like(bias)
            scale = gamma / np.sqrt(norm.moving_variance.numpy() + norm.epsilon)
            target.set_weights([kernel * scale, (bias - norm.moving_mean.numpy()) * scale + beta])
        elif layer.name not in folded_norms and layer.weights:
            target.set_weights(layer.get_weights())
    return copy


class Predictor:
    """A trained classifier compiled once for fast inference.

    >>> predictor = Predictor.from_run("runs/resnet50")
    >>> predictor.predict_files(["chest.png"])        # a table: predicted class, probabilities
    >>> predictor.predict_arrays(images)              # (n, classes) probabilities

    ``fold=True`` (the default) folds BatchNorm into the convolutions first (see the module
    docstring); ``jit_compile`` defaults to XLA on a GPU and off on a CPU. ``model`` stays
    the original Keras model (Grad-CAM needs its layers).
    """

    def __init__(self, model, class_names, image_size: int, *, fold: bool = True, jit_compile: bool | None = None,
                 batch_size: int = 16):
        self.model = model
        self.class_names = list(class_names)
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        self.fold = fold
        self.jit_compile = gpu_available() if jit_compile is None else bool(jit_compile)
        self._call = self._compile()

    @classmethod
    def from_run(cls, run, **options) -> "Predictor":
        """Load a RUN folder (Keras safe mode, version and consistency checks) and compile it."""
        from .pipeline import LoadedRun, load_run

        loaded = run if isinstance(run, LoadedRun) else load_run(run)
        predictor = cls(loaded.model, loaded.class_names, loaded.image_size, **options)
        predictor.run = loaded
        return predictor

    def _compile(self):
        import tensorflow as tf

        network = fold_batchnorm(self.model) if self.fold else self.model
        spec = tf.TensorSpec((None, self.image_size, self.image_size, 3), tf.float32)
        return tf.function(
            lambda images: network(images, training=False), input_signature=[spec], jit_compile=self.jit_compile
        )

    def predict_arrays(self, images) -> np.ndarray:
        """Class probabilities (n, classes) for images at the model's size: uint8 or float
        in 0..255, grayscale (n, h, w) or RGB (n, h, w, 3)."""
        import tensorflow as tf

        batch = _as_rgb_batch(images, self.image_size)
        parts = [
            self._call(tf.constant(batch[start : start + self.batch_size])).numpy()
            for start in range(0, len(batch), self.batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.class_names)), np.float32)

    def load_files(self, paths) -> np.ndarray:
        """Read image files as the RUN's training did (grayscale, padded to a square, resized).
        Every unreadable file is named in one :class:`DataError`; nothing is predicted then."""
        images, problems = [], []
        for path in paths:
            try:
                images.append(pad_and_resize(read_image(path), self.image_size))
            except DataError as err:
                problems.append(str(err))
        if problems:
            raise DataError(
                f"{len(problems)} of {len(paths)} image(s) could not be read, so nothing was predicted: "
                + " ".join(problems)
            )
        return np.stack(images) if images else np.zeros((0, self.image_size, self.image_size), np.uint8)

    def predict_files(self, paths) -> pd.DataFrame:
        """One row per file: ``image``, ``predicted`` and one probability column per class."""
        paths = [str(p) for p in paths]
        probabilities = self.predict_arrays(self.load_files(paths))
        table = pd.DataFrame({"image": paths})
        table["predicted"] = [self.class_names[k] for k in probabilities.argmax(axis=1)]
        for k, name in enumerate(self.class_names):
            table[name] = probabilities[:, k]
        return table


def save_gradcam_overlays(predictor: Predictor, paths, predicted, out_dir) -> list[Path]:
    """Grad-CAM of each image's predicted class, blended over the image, as PNG files in ``out_dir``."""
    import cv2

    from .explain import GradCAM, overlay_heatmap

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


# ---------------------------------------------------------------- operating thresholds


def threshold_for_sensitivity(
    y_true, probabilities, class_names, *, positive: str = "COVID-19", target: float = 0.95
) -> float:
    """The highest threshold on p(``positive``) at which :func:`decide` finds at least
    ``target`` of the ``positive`` images. 1.0 when the most probable class already does,
    because the threshold can only add ``positive`` answers. Choose it on validation
    patients, then report it on test patients."""
    k = list(class_names).index(positive)
    probabilities = np.asarray(probabilities, dtype=float)
    is_positive = np.asarray(y_true) == k
    if not is_positive.any():
        raise DataError(f"no {positive} images to choose a threshold on; use a split that has some.")
    scores = probabilities[is_positive, k]
    found = probabilities[is_positive].argmax(axis=1) == k
    if found.mean() >= target:
        return 1.0
    for threshold in np.unique(scores)[::-1]:
        if np.mean(found | (scores >= threshold)) >= target:
            return float(threshold)
    raise AssertionError("the lowest score finds every positive image")  # pragma: no cover


def decide(probabilities, class_names, *, positive: str = "COVID-19", threshold: float | None = None) -> np.ndarray:
    """Predicted class indices: ``positive`` whenever p(positive) >= ``threshold``, otherwise
    the most probable class. A threshold can only add ``positive`` answers, never remove
    one: it buys sensitivity with specificity. Without a threshold: the most probable class."""
    probabilities = np.asarray(probabilities, dtype=float)
    predicted = probabilities.argmax(axis=1)
    if threshold is None:
        return predicted
    k = list(class_names).index(positive)
    return np.where(probabilities[:, k] >= threshold, k, predicted)


def _binary_rates(is_positive, said_positive) -> np.ndarray:
    tp = np.sum(is_positive & said_positive)
    fn = np.sum(is_positive & ~said_positive)
    tn = np.sum(~is_positive & ~said_positive)
    fp = np.sum(~is_positive & said_positive)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.array([tp / (tp + fn), tn / (tn + fp), tp / (tp + fp), tn / (tn + fn)], dtype=float)


def operating_point(
    y_true, probabilities, class_names, *, positive: str = "COVID-19", threshold: float | None = None,
    groups=None, n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0,
) -> pd.DataFrame:
    """Sensitivity, specificity, precision (PPV) and NPV of ``positive`` against the rest for
    the decisions of :func:`decide`, with bootstrap CIs over ``groups`` (patients)."""
    k = list(class_names).index(positive)
    is_positive = np.asarray(y_true) == k
    said_positive = decide(probabilities, class_names, positive=positive, threshold=threshold) == k
    point = _binary_rates(is_positive, said_positive)
    groups = np.arange(len(is_positive)) if groups is None else np.asarray(groups)
    _, inverse = np.unique(groups, return_inverse=True)
    rows_of = [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)]
    rng = np.random.default_rng(seed)
    rounds = []
    for _ in range(n_bootstrap):
        rows = np.concatenate([rows_of[g] for g in rng.integers(0, len(rows_of), len(rows_of))])
        rounds.append(_binary_rates(is_positive[rows], said_positive[rows]))
    alpha = (1 - confidence) / 2
    with np.errstate(invalid="ignore"):
        low = np.nanquantile(np.array(rounds), alpha, axis=0) if rounds else np.full(4, np.nan)
        high = np.nanquantile(np.array(rounds), 1 - alpha, axis=0) if rounds else np.full(4, np.nan)
    table = pd.DataFrame(
        {"metric": ["sensitivity", "specificity", "precision", "npv"], "value": point, "ci_low": low, "ci_high": high}
    )
    table.attrs.update(threshold=threshold, positive=positive, n_images=len(is_positive), n_patients=len(rows_of))
    return table


# ---------------------------------------------------------------- benchmark


def cpu_name_and_cores() -> tuple[str, int]:
    """The CPU's model name (from /proc/cpuinfo where there is one) and the cores this process may use."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cpu, cores


def machine_description() -> str:
    """CPU model, the cores this process may use, memory and GPUs, in one line."""
    import psutil
    import tensorflow as tf

    cpu, cores = cpu_name_and_cores()
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{cpu}, {cores} CPU cores available, {memory:.0f} GiB memory, "
        + (f"GPU: {', '.join(gpus)}" if gpus else "no GPU")
        + f", {platform.system()} {platform.release()}"
    )


def time_call(function) -> float:
    """Seconds one call of ``function`` takes (wall clock)."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def benchmark_predict(
    run, *, repeats: int = 30, batch_size: int = 16, batch_repeats: int = 5, warmup: int = 3, progress: bool = True
) -> dict:
    """Latency of one image and throughput of a batch: ``model.predict`` against compiled variants.

    The variants are timed in turns (one call of each, then again), so that a machine
    shared with other work slows them all alike; medians and the 10th-90th percentile
    range are reported. The first call of each variant (tracing, folding, compiling) is
    timed apart. Weights do not change the arithmetic, so any trained RUN of a backbone
    and image size gives that backbone's figures.
    """
    import keras
    import tensorflow as tf

    from . import __version__
    from .pipeline import load_run

    loaded = load_run(run)
    model, size = loaded.model, loaded.image_size
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, size, size)).astype(np.uint8)
    many = rng.integers(0, 256, (batch_size, size, size)).astype(np.uint8)
    one_rgb, many_rgb = _as_rgb_batch(one, size), _as_rgb_batch(many, size)

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
    for _ in range(warmup):
        for call in variants.values():
            call()
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, call in variants.items():
            times[name].append(time_call(call))
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
    for call in batched.values():
        call()
    batch_times = {name: [] for name in batched}
    for _ in range(batch_repeats):
        for name, call in batched.items():
            batch_times[name].append(time_call(call))
    throughput = pd.DataFrame(
        [
            {"method": name, "batch_size": batch_size, "median_s": np.median(t), "images_per_s": batch_size / np.median(t)}
            for name, t in batch_times.items()
        ]
    )
    return {
        "run": str(loaded.folder),
        "backbone": loaded.config["backbone"],
        "image_size": size,
        "course_predictor": f"BatchNorm folded, tf.function, XLA {'on' if course.jit_compile else 'off'}",
        "max_abs_difference": difference,
        "latency": latency,
        "throughput": throughput,
        "machine": machine_description(),
        "load_average": (load_before, os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="minutes"),
        "versions": f"covid_tutorial {__version__}, TensorFlow {tf.__version__}, Keras {keras.__version__}",
        "repeats": repeats,
    }


def format_benchmark(result: dict) -> str:
    """The benchmark as Markdown: what was measured, where, and the two tables."""
    latency = result["latency"]
    course = latency.loc[latency["method"] == "course predictor", "speedup"].iloc[0]
    lines = [
        f"{result['backbone']} at {result['image_size']} px, RUN {result['run']}",
        f"Machine: {result['machine']}; 1-minute load average {result['load_average'][0]:.1f} at the start, "
        f"{result['load_average'][1]:.1f} at the end (above the core count, other jobs shared the CPU)",
        f"Software: {result['versions']}; measured {result['date']}",
        "",
        f"Latency of one image ({result['repeats']} calls of each variant, taken in turns):",
        "",
        "| method | median ms | p10–p90 ms | first call s | speed-up vs model.predict |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in latency.itertuples():
        lines.append(
            f"| {row.method} | {row.median_ms:.1f} | {row.p10_ms:.1f}–{row.p90_ms:.1f} "
            f"| {row.first_call_s:.1f} | {row.speedup:.2f}× |"
        )
    lines += [
        "",
        f"Throughput, batches of {int(result['throughput']['batch_size'].iloc[0])}:",
        "",
        "| method | median s per batch | images/s |",
        "|---|---:|---:|",
    ]
    for row in result["throughput"].itertuples():
        lines.append(f"| {row.method} | {row.median_s:.3f} | {row.images_per_s:.1f} |")
    lines += [
        "",
        f"Course predictor ({result['course_predictor']}): {course:.2f}× the speed of model.predict "
        f"for one image; largest difference in a probability: {result['max_abs_difference']:.1e}.",
    ]
    return "\n".join(lines)
