"""Patient-wise splits: no patient's images on both sides of a split.

:func:`split_by_patient` (train, validation, test), :func:`split_by_publisher` (the
publisher's own train/val/test folders or arrays), :func:`patient_folds` (stratified
patient-grouped k-fold), :func:`comparison_folds` (the same, repeated with new seeds, as
the comparison protocol uses them) and :func:`validation_rows`, all through
scikit-learn's ``GroupShuffleSplit`` and ``StratifiedGroupKFold``.
:func:`check_patient_disjoint` and :func:`shared_patients` verify a split;
:func:`measure_split_leakage` measures what an image-wise split would cost (notebook 03).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from ..errors import DataError, DataWarning
from .table import generated_patient_ids

__all__ = [
    "check_patient_disjoint",
    "patient_folds",
    "split_by_patient",
    "split_by_publisher",
    "measure_split_leakage",
    "VALIDATION_FRACTION",
    "comparison_folds",
    "shared_patients",
    "validation_rows",
    "partition_counts",
]


def check_patient_disjoint(table: pd.DataFrame, column: str = "split") -> None:
    """Raise :class:`DataError` if any patient has images in two partitions of ``column``."""
    partitions = table.groupby("patient_id")[column].nunique()
    shared = partitions[partitions > 1].index.tolist()
    if shared:
        raise DataError(
            f"{len(shared)} patient(s) appear in more than one {column}: {shared[:5]}. "
            "That leaks patients between training and test data; split by patient."
        )


def _grouped_folds(table: pd.DataFrame, folds: int, seed: int, what_to_do: str | None = None) -> np.ndarray:
    per_class_patients = table.groupby("label")["patient_id"].nunique()
    too_few = per_class_patients[per_class_patients < folds]
    if not too_few.empty:
        counts = ", ".join(f"class {label!r} has {n} patient(s)" for label, n in too_few.items())
        raise DataError(
            f"cannot make {folds} patient-wise folds: {counts}, fewer patients than folds. "
            + (what_to_do or f"Use fewer folds (at most {int(per_class_patients.min())} here) or more data.")
        )
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold = np.empty(len(table), dtype=int)
    for k, (_, test_rows) in enumerate(splitter.split(table, table["label"], table["patient_id"])):
        fold[test_rows] = k
    return fold


def patient_folds(table: pd.DataFrame, folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """Add a ``fold`` column: stratified, patient-grouped k-fold (scikit-learn), seeded."""
    table = table.reset_index(drop=True).copy()
    table["fold"] = _grouped_folds(table, folds, seed)
    check_patient_disjoint(table, "fold")
    return table


def split_by_patient(
    table: pd.DataFrame, val_size: float = 0.2, test_size: float = 0.2, seed: int = 0
) -> pd.DataFrame:
    """Add a ``split`` column (train/val/test) with every patient in exactly one partition.

    Both cuts use StratifiedGroupKFold, so class proportions stay close in each partition;
    the sizes are rounded to whole folds (0.2 means one fold in five).
    """
    table = table.reset_index(drop=True).copy()
    shares = (
        f"A test share of {test_size} and a validation share of {val_size} need at least "
        f"{max(2, round(1 / test_size))} and {max(2, round((1 - test_size) / val_size))} patients per class. "
        "Give larger shares (--test-size 0.34 --val-size 0.5 with 3 patients per class) or more data."
    )
    test_fold = _grouped_folds(table, max(2, round(1 / test_size)), seed, shares) == 0
    table["split"] = np.where(test_fold, "test", "train")
    rest = table[~test_fold]
    val_folds = max(2, round((1 - test_size) / val_size))
    val_fold = _grouped_folds(rest, val_folds, seed + 1, shares) == 0
    table.loc[rest.index[val_fold], "split"] = "val"
    check_patient_disjoint(table, "split")
    return table


def split_by_publisher(table: pd.DataFrame, val_size: float = 0.15, seed: int = 0) -> pd.DataFrame:
    """Add a ``split`` column (train/val/test) from the publisher's own ``publisher_split``.

    When the publisher made no validation split, about ``val_size`` of the training
    patients become ``val`` (patient-grouped, stratified, seeded). Warns when the images
    have no patient ids (the publisher's split may then hold one patient on both sides)
    and when a patient sits in two of the publisher's splits.
    """
    if "publisher_split" not in table:
        raise DataError(
            "this dataset has no publisher split (no train/val/test folders or arrays): "
            "split it by patient instead (--split patient)."
        )
    table = table.reset_index(drop=True).copy()
    table["split"] = table["publisher_split"].astype(str)
    for needed in ("train", "test"):
        if not (table["split"] == needed).any():
            raise DataError(
                f"the publisher's split has no {needed!r} part (found {sorted(table['split'].unique())}): "
                "split it by patient instead (--split patient)."
            )
    if generated_patient_ids(table).all():
        warnings.warn(
            "the publisher's split is used on images without patient ids: nothing shows whether one "
            "patient's images sit in both training and test data, which would inflate every score.",
            DataWarning,
            stacklevel=2,
        )
    else:
        shared = shared_patients(table["split"], table["patient_id"])
        if shared:
            warnings.warn(
                f"{len(shared)} patient(s) sit in more than one of the publisher's splits, e.g. "
                f"{shared[:3]}: the publisher's split leaks patients; split by patient instead (--split patient).",
                DataWarning,
                stacklevel=2,
            )
    if not (table["split"] == "val").any():
        train = table[table["split"] == "train"]
        in_val = validation_rows(train, seed, fraction=val_size)
        table.loc[train.index[in_val], "split"] = "val"
    return table


def measure_split_leakage(features, labels, groups, rounds: int = 10, test_size: float = 0.3) -> pd.DataFrame:
    """Macro F1 of a 1-nearest-neighbour classifier under an image-wise and a patient-wise split.

    1-NN is the simplest model that can memorise: under an image-wise split it finds the
    same patient's other image in the training set. The gap between the two columns is
    what leakage adds. Each round uses a new random split of the same size for both.
    """
    from sklearn.metrics import f1_score
    from sklearn.model_selection import GroupShuffleSplit, StratifiedShuffleSplit
    from sklearn.neighbors import KNeighborsClassifier

    features, labels, groups = np.asarray(features), np.asarray(labels), np.asarray(groups)

    def score(train, test):
        model = KNeighborsClassifier(n_neighbors=1).fit(features[train], labels[train])
        return f1_score(labels[test], model.predict(features[test]), average="macro")

    rows = []
    for r in range(rounds):
        image_wise = StratifiedShuffleSplit(1, test_size=test_size, random_state=r).split(features, labels)
        patient_wise = GroupShuffleSplit(1, test_size=test_size, random_state=r).split(features, labels, groups)
        rows.append({"round": r, "image-wise split": score(*next(image_wise)), "patient-wise split": score(*next(patient_wise))})
    return pd.DataFrame(rows).set_index("round")


VALIDATION_FRACTION = 0.15  # of each training fold's patients: the paper's 85/15 split


def comparison_folds(table: pd.DataFrame, folds: int, repeats: int, seed: int = 0) -> pd.DataFrame:
    """The table with one column ``fold_r`` per repeat r: stratified, patient-grouped k-fold.

    Repeat r uses :func:`covid_tutorial.data.patient_folds` with seed ``seed + r``; the
    folds depend on the data and the seed only, never on the model, so every model is
    trained and tested on the same patients in each round.
    """
    table = table.reset_index(drop=True).copy()
    for r in range(repeats):
        table[f"fold_{r}"] = patient_folds(table, folds=folds, seed=seed + r)["fold"].to_numpy()
    return table


def shared_patients(assignment: pd.Series, patients: pd.Series) -> list:
    """Patients whose images sit in more than one fold (must be empty)."""
    counts = pd.DataFrame({"fold": assignment, "patient_id": patients}).groupby("patient_id")["fold"].nunique()
    return counts[counts > 1].index.tolist()


def validation_rows(train_table: pd.DataFrame, seed: int, fraction: float = VALIDATION_FRACTION) -> np.ndarray:
    """A patient-grouped, stratified validation share (about ``fraction``) of a training fold."""
    per_class = int(train_table.groupby("label")["patient_id"].nunique().min())
    if per_class < 2:
        raise DataError(
            "a training fold has a class with fewer than 2 patients, so no patient-wise validation "
            "split is possible. Use fewer folds or more data."
        )
    splits = int(min(max(2, round(1 / fraction)), per_class))
    return _grouped_folds(train_table.reset_index(drop=True), splits, seed) == 0


def partition_counts(table: pd.DataFrame, column: str = "split") -> pd.DataFrame:
    """Patients and images per partition (``column``: "split" or "fold") and label."""
    counts = table.groupby([column, "label"])["patient_id"].agg(["nunique", "size"])
    counts.columns = ["patients", "images"]
    return counts.unstack(fill_value=0)
