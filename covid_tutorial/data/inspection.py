"""Inspect a collection before training on it: counts, patients, sizes, damage and duplicates.

Public COVID-19 image collections are often stitched together from each other, so one
radiograph can sit in several of them, resized or re-encoded, sometimes under another
label. :func:`inspect_dataset` finds exact copies (same file bytes, SHA-256) and near
copies (a perceptual hash: whether each of the lowest 16x16 DCT frequencies of a 64x64
thumbnail is above their median; these survive resizing and JPEG compression) and says whether each pair stays
within one patient or crosses patients, classes or publisher splits: the crossings are
the leaks.

Collections also often take one class from one hospital and another from somewhere else,
so the classes differ in image size, file format, bit depth or borders, and a network
can learn the source instead of the disease (notebook 08). :func:`check_confounders`
measures these file properties per class and cross-validates, by patient, a small
classifier that sees nothing else; :func:`confounder_warning` is the loud warning to
print when it tells the classes apart far better than chance.
"""

from __future__ import annotations

import hashlib
import json
import warnings
import dataclasses
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.tree import DecisionTreeClassifier

from ..errors import DataError, DataWarning
from ..system import progress_bar
from .images import read_image
from .table import load_dataset

__all__ = [
    "NEAR_DUPLICATE_BITS",
    "perceptual_hash",
    "SharedImages",
    "shared_images",
    "FILE_PROPERTIES",
    "CONFOUNDER_MARGIN",
    "file_properties",
    "check_confounders",
    "PropertyClassifier",
    "confounder_warning",
    "inspect_dataset",
    "format_inspection",
    "inspection_text",
]

# Hamming distance (of 255 bits) up to which two images count as near copies. Measured on
# the phantoms, whose anatomy is far more alike than real radiographs: a resized and
# JPEG-compressed copy stays within 6 bits, two different images are 12 or more apart.
NEAR_DUPLICATE_BITS = 8


def perceptual_hash(image: np.ndarray) -> np.ndarray:
    """255-bit DCT hash (pHash) of a grayscale image, packed into 32 bytes."""
    small = cv2.resize(image.astype(np.float32), (64, 64), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:16, :16].ravel()[1:]  # skip the DC term: overall brightness
    return np.packbits(low > np.median(low))


def _near_pairs(hashes: np.ndarray, max_bits: int, block: int = 256) -> list[tuple[int, int, int]]:
    """All pairs (i < j) whose packed hashes differ in at most ``max_bits`` bits, in blocks."""
    pairs = []
    for start in range(0, len(hashes), block):
        chunk = hashes[start : start + block]
        distance = np.bitwise_count(chunk[:, None, :] ^ hashes[None, :, :]).sum(axis=-1)
        rows, cols = np.nonzero(distance <= max_bits)
        rows = rows + start
        keep = rows < cols
        pairs += [(int(i), int(j), int(d)) for i, j, d in zip(rows[keep], cols[keep], distance[rows[keep] - start, cols[keep]])]
    return pairs


@dataclasses.dataclass(frozen=True)
class SharedImages:
    """Images of one collection found again in another: the same file, or a near copy."""

    exact: int  # images of the second collection whose bytes equal an image of the first
    near: int  # images of the second within NEAR_DUPLICATE_BITS of one of the first (exact ones included)
    total: int  # images of the second collection
    paths: tuple[str, ...]  # the second collection's images that are near copies

    def __str__(self) -> str:
        return (f"{self.near} of {self.total} images are near copies of an image of the other collection "
                f"({self.exact} identical files)")


def _hashes(table: pd.DataFrame, progress: bool, desc: str) -> tuple[list[str], np.ndarray]:
    digests, packed = [], []
    for path in progress_bar(table["path"], desc=desc, enabled=progress):
        raw = Path(path).read_bytes()
        digests.append(hashlib.sha256(raw).hexdigest())
        packed.append(perceptual_hash(read_image(path)))
    return digests, np.array(packed, dtype=np.uint8).reshape(len(packed), -1)


def shared_images(first: pd.DataFrame, second: pd.DataFrame, *, max_bits: int = NEAR_DUPLICATE_BITS,
                  progress: bool = False) -> SharedImages:
    """Which images of ``second`` are also in ``first`` (two dataset tables): by SHA-256 of the
    file and by perceptual hash (:func:`perceptual_hash`, at most ``max_bits`` bits apart).

    Collections built from the same public sources share images; a model tested on images it
    was trained on, under another file name, scores what it memorised.
    """
    first_digests, first_hashes = _hashes(first, progress, "Hashing the first collection")
    second_digests, second_hashes = _hashes(second, progress, "Hashing the second collection")
    exact = sum(digest in set(first_digests) for digest in second_digests)
    near = np.zeros(len(second_hashes), dtype=bool)
    for start in range(0, len(second_hashes), 256):
        chunk = second_hashes[start : start + 256]
        distance = np.bitwise_count(chunk[:, None, :] ^ first_hashes[None, :, :]).sum(axis=-1)
        near[start : start + len(chunk)] = (distance <= max_bits).any(axis=1)
    paths = tuple(str(p) for p in second["path"].to_numpy()[near])
    return SharedImages(exact=int(exact), near=int(near.sum()), total=len(second), paths=paths)


def _pair_kind(table: pd.DataFrame, i: int, j: int) -> str:
    a, b = table.iloc[i], table.iloc[j]
    if a["label"] != b["label"]:
        return "across classes"
    if "publisher_split" in table and a["publisher_split"] != b["publisher_split"]:
        return "across publisher splits"
    if a["patient_id"] != b["patient_id"]:
        return "across patients"
    return "within a patient"


# ---------------------------------------------------------------- confounders: the source, not the disease

# What :func:`file_properties` measures of every image; "format" is a name, the rest numbers.
FILE_PROPERTIES = ("width", "height", "aspect_ratio", "channels", "bit_depth", "format", "border_intensity")
# Flag rule: the classifier on file properties alone scores at least chance + this margin
# (balanced accuracy, mean of the patient-wise folds) and every fold beats chance, for all
# classes at once (chance 1 / classes) or for one class against the rest (chance 1/2).
CONFOUNDER_MARGIN = 0.25
CONFOUNDER_FOLDS = 5
# The frame whose mean is the border intensity: this fraction of the shorter side, at least 1 px.
BORDER_FRACTION = 0.02
_NOTEBOOK = "notebooks/08_shortcut_learning.ipynb"
_MAGIC = (
    (0, b"\x89PNG\r\n\x1a\n", "png"),
    (0, b"\xff\xd8\xff", "jpeg"),
    (0, b"BM", "bmp"),
    (0, b"II*\x00", "tiff"),
    (0, b"MM\x00*", "tiff"),
    (8, b"WEBP", "webp"),
    (128, b"DICM", "dicom"),
)
_EXTENSION_FORMATS = {"jpg": "jpeg", "tif": "tiff", "dcm": "dicom"}


def _file_format(raw: bytes, path) -> str:
    """The format a file's first bytes announce; its extension when they announce none."""
    for offset, magic, name in _MAGIC:
        if raw[offset : offset + len(magic)] == magic:
            return name
    extension = Path(path).suffix.lower().lstrip(".")
    return _EXTENSION_FORMATS.get(extension, extension or "unknown")


def _border_intensity(image: np.ndarray) -> float:
    """Mean of a thin frame around the image, as a fraction of the full range of its type."""
    height, width = image.shape[:2]
    k = max(1, round(BORDER_FRACTION * min(height, width)))
    pixels = image if image.ndim == 2 else image[..., :3]  # an alpha channel is no intensity
    frame = [pixels[:k], pixels[-k:], pixels[k:-k, :k], pixels[k:-k, -k:]]
    total = sum(float(part.sum(dtype=np.float64)) for part in frame)
    count = sum(part.size for part in frame)
    full = float(np.iinfo(image.dtype).max) if np.issubdtype(image.dtype, np.integer) else 1.0
    return total / count / full


def _properties_of(raw: bytes, decoded: np.ndarray | None, path) -> dict:
    """The :data:`FILE_PROPERTIES` of one file from its bytes and its decoded array (NaN when unreadable)."""
    if decoded is None:
        return {name: (_file_format(raw, path) if name == "format" else np.nan) for name in FILE_PROPERTIES}
    height, width = decoded.shape[:2]
    return {
        "width": width,
        "height": height,
        "aspect_ratio": width / height,
        "channels": 1 if decoded.ndim == 2 else decoded.shape[2],
        "bit_depth": decoded.dtype.itemsize * 8,
        "format": _file_format(raw, path),
        "border_intensity": _border_intensity(decoded),
    }


def _decode(raw: bytes) -> np.ndarray | None:
    return cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED) if raw else None


def file_properties(table: pd.DataFrame, *, progress: bool = False) -> pd.DataFrame:
    """The :data:`FILE_PROPERTIES` of every image of a dataset table, one row per row of ``table``.

    Each file is read and decoded once (the border needs the pixels). Unreadable files get
    NaN; :func:`inspect_dataset` measures them from what it reads anyway.
    """
    
    rows = []
    for path in progress_bar(table["path"], desc="Reading file properties", enabled=progress):
        try:
            raw = Path(path).read_bytes()
        except OSError:
            raw = b""
        rows.append(_properties_of(raw, _decode(raw), path))
    return pd.DataFrame(rows, index=table.index, columns=list(FILE_PROPERTIES))


def _spread(values: pd.Series, digits: int | None) -> dict:
    """Min, median and max, as whole numbers when ``digits`` is None."""
    rounded = (lambda v: int(round(v))) if digits is None else (lambda v: round(float(v), digits))
    return {"min": rounded(values.min()), "median": rounded(values.median()), "max": rounded(values.max())}


def _counts(values: pd.Series) -> dict:
    return {str(value): int(n) for value, n in values.value_counts().items()}


def _per_class(measured: pd.DataFrame) -> dict:
    summary = {}
    for label, group in measured.groupby("label"):
        summary[str(label)] = {
            "images": len(group),
            "patients": int(group["patient_id"].nunique()),
            "width": _spread(group["width"], None),
            "height": _spread(group["height"], None),
            "aspect_ratio": _spread(group["aspect_ratio"], 3),
            "border_intensity": _spread(group["border_intensity"], 3),
            **{name: _counts(group[name].astype(int)) for name in ("channels", "bit_depth")},
            "format": _counts(group["format"]),
        }
    return summary


def _set_apart(per_class: dict) -> dict:
    """For each class, the properties whose values it shares with no other class (ranges or values)."""
    apart = {}
    for label, mine in per_class.items():
        others = [c for other, c in per_class.items() if other != label]
        found = []
        for name in FILE_PROPERTIES:
            if not others:
                break
            if name in ("channels", "bit_depth", "format"):
                separate = not set(mine[name]) & set().union(*(c[name] for c in others))
            else:
                low, high = min(c[name]["min"] for c in others), max(c[name]["max"] for c in others)
                separate = mine[name]["min"] > high or mine[name]["max"] < low
            if separate:
                found.append(name)
        if found:
            apart[label] = found
    return apart


def _features(measured: pd.DataFrame) -> pd.DataFrame:
    numeric = measured[[n for n in FILE_PROPERTIES if n != "format"]].astype(float)
    return pd.concat([numeric, pd.get_dummies(measured["format"], prefix="format", dtype=float)], axis=1)


def check_confounders(
    table: pd.DataFrame, *, seed: int = 0, max_patients_per_class: int | None = None, progress: bool = False
) -> dict:
    """Can the class be told from the files alone (size, format, bit depth, border), without the lungs?

    ``table`` is a dataset table (``path``, ``label``, ``patient_id``, from
    :func:`~covid_tutorial.data.load_dataset`); when it already holds the columns of
    :func:`file_properties`, no file is read. A decision tree (depth 4, classes weighted
    equally) that sees only these properties is cross-validated with
    ``StratifiedGroupKFold`` grouped by patient (5 folds, fewer when a class has fewer
    patients), so that images of one patient never sit on both sides. ``score`` is its
    balanced accuracy (mean recall over classes, averaged over folds) and ``chance`` is
    1 / number of classes, what any guess scores; ``one_vs_rest`` scores, from the same
    predictions, how well each class is told from all others (chance 1/2), since one
    class from another hospital lifts the overall score only to about 2 / classes.
    ``flagged`` when either reaches its chance + :data:`CONFOUNDER_MARGIN` and every fold
    beats that chance (``flagged_for`` says which). With too few patients or one class,
    ``score`` is None and ``reason`` says why. Returns a JSON-ready dict.

    ``max_patients_per_class``: check only that many patients of each class, drawn with
    ``seed``, so that a check before training on a large collection decodes a sample
    instead of every file (a source that shows in the files shows in a few hundred).
    """
    if max_patients_per_class is not None:
        table = _some_patients_per_class(table, max_patients_per_class, seed)
    table = _with_file_properties(table, progress)
    measured = table.dropna(subset=[n for n in FILE_PROPERTIES if n != "format"])
    labels = measured["label"].astype(str).to_numpy()
    classes = sorted(set(labels))
    no_ids = measured["patient_id"].astype(str).str.startswith("image-").all()
    patients = measured.groupby("label")["patient_id"].nunique()
    folds = int(min(CONFOUNDER_FOLDS, patients.min())) if len(patients) else 0
    result = {
        "metric": "balanced accuracy",
        "classifier": "DecisionTreeClassifier(max_depth=4, class_weight='balanced')",
        "properties": list(FILE_PROPERTIES),
        "grouped_by": "image (no patient ids)" if no_ids else "patient",
        "folds": folds,
        "max_patients_per_class": max_patients_per_class,
        "score": None,
        "score_std": None,
        "fold_scores": [],
        "chance": round(1 / len(classes), 4) if classes else None,
        "chance_rule": "1 / number of classes",
        "one_vs_rest": {},
        "flag_rule": (
            f"mean over folds >= chance + {CONFOUNDER_MARGIN} and every fold above chance, for all classes "
            "(score, chance) or for one class against the rest (one_vs_rest, chance 0.5)"
        ),
        "flagged": False,
        "flagged_for": [],
        "reason": None,
        "telling_properties": {},
        "set_apart": {},
        "per_class": _per_class(measured),
    }
    result["set_apart"] = _set_apart(result["per_class"])
    if len(classes) < 2:
        result["reason"] = f"{len(classes)} class(es) with readable images: nothing to tell apart."
        return result
    if folds < 2:
        few = ", ".join(f"{label} ({n})" for label, n in patients.items() if n < 2)
        result["reason"] = (
            f"too few patients to cross-validate by patient: {few}; every class needs at least 2."
        )
        return result
    features = _features(measured)
    x, groups = features.to_numpy(), measured["patient_id"].astype(str).to_numpy()
    tree = DecisionTreeClassifier(max_depth=4, class_weight="balanced", random_state=seed)
    scores, vs_rest = [], {c: [] for c in classes}
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(x, labels, groups):
        truth, predicted = labels[test], tree.fit(x[train], labels[train]).predict(x[test])
        scores.append(balanced_accuracy_score(truth, predicted))
        for c in classes:
            if 0 < np.sum(truth == c) < len(truth):  # the fold holds this class and others
                vs_rest[c].append(balanced_accuracy_score(truth == c, predicted == c))
    chance = 1 / len(classes)
    flagged_for = ["all classes"] if _beats(scores, chance) else []
    flagged_for += [f"{c} vs the rest" for c in classes if _beats(vs_rest[c], 0.5)]
    importance = pd.Series(tree.fit(x, labels).feature_importances_, index=features.columns)
    importance = importance.groupby(lambda name: "format" if name.startswith("format_") else name).sum()
    result.update(
        score=round(float(np.mean(scores)), 4),
        score_std=round(float(np.std(scores)), 4),
        fold_scores=[round(s, 4) for s in scores],
        one_vs_rest={
            c: {"score": round(float(np.mean(v)), 4) if v else None, "fold_scores": [round(s, 4) for s in v]}
            for c, v in vs_rest.items()
        },
        flagged=bool(flagged_for),
        flagged_for=flagged_for,
        telling_properties={
            name: round(float(v), 3) for name, v in importance.sort_values(ascending=False).items() if v >= 0.05
        },
    )
    return result


@dataclasses.dataclass(frozen=True)
class PropertyClassifier:
    """The confounder check's classifier, fitted once to keep: it sees only the files.

    The same decision tree as :func:`check_confounders` (depth 4, classes weighted
    equally) on the same :data:`FILE_PROPERTIES`, fitted on one table and applied to any
    other, so that a shortcut in the files can be scored like a network: on held-out
    images of its own collection and on another collection. A format the training table
    never had counts as none of the formats it had.
    """

    tree: DecisionTreeClassifier
    columns: tuple[str, ...]

    @classmethod
    def fit(cls, table: pd.DataFrame, *, seed: int = 0, progress: bool = False) -> "PropertyClassifier":
        """Fit on a dataset table (``path``, ``label``; file properties are read if absent)."""
        measured = _with_file_properties(table, progress)
        features = _features(measured)
        tree = DecisionTreeClassifier(max_depth=4, class_weight="balanced", random_state=seed)
        tree.fit(features.to_numpy(), measured["label"].astype(str).to_numpy())
        return cls(tree, tuple(features.columns))

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.tree.classes_)

    def predict_proba(self, table: pd.DataFrame, class_names, *, progress: bool = False) -> np.ndarray:
        """Probabilities (images, ``class_names``) in that order; a class it never saw gets 0."""
        features = _features(_with_file_properties(table, progress)).reindex(columns=list(self.columns), fill_value=0.0)
        found = self.tree.predict_proba(features.fillna(0.0).to_numpy())
        out = np.zeros((len(table), len(class_names)))
        for column, name in enumerate(self.classes):
            if name in class_names:
                out[:, list(class_names).index(name)] = found[:, column]
        return out


def _with_file_properties(table: pd.DataFrame, progress: bool) -> pd.DataFrame:
    if set(FILE_PROPERTIES) <= set(table.columns):
        return table
    return table.drop(columns=list(FILE_PROPERTIES), errors="ignore").join(file_properties(table, progress=progress))


def _some_patients_per_class(table: pd.DataFrame, count: int, seed: int) -> pd.DataFrame:
    """The rows of at most ``count`` patients of each class, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(table), dtype=bool)
    for label in sorted(table["label"].unique()):
        in_class = (table["label"] == label).to_numpy()
        patients = np.unique(table.loc[in_class, "patient_id"].astype(str))
        chosen = rng.choice(patients, size=min(count, len(patients)), replace=False)
        keep |= in_class & table["patient_id"].astype(str).isin(chosen).to_numpy()
    return table[keep]


def _beats(fold_scores: list[float], chance: float) -> bool:
    """The flag rule: mean at least chance + the margin, and no fold at or below chance."""
    return bool(fold_scores) and np.mean(fold_scores) >= chance + CONFOUNDER_MARGIN and min(fold_scores) > chance


def confounder_warning(check: dict | None) -> str | None:
    """The loud warning for a :func:`check_confounders` result (or a whole inspection report).

    None when nothing is flagged. ``covid-tutorial train`` prints it before it trains.
    """
    if check is not None and "confounders" in check:
        check = check["confounders"]
    if not check or not check.get("flagged"):
        return None
    scores = [f"all classes {check['score']:.2f} (chance {check['chance']:.2f})"]
    scores += [
        f"{c} vs the rest {v['score']:.2f} (chance 0.50)"
        for c, v in check["one_vs_rest"].items()
        if f"{c} vs the rest" in check["flagged_for"]
    ]
    why = " ".join(
        f"No other class shares the {' or '.join(names)} of the {c} images." for c, names in check["set_apart"].items()
    ) or f"It goes mostly by {' and '.join(list(check['telling_properties'])[:2])}."
    return (
        "WARNING: THE CLASSES DIFFER IN THEIR FILES, NOT ONLY IN THEIR LUNGS. A classifier that sees only "
        f"file properties (size, format, bit depth, border) tells them apart, {check['metric']} in "
        f"{check['folds']} folds split by {check['grouped_by']}: {'; '.join(scores)}. {why} "
        "A NETWORK CAN LEARN THE SOURCE OF THE IMAGES INSTEAD OF THE DISEASE, and its test scores "
        f"will then be too good to be true (see {_NOTEBOOK}). Bring every class to one format, size and bit "
        "depth, crop the borders, or take every class from the same hospitals."
    )


def inspect_dataset(
    source, images=None, *, collection=None, classes=None, label_map=None, near_bits: int = NEAR_DUPLICATE_BITS,
    progress: bool = True,
) -> dict:  # fmt: skip
    """Read every image once and return a JSON-ready report of the collection.

    Nothing is written anywhere. Labels that map to no course class are reported, not fatal.
    """
    
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        table = load_dataset(
            source, images, collection=collection, classes=classes, label_map=label_map, unmapped="drop"
        )
    notes = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    sizes, modes, unreadable, digests, phashes, properties = Counter(), Counter(), [], [], [], []
    for path in progress_bar(table["path"], desc="Reading images", enabled=progress):
        raw = Path(path).read_bytes()
        digests.append(hashlib.sha256(raw).hexdigest())
        decoded = _decode(raw)
        properties.append(_properties_of(raw, decoded, path))
        if decoded is None:
            unreadable.append(path)
            phashes.append(None)
            continue
        channels = 1 if decoded.ndim == 2 else decoded.shape[2]
        modes[f"{decoded.dtype}, {channels} channel{'s' if channels > 1 else ''}"] += 1
        height, width = decoded.shape[:2]
        sizes[f"{width}x{height}"] += 1
        phashes.append(perceptual_hash(read_image(path)))
    table = table.assign(sha256=digests)
    measured = table.drop(columns=list(FILE_PROPERTIES), errors="ignore").join(
        pd.DataFrame(properties, index=table.index, columns=list(FILE_PROPERTIES))
    )
    readable = [i for i, h in enumerate(phashes) if h is not None]

    exact = [group.index.tolist() for _, group in table.groupby("sha256") if len(group) > 1]
    exact_pairs = [(g[0], other) for g in exact for other in g[1:]]
    near_pairs = [
        (readable[i], readable[j], d)
        for i, j, d in _near_pairs(np.array([phashes[k] for k in readable]), near_bits)
        if digests[readable[i]] != digests[readable[j]]
    ]
    per_patient = table.groupby("patient_id").size()
    classes_per_patient = table.groupby("patient_id")["label"].nunique()
    has_ids = not table["patient_id"].astype(str).str.startswith("image-").all()
    report = {
        "source": str(source),
        "images": len(table),
        "classes": table["label"].value_counts().sort_index().to_dict(),
        "source_labels": table["source_label"].value_counts().to_dict(),
        "unmapped_labels": table.attrs.get("unmapped_labels", []),
        "patients": int(per_patient.size) if has_ids else None,
        "images_per_patient": (
            {"min": int(per_patient.min()), "median": float(per_patient.median()), "max": int(per_patient.max())}
            if has_ids
            else None
        ),
        "patients_in_several_classes": classes_per_patient[classes_per_patient > 1].index.tolist() if has_ids else [],
        "publisher_splits": (
            table["publisher_split"].value_counts().to_dict() if "publisher_split" in table else None
        ),
        "image_sizes": dict(sizes.most_common(10)),
        "distinct_image_sizes": len(sizes),
        "image_modes": dict(modes),
        "unreadable_files": unreadable,
        "missing_files": table.attrs.get("missing_files", []),
        "skipped_files": table.attrs.get("skipped_files", []),
        "exact_duplicates": _describe_pairs(table, [(i, j, 0) for i, j in exact_pairs]),
        "near_duplicates": _describe_pairs(table, near_pairs),
        "confounders": check_confounders(measured),
        "warnings": notes,
    }
    return json.loads(json.dumps(report, default=str))


def _describe_pairs(table: pd.DataFrame, pairs) -> dict:
    kinds = Counter(_pair_kind(table, i, j) for i, j, _ in pairs)
    examples = [
        {"a": table.iloc[i]["path"], "b": table.iloc[j]["path"], "bits": d, "kind": _pair_kind(table, i, j)}
        for i, j, d in pairs[:20]
    ]
    return {"pairs": len(pairs), "by_kind": dict(kinds), "examples": examples}


def format_inspection(report: dict) -> str:
    """A readable terminal summary of :func:`inspect_dataset`'s report."""
    lines = [f"Dataset: {report['source']}", f"Images: {report['images']}", "", "Class       images"]
    lines += [f"{name:<11} {count:>6}" for name, count in report["classes"].items()]
    if report["unmapped_labels"]:
        lines.append(f"Labels with no course class (dropped): {report['unmapped_labels']}")
    if report["patients"] is None:
        lines.append("Patients: no patient ids (a patient-wise split is impossible)")
    else:
        ipp = report["images_per_patient"]
        lines.append(
            f"Patients: {report['patients']} (images per patient: min {ipp['min']}, "
            f"median {ipp['median']:g}, max {ipp['max']})"
        )
        if report["patients_in_several_classes"]:
            lines.append(f"Patients with images in several classes: {report['patients_in_several_classes'][:10]}")
    if report["publisher_splits"]:
        lines.append(f"Publisher's own split: {report['publisher_splits']}")
    lines += ["", f"Image sizes ({report['distinct_image_sizes']} distinct), most common:"]
    lines += [f"  {size:<12} {count:>6}" for size, count in report["image_sizes"].items()]
    lines.append("Pixel formats: " + ", ".join(f"{m}: {c}" for m, c in report["image_modes"].items()))
    for key, title in (
        ("unreadable_files", "Unreadable files"),
        ("missing_files", "Rows whose file is missing"),
        ("skipped_files", "Files that are not images (skipped)"),
    ):
        if report[key]:
            lines.append(f"{title}: {len(report[key])}, e.g. {report[key][:3]}")
    for key, title in (("exact_duplicates", "Exact duplicates"), ("near_duplicates", "Near duplicates")):
        found = report[key]
        kinds = ", ".join(f"{k}: {n}" for k, n in found["by_kind"].items()) or "none"
        lines.append(f"{title}: {found['pairs']} pair(s) ({kinds})")
    leaks = sum(
        n for key in ("exact_duplicates", "near_duplicates")
        for kind, n in report[key]["by_kind"].items() if kind != "within a patient"
    )
    if leaks:
        lines.append(
            f"WARNING: {leaks} duplicate pair(s) cross patients, classes or splits: the same picture "
            "could sit in training and test data. Remove or merge them before splitting."
        )
    if "confounders" in report:
        lines += ["", *_format_confounders(report["confounders"])]
    return "\n".join(lines)


def _format_confounders(check: dict) -> list[str]:
    lines = ["File properties by class (what a network could learn instead of the disease):"]
    for label, c in check["per_class"].items():
        w, h = c["width"], c["height"]
        size = f"{w['median']}x{h['median']}"
        if w["min"] != w["max"] or h["min"] != h["max"]:
            size += f" (widths {w['min']}-{w['max']}, heights {h['min']}-{h['max']})"
        kinds = [f"{k} {n}" for k, n in c["format"].items()]
        kinds += [f"{k}-bit {n}" for k, n in c["bit_depth"].items()]
        kinds += [f"{k} channel{'s' if k != '1' else ''} {n}" for k, n in c["channels"].items()]
        lines.append(
            f"  {label:<11} {c['images']:>6} images  {size}  {', '.join(kinds)}  "
            f"border {c['border_intensity']['median']:.2f}"
        )
    if check["reason"]:
        lines.append(f"Classifier on these properties alone: skipped, {check['reason']}")
        return lines
    lines.append(
        f"A decision tree on these properties alone, {check['folds']} folds split by {check['grouped_by']}: "
        f"{check['metric']} {check['score']:.2f} +/- {check['score_std']:.2f} (chance {check['chance']:.2f})"
    )
    lines.append(
        "Each class against the rest: "
        + ", ".join(f"{c} {v['score']:.2f}" for c, v in check["one_vs_rest"].items() if v["score"] is not None)
        + " (chance 0.50)"
    )
    if not check["flagged"]:
        lines.append("No sign that the classes come from different sources.")
    warning = confounder_warning(check)
    if warning:
        lines += ["!" * 78, warning, "!" * 78]
    return lines


def inspection_text(source, images=None, as_json: bool = False, **reading) -> str:
    """The inspection of ``source`` as the command line prints it: text, or JSON."""
    report = inspect_dataset(source, images, progress=not as_json, **reading)
    if not report["images"]:
        raise DataError(f"{source}: no images to inspect.")
    return json.dumps(report, indent=2) if as_json else format_inspection(report)


