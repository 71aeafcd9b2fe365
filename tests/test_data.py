import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from folder_snapshot import snapshot

from covid_tutorial.data import load_dataset, make_dataset
from covid_tutorial.images import load_images, pad_and_resize, read_image
from covid_tutorial.errors import DataError, DataWarning
from covid_tutorial.labels import CLASS_NAMES, map_label
from covid_tutorial.splits import (
    check_patient_disjoint,
    patient_folds,
    split_by_patient,
)

# ------------------------------------------------------------------ labels


@pytest.mark.parametrize(
    "value, expected",
    [
        ("Pneumonia/Viral/COVID-19", "COVID-19"),
        ("COVID", "COVID-19"),
        ("covid19", "COVID-19"),
        ("No Finding", "Normal"),
        ("NORMAL", "Normal"),
        ("Viral Pneumonia", "Pneumonia"),
        ("Pneumonia/Bacterial/Streptococcus", "Pneumonia"),
        ("PNEUMONIA", "Pneumonia"),
    ],
)
def test_default_label_mapping(value, expected):
    assert map_label(value) == expected


@pytest.mark.parametrize("value", ["Lung_Opacity", "CT_NonCOVID", "Tuberculosis", "todo"])
def test_unknown_labels_are_not_guessed(value):
    with pytest.raises(KeyError):
        map_label(value)


def test_label_map_overrides_and_drops():
    assert map_label("Lung_Opacity", {"lung_opacity": None}) is None
    assert map_label("Viral Pneumonia", {"Viral Pneumonia": "COVID-19"}) == "COVID-19"
    with pytest.raises(DataError, match="not a course class"):
        map_label("x", {"x": "Flu"})


# ------------------------------------------------------------------ loading


def test_metadata_csv_gives_path_label_patient(phantom_dir):
    table = load_dataset(phantom_dir)
    assert list(table.columns[:3]) == ["path", "label", "patient_id"]
    assert set(table["label"]) == set(CLASS_NAMES)
    assert table["patient_id"].nunique() == 30
    assert table.groupby("patient_id").size().max() > 1, "phantoms have follow-up studies"
    assert table["path"].map(lambda p: p.endswith(".png")).all()
    assert table["mask_path"].map(lambda p: Path(p).is_file()).all(), "phantom masks resolve"


def test_folder_tree_warns_that_patient_split_is_impossible(phantom_tree):
    with pytest.warns(DataWarning, match="PATIENT-WISE SPLIT IS THEN IMPOSSIBLE"):
        table = load_dataset(phantom_tree)
    assert table["patient_id"].is_unique
    assert set(table["label"]) == set(CLASS_NAMES)


def test_publisher_split_tree_with_odd_class_names(tmp_path):
    image = np.full((40, 30), 128, np.uint8)
    for split in ("train", "test"):
        for name in ("NORMAL", "Viral Pneumonia", "COVID"):
            (tmp_path / split / name).mkdir(parents=True)
            cv2.imwrite(str(tmp_path / split / name / "a.png"), image)
    with pytest.warns(DataWarning):
        table = load_dataset(tmp_path)
    assert sorted(table["publisher_split"].unique()) == ["test", "train"]
    assert set(table["label"]) == set(CLASS_NAMES)


def test_unmapped_folder_names_are_listed_with_the_fix(phantom_tree, tmp_path):
    root = tmp_path / "tree"
    shutil.copytree(phantom_tree, root)
    (root / "Lung_Opacity").mkdir()
    cv2.imwrite(str(root / "Lung_Opacity" / "x.png"), np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match=r"Lung_Opacity.*label_map"):
        load_dataset(root)
    with pytest.warns(DataWarning, match="dropped 1 image"):
        table = load_dataset(root, unmapped="drop")
    assert "Lung_Opacity" not in set(table["source_label"])


def test_csv_with_imagename_column_filters_and_latin1(tmp_path, phantom_dir):
    meta = pd.read_csv(phantom_dir / "metadata.csv")
    csv = tmp_path / "meta.csv"
    renamed = meta.rename(columns={"filename": "imagename"})
    renamed.loc[0, "sex"] = "é"  # a non-ASCII byte in Latin-1
    renamed.to_csv(csv, index=False, encoding="latin-1")
    with pytest.warns(DataWarning, match="latin-1"):
        table = load_dataset(csv, images=phantom_dir / "images", views=["AP"])
    assert len(table) == (meta["view"] == "AP").sum() > 0
    assert set(table["view"]) == {"AP"}


def test_csv_missing_columns_names_file_and_columns(tmp_path):
    csv = tmp_path / "bad.csv"
    csv.write_text("patient,picture\n1,a.png\n")
    with pytest.raises(DataError, match=r"bad\.csv.*filename or imagename.*finding or label"):
        load_dataset(csv)


def test_broken_csv_gets_a_clear_error(tmp_path):
    csv = tmp_path / "broken.csv"
    csv.write_text('filename,finding\n"a.png,COVID-19\nb.png,Normal,extra,cols\n')
    with pytest.raises(DataError, match="broken.csv"):
        load_dataset(csv)


def test_rows_with_missing_files_are_skipped_and_counted(tmp_path, phantom_dir):
    meta = pd.read_csv(phantom_dir / "metadata.csv")
    meta.loc[:2, "filename"] = ["gone1.png", "gone2.png", "gone3.png"]
    csv = tmp_path / "meta.csv"
    meta.to_csv(csv, index=False)
    with pytest.warns(DataWarning, match="skipped 3 row"):
        table = load_dataset(csv, images=phantom_dir / "images")
    assert len(table) == len(meta) - 3


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_dataset(tmp_path / "nowhere")


# ------------------------------------------------------------------ odd images


def _write_odd_images(folder):
    folder.mkdir(parents=True)
    from PIL import Image

    gradient16 = (np.linspace(1000, 4000, 64 * 64).reshape(64, 64)).astype(np.uint16)
    cv2.imwrite(str(folder / "sixteen_bit.png"), gradient16)
    rgba = np.dstack([np.full((50, 50, 3), 200, np.uint8), np.full((50, 50), 255, np.uint8)])
    cv2.imwrite(str(folder / "rgba.png"), rgba)
    Image.new("CMYK", (60, 40), (0, 0, 0, 128)).save(folder / "cmyk.jpg")
    cv2.imwrite(str(folder / "huge.png"), np.full((4000, 3000), 90, np.uint8))
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (folder / "notes.txt").write_text("not an image")


def test_odd_images_are_converted(tmp_path):
    _write_odd_images(tmp_path / "x")
    sixteen = read_image(tmp_path / "x" / "sixteen_bit.png")
    assert sixteen.dtype == np.uint8 and sixteen.min() == 0 and sixteen.max() == 255
    assert read_image(tmp_path / "x" / "rgba.png").shape == (50, 50)
    cmyk = read_image(tmp_path / "x" / "cmyk.jpg")
    assert cmyk.shape == (40, 60) and 0 < cmyk.mean() < 255
    huge = pad_and_resize(read_image(tmp_path / "x" / "huge.png"), 64)
    assert huge.shape == (64, 64)
    assert huge[:, 0].max() == 0 and huge[32, 32] == 90, "padded with black, not stretched"
    with pytest.raises(DataError, match=r"corrupt\.png.*not a readable image"):
        read_image(tmp_path / "x" / "corrupt.png")


def test_bad_files_in_a_tree_are_skipped_counted_and_nothing_is_written(tmp_path):
    root = tmp_path / "data"
    _write_odd_images(root / "COVID-19")
    (root / "Normal").mkdir()
    cv2.imwrite(str(root / "Normal" / "n.png"), np.full((30, 30), 50, np.uint8))
    (root / "Pneumonia").mkdir()  # an empty class folder
    before = snapshot(root)
    with pytest.warns(DataWarning) as caught:
        table = load_dataset(root)
        images, kept = load_images(table, 32, progress=False)
    messages = " ".join(str(w.message) for w in caught)
    assert "skipped 1 file(s) that are not images" in messages
    assert "empty class folder" in messages and "Pneumonia" in messages
    assert "skipped 1 unreadable image" in messages and "corrupt.png" in messages
    assert len(table) == 6 and len(kept) == 5 and images.shape == (5, 32, 32)
    assert snapshot(root) == before


# ------------------------------------------------------------------ splits and pipeline


def test_split_by_patient_is_disjoint_and_stratified(phantom_dir):
    table = split_by_patient(load_dataset(phantom_dir), seed=3)
    assert set(table["split"]) == {"train", "val", "test"}
    assert (table.groupby("patient_id")["split"].nunique() == 1).all()
    for split in ("train", "val", "test"):
        assert set(table.loc[table["split"] == split, "label"]) == set(CLASS_NAMES)
    again = split_by_patient(load_dataset(phantom_dir), seed=3)
    assert table["split"].tolist() == again["split"].tolist(), "seeded"


def test_shared_patient_raises():
    table = pd.DataFrame({"patient_id": ["a", "a", "b"], "split": ["train", "test", "test"]})
    with pytest.raises(DataError, match="1 patient"):
        check_patient_disjoint(table)


def test_patient_folds(phantom_dir):
    table = patient_folds(load_dataset(phantom_dir), folds=3, seed=0)
    assert sorted(table["fold"].unique()) == [0, 1, 2]
    assert (table.groupby("patient_id")["fold"].nunique() == 1).all()
    with pytest.raises(DataError, match="fewer patients"):
        patient_folds(load_dataset(phantom_dir), folds=20)


def test_make_dataset_yields_rgb_batches(phantom_dir):
    table = load_dataset(phantom_dir).head(10)
    images, labels = next(iter(make_dataset(table, 48, batch_size=4)))
    assert images.shape == (4, 48, 48, 3) and labels.shape == (4, 3)
    assert images.dtype.name == "float32" and float(images.numpy().max()) <= 255
    np.testing.assert_array_equal(images[..., 0], images[..., 2])


def test_input_pipeline_benchmark_reports_all_candidates(phantom_dir):
    from covid_tutorial.bench import benchmark_input_pipeline

    result = benchmark_input_pipeline(load_dataset(phantom_dir).head(12), image_size=32, batch_size=4, epochs=2)
    assert len(result) == 3 and result["pipeline"].iloc[-1].startswith("course pipeline")
    assert (result[["epoch_1_images_per_s", "later_epochs_images_per_s"]] > 0).all().all()
    assert result["course_speedup_later_epochs"].iloc[-1] == 1.0
