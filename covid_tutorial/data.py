"""Data: one door for every dataset, and the tf.data input pipeline.

``load_dataset`` reads either a folder per class or a metadata CSV plus an image
folder and returns one table with the columns ``path``, ``label`` and ``patient_id``.
Everything downstream (splits, training, evaluation, Grad-CAM) works on that table,
so a learner's own data goes through the same door as the phantoms.
:func:`dataset_from_arrays` and :func:`make_dataset` feed the images to Keras; reading
the pixels is :mod:`covid_tutorial.images`.

Nothing here ever writes into the data folder it reads.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from . import phantoms
from .errors import DataError, DataWarning
from .images import IMAGE_EXTENSIONS, load_images
from .labels import CLASS_NAMES, map_label
from .profiles import get_profile
from .system import data_root

__all__ = [
    "PUBLISHER_SPLITS",
    "FILENAME_COLUMNS",
    "LABEL_COLUMNS",
    "PATIENT_COLUMNS",
    "read_csv_any_encoding",
    "load_dataset",
    "one_hot",
    "dataset_from_arrays",
    "make_dataset",
    "ensure_phantoms",
]

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


# ---------------------------------------------------------------- the embedded phantoms


def ensure_phantoms(profile=None, *, progress: bool = True) -> Path:
    """Generate the profile's phantom dataset unless it exists; return its folder.

    The folder name, ``data/phantoms-<profile>-<N>p-<size>px-<generator>``, changes with
    the profile's size and with the generator's code, so a stale copy is never reused.
    """
    import hashlib


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


