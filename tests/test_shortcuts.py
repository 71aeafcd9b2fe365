"""covid_tutorial.explain.shortcuts: where maps point, masking outside the lung box, accuracy per test set."""

import numpy as np
import pytest

from covid_tutorial.errors import CourseError
from covid_tutorial.explain.shortcuts import (
    accuracy_by_test_set,
    box_mask,
    energy_in_box,
    mask_outside_box,
    where_maps_point,
    write_masked_dataset,
)


def test_masking_outside_a_box_and_energy_in_the_box():
    images = np.full((1, 10, 10), 200, np.uint8)
    masked = mask_outside_box(images, (0.2, 0.8, 0.3, 0.9))
    assert masked[0, 2:8, 3:9].min() == 200 and masked[0].sum() == 200 * 36
    assert images.min() == 200  # the input is untouched
    heat = np.zeros((1, 10, 10))
    heat[0, 0, 0], heat[0, 5, 5] = 3.0, 1.0
    assert energy_in_box(heat, (0, 0.1, 0, 0.1))[0] == pytest.approx(0.75)


def test_where_maps_point_counts_peaks_and_energy_in_a_box_and_on_lesions():
    maps = np.zeros((2, 10, 10))
    maps[0, 0, 0] = 1.0  # peak in the corner box
    maps[1, 6, 6] = 1.0  # peak on the lesion
    lesions = np.zeros((2, 10, 10), bool)
    lesions[:, 5:8, 5:8] = True
    result = where_maps_point(maps, lesions, (0, 0.2, 0, 0.2), n_bootstrap=50)["value"]
    assert result["peak in the box"] == 0.5 and result["peak on a lesion"] == 0.5
    assert result["energy in the box"] == pytest.approx(0.5) and result["energy on lesions"] == pytest.approx(0.5)
    assert result["box's share of the image"] == pytest.approx(0.04)
    assert result["lesions' share of the image"] == pytest.approx(0.09)
    assert box_mask((10, 20), (0, 0.5, 0.5, 1)).sum() == 50


def test_where_maps_point_gives_intervals_over_patients_and_wilson_where_all_agree():
    from scipy import stats

    maps = np.zeros((6, 10, 10))
    maps[:, 0, 0] = 1.0  # every peak in the corner box
    maps[:3, 6, 6] = 0.5  # half the maps also touch the lesion, more weakly
    lesions = np.zeros((6, 10, 10), bool)
    lesions[:, 5:8, 5:8] = True
    table = where_maps_point(maps, lesions, (0, 0.2, 0, 0.2), patients=[0, 0, 1, 1, 2, 2], n_bootstrap=200)
    assert table.attrs == {"n_images": 6, "n_patients": 3}
    wilson = stats.binomtest(3, 3).proportion_ci(0.95, method="wilson")
    assert table.loc["peak in the box", ["value", "ci_low", "ci_high"]].tolist() == pytest.approx([1.0, wilson.low, 1.0])
    assert table.loc["peak on a lesion", "ci_low"] == 0 < table.loc["peak on a lesion", "ci_high"] < 1
    energy = table.loc["energy on lesions"]
    assert energy["ci_low"] < energy["value"] < energy["ci_high"], "three patients who differ: a real interval"
    assert np.isnan(table.loc["box's share of the image", "ci_low"]), "exact: no interval"


def quadrant_model(images):
    """Hand-made classifier: class 0 when the top-left 4x4 quadrant of an 8x8 image is bright."""
    logit = (np.asarray(images)[:, :4, :4, 0].mean(axis=(1, 2)) - 128.0) / 32.0
    p0 = 1.0 / (1.0 + np.exp(-logit))
    return np.stack([p0, 1.0 - p0], axis=1)


def test_accuracy_by_test_set_with_a_hand_made_model():
    from covid_tutorial.explain.shortcuts import scores_wide

    bright, dark = np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8)
    bright[:4, :4] = 255
    images = np.stack([bright, bright, dark, dark])
    table = accuracy_by_test_set(quadrant_model, {"set": (images, ["A", "B", "B", "B"], ["p", "q", "r", "s"]),
                                                  "no ids": (images[:3], ["A", "B", "B"])}, ["A", "B"], n_bootstrap=200)
    assert table.loc[("set", "accuracy"), "value"] == pytest.approx(3 / 4)
    assert table.loc[("set", "recall A"), "value"] == 1.0 and table.loc[("set", "recall B"), "value"] == pytest.approx(2 / 3)
    assert table.loc[("set", "recall A"), "ci_low"] < 1.0, "a recall of 1 on one patient: Wilson, not [1, 1]"
    assert table.loc[("set", "accuracy"), "patients"] == 4 and table.loc[("no ids", "accuracy"), "images"] == 3
    wide = scores_wide(table)
    assert wide.index.tolist() == ["set", "no ids"] and wide.columns.tolist() == [
        "images", "patients", "accuracy", "recall A", "recall B"]
    assert wide.loc["set", "accuracy"].startswith("0.75 [")


def test_write_masked_dataset_masks_images_and_keeps_the_rest(tmp_path):
    from covid_tutorial.data.table import load_dataset
    from covid_tutorial.data.images import read_image
    from covid_tutorial.data.phantoms import generate_phantoms

    source = tmp_path / "source"
    generate_phantoms(source, patients=3, size=40, seed=0, marker_class="COVID-19", progress=False)
    out = write_masked_dataset(source, tmp_path / "masked", (0.25, 1.0, 0.0, 1.0))
    original, masked = load_dataset(source), load_dataset(out)
    assert len(masked) == len(original) and list(masked["label"]) == list(original["label"])
    image, copy = read_image(original["path"][0]), read_image(masked["path"][0])
    assert copy[:10].max() == 0 and np.array_equal(copy[10:], image[10:])
    assert sorted(p.name for p in (out / "masks").iterdir()) == sorted(p.name for p in (source / "masks").iterdir())
    with pytest.raises(CourseError, match="never writes"):
        write_masked_dataset(source, source / "inside", (0, 1, 0, 1))


def test_the_sentences_follow_the_intervals():
    import pandas as pd

    from covid_tutorial.explain.shortcuts import describe_change, describe_pointing

    def pointing(box, lesion, share):
        rows = {"peak in the box": box, "peak on a lesion": lesion, "energy in the box": (0.2, 0.1, 0.3),
                "energy on lesions": (0.1, 0.0, 0.2), "box's share of the image": (0.02, np.nan, np.nan),
                "lesions' share of the image": share}
        return pd.DataFrame(rows, index=["value", "ci_low", "ci_high"]).T

    said = describe_pointing(pointing((1.0, 0.8, 1.0), (0.0, 0.0, 0.15), (0.05, 0.04, 0.06)))
    assert "more often than chance, the maps point at the box" in said[0] and "not clearly more often" in said[1]
    said = describe_pointing(pointing((0.0, 0.0, 0.15), (0.6, 0.4, 0.8), (0.05, 0.04, 0.06)))
    assert "not more often than chance" in said[0] and "the maps point at the lesions" in said[1]

    index = pd.MultiIndex.from_product([["same", "other"], ["accuracy", "recall A"]], names=["test_set", "score"])
    table = pd.DataFrame({"value": [0.9, 1.0, 0.5, 0.95], "ci_low": [0.8, 0.9, 0.4, 0.85],
                          "ci_high": [0.95, 1.0, 0.6, 1.0]}, index=index)
    said = describe_change(table, "same", "other")
    assert said[0].startswith("accuracy:") and "lower, beyond both intervals" in said[0]
    assert "no clear change" in said[1]
    assert "higher, beyond both intervals" in describe_change(table, "other", "same")[0]


# --- across collections (notebook 09): the network's scores beside the files alone


def _fake_run(folder, table, classes):
    """A RUN folder holding only what the cross-collection functions read: config.json and splits.csv."""
    from covid_tutorial import __version__
    from covid_tutorial.models import get_backbone
    from covid_tutorial.runs import RunConfig, TrainingSettings, write_run_config

    folder.mkdir(parents=True)
    training = TrainingSettings.resolve("ci", backbone=get_backbone("mobilenetv2"), image_size=32)
    write_run_config(folder, RunConfig(class_names=tuple(classes), backbone="MobileNetV2", image_size=32,
                                       preprocessing="torch", training=training, data="DATA",
                                       versions={"covid_tutorial": __version__}))
    table.to_csv(folder / "splits.csv", index=False)


def _cue_collection(root, covid_suffix, n=6):
    """COVID-19 images stored as ``covid_suffix``, Normal ones as the other format: a pure file cue."""
    import cv2
    import pandas as pd

    rows = []
    for label in ("COVID-19", "Normal"):
        suffix = covid_suffix if label == "COVID-19" else {".png": ".jpeg", ".jpeg": ".png"}[covid_suffix]
        for i in range(n):
            path = root / label / f"{i}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), np.full((40, 40 + i), 90 + 5 * i, np.uint8))
            rows.append({"path": str(path), "label": label, "patient_id": f"{root.name}-{label}-{i}"})
    return pd.DataFrame(rows)


def _predictions(folder, table, predicted):
    folder.mkdir(parents=True, exist_ok=True)
    table.assign(predicted=predicted).to_csv(folder / "predictions.csv", index=False)


def test_files_alone_scored_on_the_images_evaluate_scored(tmp_path):
    from covid_tutorial.explain.shortcuts import property_baseline_scores

    classes = ("COVID-19", "Normal")
    own = _cue_collection(tmp_path / "own", ".jpeg", n=8)
    turned = _cue_collection(tmp_path / "turned", ".png")  # the cue points the other way
    own["split"] = ["train"] * 4 + ["val"] * 2 + ["test"] * 2 + ["train"] * 4 + ["val"] * 2 + ["test"] * 2
    _fake_run(tmp_path / "run", own, classes)
    held_out = own[own["split"] == "test"].drop(columns="split")
    _predictions(tmp_path / "run", held_out, held_out["label"])
    _predictions(tmp_path / "on-turned", turned, turned["label"])
    scores = property_baseline_scores(tmp_path / "run", {"held-out own": tmp_path / "run",
                                                        "all of turned": tmp_path / "on-turned"}, n_bootstrap=50)
    f1 = scores.xs("f1", level="score")["value"]
    assert f1[("file properties", "held-out own")] == 1.0  # the cue holds on its own images
    assert f1[("file properties", "all of turned")] == 0.0  # and sends every image of the other the wrong way
    assert scores.loc[("file properties", "all of turned", "f1"), "images"] == len(turned)


def _crossing_table(own_f1, other_f1, files_f1, width=0.05):
    import pandas as pd

    rows = []
    for classifier, test_set, value in (("network", "held-out a", own_f1), ("network", "all of b", other_f1),
                                        ("file properties", "held-out a", files_f1), ("file properties", "all of b", 0.2)):
        rows.append({"classifier": classifier, "test_set": test_set, "score": "f1", "value": value,
                     "ci_low": value - width, "ci_high": value + width})
    return pd.DataFrame(rows).set_index(["classifier", "test_set", "score"])


@pytest.mark.parametrize("own, other, files, expected", [
    (0.8, 0.2, 0.78, ["in 2 of 2 directions", "in 2 of 2.", "say nothing about detecting COVID-19"]),
    (0.8, 0.2, 0.4, ["in 2 of 2 directions", "in 0 of 2.", "it used more than the files"]),
    (0.8, 0.78, 0.3, ["in 0 of 2 directions", "no direction lost its score"]),
])
def test_the_verdict_follows_the_intervals(own, other, files, expected):
    from covid_tutorial.explain.shortcuts import crossing_verdict, describe_crossing

    table = _crossing_table(own, other, files)
    said = crossing_verdict({"a": table, "b": table})
    for part in expected:
        assert part in said
    first = describe_crossing(table, "held-out a", "all of b")[0]
    assert ("lower, beyond both intervals" in first) == (other + 0.05 < own - 0.05)


def test_evaluation_scores_read_metrics_json(tmp_path):
    import json

    from covid_tutorial.explain.shortcuts import evaluation_scores

    entry = {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6}
    metrics = {row: {m: entry for m in ("f1", "accuracy", "sensitivity")} for row in ("COVID-19", "macro")}
    (tmp_path / "metrics.json").write_text(json.dumps({"metrics": metrics, "n_images": 12, "n_patients": 7}))
    table = evaluation_scores({"some set": tmp_path})
    assert list(table.index.get_level_values("score")) == ["f1", "accuracy", "sensitivity COVID-19"]
    assert (table["patients"] == 7).all() and (table["value"] == 0.5).all()
