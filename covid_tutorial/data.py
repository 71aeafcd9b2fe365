"""Data: one door for every dataset, patient-wise splits, and the tf.data input pipeline.

``load_dataset`` reads either a folder per class or a metadata CSV plus an image
folder and returns one table with the columns ``path``, ``label`` and ``patient_id``.
Everything downstream (splits, training, evaluation, Grad-CAM) works on that table,
so a learner's own data goes through the same door as the phantoms.

Nothing here ever writes into the data folder it reads.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from .errors import DataError, DataWarning
from .labels import CLASS_NAMES, map_label

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
PUBLISHER_SPLITS = {"train": "train", "val": "val", "validation": "val", "test": "test"}
FILENAME_COLUMNS = ("filename", "imagename", "image", "file")
LABEL_COLUMNS = ("finding", "label", "class")
PATIENT_COLUMNS = ("patientid", "patient_id", "patient")


def _map_labels(raw: pd.Series, label_map: dict | None, unmapped: str, where: str) -> pd.Series:
    mapped, unknown = {}, []
    for value in raw.dropna().unique():
        try:
            mapped[value] = map_label(value, label_map)
        except KeyError:
            unknown.append(value)
    raw.attrs["unmapped_labels"] = sorted(map(str, unknown))
    if unknown and unmapped == "error":
        examples = ", ".join(f"{u!r}: None" for u in unknown[:3])
        raise DataError(
            f"{where}: {len(unknown)} label value(s) have no course class: "
            f"{sorted(map(str, unknown))}. Map them with label_map={{{examples}}} "
            f"(a course class {list(CLASS_NAMES)} or None to drop), or pass "
            f"unmapped='drop' (--drop-unmapped on the command line)."
        )
    if unknown:
        warnings.warn(
            f"{where}: dropped {int(raw.isin(unknown).sum())} image(s) whose labels have no "
            f"course class: {sorted(map(str, unknown))}",
            DataWarning,
            stacklevel=3,
        )
    labels = raw.map(mapped)
    labels.attrs["unmapped_labels"] = raw.attrs["unmapped_labels"]
    return labels


def read_csv_any_encoding(path: str | Path) -> pd.DataFrame:
    """Read a CSV in UTF-8 (with or without BOM), falling back to Latin-1 with a warning."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: metadata CSV not found. Check the path.")
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        if encoding != "utf-8-sig":
            warnings.warn(
                f"{path}: not UTF-8; read as {encoding}. Save it as UTF-8 to silence this.",
                DataWarning,
                stacklevel=2,
            )
        try:
            return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise DataError(
                f"{path}: not a readable CSV ({err}). Open it in a text editor and check "
                "the header line and the number of commas per row."
            ) from None
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def _pick_column(columns, candidates) -> str | None:
    by_lower = {c.strip().lower(): c for c in columns}
    return next((by_lower[c] for c in candidates if c in by_lower), None)


def _load_metadata(csv_path: Path, images: Path | None, label_map, views, modalities, unmapped):
    table = read_csv_any_encoding(csv_path)
    file_col = _pick_column(table.columns, FILENAME_COLUMNS)
    label_col = _pick_column(table.columns, LABEL_COLUMNS)
    missing = [
        name
        for name, col in (("filename or imagename", file_col), ("finding or label", label_col))
        if col is None
    ]
    if missing:
        raise DataError(
            f"{csv_path}: missing required column(s) {missing}; found {list(table.columns)}. "
            "Rename the columns that hold the image file name and the label."
        )
    for column, wanted in (("view", views), ("modality", modalities)):
        col = _pick_column(table.columns, (column,))
        if wanted and col is not None:
            keep = {str(w).strip().lower() for w in wanted}
            table = table[table[col].str.strip().str.lower().isin(keep)]
    folder_col = _pick_column(table.columns, ("folder",))
    root = Path(images) if images is not None else csv_path.parent

    def resolve(row) -> Path:
        name = row[file_col]
        if images is None and folder_col is not None and row[folder_col]:
            return root / row[folder_col] / name
        return root / name

    out = pd.DataFrame(
        {
            "path": [str(resolve(r)) for _, r in table.iterrows()],
            "source_label": table[label_col].to_numpy(),
        },
        index=table.index,
    )
    patient_col = _pick_column(table.columns, PATIENT_COLUMNS)
    if patient_col is not None:
        out["patient_id"] = table[patient_col].astype(str).to_numpy()
    else:
        out["patient_id"] = None
    for extra in ("view", "modality", "offset", "sex", "age"):
        col = _pick_column(table.columns, (extra,))
        if col is not None:
            out[extra] = table[col].to_numpy()
    mask_col = _pick_column(table.columns, ("mask_filename",))
    if mask_col is not None:
        out["mask_path"] = [
            str(csv_path.parent / name) if name else "" for name in table[mask_col]
        ]
    labels = _map_labels(out["source_label"], label_map, unmapped, str(csv_path))
    out["label"] = labels
    out.attrs["unmapped_labels"] = labels.attrs["unmapped_labels"]
    exists = out["path"].map(os.path.isfile)
    out.attrs["missing_files"] = out.loc[~exists, "path"].tolist()
    if not exists.all():
        gone = out.loc[~exists, "path"].tolist()
        warnings.warn(
            f"{csv_path}: skipped {len(gone)} row(s) whose image file is missing, "
            f"e.g. {gone[:3]}. Check the image folder (--images).",
            DataWarning,
            stacklevel=3,
        )
    return out[exists]


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _load_tree(root: Path, label_map, unmapped) -> pd.DataFrame:
    subfolders = _class_folders(root)
    if not subfolders:
        raise DataError(
            f"{root}: no class folders found. Give a folder with one subfolder per class "
            "(e.g. COVID-19/, Normal/, Pneumonia/) or a metadata CSV with --metadata."
        )
    publisher_split = all(p.name.lower() in PUBLISHER_SPLITS for p in subfolders)
    groups = (
        [(PUBLISHER_SPLITS[p.name.lower()], c) for p in subfolders for c in _class_folders(p)]
        if publisher_split
        else [(None, c) for c in subfolders]
    )
    rows, skipped, empty = [], [], []
    for split, class_dir in groups:
        files = sorted(f for f in class_dir.rglob("*") if f.is_file() and not f.name.startswith("."))
        images = [f for f in files if f.suffix.lower() in IMAGE_EXTENSIONS]
        skipped += [f for f in files if f.suffix.lower() not in IMAGE_EXTENSIONS]
        if not images:
            empty.append(str(class_dir))
        rows += [(str(f), class_dir.name, split) for f in images]
    if skipped:
        warnings.warn(
            f"{root}: skipped {len(skipped)} file(s) that are not images, e.g. "
            f"{[str(s) for s in skipped[:3]]}",
            DataWarning,
            stacklevel=3,
        )
    if empty:
        warnings.warn(f"{root}: empty class folder(s): {empty}", DataWarning, stacklevel=3)
    table = pd.DataFrame(rows, columns=["path", "source_label", "publisher_split"])
    if not publisher_split:
        table = table.drop(columns="publisher_split")
    labels = _map_labels(table["source_label"], label_map, unmapped, str(root))
    table["label"] = labels
    table["patient_id"] = None
    table.attrs.update(
        skipped_files=[str(s) for s in skipped],
        empty_class_folders=empty,
        unmapped_labels=labels.attrs["unmapped_labels"],
    )
    return table


def load_dataset(
    source: str | Path,
    images: str | Path | None = None,
    *,
    label_map: dict | None = None,
    views: list[str] | None = None,
    modalities: list[str] | None = None,
    unmapped: str = "error",
) -> pd.DataFrame:
    """Read a dataset into one table: ``path``, ``label``, ``patient_id`` (and any extras).

    ``source`` is a folder with one subfolder per class, a folder holding ``metadata.csv``,
    or a metadata CSV. For a CSV, image paths are ``images/filename`` when ``images`` is
    given, else ``<csv folder>/<folder column>/filename``. ``views`` and ``modalities``
    filter on those columns (e.g. ``views=["PA", "AP"]``). Labels are mapped to
    ``CLASS_NAMES`` by :func:`map_label`; ``unmapped`` is "error" or "drop".
    """
    if unmapped not in ("error", "drop"):
        raise ValueError("unmapped must be 'error' or 'drop'")
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source}: no such file or folder. Check the path.")
    if source.is_dir() and (source / "metadata.csv").is_file():
        source = source / "metadata.csv"
    if source.is_file():
        table = _load_metadata(source, images, label_map, views, modalities, unmapped)
    else:
        table = _load_tree(source, label_map, unmapped)
    found = dict(table.attrs)
    table = table[table["label"].notna()].reset_index(drop=True)
    table.attrs = found
    if table.empty:
        raise DataError(f"{source}: no usable images found (after filters and label mapping).")
    if table["patient_id"].isna().any() or (table["patient_id"] == "").any():
        no_id = table["patient_id"].isna() | (table["patient_id"] == "")
        table.loc[no_id, "patient_id"] = [f"image-{i:06d}" for i in table.index[no_id]]
        warnings.warn(
            f"{source}: {int(no_id.sum())} image(s) have no patient id, so each gets its own. "
            "A PATIENT-WISE SPLIT IS THEN IMPOSSIBLE: images of one patient may land in both "
            "training and test data and inflate every score. Add a patient id column if you can.",
            DataWarning,
            stacklevel=2,
        )
    columns = ["path", "label", "patient_id"]
    table = table[columns + [c for c in table.columns if c not in columns]]
    table.attrs = found
    return table


# ---------------------------------------------------------------- images


def read_image(path: str | Path) -> np.ndarray:
    """Read any image as 8-bit grayscale: 16-bit, RGB, RGBA and CMYK are converted.

    Raises :class:`DataError` naming the file when it cannot be decoded.
    """
    path = Path(path)
    try:
        buffer = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror}).") from None
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
    if image is None:
        raise DataError(
            f"{path}: not a readable image (corrupt, truncated or not an image). "
            "Re-export it as PNG or JPEG, or remove it."
        )
    if image.ndim == 3:
        code = {3: cv2.COLOR_BGR2GRAY, 4: cv2.COLOR_BGRA2GRAY}.get(image.shape[2])
        image = cv2.cvtColor(image, code) if code is not None else image[..., 0]
    if image.dtype != np.uint8:  # 16-bit or float: stretch the used range to 0..255
        image = image.astype(np.float32)
        low, high = float(image.min()), float(image.max())
        image = (image - low) / (high - low) * 255.0 if high > low else image * 0.0
        image = image.round().astype(np.uint8)
    return image


def pad_and_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Pad to a square with black (keeping the aspect ratio, no anatomy cropped), then resize."""
    height, width = image.shape[:2]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    square = cv2.copyMakeBorder(
        image, top, side - height - top, left, side - width - left, cv2.BORDER_CONSTANT, value=0
    )
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interpolation)


def load_images(
    table: pd.DataFrame, image_size: int, *, progress: bool = True
) -> tuple[np.ndarray, pd.DataFrame]:
    """Decode and resize every image once into a uint8 array of shape (N, size, size).

    Unreadable images are skipped, counted and named in a warning; the returned table
    holds only the rows that were loaded, in the same order as the array.
    """
    from tqdm import tqdm

    images, kept, failed = [], [], []
    paths = tqdm(table["path"], desc=f"Loading images at {image_size}px", disable=not progress)
    for index, path in zip(table.index, paths):
        try:
            images.append(pad_and_resize(read_image(path), image_size))
            kept.append(index)
        except DataError as err:
            failed.append(str(err))
    if failed:
        warnings.warn(
            f"skipped {len(failed)} unreadable image(s): " + "; ".join(failed[:3]),
            DataWarning,
            stacklevel=2,
        )
    if not images:
        raise DataError("none of the images could be read; see the warnings above.")
    return np.stack(images), table.loc[kept]


def one_hot(labels, class_names=CLASS_NAMES) -> np.ndarray:
    index = {name: i for i, name in enumerate(class_names)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise DataError(f"labels {unknown} are not among the classes {list(class_names)}.")
    return np.eye(len(class_names), dtype=np.float32)[[index[label] for label in labels]]


def dataset_from_arrays(images, labels=None, *, batch_size=16, training=False, seed=0):
    """A tf.data pipeline over cached uint8 images: shuffle, batch, to 3 channels, prefetch.

    Images stay uint8 and single-channel in memory (a third of the RGB size); each batch
    is converted to float32 RGB in 0..255. Augmentation and each backbone's own scaling
    live inside the model, so they run on the accelerator.
    """
    import tensorflow as tf

    images = np.asarray(images, dtype=np.uint8)[..., None]
    items = images if labels is None else (images, np.asarray(labels, dtype=np.float32))
    ds = tf.data.Dataset.from_tensor_slices(items)
    if training:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)

    def to_rgb(x):
        return tf.image.grayscale_to_rgb(tf.cast(x, tf.float32))

    ds = ds.batch(batch_size)
    ds = ds.map(to_rgb if labels is None else (lambda x, y: (to_rgb(x), y)))
    return ds.prefetch(tf.data.AUTOTUNE)


def make_dataset(
    table, image_size, batch_size, class_names=CLASS_NAMES, *, training=False, seed=0, progress=False
):
    """Load the images of ``table`` and return a batched ``tf.data.Dataset`` of (image, one-hot)."""
    images, kept = load_images(table, image_size, progress=progress)
    labels = one_hot(kept["label"], class_names)
    return dataset_from_arrays(images, labels, batch_size=batch_size, training=training, seed=seed)


# ---------------------------------------------------------------- patient-wise splits


def check_patient_disjoint(table: pd.DataFrame, column: str = "split") -> None:
    """Raise :class:`DataError` if any patient has images in two partitions of ``column``."""
    partitions = table.groupby("patient_id")[column].nunique()
    shared = partitions[partitions > 1].index.tolist()
    if shared:
        raise DataError(
            f"{len(shared)} patient(s) appear in more than one {column}: {shared[:5]}. "
            "That leaks patients between training and test data; split by patient."
        )


def _grouped_folds(table: pd.DataFrame, folds: int, seed: int) -> np.ndarray:
    per_class_patients = table.groupby("label")["patient_id"].nunique()
    if (per_class_patients < folds).any():
        raise DataError(
            f"cannot make {folds} patient-wise folds: some classes have fewer patients "
            f"({per_class_patients.to_dict()}). Use fewer folds or more data."
        )
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold = np.empty(len(table), dtype=int)
    for k, (_, test_rows) in enumerate(splitter.split(table, table["label"], table["patient_id"])):
        fold[test_rows] = k
    return fold


def patient_folds(table: pd.DataFrame, folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """Add a ``fold`` column: stratified, patient-grouped k-fold (scikit-learn), seeded."""
    table = table.reset_index(drop=True).copy()
    table["fold"] = _grouped_folds(table, folds, seed)
    check_patient_disjoint(table, "fold")
    return table


def split_by_patient(
    table: pd.DataFrame, val_size: float = 0.2, test_size: float = 0.2, seed: int = 0
) -> pd.DataFrame:
    """Add a ``split`` column (train/val/test) with every patient in exactly one partition.

    Both cuts use StratifiedGroupKFold, so class proportions stay close in each partition;
    the sizes are rounded to whole folds (0.2 means one fold in five).
    """
    table = table.reset_index(drop=True).copy()
    test_fold = _grouped_folds(table, max(2, round(1 / test_size)), seed) == 0
    table["split"] = np.where(test_fold, "test", "train")
    rest = table[~test_fold]
    val_folds = max(2, round((1 - test_size) / val_size))
    val_fold = _grouped_folds(rest, val_folds, seed + 1) == 0
    table.loc[rest.index[val_fold], "split"] = "val"
    check_patient_disjoint(table, "split")
    return table


# ---------------------------------------------------------------- the embedded phantoms


def data_root() -> Path:
    """``data/`` of the checkout when running from one, else a per-user cache folder."""
    checkout = Path(__file__).resolve().parents[1] / "data"
    if checkout.is_dir() and os.access(checkout, os.W_OK):
        return checkout
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "covid_tutorial"


def ensure_phantoms(profile=None, *, progress: bool = True) -> Path:
    """Generate the profile's phantom dataset unless it exists; return its folder.

    The folder name, ``data/phantoms-<profile>-<N>p-<size>px-<generator>``, changes with
    the profile's size and with the generator's code, so a stale copy is never reused.
    """
    import hashlib

    from . import phantoms
    from .profiles import get_profile

    profile = get_profile(profile)
    generator = hashlib.sha256(Path(phantoms.__file__).read_bytes()).hexdigest()[:8]
    name = f"phantoms-{profile.name}-{profile.phantom_patients}p-{profile.phantom_size}px-{generator}"
    out = data_root() / name
    if not (out / "metadata.csv").is_file():
        phantoms.generate_phantoms(
            out, patients=profile.phantom_patients, size=profile.phantom_size, seed=0, progress=progress
        )
    return out


# ---------------------------------------------------------------- input pipeline benchmark


def benchmark_input_pipeline(
    table: pd.DataFrame, image_size: int = 224, batch_size: int = 32, epochs: int = 3, seed: int = 0
) -> pd.DataFrame:
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
    import time

    import tensorflow as tf

    try:
        from tf_keras.preprocessing.image import ImageDataGenerator
    except ImportError:
        raise DataError("the benchmark needs tf-keras: pip install tf-keras") from None
    from .models import RandomAffine

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
        images, kept = load_images(table, image_size, progress=False)
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
    return result
