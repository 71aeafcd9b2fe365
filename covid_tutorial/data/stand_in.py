"""Two phantom "hospitals" that stand in for two real collections when those are absent.

Notebook 09 trains on one real collection and tests on another. Where the real files are
missing (CI, a learner without network), :func:`write_stand_in_collections` draws two
phantom collections in the same folder layout (``<class>/<patient>/*``) that differ the
way real collections do: in acquisition (the second hospital's images went through CLAHE,
as in notebook 10) and in their files (a planted cue). Inside each, the classes differ in
file properties, as in the real collections, but not in the same way:

- ``hospital-a`` (like DarkCovidNet's collection): COVID-19 images are colour JPEG files
  of varied sizes, Normal and Pneumonia images grey PNG files of one size;
- ``hospital-b`` (like the Kaggle collection): every image is a colour JPEG file, and each
  class has a size range of its own.

So a classifier of file properties scores well inside each hospital and badly across them,
which is the lesson. Phantoms, not radiographs: a score on them says nothing about COVID-19.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError
from .phantoms import PHANTOM_FINDINGS, generate_phantoms

__all__ = ["STAND_IN_NAMES", "write_stand_in_collections"]

#: The stand-in collections, in the order of the real ones they replace.
STAND_IN_NAMES = ("hospital-a", "hospital-b")
_CLASS_OF_FINDING = {finding: label for label, finding in PHANTOM_FINDINGS.items()}
_MARK = "stand_in.txt"
#: hospital-b: the range of the longer side, in multiples of the phantom size, per class.
_SIZE_RANGE_B = {"COVID-19": (0.8, 1.6), "Normal": (1.7, 2.2), "Pneumonia": (1.1, 1.5)}


def _clahe(image: np.ndarray) -> np.ndarray:
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(image)


def _resized(image: np.ndarray, scale_x: float, scale_y: float) -> np.ndarray:
    height, width = image.shape[:2]
    return cv2.resize(image, (round(width * scale_x), round(height * scale_y)), interpolation=cv2.INTER_AREA)


def _store(image: np.ndarray, label: str, hospital: str, rng: np.random.Generator, stem: Path) -> Path:
    """Write one image the way ``hospital`` stores images of ``label``."""
    if hospital == "hospital-a":
        if label != "COVID-19":
            path = stem.with_suffix(".png")
            cv2.imwrite(str(path), image)
            return path
        image = _resized(image, *rng.uniform(0.7, 1.5, size=2))
    else:
        low, high = _SIZE_RANGE_B[label]
        image = _resized(image, *rng.uniform(low, high, size=2))
    path = stem.with_suffix(".jpeg")
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path


def write_stand_in_collections(root, *, patients: int, size: int, seed: int = 0, progress: bool = False) -> dict[str, Path]:
    """Draw the two stand-in collections into ``root/hospital-a`` and ``root/hospital-b``.

    Each holds ``patients`` phantom patients (other patients in each, drawn with ``seed``
    and ``seed + 1``) as ``<class>/<patient>/<study>.png|.jpeg``. The same arguments
    always give the same files; ``root`` may hold only an earlier stand-in. Returns
    ``{name: folder}`` in :data:`STAND_IN_NAMES` order.
    """
    root = Path(root)
    if root.exists() and any(root.iterdir()) and not (root / _MARK).is_file():
        raise DataError(f"{root} is not empty and holds no stand-in collections ({_MARK}): choose an empty folder.")
    shutil.rmtree(root, ignore_errors=True)
    folders = {}
    for offset, name in enumerate(STAND_IN_NAMES):
        drawn = root / f"{name}-phantoms"
        table = generate_phantoms(drawn, patients=patients, size=size, seed=seed + offset, progress=progress)
        rng = np.random.default_rng(seed + offset)
        folder = root / name
        for row in table.itertuples():
            label = _CLASS_OF_FINDING[row.finding]
            image = cv2.imread(str(drawn / "images" / row.filename), cv2.IMREAD_GRAYSCALE)
            if name == "hospital-b":
                image = _clahe(image)
            stem = folder / label / str(row.patientid) / Path(row.filename).stem
            stem.parent.mkdir(parents=True, exist_ok=True)
            _store(image, label, name, rng, stem)
        shutil.rmtree(drawn)
        folders[name] = folder
    (root / _MARK).write_text(
        f"Stand-in collections drawn by covid_tutorial.data.stand_in (patients={patients}, size={size}, seed={seed})\n"
    )
    return folders
