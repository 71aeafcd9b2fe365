"""Phantoms: a synthetic chest X-ray dataset drawn on the spot, with no download.

:func:`generate_phantoms` draws frontal chest radiographs of made-up patients in
three classes and writes them in the layout of the public covid-chestxray-dataset
(``images/``, ``metadata.csv``), plus one lesion mask per image (``masks/``):

* ``COVID-19``: bilateral, peripheral, mostly lower-zone ground-glass opacities;
* ``Pneumonia``: one large dense consolidation in the middle or lower zone of one
  lung (left in half the patients, right in the other half), with air bronchograms;
* ``Normal``: clear lungs.

Each patient has 1 to 4 studies a few days apart, with a slightly different pose
and exposure, and lesions that grow or fade in place. Everything is computed from
the seed, so the same call writes the same bytes on every run.

``difficulty`` (0 to 1) sets how hard the classes are to tell apart: mild cases with
small, faint lesions, ground glass in one lung only, patchy pneumonia as faint as ground
glass, more rotation, shift, exposure and noise, and side markers in any class. The
default is calibrated with ``covid-tutorial bench phantoms`` (figures in data/README.md).
``lesions=False`` draws the same patients without their lesions: the class lives in the
lesions alone, so every model must score at chance there.

What a phantom is not
---------------------
A phantom is a cartoon of a radiograph, drawn so that the course can run in
minutes on any laptop, in CI and on Binder. It differs from a real chest X-ray in
ways that matter for what a model trained on it can tell you:

* **Anatomy**: smooth, hand-drawn shapes (body, lungs, heart, ribs, clavicles,
  spine, a few vessels). No trabecular bone, no breast shadows, no scapulae, no
  real vascular tree, no scoliosis, no patient turned by more than a few degrees,
  no poorly inspired films, no children.
* **Pathology**: one idealised picture per class. Real COVID-19 can be unilateral
  or invisible on X-ray, real bacterial pneumonia can be patchy or bilateral, and
  real images show effusions, atelectasis, nodules, old scars and heart failure,
  none of which appear here. Even at the highest difficulty the classes are easier
  to tell apart than in life, so a high score on phantoms says that a pipeline works,
  not that a model can detect COVID-19.
* **Labels and masks**: exact by construction; a mask is a threshold of the very
  layer that drew the lesion. Real labels come from reports and PCR tests, are
  noisy, and the "no finding" class is often drawn from another hospital.
* **Balance**: equal thirds of patients per class, pneumonia equally often left and
  right. Real prevalences are nothing like that.
* **Acquisition**: one imaginary scanner, whose pose and exposure vary more as the
  difficulty rises, with "L"/"R" side markers in any class. No hospital, device or
  site effects, no tubes, wires, pacemakers, rulers, collimation borders or JPEG
  artefacts, unless you ask for the one class-linked artefact on offer
  (``marker_class``), a corner tag that the shortcut-learning lesson uses on purpose.
* **Confounders**: sex, age, view and exposure are drawn independently of the
  class, whereas in real collections they are not (COVID-19 patients are more
  often imaged AP, in intensive care, at other sites).

A model that fails on phantoms has a bug or too little data; a model that succeeds
on phantoms has shown nothing about real patients. Not for clinical use.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ..errors import DataError
from ..system import progress_bar

__all__ = [
    "PHANTOM_FINDINGS",
    "METADATA_COLUMNS",
    "IMAGE_FOLDER",
    "MASK_FOLDER",
    "METADATA_FILENAME",
    "STAMP_FILENAME",
    "MASK_THRESHOLD",
    "MAX_STUDIES",
    "DEFAULT_DIFFICULTY",
    "check_output_folder",
    "prepare_output_folder",
    "assign_classes",
    "generate_phantoms",
    "phantom_counts",
]

PHANTOM_FINDINGS = {
    "COVID-19": "Pneumonia/Viral/COVID-19",
    "Pneumonia": "Pneumonia/Bacterial/Streptococcus",
    "Normal": "No Finding",
}
METADATA_COLUMNS = [
    "patientid",
    "offset",
    "sex",
    "age",
    "finding",
    "view",
    "modality",
    "folder",
    "filename",
    "mask_filename",
]
IMAGE_FOLDER = "images"
MASK_FOLDER = "masks"
METADATA_FILENAME = "metadata.csv"
STAMP_FILENAME = "phantoms.json"  # marks a folder as made by generate_phantoms
MASK_THRESHOLD = 0.25  # a pixel is lesion where the lesion layer reaches this
MAX_STUDIES = 4
# 0: the textbook picture of each class under one ideal scanner; 1: mild cases, classes
# that overlap, varied acquisition. The default is calibrated so that the course's
# networks are right most of the time but not always (``covid-tutorial bench phantoms``).
DEFAULT_DIFFICULTY = 0.5
_FILLED_LUNG = 0.2  # heart and airless lung: attenuation above soft tissue

_GENERATOR_NAME = "covid_tutorial.phantoms"  # the stamp's name since the first sets: kept so they are recognised
_PHANTOM_PNG = re.compile(r"^P\d{4,}_s\d+\.png$")
# Independent random streams per patient, so that adding a marker or changing a
# class never changes the anatomy or the exposure of any image.
_ANATOMY, _LESION, _STUDY, _DEMOGRAPHY, _MARKER, _SIDE_MARKER = range(6)


@dataclasses.dataclass(frozen=True)
class _Anatomy:
    """One patient's body, in units of the image width (0..1, y pointing down)."""

    midline: float  # x of the spine
    body_half_width: float
    tissue: float  # soft-tissue attenuation at full body depth
    lung_air: float  # how much darker the lungs are than soft tissue
    medial_gap: float  # distance from midline to the medial lung edge
    lung_width: float  # distance from the medial to the lateral lung edge
    apex_y: float
    right_dome_y: float  # patient's right = image left; the right dome sits higher
    left_dome_drop: float
    costophrenic_drop: float  # how far the lateral angles reach below the domes
    heart_x: float
    heart_y: float
    heart_rx: float
    heart_ry: float
    rib_start_y: float
    rib_spacing: float
    has_gastric_bubble: bool
    vessels: tuple  # polylines (n, 2) of the lung vessels, x and y
    texture: np.ndarray  # coarse noise, upsampled into lung texture


@dataclasses.dataclass(frozen=True)
class _Lesions:
    """One patient's lesions: where they are never changes between studies."""

    kind: str  # "COVID-19", "Pneumonia" or "Normal"
    fill: float  # share of the air replaced by fluid where the lesion layer is 1
    blobs: tuple = ()  # (x, y, sigma_x, sigma_y, angle, amplitude) per blob
    side: int = 0  # the lung of a one-sided lesion: -1 image left, +1 image right
    midline: float = 0.5
    bronchi: tuple = ()  # polylines of air bronchograms inside a consolidation
    texture: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class _Study:
    """What changes from one study to the next: pose, exposure, lesion evolution."""

    view: str
    angle: float  # degrees
    shift: tuple  # (dx, dy) in image widths
    gamma: float
    contrast: float
    brightness: float
    heel: tuple  # (gx, gy): a gentle exposure gradient across the film
    noise: float
    lesion_extent: float
    lesion_intensity: float


def _between(low: float, high: float, difficulty: float) -> float:
    """``low`` at difficulty 0, ``high`` at difficulty 1, linear in between."""
    return low + (high - low) * difficulty


def _ramp(distance: np.ndarray, width: float) -> np.ndarray:
    """0 outside, 1 inside, a linear edge ``width`` wide around distance 0."""
    return np.clip(0.5 + distance / width, 0.0, 1.0)


def _lung_edges(anatomy: _Anatomy, side: int, y):
    """Medial and lateral edges (distance from midline) of one lung at height y.

    ``side`` is -1 for the lung on the image left (the patient's right), +1 for
    the lung on the image right.
    """
    gap, width = anatomy.medial_gap, anatomy.lung_width
    dome_y = anatomy.right_dome_y + (anatomy.left_dome_drop if side > 0 else 0.0)
    angle_y = dome_y + anatomy.costophrenic_drop
    t = np.clip((np.asarray(y) - anatomy.apex_y) / (angle_y - anatomy.apex_y), 0, 1)
    apex_x = gap + 0.3 * width
    lateral = apex_x + (gap + width - apex_x) * np.sqrt(1 - (1 - t) ** 2)
    t_medial = np.minimum(t / 0.35, 1.0)
    medial = apex_x - (apex_x - gap) * np.sqrt(1 - (1 - t_medial) ** 2)
    return medial, lateral


def _dome_line(anatomy: _Anatomy, side: int, across) -> np.ndarray:
    """Height of one diaphragm dome at a distance ``across`` from the midline."""
    gap, width = anatomy.medial_gap, anatomy.lung_width
    dome_y = anatomy.right_dome_y + (anatomy.left_dome_drop if side > 0 else 0.0)
    peak_x = gap + 0.45 * width
    return (
        dome_y
        + anatomy.costophrenic_drop * ((across - peak_x) / (gap + width - peak_x)) ** 2
    )


def _lung_field(x, y, anatomy: _Anatomy, side: int, edge: float) -> np.ndarray:
    """Soft mask (0..1) of one lung: rounded apex, dome below, sharp lateral angle."""
    across = side * (x - anatomy.midline)
    medial, lateral = _lung_edges(anatomy, side, y)
    dome = _dome_line(anatomy, side, across)
    return (
        _ramp(lateral - across, edge)
        * _ramp(across - medial, edge)
        * _ramp(dome - y, edge)
        * _ramp(y - anatomy.apex_y, edge)
    )


def _ellipse(x, y, cx, cy, rx, ry, angle=0.0, power=2.0) -> np.ndarray:
    """Normalised radius of a (super)ellipse: below 1 inside, 1 on the border."""
    cos, sin = math.cos(angle), math.sin(angle)
    dx, dy = x - cx, y - cy
    along = np.abs((cos * dx + sin * dy) / rx)
    across = np.abs((-sin * dx + cos * dy) / ry)
    if power == 2.0:  # the common case, without slow fractional powers
        return np.sqrt(along * along + across * across)
    if power == 3.0:
        return np.cbrt(along * along * along + across * across * across)
    return (along**power + across**power) ** (1 / power)


def _draw_curves(size, curves, thickness) -> np.ndarray:
    """Antialiased polylines (coordinates in image widths) on a float layer, 0..1."""
    layer = np.zeros((size, size), np.uint8)
    width = max(1, round(thickness * size))
    for points in curves:
        pixels = np.round((np.asarray(points) * size - 0.5) * 16).astype(np.int32)
        cv2.polylines(layer, [pixels], False, 255, width, cv2.LINE_AA, shift=4)
    return layer.astype(np.float32) / 255


def _smooth_noise(rng: np.random.Generator, cells: int = 24) -> np.ndarray:
    """Coarse noise in 0..1 on a small grid; resized to any image size later."""
    noise = rng.standard_normal((cells, cells)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 1.0)
    return (noise - noise.min()) / (noise.max() - noise.min() + 1e-6)


def _upsample(noise: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)


def _sample_vessels(rng, midline: float, medial_gap: float) -> tuple:
    """Branching lines from each hilum towards the lung periphery."""
    curves = []
    for side in (-1, 1):
        hilum_x = midline + side * (medial_gap + 0.04)
        hilum_y = 0.42 + (0.0 if side < 0 else -0.02)
        for _ in range(rng.integers(5, 8)):
            angle = rng.uniform(-1.2, 1.4)  # 0 points straight out to the side
            x, y = hilum_x, hilum_y
            points = [(x, y)]
            for _ in range(5):
                angle += rng.normal(0, 0.25)
                step = rng.uniform(0.025, 0.04)
                x += side * step * math.cos(angle)
                y += step * math.sin(angle)
                points.append((x, y))
            curves.append(np.array(points))
    return tuple(curves)


def _sample_anatomy(rng: np.random.Generator) -> _Anatomy:
    args = dict(
        midline=0.5 + rng.uniform(-0.01, 0.01),
        body_half_width=rng.uniform(0.40, 0.47),
        tissue=rng.uniform(0.44, 0.5),
        lung_air=rng.uniform(0.27, 0.33),
        medial_gap=rng.uniform(0.058, 0.07),
        lung_width=rng.uniform(0.26, 0.31),
        apex_y=rng.uniform(0.10, 0.14),
        right_dome_y=rng.uniform(0.64, 0.71),
        left_dome_drop=rng.uniform(0.01, 0.035),
        costophrenic_drop=rng.uniform(0.07, 0.10),
        heart_x=rng.uniform(0.53, 0.555),
        heart_rx=rng.uniform(0.14, 0.17),
        heart_ry=rng.uniform(0.095, 0.115),
        rib_start_y=rng.uniform(0.09, 0.115),
        rib_spacing=rng.uniform(0.062, 0.07),
        has_gastric_bubble=bool(rng.random() < 0.6),
    )
    # The heart rests on the diaphragm.
    args["heart_y"] = args["right_dome_y"] - rng.uniform(0.02, 0.045)
    vessels = _sample_vessels(rng, args["midline"], args["medial_gap"])
    return _Anatomy(**args, vessels=vessels, texture=_smooth_noise(rng))


def _sample_lesions(rng, kind: str, anatomy: _Anatomy, side: int, difficulty: float) -> _Lesions:
    if kind == "COVID-19":
        return _sample_ground_glass(rng, anatomy, difficulty)
    if kind == "Pneumonia":
        return _sample_consolidation(rng, anatomy, side, difficulty)
    return _Lesions(kind="Normal", fill=0.0)


def _severity(rng, difficulty: float) -> float:
    """How marked a patient's disease is: always 1 at difficulty 0, down to 0.3 (mild) at 1."""
    return float(rng.uniform(_between(1.0, 0.3, difficulty), 1.0))


def _sample_ground_glass(rng, anatomy: _Anatomy, difficulty: float) -> _Lesions:
    """Hazy blobs against the outer edge of the lungs, mostly low down: in both lungs,
    or, as the difficulty rises, more and more often in one lung only (as pneumonia)."""
    severity = _severity(rng, difficulty)
    one_sided = rng.random() < 0.4 * difficulty
    sides = (int(rng.choice([-1, 1])),) if one_sided else (-1, 1)
    blobs = []
    for side in sides:
        lower_zone = [rng.uniform(0.58, 0.95) for _ in range(rng.integers(3, 5))]
        anywhere = [rng.uniform(0.3, 0.95) for _ in range(rng.integers(0, 2))]
        for t in lower_zone + anywhere:
            y = anatomy.apex_y + t * (
                anatomy.right_dome_y + anatomy.costophrenic_drop - anatomy.apex_y
            )
            _, lateral = _lung_edges(anatomy, side, y)
            across = float(lateral) - rng.uniform(0.02, 0.065)
            sigma = rng.uniform(0.045, 0.07) * (0.6 + 0.4 * severity)
            blobs.append(
                (
                    anatomy.midline + side * across,
                    y,
                    sigma * rng.uniform(0.75, 1.2),
                    sigma * rng.uniform(0.9, 1.5),
                    rng.uniform(-0.5, 0.5),
                    rng.uniform(0.75, 1.0) * severity,
                )
            )
    return _Lesions(
        kind="COVID-19",
        fill=rng.uniform(0.55, 0.75),  # hazy: vessels and ribs still show through
        blobs=tuple(blobs),
        texture=_smooth_noise(rng, cells=40),
    )


def _sample_consolidation(rng, anatomy: _Anatomy, side: int, difficulty: float) -> _Lesions:
    """A dense consolidation in one lung, crossed by air bronchograms; as the difficulty
    rises, smaller, fainter and patchier (closer to ground glass) in mild cases."""
    severity = _severity(rng, difficulty)
    height = anatomy.right_dome_y + anatomy.costophrenic_drop - anatomy.apex_y
    y = anatomy.apex_y + rng.uniform(0.45, 0.68) * height  # middle or lower zone
    medial, lateral = _lung_edges(anatomy, side, y)
    across = float(medial + rng.uniform(0.5, 0.65) * (lateral - medial))
    x = anatomy.midline + side * across
    rx = rng.uniform(0.55, 0.75) * anatomy.lung_width * (0.55 + 0.45 * severity)
    ry = rng.uniform(0.1, 0.14) * (0.7 + 0.3 * severity)
    bronchi = []
    for _ in range(rng.integers(2, 5)):
        angle = rng.uniform(-0.7, 0.7)  # fanning out from the hilum side
        bx, by = x - side * 0.6 * rx, y + rng.uniform(-0.3, 0.3) * ry
        points = [(bx, by)]
        for _ in range(4):
            angle += rng.normal(0, 0.15)
            bx += side * 0.25 * rx * math.cos(angle)
            by += 0.25 * rx * math.sin(angle)
            points.append((bx, by))
        bronchi.append(np.array(points))
    return _Lesions(
        kind="Pneumonia",
        fill=rng.uniform(1.0, 1.2) * _between(1.0, 0.45 + 0.55 * severity, difficulty),
        blobs=((x, y, rx, ry, rng.uniform(-0.3, 0.3), 1.0),),
        side=side,
        midline=anatomy.midline,
        bronchi=tuple(bronchi),
        texture=_smooth_noise(rng, cells=40),
    )


def _sample_study(rng: np.random.Generator, difficulty: float) -> _Study:
    """Pose and exposure vary more, and lesions more between studies, as the difficulty rises."""
    angle = _between(3, 10, difficulty)
    shift = _between(0.02, 0.06, difficulty)
    heel = _between(0.04, 0.1, difficulty)
    return _Study(
        view="AP" if rng.random() < 0.15 else "PA",
        angle=rng.uniform(-angle, angle),
        shift=(rng.uniform(-shift, shift), rng.uniform(-shift, shift)),
        gamma=rng.uniform(_between(0.9, 0.75, difficulty), _between(1.15, 1.35, difficulty)),
        contrast=rng.uniform(_between(0.9, 0.75, difficulty), _between(1.1, 1.25, difficulty)),
        brightness=rng.uniform(-1, 1) * _between(0.05, 0.12, difficulty),
        heel=(rng.uniform(-heel, heel), rng.uniform(-heel, heel)),
        noise=rng.uniform(0.01, _between(0.03, 0.07, difficulty)),
        lesion_extent=rng.uniform(_between(0.8, 0.6, difficulty), 1.2),
        lesion_intensity=rng.uniform(_between(0.8, 0.6, difficulty), 1.15),
    )


def _render_anatomy(anatomy: _Anatomy, view: str, x, y, size):
    """Attenuation of the body without lesions, the lung mask, and what filling adds."""
    edge = max(1.5 / size, 0.006)
    offset = x - anatomy.midline
    across = np.abs(offset)
    # Soft tissue: a rounded torso, narrow at the neck, sloping shoulders.
    shoulders = np.sin(0.5 * np.pi * np.clip((y + 0.02) / 0.22, 0, 1))
    half_width = 0.09 + (anatomy.body_half_width - 0.09) * shoulders
    half_width = half_width * (1 - 0.06 * np.clip(y - 0.45, 0, 1))
    depth = np.sqrt(np.clip(1 - (offset / half_width) ** 2, 0, 1))
    attenuation = anatomy.tissue * depth**0.8
    # Below the diaphragm, liver and spleen are as dense as the heart.
    diaphragm = np.where(offset < 0, _dome_line(anatomy, -1, across), 0)
    diaphragm = np.where(offset >= 0, _dome_line(anatomy, 1, across), diaphragm)
    diaphragm = np.minimum(diaphragm, anatomy.right_dome_y + 0.05)
    abdomen = _ramp(y - diaphragm, 0.02)
    attenuation += 0.15 * abdomen * depth

    lungs = _lung_field(x, y, anatomy, -1, edge) + _lung_field(x, y, anatomy, 1, edge)
    heart_scale = 1.1 if view == "AP" else 1.0  # AP films magnify the heart
    left_ventricle = _ellipse(
        x,
        y,
        anatomy.heart_x,
        anatomy.heart_y,
        anatomy.heart_rx * heart_scale,
        anatomy.heart_ry * heart_scale,
        angle=0.45,
    )
    right_atrium = _ellipse(
        x, y, anatomy.midline - 0.05, anatomy.heart_y - 0.01, 0.065, 0.09
    )
    heart = np.maximum(_ramp(1 - left_ventricle, 0.06), _ramp(1 - right_atrium, 0.08))
    mediastinum = _ramp(0.05 + 0.03 * y - across, 0.02)
    aortic_knob = _ellipse(x, y, anatomy.midline + 0.055, 0.36, 0.035, 0.03)
    central = np.maximum(np.maximum(heart, mediastinum), _ramp(1 - aortic_knob, 0.2))
    central *= 1 - abdomen  # the heart's lower border melts into the diaphragm

    # Lungs are darkest in their depth, lighter at the edges and behind the heart.
    lung_depth = cv2.GaussianBlur(lungs, (0, 0), 0.04 * size)
    lung_depth /= lung_depth.max() + 1e-6
    texture = _upsample(anatomy.texture, size)
    air = lungs * (0.6 + 0.4 * lung_depth) * (0.88 + 0.12 * texture)
    air *= 1 - 0.75 * central
    attenuation -= anatomy.lung_air * air
    attenuation += _FILLED_LUNG * central
    trachea = _ramp(0.014 - across, 0.008) * _ramp(0.37 - y, 0.03)
    attenuation -= 0.08 * trachea * depth

    # Bones: spine, posterior and anterior ribs, clavicles.
    vertebrae = 0.85 + 0.15 * np.cos(
        2 * np.pi * (y - anatomy.rib_start_y) / anatomy.rib_spacing
    )
    spine = _ramp(0.032 - across, 0.01) * vertebrae * depth
    attenuation += 0.035 * spine * (1 - 0.5 * central)
    behind_mediastinum = 1 - 0.8 * central
    ribs = _draw_curves(size, _rib_curves(anatomy), 0.02)
    attenuation += 0.065 * ribs * depth * behind_mediastinum
    attenuation += (
        0.03
        * _draw_curves(size, _anterior_rib_curves(anatomy), 0.022)
        * depth
        * behind_mediastinum
    )
    clavicles = [
        np.array(
            [
                (anatomy.midline + side * s, 0.15 - 0.25 * s + 0.2 * s * s)
                for s in np.linspace(0.035, 0.3, 12)
            ]
        )
        for side in (-1, 1)
    ]
    attenuation += 0.08 * _draw_curves(size, clavicles, 0.024) * depth

    # Vessels and hila: faint branching markings inside the lungs.
    vessels = _draw_curves(size, anatomy.vessels, 0.006)
    vessels = cv2.GaussianBlur(vessels, (0, 0), max(0.5, 0.004 * size))
    attenuation += 0.1 * vessels * lungs * (1 - 0.6 * lung_depth)
    for side in (-1, 1):
        hilum = 1 - _ellipse(x, y, anatomy.midline + side * 0.1, 0.43, 0.04, 0.06)
        attenuation += 0.05 * _ramp(hilum, 1.0) * lungs

    if anatomy.has_gastric_bubble:
        stomach_y = anatomy.right_dome_y + anatomy.left_dome_drop + 0.07
        bubble = _ellipse(x, y, anatomy.midline + 0.17, stomach_y, 0.045, 0.025)
        attenuation -= 0.1 * _ramp(1 - bubble, 0.4)
    # What fluid filling the lungs would add: the air it replaces, plus as much
    # again as the heart has over soft tissue, where no heart is in front.
    filled = anatomy.lung_air * air + _FILLED_LUNG * lungs * (1 - central)
    return attenuation, lungs, filled


def _rib_curves(anatomy: _Anatomy) -> list:
    """Posterior ribs: out from the spine, a little up, then down the chest wall."""
    curves = []
    reach = anatomy.medial_gap + anatomy.lung_width + 0.05
    spread = np.linspace(0.04, reach, 16)
    for index in range(10):
        start = anatomy.rib_start_y + index * anatomy.rib_spacing
        for side in (-1, 1):
            rib_y = start + 1.3 * (spread - 0.1) ** 2 + (0.06 + 0.01 * index) * spread
            curves.append(np.stack([anatomy.midline + side * spread, rib_y], axis=1))
    return curves


def _anterior_rib_curves(anatomy: _Anatomy) -> list:
    """Anterior ribs: from the chest wall down towards the sternum, fainter."""
    curves = []
    outer = anatomy.medial_gap + anatomy.lung_width + 0.02
    spread = np.linspace(0.12, outer, 12)
    for index in range(6):
        start = anatomy.rib_start_y + 0.05 + index * 1.1 * anatomy.rib_spacing
        for side in (-1, 1):
            rib_y = start + 0.35 * (outer - spread) - 0.6 * (outer - spread) ** 2
            curves.append(np.stack([anatomy.midline + side * spread, rib_y], axis=1))
    return curves


def _render_lesions(lesions: _Lesions, study: _Study, x, y, size) -> np.ndarray:
    """Lesion layer in 0..1 before clipping to the lungs."""
    if lesions.kind == "Normal":
        return np.zeros_like(x)
    extent, intensity = study.lesion_extent, study.lesion_intensity
    texture = _upsample(lesions.texture, size)
    if lesions.kind == "COVID-19":
        clear = np.ones_like(x)
        for cx, cy, sx, sy, angle, amplitude in lesions.blobs:
            radius = _ellipse(x, y, cx, cy, sx * extent, sy * extent, angle)
            clear *= 1 - min(1.0, amplitude * intensity) * np.exp(-0.5 * radius**2)
        return (1 - clear) * (0.7 + 0.3 * texture)
    # Pneumonia: a boxy dense opacity, confined to its lung, with dark bronchi.
    cx, cy, rx, ry, angle, _ = lesions.blobs[0]
    radius = _ellipse(x, y, cx, cy, rx * extent, ry * extent, angle, power=3.0)
    layer = np.clip((1 - radius) / 0.2, 0, 1) ** 0.7 * (0.8 + 0.2 * texture)
    layer *= _ramp(lesions.side * (x - lesions.midline), 0.01)
    air = _draw_curves(size, lesions.bronchi, 0.008)
    air = cv2.GaussianBlur(air, (0, 0), max(0.5, 0.003 * size))
    return np.clip(layer * intensity, 0, 1) * (1 - 0.35 * air)


def _render_study(body, lesions, study, x, y, size, noise_rng):
    """One radiograph (uint8) and its lesion mask (0/255).

    ``body`` is what :func:`_render_anatomy` returned for this patient and view.
    """
    attenuation, lungs, filled = body
    lesion = _render_lesions(lesions, study, x, y, size) * np.clip(lungs, 0, 1)
    # Fluid replaces air: a filled lung is as dense as the heart.
    attenuation = attenuation + lesions.fill * lesion * filled

    # Pose: the same small rotation and shift moves the body and its lesions.
    centre = (size / 2 - 0.5, size / 2 - 0.5)
    pose = cv2.getRotationMatrix2D(centre, study.angle, 1.0)
    pose[:, 2] += np.array(study.shift) * size
    layers = cv2.warpAffine(
        np.dstack([attenuation, lesion]).astype(np.float32),
        pose,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    attenuation, lesion = layers[..., 0], layers[..., 1]
    mask = np.where(lesion >= MASK_THRESHOLD, 255, 0).astype(np.uint8)

    # Exposure: film response, contrast, a gentle heel effect, quantum noise, blur.
    image = np.clip(attenuation / 0.85, 0, 1) ** study.gamma
    image = study.contrast * (image - 0.5) + 0.5 + study.brightness
    image += study.heel[0] * (x - 0.5) + study.heel[1] * (y - 0.5)
    image += study.noise * noise_rng.standard_normal(image.shape, dtype=np.float32)
    image = cv2.GaussianBlur(image, (0, 0), max(0.6, 0.0035 * size))
    image = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
    return image, mask


def _burn_side_marker(image: np.ndarray, rng: np.random.Generator) -> None:
    """A white "L" or "R" in a random corner other than the top-left, as radiographers
    place them: acquisition clutter that says nothing about the class."""
    size = image.shape[0]
    scale, thickness = size / 400, max(1, round(size / 170))
    letter = str(rng.choice(["L", "R"]))
    (text_w, text_h), _ = cv2.getTextSize(letter, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    margin = round(0.04 * size)
    right, bottom = [(True, False), (False, True), (True, True)][rng.integers(3)]
    x = size - margin - text_w if right else margin
    y = size - margin if bottom else margin + text_h
    cv2.putText(image, letter, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness, cv2.LINE_AA)


def _burn_marker(image: np.ndarray) -> None:
    """A white square with a dark "R" in the top-left corner, like a side marker."""
    size = image.shape[0]
    corner, side = round(0.03 * size), max(6, round(0.1 * size))
    image[corner : corner + side, corner : corner + side] = 255
    scale = side / 30
    thickness = max(1, side // 10)
    (text_w, text_h), _ = cv2.getTextSize(
        "R", cv2.FONT_HERSHEY_SIMPLEX, scale, thickness
    )
    origin = (corner + (side - text_w) // 2, corner + (side + text_h) // 2)
    cv2.putText(
        image, "R", origin, cv2.FONT_HERSHEY_SIMPLEX, scale, 0, thickness, cv2.LINE_AA
    )


def check_output_folder(out_dir: Path, generator: str, file_pattern: re.Pattern, maker: str = "generate_phantoms") -> None:
    """Refuse a folder that holds anything other than an earlier set made by ``generator``
    (its stamp file says so; its images and masks match ``file_pattern``)."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise DataError(f"{out_dir} exists and is not a folder; choose another --out.")
    entries = sorted(out_dir.iterdir())
    if not entries:
        return
    if not _stamped_by(out_dir / STAMP_FILENAME, generator):
        raise DataError(
            f"{out_dir} is not empty and was not written by {maker} (no {STAMP_FILENAME} of "
            "its own in it). Phantoms never overwrite a folder they did not make: choose a new "
            "or empty folder, e.g. data/phantoms-ci."
        )
    ours = {STAMP_FILENAME, METADATA_FILENAME, IMAGE_FOLDER, MASK_FOLDER}
    foreign = [entry for entry in entries if entry.name not in ours]
    for folder in (out_dir / IMAGE_FOLDER, out_dir / MASK_FOLDER):
        if folder.is_dir():
            foreign += [
                entry
                for entry in folder.iterdir()
                if not (entry.is_file() and file_pattern.match(entry.name))
            ]
        elif folder.exists():
            foreign.append(folder)
    if foreign:
        listed = ", ".join(str(entry) for entry in sorted(foreign)[:5])
        raise DataError(
            f"{out_dir} holds an earlier phantom set but also other files ({listed}). "
            "Move them away or choose another folder; phantoms never overwrite them."
        )


def prepare_output_folder(out_dir: Path, stamp: dict, file_pattern: re.Pattern, file_glob: str,
                          maker: str = "generate_phantoms") -> None:
    """Check ``out_dir`` (:func:`check_output_folder`), make its image and mask folders, remove
    the images of an earlier, larger set there, and write the ``stamp`` that marks it as ours."""
    check_output_folder(out_dir, stamp["generator"], file_pattern, maker)
    for folder in (IMAGE_FOLDER, MASK_FOLDER):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
        for old in (out_dir / folder).glob(file_glob):
            old.unlink()
    (out_dir / STAMP_FILENAME).write_text(json.dumps(stamp, indent=2) + "\n")


def _stamped_by(path: Path, generator: str) -> bool:
    try:
        return json.loads(path.read_text()).get("generator") == generator
    except (ValueError, OSError, AttributeError):
        return False


def assign_classes(patients: int, rng: np.random.Generator) -> tuple:
    """Classes in equal thirds, shuffled, and the lung each one-sided pneumonia sits in:
    half left, half right, so that no split sees only one side."""
    classes = rng.permutation(np.resize(np.array(list(PHANTOM_FINDINGS)), patients))
    pneumonia = np.flatnonzero(classes == "Pneumonia")
    sides = np.zeros(patients, dtype=int)
    sides[pneumonia] = rng.permutation(np.resize([-1, 1], len(pneumonia)))
    return [str(kind) for kind in classes], [int(side) for side in sides]


def _patient_rows(patient_index, kind, seed, study_count, marker_class, marker_rate):
    """Demographics and study dates: drawn independently of the class."""
    demography = np.random.default_rng([seed, patient_index, _DEMOGRAPHY])
    sex = "M" if demography.random() < 0.55 else "F"
    age = int(np.clip(round(demography.normal(55, 16)), 18, 92))
    offsets = np.concatenate(
        [[0], np.cumsum(demography.integers(1, 8, study_count - 1))]
    )
    rows = []
    for study_index, offset in enumerate(offsets):
        name = f"P{patient_index + 1:04d}_s{study_index}.png"
        row = {
            "patientid": f"P{patient_index + 1:04d}",
            "offset": int(offset),
            "sex": sex,
            "age": age,
            "finding": PHANTOM_FINDINGS[kind],
            "modality": "X-ray",
            "folder": IMAGE_FOLDER,
            "filename": name,
            "mask_filename": f"{MASK_FOLDER}/{name}",
        }
        if marker_class is not None:
            draw = np.random.default_rng([seed, patient_index, study_index, _MARKER])
            row["marker"] = int(kind == marker_class and draw.random() < marker_rate)
        rows.append(row)
    return rows


def phantom_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Patients and images per finding of a phantom metadata table."""
    counts = table.groupby("finding")["patientid"].agg(["nunique", "size"])
    counts.columns = ["patients", "images"]
    return counts


def generate_phantoms(
    out_dir,
    patients: int = 60,
    size: int = 128,
    seed: int = 0,
    *,
    marker_class: str | None = None,
    marker_rate: float = 1.0,
    difficulty: float = DEFAULT_DIFFICULTY,
    lesions: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """Draw a synthetic chest X-ray dataset into ``out_dir`` and return its metadata.

    Writes ``images/P0001_s0.png`` (8-bit grayscale, ``size`` x ``size``),
    ``masks/P0001_s0.png`` (lesion mask, 0 or 255, empty for Normal),
    ``metadata.csv`` (columns :data:`METADATA_COLUMNS`, as in the public
    covid-chestxray-dataset; ``mask_filename`` is relative to ``out_dir``) and
    ``phantoms.json`` (the arguments, which mark the folder as a phantom set).

    Classes (:data:`PHANTOM_FINDINGS`) are dealt to patients in equal thirds in
    an order shuffled by ``seed``; each patient has 1 to 4 studies. The same
    arguments always give byte-identical files.

    ``marker_class``: burn a white corner tag into images of this class, each with
    probability ``marker_rate``, and add a 0/1 column ``marker`` (for the lesson on
    shortcut learning). Refuses to write into a folder that holds anything but an
    earlier phantom set.

    ``difficulty`` (0 to 1, default :data:`DEFAULT_DIFFICULTY`): how hard the classes are
    to tell apart. It turns up mild cases (smaller, fainter lesions), the overlap of the
    classes (one-sided ground glass, patchy pneumonia), the variation of pose and exposure
    between studies, and side markers ("L"/"R", in any class). ``lesions=False`` draws the
    same patients, studies and labels with their lesions left out: a control on which any
    model must score at chance, since the lesions are the only class signal.
    """
    if int(patients) != patients or patients < 1:
        raise DataError(f"patients must be a positive whole number, got {patients!r}.")
    if int(size) != size or size < 32:
        raise DataError(f"size must be a whole number of pixels >= 32, got {size!r}.")
    if marker_class is not None and marker_class not in PHANTOM_FINDINGS:
        raise DataError(
            f"marker_class must be one of {', '.join(PHANTOM_FINDINGS)} or None, "
            f"got {marker_class!r}."
        )
    if not 0.0 <= marker_rate <= 1.0:
        raise DataError(f"marker_rate must lie between 0 and 1, got {marker_rate!r}.")
    if not 0.0 <= difficulty <= 1.0:
        raise DataError(f"difficulty must lie between 0 and 1, got {difficulty!r}.")
    patients, size, seed = int(patients), int(size), int(seed)

    out_dir = Path(out_dir)
    stamp = dict(
        generator=_GENERATOR_NAME,
        patients=patients,
        size=size,
        seed=seed,
        marker_class=marker_class,
        marker_rate=float(marker_rate),
        difficulty=float(difficulty),
        lesions=bool(lesions),
    )
    prepare_output_folder(out_dir, stamp, _PHANTOM_PNG, "P*_s*.png")

    coordinates = (np.arange(size, dtype=np.float32) + 0.5) / size
    x, y = np.meshgrid(coordinates, coordinates)
    rows = []
    classes, sides = assign_classes(patients, np.random.default_rng(seed))
    for patient_index in progress_bar(range(patients), desc="phantoms", unit="patient", enabled=progress):
        kind = classes[patient_index]
        anatomy = _sample_anatomy(
            np.random.default_rng([seed, patient_index, _ANATOMY])
        )
        lesion_rng = np.random.default_rng([seed, patient_index, _LESION])
        drawn = _sample_lesions(lesion_rng, kind, anatomy, sides[patient_index], difficulty)
        if not lesions:
            drawn = _Lesions(kind="Normal", fill=0.0)
        study_rng = np.random.default_rng([seed, patient_index, _STUDY])
        study_count = int(study_rng.integers(1, MAX_STUDIES + 1))
        patient_rows = _patient_rows(
            patient_index, kind, seed, study_count, marker_class, marker_rate
        )
        bodies = {}  # the anatomy, drawn once per view, for all of its studies
        for study_index, row in enumerate(patient_rows):
            study = _sample_study(study_rng, difficulty)
            if study.view not in bodies:
                bodies[study.view] = _render_anatomy(anatomy, study.view, x, y, size)
            body = bodies[study.view]
            image, mask = _render_study(body, drawn, study, x, y, size, study_rng)
            side_marker = np.random.default_rng([seed, patient_index, study_index, _SIDE_MARKER])
            if side_marker.random() < _between(0.0, 0.3, difficulty):
                _burn_side_marker(image, side_marker)
            if row.get("marker"):
                _burn_marker(image)
            row["view"] = study.view
            cv2.imwrite(str(out_dir / IMAGE_FOLDER / row["filename"]), image)
            cv2.imwrite(str(out_dir / row["mask_filename"]), mask)
        rows += patient_rows

    columns = METADATA_COLUMNS + (["marker"] if marker_class is not None else [])
    metadata = pd.DataFrame(rows)[columns]
    metadata = metadata.sort_values(["patientid", "offset"], ignore_index=True)
    metadata.to_csv(out_dir / METADATA_FILENAME, index=False, lineterminator="\n")
    return metadata
