"""Shortcut learning: a burned-in marker learned instead of the disease (notebook 08).

:func:`where_maps_point` says whether explanation maps peak on the lesion or on a
corner marker (:func:`box_mask`, :func:`energy_in_box`); :func:`accuracy_by_test_set`
scores one model on several test collections side by side; :func:`mask_outside_box`
and :func:`write_masked_dataset` remove everything outside the lung box, the fix the
notebook measures.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ..data import read_image, to_model_input
from ..system import refuse_output_inside
from .quality import energy_inside, pointing_game, probability_function

__all__ = [
    "box_mask",
    "energy_in_box",
    "mask_outside_box",
    "where_maps_point",
    "accuracy_by_test_set",
    "write_masked_dataset",
]


def box_mask(size, box) -> np.ndarray:
    """Boolean (height, width) mask of a box given as fractions (top, bottom, left, right)."""
    height, width = (size, size) if np.isscalar(size) else size
    top, bottom, left, right = box
    mask = np.zeros((height, width), dtype=bool)
    mask[round(top * height) : round(bottom * height), round(left * width) : round(right * width)] = True
    return mask


def energy_in_box(heatmaps, box) -> np.ndarray:
    """Share of each map's energy inside a box given as fractions (top, bottom, left, right)."""
    heatmaps = np.asarray(heatmaps, dtype=np.float64)
    masks = np.repeat(box_mask(heatmaps.shape[1:3], box)[None], len(heatmaps), axis=0)
    return energy_inside(heatmaps, masks)


def mask_outside_box(images, box, fill: int = 0) -> np.ndarray:
    """Images with everything outside a box (fractions top, bottom, left, right) set to ``fill``."""
    images = np.array(images, copy=True)
    images[:, ~box_mask(images.shape[1:3], box)] = fill
    return images


def where_maps_point(maps, lesion_masks, box) -> pd.Series:
    """Does a set of maps point at a box (an artefact's corner, say) or at the lesions?

    Pointing-game hit rate and mean energy share for the box and for the lesion masks,
    next to their chance levels (the box's and the lesions' share of the image). Images
    without a lesion and flat maps are left out of the lesion figures.
    """
    maps, lesion_masks = np.asarray(maps, dtype=np.float32), np.asarray(lesion_masks, dtype=bool)
    region = np.repeat(box_mask(maps.shape[1:3], box)[None], len(maps), axis=0)
    with_lesion = lesion_masks.reshape(len(lesion_masks), -1).any(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no lesion at all: NaN
        return pd.Series(
            {
                "peak in the box": np.nanmean(pointing_game(maps, region)),
                "peak on a lesion": np.nanmean(pointing_game(maps, lesion_masks)),
                "energy in the box": np.nanmean(energy_inside(maps, region)),
                "energy on lesions": np.nanmean(energy_inside(maps, lesion_masks)),
                "box's share of the image": float(region[0].mean()),
                "lesions' share of the image": float(lesion_masks[with_lesion].mean()) if with_lesion.any() else np.nan,
            }
        )


def accuracy_by_test_set(model, test_sets: dict, class_names) -> pd.DataFrame:
    """One row per test set: images, accuracy and the recall of each class.

    ``test_sets`` maps a name to ``(images, labels)`` (uint8 grayscale images, class names).
    """
    predict = probability_function(model)
    rows = {}
    for name, (images, labels) in test_sets.items():
        truth = np.array([list(class_names).index(label) for label in labels])
        guess = predict(to_model_input(images)).argmax(1)
        row = {"images": len(truth), "accuracy": float((guess == truth).mean())}
        for k, cls in enumerate(class_names):
            row[f"recall {cls}"] = float((guess[truth == k] == k).mean()) if (truth == k).any() else np.nan
        rows[name] = row
    table = pd.DataFrame(rows).T
    return table.astype({"images": int})


def write_masked_dataset(source, out, box, fill: int = 0) -> Path:
    """Copy a phantom-style dataset (``metadata.csv``, ``images/``, ``masks/``) with images masked to ``box``.

    The metadata and lesion masks are copied unchanged; each image gets
    :func:`mask_outside_box`. Returns ``out``. Never writes into ``source``.
    """
    source, out = Path(source), Path(out)
    refuse_output_inside(out, source)
    metadata = pd.read_csv(source / "metadata.csv", dtype=str, keep_default_na=False)
    (out / "images").mkdir(parents=True, exist_ok=True)
    if (source / "masks").is_dir():
        shutil.copytree(source / "masks", out / "masks", dirs_exist_ok=True)
    for folder, name in zip(metadata.get("folder", ["images"] * len(metadata)), metadata["filename"]):
        image = read_image(source / (folder or "images") / name)
        masked = mask_outside_box(image[None], box, fill)[0]
        (out / (folder or "images")).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out / (folder or "images") / name), masked)
    metadata.to_csv(out / "metadata.csv", index=False, lineterminator="\n")
    return out
