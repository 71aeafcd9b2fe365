import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from covid_tutorial.metrics import classification_metrics, metrics_to_json, metrics_wide, summarize_folds

CLASSES = ["COVID-19", "Normal", "Pneumonia"]


@pytest.fixture
def hand_made():
    y_true = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 0])
    y_prob = np.array(
        [[.8, .1, .1], [.6, .3, .1], [.2, .7, .1], [.1, .8, .1], [.3, .6, .1],
         [.5, .4, .1], [.1, .1, .8], [.2, .2, .6], [.1, .5, .4], [.4, .35, .25]]
    )
    return y_true, y_prob


def _value(table, cls, metric):
    return table.query("`class` == @cls and metric == @metric")["value"].item()


def test_metrics_equal_scikit_learn(hand_made):
    y_true, y_prob = hand_made
    y_pred = y_prob.argmax(1)
    table = classification_metrics(y_true, y_prob, CLASSES, n_bootstrap=0)
    for k, name in enumerate(CLASSES):
        assert _value(table, name, "sensitivity") == pytest.approx(recall_score(y_true, y_pred, labels=[k], average=None)[0])
        assert _value(table, name, "precision") == pytest.approx(precision_score(y_true, y_pred, labels=[k], average=None)[0])
        assert _value(table, name, "f1") == pytest.approx(f1_score(y_true, y_pred, labels=[k], average=None)[0])
        assert _value(table, name, "roc_auc") == pytest.approx(roc_auc_score(y_true == k, y_prob[:, k]))
        negatives = y_true != k
        assert _value(table, name, "specificity") == pytest.approx(np.mean(y_pred[negatives] != k))
    assert _value(table, "macro", "f1") == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert _value(table, "macro", "accuracy") == pytest.approx(np.mean(y_true == y_pred))
    assert _value(table, "macro", "roc_auc") == pytest.approx(roc_auc_score(y_true, y_prob, multi_class="ovr"))


def test_bootstrap_is_over_patients_not_images(hand_made):
    y_true, y_prob = hand_made
    copies = 5  # each patient imaged five times, identically
    rep_true, rep_prob = np.repeat(y_true, copies), np.repeat(y_prob, copies, axis=0)
    patients = np.repeat(np.arange(len(y_true)), copies)
    by_patient = classification_metrics(rep_true, rep_prob, CLASSES, patients, n_bootstrap=400, seed=0)
    by_image = classification_metrics(rep_true, rep_prob, CLASSES, None, n_bootstrap=400, seed=0)
    original = classification_metrics(y_true, y_prob, CLASSES, None, n_bootstrap=400, seed=0)

    def width(t):
        row = t.query("`class` == 'macro' and metric == 'accuracy'")
        return (row["ci_high"] - row["ci_low"]).item()

    assert width(by_patient) == pytest.approx(width(original), abs=0.05)
    assert width(by_image) < 0.7 * width(by_patient), "image resampling pretends to know more"
    assert by_patient.attrs["n_patients"] == 10 and by_patient.attrs["n_images"] == 50
    row = by_patient.iloc[0]
    assert row.ci_low <= row.value <= row.ci_high


def test_fold_summary_equals_hand_computation():
    per_fold = pd.DataFrame(
        {"fold": [0, 1, 2, 3], "class": "macro", "metric": "f1", "value": [0.8, 0.9, 0.85, 0.75]}
    )
    summary = summarize_folds(per_fold).iloc[0]
    values = per_fold["value"].to_numpy()
    half = stats.t.ppf(0.975, 3) * values.std(ddof=1) / 2
    assert summary["mean"] == pytest.approx(values.mean())
    assert summary["ci_low"] == pytest.approx(values.mean() - half)
    assert summary["ci_high"] == pytest.approx(values.mean() + half)


def test_tables_and_json(hand_made):
    y_true, y_prob = hand_made
    table = classification_metrics(y_true, y_prob, CLASSES, n_bootstrap=50)
    wide = metrics_wide(table)
    assert list(wide.index) == CLASSES + ["macro"] and "[" in wide.loc["macro", "f1"]
    data = metrics_to_json(table, np.eye(3, dtype=int), CLASSES)
    assert data["metrics"]["COVID-19"]["f1"]["value"] == pytest.approx(_value(table, "COVID-19", "f1"))
    assert data["confusion_matrix"][0] == [1, 0, 0]
