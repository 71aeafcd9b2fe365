"""Reading pixels: the thread pool and the cache give the pixels of the plain path, JPEGs
decoded at reduced size stay close to a full decode, DICOM files are windowed and
inverted as a viewer shows them, and libpng's complaints stay off the terminal."""

import os
import struct
import zlib

import cv2
import numpy as np
import pandas as pd
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from covid_tutorial.data import images as images_module
from covid_tutorial.data.table import load_dataset
from covid_tutorial.errors import DataError, DataWarning
from covid_tutorial.data.images import IMAGE_EXTENSIONS, load_images, pad_and_resize, read_image

from folder_snapshot import snapshot


def _old_path(table, size):
    """What load_images did before the pool and the cache: one file after the other, full decode."""
    return np.stack([pad_and_resize(read_image(p), size) for p in table["path"]])


def _radiograph(side, seed=0):
    """A smooth, noisy grayscale picture, large enough for a reduced JPEG decode."""
    y, x = np.mgrid[0:side, 0:side] / side
    picture = 120 + 80 * np.sin(6 * x) * np.cos(4 * y) + np.random.default_rng(seed).normal(0, 6, (side, side))
    return np.clip(picture, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------ pool and cache


def test_pool_and_cache_give_the_pixels_and_order_of_the_plain_path(phantom_dir, tmp_path):
    table = load_dataset(phantom_dir).iloc[::-1]  # an order that is not the files' order
    expected = _old_path(table, 48)
    plain, plain_kept = load_images(table, 48, progress=False, workers=1, cache=False)
    pooled, kept = load_images(table, 48, progress=False, workers=3, cache_folder=tmp_path / "cache")
    cached, cached_kept = load_images(table, 48, progress=False, workers=3, cache_folder=tmp_path / "cache")
    for array in (plain, pooled, cached):
        np.testing.assert_array_equal(array, expected)
    assert list(kept.index) == list(cached_kept.index) == list(plain_kept.index) == list(table.index)
    assert len(list((tmp_path / "cache").glob("*.u8"))) == len(table)


def test_a_cache_hit_decodes_nothing_and_new_content_is_a_miss(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    paths = [data / f"{i}.bmp" for i in range(3)]  # BMP: the same size of file for any pixels
    for i, path in enumerate(paths):
        cv2.imwrite(str(path), np.full((40, 30), 40 * (i + 1), np.uint8))
    table = pd.DataFrame({"path": [str(p) for p in paths]})
    cache = tmp_path / "cache"
    first, _ = load_images(table, 16, progress=False, cache_folder=cache)

    def no_decoding(*args, **kwargs):
        raise AssertionError("a cached image was decoded again")

    with monkeypatch.context() as patch:
        patch.setattr(images_module, "read_image", no_decoding)
        again, _ = load_images(table, 16, progress=False, cache_folder=cache)
    np.testing.assert_array_equal(again, first)

    # New bytes of the same length, with the old modification time put back: the digest
    # of the file's ends still tells the content has changed.
    status = paths[1].stat()
    cv2.imwrite(str(paths[1]), np.full((40, 30), 7, np.uint8))
    os.utime(paths[1], ns=(status.st_atime_ns, status.st_mtime_ns))
    assert paths[1].stat().st_size == status.st_size
    changed, _ = load_images(table, 16, progress=False, cache_folder=cache)
    assert changed[1].max() == 7 and changed[1][8, 8] == 7
    np.testing.assert_array_equal(changed[[0, 2]], first[[0, 2]])
    # Another size is another entry
    assert load_images(table, 8, progress=False, cache_folder=cache)[0].shape == (3, 8, 8)


def test_the_cache_never_goes_into_the_data(phantom_dir, tmp_path):
    before = snapshot(phantom_dir)
    table = load_dataset(phantom_dir)
    load_images(table, 24, progress=False, cache_folder=tmp_path / "cache")
    load_images(table, 24, progress=False, cache_folder=tmp_path / "cache")
    assert snapshot(phantom_dir) == before
    with pytest.raises(DataError, match="never writes into input data"):
        load_images(table, 24, progress=False, cache_folder=phantom_dir / "images" / "cache")
    assert snapshot(phantom_dir) == before


def test_the_default_cache_is_the_course_cache_folder(phantom_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(images_module, "cache_dir", lambda kind: tmp_path / "course-cache" / kind)
    load_images(load_dataset(phantom_dir).head(4), 24, progress=False)
    assert len(list((tmp_path / "course-cache" / "images").glob("*.u8"))) == 4


def test_unreadable_files_are_skipped_and_counted_in_order(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    good = []
    for i in range(4):
        good.append(data / f"good{i}.png")
        cv2.imwrite(str(good[-1]), np.full((20, 20), 30 * (i + 1), np.uint8))
    (data / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (data / "empty.jpg").write_bytes(b"")
    paths = [good[0], data / "corrupt.png", good[1], data / "missing.png", good[2], data / "empty.jpg", good[3]]
    table = pd.DataFrame({"path": [str(p) for p in paths]}, index=[10, 11, 12, 13, 14, 15, 16])
    before = snapshot(data)
    for kwargs in ({"workers": 1, "cache": False}, {"workers": 3, "cache_folder": tmp_path / "cache"}):
        with pytest.warns(DataWarning, match=r"skipped 3 unreadable image\(s\).*corrupt\.png"):
            images, kept = load_images(table, 16, progress=False, **kwargs)
        assert list(kept.index) == [10, 12, 14, 16]
        assert [int(image[8, 8]) for image in images] == [30, 60, 90, 120]
    assert snapshot(data) == before
    with pytest.warns(DataWarning), pytest.raises(DataError, match="none of the images"):
        load_images(table.loc[[11, 13]], 16, progress=False, cache_folder=tmp_path / "cache")


# ------------------------------------------------------------------ JPEG at reduced size


def test_a_reduced_jpeg_decode_is_close_to_a_full_decode(tmp_path):
    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), _radiograph(800), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert read_image(path, min_size=96).shape == (100, 100), "1/8: 100 px still >= 96"
    assert read_image(path, min_size=101).shape == (200, 200), "1/4: 1/8 would be too small"
    assert read_image(path, min_size=800).shape == (800, 800), "no reduction"
    full = pad_and_resize(read_image(path), 96).astype(int)
    reduced = pad_and_resize(read_image(path, min_size=96), 96).astype(int)
    difference = np.abs(full - reduced)
    assert difference.mean() < 1.0 and difference.max() <= 6, (difference.mean(), difference.max())
    table = pd.DataFrame({"path": [str(path)]})
    exact, _ = load_images(table, 96, progress=False, cache=False, reduced_decode=False)
    np.testing.assert_array_equal(exact[0], full)


def test_a_colour_jpeg_with_an_exif_turn_reads_as_the_full_decode_reads_it(tmp_path):
    picture = np.zeros((300, 600, 3), np.uint8)
    picture[:, :150] = (0, 0, 255)  # a red band on the left, wide and short
    ok, jpeg = cv2.imencode(".jpg", picture)
    # EXIF orientation 6 ("turn 90 degrees"), which a full decode (IMREAD_UNCHANGED) ignores
    ifd = b"II*\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack("<I", 0)
    exif = b"Exif\x00\x00" + ifd
    path = tmp_path / "colour.jpg"
    path.write_bytes(jpeg.tobytes()[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + jpeg.tobytes()[2:])
    assert cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_4).shape == (150, 75), "the EXIF turn is read"
    full, reduced = read_image(path), read_image(path, min_size=100)
    assert full.shape == (300, 600) and reduced.shape == (75, 150), "landscape both ways: 1/4, 150 px still >= 100"
    assert abs(int(full[150, 50]) - int(reduced[37, 12])) <= 2 and abs(int(full[150, 400]) - int(reduced[37, 100])) <= 2


# ------------------------------------------------------------------ libpng's iCCP warnings


def _png_with_a_bad_colour_profile(path):
    ok, png = cv2.imencode(".png", np.full((40, 50), 90, np.uint8))
    png = png.tobytes()
    body = b"ICC Profile\x00\x00" + zlib.compress(b"\x00\x00\x0b\xb8 not a colour profile")
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    path.write_bytes(png[:33] + chunk + png[33:])  # right after IHDR (8 + 25 bytes)


def test_libpng_iccp_warnings_do_not_reach_the_terminal(tmp_path, capfd):
    path = tmp_path / "profile.png"
    _png_with_a_bad_colour_profile(path)
    cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    assert "libpng warning: iCCP" in capfd.readouterr().err, "the file does make libpng complain"
    image = read_image(path)
    load_images(pd.DataFrame({"path": [str(path)] * 3}), 16, progress=False, cache=False, workers=2)
    assert "libpng" not in capfd.readouterr().err
    assert image.shape == (40, 50) and (image == 90).all()


# ------------------------------------------------------------------ DICOM


def _write_dicom(path, pixels=None, *, photometric="MONOCHROME2", bits=12, signed=False, **elements):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image, for presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "DX", "P0001"
    if pixels is not None:
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits, bits - 1
        ds.PixelRepresentation = int(signed)
        ds.PixelData = pixels.astype(np.int16 if signed else np.uint16).tobytes()
    for name, value in elements.items():
        setattr(ds, name, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_is_an_image_extension():
    assert ".dcm" in IMAGE_EXTENSIONS


def test_monochrome1_is_inverted(tmp_path):
    ramp = np.tile(np.linspace(0, 4095, 64).astype(np.uint16), (32, 1))
    two = read_image(_write_dicom(tmp_path / "m2.dcm", ramp, photometric="MONOCHROME2"))
    one = read_image(_write_dicom(tmp_path / "m1.dcm", ramp, photometric="MONOCHROME1"))
    assert two.dtype == np.uint8 and two.shape == (32, 64)
    assert two[0, 0] == 0 and two[0, -1] == 255
    np.testing.assert_array_equal(one, 255 - two)


def test_a_12_bit_window_maps_onto_0_to_255(tmp_path):
    ramp = np.tile(np.arange(0, 4096, 16, dtype=np.uint16), (8, 1))  # 256 columns, 0..4080
    path = _write_dicom(tmp_path / "w.dcm", ramp, WindowCenter=2048, WindowWidth=1024)
    image = read_image(path)
    row, values = image[0], ramp[0]
    assert (row[values <= 1535] == 0).all() and (row[values >= 2560] == 255).all()
    inside = (values > 1600) & (values < 2500)
    expected = ((values[inside] - 2047.5) / 1023 + 0.5) * 255  # DICOM's linear window, in 8 bits
    assert np.abs(row[inside] - expected).max() <= 1
    assert (np.diff(row.astype(int)) >= 0).all()
    plain = read_image(_write_dicom(tmp_path / "plain.dcm", ramp))  # no window: the used range
    assert plain[0, 0] == 0 and plain[0, -1] == 255 and plain[0, 128] == 128


def test_a_ct_window_goes_through_the_rescale(tmp_path):
    hounsfield = np.array([[-1000, -160, 40, 240, 1000]])  # air, window's low end, centre, high end, bone
    stored = (hounsfield + 1024).astype(np.int16)
    path = _write_dicom(
        tmp_path / "ct.dcm", stored, bits=16, signed=True,
        RescaleSlope=1, RescaleIntercept=-1024, WindowCenter=40, WindowWidth=400,
    )
    image = read_image(path)[0]
    assert image[0] == 0 and image[-1] == 255 and abs(int(image[2]) - 128) <= 1
    assert image[1] <= 1 and image[3] >= 254


def test_a_dicom_without_pixel_data_is_one_clear_error_and_is_skipped(tmp_path):
    (tmp_path / "data").mkdir()
    empty = _write_dicom(tmp_path / "data" / "report.dcm")
    with pytest.raises(DataError, match=r"report\.dcm: a DICOM file without pixel data"):
        read_image(empty)
    not_dicom = tmp_path / "data" / "photo.dcm"
    not_dicom.write_bytes(b"just some bytes, not a DICOM file" * 10)
    with pytest.raises(DataError, match=r"photo\.dcm: not a readable DICOM file"):
        read_image(not_dicom)
    good = _write_dicom(tmp_path / "data" / "good.dcm", np.full((20, 20), 1000, np.uint16))
    table = pd.DataFrame({"path": [str(empty), str(good)]})
    with pytest.warns(DataWarning, match=r"skipped 1 unreadable image\(s\): .*report\.dcm"):
        images, kept = load_images(table, 16, progress=False, cache_folder=tmp_path / "cache")
    assert images.shape == (1, 16, 16) and list(kept.index) == [1]


# ------------------------------------------------------------------ the benchmark


def test_the_loading_benchmark_times_three_ways_and_leaves_no_cache(phantom_dir, tmp_path):
    from covid_tutorial.bench import benchmark_image_loading

    before = snapshot(phantom_dir)
    benchmark = benchmark_image_loading(load_dataset(phantom_dir).head(6), 32, workers=2, cache_folder=tmp_path / "c")
    result = benchmark.table
    assert len(result) == 3 and (result["images"] == 6).all() and (result["seconds"] > 0).all()
    assert (result["max_abs_difference"] == 0).all(), "PNG: the same pixels every way"
    assert np.isnan(result["ratio"][0]) and (result["ratio"][1:] > 0).all()
    assert result["ratio"][2] == pytest.approx(result["seconds"][1] / result["seconds"][2])
    assert "2 workers" in str(benchmark)
    assert list((tmp_path / "c").iterdir()) == [] and snapshot(phantom_dir) == before
