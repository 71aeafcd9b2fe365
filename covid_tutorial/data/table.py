"""The table loader: one door for every dataset.

``load_dataset`` reads a folder per class (optionally one sub-folder per patient, optionally
under the publisher's train/val/test folders), a metadata CSV plus an image folder, or a
NumPy ``.npz`` archive, or a collection of the registry by name, and returns one table with
the columns ``path``, ``label`` and ``patient_id``. Everything downstream (splits,
training, evaluation, Grad-CAM) works on that table, so a learner's own data goes through
the same door as the published collections and the phantoms. A collection's quirks (class
names, patient ids, where its files sit, row filters) come from its registry entry,
never from code here. Reading the pixels is
:mod:`covid_tutorial.data.images`; :mod:`covid_tutorial.feed` hands them to Keras.

Nothing here ever writes into the data folder it reads: images taken out of an ``.npz``
archive are written under :func:`covid_tutorial.system.cache_dir`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ..errors import DataError, DataWarning
from ..profiles import get_profile
from ..system import atomic_path, cache_dir, data_root, sha1_of_file
from . import phantoms
from .download import dataset_dir
from .images import IMAGE_EXTENSIONS
from .labels import CLASS_NAMES, EXCLUDED, NON_COVID, course_label, map_label, task_classes
from .registry import REGISTRY, DatasetInfo, UnknownDatasetError, get_dataset_info

__all__ = [
    "PUBLISHER_SPLITS",
    "FILENAME_COLUMNS",
    "LABEL_COLUMNS",
    "PATIENT_COLUMNS",
    "PATIENT_FILE_PATTERN",
    "GENERATED_ID_PREFIX",
    "read_csv_any_encoding",
    "load_dataset",
    "generated_patient_ids",
    "one_hot",
    "ensure_phantoms",
]

PUBLISHER_SPLITS = {"train": "train", "val": "val", "validation": "val", "test": "test"}
FILENAME_COLUMNS = ("filename", "imagename", "image", "file")
LABEL_COLUMNS = ("finding", "label", "class")
PATIENT_COLUMNS = ("patientid", "patient_id", "patient")
#: A metadata CSV without a file-name column: its images are named after the patient id,
#: ``<patient>.<ext>``, or ``<patient>_<n>.<ext>`` / ``<patient>-<n>.<ext>`` for several
#: images of one patient (any image extension; the whole name is tried first).
PATIENT_FILE_PATTERN = re.compile(r"(?P<patient>.+)[_-](?P<number>\d+)")
#: Images without a patient id each get their own: ``image-000042``.
GENERATED_ID_PREFIX = "image-"
_NPZ_DONE = "complete.txt"  # written last into an npz cache folder: the folder is whole


# ---------------------------------------------------------------- what was skipped


@dataclasses.dataclass
class _Skipped:
    """Files and rows left out while reading, each kind counted and warned about once."""

    not_images: list = dataclasses.field(default_factory=list)
    empty_files: list = dataclasses.field(default_factory=list)
    symlinks: list = dataclasses.field(default_factory=list)
    loose_images: list = dataclasses.field(default_factory=list)
    empty_class_folders: list = dataclasses.field(default_factory=list)

    def warn(self, where) -> None:
        kinds = (
            (self.not_images, "file(s) that are not images"),
            (self.empty_files, "empty (0-byte) file(s)"),
            (self.symlinks, "symbolic link(s) not followed (a loop, or a target outside the folder)"),
            (self.loose_images, "loose image(s) next to the class folders (an image needs a class folder)"),
        )
        for items, what in kinds:
            if items:
                warnings.warn(
                    f"{where}: skipped {len(items)} {what}, e.g. {[str(s) for s in items[:3]]}",
                    DataWarning,
                    stacklevel=4,
                )
        if self.empty_class_folders:
            warnings.warn(f"{where}: empty class folder(s): {self.empty_class_folders}", DataWarning, stacklevel=4)

    def attrs(self) -> dict:
        return {
            "skipped_files": [str(s) for s in self.not_images],
            "empty_files": [str(s) for s in self.empty_files],
            "symlinks_not_followed": [str(s) for s in self.symlinks],
            "loose_images": [str(s) for s in self.loose_images],
            "empty_class_folders": list(self.empty_class_folders),
        }


def _inside(path: Path, root: Path) -> bool:
    return path.is_relative_to(root)


def _followed_link(path: Path, root: Path, skipped: _Skipped) -> bool:
    """A symbolic link to a file inside ``root`` is read; a loop or a target outside is not."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):  # a loop, or a target that does not exist
        skipped.symlinks.append(path)
        return False
    if not target.is_file() or not _inside(target, root.resolve()):
        skipped.symlinks.append(path)
        return False
    return True


def _image_files(folder: Path, root: Path, skipped: _Skipped) -> list[Path]:
    """Image files under ``folder``, sorted; never following a linked folder."""
    found = []
    for here, dirs, files in os.walk(folder, followlinks=False):
        here = Path(here)
        for name in sorted(dirs):
            if (here / name).is_symlink():
                skipped.symlinks.append(here / name)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (here / d).is_symlink())
        for name in sorted(files):
            path = here / name
            if name.startswith(".") or (path.is_symlink() and not _followed_link(path, root, skipped)):
                continue
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                skipped.not_images.append(path)
            elif path.stat().st_size == 0:
                skipped.empty_files.append(path)
            else:
                found.append(path)
    return found


def _folders(root: Path, skipped: _Skipped | None = None) -> list[Path]:
    """Visible sub-folders, sorted; linked folders are counted and never entered."""
    folders = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            if skipped is not None and entry.is_dir():
                skipped.symlinks.append(Path(entry.path))
            elif skipped is not None and not os.path.exists(entry.path):
                skipped.symlinks.append(Path(entry.path))  # a loop or a broken link
            continue
        if entry.is_dir():
            folders.append(Path(entry.path))
    return folders


def _loose_images(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.is_symlink() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


# ---------------------------------------------------------------- labels


def _map_labels(table: pd.DataFrame, classes, label_map: dict, unmapped: str, where,
                course_rules: bool = False) -> pd.Series:
    """``label`` for each row of ``table`` (``source_label``): a class of the task, or None to drop.

    With ``course_rules`` (a registry entry whose labels the course's rules read), a value
    that names no class of the task is excluded and counted by name instead of an error."""
    raw = table["source_label"]
    mapped, unknown = {}, []
    for value in raw.dropna().unique():
        try:
            mapped[value] = map_label(value, label_map, classes)
        except KeyError:
            if course_rules:
                mapped[value] = None
            else:
                unknown.append(value)
    unknown_names = sorted(map(str, unknown))
    if unknown and unmapped == "error":
        first = unknown_names[0]
        example = table.loc[raw.astype(str) == first, "path"].iloc[0]
        negative = sorted(str(u) for u in unknown if course_label(u) == NON_COVID)
        hint = ""
        if negative and NON_COVID not in classes:
            hint = (
                f" {negative} name the negative class of a COVID-19 vs rest collection: "
                "for that task use --classes 'COVID-19,Non-COVID'."
            )
        raise DataError(
            f"{where}: {int(raw.isin(unknown).sum())} image(s) have labels with no class in the task "
            f"{list(classes)}: {unknown_names} (e.g. {example}). Map them on the command line with "
            f"--label-map '{first}=<class>' (label_map={{'{first}': '<class>'}} in Python), where <class> "
            f"is one of {', '.join(classes)} or {EXCLUDED} to leave them out; or drop them with "
            f"--drop-unmapped (unmapped='drop').{hint}"
        )
    if unknown:
        warnings.warn(
            f"{where}: dropped {int(raw.isin(unknown).sum())} image(s) whose labels have no class "
            f"in the task {list(classes)}: {unknown_names}",
            DataWarning,
            stacklevel=4,
        )
    excluded = sorted(str(v) for v, label in mapped.items() if label is None)
    excluded_counts = {name: int((raw.astype(str) == name).sum()) for name in excluded}
    if excluded:
        listed = ", ".join(f"{name!r} ({count})" for name, count in excluded_counts.items())
        warnings.warn(
            f"{where}: left out {sum(excluded_counts.values())} image(s) labelled {listed}, "
            "which the label map or the collection's registry entry excludes.",
            DataWarning,
            stacklevel=4,
        )
    labels = raw.map(mapped)
    labels.attrs["unmapped_labels"] = unknown_names
    labels.attrs["excluded_labels"] = excluded_counts
    return labels


# ---------------------------------------------------------------- metadata CSV


def read_csv_any_encoding(path: str | Path) -> pd.DataFrame:
    """Read a CSV in UTF-8 (with or without BOM), falling back to Latin-1 with a warning.

    Any line ends (LF, CRLF) are read; column names lose surrounding spaces.
    """
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
            table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise DataError(
                f"{path}: not a readable CSV ({err}). Open it in a text editor and check "
                "the header line and the number of commas per row."
            ) from None
        table.columns = [str(c).strip() for c in table.columns]
        return table
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def _pick_column(columns, candidates) -> str | None:
    by_lower = {c.strip().lower(): c for c in columns}
    return next((by_lower[c.lower()] for c in candidates if c.lower() in by_lower), None)


def _filtered(table: pd.DataFrame, filters: dict, csv_path: Path, required: bool) -> pd.DataFrame:
    """Rows whose column holds one of the listed values (case-insensitive)."""
    for column, wanted in filters.items():
        col = _pick_column(table.columns, (column,))
        if not wanted:
            continue
        if col is None:
            message = f"{csv_path}: no column {column!r} to keep only {list(wanted)}; found {list(table.columns)}."
            if required:
                raise DataError(message + " The registry entry expects it: is this the right collection?")
            warnings.warn(message + " Filter not applied.", DataWarning, stacklevel=4)
            continue
        keep = {str(w).strip().lower() for w in wanted}
        table = table[table[col].str.strip().str.lower().isin(keep)]
    return table


def _images_by_patient(image_dir: Path, patients: set, skipped: _Skipped) -> tuple[dict, list]:
    """Image files named after patient ids (see :data:`PATIENT_FILE_PATTERN`): id -> files."""
    by_patient, unmatched = {}, []
    for path in _image_files(image_dir, image_dir, skipped):
        match = PATIENT_FILE_PATTERN.fullmatch(path.stem)
        if path.stem in patients:
            patient = path.stem
        elif match and match["patient"] in patients:
            patient = match["patient"]
        else:
            unmatched.append(path)
            continue
        by_patient.setdefault(patient, []).append(path)
    return by_patient, unmatched


def _rows_from_patient_names(table, csv_path, image_dir, patient_col, skipped):
    """One row per image for a CSV of patients whose images are named after the patient."""
    ids = table[patient_col].astype(str).str.strip()
    repeated = ids.duplicated() & (ids != "")
    if repeated.any():
        warnings.warn(
            f"{csv_path}: {int(repeated.sum())} row(s) repeat a patient id; kept the first row of each.",
            DataWarning,
            stacklevel=4,
        )
    table, ids = table[~repeated], ids[~repeated]
    by_patient, unmatched = _images_by_patient(image_dir, set(ids[ids != ""]), skipped)
    if unmatched:
        warnings.warn(
            f"{csv_path}: skipped {len(unmatched)} image(s) in {image_dir} named after no patient id of "
            f"the CSV, e.g. {[p.name for p in unmatched[:3]]}. Expected <patient>.png, "
            "<patient>_<n>.png or <patient>-<n>.png.",
            DataWarning,
            stacklevel=4,
        )
    without = [pid or "(empty)" for pid in ids if pid not in by_patient]
    if without:
        warnings.warn(
            f"{csv_path}: skipped {len(without)} row(s) whose patient has no image named after it in "
            f"{image_dir}, e.g. {without[:3]}.",
            DataWarning,
            stacklevel=4,
        )
    order = [i for i, pid in zip(table.index, ids) for _ in by_patient.get(pid, [])]
    out = table.loc[order].copy()
    out["path"] = [str(p) for pid in ids for p in by_patient.get(pid, [])]
    return out


@dataclasses.dataclass(frozen=True)
class _CsvRules:
    """How to read a metadata CSV: the columns and filters, from the registry or detected."""

    label_column: str | None = None
    file_column: str | None = None
    patient_column: str | None = None
    filters: dict = dataclasses.field(default_factory=dict)


def _load_metadata(csv_path: Path, images: Path | None, rules: _CsvRules, views, modalities, skipped):
    table = read_csv_any_encoding(csv_path)
    label_col = _pick_column(table.columns, (rules.label_column,) if rules.label_column else LABEL_COLUMNS)
    file_col = _pick_column(table.columns, (rules.file_column,) if rules.file_column else FILENAME_COLUMNS)
    patient_col = _pick_column(table.columns, (rules.patient_column,) if rules.patient_column else PATIENT_COLUMNS)
    missing = []
    if file_col is None and (patient_col is None or label_col is None):
        missing.append("filename or imagename (or a patient id column naming the images)")
    if label_col is None:
        missing.append(rules.label_column or "finding or label")
    if missing:
        raise DataError(
            f"{csv_path}: missing required column(s) {missing}; found {list(table.columns)}. "
            "Rename the columns that hold the image file name and the label."
        )
    chosen = {"view": views, "modality": modalities}
    table = _filtered(table, {c: v for c, v in rules.filters.items() if not chosen.get(c)}, csv_path, required=True)
    table = _filtered(table, chosen, csv_path, required=False)
    root = Path(images) if images is not None else csv_path.parent
    if file_col is None:
        if images is None and (root / "images").is_dir():
            root = root / "images"  # not the CSV's whole folder: masks may sit next to the images
        table = _rows_from_patient_names(table, csv_path, root, patient_col, skipped)
        paths = table.pop("path")
    else:
        folder_col = _pick_column(table.columns, ("folder",))

        def resolve(row) -> str:
            name = str(row[file_col]).strip()
            if images is None and folder_col is not None and row[folder_col]:
                return str(root / row[folder_col] / name)
            return str(root / name)

        paths = pd.Series([resolve(r) for _, r in table.iterrows()], index=table.index, dtype=object)
    out = pd.DataFrame({"path": paths.to_numpy(), "source_label": table[label_col].str.strip().to_numpy()})
    out["patient_id"] = table[patient_col].astype(str).str.strip().to_numpy() if patient_col is not None else None
    for extra in ("view", "modality", "offset", "sex", "age", "hospital"):
        col = _pick_column(table.columns, (extra,))
        if col is not None:
            out[extra] = table[col].to_numpy()
    mask_col = _pick_column(table.columns, ("mask_filename",))
    if mask_col is not None:
        out["mask_path"] = [str(csv_path.parent / name) if name else "" for name in table[mask_col]]
    return _usable_rows(out, csv_path, skipped)


def _usable_rows(out: pd.DataFrame, csv_path: Path, skipped: _Skipped) -> pd.DataFrame:
    """Rows whose file exists and is not empty, each file once."""
    repeated = out["path"].duplicated() & (out["path"] != "")
    if repeated.any():
        first_label = out.drop_duplicates("path").set_index("path")["source_label"]
        conflicts = int((out.loc[repeated, "source_label"] != out.loc[repeated, "path"].map(first_label)).sum())
        warnings.warn(
            f"{csv_path}: {int(repeated.sum())} row(s) name an image another row already names "
            f"(e.g. {out.loc[repeated, 'path'].iloc[0]}); kept the first row of each"
            + (f", {conflicts} of them with another label." if conflicts else "."),
            DataWarning,
            stacklevel=4,
        )
        out = out[~repeated]
    exists = out["path"].map(os.path.isfile)
    gone = out.loc[~exists, "path"].tolist()
    out.attrs["missing_files"] = gone
    if gone:
        warnings.warn(
            f"{csv_path}: skipped {len(gone)} row(s) whose image file is missing, "
            f"e.g. {gone[:3]}. Check the image folder (--images).",
            DataWarning,
            stacklevel=4,
        )
    out = out[exists]
    empty = out["path"].map(os.path.getsize) == 0
    skipped.empty_files += out.loc[empty, "path"].tolist()
    kept = out[~empty].copy()
    kept.attrs["missing_files"] = gone
    return kept


# ---------------------------------------------------------------- folders


@dataclasses.dataclass(frozen=True)
class _TreeRules:
    """How to read a folder tree: declared by a registry entry, or None to detect."""

    per_patient: bool | None = None
    images_subfolder: str | None = None
    split_folders: tuple[str, ...] = ()


def _split_of(folder: Path, split_folders) -> str | None:
    if split_folders:
        return PUBLISHER_SPLITS.get(folder.name.lower(), folder.name) if folder.name in split_folders else None
    return PUBLISHER_SPLITS.get(folder.name.lower())


def _detect_images_subfolder(class_dirs) -> str | None:
    """``images`` when every class folder keeps its images there (next to e.g. ``masks``)."""
    subfolders = [{p.name for p in _folders(c)} for c in class_dirs]
    if subfolders and all("images" in names for names in subfolders):
        return "images"
    return None


def _detect_per_patient(class_dirs) -> bool:
    """One sub-folder per patient: every class folder holds sub-folders and no images."""
    filled = [c for c in class_dirs if any(c.iterdir())]
    return bool(filled) and all(_folders(c) and not _loose_images(c) for c in filled)


def _load_tree(root: Path, rules: _TreeRules, skipped: _Skipped) -> pd.DataFrame:
    top = _folders(root, skipped)
    if not top:
        raise DataError(
            f"{root}: no class folders found. Give a folder with one subfolder per class "
            "(e.g. COVID-19/, Normal/, Pneumonia/), a metadata CSV, an .npz archive, or a "
            "collection name (covid-tutorial datasets lists them)."
        )
    skipped.loose_images += _loose_images(root)
    splits = [_split_of(p, rules.split_folders) for p in top]
    publisher_split = all(s is not None for s in splits)
    groups = []
    for split, folder in zip(splits, top):
        if publisher_split:
            skipped.loose_images += _loose_images(folder)
            groups += [(split, c) for c in _folders(folder, skipped)]
        else:
            groups.append((None, folder))
    class_dirs = [c for _, c in groups]
    subfolder = rules.images_subfolder or _detect_images_subfolder(class_dirs)
    per_patient = rules.per_patient if rules.per_patient is not None else (
        subfolder is None and _detect_per_patient(class_dirs)
    )
    rows = []
    for split, class_dir in groups:
        if per_patient:
            units = [(f"{class_dir.name}/{p.name}", p) for p in _folders(class_dir, skipped)]
            loose = _loose_images(class_dir)  # a class but no patient: their own ids
            rows += [(str(f), class_dir.name, split, None) for f in loose if f.stat().st_size > 0]
        else:
            units = [(None, class_dir)]
        count = len(rows)
        for patient, folder in units:
            folder = folder / subfolder if subfolder else folder
            if folder.is_dir():
                rows += [(str(f), class_dir.name, split, patient) for f in _image_files(folder, root, skipped)]
        if len(rows) == count:
            skipped.empty_class_folders.append(str(class_dir))
    table = pd.DataFrame(rows, columns=["path", "source_label", "publisher_split", "patient_id"])
    if not publisher_split:
        table = table.drop(columns="publisher_split")
    table.attrs["layout"] = "folder-per-class-per-patient" if per_patient else "folder-per-class"
    return table


# ---------------------------------------------------------------- NumPy archives


def _array_names(archive, npz_path: Path, info: DatasetInfo | None) -> dict[str, tuple[str, str]]:
    """split -> (images array, labels array), from the registry entry or ``<split>_images``."""
    if info is not None and info.arrays is not None:
        names = {split: (info.arrays.images[split], info.arrays.labels[split]) for split in info.arrays.images}
    else:
        names = {
            PUBLISHER_SPLITS[split]: (f"{split}_images", f"{split}_labels")
            for split in PUBLISHER_SPLITS
            if f"{split}_images" in archive.files and f"{split}_labels" in archive.files
        }
    absent = sorted({n for pair in names.values() for n in pair} - set(archive.files))
    if not names or absent:
        raise DataError(
            f"{npz_path}: expected arrays named <split>_images and <split>_labels "
            f"(split: train, val, test){'; missing ' + str(absent) if absent else ''}; the archive holds "
            f"{sorted(archive.files)}."
        )
    return names


def _as_8_bit(images: np.ndarray) -> np.ndarray:
    if images.dtype in (np.uint8, np.uint16):
        return images
    scaled = images * 255.0 if images.size and float(images.max()) <= 1.0 else images
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _write_npz_images(archive, names: dict, out: Path) -> None:
    """Every image of the archive as ``out/<split>/<index>.png``; ``out`` appears whole or not at all."""
    if out.exists() and not (out / _NPZ_DONE).is_file():
        shutil.rmtree(out, ignore_errors=True)  # an unfinished folder from an interrupted run
    with atomic_path(out, first_wins=True) as partial:  # another process may finish first: use its folder
        for split, (images_name, _) in names.items():
            (partial / split).mkdir(parents=True)
            for i, image in enumerate(_as_8_bit(archive[images_name])):
                if image.ndim == 3 and image.shape[-1] == 3:
                    image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
                cv2.imwrite(str(partial / split / f"{i:06d}.png"), image)
        (partial / _NPZ_DONE).write_text("every image of the archive is here\n")


def _load_arrays(npz_path: Path, info: DatasetInfo | None) -> pd.DataFrame:
    """An ``.npz`` of image and label arrays per split, its images written once to the cache."""
    try:
        archive = np.load(npz_path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"{npz_path}: not a readable NumPy .npz archive ({err}).") from None
    with archive:
        names = _array_names(archive, npz_path, info)
        out = cache_dir("npz") / sha1_of_file(npz_path)
        if not (out / _NPZ_DONE).is_file():
            _write_npz_images(archive, names, out)
        label_values = dict(info.arrays.label_values) if info is not None and info.arrays is not None else {}
        parts = []
        for split, (_, labels_name) in names.items():
            labels = np.asarray(archive[labels_name])
            labels = labels.reshape(len(labels), -1)
            if labels.shape[1] != 1:
                raise DataError(
                    f"{npz_path}: {labels_name} holds {labels.shape[1]} labels per image; the course "
                    "reads one label per image (multi-label archives are not supported)."
                )
            whole = np.issubdtype(labels.dtype, np.integer) or (
                np.issubdtype(labels.dtype, np.floating) and bool(np.all(np.mod(labels, 1) == 0))
            )
            text = [str(int(v)) if whole else str(v) for v in labels[:, 0]]
            parts.append(
                pd.DataFrame(
                    {
                        "path": [str(out / split / f"{i:06d}.png") for i in range(len(text))],
                        "source_label": [label_values.get(t, t) for t in text],
                        "publisher_split": split,
                        "patient_id": None,
                    }
                )
            )
    table = pd.concat(parts, ignore_index=True)
    table.attrs["layout"] = "npz-arrays"
    return table


# ---------------------------------------------------------------- the one door


def _registry_entry(name: str) -> DatasetInfo | None:
    try:
        return get_dataset_info(name)
    except UnknownDatasetError:
        return None


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(not p.name.startswith(".") for p in folder.iterdir())


def _resolve_source(source, collection) -> tuple[Path, DatasetInfo | None]:
    """The path to read and the registry entry whose rules apply (None: detect everything)."""
    info = get_dataset_info(collection) if isinstance(collection, str) else collection
    path = Path(source)
    if path.exists():
        return path, info
    named = _registry_entry(str(source)) if len(path.parts) == 1 else None  # a name, not a path
    if named is None:
        raise DataError(
            f"{source}: no such file or folder. Check the path, or give a collection name "
            f"({', '.join(REGISTRY)})."
        )
    if info is not None and info.name != named.name:
        raise DataError(f"{source}: is the collection {named.name!r}, not {info.name!r}; give one of them.")
    folder = dataset_dir(named)
    if not _has_files(folder):
        raise DataError(
            f"{named.name}: not downloaded yet (looked in {folder}). Run: covid-tutorial download {named.name}"
        )
    return folder, named


def _anchor_found(folder: Path, info: DatasetInfo) -> bool:
    """Whether ``folder`` is where the entry's files start (its ``data_root`` inside it)."""
    start = folder / info.data_root if info.data_root else folder
    if info.layout == "metadata-csv":
        return (start / info.metadata.csv).is_file()
    if info.layout == "npz-arrays":
        return bool(info.filename) and (folder / info.filename).is_file()
    return start.is_dir() and info.data_root is not None


def _collection_start(folder: Path, info: DatasetInfo | None) -> Path:
    """Where the layout starts: the entry's ``data_root``, found in ``folder`` or in the single
    folder that wraps it (a download unpacks to ``<name>/<archive>/...``); without an entry,
    single wrapping folders are stepped into, unless they look like a split or a class folder
    (one class alone is a valid dataset to evaluate on)."""
    for _ in range(4):
        if info is not None and _anchor_found(folder, info):
            return folder / info.data_root if info.data_root and info.layout != "npz-arrays" else folder
        inner = _folders(folder)
        wraps = (
            len(inner) == 1
            and not _loose_images(folder)
            and not _loose_images(inner[0])
            and inner[0].name.lower() not in PUBLISHER_SPLITS
            and course_label(inner[0].name) is None
            and (info is None or inner[0].name not in info.classes)
            and not (folder / "metadata.csv").is_file()
        )
        if not wraps:
            break
        folder = inner[0]
    return folder


def _detect_layout(path: Path, info: DatasetInfo | None) -> str:
    if info is not None:
        return info.layout
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return "npz-arrays"
        return "metadata-csv"
    if (path / "metadata.csv").is_file():
        return "metadata-csv"
    archives = sorted(path.glob("*.npz"))
    if len(archives) == 1 and not _folders(path):
        return "npz-arrays"
    return "folder-per-class"


def _reads_by_course_rules(info: DatasetInfo | None) -> bool:
    """Whether the entry's label values are read by the course's rules, not listed one by one."""
    return info is not None and info.metadata is not None and info.metadata.label_rules == "course"


def _label_rules(info: DatasetInfo | None, label_map: dict | None) -> dict:
    """The collection's own class names, then the user's map on top (the user wins)."""
    rules = {}
    if info is not None and not _reads_by_course_rules(info):
        rules.update(info.classes)
    rules.update(label_map or {})
    return rules


def _patient_ids_from_names(table: pd.DataFrame, info: DatasetInfo | None) -> None:
    """Fill patient ids from file names where the entry gives a pattern (``filename-pattern``)."""
    if info is None or info.patient_ids.source != "filename-pattern":
        return
    pattern = re.compile(info.patient_ids.pattern)
    found = [pattern.search(Path(p).name) for p in table["path"]]
    table["patient_id"] = [m["patient"] if m else None for m in found]


def _csv_rules(path: Path, images, info: DatasetInfo | None) -> tuple[Path, Path | None, _CsvRules]:
    """The metadata CSV to read, its image folder and its columns, from the registry entry if any."""
    table_info = info.metadata if info is not None else None
    csv = path if path.is_file() else path / (table_info.csv if table_info else "metadata.csv")
    if images is None and table_info is not None:
        images = (path if path.is_dir() else path.parent) / table_info.images
    patient_column = info.patient_ids.column if info is not None and info.patient_ids.source == "column" else None
    rules = _CsvRules(
        label_column=table_info.label_column if table_info else None,
        file_column=table_info.file_column if table_info else None,
        patient_column=patient_column,
        filters=dict(table_info.filters) if table_info else {},
    )
    return csv, images, rules


def _npz_file(path: Path, info: DatasetInfo | None) -> Path:
    """The archive itself, the entry's file in the folder, else the folder's one .npz file."""
    if path.is_file():
        return path
    return path / info.filename if info and info.filename else next(path.glob("*.npz"))


def _tree_rules(info: DatasetInfo | None, layout: str) -> _TreeRules:
    """What the registry entry declares about its folder tree; without one, everything is detected."""
    return _TreeRules(
        per_patient=None if info is None else layout == "folder-per-class-per-patient",
        images_subfolder=info.images_subfolder if info is not None else None,
        split_folders=info.split_folders if info is not None else (),
    )


def _give_each_its_own_patient_id(table: pd.DataFrame, where) -> None:
    """Images without a patient id each get one of their own, with a warning (to load_dataset's caller)."""
    no_id = table["patient_id"].isna() | (table["patient_id"].astype(str).str.strip() == "")
    if no_id.any():
        table.loc[no_id, "patient_id"] = [f"{GENERATED_ID_PREFIX}{i:06d}" for i in table.index[no_id]]
        warnings.warn(
            f"{where}: {int(no_id.sum())} of {len(table)} image(s) have no patient id, so each gets its own. "
            "A PATIENT-WISE SPLIT IS THEN IMPOSSIBLE: images of one patient may land in both "
            "training and test data and inflate every score. Add a patient id column if you can.",
            DataWarning,
            stacklevel=3,
        )


def load_dataset(
    source: str | Path,
    images: str | Path | None = None,
    *,
    collection: str | DatasetInfo | None = None,
    classes=None,
    label_map: dict | None = None,
    views: list[str] | None = None,
    modalities: list[str] | None = None,
    unmapped: str = "error",
) -> pd.DataFrame:
    """Read a dataset into one table: ``path``, ``label``, ``patient_id`` (and any extras).

    ``source`` is one of

    - a folder with one sub-folder per class (``<class>/*``), or per class and patient
      (``<class>/<patient>/*``, detected when every class folder holds only sub-folders;
      the patient id is ``<class>/<patient>``), either optionally under the publisher's
      ``train``/``val``|``validation``/``test`` folders (kept in ``publisher_split``);
      class folders that each hold an ``images`` folder are read from there;
    - a metadata CSV (or a folder holding ``metadata.csv``) with a file-name column, or
      without one when the images are named after the patient id
      (:data:`PATIENT_FILE_PATTERN`; searched in ``images``, else in the ``images`` folder
      next to the CSV if there is one, else below the CSV's folder); image paths are ``images/<file>`` when ``images``
      is given, else ``<csv folder>/<folder column>/<file>``;
    - a NumPy ``.npz`` archive with ``<split>_images`` and ``<split>_labels`` arrays (its
      images are written once as PNG files under ``cache_dir("npz")``, never next to it);
    - a registry name (``covid-tutorial datasets``): the downloaded copy, read by the rules
      of its entry.

    ``collection`` (a registry name or a :class:`~covid_tutorial.data.registry.DatasetInfo`)
    applies that entry's rules (class names, patient ids from a column, sub-folders or a
    file-name pattern, layout, ``data_root``, row filters) to a copy fetched by hand at
    ``source``. ``classes`` is
    the task (default the course's three; ``("COVID-19", "Non-COVID")`` folds Normal and
    Pneumonia into Non-COVID). Labels are mapped by :func:`covid_tutorial.data.labels.map_label`
    with ``label_map`` (e.g. from :func:`~covid_tutorial.data.labels.parse_label_map`) on top
    of the collection's names; ``unmapped`` is "error" or "drop". ``views`` and
    ``modalities`` filter those CSV columns (e.g. ``views=["PA", "AP"]``).

    Skipped files (not images, 0 bytes, symbolic links that loop or leave the folder,
    loose images next to class folders) are counted, warned about and listed in
    ``table.attrs``. Images without a patient id each get their own, with a warning.
    """
    if unmapped not in ("error", "drop"):
        raise ValueError("unmapped must be 'error' or 'drop'")
    classes = task_classes(classes)
    path, info = _resolve_source(source, collection)
    if path.is_dir():
        path = _collection_start(path, info)
    layout = _detect_layout(path, info)
    skipped = _Skipped()
    # The readers and the checks below warn with stack levels counted from this function: call them from here.
    if layout == "metadata-csv":
        where, images, rules = _csv_rules(path, images, info)
        table = _load_metadata(where, images, rules, views, modalities, skipped)
        table.attrs["layout"] = "metadata-csv"
    elif layout == "npz-arrays":
        where = _npz_file(path, info)
        table = _load_arrays(where, info)
    else:
        where = path
        table = _load_tree(path, _tree_rules(info, layout), skipped)
    skipped.warn(where)
    _patient_ids_from_names(table, info)
    labels = _map_labels(table, classes, _label_rules(info, label_map), unmapped, where,
                         course_rules=_reads_by_course_rules(info))
    table["label"] = labels
    found = {
        **table.attrs,
        **skipped.attrs(),
        "unmapped_labels": labels.attrs["unmapped_labels"],
        "excluded_labels": labels.attrs["excluded_labels"],
        "classes": classes,
        "collection": info.name if info is not None else None,
    }
    table = table[table["label"].notna()].reset_index(drop=True)
    if table.empty:
        raise DataError(f"{where}: no usable images found (after filters and label mapping).")
    _give_each_its_own_patient_id(table, where)
    columns = ["path", "label", "patient_id"]
    table = table[columns + [c for c in table.columns if c not in columns]]
    table.attrs = found
    return table


def generated_patient_ids(table: pd.DataFrame) -> pd.Series:
    """True for rows whose patient id :func:`load_dataset` made up (the image had none)."""
    return table["patient_id"].astype(str).str.fullmatch(re.escape(GENERATED_ID_PREFIX) + r"\d+")


# ---------------------------------------------------------------- images


def one_hot(labels, class_names=CLASS_NAMES) -> np.ndarray:
    index = {name: i for i, name in enumerate(class_names)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise DataError(f"labels {unknown} are not among the classes {list(class_names)}.")
    return np.eye(len(class_names), dtype=np.float32)[[index[label] for label in labels]]


# ---------------------------------------------------------------- the embedded phantoms


def ensure_phantoms(profile=None, *, patients: int | None = None, size: int | None = None, progress: bool = True) -> Path:
    """Generate the profile's phantom dataset unless it exists; return its folder.

    ``patients`` and ``size`` default to the profile's. The folder name,
    ``data/phantoms-<profile>-<N>p-<size>px-<generator>``, changes with them and with the
    generator's code, so a stale copy is never reused.
    """
    profile = get_profile(profile)
    patients = patients or profile.phantom_patients
    size = size or profile.phantom_size
    generator = hashlib.sha256(Path(phantoms.__file__).read_bytes()).hexdigest()[:8]
    out = data_root() / f"phantoms-{profile.name}-{patients}p-{size}px-{generator}"
    if not (out / "metadata.csv").is_file():  # tests and notebooks may ask at the same time
        with atomic_path(out, first_wins=True) as tmp:
            phantoms.generate_phantoms(tmp, patients=patients, size=size, seed=0, progress=progress)
    return out
