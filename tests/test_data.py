import dataclasses
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from folder_snapshot import snapshot

from covid_tutorial.data.table import GENERATED_ID_PREFIX, load_dataset
from covid_tutorial.feed import make_dataset
from covid_tutorial.data.images import load_images, pad_and_resize, read_image
from covid_tutorial.errors import DataError, DataWarning
from covid_tutorial.data.labels import CLASS_NAMES, map_label
from covid_tutorial.data.registry import REGISTRY, PatientIds
from covid_tutorial.data.splits import (
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

    result = benchmark_input_pipeline(load_dataset(phantom_dir).head(12), image_size=32, batch_size=4, epochs=2).table
    assert len(result) == 3 and result["pipeline"].iloc[-1].startswith("course pipeline")
    assert (result[["epoch_1_images_per_s", "later_epochs_images_per_s"]] > 0).all().all()
    assert result["course_speedup_later_epochs"].iloc[-1] == 1.0


# ------------------------------------------------------------------ every layout, one door


def _png(path, value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((8, 8), value, np.uint8))
    return path


def _ct_patients(root, classes=("Covid", "Healthy", "Others"), patients=2, slices=2):
    """The seed paper's CT layout: <class>/<patient>/*.png."""
    for c in classes:
        for p in range(patients):
            for s in range(slices):
                _png(root / c / f"Patient ({p + 1})" / f"{s}.png")


def test_folder_per_class_per_patient_is_detected(tmp_path):
    _ct_patients(tmp_path, classes=("COVID", "Normal"), patients=3)
    before = snapshot(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: every image has a patient
        table = load_dataset(tmp_path)
    assert table.attrs["layout"] == "folder-per-class-per-patient"
    assert table["patient_id"].nunique() == 6 and len(table) == 12
    assert "COVID/Patient (1)" in set(table["patient_id"])
    assert snapshot(tmp_path) == before


def test_seed_ct_layout_through_its_registry_entry(tmp_path):
    root = tmp_path / "download" / "New_Data_CoV2"
    _ct_patients(root)
    with pytest.raises(DataError, match="Others"):
        load_dataset(root)  # "Others" is no course name: the registry entry knows it
    table = load_dataset(tmp_path / "download", collection="covid-ct-multiclass")
    assert table.groupby("label")["patient_id"].nunique().to_dict() == {"COVID-19": 2, "Normal": 2, "Pneumonia": 2}
    assert table.attrs["collection"] == "covid-ct-multiclass"
    binary = load_dataset(root, collection="covid-ct-multiclass", classes=("COVID-19", "Non-COVID"))
    assert binary["label"].value_counts().to_dict() == {"Non-COVID": 8, "COVID-19": 4}


def test_registry_name_reads_the_download_or_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("COVID_TUTORIAL_DATA", str(tmp_path))
    with pytest.raises(DataError, match="covid-tutorial download covid-ct-multiclass") as caught:
        load_dataset("covid-ct-multiclass")
    assert "\n" not in str(caught.value)
    _ct_patients(tmp_path / "covid-ct-multiclass" / "New_Data_CoV2")
    table = load_dataset("covid-ct-multiclass")
    assert set(table["label"]) == set(CLASS_NAMES) and len(table) == 12


def test_per_patient_folders_under_publisher_splits(tmp_path):
    for split in ("train", "validation", "test"):
        for c in ("COVID", "Normal"):
            _png(tmp_path / split / c / f"{split}-{c}-p1" / "a.png")
            _png(tmp_path / split / c / f"{split}-{c}-p1" / "b.png")
    table = load_dataset(tmp_path)
    assert table.attrs["layout"] == "folder-per-class-per-patient"
    assert table.groupby("publisher_split")["patient_id"].nunique().to_dict() == {"test": 2, "train": 2, "val": 2}


def test_class_folders_with_images_and_masks_read_images_only(tmp_path):
    root = tmp_path / "COVID-19_Radiography_Dataset"
    for c in ("COVID", "Normal", "Viral Pneumonia", "Lung_Opacity"):
        _png(root / c / "images" / f"{c}-1.png")
        _png(root / c / "masks" / f"{c}-1.png")
    with pytest.raises(DataError, match="Lung_Opacity"):
        load_dataset(tmp_path)
    with pytest.warns(DataWarning, match=r"left out 1 image.*Lung_Opacity"):
        table = load_dataset(tmp_path, collection="covid19-radiography")
    assert len(table) == 3 and not table["path"].str.contains("masks").any()


def test_csv_without_file_column_finds_images_named_after_patients(tmp_path):
    pd.DataFrame({"patientid": ["P1", "P2", "P3", "P4"], "finding": ["COVID", "normal", "Pneumonia", "normal"]}).to_csv(
        tmp_path / "labels.csv", index=False
    )
    images = tmp_path / "scans"
    for name in ("P1.png", "P1_2.png", "P2-1.jpg", "P3.bmp", "stray.png"):
        _png(images / name)
    with pytest.warns(DataWarning) as caught:
        table = load_dataset(tmp_path / "labels.csv", images=images)
    messages = " ".join(str(w.message) for w in caught)
    assert "1 image(s)" in messages and "stray.png" in messages, "an image named after no patient"
    assert "1 row(s) whose patient has no image" in messages and "P4" in messages
    assert table.groupby("patient_id").size().to_dict() == {"P1": 2, "P2": 1, "P3": 1}
    assert table.set_index("patient_id")["label"].to_dict()["P2"] == "Normal"


def test_npz_arrays_are_cached_outside_the_input_folder(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setattr("covid_tutorial.data.table.cache_dir", lambda kind: cache / kind)
    folder = tmp_path / "pneumoniamnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 8, 8), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(n, 1).astype(np.uint8)
    np.savez(folder / "pneumoniamnist.npz", **arrays)
    before = snapshot(folder)
    with pytest.raises(DataError, match=r"\['0', '1'\].*--label-map '0=<class>'"):
        load_dataset(folder)
    with pytest.warns(DataWarning, match="no patient id"):
        table = load_dataset(folder / "pneumoniamnist.npz", collection="pneumoniamnist")
    assert snapshot(folder) == before, "nothing written next to the archive"
    assert table["publisher_split"].value_counts().to_dict() == {"train": 6, "test": 3, "val": 2}
    assert table["label"].tolist()[:2] == ["Normal", "Pneumonia"]
    first = Path(table["path"].iloc[0])
    assert first.is_relative_to(cache / "npz") and first.is_file()
    np.testing.assert_array_equal(cv2.imread(str(first), 0), arrays["train_images"][0])
    made = first.stat().st_mtime_ns
    with pytest.warns(DataWarning):
        again = load_dataset(folder, collection="pneumoniamnist", label_map={"normal (label 0)": "Normal"})
    assert Path(again["path"].iloc[0]).stat().st_mtime_ns == made, "the cache is reused"


# ------------------------------------------------------------------ bad input


def test_a_label_outside_the_task_is_one_line_with_the_command_line_fix(tmp_path):
    for c in ("CT_COVID", "CT_NonCOVID"):
        _png(tmp_path / c / "a.png")
    with pytest.raises(DataError) as caught:
        load_dataset(tmp_path)
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path) in message and "CT_NonCOVID" in message
    assert "--label-map 'CT_NonCOVID=<class>'" in message and "--drop-unmapped" in message
    assert "--classes 'COVID-19,Non-COVID'" in message
    with pytest.warns(DataWarning, match="no patient id"):
        table = load_dataset(tmp_path, classes=("COVID-19", "Non-COVID"))
    assert sorted(table["label"]) == ["COVID-19", "Non-COVID"]


def test_rows_with_an_empty_patient_id_get_their_own_counted(tmp_path):
    for i in range(4):
        _png(tmp_path / f"{i}.png")
    pd.DataFrame(
        {"filename": [f"{i}.png" for i in range(4)], "finding": ["COVID", "Normal"] * 2, "patientid": ["a", " ", "", "b"]}
    ).to_csv(tmp_path / "meta.csv", index=False)
    with pytest.warns(DataWarning, match="2 of 4 image"):
        table = load_dataset(tmp_path / "meta.csv")
    assert table["patient_id"].nunique() == 4
    assert table["patient_id"].str.startswith("image-").sum() == 2


def test_loose_images_next_to_class_folders_are_skipped_and_counted(tmp_path):
    _png(tmp_path / "COVID" / "a.png")
    _png(tmp_path / "Normal" / "b.png")
    _png(tmp_path / "stray1.png")
    _png(tmp_path / "stray2.jpg")
    with pytest.warns(DataWarning) as caught:
        table = load_dataset(tmp_path)
    assert any("skipped 2 loose image(s)" in str(w.message) for w in caught)
    assert len(table) == 2 and len(table.attrs["loose_images"]) == 2


def test_empty_files_are_skipped_and_counted(tmp_path):
    _png(tmp_path / "COVID" / "a.png")
    _png(tmp_path / "Normal" / "b.png")
    (tmp_path / "Normal" / "empty.png").write_bytes(b"")
    (tmp_path / "meta.csv").write_text("filename,finding\nCOVID/a.png,COVID\nNormal/empty.png,Normal\nNormal/b.png,Normal\n")
    for source in (tmp_path, tmp_path / "meta.csv"):
        with pytest.warns(DataWarning, match=r"skipped 1 empty \(0-byte\) file"):
            table = load_dataset(source)
        assert len(table) == 2 and table.attrs["empty_files"][0].endswith("empty.png")


def test_symlink_loops_and_links_out_of_the_tree_are_not_followed(tmp_path):
    root = tmp_path / "data"
    _png(root / "COVID" / "a.png")
    _png(root / "Normal" / "b.png")
    outside = _png(tmp_path / "elsewhere" / "secret.png")
    (root / "COVID" / "up").symlink_to(root, target_is_directory=True)  # a loop through a folder
    (root / "Normal" / "loop.png").symlink_to(root / "Normal" / "loop.png")  # a link to itself
    (root / "Normal" / "out.png").symlink_to(outside)
    (root / "Normal" / "inside.png").symlink_to(root / "COVID" / "a.png")
    before = snapshot(root)
    with pytest.warns(DataWarning, match="skipped 3 symbolic link"):
        table = load_dataset(root)
    assert sorted(Path(p).name for p in table["path"]) == ["a.png", "b.png", "inside.png"]
    assert len(table.attrs["symlinks_not_followed"]) == 3
    assert snapshot(root) == before


def test_csv_with_byte_order_mark_and_crlf_line_ends(tmp_path):
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png")
    text = "patientid,filename,finding\r\np1,a.png,COVID-19\r\np2,b.png,No Finding\r\n"
    (tmp_path / "meta.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    table = load_dataset(tmp_path / "meta.csv")
    assert table["patient_id"].tolist() == ["p1", "p2"]
    assert table["label"].tolist() == ["COVID-19", "Normal"]


def test_two_rows_naming_one_file_are_deduplicated(tmp_path):
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png")
    (tmp_path / "meta.csv").write_text(
        "patientid,filename,finding\np1,a.png,COVID\np1,a.png,Normal\np2,b.png,Normal\np3,b.png,Normal\n"
    )
    with pytest.warns(DataWarning, match=r"2 row\(s\) name an image another row already names.*1 of them with another label"):
        table = load_dataset(tmp_path / "meta.csv")
    assert table[["patient_id", "label"]].values.tolist() == [["p1", "COVID-19"], ["p2", "Normal"]]


def test_registry_row_filters_apply_to_a_copy_fetched_by_hand(tmp_path):
    for name in ("a.png", "b.png", "c.png", "d.png"):
        _png(tmp_path / "images" / name)
    pd.DataFrame(
        {
            "patientid": ["1", "2", "3", "4"],
            "finding": ["Pneumonia/Viral/COVID-19", "No Finding", "Pneumonia/Bacterial", "No Finding"],
            "modality": ["X-ray", "X-ray", "X-ray", "CT"],
            "view": ["PA", "AP", "L", "PA"],
            "filename": ["a.png", "b.png", "c.png", "d.png"],
        }
    ).to_csv(tmp_path / "metadata.csv", index=False)
    table = load_dataset(tmp_path, collection="covid-chestxray")
    assert table["path"].map(lambda p: Path(p).name).tolist() == ["a.png", "b.png"]
    lateral = load_dataset(tmp_path, collection="covid-chestxray", views=["L"])
    assert lateral["label"].tolist() == ["Pneumonia"]


def test_patient_ids_from_a_file_name_pattern_of_the_entry(tmp_path):
    ids = PatientIds("filename-pattern", "patient before the first underscore", pattern=r"^(?P<patient>P\d+)_")
    entry = dataclasses.replace(REGISTRY["sars-cov-2-ct"], patient_ids=ids)
    for name in ("P1_a.png", "P1_b.png", "P2_a.png"):
        _png(tmp_path / "COVID" / name)
    _png(tmp_path / "non-COVID" / "P3_a.png")
    table = load_dataset(tmp_path, collection=entry, classes=("COVID-19", "Non-COVID"))
    assert table.groupby("patient_id").size().to_dict() == {"P1": 2, "P2": 1, "P3": 1}


def test_a_wrapping_folder_is_stepped_into_but_a_single_class_is_kept(tmp_path):
    _png(tmp_path / "unpacked" / "archive-master" / "COVID" / "a.png")
    _png(tmp_path / "unpacked" / "archive-master" / "Normal" / "b.png")
    with pytest.warns(DataWarning, match="no patient id"):
        assert sorted(load_dataset(tmp_path / "unpacked")["label"]) == ["COVID-19", "Normal"]
    _png(tmp_path / "external" / "COVID" / "P1" / "a.png")
    _png(tmp_path / "external" / "COVID" / "P2" / "a.png")
    table = load_dataset(tmp_path / "external")  # one class, one folder per patient
    assert set(table["label"]) == {"COVID-19"} and table["patient_id"].nunique() == 2


def test_patient_named_images_are_looked_for_in_images_not_masks(tmp_path):
    (tmp_path / "labels.csv").write_text("patient_id,label\nP1,COVID-19\nP2,Normal\n")
    for folder in ("images", "masks"):
        _png(tmp_path / folder / "P1.png")
        _png(tmp_path / folder / "P2_1.png")
    table = load_dataset(tmp_path / "labels.csv")
    assert table["path"].map(lambda p: Path(p).parent.name).tolist() == ["images", "images"]


def test_ensure_phantoms_names_the_folder_by_size_and_generator(tmp_path, monkeypatch):
    from covid_tutorial.data import table as data_module

    monkeypatch.setattr(data_module, "data_root", lambda: tmp_path)
    first = data_module.ensure_phantoms("ci", patients=6, size=64, progress=False)
    assert first.name.startswith("phantoms-ci-6p-64px-")
    assert data_module.load_dataset(first)["patient_id"].nunique() == 6
    stamp = (first / "metadata.csv").stat().st_mtime_ns
    assert data_module.ensure_phantoms("ci", patients=6, size=64, progress=False) == first
    assert (first / "metadata.csv").stat().st_mtime_ns == stamp, "an existing set is reused, not redrawn"
    other = data_module.ensure_phantoms("ci", patients=9, size=64, progress=False)
    assert other != first and data_module.load_dataset(other)["patient_id"].nunique() == 9


# --- the ieee8023 collection's two vocabularies, and the two real collections of notebook 09

# The 'finding' values of an early copy (flat names, spring 2020) and of a later one
# (hierarchical), for the same kinds of cases; the last three of each have no course class.
EARLY_FINDINGS = ["COVID-19", "COVID-19, ARDS", "SARS", "Streptococcus", "Pneumocystis", "Legionella",
                  "Klebsiella", "E.Coli", "No Finding", "ARDS", "todo", "ARDS"]
LATER_FINDINGS = ["Pneumonia/Viral/COVID-19", "Pneumonia/Viral/COVID-19", "Pneumonia/Viral/SARS",
                  "Pneumonia/Bacterial/Streptococcus", "Pneumonia/Fungal/Pneumocystis",
                  "Pneumonia/Bacterial/Legionella", "Pneumonia/Bacterial/Klebsiella",
                  "Pneumonia/Bacterial/E.Coli", "No Finding", "Tuberculosis", "todo", "Unknown"]
EXPECTED_LABELS = ["COVID-19", "COVID-19"] + ["Pneumonia"] * 6 + ["Normal"]


def _covid_chestxray_copy(folder, findings):
    names = [f"{i}.png" for i in range(len(findings))]
    for name in names:
        _png(folder / "images" / name)
    pd.DataFrame({"patientid": range(len(findings)), "finding": findings, "modality": "X-ray",
                  "view": "PA", "filename": names}).to_csv(folder / "metadata.csv", index=False)


@pytest.mark.parametrize("findings", [EARLY_FINDINGS, LATER_FINDINGS], ids=["early copy", "later copy"])
def test_both_vocabularies_of_covid_chestxray_load_alike(tmp_path, findings):
    _covid_chestxray_copy(tmp_path, findings)
    with pytest.warns(DataWarning, match=r"left out 3 image\(s\) labelled"):
        table = load_dataset(tmp_path, collection="covid-chestxray")
    assert table["label"].tolist() == EXPECTED_LABELS
    left_out = {name: count for name, count in table.attrs["excluded_labels"].items()}
    expected = pd.Series(findings[len(EXPECTED_LABELS):]).value_counts().to_dict()
    assert left_out == expected
    binary = load_dataset(tmp_path, collection="covid-chestxray", classes=("COVID-19", "Non-COVID"))
    assert binary["label"].value_counts().to_dict() == {"Non-COVID": 7, "COVID-19": 2}


def test_a_finding_the_rules_exclude_can_still_be_mapped_by_hand(tmp_path):
    _covid_chestxray_copy(tmp_path, EARLY_FINDINGS)
    table = load_dataset(tmp_path, collection="covid-chestxray", label_map={"ARDS": "Pneumonia", "todo": "excluded"})
    assert table["label"].value_counts()["Pneumonia"] == 8
    assert table.attrs["excluded_labels"] == {"todo": 1}


def _darkcovidnet_copy(root):
    folder = root / "COVID-19-master" / "X-Ray Image DataSet"
    for name in ("01E392EE.jpeg", "covid-19-pneumonia-7-PA.jpg"):
        _png(folder / "Covid-19" / name)
    for name in ("00001280_004.png", "00001280_005.png", "00001281_000.png"):
        _png(folder / "No_findings" / name)
    _png(folder / "Pneumonia" / "00000013_001.png")
    (root / "COVID-19-master" / "README.md").write_text("# COVID-19\n")


def test_darkcovidnet_patients_from_nih_file_names_and_one_each_for_covid(tmp_path):
    _darkcovidnet_copy(tmp_path)
    with pytest.warns(DataWarning, match=r"2 of 6 image\(s\) have no patient id"):
        table = load_dataset(tmp_path, collection="darkcovidnet")
    assert table["label"].value_counts().to_dict() == {"Normal": 3, "COVID-19": 2, "Pneumonia": 1}
    by_patient = table.groupby("patient_id")["label"].agg(list).to_dict()
    assert by_patient["00001280"] == ["Normal", "Normal"]
    assert by_patient["00000013"] == ["Pneumonia"]
    covid = table.loc[table["label"] == "COVID-19", "patient_id"]
    assert covid.nunique() == 2 and covid.str.startswith(GENERATED_ID_PREFIX).all()


def test_covid19_image_dataset_keeps_the_publishers_train_and_test(tmp_path):
    wrapper = tmp_path / "Covid19-dataset"
    for split, count in (("train", 2), ("test", 1)):
        for folder in ("Covid", "Normal", "Viral Pneumonia"):
            for i in range(count):
                _png(wrapper / split / folder / f"{i}.jpeg")
    with pytest.warns(DataWarning, match="no patient id"):
        table = load_dataset(tmp_path, collection="covid19-image-dataset")
    assert pd.crosstab(table["publisher_split"], table["label"]).to_dict() == {
        "COVID-19": {"test": 1, "train": 2}, "Normal": {"test": 1, "train": 2}, "Pneumonia": {"test": 1, "train": 2}}


def test_a_registry_name_given_as_a_path_reads_the_downloaded_copy(tmp_path, monkeypatch):
    """The command line hands DATA over as a Path: `covid-tutorial inspect darkcovidnet` must find the download."""
    from covid_tutorial.data.download import DATA_ENV_VAR

    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    _darkcovidnet_copy(tmp_path / "darkcovidnet")
    with pytest.warns(DataWarning, match="no patient id"):
        table = load_dataset(Path("darkcovidnet"))
    assert table.attrs["collection"] == "darkcovidnet" and len(table) == 6
