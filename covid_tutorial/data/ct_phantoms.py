"""CT phantoms: synthetic axial chest CT slices drawn on the spot, with no download.

:func:`generate_ct_phantoms` builds one procedural 3-D chest per made-up patient and
writes a stack of *adjacent* axial slices through it, in the layout of the X-ray
phantoms (:mod:`covid_tutorial.data.phantoms`): ``images/``, ``masks/``, ``metadata.csv``
with the same columns plus ``slice``, and a stamp file. Three classes:

* ``COVID-19``: ground-glass opacities in both lungs, against the pleura and towards
  the back (the patient lies supine); in about half the patients some of them carry
  crazy paving, a fine reticulation inside the ground glass;
* ``Pneumonia``: lobar consolidation of one lung (left in half the patients, right in
  the other half), sharply bounded by a fissure, crossed by air bronchograms;
* ``Normal``: clear lungs.

The chest is computed in Hounsfield-like units (air -1000, lung about -850, fat -100,
soft tissue 40, bone several hundred) and shown through a lung window
(:data:`LUNG_WINDOW`: level -600, width 1500) as 8-bit PNG. Slices are
:data:`SLICE_SPACING_MM` apart, so that neighbouring slices of one patient are nearly
identical: that is what makes an image-wise split of CT slices leak so badly
(notebook 03). Everything is computed from the seed: the same call writes the same
bytes on every run.

What a CT phantom is not
------------------------
* **No scanner physics**: no quantum noise texture (only a little white noise), no
  streaks, beam hardening, partial-volume or motion artefacts, no reconstruction
  kernel, no table, no clothing.
* **Idealised anatomy**: ellipses for body, lungs and heart, a periodic spine and ribs,
  vessels and airways as random smooth tubes rather than a branching tree; one slab
  through the middle and lower chest (the apices never, the domes rarely).
* **Lesions from a recipe**: one look per class, placed by rules (peripheral and
  posterior ground glass, one consolidated lobe); no effusions, nodules, fibrosis,
  emphysema, atelectasis or mixed findings.
* **Lung window only**: the stored pixels are already windowed; soft tissue and bone
  saturate, and the Hounsfield values cannot be recovered.
* **One synthetic volume per patient**: all slices of a patient come from one smooth
  volume, closer together than in most clinical series.

A model that succeeds on CT phantoms has shown that a pipeline runs, nothing about
real patients. Not for clinical use.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ..errors import DataError
from ..system import cpu_name_and_cores, progress_bar, time_call
from .phantoms import (
    IMAGE_FOLDER,
    MASK_FOLDER,
    MASK_THRESHOLD,
    METADATA_COLUMNS,
    METADATA_FILENAME,
    PHANTOM_FINDINGS,
    assign_classes,
    prepare_output_folder,
)

__all__ = [
    "CT_METADATA_COLUMNS",
    "LUNG_WINDOW",
    "SLICE_SPACING_MM",
    "FIELD_OF_VIEW_MM",
    "generate_ct_phantoms",
    "measure_ct_phantoms",
]

CT_METADATA_COLUMNS = METADATA_COLUMNS + ["slice"]
LUNG_WINDOW = (-600.0, 1500.0)  # level and width in Hounsfield units
SLICE_SPACING_MM = 1.5  # between the centres of adjacent slices
FIELD_OF_VIEW_MM = 360.0  # the width of every image

_GENERATOR_NAME = "covid_tutorial.ct_phantoms"  # the stamp's name since the first sets: kept so they are recognised
_CT_PNG = re.compile(r"^P\d{4,}_z\d+\.png$")
_LUNG_HEIGHT = 0.7  # apex to base, in image widths (about 250 mm)
_DEPTH = 0.8  # the chest volume the random fields cover, in image widths along z
# Independent random streams per patient, as in the X-ray phantoms.
_ANATOMY, _LESION, _NOISE, _DEMOGRAPHY, _CLASSES = range(5)
_AIR, _FAT, _SOFT, _BLOOD = -1000.0, -100.0, 40.0, 40.0


@dataclasses.dataclass(frozen=True)
class _Lung:
    """One lung's ellipse in the axial plane, in image widths (y points to the back)."""

    side: int  # -1: image left, the patient's right; +1: image right
    x: float
    y: float
    rx: float
    ry: float
    dome_t: float  # where the diaphragm dome starts to rise into this lung (0 apex, 1 base)


@dataclasses.dataclass(frozen=True)
class _Anatomy:
    """One patient's chest; x, y, z in image widths, t = z / lung height."""

    body: tuple  # x, y, rx, ry
    fat: float  # subcutaneous fat thickness
    lungs: tuple  # two _Lung
    heart: tuple  # x, y, rx, ry, angle, t_top, t_bottom
    spine: tuple  # x, y, radius
    aorta: tuple  # x, y, radius
    rib_phase: float
    disc_phase: float
    lung_hu: float
    slab_t: float  # the centre of the slab of slices
    vessels: tuple  # two lattices of noise whose common zero set draws the vessels
    airways: tuple  # the same for small airways
    texture: np.ndarray  # lattice of parenchymal texture


@dataclasses.dataclass(frozen=True)
class _Blob:
    """One ground-glass opacity: a Gaussian flattened against the pleura."""

    side: int
    angle: float  # direction from the lung's centre: 0 lateral, pi/2 posterior
    radius: float  # distance of the centre from the lung's centre (1 = pleura)
    z: float
    thickness: float  # sigma towards the lung's centre, in lung radii
    breadth: float  # sigma along the pleura
    height: float  # sigma along z, in image widths
    amplitude: float
    crazy_paving: bool

    def weight(self, u, v, z):
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        du, dv = u - self.radius * cos, v - self.radius * sin
        inward = (du * cos + dv * sin) / self.thickness
        along = (dv * cos - du * sin) / self.breadth
        r2 = inward**2 + along**2 + ((z - self.z) / self.height) ** 2
        return self.amplitude * np.exp(-0.5 * r2)


@dataclasses.dataclass(frozen=True)
class _Lesions:
    kind: str
    blobs: tuple = ()  # _Blob per ground-glass opacity
    side: int = 0  # the lung of a consolidation
    fissure: tuple = ()  # v0, slope per unit z, +1 behind / -1 in front of the fissure
    extent: tuple = ()  # u, v, z, ru, rv, rz of the consolidated region
    bronchi: tuple = ()  # two lattices whose common zero set draws air bronchograms
    texture: np.ndarray | None = None
    reticulation: np.ndarray | None = None


def _ramp(distance, width: float):
    """0 outside, 1 inside, a linear edge ``width`` wide around distance 0."""
    return np.clip(0.5 + distance / width, 0.0, 1.0)


def _lattice(rng: np.random.Generator, cell: float) -> np.ndarray:
    """White noise on a grid with ``cell`` spacing over the whole chest volume (z, y, x)."""
    across = math.ceil(1 / cell)
    return rng.standard_normal((math.ceil(_DEPTH / cell) + 3, across, across)).astype(
        np.float32
    )


def _sample(lattice: np.ndarray, z: np.ndarray, size: int) -> np.ndarray:
    """The smooth field of ``lattice`` at the slices ``z`` (slices, size, size).

    Catmull-Rom interpolation along z, bicubic across, so that the field depends on the
    position only: another slice count or image size samples the same volume.
    """
    cell = _DEPTH / (lattice.shape[0] - 3)
    f = z / cell
    i = np.floor(f).astype(int)
    s = (f - i)[:, None]
    weights = np.hstack(
        [
            (-(s**3) + 2 * s**2 - s) / 2,
            (3 * s**3 - 5 * s**2 + 2) / 2,
            (-3 * s**3 + 4 * s**2 + s) / 2,
            (s**3 - s**2) / 2,
        ]
    )
    index = np.clip(i[:, None] + np.arange(-1, 3), 0, lattice.shape[0] - 1)
    planes = np.einsum("sk,skyx->yxs", weights, lattice[index]).astype(np.float32)
    out = np.empty((size, size, len(z)), np.float32)
    for start in range(0, len(z), 256):  # OpenCV takes at most 512 channels
        chunk = cv2.resize(
            np.ascontiguousarray(planes[..., start : start + 256]),
            (size, size),
            interpolation=cv2.INTER_CUBIC,
        )
        out[..., start : start + 256] = chunk.reshape(size, size, -1)
    return np.moveaxis(out, -1, 0)


def _sample_anatomy(rng: np.random.Generator, slab: float) -> _Anatomy:
    bx, by = 0.5 + rng.uniform(-0.01, 0.01), rng.uniform(0.5, 0.54)
    brx, bry = rng.uniform(0.40, 0.46), rng.uniform(0.27, 0.32)
    wall = rng.uniform(0.065, 0.08)  # skin to pleura
    lung_rx = rng.uniform(0.3, 0.34) * brx
    lung_ry = (bry - wall) * rng.uniform(0.78, 0.86)
    right_dome = rng.uniform(0.85, 0.9)
    lungs = tuple(
        _Lung(
            side=side,
            x=bx + side * (brx - wall - lung_rx),
            y=by + rng.uniform(-0.01, 0.01),
            rx=lung_rx,
            ry=lung_ry,
            dome_t=right_dome + (rng.uniform(0.03, 0.06) if side > 0 else 0.0),
        )
        for side in (-1, 1)
    )
    spine_r = rng.uniform(0.04, 0.05)
    spine_y = by + bry - wall - rng.uniform(0.1, 0.12)
    # Slices sit in the middle and lower chest, clear of the domes where possible.
    half = slab / _LUNG_HEIGHT / 2
    low, high = 0.48 + half, 0.72 - half
    slab_t = rng.uniform(low, high) if high > low else 0.6
    return _Anatomy(
        body=(bx, by, brx, bry),
        fat=rng.uniform(0.015, 0.035),
        lungs=lungs,
        heart=(
            bx + rng.uniform(0.03, 0.06),
            by - rng.uniform(0.06, 0.09),
            rng.uniform(0.12, 0.145),
            rng.uniform(0.085, 0.1),
            rng.uniform(-0.55, -0.3),
            rng.uniform(0.3, 0.4),
            rng.uniform(0.95, 1.05),
        ),
        spine=(bx, spine_y, spine_r),
        aorta=(bx + spine_r + 0.01, spine_y - spine_r - 0.015, rng.uniform(0.02, 0.026)),
        rib_phase=rng.uniform(0, 1),
        disc_phase=rng.uniform(0, 1),
        lung_hu=rng.uniform(-880, -840),
        slab_t=slab_t,
        vessels=(_lattice(rng, 0.05), _lattice(rng, 0.05)),
        airways=(_lattice(rng, 0.09), _lattice(rng, 0.09)),
        texture=_lattice(rng, 0.03),
    )


def _sample_lesions(rng, kind: str, side: int, slab_z: tuple) -> _Lesions:
    if kind == "COVID-19":
        return _sample_ground_glass(rng, slab_z)
    if kind == "Pneumonia":
        return _sample_consolidation(rng, side, slab_z)
    return _Lesions(kind="Normal")


def _sample_ground_glass(rng, slab_z: tuple) -> _Lesions:
    """Blobs against the pleura, towards the back, in both lungs, all along the slab.

    Positions are in each lung's own coordinates: u across (0 centre, 1 lateral
    pleura, negative towards the mediastinum), v front to back (1 posterior pleura).
    """
    z0, z1 = slab_z
    crazy_paving = rng.uniform(0.5, 0.8) if rng.random() < 0.5 else 0.0
    blobs = []
    for side in (-1, 1):
        count = max(2, math.ceil((z1 - z0) / 0.05)) + int(rng.integers(0, 2))
        step = (z1 - z0) / count
        for index in range(count):
            blobs.append(
                _Blob(
                    side=side,
                    angle=rng.uniform(0.1, 1.5),  # lateral (0) round to posterior (pi/2)
                    radius=rng.uniform(0.92, 1.0),
                    z=z0 + (index + rng.uniform(0.2, 0.8)) * step,
                    thickness=rng.uniform(0.13, 0.2),
                    breadth=rng.uniform(0.25, 0.4),
                    height=rng.uniform(0.03, 0.06),
                    amplitude=rng.uniform(0.85, 1.0),
                    crazy_paving=bool(rng.random() < crazy_paving),
                )
            )
    return _Lesions(
        kind="COVID-19",
        blobs=tuple(blobs),
        texture=_lattice(rng, 0.04),
        reticulation=_lattice(rng, 0.018) if crazy_paving else None,
    )


def _sample_consolidation(rng, side: int, slab_z: tuple) -> _Lesions:
    """One lobe of one lung, bounded by its fissure, with air bronchograms."""
    z0, z1 = slab_z
    zc = (z0 + z1) / 2
    behind = 1 if rng.random() < 0.7 else -1  # lower lobe (behind) or upper/middle lobe
    v0 = rng.uniform(-0.25, 0.1) if behind > 0 else rng.uniform(0.0, 0.3)
    # The oblique fissure runs forward as it goes down: v falls with z.
    fissure = (v0, -rng.uniform(2.0, 3.5), behind, zc)
    rz = max(rng.uniform(0.06, 0.1), 0.6 * (z1 - z0) + 0.03)
    extent = (
        rng.uniform(0.0, 0.3),
        behind * rng.uniform(0.3, 0.5),
        zc + rng.uniform(-0.2, 0.2) * (z1 - z0),
        rng.uniform(0.9, 1.2),
        rng.uniform(0.8, 1.0),
        rz,
    )
    return _Lesions(
        kind="Pneumonia",
        side=side,
        fissure=fissure,
        extent=extent,
        bronchi=(_lattice(rng, 0.06), _lattice(rng, 0.06)),
        texture=_lattice(rng, 0.04),
    )


def _ellipse(x, y, cx, cy, rx, ry, angle=0.0):
    cos, sin = math.cos(angle), math.sin(angle)
    dx, dy = x - cx, y - cy
    return np.sqrt(((cos * dx + sin * dy) / rx) ** 2 + ((-sin * dx + cos * dy) / ry) ** 2)


def _render_volume(anatomy: _Anatomy, lesions: _Lesions, z, size, noise_rng):
    """Hounsfield-like values and lesion masks of the slices at ``z`` (slices, size, size)."""
    coordinates = (np.arange(size, dtype=np.float32) + 0.5) / size
    x = coordinates[None, None, :]
    y = coordinates[None, :, None]
    zz = z.astype(np.float32)[:, None, None]
    hu, excluded = _render_body(anatomy, x, y, zz, size)
    hu, lesion_mask = _render_lungs(hu, excluded, anatomy, lesions, x, y, z, size)
    # A little white noise and a mild reconstruction blur.
    hu += noise_rng.normal(0, 12, hu.shape).astype(np.float32)
    hu = cv2.GaussianBlur(
        np.ascontiguousarray(np.moveaxis(hu, 0, -1)), (0, 0), max(0.5, 0.002 * size)
    ).reshape(size, size, -1)
    hu = np.moveaxis(hu, -1, 0)
    return hu, lesion_mask


def _render_body(anatomy: _Anatomy, x, y, zz, size):
    """Everything but the lungs, and where the lungs must not reach (heart, spine, aorta)."""
    px = 1.0 / size
    t = zz / _LUNG_HEIGHT

    # Body: fat under the skin, then muscle and mediastinum.
    bx, by, brx, bry = anatomy.body
    body = _ellipse(x, y, bx, by, brx, bry)
    hu = np.full((zz.shape[0], size, size), _AIR, np.float32)
    hu += _ramp((1 - body) * brx, px) * (_FAT - hu)
    inner = _ellipse(x, y, bx, by, brx - anatomy.fat, bry - anatomy.fat)
    hu += _ramp((1 - inner) * brx, px) * (_SOFT - hu)

    # Ribs: short arcs just inside the muscle wall, sloping down towards the front.
    angle = np.arctan2(y - by, x - bx)  # +pi/2 points to the back
    slope = 0.16 * (1 - np.sin(angle))  # anterior ribs lie lower
    rib_spacing = 0.07
    phase = ((zz - slope) / rib_spacing + anatomy.rib_phase) % 1.0
    rib_band = _ramp(0.14 - np.abs(phase - 0.5), 0.06)
    rib_ring = _ramp(0.02 - np.abs(inner - 0.93) * brx, px)
    hu += rib_band * rib_ring * (600 - hu)
    sternum = _ramp(0.012 - np.abs(x - bx), px) * _ramp(
        0.012 - np.abs(y - (by - bry + anatomy.fat + 0.02)), px
    )
    hu += sternum * (350 - hu)

    # Spine: vertebral bodies and discs along z, the canal and the spinous process.
    sx, sy, sr = anatomy.spine
    vertebra = _ellipse(x, y, sx, sy, sr, 0.9 * sr)
    disc = 0.5 + 0.5 * np.cos(2 * np.pi * (zz / 0.075 + anatomy.disc_phase))
    bone = 180 + 60 * disc
    hu += _ramp(1 - vertebra, 0.15) * (np.where(vertebra > 0.8, 600.0, bone) - hu)
    canal = _ellipse(x, y, sx, sy + 1.6 * sr, 0.45 * sr, 0.4 * sr)
    arch = _ellipse(x, y, sx, sy + 1.6 * sr, 0.8 * sr, 0.7 * sr)
    hu += _ramp(1 - arch, 0.2) * (500 - hu)
    hu += _ramp(1 - canal, 0.2) * (15 - hu)
    process = _ramp(0.2 * sr - np.abs(x - sx), px) * _ramp(
        0.5 * sr - np.abs(y - (sy + 2.6 * sr)), px
    )
    process *= _ramp((1 - inner) * brx, px)
    hu += process * (500 - hu)

    # Heart with its pericardial fat; the descending aorta beside the spine.
    hx, hy, hrx, hry, hangle, t_top, t_bottom = anatomy.heart
    middle, half = (t_top + t_bottom) / 2, (t_bottom - t_top) / 2
    scale = np.sqrt(np.clip(1 - ((t - middle) / half) ** 2, 0.02, 1))
    heart = _ellipse(x, y, hx, hy, hrx, hry, hangle) / scale
    hu += _ramp(1.12 - heart, 0.05) * (-80 - hu)
    hu += _ramp(1 - heart, 0.05) * (_BLOOD - hu)
    ax, ay, ar = anatomy.aorta
    hu += _ramp(1 - _ellipse(x, y, ax, ay, ar, ar), 0.1) * (_BLOOD - hu)

    excluded = np.maximum(
        _ramp(1.2 - heart, 0.1), _ramp(1.6 - _ellipse(x, y, sx, sy, sr, sr), 0.2)
    )
    excluded = np.maximum(excluded, _ramp(1.5 - _ellipse(x, y, ax, ay, ar, ar), 0.2))
    return hu, excluded


def _render_lungs(hu, excluded, anatomy: _Anatomy, lesions: _Lesions, x, y, z, size):
    """The lungs drawn into ``hu``: parenchyma, lesions, vessels, airways; and the mask.

    Each lung has its own coordinates u (1 = lateral pleura) and v (1 = posterior).
    """
    px = 1.0 / size
    zz = z.astype(np.float32)[:, None, None]
    t = zz / _LUNG_HEIGHT
    bx, by, brx, bry = anatomy.body
    texture = _sample(anatomy.texture, z, size)
    vessel_a, vessel_b = (_sample(field, z, size) for field in anatomy.vessels)
    airway_a, airway_b = (_sample(field, z, size) for field in anatomy.airways)
    taper = np.sqrt(np.clip(t / 0.3, 0.05, 1))
    lungs = np.zeros_like(hu)
    lesion = np.zeros_like(hu)
    consolidation = np.zeros_like(hu)
    bronchogram = np.zeros_like(hu)
    lesion_hu = np.full_like(hu, -300.0)
    for lung in anatomy.lungs:
        u = lung.side * (x - lung.x) / (lung.rx * taper)
        v = (y - lung.y) / (lung.ry * taper)
        radius = np.sqrt(u**2 + v**2)
        field = _ramp(1 - radius, 2.5 * px / lung.rx)
        rise = np.sqrt(np.clip((t - lung.dome_t) / 0.15, 0, 1)) * 1.3
        dome = np.sqrt((u + 0.1) ** 2 + (v + 0.2) ** 2)
        field = field * _ramp(dome - rise, 0.05) * (1 - excluded)
        lungs = np.maximum(lungs, field)
        layer, dense, air = _lesion_layers(lesions, lung, u, v, zz, size)
        lesion = np.maximum(lesion, layer * field)
        consolidation = np.maximum(consolidation, dense * field)
        bronchogram = np.maximum(bronchogram, air * field)
    if lesions.reticulation is not None:
        lines = np.exp(-0.5 * (_sample(lesions.reticulation, z, size) / 0.15) ** 2)
        crazy = _crazy_paving_weight(lesions, anatomy, x, y, zz)
        lesion_hu += 400 * lines * crazy

    # Parenchyma: denser towards the back (gravity), a fine texture, then lesions.
    depth = np.clip((y - by + bry) / (2 * bry), 0, 1)
    lung_hu = anatomy.lung_hu + 50 * depth + 25 * np.tanh(texture)
    lung_hu += lesion * (lesion_hu - lung_hu)
    lung_hu += consolidation * (30 - lung_hu)
    hu += lungs * (lung_hu - hu)

    # Vessels (thicker towards the hila) and small airways, hidden by consolidation.
    central = np.clip(1 - np.hypot(x - bx, (y - by) / 1.4) / 0.45, 0.1, 1)
    width = 0.03 + 0.1 * central
    vessels = np.exp(-0.5 * (vessel_a**2 + vessel_b**2) / width**2)
    hu += lungs * (1 - consolidation) * vessels * (_BLOOD - hu)
    tube = np.sqrt(airway_a**2 + airway_b**2) / (0.5 + central)
    wall = _ramp(0.08 - tube, 0.03) * central
    lumen = _ramp(0.045 - tube, 0.02) * central
    hu += lungs * (1 - consolidation) * wall * (-150 - hu)
    hu += lungs * lumen * (-990 - hu)
    hu += bronchogram * (-950 - hu)

    lesion_mask = np.maximum(lesion, consolidation) * np.clip(lungs, 0, 1)
    return hu, lesion_mask


def _lesion_layers(lesions: _Lesions, lung: _Lung, u, v, z, size):
    """Ground glass, consolidation and air bronchograms (each 0..1) in one lung."""
    zero = np.zeros(np.broadcast_shapes(u.shape, v.shape, z.shape), np.float32)
    if lesions.kind == "COVID-19":
        clear = np.ones_like(zero)
        for blob in lesions.blobs:
            if blob.side == lung.side:
                clear *= 1 - blob.weight(u, v, z)
        texture = _sample(lesions.texture, z[:, 0, 0], size)
        return (1 - clear) * (0.8 + 0.2 * np.tanh(texture)), zero, zero
    if lesions.kind != "Pneumonia" or lesions.side != lung.side:
        return zero, zero, zero
    v0, slope, behind, zc = lesions.fissure
    fissure = _ramp(behind * (v - (v0 + slope * (z - zc))), 0.06)
    eu, ev, ez, ru, rv, rz = lesions.extent
    reach = np.sqrt(((u - eu) / ru) ** 2 + ((v - ev) / rv) ** 2 + ((z - ez) / rz) ** 2)
    texture = _sample(lesions.texture, z[:, 0, 0], size)
    dense = fissure * np.clip((1.0 - reach + 0.12 * np.tanh(texture)) / 0.15, 0, 1)
    first, second = (_sample(field, z[:, 0, 0], size) for field in lesions.bronchi)
    air = _ramp(0.12 - np.sqrt(first**2 + second**2), 0.05)
    return dense, dense, air * dense


def _crazy_paving_weight(lesions: _Lesions, anatomy: _Anatomy, x, y, z):
    """Where the reticulation shows: inside the blobs that carry crazy paving."""
    weight = np.zeros(np.broadcast_shapes(x.shape, y.shape, z.shape), np.float32)
    lungs = {lung.side: lung for lung in anatomy.lungs}
    for blob in lesions.blobs:
        if blob.crazy_paving:
            lung = lungs[blob.side]
            u = blob.side * (x - lung.x) / lung.rx
            v = (y - lung.y) / lung.ry
            weight = np.maximum(weight, blob.weight(u, v, z))
    return weight


def _window(hu: np.ndarray) -> np.ndarray:
    level, width = LUNG_WINDOW
    scaled = (hu - (level - width / 2)) / width
    return np.clip(np.round(scaled * 255), 0, 255).astype(np.uint8)


def _patient_rows(patient_index: int, kind: str, seed: int, slices: int) -> list:
    demography = np.random.default_rng([seed, patient_index, _DEMOGRAPHY])
    sex = "M" if demography.random() < 0.55 else "F"
    age = int(np.clip(round(demography.normal(55, 16)), 18, 92))
    digits = max(2, len(str(slices - 1)))
    patient = f"P{patient_index + 1:04d}"
    rows = []
    for index in range(slices):
        name = f"{patient}_z{index:0{digits}d}.png"
        rows.append(
            {
                "patientid": patient,
                "offset": 0,
                "sex": sex,
                "age": age,
                "finding": PHANTOM_FINDINGS[kind],
                "view": "Axial",
                "modality": "CT",
                "folder": IMAGE_FOLDER,
                "filename": name,
                "mask_filename": f"{MASK_FOLDER}/{name}",
                "slice": index,
            }
        )
    return rows


def generate_ct_phantoms(
    out_dir,
    patients: int = 30,
    slices: int = 16,
    size: int = 128,
    seed: int = 0,
    *,
    progress: bool = True,
) -> pd.DataFrame:
    """Draw synthetic axial chest CT slices into ``out_dir`` and return their metadata.

    Each patient gets one procedural 3-D chest and ``slices`` adjacent axial slices
    through it, :data:`SLICE_SPACING_MM` apart, shown in the lung window
    (:data:`LUNG_WINDOW`). Writes ``images/P0001_z00.png`` (8-bit grayscale, ``size``
    x ``size``), ``masks/P0001_z00.png`` (lesion mask, 0 or 255, empty for Normal),
    ``metadata.csv`` (columns :data:`CT_METADATA_COLUMNS`: the X-ray phantoms' columns
    with ``modality`` "CT", ``view`` "Axial", ``offset`` 0, plus ``slice``, the index
    of the slice from head to feet) and the stamp file ``phantoms.json``.

    Classes are dealt to patients in equal thirds in an order shuffled by ``seed``.
    The same arguments always give byte-identical files. Refuses to write into a
    folder that holds anything but an earlier CT phantom set.
    """
    for name, value, least in (("patients", patients, 1), ("slices", slices, 1)):
        if int(value) != value or value < least:
            raise DataError(f"{name} must be a positive whole number, got {value!r}.")
    if int(size) != size or size < 32:
        raise DataError(f"size must be a whole number of pixels >= 32, got {size!r}.")
    patients, slices, size, seed = int(patients), int(slices), int(size), int(seed)

    out_dir = Path(out_dir)
    stamp = dict(
        generator=_GENERATOR_NAME,
        patients=patients,
        slices=slices,
        size=size,
        seed=seed,
        slice_spacing_mm=SLICE_SPACING_MM,
        lung_window=list(LUNG_WINDOW),
    )
    prepare_output_folder(out_dir, stamp, _CT_PNG, "P*_z*.png", "generate_ct_phantoms")

    spacing = SLICE_SPACING_MM / FIELD_OF_VIEW_MM  # in image widths
    slab = spacing * (slices - 1)
    classes, sides = assign_classes(patients, np.random.default_rng([seed, _CLASSES]))
    rows = []
    for patient_index in progress_bar(range(patients), desc="CT phantoms", unit="patient", enabled=progress):
        kind = classes[patient_index]
        anatomy = _sample_anatomy(
            np.random.default_rng([seed, patient_index, _ANATOMY]), slab
        )
        z = anatomy.slab_t * _LUNG_HEIGHT + spacing * (np.arange(slices) - (slices - 1) / 2)
        lesions = _sample_lesions(
            np.random.default_rng([seed, patient_index, _LESION]),
            kind,
            sides[patient_index],
            (float(z[0]), float(z[-1])),
        )
        noise_rng = np.random.default_rng([seed, patient_index, _NOISE])
        hu, lesion = _render_volume(anatomy, lesions, z, size, noise_rng)
        images = _window(hu)
        masks = np.where(lesion >= MASK_THRESHOLD, 255, 0).astype(np.uint8)
        patient_rows = _patient_rows(patient_index, kind, seed, slices)
        for row, image, mask in zip(patient_rows, images, masks):
            cv2.imwrite(str(out_dir / IMAGE_FOLDER / row["filename"]), image)
            cv2.imwrite(str(out_dir / row["mask_filename"]), mask)
        rows += patient_rows

    metadata = pd.DataFrame(rows)[CT_METADATA_COLUMNS]
    metadata = metadata.sort_values(["patientid", "slice"], ignore_index=True)
    metadata.to_csv(out_dir / METADATA_FILENAME, index=False, lineterminator="\n")
    return metadata


def measure_ct_phantoms(out_dir) -> pd.DataFrame:
    """Figures of a CT phantom set, measured on its files: one row per figure.

    Mean absolute difference in gray levels (0..255) between adjacent slices of one
    patient and between slices at the same position of two different patients (the
    next patient in the table); lesion area per class; for COVID-19, the share of
    slices with lesion pixels in both halves of the image and in the back half.
    """
    out_dir = Path(out_dir)
    table = pd.read_csv(out_dir / METADATA_FILENAME)
    images = {
        name: cv2.imread(str(out_dir / IMAGE_FOLDER / name), cv2.IMREAD_GRAYSCALE)
        for name in table["filename"]
    }
    masks = {
        name: cv2.imread(str(out_dir / mask), cv2.IMREAD_GRAYSCALE) > 0
        for name, mask in zip(table["filename"], table["mask_filename"])
    }
    stacks = [
        np.stack([images[name] for name in rows["filename"]]).astype(np.int16)
        for _, rows in table.groupby("patientid", sort=True)
    ]
    adjacent = np.mean([np.abs(np.diff(stack, axis=0)).mean() for stack in stacks])
    between = np.mean(
        [np.abs(a - b).mean() for a, b in zip(stacks, stacks[1:] + stacks[:1])]
    )
    rows = [
        ("patients", table["patientid"].nunique()),
        ("slices per patient", len(table) // table["patientid"].nunique()),
        ("image size, px", next(iter(images.values())).shape[0]),
        ("adjacent slices, one patient: mean |difference|", adjacent),
        ("same slice, two patients: mean |difference|", between),
        ("ratio adjacent / two patients", adjacent / between),
    ]
    for finding, group in table.groupby("finding"):
        area = np.mean([masks[name].mean() for name in group["filename"]])
        rows.append((f"lesion area, % of the image: {finding}", 100 * area))
    covid = table[table["finding"] == PHANTOM_FINDINGS["COVID-19"]]["filename"]
    if len(covid):
        half = next(iter(masks.values())).shape[1] // 2
        both = [masks[n][:, :half].any() and masks[n][:, half:].any() for n in covid]
        back = [masks[n][half:].sum() / max(1, masks[n].sum()) for n in covid]
        rows.append(("COVID-19 slices with lesions in both lungs, %", 100 * np.mean(both)))
        rows.append(("COVID-19 lesion pixels in the back half, %", 100 * np.mean(back)))
    return pd.DataFrame(rows, columns=["figure", "value"]).set_index("figure")


if __name__ == "__main__":  # python -m covid_tutorial.data.ct_phantoms: the figures of data/README.md
    patients, slices, size = (int(a) for a in (sys.argv[1:] or ["30", "16", "128"]))
    with tempfile.TemporaryDirectory() as folder:
        seconds = time_call(
            lambda: generate_ct_phantoms(
                Path(folder) / "ct", patients, slices, size, progress=False
            )
        )
        figures = measure_ct_phantoms(Path(folder) / "ct")
    cpu, cores = cpu_name_and_cores()
    print(f"generate_ct_phantoms({patients} patients, {slices} slices, {size} px): "
          f"{seconds:.1f} s on {cpu}, {cores} cores")
    print(figures.round(2).to_string())
