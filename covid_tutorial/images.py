"""Images: pixels read from any file as every course model expects them.

:func:`read_image` decodes a file to 8-bit grayscale whatever its depth or channels,
:func:`pad_and_resize` pads it to a square and resizes it, :func:`load_images` does both
for every row of a dataset table (skipping, and counting, files that cannot be read),
and :func:`to_model_input` turns any image array into the float32 RGB batch in 0..255
that every course model takes (the scaling is inside the model).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from .errors import DataError, DataWarning

__all__ = ["IMAGE_EXTENSIONS", "read_image", "pad_and_resize", "to_model_input", "load_images"]

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def read_image(path: str | Path) -> np.ndarray:
    """Read any image as 8-bit grayscale: 16-bit, RGB, RGBA and CMYK are converted.

    Raises :class:`DataError` naming the file when it cannot be decoded.
    """
    path = Path(path)
    try:
        buffer = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror}).") from None
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
    if image is None:
        raise DataError(
            f"{path}: not a readable image (corrupt, truncated or not an image). "
            "Re-export it as PNG or JPEG, or remove it."
        )
    if image.ndim == 3:
        code = {3: cv2.COLOR_BGR2GRAY, 4: cv2.COLOR_BGRA2GRAY}.get(image.shape[2])
        image = cv2.cvtColor(image, code) if code is not None else image[..., 0]
    if image.dtype != np.uint8:  # 16-bit or float: stretch the used range to 0..255
        image = image.astype(np.float32)
        low, high = float(image.min()), float(image.max())
        image = (image - low) / (high - low) * 255.0 if high > low else image * 0.0
        image = image.round().astype(np.uint8)
    return image


def pad_and_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Pad to a square with black (keeping the aspect ratio, no anatomy cropped), then resize."""
    height, width = image.shape[:2]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    square = cv2.copyMakeBorder(
        image, top, side - height - top, left, side - width - left, cv2.BORDER_CONSTANT, value=0
    )
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interpolation)


def to_model_input(images, size: int | None = None) -> np.ndarray:
    """What every course model takes: float32 RGB (n, h, w, 3) in 0..255.

    Accepts one grayscale image (h, w), a batch (n, h, w) or (n, h, w, 1), or RGB
    (n, h, w, 3). With ``size``, the images must already be ``size`` x ``size`` px.
    """
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(f"images must be (n, h, w), (n, h, w, 1) or (n, h, w, 3) arrays, not {images.shape}.")
    if size is not None and images.shape[1:3] != (size, size):
        raise DataError(
            f"images are {images.shape[1]}x{images.shape[2]} px but the model takes {size}x{size}; "
            "resize them with covid_tutorial.data.pad_and_resize, or use Predictor.predict_files."
        )
    images = images.astype(np.float32)
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def load_images(
    table: pd.DataFrame, image_size: int, *, progress: bool = True
) -> tuple[np.ndarray, pd.DataFrame]:
    """Decode and resize every image once into a uint8 array of shape (N, size, size).

    Unreadable images are skipped, counted and named in a warning; the returned table
    holds only the rows that were loaded, in the same order as the array.
    """
    from tqdm import tqdm

    images, kept, failed = [], [], []
    paths = tqdm(table["path"], desc=f"Loading images at {image_size}px", disable=not progress)
    for index, path in zip(table.index, paths):
        try:
            images.append(pad_and_resize(read_image(path), image_size))
            kept.append(index)
        except DataError as err:
            failed.append(str(err))
    if failed:
        warnings.warn(
            f"skipped {len(failed)} unreadable image(s): " + "; ".join(failed[:3]),
            DataWarning,
            stacklevel=2,
        )
    if not images:
        raise DataError("none of the images could be read; see the warnings above.")
    return np.stack(images), table.loc[kept]
