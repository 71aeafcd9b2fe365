"""Images: pixels read from any file as every course model expects them.

:func:`read_image` decodes a file (PNG, JPEG, BMP, TIFF or DICOM) to 8-bit grayscale
whatever its depth or channels, :func:`pad_and_resize` pads it to a square and resizes
it, :func:`load_images` does both for every row of a dataset table (in a thread pool,
with a cache of the results; files that cannot be read are skipped and counted), and
:func:`to_model_input` turns any image array into the float32 RGB batch in 0..255 that
every course model takes (the scaling is inside the model).

Three things make :func:`load_images` fast on large radiographs:

* a JPEG is decoded at 1/2, 1/4 or 1/8 of its resolution (libjpeg scales the DCT, which
  costs a fraction of a full decode) as long as its longer side stays at least the
  target size; on 2048-px phantoms the padded and resized pixels differ from a full decode
  by 0.06 to 0.27 grey levels on average and at most 7 (``covid-tutorial bench load``
  measures it on any data). PNG has no reduced decode;
* files are decoded in a thread pool: OpenCV releases the GIL while it decodes;
* the padded and resized uint8 images are cached in ``cache_dir("images")``, never in
  the data folder, so a second load of the same files at the same size starts at once.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pydicom
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from ..errors import DataError, DataWarning
from ..system import atomic_path, cache_dir, cpu_name_and_cores, progress_bar

__all__ = ["IMAGE_EXTENSIONS", "read_image", "pad_and_resize", "to_model_input", "load_images"]

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm"}

# Bump when what a cache entry holds changes (decoding, padding, resizing): old entries are then
# ignored. Another OpenCV (another libjpeg, another resize) makes other entries too.
_CACHE_FORMAT = f"images-v1-opencv-{cv2.__version__}"
# A cache entry is found by the file's path, size and modification time, then checked against
# a digest of the file's first and last bytes (see _fingerprint).
_FINGERPRINT_BYTES = 16 * 1024
_JPEG_REDUCED = ((8, cv2.IMREAD_REDUCED_GRAYSCALE_8), (4, cv2.IMREAD_REDUCED_GRAYSCALE_4), (2, cv2.IMREAD_REDUCED_GRAYSCALE_2))
_JPEG_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def read_image(path: str | Path, *, min_size: int | None = None) -> np.ndarray:
    """Read any image as 8-bit grayscale: 16-bit, RGB, RGBA, CMYK and DICOM are converted.

    ``min_size``: a JPEG may be decoded at 1/2, 1/4 or 1/8 of its resolution (much
    faster) as long as its longer side stays at least ``min_size`` px; the pixels then
    differ slightly from a full decode. Other formats are always decoded in full.

    Raises :class:`DataError` naming the file when it cannot be decoded.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror}).") from None
    if path.suffix.lower() == ".dcm" or data[128:132] == b"DICM":
        return _read_dicom(data, path)
    flags = cv2.IMREAD_UNCHANGED
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        data = _without_iccp(data)
    elif data[:3] == b"\xff\xd8\xff" and min_size:
        flags = _reduced_jpeg_flags(data, min_size)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags) if data else None
    if image is None:
        raise DataError(
            f"{path}: not a readable image (corrupt, truncated or not an image). "
            "Re-export it as PNG or JPEG, or remove it."
        )
    if image.ndim == 3:
        code = {3: cv2.COLOR_BGR2GRAY, 4: cv2.COLOR_BGRA2GRAY}.get(image.shape[2])
        image = cv2.cvtColor(image, code) if code is not None else image[..., 0]
    if image.dtype != np.uint8:  # 16-bit or float: stretch the used range to 0..255
        image = _stretch_to_uint8(image)
    return image


def _stretch_to_uint8(image: np.ndarray, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Map ``low..high`` (the image's own range by default) linearly to 0..255."""
    image = image.astype(np.float32)
    low = float(image.min()) if low is None else low
    high = float(image.max()) if high is None else high
    image = (image - low) / (high - low) * 255.0 if high > low else image * 0.0
    return np.clip(image, 0, 255).round().astype(np.uint8)


def _without_iccp(data: bytes) -> bytes:
    """The PNG without its iCCP chunk (the embedded colour profile).

    libpng checks the profile as it decodes and prints its complaints ("libpng warning:
    iCCP: known incorrect sRGB profile") straight to the process's stderr, once per
    image, with no switch in OpenCV to silence them. A grayscale radiograph needs no
    colour profile and OpenCV does not apply it, so the pixels are the same without it.
    iCCP must come before the first IDAT chunk, so only the header chunks are scanned.
    """
    position = 8
    while position + 8 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        end = position + 12 + length  # length, type, data, CRC
        if kind == b"iCCP":
            return data[:position] + data[end:]
        if kind in (b"IDAT", b"IEND"):
            break
        position = end
    return data


def _jpeg_longer_side(data: bytes) -> int | None:
    """The longer side of a JPEG in px, read from its frame header (SOF), or None."""
    position = 2
    while position + 9 < len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            position += 2
            continue
        if marker in _JPEG_SOF_MARKERS:
            height = int.from_bytes(data[position + 5 : position + 7], "big")
            width = int.from_bytes(data[position + 7 : position + 9], "big")
            return max(height, width) or None
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header before
            return None
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return None


def _reduced_jpeg_flags(data: bytes, min_size: int) -> int:
    """The largest JPEG reduction (1/8, 1/4, 1/2) that keeps the longer side >= ``min_size``.

    The orientation in EXIF is ignored, as the full decode (IMREAD_UNCHANGED) ignores it.
    """
    side = _jpeg_longer_side(data)
    if side is not None:
        for factor, flag in _JPEG_REDUCED:
            if -(-side // factor) >= min_size:  # libjpeg rounds the reduced size up
                return flag | cv2.IMREAD_IGNORE_ORIENTATION
    return cv2.IMREAD_UNCHANGED


def _read_dicom(data: bytes, path: Path) -> np.ndarray:
    """A DICOM's image as a radiologist first sees it, in 8 bits.

    The modality LUT (rescale slope and intercept) and then the VOI LUT or window the
    file names are applied (pydicom's ``apply_modality_lut`` and ``apply_voi_lut``), and
    the window's output range is mapped to 0..255; without a window, the used range is
    stretched to 0..255 as for a 16-bit PNG. MONOCHROME1 (bright = little signal) is
    inverted, so that bone is bright in every image the course reads.
    """
    try:
        dataset = pydicom.dcmread(io.BytesIO(data), force=True)
        return _dicom_to_uint8(dataset, data, path)
    except DataError:
        raise
    except Exception as err:  # pydicom raises many kinds on damaged files and invalid values
        raise DataError(f"{path}: not a readable DICOM file ({err}). Re-export it, or remove it.") from None


def _dicom_to_uint8(dataset, data: bytes, path: Path) -> np.ndarray:
    """The steps of :func:`_read_dicom` once the file is parsed."""
    if not any(name in dataset for name in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        if data[128:132] != b"DICM" and "SOPClassUID" not in dataset:  # forced reading found no DICOM
            raise DataError(f"{path}: not a readable DICOM file. Re-export it, or remove it.")
        raise DataError(
            f"{path}: a DICOM file without pixel data (only metadata, for example a report, a "
            "presentation state or a DICOMDIR). The course needs the image itself: export the "
            "image this file refers to, or remove the file."
        )
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise DataError(
            f"{path}: a DICOM file with {frames} frames (a volume or a cine loop); the course reads "
            "one image per file. Export the slices you need as separate files."
        )
    try:
        pixels = dataset.pixel_array
    except Exception as err:  # missing decoder plugins, damaged pixel data: pydicom raises many kinds
        raise DataError(
            f"{path}: the DICOM's pixels cannot be decoded ({err}). A compressed DICOM may need "
            "a decoder (pip install pylibjpeg pylibjpeg-libjpeg), or convert it to an uncompressed one."
        ) from None
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if pixels.ndim == 3:  # colour (pydicom hands out RGB)
        return cv2.cvtColor(_stretch_to_uint8(pixels) if pixels.dtype != np.uint8 else pixels, cv2.COLOR_RGB2GRAY)
    pixels = apply_modality_lut(pixels, dataset)
    output_range = _voi_output_range(dataset)
    if output_range is not None:
        pixels = apply_voi_lut(pixels, dataset)
    image = _stretch_to_uint8(pixels, *(output_range or (None, None)))
    return 255 - image if photometric == "MONOCHROME1" else image


def _voi_output_range(dataset) -> tuple[float, float] | None:
    """The range ``apply_voi_lut`` maps a dataset's VOI LUT or window onto, or None without one.

    Follows pydicom's choice: a VOI LUT Sequence before a window; a window's output range is
    the stored bit range, or the modality LUT's, through the rescale when there is one.
    """
    lut = (dataset.get("VOILUTSequence") or [None])[0]
    if lut is not None and lut.get("LUTDescriptor") is not None and lut.get("LUTData") is not None:
        return 0.0, float(2 ** int(lut.LUTDescriptor[2]) - 1)
    if dataset.get("WindowCenter") is None or dataset.get("WindowWidth") is None:
        return None
    bits = int(dataset.BitsStored)
    if dataset.get("ModalityLUTSequence"):
        low, high = 0, 2 ** int(dataset.ModalityLUTSequence[0].LUTDescriptor[2]) - 1
    elif int(dataset.get("PixelRepresentation", 0)) == 0:
        low, high = 0, 2**bits - 1
    else:
        low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    slope, intercept = dataset.get("RescaleSlope"), dataset.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        low, high = sorted((low * float(slope) + float(intercept), high * float(slope) + float(intercept)))
    return float(low), float(high)


def pad_and_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Pad to a square with black (keeping the aspect ratio, no anatomy cropped), then resize."""
    height, width = image.shape[:2]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    square = image if height == width else cv2.copyMakeBorder(  # a square needs no copy
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
    table: pd.DataFrame,
    image_size: int,
    *,
    progress: bool = True,
    workers: int | None = None,
    cache: bool = True,
    cache_folder: str | Path | None = None,
    reduced_decode: bool = True,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Decode and resize every image once into a uint8 array of shape (N, size, size).

    Unreadable images are skipped, counted and named in a warning; the returned table
    holds only the rows that were loaded, in the same order as the array.

    ``workers``: threads that decode at once (default: the CPU cores this process may
    use; 1 decodes one file after the other). ``cache``: keep each decoded, padded and
    resized image in ``cache_folder`` (default ``cache_dir("images")``, never inside a
    folder of the data), found again by the file's path, size and modification time and
    checked against a digest of its first and last 16 KiB, so that loading the same files
    at the same size again reads only those. ``reduced_decode``: decode a JPEG at 1/2, 1/4
    or 1/8 of its resolution when it stays at least ``image_size`` px (see the module's
    notes); ``False`` gives exactly the pixels of a full decode.
    """
    paths = [Path(p) for p in table["path"]]
    folder = None
    if cache:
        folder = Path(cache_folder) if cache_folder is not None else cache_dir("images")
        folder.mkdir(parents=True, exist_ok=True)
        _refuse_cache_inside_data(folder, paths)
    workers = cpu_name_and_cores()[1] if workers is None else max(1, int(workers))

    # Every image is written straight into its row of one array: no list of images and no
    # second copy by np.stack, so the peak memory is the array itself.
    images = np.empty((len(paths), image_size, image_size), np.uint8)

    def load(row):
        try:
            _load_into(images[row], paths[row], folder, reduced_decode)
            return None
        except DataError as err:
            return str(err)

    desc = f"Loading images at {image_size}px"
    if workers == 1 or len(paths) < 2:
        errors = [load(row) for row in progress_bar(range(len(paths)), desc=desc, enabled=progress)]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="load_images") as pool:
            errors = list(progress_bar(pool.map(load, range(len(paths))), total=len(paths), desc=desc, enabled=progress))
    failed = [error for error in errors if error is not None]
    if failed:
        warnings.warn(
            f"skipped {len(failed)} unreadable image(s): " + "; ".join(failed[:3]),
            DataWarning,
            stacklevel=2,
        )
    if len(failed) == len(paths):
        raise DataError("none of the images could be read; see the warnings above.")
    if not failed:
        return images, table.copy()
    loaded = np.flatnonzero([error is None for error in errors])
    return images[loaded], table.iloc[loaded]


def _refuse_cache_inside_data(folder: Path, paths: list[Path]) -> None:
    resolved = folder.resolve()
    for parent in {p.parent for p in paths}:
        if resolved.is_relative_to(parent.resolve()):
            raise DataError(
                f"{folder}: the image cache would lie inside the data folder {parent}; the course "
                "never writes into input data. Pass cache_folder= a folder elsewhere, or cache=False."
            )


def _load_into(slot: np.ndarray, path: Path, folder: Path | None, reduced: bool) -> None:
    """One file, padded and resized into ``slot``: from the cache when it holds it, else
    decoded (and then cached)."""
    size = slot.shape[0]
    if folder is None:
        slot[...] = pad_and_resize(read_image(path, min_size=size if reduced else None), size)
        return
    try:
        status = path.stat()
        fingerprint = _fingerprint(path, status.st_size)
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror}).") from None
    key = f"{_CACHE_FORMAT}|{os.path.abspath(path)}|{status.st_size}|{status.st_mtime_ns}|{size}|{reduced}"
    entry = folder / f"{hashlib.sha1(key.encode()).hexdigest()}.u8"
    try:
        with open(entry, "rb") as stored:
            if (
                os.fstat(stored.fileno()).st_size == len(fingerprint) + slot.size
                and stored.read(len(fingerprint)) == fingerprint
                and stored.readinto(memoryview(slot.reshape(-1))) == slot.size
            ):
                return
    except OSError:  # not cached yet
        pass
    image = pad_and_resize(read_image(path, min_size=size if reduced else None), size)
    slot[...] = image
    try:
        with atomic_path(entry) as tmp:
            tmp.write_bytes(fingerprint + np.ascontiguousarray(image).tobytes())
    except OSError:  # a full or read-only disk: the image is still loaded, only not cached
        pass


def _fingerprint(path: Path, length: int) -> bytes:
    """SHA-1 of the file's first and last 16 KiB: a file rewritten with the same size and
    the same modification time (within the file system's clock tick) is still seen as new.

    Hashing every byte would be the surest key, but on a cached load it costs more than
    everything else together (a 2048-px PNG is megabytes); the ends of a file change with
    its content in practice: a PNG ends with the checksum of all its pixels (zlib's Adler-32
    in the last IDAT chunk) and a JPEG's header holds its tables.
    """
    with open(path, "rb") as file:
        head = file.read(_FINGERPRINT_BYTES)
        if length > 2 * _FINGERPRINT_BYTES:
            file.seek(-_FINGERPRINT_BYTES, os.SEEK_END)
            tail = file.read()
        else:
            tail = file.read()
    return hashlib.sha1(head + tail).digest()
