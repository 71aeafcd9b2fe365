import json
import shutil

import cv2
import numpy as np
import pandas as pd
from folder_snapshot import snapshot

from covid_tutorial.cli import main
from covid_tutorial.inspection import (
    NEAR_DUPLICATE_BITS,
    inspect_dataset,
    perceptual_hash,
)


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


def test_leakage_shows_on_labels_that_mean_nothing(phantom_dir):
    """Random labels per patient: no disease signal at all, so only a leaky split can beat chance."""
    from covid_tutorial.data import load_dataset
    from covid_tutorial.images import load_images
    from covid_tutorial.splits import measure_split_leakage

    thumbnails, table = load_images(load_dataset(phantom_dir), 16, progress=False)
    patients = table["patient_id"].to_numpy()
    rng = np.random.default_rng(2026)  # not the generator's own seed: its class permutation would come back
    label_of = dict(zip(np.unique(patients), rng.permutation(np.arange(len(np.unique(patients))) % 3)))
    labels = np.array([label_of[p] for p in patients])
    scores = measure_split_leakage(thumbnails.reshape(len(table), -1), labels, patients, rounds=10).mean()
    assert scores["patient-wise split"] < 0.5, "close to chance (1/3)"
    assert scores["image-wise split"] > scores["patient-wise split"] + 0.08
