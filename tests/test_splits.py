import numpy as np
import pandas as pd
import pytest

from covid_tutorial.errors import DataError, DataWarning
from covid_tutorial.data.splits import patient_folds, split_by_publisher


def _table(patients_per_class, publisher=None, ids=True):
    rows = []
    for label, n in patients_per_class.items():
        for p in range(n):
            for image in range(2):
                split = publisher(p) if publisher else None
                pid = f"{label}-{p}" if ids else f"image-{len(rows):06d}"
                rows.append({"path": f"{label}{p}_{image}.png", "label": label, "patient_id": pid, "publisher_split": split})
    return pd.DataFrame(rows)


def test_fewer_patients_than_folds_names_the_class_and_its_count():
    table = _table({"COVID-19": 6, "Normal": 2})
    with pytest.raises(DataError, match=r"class 'Normal' has 2 patient\(s\), fewer patients than folds"):
        patient_folds(table, folds=5)


def test_publisher_split_makes_val_from_train_patients():
    table = _table({"COVID-19": 10, "Normal": 10}, publisher=lambda p: "test" if p < 3 else "train")
    split = split_by_publisher(table, seed=0)
    assert set(split["split"]) == {"train", "val", "test"}
    assert (split.loc[split["publisher_split"] == "test", "split"] == "test").all()
    assert (split.groupby("patient_id")["split"].nunique() == 1).all(), "val is whole patients"
    assert set(split.loc[split["split"] == "val", "label"]) == {"COVID-19", "Normal"}
    again = split_by_publisher(table, seed=0)
    assert split["split"].tolist() == again["split"].tolist()


def test_publisher_val_is_kept_and_missing_ids_are_warned():
    splits = {0: "val", 1: "test"}
    table = _table({"COVID-19": 4, "Normal": 4}, publisher=lambda p: splits.get(p, "train"), ids=False)
    with pytest.warns(DataWarning, match="without patient ids"):
        split = split_by_publisher(table)
    assert (split["split"] == split["publisher_split"]).all()


def test_publisher_split_that_leaks_patients_is_warned_and_none_is_an_error():
    table = _table({"COVID-19": 4, "Normal": 4}, publisher=lambda p: "train")
    table.loc[0, "publisher_split"] = "test"  # one image of patient COVID-19-0 on the test side
    with pytest.warns(DataWarning, match="1 patient"):
        split_by_publisher(table)
    with pytest.raises(DataError, match="--split patient"):
        split_by_publisher(table.drop(columns="publisher_split"))


def test_leakage_rounds_are_the_same_with_and_without_the_distance_table(monkeypatch):
    """The fast path (all distances computed once) finds the neighbours scikit-learn finds."""
    from covid_tutorial.data import splits

    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 3)
    labels = np.repeat(rng.integers(0, 3, 40), 3)
    features = rng.normal(size=(40, 16))[groups] + 0.3 * rng.normal(size=(120, 16))  # 3 alike images a patient
    fast = splits.measure_split_leakage(features, labels, groups, rounds=5)
    monkeypatch.setattr(splits, "_PRECOMPUTED_MAX", 0)
    slow = splits.measure_split_leakage(features, labels, groups, rounds=5)
    pd.testing.assert_frame_equal(fast, slow)
    assert (fast["image-wise split"] > fast["patient-wise split"]).all(), "alike images of a patient leak"


def test_summarize_leakage_gives_the_means_and_the_leak_with_t_intervals_over_rounds():
    from scipy import stats

    from covid_tutorial.data.splits import summarize_leakage

    scores = pd.DataFrame({"image-wise split": [0.8, 0.7, 0.9, 0.6], "patient-wise split": [0.6, 0.5, 0.7, 0.6]})
    summary = summarize_leakage(scores)
    assert list(summary.index) == ["image-wise split", "patient-wise split", "leak"]
    leak = np.array([0.2, 0.2, 0.2, 0.0])
    half = stats.t.ppf(0.975, 3) * leak.std(ddof=1) / 2
    assert summary.loc["leak", "mean"] == pytest.approx(0.15)
    assert summary.loc["image-wise split", "mean"] == pytest.approx(0.75)
    assert summary.loc["patient-wise split", "mean"] == pytest.approx(0.6)
    assert summary.loc["leak", "ci_low"] == pytest.approx(0.15 - half)
    assert summary.loc["leak", "ci_high"] == pytest.approx(0.15 + half)
    assert summary.loc["leak", "sd"] == pytest.approx(leak.std(ddof=1)) and (summary["rounds"] == 4).all()
    narrower = summarize_leakage(scores, confidence=0.5).loc["leak"]
    assert summary.loc["leak", "ci_low"] < narrower["ci_low"] < narrower["ci_high"] < summary.loc["leak", "ci_high"]


def test_rounds_that_all_agree_get_a_wilson_interval_over_the_tested_patients():
    from scipy import stats

    from covid_tutorial.data.splits import summarize_leakage

    scores = pd.DataFrame({"image-wise split": [1.0, 1.0, 1.0], "patient-wise split": [0.3, 0.4, 0.35]})
    scores.attrs["test_patients"] = 20
    summary = summarize_leakage(scores)
    wilson = stats.binomtest(20, 20).proportion_ci(0.95, method="wilson")
    assert summary.loc["image-wise split", ["ci_low", "ci_high"]].tolist() == pytest.approx([wilson.low, 1.0])
    assert summary.loc["image-wise split", "ci_low"] < 1.0, "never an interval of zero width"
    assert summary["wilson"].tolist() == [True, False, False]
    same = summarize_leakage(pd.DataFrame({"image-wise split": [1.0] * 3, "patient-wise split": [1.0] * 3}).pipe(
        lambda frame: frame.attrs.update(test_patients=20) or frame))
    assert same.loc["leak", "ci_low"] < 0 < same.loc["leak", "ci_high"], "no spread in the leak either: widened"


def test_measure_split_leakage_records_the_fewest_patients_a_round_tests():
    from covid_tutorial.data.splits import measure_split_leakage

    groups = np.repeat(np.arange(20), 2)
    scores = measure_split_leakage(np.arange(40.0)[:, None], groups % 2, groups, rounds=3, test_size=0.3)
    assert scores.attrs["test_patients"] == 6


def test_the_leakage_sentence_follows_the_interval():
    from covid_tutorial.data.splits import describe_leakage, summarize_leakage

    def said(image_wise, patient_wise):
        return describe_leakage(summarize_leakage(pd.DataFrame(
            {"image-wise split": image_wise, "patient-wise split": patient_wise})))

    assert "stands clear" in said([0.80, 0.81, 0.79], [0.6, 0.6, 0.6])
    assert "includes 0" in said([0.7, 0.5, 0.6], [0.6, 0.6, 0.6])
    assert "patient-wise split scores higher" in said([0.40, 0.41, 0.39], [0.6, 0.6, 0.6])
    assert "over 3 rounds" in said([0.80, 0.81, 0.79], [0.6, 0.6, 0.6])


def test_summarize_leakage_refuses_a_table_that_is_not_leakage_rounds():
    from covid_tutorial.data.splits import summarize_leakage

    with pytest.raises(DataError, match="measure_split_leakage"):
        summarize_leakage(pd.DataFrame({"accuracy": [0.5]}))
