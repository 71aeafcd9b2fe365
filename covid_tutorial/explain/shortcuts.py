"""Shortcut learning: a burned-in marker learned instead of the disease (notebook 08).

:func:`where_maps_point` says whether explanation maps peak on the lesion or on a
corner marker (:func:`box_mask`, :func:`energy_in_box`); :func:`accuracy_by_test_set`
scores one model on several test collections side by side, and :func:`scores_wide` lays its
scores out one row per collection; :func:`describe_pointing` and :func:`describe_change` put
what the intervals say into sentences. Every figure comes with a 95% interval from a bootstrap
over patients, or the Wilson interval over them where every resample agrees (a hit rate or a
recall of 0 or 1, docs/intervals.md). :func:`mask_outside_box`
and :func:`write_masked_dataset` remove everything outside the lung box, the fix the
notebook measures.

Across collections (notebook 09): :func:`evaluation_scores` reads the scores of
``covid-tutorial evaluate`` folders, :func:`property_baseline_scores` scores a classifier
that sees only the files on exactly the same images, and :func:`describe_crossing` says
what the two give, in sentences that follow the intervals.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ..data import PropertyClassifier, read_image, to_model_input
from ..metrics import classification_metrics, patient_bootstrap
from ..runs import read_run_config, read_splits
from ..system import refuse_output_inside
from .quality import energy_inside, pointing_game, probability_function

__all__ = [
    "box_mask",
    "energy_in_box",
    "mask_outside_box",
    "where_maps_point",
    "accuracy_by_test_set",
    "scores_wide",
    "describe_pointing",
    "describe_change",
    "write_masked_dataset",
    "CROSSING_SCORES",
    "evaluation_scores",
    "property_baseline_scores",
    "describe_crossing",
    "crossing_verdict",
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


def _wilson(rate: float, n: int, confidence: float) -> tuple[float, float]:
    from scipy import stats

    interval = stats.binomtest(int(round(rate * n)), n).proportion_ci(confidence, method="wilson")
    return float(interval.low), float(interval.high)


def where_maps_point(maps, lesion_masks, box, patients=None, *, n_bootstrap: int = 1000,
                     confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Does a set of maps point at a box (an artefact's corner, say) or at the lesions?

    Rows: pointing-game hit rate and mean energy share for the box and for the lesion
    masks, next to their chance levels (the box's and the lesions' share of the image).
    Images without a lesion and flat maps are left out of the lesion figures. Columns:
    ``value`` and a 95% interval (``ci_low``, ``ci_high``) from a bootstrap over
    ``patients`` (each image's patient id; default, each image its own); a hit rate that
    every resample gives alike (all peaks in the box) gets the Wilson interval over the
    patients it was computed on. The box's share is exact (no interval). ``attrs``:
    ``n_images``, ``n_patients``.
    """
    maps, lesion_masks = np.asarray(maps, dtype=np.float32), np.asarray(lesion_masks, dtype=bool)
    region = np.repeat(box_mask(maps.shape[1:3], box)[None], len(maps), axis=0)
    with_lesion = lesion_masks.reshape(len(lesion_masks), -1).any(axis=1)
    per_image = np.column_stack([
        pointing_game(maps, region), pointing_game(maps, lesion_masks),
        energy_inside(maps, region), energy_inside(maps, lesion_masks),
        np.where(with_lesion, lesion_masks.reshape(len(lesion_masks), -1).mean(axis=1), np.nan),
    ])
    names = ["peak in the box", "peak on a lesion", "energy in the box", "energy on lesions",
             "lesions' share of the image"]

    def means(rows) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no lesion at all: NaN
            return np.nanmean(per_image[rows], axis=0)

    point = means(np.arange(len(maps)))
    low, high, n_patients = patient_bootstrap(means, len(maps), patients, n_bootstrap=n_bootstrap,
                                              confidence=confidence, seed=seed, shape=point.shape)
    groups = np.arange(len(maps)) if patients is None else np.asarray(patients)
    for column in (0, 1):  # hit rates: Wilson over the patients they count where the bootstrap cannot widen them
        counted = len(np.unique(groups[np.isfinite(per_image[:, column])]))
        if np.isfinite(point[column]) and np.isclose(low[column], high[column]) and counted > 0:
            low[column], high[column] = _wilson(point[column], counted, confidence)
    table = pd.DataFrame({"value": point, "ci_low": low, "ci_high": high}, index=names)
    table.loc["box's share of the image"] = [float(region[0].mean()), np.nan, np.nan]
    table = table.loc[[*names[:4], "box's share of the image", names[4]]]
    table.attrs.update(n_images=len(maps), n_patients=n_patients)
    return table


def accuracy_by_test_set(model, test_sets: dict, class_names, *, n_bootstrap: int = 1000,
                         confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Accuracy and the recall of each class, per test set, each with a 95% interval over patients.

    ``test_sets`` maps a name to ``(images, labels)`` or ``(images, labels, patients)``
    (uint8 grayscale images, class names, each image's patient id; without ids every image
    counts as its own patient). Returns one row per (test set, score), scores ``accuracy`` and
    ``recall CLASS``, with ``value``, ``ci_low``, ``ci_high`` (a bootstrap over patients, or the
    Wilson interval over them where every resample agrees: :func:`covid_tutorial.metrics.
    classification_metrics`), ``images`` and ``patients``. :func:`scores_wide` shows it one row
    per test set.
    """
    predict = probability_function(model)
    parts = []
    for name, test_set in test_sets.items():
        images, labels = test_set[0], test_set[1]
        patients = test_set[2] if len(test_set) > 2 else None
        truth = np.array([list(class_names).index(label) for label in labels])
        scores = classification_metrics(truth, predict(to_model_input(images)), list(class_names), patients,
                                        n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
        wanted = scores[((scores["class"] == "macro") & (scores["metric"] == "accuracy"))
                        | ((scores["class"] != "macro") & (scores["metric"] == "sensitivity"))]
        wanted = pd.concat([wanted[wanted["class"] == "macro"], wanted[wanted["class"] != "macro"]])  # accuracy first
        wanted = wanted.assign(score=np.where(wanted["class"] == "macro", "accuracy", "recall " + wanted["class"]))
        parts.append(wanted.assign(test_set=name, images=len(truth), patients=scores.attrs["n_patients"]))
    table = pd.concat(parts, ignore_index=True).set_index(["test_set", "score"])
    return table[["value", "ci_low", "ci_high", "images", "patients"]]


def scores_wide(table: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """:func:`accuracy_by_test_set` one row per test set: images, patients, then each score as
    "value [low, high]"."""
    cells = table.apply(lambda row: f"{row['value']:.{digits}f} [{row.ci_low:.{digits}f}, {row.ci_high:.{digits}f}]"
                        if np.isfinite(row["value"]) else "none in this set", axis=1)
    wide = cells.unstack("score")
    scores = list(dict.fromkeys(table.index.get_level_values("score")))
    counts = table.groupby(level="test_set", sort=False)[["images", "patients"]].first()
    return counts.join(wide[scores]).loc[list(dict.fromkeys(table.index.get_level_values("test_set")))]


def _interval(row, digits: int) -> str:
    return f"{row['value']:.{digits}f} [{row['ci_low']:.{digits}f}, {row['ci_high']:.{digits}f}]"


def describe_pointing(table: pd.DataFrame, digits: int = 2) -> list[str]:
    """Two sentences on a :func:`where_maps_point` table, which follow its intervals: does the
    maps' peak land in the box more often than the box's share of the image, and on a lesion
    more (or less) often than the lesions' share?"""
    box, lesion = table.loc["peak in the box"], table.loc["peak on a lesion"]
    box_share, lesion_share = table.loc["box's share of the image"], table.loc["lesions' share of the image"]
    over = f"(95% interval over {table.attrs.get('n_patients', '?')} patients)"
    said = [f"peak in the box: {_interval(box, digits)} of the maps {over}, against the box's share of the image, "
            f"{box_share['value']:.{digits}f}: " + ("more often than chance, the maps point at the box"
                                                    if box["ci_low"] > box_share["value"] else "not more often than chance")]
    if np.isnan(lesion["value"]):
        return said + ["peak on a lesion: no image with a lesion"]
    verdict = ("more often than chance, the maps point at the lesions" if lesion["ci_low"] > lesion_share["ci_high"]
               else "less often than chance" if lesion["ci_high"] < lesion_share["ci_low"] else "not clearly more often than chance")
    return said + [f"peak on a lesion: {_interval(lesion, digits)}, against the lesions' share of the image, "
                   f"{_interval(lesion_share, digits)}: {verdict}"]


def describe_change(table: pd.DataFrame, before: str, after: str, digits: int = 2) -> list[str]:
    """One sentence per score of :func:`accuracy_by_test_set`: from test set ``before`` to
    ``after``, did it fall, rise, or stay within the two intervals' overlap?"""
    said = []
    for score in dict.fromkeys(table.loc[before].index):
        first, second = table.loc[(before, score)], table.loc[(after, score)]
        if second["ci_high"] < first["ci_low"]:
            verdict = "lower, beyond both intervals"
        elif second["ci_low"] > first["ci_high"]:
            verdict = "higher, beyond both intervals"
        else:
            verdict = "no clear change (the intervals overlap)"
        said.append(f"{score}: {_interval(first, digits)} on {before}, {_interval(second, digits)} on {after}: {verdict}")
    return said


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


# ---------------------------------------------------------------- across collections (notebook 09)

#: The scores compared across collections, as (row, metric) of ``metrics.json``.
CROSSING_SCORES = (("macro", "f1"), ("macro", "accuracy"), ("COVID-19", "sensitivity"))


def _score_rows(metrics: dict, scores, **columns) -> list[dict]:
    return [{"score": metric if row == "macro" else f"{metric} {row}", **metrics[row][metric], **columns}
            for row, metric in scores]


def evaluation_scores(folders: dict, scores=CROSSING_SCORES, *, classifier: str = "network") -> pd.DataFrame:
    """The ``scores`` of ``covid-tutorial evaluate`` output folders (``{test set: folder}``), one
    row per (classifier, test set, score): ``value``, ``ci_low``, ``ci_high`` (95%, over patients),
    ``images`` and ``patients``. Macro scores are named by their metric ("f1"), the others
    "metric class" ("sensitivity COVID-19")."""
    rows = []
    for name, folder in folders.items():
        found = json.loads((Path(folder) / "metrics.json").read_text())
        rows += _score_rows(found["metrics"], scores, classifier=classifier, test_set=name,
                            images=found["n_images"], patients=found["n_patients"])
    return pd.DataFrame(rows).set_index(["classifier", "test_set", "score"])


def property_baseline_scores(run, folders: dict, scores=CROSSING_SCORES, *, n_bootstrap: int = 1000,
                             seed: int = 0) -> pd.DataFrame:
    """A :class:`~covid_tutorial.data.PropertyClassifier` fitted on the RUN's training and
    validation images (its ``splits.csv``), scored on exactly the images each ``evaluate``
    folder scored (its ``predictions.csv``), with the same bootstrap over patients. Rows as in
    :func:`evaluation_scores`, classifier "file properties"."""
    splits = read_splits(run)
    if splits is None:
        raise ValueError(f"{run}: no splits.csv, so the images the RUN learned from are unknown.")
    class_names = list(read_run_config(run).class_names)
    baseline = PropertyClassifier.fit(splits[splits["split"].isin(["train", "val"])], seed=seed)
    rows = []
    for name, folder in folders.items():
        scored = pd.read_csv(Path(folder) / "predictions.csv", dtype={"patient_id": str}, keep_default_na=False)
        truth = scored["label"].map(class_names.index).to_numpy()
        table = classification_metrics(truth, baseline.predict_proba(scored, class_names), class_names,
                                       scored["patient_id"].to_numpy(), n_bootstrap=n_bootstrap, seed=seed)
        found = {row: {metric: part.set_index("metric").loc[metric, ["value", "ci_low", "ci_high"]].to_dict()
                       for metric in part["metric"]} for row, part in table.groupby("class")}
        rows += _score_rows(found, scores, classifier="file properties", test_set=name,
                            images=len(scored), patients=table.attrs["n_patients"])
    return pd.DataFrame(rows).set_index(["classifier", "test_set", "score"])


def _named(score: str) -> str:
    """How a score of :data:`CROSSING_SCORES` reads in a sentence: the macro ones say so."""
    return f"macro {score.replace('f1', 'F1')}" if " " not in score else score


def _apart(first, second) -> str:
    if second["ci_high"] < first["ci_low"]:
        return "lower, beyond both intervals"
    if second["ci_low"] > first["ci_high"]:
        return "higher, beyond both intervals"
    return "no clear difference (the intervals overlap)"


def describe_crossing(table: pd.DataFrame, own: str, other: str, score: str = "f1", digits: int = 2) -> list[str]:
    """Three sentences on one direction of a cross-collection table (:func:`evaluation_scores`
    and :func:`property_baseline_scores` concatenated): the network from its own held-out
    images (``own``) to the other collection (``other``); then the file-property classifier
    against the network on each of the two."""
    net_own, net_other = table.loc[("network", own, score)], table.loc[("network", other, score)]
    files_own, files_other = table.loc[("file properties", own, score)], table.loc[("file properties", other, score)]
    return [
        f"network, {_named(score)}: {_interval(net_own, digits)} on {own}, {_interval(net_other, digits)} on {other}: "
        f"{_apart(net_own, net_other)}",
        f"file properties alone on {own}: {_interval(files_own, digits)}, against the network's "
        f"{_interval(net_own, digits)}: {_apart(net_own, files_own)}",
        f"file properties alone on {other}: {_interval(files_other, digits)}, against the network's "
        f"{_interval(net_other, digits)}: {_apart(net_other, files_other)}",
    ]


def crossing_verdict(crossing: dict, score: str = "f1") -> str:
    """What both directions of a cross-collection experiment support, in two sentences that
    follow the intervals. ``crossing`` maps the collection trained on to its table
    (:func:`evaluation_scores` and :func:`property_baseline_scores` concatenated, test sets
    named "held-out NAME" and "all of OTHER")."""
    fell, reached = [], []
    for name, table in crossing.items():
        own_name, other_name = (t for t in dict.fromkeys(table.index.get_level_values("test_set")))
        own, away = table.loc[("network", own_name, score)], table.loc[("network", other_name, score)]
        files = table.loc[("file properties", own_name, score)]
        fell.append(bool(away["ci_high"] < own["ci_low"]))
        reached.append(bool(files["ci_high"] >= own["ci_low"]))
    counted = (f"The network's {_named(score)} on the other collection fell below its score on its own held-out images, "
               f"beyond both intervals, in {sum(fell)} of {len(fell)} directions; the files alone reached the "
               f"network's interval on its own held-out images in {sum(reached)} of {len(reached)}.")
    if all(fell) and all(reached):
        meaning = ("So the internal scores say nothing about detecting COVID-19: what the files alone reach needs no "
                   "lungs, and what the network learned did not carry to another source.")
    elif all(fell):
        meaning = ("So the internal scores did not carry to another source; where the files alone fall short of the "
                   "network, it used more than the files, from the lungs or from cues in the pixels the files do not show.")
    elif not any(fell):
        meaning = ("So no direction lost its score beyond the intervals: either the network learned something that "
                   "carries, or its internal score was already low (compare it with the files alone above).")
    else:
        meaning = "The two directions disagree: read each above before trusting either internal score."
    return f"{counted} {meaning}"
