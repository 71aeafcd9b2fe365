"""Tests for the synthetic chest CT phantoms (covid_tutorial.data.ct_phantoms)."""

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from folder_snapshot import file_hashes

from covid_tutorial.data.ct_phantoms import (
    CT_METADATA_COLUMNS,
    LUNG_WINDOW,
    generate_ct_phantoms,
    measure_ct_phantoms,
)
from covid_tutorial.data.table import load_dataset
from covid_tutorial.errors import DataError
from covid_tutorial.data.phantoms import (
    METADATA_COLUMNS,
    PHANTOM_FINDINGS,
    generate_phantoms,
)

PATIENTS, SLICES, SIZE = 12, 8, 96
COVID, PNEUMONIA, NORMAL = (PHANTOM_FINDINGS[k] for k in PHANTOM_FINDINGS)


def read_gray(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


@pytest.fixture(scope="module")
def ct_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("ct") / "set"
    metadata = generate_ct_phantoms(
        out, patients=PATIENTS, slices=SLICES, size=SIZE, seed=5, progress=False
    )
    return out, metadata


@pytest.fixture(scope="module")
def volumes(ct_set):
    """Per patient: finding, the slice stack and the mask stack, in slice order."""
    out, metadata = ct_set
    return {
        patient: (
            rows["finding"].iloc[0],
            np.stack([read_gray(out / "images" / n) for n in rows["filename"]]),
            np.stack([read_gray(out / n) for n in rows["mask_filename"]]) > 0,
        )
        for patient, rows in metadata.groupby("patientid")
    }


def test_same_seed_gives_identical_bytes(tmp_path):
    first = generate_ct_phantoms(tmp_path / "a", 6, 4, 64, progress=False)
    generate_ct_phantoms(tmp_path / "b", 6, 4, 64, progress=False)
    generate_ct_phantoms(tmp_path / "c", 6, 4, 64, seed=1, progress=False)
    hashes_a = file_hashes(tmp_path / "a")
    assert len(hashes_a) == 2 * len(first) + 2  # images, masks, metadata, stamp
    assert hashes_a == file_hashes(tmp_path / "b")
    hashes_c = file_hashes(tmp_path / "c")
    images = [name for name in hashes_a if name.startswith("images/")]
    assert all(hashes_a[name] != hashes_c[name] for name in images)


def test_schema_is_the_xray_schema_plus_slice(ct_set):
    out, metadata = ct_set
    assert CT_METADATA_COLUMNS == METADATA_COLUMNS + ["slice"]
    assert list(metadata.columns) == CT_METADATA_COLUMNS
    assert len(metadata) == PATIENTS * SLICES
    assert (metadata["modality"] == "CT").all()
    assert (metadata["view"] == "Axial").all()
    assert (metadata["offset"] == 0).all()
    assert (metadata["folder"] == "images").all()
    assert (metadata["mask_filename"] == "masks/" + metadata["filename"]).all()
    assert metadata["filename"].is_unique
    assert metadata.groupby("patientid")["slice"].apply(list).map(
        lambda s: s == list(range(SLICES))
    ).all()
    per_patient = metadata.groupby("patientid")["finding"].agg(["first", "nunique"])
    assert (per_patient["nunique"] == 1).all()
    assert per_patient["first"].value_counts().tolist() == [PATIENTS // 3] * 3
    from_disk = pd.read_csv(out / "metadata.csv")
    assert from_disk.astype(str).equals(metadata.astype(str))
    stamp = json.loads((out / "phantoms.json").read_text())
    assert stamp["generator"] == "covid_tutorial.ct_phantoms"
    assert stamp["lung_window"] == list(LUNG_WINDOW)
    images = sorted(p.name for p in (out / "images").iterdir())
    assert images == sorted(p.name for p in (out / "masks").iterdir())
    assert images == sorted(metadata["filename"])


def test_slices_are_uint8_and_masks_follow_the_class(volumes):
    for finding, stack, masks in volumes.values():
        assert stack.dtype == np.uint8 and stack.shape == (SLICES, SIZE, SIZE)
        assert stack.std() > 20  # a chest, not a blank
        if finding == NORMAL:
            assert not masks.any()
        else:  # every slice of a sick patient shows its lesion
            assert (masks.reshape(SLICES, -1).mean(axis=1) > 0.003).all(), finding


def test_adjacent_slices_are_far_more_alike_than_other_patients(volumes):
    stacks = [stack.astype(np.int16) for _, stack, _ in volumes.values()]
    adjacent = np.mean([np.abs(np.diff(stack, axis=0)).mean() for stack in stacks])
    between = np.mean(
        [np.abs(a[i] - b[i]).mean() for a, b in zip(stacks, stacks[1:]) for i in range(SLICES)]
    )
    assert adjacent > 0  # neighbours are not copies of one image
    assert adjacent < 0.25 * between


def _lungs(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Lung fields read off the pixels: air-dark regions that do not touch the border."""
    level, width = LUNG_WINDOW
    dark = (image < (-400 - (level - width / 2)) / width * 255).astype(np.uint8)
    count, labels = cv2.connectedComponents(dark)
    border = set(labels[0]) | set(labels[-1]) | set(labels[:, 0]) | set(labels[:, -1])
    lungs = np.isin(labels, [i for i in range(1, count) if i not in border]) | mask
    outlines, _ = cv2.findContours(
        lungs.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
    )
    filled = np.zeros(image.shape, np.uint8)  # vessels and lesions leave no holes
    cv2.drawContours(filled, outlines, -1, 1, thickness=cv2.FILLED)
    return filled > 0


def test_covid_lesions_are_bilateral_peripheral_and_posterior(volumes):
    half = SIZE // 2
    for finding, stack, masks in volumes.values():
        if finding != COVID:
            continue
        for image, mask in zip(stack, masks):
            assert mask[:, :half].any() and mask[:, half:].any()  # both lungs
            lungs = _lungs(image, mask)
            depth = cv2.distanceTransform(lungs.astype(np.uint8), cv2.DIST_L2, 3)
            # Lesions hug the pleura: much closer to the lung edge than lung on average.
            assert depth[mask].mean() < 0.65 * depth[lungs].mean()
            rows = np.nonzero(mask)[0]
            assert rows.mean() > np.nonzero(lungs)[0].mean()  # towards the back


def test_pneumonia_is_one_sided_and_sides_are_balanced(volumes):
    half = SIZE // 2
    sides = []
    for finding, _, masks in volumes.values():
        if finding == PNEUMONIA:
            left, right = masks[..., :half].sum(), masks[..., half:].sum()
            assert min(left, right) < 0.05 * max(left, right)
            sides.append(left > right)
    assert sum(sides) == len(sides) // 2


def test_the_loader_reads_one_patient_id_per_patient(ct_set):
    out, metadata = ct_set
    table = load_dataset(out)
    assert len(table) == PATIENTS * SLICES
    assert table["patient_id"].nunique() == PATIENTS
    assert (table.groupby("patient_id").size() == SLICES).all()
    assert set(table["label"]) == {"COVID-19", "Pneumonia", "Normal"}
    assert (table["modality"] == "CT").all()
    assert table["mask_path"].map(lambda p: Path(p).is_file()).all()


def test_refuses_a_foreign_folder_and_touches_nothing(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "scan.png").write_bytes(b"not ours")
    with pytest.raises(DataError, match="not written by generate_ct_phantoms"):
        generate_ct_phantoms(foreign, 3, 2, 32, progress=False)
    assert [p.name for p in foreign.iterdir()] == ["scan.png"]
    xray = tmp_path / "xray"
    generate_phantoms(xray, patients=3, size=32, progress=False)
    before = file_hashes(xray)
    with pytest.raises(DataError):
        generate_ct_phantoms(xray, 3, 2, 32, progress=False)
    assert file_hashes(xray) == before


def test_replaces_its_own_earlier_set_but_not_files_added_to_it(tmp_path):
    out = tmp_path / "ct"
    generate_ct_phantoms(out, 6, 4, 32, progress=False)
    smaller = generate_ct_phantoms(out, 3, 2, 32, progress=False)
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(smaller["filename"])
    (out / "images" / "note.txt").write_text("mine")
    with pytest.raises(DataError, match="other files"):
        generate_ct_phantoms(out, 3, 2, 32, progress=False)
    assert (out / "images" / "note.txt").read_text() == "mine"


def test_measured_figures(ct_set):
    out, _ = ct_set
    figures = measure_ct_phantoms(out)["value"]
    assert figures["patients"] == PATIENTS
    assert figures["ratio adjacent / two patients"] < 0.25
    assert figures[f"lesion area, % of the image: {NORMAL}"] == 0
    assert figures["COVID-19 slices with lesions in both lungs, %"] == 100


@pytest.mark.parametrize("bad", [dict(patients=0), dict(slices=0), dict(size=16)])
def test_rejects_bad_arguments(tmp_path, bad):
    arguments = dict(patients=3, slices=2, size=32) | bad
    with pytest.raises(DataError):
        generate_ct_phantoms(tmp_path / "x", progress=False, **arguments)


def test_the_xray_generator_refuses_a_ct_set(tmp_path):
    out = tmp_path / "ct"
    generate_ct_phantoms(out, 3, 2, 32, progress=False)
    before = file_hashes(out)
    with pytest.raises(DataError):
        generate_phantoms(out, patients=3, size=32, progress=False)
    assert file_hashes(out) == before
