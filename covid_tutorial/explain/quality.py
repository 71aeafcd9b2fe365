"""How good an explanation map is, measured against known lesions (notebook 06).

The phantoms come with a lesion mask per image, so a map can be scored: the
:func:`pointing_game` (does the map's peak fall on a lesion?), :func:`energy_inside` (the
share of the map's mass inside the lesion, next to the lesion's share of the image,
which is chance) and faithfulness, :func:`deletion_scores` (does removing the map's top
pixels lower the class probability more than removing as many random pixels?).
:func:`explanation_quality` scores every image and method, :func:`summarize_quality`
averages per method and class, with 95% intervals over the images. :func:`localization_table`
asks the other question a map raises, "on the lesion or in the middle of the chest?", against
both chance levels.

Where a map peaks can also say something about the network rather than the image. Zero padding
lets a CNN tell the border of its input from the rest (Islam et al. 2020; Kayhan and van Gemert
2020), and maps can peak there, in an empty corner or along an edge. :func:`border_band` marks
the outer band of an image (or one of its sides), :func:`peak_share` counts the maps whose
maximum falls in a region, with a Wilson interval over the images and the region's share of the
area as chance (:class:`PeakShare`); :func:`peak_share_table` does it for several sets of maps
at once, and :func:`peaks_follow` tells, from maps of images turned by 180°, whether the peaks
stay with the network's frame or move with the picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from scipy import stats

from ..data import pad_and_resize, read_image, to_model_input
from ..errors import CourseError
from ..metrics import patient_bootstrap
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
    "compared_with_chance",
    "SIDES",
    "border_band",
    "PeakShare",
    "peak_share",
    "peak_share_table",
    "peaks_follow",
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


def _wilson(successes, trials, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of ``successes`` out of ``trials`` (NaN when there are none): the
    interval :mod:`covid_tutorial.metrics` gives a score of 0 or 1 (docs/intervals.md), through
    the same ``scipy.stats.binomtest(...).proportion_ci(method="wilson")``; of real width at 0 and 1."""
    trials = int(trials)
    if trials <= 0:
        return float("nan"), float("nan")
    successes = int(np.clip(round(float(successes)), 0, trials))
    interval = stats.binomtest(successes, trials).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def _rate_interval(hits, units: int | None = None, confidence: float = 0.95) -> tuple[float, float, int]:
    """Wilson interval of the mean of the 0/1 ``hits`` (NaN left out) over ``units`` (default:
    the counted images; the number of patients when images of a patient are counted together)."""
    hits = np.asarray(hits, dtype=float)
    hits = hits[np.isfinite(hits)]
    n = len(hits) if units is None else min(int(units), len(hits))
    if n == 0:
        return float("nan"), float("nan"), 0
    low, high = _wilson(hits.mean() * n, n, confidence)
    return low, high, n


def _mean_interval(values, confidence: float, n_bootstrap: int, seed: int) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaN left out) over its entries."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    low, high, _ = patient_bootstrap(lambda rows: values[rows].mean(), len(values), n_bootstrap=n_bootstrap,
                                     confidence=confidence, seed=seed)  # fmt: skip
    return float(low), float(high)


def summarize_quality(
    per_image: pd.DataFrame, *, confidence: float = 0.95, n_bootstrap: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Means per method and true class; ``faithfulness`` = drop_top - drop_random.

    Localisation columns are over images with a lesion only (NaN for Normal), and leave
    out flat maps (all zero: nothing to point with), which ``flat_maps`` counts;
    ``scored_images`` is how many images the pointing game and the energy share were computed on.
    Each comes with a ``confidence`` interval over those images: ``pointing_ci_low`` and
    ``pointing_ci_high``, the Wilson interval of the hit rate (of real width at 0 and 1),
    and ``energy_ci_low`` and ``energy_ci_high``, a percentile bootstrap of the mean energy
    share (``n_bootstrap`` resamples of the images). An interval over images treats them as
    independent: score one image per patient (notebook 06 does). ``table.attrs["interval"]``
    says this in words.
    """
    grouped = per_image.groupby(["method", "label"], sort=False)
    table = grouped.agg(
        images=("image", "size"),
        with_lesion=("mask_share", "count"),
        flat_maps=("flat_map", "sum"),
        scored_images=("pointing_hit", "count"),
        pointing_hit_rate=("pointing_hit", "mean"),
        energy_inside=("energy_inside", "mean"),
        chance_level=("mask_share", "mean"),
        confidence=("confidence", "mean"),
        drop_top=("drop_top", "mean"),
        drop_random=("drop_random", "mean"),
    )
    table["faithfulness"] = table["drop_top"] - table["drop_random"]
    bounds = {key: (*_rate_interval(rows["pointing_hit"], confidence=confidence)[:2],
                    *_mean_interval(rows["energy_inside"], confidence, n_bootstrap, seed))
              for key, rows in grouped}  # fmt: skip
    columns = ["pointing_ci_low", "pointing_ci_high", "energy_ci_low", "energy_ci_high"]
    table[columns] = pd.DataFrame.from_dict(bounds, orient="index", columns=columns).reindex(table.index)
    order = ["images", "with_lesion", "flat_maps", "scored_images", "pointing_hit_rate", "pointing_ci_low",
             "pointing_ci_high", "energy_inside", "energy_ci_low", "energy_ci_high", "chance_level", "confidence",
             "drop_top", "drop_random", "faithfulness"]  # fmt: skip
    table = table[order].reset_index()
    table.attrs["interval"] = (
        f"{confidence:.0%} intervals over the scored images of each row: Wilson for the pointing game, "
        f"a bootstrap of the images ({n_bootstrap} resamples) for the energy inside the lesion"
    )
    return table


def quality_text(summary: pd.DataFrame, fraction: float = 0.1) -> str:
    """:func:`summarize_quality`'s table as text, with what each column means."""
    shown = summary.assign(method=summary["method"].map(METHOD_TITLES))
    interval = summary.attrs.get("interval")
    return (
        shown.to_string(index=False, float_format=lambda v: f"{v:.3f}")
        + "\npointing_hit_rate and energy_inside: images with a lesion only; chance_level: the lesion's "
        f"share of the image; faithfulness: confidence drop when the top {fraction:.0%} of the map's "
        "pixels are removed minus the drop for as many random pixels."
        + (f"\nci_low, ci_high: {interval}." if interval else "")
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


def localization_table(
    heatmaps, masks, labels, band_fraction: float = 1 / 3, *, groups=None, confidence: float = 0.95
) -> pd.DataFrame:
    """Per class: do the maps sit on the lesion, or in the central band of the chest?

    ``heatmaps`` (n, H, W) at the input size, ``masks`` the lesion masks, ``labels`` the
    class names. Columns: ``pointing_hit_rate`` and ``energy_inside`` on the lesion (images
    with a lesion only) next to ``lesion_share``, the chance level of both; ``central_peak_rate``
    and ``central_energy`` in :func:`central_band`, next to ``central_share``, its share of
    the image (their chance level). Flat maps count as missing.

    The two peak rates come with Wilson intervals (``pointing_ci_low``/``_high``,
    ``central_ci_low``/``_high``) over ``units``: the images counted, or, given ``groups``
    (each image's patient), the patients they come from, the unit the course's intervals
    are drawn over (docs/intervals.md): images of one patient are alike.
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
    frame["group"] = np.arange(len(frame)) if groups is None else np.asarray(groups)
    grouped = frame.groupby("label", sort=False)
    table = grouped.agg(
        images=("label", "size"),
        units=("group", "nunique"),
        pointing_hit_rate=("pointing_hit", "mean"),
        energy_inside=("energy_inside", "mean"),
        lesion_share=("lesion_share", "mean"),
        central_peak_rate=("central_peak", "mean"),
        central_energy=("central_energy", "mean"),
    )
    table["central_share"] = band[0].mean()
    for prefix, column in (("pointing", "pointing_hit"), ("central", "central_peak")):
        bounds = {label: _rate_interval(rows[column], rows.loc[rows[column].notna(), "group"].nunique(), confidence)[:2]
                  for label, rows in grouped}  # fmt: skip
        table[f"{prefix}_ci_low"] = [bounds[label][0] for label in table.index]
        table[f"{prefix}_ci_high"] = [bounds[label][1] for label in table.index]
    order = ["images", "units", "pointing_hit_rate", "pointing_ci_low", "pointing_ci_high", "energy_inside",
             "lesion_share", "central_peak_rate", "central_ci_low", "central_ci_high", "central_energy", "central_share"]  # fmt: skip
    table = table[order].reset_index()
    table.attrs["interval"] = f"{confidence:.0%} Wilson intervals over {'patients' if groups is not None else 'images'}"
    return table


# ---------------------------------------------------------------- where the peaks lie


def compared_with_chance(low: float, high: float, chance: float) -> str:
    """"more than chance" when the interval [low, high] lies above ``chance``, "less than
    chance" when below, "not different from chance" when it holds it; "not measured" when
    the interval is NaN (nothing was counted). The words a printed verdict takes from the numbers."""
    if not (np.isfinite(low) and np.isfinite(high) and np.isfinite(chance)):
        return "not measured"
    return "more than chance" if low > chance else "less than chance" if high < chance else "not different from chance"


SIDES = ("top", "bottom", "left", "right")


def border_band(shape, width: float = 1 / 8, sides=SIDES) -> np.ndarray:
    """A bool mask of ``shape`` (height, width): the band along the image's ``sides``.

    ``width`` is a fraction of the image's height (top, bottom) or width (left, right),
    rounded to whole pixels, at least one. The default, an eighth, is one cell of an 8×8
    map at any image size, so that a map whose peak lies in a border cell of its layer is
    counted whatever size it was stretched to.
    """
    height, breadth = int(shape[-2]), int(shape[-1])
    unknown = set(sides) - set(SIDES)
    if unknown or not len(sides):
        raise ValueError(f"sides must be some of {', '.join(SIDES)}, got {sides!r}.")
    if not 0 < width < 0.5:
        raise ValueError(f"width must lie strictly between 0 and 0.5 of the image, got {width!r}.")
    rows, columns = max(1, round(width * height)), max(1, round(width * breadth))
    band = np.zeros((height, breadth), dtype=bool)
    band[:rows] |= "top" in sides
    band[height - rows :] |= "bottom" in sides
    band[:, :columns] |= "left" in sides
    band[:, breadth - columns :] |= "right" in sides
    return band


@dataclass(frozen=True)
class PeakShare:
    """How many maps peak inside a region, against chance, with a Wilson interval over the maps.

    ``in_region`` holds one value per map: 1.0 when its maximum lies in the region, 0.0 when
    not, NaN for a flat map (no maximum), which is left out of ``images``. ``chance`` is the
    region's share of the image: the share of peaks a map that peaks anywhere at random would put there.
    """

    region: str
    in_region: np.ndarray
    chance: float
    confidence: float = 0.95

    @property
    def images(self) -> int:
        return int(np.isfinite(self.in_region).sum())

    @property
    def peaks(self) -> int:
        return int(np.nansum(self.in_region))

    @property
    def share(self) -> float:
        return self.peaks / self.images if self.images else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return _wilson(self.peaks, self.images, self.confidence)

    @property
    def compared_with_chance(self) -> str:
        """:func:`compared_with_chance` of the interval: "more than chance", "less than chance",
        "not different from chance", or "not measured" when every map was flat."""
        return compared_with_chance(*self.interval, self.chance)

    def __str__(self) -> str:
        low, high = self.interval
        return (f"{self.peaks} of {self.images} peaks in {self.region} ({self.share:.2f} [{low:.2f}, {high:.2f}]) "
                f"against {self.chance:.2f} by chance: {self.compared_with_chance}")  # fmt: skip


def peak_share(maps, region, *, name: str = "the region", confidence: float = 0.95) -> PeakShare:
    """Where each map (n, H, W) peaks: inside the bool ``region`` (H, W) or not.

    The peak is the first maximum in row-major order (as in :func:`pointing_game`); a map
    stretched from a coarse layer peaks on the centre of its brightest cell or, in a border
    cell, anywhere in it, so count coarse maps with a band one cell wide (:func:`border_band`).
    """
    maps, region = np.asarray(maps, dtype=np.float32), np.asarray(region, dtype=bool)
    if maps.ndim != 3 or maps.shape[1:] != region.shape:
        raise ValueError(f"maps {maps.shape} must be (n, H, W) with (H, W) = region {region.shape}")
    if not region.any() or region.all():
        raise ValueError("the region must hold some pixels of the image, but not all of them")
    hits = pointing_game(maps, np.broadcast_to(region, maps.shape))
    return PeakShare(name, hits, float(region.mean()), confidence)


def peak_share_table(maps_by: dict, region, *, name: str = "the region", names=None, confidence: float = 0.95
                     ) -> pd.DataFrame:  # fmt: skip
    """:func:`peak_share` for each entry of ``maps_by`` (``{key: maps}``), one row each.

    Keys may be tuples (e.g. ``(model, method)``): ``names`` names their levels in the index.
    Columns: ``peaks`` in the region, ``images`` counted, ``share`` with ``ci_low`` and
    ``ci_high``, ``chance`` (the region's share of the image), ``compared_with_chance``
    and ``result``, the :class:`PeakShare` itself (its ``str`` is a sentence).
    """
    rows = {}
    for key, maps in maps_by.items():
        result = peak_share(maps, region, name=name, confidence=confidence)
        low, high = result.interval
        rows[key] = {"peaks": result.peaks, "images": result.images, "share": result.share, "ci_low": low,
                     "ci_high": high, "chance": result.chance, "compared_with_chance": result.compared_with_chance,
                     "result": result}  # fmt: skip
    table = pd.DataFrame.from_dict(rows, orient="index")
    if names is not None:
        table.index.names = [names] if isinstance(names, str) else list(names)
    table.attrs["interval"] = f"{confidence:.0%} Wilson intervals over the maps counted (flat maps left out)"
    return table


def peaks_follow(frame: PeakShare, image: PeakShare) -> str:
    """Do the peaks stay with the network's frame, or move with the picture?

    Both counts come from maps of the *same* images turned by 180°: ``frame`` counts the peaks
    in a region of the network's input (say, its top band), ``image`` in the same region of the
    picture, which the turn has carried to the opposite side. Returns "the frame" or "the
    image" when one interval lies wholly above the other, else "neither clearly".
    """
    (frame_low, frame_high), (image_low, image_high) = frame.interval, image.interval
    if frame.images and frame_low > image_high:
        return "the frame"
    if image.images and image_low > frame_high:
        return "the image"
    return "neither clearly"
