"""Patient-wise splits: no patient's images on both sides of a split.

:func:`split_by_patient` (train, validation, test), :func:`split_by_publisher` (the
publisher's own train/val/test folders or arrays), :func:`patient_folds` (stratified
patient-grouped k-fold), :func:`comparison_folds` (the same, repeated with new seeds, as
the comparison protocol uses them) and :func:`validation_rows`, all through
scikit-learn's ``GroupShuffleSplit`` and ``StratifiedGroupKFold``.
:func:`check_patient_disjoint` and :func:`shared_patients` verify a split;
:func:`measure_split_leakage` measures what an image-wise split would cost (notebook 03), and
:func:`summarize_leakage` and :func:`describe_leakage` give the leak with its interval over the
rounds.
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
    "summarize_leakage",
    "describe_leakage",
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


_PRECOMPUTED_MAX = 5000  # images up to which measure_split_leakage keeps all distances (200 MB)


def measure_split_leakage(features, labels, groups, rounds: int = 10, test_size: float = 0.3) -> pd.DataFrame:
    """Macro F1 of a 1-nearest-neighbour classifier under an image-wise and a patient-wise split.

    1-NN is the simplest model that can memorise: under an image-wise split it finds the
    same patient's other image in the training set. The gap between the two columns is
    what leakage adds. Each round uses a new random split of the same size for both.
    Up to a few thousand images the distances between all of them are computed once, so
    that many rounds cost little; the neighbours are the same as scikit-learn's
    ``KNeighborsClassifier(n_neighbors=1)`` finds.
    """
    from sklearn.metrics import f1_score
    from sklearn.model_selection import GroupShuffleSplit, StratifiedShuffleSplit
    from sklearn.neighbors import KNeighborsClassifier

    features, labels, groups = np.asarray(features, dtype=float), np.asarray(labels), np.asarray(groups)
    features = features.reshape(len(features), -1)
    if len(features) <= _PRECOMPUTED_MAX:
        norms = np.einsum("ij,ij->i", features, features)
        distances = norms[:, None] + norms[None, :] - 2.0 * features @ features.T  # squared Euclidean

        def predict(train, test):
            return labels[train][distances[np.ix_(test, train)].argmin(axis=1)]
    else:
        def predict(train, test):
            model = KNeighborsClassifier(n_neighbors=1, algorithm="brute").fit(features[train], labels[train])
            return model.predict(features[test])

    def score(train, test):
        return f1_score(labels[test], predict(train, test), average="macro")

    rows, tested = [], []
    for r in range(rounds):
        image_wise = StratifiedShuffleSplit(1, test_size=test_size, random_state=r).split(features, labels)
        train, test = next(GroupShuffleSplit(1, test_size=test_size, random_state=r).split(features, labels, groups))
        tested.append(len(np.unique(groups[test])))
        rows.append({"round": r, "image-wise split": score(*next(image_wise)), "patient-wise split": score(train, test)})
    scores = pd.DataFrame(rows).set_index("round")
    scores.attrs["test_patients"] = min(tested, default=0)  # the fewest patients one round tested
    return scores


def summarize_leakage(scores: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """The rounds of :func:`measure_split_leakage` summed up, each with its interval over the rounds.

    Rows: the image-wise split, the patient-wise split and the leak (a round's image-wise
    score minus its patient-wise score); columns: ``mean``, a t-interval over the rounds
    (``ci_low``, ``ci_high``: mean ± t(k-1) · sd / sqrt(k)), ``sd`` from round to round and
    ``rounds``. Every round splits the *same* images anew, so an interval says how well the
    rounds pin down the average over splits of these images; it says nothing about another
    collection.

    Where every round gave the same score (an image-wise macro F1 of 1 on CT slices), the
    rounds show no spread to measure; that score gets the Wilson interval over the patients
    one round tests (``scores.attrs["test_patients"]``, docs/intervals.md) instead of an
    interval of zero width, and a leak without spread the difference of the two splits'
    intervals. ``wilson`` says which rows were widened so.
    """
    from scipy import stats

    required = ["image-wise split", "patient-wise split"]
    if not set(required) <= set(scores.columns) or len(scores) == 0:
        raise DataError(
            f"summarize_leakage needs the rounds of measure_split_leakage (columns {required}), "
            f"got {len(scores)} row(s) with columns {list(scores.columns)}."
        )
    columns = scores[required].astype(float).assign(leak=scores[required[0]] - scores[required[1]])
    rounds = len(columns)
    summary = pd.DataFrame({"mean": columns.mean(), "sd": columns.std(ddof=1) if rounds > 1 else 0.0})
    t = float(stats.t.ppf(0.5 + confidence / 2, rounds - 1)) if rounds > 1 else 0.0
    half = t * summary["sd"] / np.sqrt(rounds)
    summary["ci_low"], summary["ci_high"] = summary["mean"] - half, summary["mean"] + half
    summary["rounds"] = rounds
    summary["wilson"] = False
    patients = int(scores.attrs.get("test_patients", 0))
    for split in required:
        if summary.at[split, "ci_low"] == summary.at[split, "ci_high"] and patients > 0:
            successes = int(round(summary.at[split, "mean"] * patients))
            interval = stats.binomtest(successes, patients).proportion_ci(confidence, method="wilson")
            summary.loc[split, ["ci_low", "ci_high", "wilson"]] = [interval.low, interval.high, True]
    if summary.at["leak", "ci_low"] == summary.at["leak", "ci_high"] and summary["wilson"].any():
        image_wise, patient_wise = summary.loc[required[0]], summary.loc[required[1]]
        summary.loc["leak", ["ci_low", "ci_high", "wilson"]] = [
            image_wise["ci_low"] - patient_wise["ci_high"], image_wise["ci_high"] - patient_wise["ci_low"], True]
    return summary[["mean", "ci_low", "ci_high", "sd", "rounds", "wilson"]]


def describe_leakage(summary: pd.DataFrame, digits: int = 3) -> str:
    """One sentence on the leak of :func:`summarize_leakage`, which follows its interval."""
    leak = summary.loc["leak"]
    over = (f"every one of {int(leak['rounds'])} rounds gave the same scores: the gap of their Wilson intervals"
            if leak.get("wilson", False) else
            f"95% interval over {int(leak['rounds'])} rounds; one round's leak varies by {leak['sd']:.{digits}f}")
    numbers = (f"image-wise minus patient-wise macro F1 {leak['mean']:.{digits}f} "
               f"[{leak['ci_low']:.{digits}f}, {leak['ci_high']:.{digits}f}] ({over})")
    if leak["ci_low"] > 0:
        return numbers + ": the image-wise split scores higher, and the gap stands clear of the noise of the rounds"
    if leak["ci_high"] < 0:
        return numbers + ": the patient-wise split scores higher, so no leak shows here"
    return numbers + ": the interval includes 0, so no leak shows beyond the noise of the rounds"


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
