"""How good an explanation map is, measured against known lesions (notebook 06).

The phantoms come with a lesion mask per image, so a map can be scored: the
:func:`pointing_game` (does the map's peak fall on a lesion?), :func:`energy_inside` (the
share of the map's mass inside the lesion, next to the lesion's share of the image,
which is chance) and faithfulness, :func:`deletion_scores` (does removing the map's top
pixels lower the class probability more than removing as many random pixels?).
:func:`explanation_quality` scores every image and method, :func:`summarize_quality`
averages per method and class. :func:`localization_table` asks the other question a
map raises, "on the lesion or in the middle of the chest?", against both chance levels.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from ..data import pad_and_resize, read_image, to_model_input
from ..errors import CourseError
from .maps import METHOD_TITLES, class_indices, quiet_keras, upsample_maps

__all__ = [
    "resolve_mask_path",
    "load_masks",
    "pointing_game",
    "energy_inside",
    "probability_function",
    "remove_pixels",
    "deletion_scores",
    "explanation_quality",
    "summarize_quality",
    "quality_text",
    "central_band",
    "localization_table",
]


def resolve_mask_path(path) -> Path | None:
    """The lesion mask file for a ``mask_path`` entry, or None when there is none."""
    if path is None or (isinstance(path, float) and np.isnan(path)) or str(path) == "":
        return None
    path = Path(str(path))
    if path.is_file():
        return path
    raise CourseError(f"{path}: lesion mask not found. Regenerate the phantoms or fix mask_path.")


def load_masks(table: pd.DataFrame, size: int) -> np.ndarray:
    """Lesion masks (n, size, size) bool for the rows of ``table`` (column ``mask_path``).

    Masks get the same pad-and-resize as the images, so they line up pixel for pixel;
    rows with no mask (Normal, or data without masks) are all False.
    """

    if "mask_path" not in table.columns:
        raise CourseError(
            "the table has no mask_path column: lesion masks are known only for the phantoms "
            "(covid-tutorial phantoms) or data that ship masks."
        )
    masks = np.zeros((len(table), size, size), dtype=bool)
    for i, entry in enumerate(table["mask_path"]):
        path = resolve_mask_path(entry)
        if path is not None:
            masks[i] = pad_and_resize(read_image(path), size) > 127
    return masks


def pointing_game(heatmaps, masks, tolerance: int = 0) -> np.ndarray:
    """1.0 where the map's maximum falls inside the mask (grown by ``tolerance`` px), else 0.0.

    Zhang et al. (2018). NaN for an empty mask (nothing to point at) or a flat map (no
    maximum). The maximum is the first in row-major order when several pixels tie.
    """
    heatmaps, masks = np.asarray(heatmaps, dtype=np.float32), np.asarray(masks, dtype=bool)
    if heatmaps.shape != masks.shape:
        raise ValueError(f"heatmaps {heatmaps.shape} and masks {masks.shape} must have the same shape")
    hits = np.full(len(heatmaps), np.nan)
    kernel = np.ones((2 * tolerance + 1, 2 * tolerance + 1), np.uint8)
    for i, (heatmap, mask) in enumerate(zip(heatmaps, masks)):
        if not mask.any() or np.ptp(heatmap) == 0:
            continue
        if tolerance > 0:
            mask = cv2.dilate(mask.astype(np.uint8), kernel) > 0
        row, col = np.unravel_index(np.argmax(heatmap), heatmap.shape)
        hits[i] = float(mask[row, col])
    return hits


def energy_inside(heatmaps, masks) -> np.ndarray:
    """Share of each map's total (its 'energy') that lies inside the mask, 0..1.

    The energy-based pointing game of Wang et al. (2020). A map spread evenly over the
    image scores the mask's share of the image area, the chance level to compare with.
    NaN for an empty mask or an all-zero map.
    """
    heatmaps, masks = np.asarray(heatmaps, dtype=np.float64), np.asarray(masks, dtype=bool)
    if heatmaps.shape != masks.shape:
        raise ValueError(f"heatmaps {heatmaps.shape} and masks {masks.shape} must have the same shape")
    total = heatmaps.reshape(len(heatmaps), -1).sum(axis=1)
    inside = (heatmaps * masks).reshape(len(heatmaps), -1).sum(axis=1)
    empty = ~masks.reshape(len(masks), -1).any(axis=1) | (total <= 0)
    return np.where(empty, np.nan, inside / np.where(total > 0, total, 1.0))


def probability_function(model_or_function, batch_size: int = 8):
    """A function images (n, h, w, 3) float -> class probabilities (n, k), batched."""
    if not isinstance(model_or_function, keras.Model):
        return lambda images: np.asarray(model_or_function(images), dtype=np.float64)
    forward = tf.function(lambda x: model_or_function(x, training=False), reduce_retracing=True)

    def predict(images):
        with quiet_keras():
            parts = [
                forward(tf.constant(images[start : start + batch_size])).numpy()
                for start in range(0, len(images), batch_size)
            ]
        return np.concatenate(parts).astype(np.float64)

    return predict


def remove_pixels(images, keep_out, fill="mean") -> np.ndarray:
    """Images (n, h, w, 3) with the pixels where ``keep_out`` (n, h, w) is True replaced by ``fill``.

    ``fill="mean"`` uses each image's own mean gray value, so removal adds no new edge
    brightness of its own; a number fills with that value.
    """
    images = to_model_input(images).copy()
    keep_out = np.asarray(keep_out, dtype=bool)
    for image, out in zip(images, keep_out):
        value = image.mean(axis=(0, 1)) if fill == "mean" else float(fill)
        image[out] = value
    return images


def deletion_scores(
    model,
    images,
    heatmaps,
    class_index,
    *,
    fraction: float = 0.1,
    fill="mean",
    random_repeats: int = 3,
    seed: int = 0,
    batch_size: int = 8,
) -> pd.DataFrame:
    """Faithfulness: how much the class probability drops when the map's top pixels go.

    For each image the ``fraction`` of pixels with the highest map values is removed
    (:func:`remove_pixels`), and separately the same number of pixels drawn at random
    (averaged over ``random_repeats`` draws). A faithful map points at pixels the model
    needs, so ``drop_top`` clearly exceeds ``drop_random``. ``model`` is a Keras model
    (its softmax output is used) or any function images -> probabilities.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie strictly between 0 and 1, got {fraction!r}.")
    images = to_model_input(images)
    heatmaps = upsample_maps(heatmaps, images.shape[1:3])
    index = class_indices(class_index, len(images))
    predict = probability_function(model, batch_size)
    rows = np.arange(len(images))
    pixels = images.shape[1] * images.shape[2]
    count = max(1, int(round(fraction * pixels)))
    base = predict(images)[rows, index]
    order = np.argsort(-heatmaps.reshape(len(images), -1), axis=1, kind="stable")[:, :count]
    top = np.zeros((len(images), pixels), dtype=bool)
    np.put_along_axis(top, order, True, axis=1)
    after_top = predict(remove_pixels(images, top.reshape(heatmaps.shape), fill))[rows, index]
    rng = np.random.default_rng(seed)
    after_random = np.zeros(len(images))
    for _ in range(random_repeats):
        chosen = np.zeros((len(images), pixels), dtype=bool)
        for i in rows:
            chosen[i, rng.choice(pixels, count, replace=False)] = True
        after_random += predict(remove_pixels(images, chosen.reshape(heatmaps.shape), fill))[rows, index]
    after_random /= random_repeats
    return pd.DataFrame(
        {
            "confidence": base,
            "confidence_top_removed": after_top,
            "confidence_random_removed": after_random,
            "drop_top": base - after_top,
            "drop_random": base - after_random,
        }
    )


def explanation_quality(
    model,
    images,
    labels,
    masks,
    class_names,
    heatmaps: dict,
    class_index=None,
    *,
    fraction: float = 0.1,
    random_repeats: int = 3,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per image and method: pointing game, energy inside the lesion, faithfulness.

    ``heatmaps`` is ``{method: (n, H, W)}`` as :func:`compute_heatmaps` gives; ``labels``
    are class names; ``class_index`` is the class each map explains (default: the true
    class). ``mask_share`` is the lesion's share of the image: the chance level of both
    the pointing game (a random point) and the energy share (a flat map).
    """
    images = to_model_input(images)
    labels = np.asarray(labels)
    true_index = np.array([list(class_names).index(label) for label in labels])
    index = true_index if class_index is None else class_indices(class_index, len(images))
    masks = np.asarray(masks, dtype=bool)
    predict = probability_function(model)
    probabilities = predict(images)
    frames = []
    for method, maps in heatmaps.items():
        maps = upsample_maps(maps, images.shape[1:3])
        deletion = deletion_scores(
            predict, images, maps, index, fraction=fraction, random_repeats=random_repeats, seed=seed
        )
        frame = pd.DataFrame(
            {
                "image": np.arange(len(images)),
                "method": method,
                "label": labels,
                "explained_class": [class_names[i] for i in index],
                "predicted": [class_names[i] for i in probabilities.argmax(1)],
                "flat_map": np.ptp(maps.reshape(len(maps), -1), axis=1) == 0,
                "pointing_hit": pointing_game(maps, masks),
                "energy_inside": energy_inside(maps, masks),
                "mask_share": np.where(masks.any(axis=(1, 2)), masks.mean(axis=(1, 2)), np.nan),
            }
        )
        frames.append(pd.concat([frame, deletion.drop(columns="confidence_random_removed")], axis=1))
    return pd.concat(frames, ignore_index=True)


def summarize_quality(per_image: pd.DataFrame) -> pd.DataFrame:
    """Means per method and true class; ``faithfulness`` = drop_top - drop_random.

    Localisation columns are over images with a lesion only (NaN for Normal), and leave
    out flat maps (all zero: nothing to point with), which ``flat_maps`` counts.
    """
    grouped = per_image.groupby(["method", "label"], sort=False)
    table = grouped.agg(
        images=("image", "size"),
        with_lesion=("mask_share", "count"),
        flat_maps=("flat_map", "sum"),
        pointing_hit_rate=("pointing_hit", "mean"),
        energy_inside=("energy_inside", "mean"),
        chance_level=("mask_share", "mean"),
        confidence=("confidence", "mean"),
        drop_top=("drop_top", "mean"),
        drop_random=("drop_random", "mean"),
    )
    table["faithfulness"] = table["drop_top"] - table["drop_random"]
    return table.reset_index()


def quality_text(summary: pd.DataFrame, fraction: float = 0.1) -> str:
    """:func:`summarize_quality`'s table as text, with what each column means."""
    shown = summary.assign(method=summary["method"].map(METHOD_TITLES))
    return (
        shown.to_string(index=False, float_format=lambda v: f"{v:.3f}")
        + "\npointing_hit_rate and energy_inside: images with a lesion only; chance_level: the lesion's "
        f"share of the image; faithfulness: confidence drop when the top {fraction:.0%} of the map's "
        "pixels are removed minus the drop for as many random pixels."
    )


def central_band(size: int, fraction: float = 1 / 3) -> np.ndarray:
    """A (size, size) bool mask of the middle ``fraction`` of the image's width.

    On a frontal chest image that band holds the spine, the mediastinum and most of the
    heart; the lungs, and so the lesions, lie mostly outside it. A map whose peak keeps
    falling in the band, whatever the class, points at the middle of the chest.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie strictly between 0 and 1, got {fraction!r}.")
    band = np.zeros((size, size), dtype=bool)
    margin = int(round(size * (1 - fraction) / 2))
    band[:, margin : size - margin] = True
    return band


def localization_table(heatmaps, masks, labels, band_fraction: float = 1 / 3) -> pd.DataFrame:
    """Per class: do the maps sit on the lesion, or in the central band of the chest?

    ``heatmaps`` (n, H, W) at the input size, ``masks`` the lesion masks, ``labels`` the
    class names. Columns: ``pointing_hit_rate`` and ``energy_inside`` on the lesion (images
    with a lesion only) next to ``lesion_share``, the chance level of both; ``central_peak_rate``
    and ``central_energy`` in :func:`central_band`, next to ``central_share``, its share of
    the image (their chance level). Flat maps count as missing.
    """
    heatmaps, masks = np.asarray(heatmaps, dtype=np.float32), np.asarray(masks, dtype=bool)
    band = np.broadcast_to(central_band(heatmaps.shape[-1], band_fraction), heatmaps.shape)
    frame = pd.DataFrame(
        {
            "label": np.asarray(labels),
            "pointing_hit": pointing_game(heatmaps, masks),
            "energy_inside": energy_inside(heatmaps, masks),
            "lesion_share": np.where(masks.any(axis=(1, 2)), masks.mean(axis=(1, 2)), np.nan),
            "central_peak": pointing_game(heatmaps, band),
            "central_energy": energy_inside(heatmaps, band),
        }
    )
    table = frame.groupby("label", sort=False).agg(
        images=("label", "size"),
        pointing_hit_rate=("pointing_hit", "mean"),
        energy_inside=("energy_inside", "mean"),
        lesion_share=("lesion_share", "mean"),
        central_peak_rate=("central_peak", "mean"),
        central_energy=("central_energy", "mean"),
    )
    table["central_share"] = band[0].mean()
    return table.reset_index()
