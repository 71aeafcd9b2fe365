"""Tests for the synthetic chest X-ray phantoms (covid_tutorial.data.phantoms)."""

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from folder_snapshot import file_hashes
from sklearn.model_selection import StratifiedGroupKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from covid_tutorial.data.phantoms import (
    METADATA_COLUMNS,
    PHANTOM_FINDINGS,
    generate_phantoms,
)

SIZE = 96
COVID, PNEUMONIA, NORMAL = (PHANTOM_FINDINGS[k] for k in PHANTOM_FINDINGS)


def read_gray(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


@pytest.fixture(scope="module")
def phantom_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantoms") / "set"
    # Difficulty 0: the textbook picture of each class, whose shape the tests below check.
    metadata = generate_phantoms(out, patients=30, size=SIZE, seed=3, difficulty=0, progress=False)
    return out, metadata


@pytest.fixture(scope="module")
def masks_by_finding(phantom_set):
    out, metadata = phantom_set
    return {
        finding: [read_gray(out / name) for name in rows.mask_filename]
        for finding, rows in metadata.groupby("finding")
    }


def test_same_seed_gives_identical_bytes(tmp_path):
    first = generate_phantoms(tmp_path / "a", patients=6, size=64, progress=False)
    generate_phantoms(tmp_path / "b", patients=6, size=64, progress=False)
    generate_phantoms(tmp_path / "c", patients=6, size=64, seed=1, progress=False)
    hashes_a = file_hashes(tmp_path / "a")
    assert len(hashes_a) == 2 * len(first) + 2  # images, masks, metadata, stamp
    assert hashes_a == file_hashes(tmp_path / "b")
    hashes_c = file_hashes(tmp_path / "c")
    shared_images = [name for name in hashes_a if name.startswith("images/")]
    shared_images = [name for name in shared_images if name in hashes_c]
    assert shared_images
    assert all(hashes_a[name] != hashes_c[name] for name in shared_images)


def test_metadata_schema_and_dtypes(phantom_set):
    out, metadata = phantom_set
    assert list(metadata.columns) == METADATA_COLUMNS
    assert pd.api.types.is_integer_dtype(metadata["offset"])
    assert pd.api.types.is_integer_dtype(metadata["age"])
    for column in ["patientid", "sex", "finding", "view", "modality", "filename"]:
        assert metadata[column].map(type).eq(str).all(), column
    assert metadata["patientid"].str.fullmatch(r"P\d{4}").all()
    assert set(metadata["sex"]) <= {"M", "F"}
    assert metadata["age"].between(18, 100).all()
    assert set(metadata["finding"]) == set(PHANTOM_FINDINGS.values())
    assert set(metadata["view"]) <= {"PA", "AP"}
    assert (metadata["view"] == "PA").mean() > 0.6
    assert (metadata["modality"] == "X-ray").all()
    assert (metadata["folder"] == "images").all()
    assert (metadata["mask_filename"] == "masks/" + metadata["filename"]).all()
    assert metadata["filename"].is_unique
    first_offsets = metadata.groupby("patientid")["offset"].min()
    assert (first_offsets == 0).all()
    assert metadata.equals(
        metadata.sort_values(["patientid", "offset"], ignore_index=True)
    )
    from_disk = pd.read_csv(out / "metadata.csv")
    assert from_disk.astype(str).equals(metadata.astype(str))


def test_every_row_has_its_files_and_nothing_else(phantom_set):
    out, metadata = phantom_set
    images = sorted(path.name for path in (out / "images").iterdir())
    masks = sorted(path.name for path in (out / "masks").iterdir())
    assert images == masks == sorted(metadata["filename"])


def test_classes_are_balanced_across_patients(phantom_set):
    _, metadata = phantom_set
    per_patient = metadata.groupby("patientid")["finding"].agg(["first", "nunique"])
    assert (per_patient["nunique"] == 1).all()  # a patient keeps one diagnosis
    assert per_patient["first"].value_counts().tolist() == [10, 10, 10]


def test_patients_have_several_studies(phantom_set):
    _, metadata = phantom_set
    studies = metadata.groupby("patientid").size()
    assert studies.between(1, 4).all()
    assert (studies > 1).sum() >= len(studies) // 2
    assert metadata.groupby("patientid")["offset"].is_monotonic_increasing.all()


def test_images_are_uint8_grayscale_of_requested_size(phantom_set):
    out, metadata = phantom_set
    for name in metadata["filename"]:
        image = read_gray(out / "images" / name)
        assert image.dtype == np.uint8
        assert image.shape == (SIZE, SIZE)
        assert image.std() > 10  # an image, not a blank
    follow_ups = metadata.groupby("patientid").filter(lambda rows: len(rows) > 1)
    first, second = follow_ups["filename"].iloc[:2]
    assert not np.array_equal(
        read_gray(out / "images" / first), read_gray(out / "images" / second)
    )


def test_masks_empty_for_normal_and_filled_for_disease(masks_by_finding):
    for finding, masks in masks_by_finding.items():
        for mask in masks:
            assert mask.shape == (SIZE, SIZE) and mask.dtype == np.uint8
            assert set(np.unique(mask)) <= {0, 255}
            if finding == NORMAL:
                assert mask.max() == 0
            else:
                assert (mask > 0).sum() > 0.005 * SIZE * SIZE


def test_covid_lesions_are_bilateral_and_lower_zone(masks_by_finding):
    half = SIZE // 2
    for mask in masks_by_finding[COVID]:
        lesion = mask > 0
        assert lesion[:, :half].any() and lesion[:, half:].any()
    lesions = np.sum([mask > 0 for mask in masks_by_finding[COVID]], axis=0)
    assert lesions[half:].sum() > 2 * lesions[:half].sum()  # mostly in the lower zones


def test_pneumonia_lesions_are_unilateral_and_sides_balanced(phantom_set):
    out, metadata = phantom_set
    half = SIZE // 2
    pneumonia = metadata[metadata["finding"] == PNEUMONIA]
    on_left = []
    for name in pneumonia["mask_filename"]:
        lesion = read_gray(out / name) > 0
        assert lesion[:, :half].any() != lesion[:, half:].any()
        on_left.append(lesion[:, :half].any())
    side_per_patient = pd.Series(on_left).groupby(pneumonia["patientid"].values)
    assert (side_per_patient.nunique() == 1).all()  # a patient keeps their side
    assert side_per_patient.first().sum() == len(side_per_patient) // 2


def test_lesions_stay_inside_the_lung_fields(phantom_set, masks_by_finding):
    out, metadata = phantom_set
    border = round(0.08 * SIZE)
    for finding in (COVID, PNEUMONIA):
        for mask in masks_by_finding[finding]:
            inner = mask[border:-border, border:-border]
            assert (mask > 0).sum() == (inner > 0).sum()
    # Lesions whiten dark lung: the lesion is brighter than the same pixels
    # in a clear study of another patient would be, yet darker than the heart.
    diseased = metadata[metadata["finding"] != NORMAL].iloc[0]
    image = read_gray(out / "images" / diseased["filename"])
    mask = read_gray(out / diseased["mask_filename"]) > 0
    assert image[mask].mean() > np.percentile(image[image > 20], 10)


def test_marker_burned_into_chosen_class_only(tmp_path):
    marked = generate_phantoms(
        tmp_path / "marked",
        patients=9,
        size=64,
        marker_class="COVID-19",
        progress=False,
    )
    plain = generate_phantoms(tmp_path / "plain", patients=9, size=64, progress=False)
    assert "marker" not in plain.columns
    assert list(marked.columns) == METADATA_COLUMNS + ["marker"]
    assert (marked["marker"] == (marked["finding"] == COVID).astype(int)).all()
    corner = slice(3, 8)
    for row in marked.itertuples():
        image = read_gray(tmp_path / "marked" / "images" / row.filename)
        twin = read_gray(tmp_path / "plain" / "images" / row.filename)
        if row.marker:
            assert image[corner, corner].mean() > 200 > twin[corner, corner].mean()
        else:  # the marker changes nothing else
            assert np.array_equal(image, twin)
    none = generate_phantoms(
        tmp_path / "rate0",
        patients=9,
        size=64,
        marker_class="Normal",
        marker_rate=0.0,
        progress=False,
    )
    assert none["marker"].sum() == 0


def test_refuses_a_folder_it_did_not_make(tmp_path):
    user_folder = tmp_path / "my_xrays"
    user_folder.mkdir()
    (user_folder / "scan.png").write_bytes(b"precious")
    with pytest.raises(ValueError, match="not written by generate_phantoms"):
        generate_phantoms(user_folder, patients=3, size=64, progress=False)
    assert (user_folder / "scan.png").read_bytes() == b"precious"
    assert sorted(path.name for path in user_folder.iterdir()) == ["scan.png"]


def test_regenerates_into_its_own_folder_but_keeps_foreign_files(tmp_path):
    out = tmp_path / "phantoms"
    generate_phantoms(out, patients=9, size=64, progress=False)
    smaller = generate_phantoms(out, patients=3, size=64, progress=False)
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(
        smaller["filename"]
    )
    (out / "images" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="other files"):
        generate_phantoms(out, patients=3, size=64, progress=False)
    assert (out / "images" / "notes.txt").read_text() == "mine"


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="marker_class"):
        generate_phantoms(tmp_path / "x", patients=3, marker_class="Flu")
    with pytest.raises(ValueError, match="marker_rate"):
        generate_phantoms(tmp_path / "x", marker_class="Normal", marker_rate=2)
    with pytest.raises(ValueError, match="patients"):
        generate_phantoms(tmp_path / "x", patients=0)


def thumbnail_nearest_neighbour_score(folder: Path, metadata: pd.DataFrame) -> float:
    """Balanced accuracy of a 1-nearest-neighbour lookup on 32-px thumbnails, 3 folds by patient."""
    pixels = np.stack(
        [cv2.resize(read_gray(folder / "images" / name), (32, 32), interpolation=cv2.INTER_AREA).ravel()
         for name in metadata["filename"]]
    ).astype(np.float32)
    labels, groups = metadata["finding"].to_numpy(), metadata["patientid"].to_numpy()
    folds = StratifiedGroupKFold(n_splits=3, shuffle=True, random_state=0)
    scores = cross_val_score(KNeighborsClassifier(1), pixels, labels, groups=groups, cv=folds,
                             scoring="balanced_accuracy")
    return float(scores.mean())


@pytest.fixture(scope="module")
def difficulty_scores(tmp_path_factory):
    """The 1-NN score on the same 90 patients drawn at three difficulties, and without lesions."""
    scores = {}
    for name, options in {"0": dict(difficulty=0), "default": {}, "1": dict(difficulty=1),
                          "no lesions": dict(lesions=False)}.items():
        folder = tmp_path_factory.mktemp("difficulty") / "set"
        metadata = generate_phantoms(folder, patients=90, size=64, progress=False, **options)
        scores[name] = thumbnail_nearest_neighbour_score(folder, metadata)
    return scores


def test_difficulty_makes_the_classes_harder_to_tell_apart(difficulty_scores):
    """Textbook phantoms are told apart by pixel lookup; each step of difficulty takes that away."""
    assert difficulty_scores["0"] > 0.85
    assert difficulty_scores["0"] > difficulty_scores["default"] + 0.1
    assert difficulty_scores["default"] > difficulty_scores["1"] > 1 / 3


def test_without_lesions_no_class_signal_is_left(difficulty_scores, tmp_path):
    """The control: the lesions are the only class signal, so without them lookup scores at chance,
    the labels stay, every mask is empty and a Normal patient's images do not change."""
    assert abs(difficulty_scores["no lesions"] - 1 / 3) < 0.1
    with_lesions = generate_phantoms(tmp_path / "a", patients=12, size=64, progress=False)
    without = generate_phantoms(tmp_path / "b", patients=12, size=64, lesions=False, progress=False)
    assert without["finding"].equals(with_lesions["finding"])
    normal = with_lesions["finding"] == NORMAL
    for row in without.itertuples():
        assert read_gray(tmp_path / "b" / row.mask_filename).max() == 0
        same = np.array_equal(read_gray(tmp_path / "a" / "images" / row.filename),
                              read_gray(tmp_path / "b" / "images" / row.filename))
        assert same == bool(normal[row.Index])


def test_difficulty_must_lie_between_0_and_1(tmp_path):
    with pytest.raises(ValueError, match="difficulty"):
        generate_phantoms(tmp_path / "x", patients=3, difficulty=1.5)
