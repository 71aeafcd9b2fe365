import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from folder_snapshot import snapshot

from covid_tutorial.cli import main
from covid_tutorial.data.table import load_dataset
from covid_tutorial.data.inspection import (
    CONFOUNDER_MARGIN,
    NEAR_DUPLICATE_BITS,
    check_confounders,
    confounder_warning,
    file_properties,
    format_inspection,
    inspect_dataset,
    perceptual_hash,
)
from covid_tutorial.data.phantoms import generate_phantoms


def test_perceptual_hash_survives_resizing_and_jpeg(phantom_dir):
    files = sorted((phantom_dir / "images").glob("*.png"))
    original = cv2.imread(str(files[0]), cv2.IMREAD_GRAYSCALE)
    small = cv2.resize(original, (61, 61))
    copy = cv2.imdecode(cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 60])[1], 0)
    other = cv2.imread(str(files[-1]), cv2.IMREAD_GRAYSCALE)

    def bits(a, b):
        return int(np.unpackbits(perceptual_hash(a) ^ perceptual_hash(b)).sum())

    assert bits(original, copy) <= NEAR_DUPLICATE_BITS
    assert bits(original, other) > 2 * NEAR_DUPLICATE_BITS


def _publisher_tree(phantom_tree, root):
    """A publisher-style tree (train/ and test/ of odd-case class folders) with planted problems."""
    names = {"COVID-19": "COVID", "Normal": "NORMAL", "Pneumonia": "Viral Pneumonia"}
    for split in ("train", "test"):
        for ours, theirs in names.items():
            (root / split / theirs).mkdir(parents=True)
    for k, (ours, theirs) in enumerate(names.items()):
        files = sorted((phantom_tree / ours).glob("*.png"))
        for i, f in enumerate(files[:6]):
            shutil.copy(f, root / ("test" if i % 3 == 0 else "train") / theirs / f.name)
    covid = sorted((root / "train" / "COVID").glob("*.png"))[0]
    shutil.copy(covid, root / "test" / "NORMAL" / "copied.png")  # exact copy, other class and split
    image = cv2.imread(str(covid), 0)
    cv2.imwrite(str(root / "train" / "NORMAL" / "resized.jpg"), cv2.resize(image, (80, 80)))  # near copy
    (root / "train" / "NORMAL" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    (root / "train" / "NORMAL" / "readme.txt").write_text("not an image")


def test_inspect_finds_planted_problems_and_writes_nothing(phantom_tree, tmp_path):
    root = tmp_path / "publisher"
    _publisher_tree(phantom_tree, root)
    before = snapshot(root)
    report = inspect_dataset(root, progress=False)
    assert snapshot(root) == before
    assert set(report["classes"]) == {"COVID-19", "Normal", "Pneumonia"}
    assert report["publisher_splits"] == {"train": 14, "test": 7}
    assert report["patients"] is None
    assert len(report["unreadable_files"]) == 1 and report["unreadable_files"][0].endswith("broken.png")
    assert len(report["skipped_files"]) == 1
    assert report["exact_duplicates"]["pairs"] == 1
    assert report["exact_duplicates"]["by_kind"] == {"across classes": 1}
    assert report["near_duplicates"]["by_kind"].get("across classes", 0) >= 1
    assert report["distinct_image_sizes"] == 2


def test_inspect_metadata_reports_missing_rows_and_unmapped_labels(phantom_dir, tmp_path, capsys):
    meta = pd.read_csv(phantom_dir / "metadata.csv")
    meta.loc[0, "filename"] = "gone.png"
    meta.loc[1, "finding"] = "Tuberculosis"
    csv = tmp_path / "meta.csv"
    meta.to_csv(csv, index=False)
    assert main(["inspect", "--metadata", str(csv), "--images", str(phantom_dir / "images"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["missing_files"][0].endswith("gone.png")
    assert report["unmapped_labels"] == ["Tuberculosis"]
    assert report["patients"] == meta.loc[2:, "patientid"].nunique()
    assert report["images_per_patient"]["max"] >= 2
    assert main(["inspect", str(phantom_dir)]) == 0
    text = capsys.readouterr().out
    assert "Patients: 30" in text and "Exact duplicates: 0 pair(s)" in text
    assert "No sign that the classes come from different sources." in text and "WARNING" not in text


# ---------------------------------------------------------------- confounders


def _resave_one_class(phantom_dir, root, label="COVID-19", scale=1.5, extension=".jpg") -> Path:
    """A copy of the phantoms in ``root`` whose ``label`` images are re-saved larger and as JPEG."""
    meta = pd.read_csv(phantom_dir / "metadata.csv").drop(columns="mask_filename")
    table = load_dataset(phantom_dir)
    resave = {Path(path).name for path in table.loc[table["label"] == label, "path"]}
    (root / "images").mkdir(parents=True)
    for i, row in meta.iterrows():
        source = phantom_dir / row["folder"] / row["filename"]
        if row["filename"] in resave:
            image = cv2.resize(cv2.imread(str(source), cv2.IMREAD_GRAYSCALE), None, fx=scale, fy=scale)
            meta.loc[i, "filename"] = Path(row["filename"]).with_suffix(extension).name
            cv2.imwrite(str(root / "images" / meta.loc[i, "filename"]), image)
        else:
            shutil.copy(source, root / "images")
    meta.to_csv(root / "metadata.csv", index=False)
    return root


def test_file_properties_come_from_the_content(tmp_path):
    gray16 = np.full((40, 60), 65535, np.uint16)
    gray16[5:-5, 5:-5] = 0  # a white frame around black
    color = np.zeros((30, 30, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "deep.png"), gray16)
    (tmp_path / "png_named.jpg").write_bytes(cv2.imencode(".png", color)[1].tobytes())  # the name lies
    (tmp_path / "broken.png").write_bytes(b"not an image")
    table = pd.DataFrame({"path": [str(tmp_path / n) for n in ("deep.png", "png_named.jpg", "broken.png")]})
    found = file_properties(table)
    assert found.loc[0, ["width", "height", "channels", "bit_depth", "format"]].tolist() == [60, 40, 1, 16, "png"]
    assert found.loc[0, "aspect_ratio"] == 1.5 and found.loc[0, "border_intensity"] == 1.0
    assert found.loc[1, ["channels", "bit_depth", "format", "border_intensity"]].tolist() == [3, 8, "png", 0.0]
    assert found.loc[2, "format"] == "png" and np.isnan(found.loc[2, "width"])


def test_a_class_saved_larger_and_as_jpeg_is_flagged_loudly(phantom_dir, tmp_path, capsys):
    root = _resave_one_class(phantom_dir, tmp_path / "planted")
    assert main(["inspect", str(root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    check = report["confounders"]
    assert {"score", "chance", "flagged", "metric", "per_class", "reason"} <= set(check)
    assert check["flagged"] and check["reason"] is None and check["grouped_by"] == "patient"
    assert check["metric"] == "balanced accuracy" and check["chance"] == round(1 / 3, 4)
    assert check["score"] >= check["chance"] + CONFOUNDER_MARGIN
    assert "COVID-19 vs the rest" in check["flagged_for"] and check["one_vs_rest"]["COVID-19"]["score"] >= 0.95
    assert {"width", "height", "format"} & set(check["telling_properties"])
    assert check["set_apart"] == {"COVID-19": ["width", "height", "format"]}
    assert check["per_class"]["COVID-19"]["format"] == {"jpeg": check["per_class"]["COVID-19"]["images"]}
    assert check["per_class"]["COVID-19"]["width"]["min"] == 144 and check["per_class"]["Normal"]["width"]["max"] == 96
    warning = confounder_warning(report)
    assert warning == confounder_warning(check)
    assert "INSTEAD OF THE DISEASE" in warning and "notebooks/08_shortcut_learning.ipynb" in warning
    assert warning in format_inspection(report)


def test_clean_phantoms_are_not_flagged_and_reading_them_again_agrees(phantom_dir):
    table = load_dataset(phantom_dir)
    check = check_confounders(table)
    assert not check["flagged"] and check["folds"] == 5 and len(check["fold_scores"]) == 5
    assert check["score"] < check["chance"] + CONFOUNDER_MARGIN
    assert confounder_warning(check) is None and check["set_apart"] == {}
    assert json.loads(json.dumps(check)) == check  # JSON-ready as it is
    assert set(check["per_class"]) == {"COVID-19", "Normal", "Pneumonia"}
    measured = table.join(file_properties(table))
    assert check_confounders(measured) == check  # properties already in the table: nothing read twice
    assert (measured["format"] == "png").all() and (measured["bit_depth"] == 8).all()
    sample = check_confounders(table, max_patients_per_class=4)
    assert sample["folds"] == 4 and {c["patients"] for c in sample["per_class"].values()} == {4}


def test_the_classifier_is_cross_validated_by_patient(tmp_path):
    """Each patient's images are identical files of a width no other patient has, and the classes
    say nothing about the width: only folds that split a patient can tell the classes apart."""
    rng = np.random.default_rng(0)
    widths = rng.permutation(np.arange(24)) * 4 + 40
    rows = []
    for patient, width in enumerate(widths):
        path = tmp_path / f"p{patient}.png"
        cv2.imwrite(str(path), rng.integers(0, 256, (48, width), dtype=np.uint8))
        label = ("COVID-19", "Normal", "Pneumonia")[patient % 3]
        rows += [{"path": str(path), "label": label, "patient_id": f"P{patient}"}] * 4
    table = pd.DataFrame(rows)
    by_patient = check_confounders(table)
    assert by_patient["grouped_by"] == "patient" and not by_patient["flagged"], by_patient["fold_scores"]
    # The same files without patient ids: folds split patients, the tree recognises them by width.
    by_image = check_confounders(table.assign(patient_id=[f"image-{i:06d}" for i in range(len(table))]))
    assert by_image["grouped_by"].startswith("image") and by_image["flagged"]


def test_too_few_patients_give_a_reason_or_fewer_folds(tmp_path):
    generate_phantoms(tmp_path / "tiny", patients=3, size=32, seed=0, progress=False)
    report = inspect_dataset(tmp_path / "tiny", progress=False)
    check = report["confounders"]
    assert check["score"] is None and not check["flagged"] and "at least 2" in check["reason"]
    assert "skipped" in format_inspection(report)
    generate_phantoms(tmp_path / "small", patients=6, size=32, seed=0, progress=False)
    check = check_confounders(load_dataset(tmp_path / "small"))
    assert check["reason"] is None and check["folds"] == 2 and check["score"] is not None
    one_class = load_dataset(tmp_path / "small").query("label == 'Normal'")
    assert "nothing to tell apart" in check_confounders(one_class)["reason"]


def test_leakage_shows_on_labels_that_mean_nothing(phantom_dir):
    """Random labels per patient: no disease signal at all, so only a leaky split can beat chance."""
    from covid_tutorial.data.table import load_dataset
    from covid_tutorial.data.images import load_images
    from covid_tutorial.data.splits import measure_split_leakage

    thumbnails, table = load_images(load_dataset(phantom_dir), 16, progress=False)
    patients = table["patient_id"].to_numpy()
    rng = np.random.default_rng(2026)  # not the generator's own seed: its class permutation would come back
    label_of = dict(zip(np.unique(patients), rng.permutation(np.arange(len(np.unique(patients))) % 3)))
    labels = np.array([label_of[p] for p in patients])
    scores = measure_split_leakage(thumbnails.reshape(len(table), -1), labels, patients, rounds=10).mean()
    assert scores["patient-wise split"] < 0.5, "close to chance (1/3)"
    assert scores["image-wise split"] > scores["patient-wise split"] + 0.08


def test_train_warns_of_a_planted_confounder_before_it_trains(phantom_dir, tmp_path, capsys):
    root = _resave_one_class(phantom_dir, tmp_path / "planted")
    argv = ["train", str(root), "--out", str(tmp_path / "run"), "--model", "vgg16", "--image-size", "32",
            "--epochs", "1", "--no-evaluate", "--profile", "ci"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "INSTEAD OF THE DISEASE" in out
    assert out.index("INSTEAD OF THE DISEASE") < out.index("==> Training")


# --- across collections: shared images, and the file-property classifier fitted once (notebook 09)


def _two_collections(phantom_dir, root):
    files = sorted((phantom_dir / "images").glob("*.png"))
    first, second = root / "first" / "Normal", root / "second" / "Normal"
    first.mkdir(parents=True)
    second.mkdir(parents=True)
    for f in files[:6]:
        shutil.copy(f, first / f.name)
    shutil.copy(files[0], second / "same-file.png")  # the same bytes under another name
    small = cv2.resize(cv2.imread(str(files[1]), cv2.IMREAD_GRAYSCALE), (61, 61))
    cv2.imwrite(str(second / "resized.jpeg"), small, [cv2.IMWRITE_JPEG_QUALITY, 60])
    shutil.copy(files[-1], second / "other.png")
    return root / "first", root / "second"


def test_shared_images_finds_copies_under_other_names(phantom_dir, tmp_path):
    from covid_tutorial.data.inspection import shared_images

    first, second = (load_dataset(folder) for folder in _two_collections(phantom_dir, tmp_path))
    found = shared_images(first, second)
    assert (found.exact, found.near, found.total) == (1, 2, 3)
    assert sorted(Path(p).name for p in found.paths) == ["resized.jpeg", "same-file.png"]
    assert "2 of 3 images" in str(found)


def _cue_table(root, covid_format, sizes):
    """Four images per class; COVID-19 stored as ``covid_format``, the rest as the other format."""
    rows = []
    for label, size in sizes.items():
        suffix = covid_format if label == "COVID-19" else {".png": ".jpeg", ".jpeg": ".png"}[covid_format]
        for i in range(4):
            path = root / label / f"{i}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), np.full((size, size + i), 100 + i, np.uint8))
            rows.append((str(path), label, f"{label}-{i}"))
    return pd.DataFrame(rows, columns=["path", "label", "patient_id"])


def test_property_classifier_learns_the_cue_and_fails_where_it_turns(tmp_path):
    from sklearn.tree import DecisionTreeClassifier

    from covid_tutorial.data.inspection import PropertyClassifier, _features

    classes = ("COVID-19", "Normal")
    own = _cue_table(tmp_path / "a", ".jpeg", {"COVID-19": 40, "Normal": 40})
    turned = _cue_table(tmp_path / "b", ".png", {"COVID-19": 40, "Normal": 40})
    baseline = PropertyClassifier.fit(own)
    on_own = baseline.predict_proba(own, classes)
    assert on_own.shape == (8, 2) and (on_own.argmax(1) == (own["label"] == "Normal")).all()
    on_turned = baseline.predict_proba(turned, ("Normal", "Pneumonia", "COVID-19"))
    assert (on_turned[:, 1] == 0).all()  # a class it never saw
    assert ((on_turned.argmax(1) == 0) == (turned["label"] == "COVID-19")).all()  # every image the wrong way
    reference = DecisionTreeClassifier(max_depth=4, class_weight="balanced", random_state=0)
    features = _features(own.join(file_properties(own)))
    reference.fit(features.to_numpy(), own["label"])
    np.testing.assert_array_equal(baseline.tree.predict_proba(features.to_numpy()), reference.predict_proba(features.to_numpy()))
