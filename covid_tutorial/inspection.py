"""Inspect a collection before training on it: counts, patients, sizes, damage and duplicates.

Public COVID-19 image collections are often stitched together from each other, so one
radiograph can sit in several of them, resized or re-encoded, sometimes under another
label. :func:`inspect_dataset` finds exact copies (same file bytes, SHA-256) and near
copies (a perceptual hash: whether each of the lowest 16x16 DCT frequencies of a 64x64
thumbnail is above their median; these survive resizing and JPEG compression) and says whether each pair stays
within one patient or crosses patients, classes or publisher splits: the crossings are
the leaks.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from .data import load_dataset
from .images import read_image
from .errors import DataError, DataWarning

__all__ = [
    "NEAR_DUPLICATE_BITS",
    "perceptual_hash",
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


def _pair_kind(table: pd.DataFrame, i: int, j: int) -> str:
    a, b = table.iloc[i], table.iloc[j]
    if a["label"] != b["label"]:
        return "across classes"
    if "publisher_split" in table and a["publisher_split"] != b["publisher_split"]:
        return "across publisher splits"
    if a["patient_id"] != b["patient_id"]:
        return "across patients"
    return "within a patient"


def inspect_dataset(
    source, images=None, *, label_map=None, near_bits: int = NEAR_DUPLICATE_BITS, progress: bool = True
) -> dict:
    """Read every image once and return a JSON-ready report of the collection.

    Nothing is written anywhere. Labels that map to no course class are reported, not fatal.
    """
    from tqdm import tqdm

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        table = load_dataset(source, images, label_map=label_map, unmapped="drop")
    notes = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    sizes, modes, unreadable, digests, phashes = Counter(), Counter(), [], [], []
    for path in tqdm(table["path"], desc="Reading images", disable=not progress):
        raw = Path(path).read_bytes()
        digests.append(hashlib.sha256(raw).hexdigest())
        decoded = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED) if raw else None
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
    return "\n".join(lines)


def inspection_text(source, images=None, as_json: bool = False) -> str:
    report = inspect_dataset(source, images, progress=not as_json)
    if not report["images"]:
        raise DataError(f"{source}: no images to inspect.")
    return json.dumps(report, indent=2) if as_json else format_inspection(report)


