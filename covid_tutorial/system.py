"""The machine and the file system: what every layer above may use.

Timing (:func:`time_call`) and the description of the machine a figure was measured on
(:func:`machine_description`, :func:`device_name`, :func:`software_versions`); handing freed
memory back to the system (:func:`release_memory`); atomic JSON files (:func:`write_json`);
content digests (:func:`sha1_of_file`); and the rule that the course never writes into
input data (:func:`refuse_output_inside`).
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as _dt
import gc
import hashlib
import json
import math
import os
import platform
import shutil
import sys
import threading
import time
from pathlib import Path

from . import __version__
from .errors import DataError

__all__ = [
    "running_on_colab",
    "colab_session_dir",
    "gpu_available",
    "cpu_name_and_cores",
    "machine_description",
    "time_call",
    "time_in_turns",
    "device_name",
    "release_memory",
    "refuse_output_inside",
    "data_root",
    "CACHE_ENV_VAR",
    "cache_dir",
    "start_tensorflow_quietly",
    "sha1_of_file",
    "atomic_path",
    "progress_bar",
    "keras_verbosity",
    "write_json",
    "local_time_now",
    "software_versions",
]


def running_on_colab() -> bool:
    """Whether this process is a Colab kernel (Colab imports ``google.colab`` at start)."""
    return "google.colab" in sys.modules


def colab_session_dir() -> Path:
    """Colab's working folder, kept for the session and shown in its Files panel."""
    return Path("/content")


def gpu_available() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


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


def time_in_turns(calls: dict, repeats: int, warmup: int = 0) -> dict[str, list[float]]:
    """Seconds of each call of each function, timed in turns (A, B, A, B, ...) so that a
    busy machine slows all of them alike, after ``warmup`` untimed rounds."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            times[name].append(time_call(call))
    return times


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


def release_memory() -> None:
    """Collect garbage and hand the heap memory freed by training back to the system.

    TensorFlow frees a training run's tensors, but glibc keeps the freed pages for reuse,
    so the process still counts them; on Linux ``malloc_trim`` returns them, a few hundred
    MB after training ResNet50, which matters in a 2 GB Binder session.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to hand back this way
        pass


def refuse_output_inside(out, data) -> None:
    """The course never writes into input data: a :class:`DataError` when ``out`` is the
    folder of ``data`` (a folder, or a file such as a metadata CSV) or lies inside it."""
    out, data = Path(out), Path(data)
    data_dir = data if data.is_dir() else data.parent
    if out.resolve().is_relative_to(data_dir.resolve()):
        raise DataError(
            f"{out}: the output folder is inside the data folder {data_dir}; the course never "
            "writes into input data. Choose an output folder elsewhere (--out)."
        )


def sha1_of_file(path) -> str:
    """SHA-1 of a file's bytes: finds the same image under another name or in another folder."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha1").hexdigest()


def _redraws_in_place() -> bool:
    """Whether progress shown here is redrawn in place (a terminal, a notebook) rather than
    kept line after line (a log file, CI)."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def progress_bar(iterable=None, *, desc: str, enabled: bool = True, **options):
    """A tqdm progress bar that redraws on a terminal; in a log file or CI, where every
    redraw would be kept, it draws once at the start and once at the end, on one line."""
    from tqdm import tqdm

    interval = 0.1 if _redraws_in_place() else math.inf
    return tqdm(iterable, desc=desc, disable=not enabled, mininterval=interval, **options)


def keras_verbosity(progress: bool) -> int:
    """``verbose`` for Keras's ``fit``: its step-by-step bar on a terminal or in a notebook,
    one line per epoch in a log file or CI, nothing without ``progress``."""
    if not progress:
        return 0
    return 1 if _redraws_in_place() else 2


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path, *, first_wins: bool = False):
    """A temporary name beside ``path`` to write a file or a folder to; when the block ends
    without an error it becomes ``path`` in one rename, so a reader (or a run resumed after a
    crash) sees the old content or the new, never half of it. A folder replaces a folder,
    unless ``first_wins``: then a folder that another process completed at ``path`` in the
    meantime is kept and this one dropped. The name keeps ``path``'s suffix (``np.savez``
    adds ``.npz`` to a name without it)."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{path.name}")
    _remove(tmp)
    try:
        yield tmp
        if first_wins and tmp.is_dir():
            with contextlib.suppress(OSError):  # a folder of the same name is there, whole
                os.rename(tmp, path)
            return
        if tmp.is_dir():
            _remove(path)
        os.replace(tmp, path)
    finally:
        _remove(tmp)


def write_json(path: Path, content: dict) -> None:
    """``content`` as indented JSON, written atomically (:func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(content, indent=2, default=str))


def local_time_now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def software_versions() -> str:
    import keras
    import tensorflow as tf

    return f"covid_tutorial {__version__}, TensorFlow {tf.__version__}, Keras {keras.__version__}"


def data_root() -> Path:
    """``data/`` of the checkout when running from one; on Colab, a folder in its session
    storage (``/content/covid_tutorial_data``, in the Files panel); else a per-user cache."""
    checkout = Path(__file__).resolve().parents[1] / "data"
    if checkout.is_dir() and os.access(checkout, os.W_OK):
        return checkout
    if running_on_colab():
        return colab_session_dir() / "covid_tutorial_data"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "covid_tutorial"


CACHE_ENV_VAR = "COVID_TUTORIAL_CACHE"


def cache_dir(kind: str) -> Path:
    """A folder for derived files that can always be made again (decoded images, arrays
    read from archives): ``$COVID_TUTORIAL_CACHE/<kind>``, else ``<data root>/cache/<kind>``.
    Never inside a dataset's folder."""
    root = os.environ.get(CACHE_ENV_VAR)
    folder = (Path(root).expanduser() if root else data_root() / "cache") / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def _stderr_to_devnull():
    """Send the process's own stderr (file descriptor 2, where C++ libraries write) nowhere."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def start_tensorflow_quietly() -> None:
    """Import TensorFlow and find its devices with the start-up lines (absl, oneDNN, CUDA
    probing) kept off the terminal: no environment variable silences them in TF 2.21. What
    matters of them, the device, is said where it counts (``train`` names it, the
    benchmarks describe the machine)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_to_devnull():
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")

