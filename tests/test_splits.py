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
