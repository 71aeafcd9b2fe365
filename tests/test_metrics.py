import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from covid_tutorial import metrics
from covid_tutorial.metrics import (
    classification_metrics,
    metrics_to_json,
    metrics_wide,
    summarize_folds,
)

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


def _results(values_a, values_b, n_test=10, n_train=30):
    rows = []
    for model, values in (("A", values_a), ("B", values_b)):
        for j, value in enumerate(values):
            rows.append({"model": model, "repeat": j // 2, "fold": j % 2, "n_test_images": n_test,
                         "n_train_images": n_train, "params": 1, "latency_ms": 1.0, "images_per_s": 1.0,
                         "image_size": 32, "device": "test", "macro|f1": value, "COVID-19|f1": value / 2})  # fmt: skip
    return pd.DataFrame(rows)


def _logit_interval_by_hand(mean, se, t):
    centre, half = math.log(mean / (1 - mean)), t * se / (mean * (1 - mean))
    return 1 / (1 + math.exp(-(centre - half))), 1 / (1 + math.exp(-(centre + half)))


def test_summary_ci_equals_a_hand_computation():
    a = [0.70, 0.80, 0.75, 0.85]
    summary = metrics.summarize_results(_results(a, [0.5, 0.6, 0.55, 0.65]))
    row = summary[(summary["model"] == "A") & (summary["class"] == "macro") & (summary["metric"] == "f1")].iloc[0]
    mean = (0.70 + 0.80 + 0.75 + 0.85) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in a) / 3)
    t = 3.182446305284263  # t(0.975, 3 degrees of freedom), from a printed table
    assert row["k"] == 4 and row["mean"] == pytest.approx(0.775)
    low, high = _logit_interval_by_hand(mean, sd / 2, t)  # on the logit scale, then back
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    low, high = _logit_interval_by_hand(mean, sd * math.sqrt(1 / 4 + 10 / 30), t)
    assert (row["ci_low_corrected"], row["ci_high_corrected"]) == (pytest.approx(low), pytest.approx(high))
    assert row["ci_low_corrected"] < row["ci_low"] < mean < row["ci_high"] < row["ci_high_corrected"]
    assert "logit" in summary.attrs["interval_method"]
    per_class = summary[(summary["model"] == "A") & (summary["class"] == "COVID-19")]
    assert per_class["mean"].iloc[0] == pytest.approx(mean / 2), "per-class rows sit next to the macro ones"


def test_summary_intervals_stay_within_zero_and_one_with_few_rounds():
    # two rounds far apart: mean +- t(1) * se would be about [-2.3, 2.7]; the logit interval stays inside [0, 1]
    summary = metrics.summarize_results(_results([0.05, 0.95], [1.0, 1.0]))
    f1 = summary[summary["metric"] == "f1"]
    assert ((f1["ci_low_corrected"] >= 0) & (f1["ci_high_corrected"] <= 1)).all()
    assert ((f1["ci_low"] >= 0) & (f1["ci_high"] <= 1)).all()
    wide = f1[(f1["model"] == "A") & (f1["class"] == "macro")].iloc[0]
    assert wide["ci_low_corrected"] < 0.05 and wide["ci_high_corrected"] > 0.95
    perfect = f1[(f1["model"] == "B") & (f1["class"] == "macro")].iloc[0]  # every round 1.0: no spread
    assert perfect["wilson"] and perfect["ci_high_corrected"] == 1.0 > perfect["ci_low_corrected"], "never zero width"


def test_logit_interval_edge_cases():
    low, high = metrics.logit_interval([0.5, 0.0, 0.3], [0.0, 0.0, float("nan")], [2.0, 2.0, 2.0])
    assert list(low[:2]) == [0.5, 0.0] and list(high[:2]) == [0.5, 0.0]
    assert math.isnan(low[2]) and math.isnan(high[2]), "one round: no interval"


def test_corrected_resampled_ttest_equals_a_hand_computation():
    a = [0.80, 0.82, 0.79, 0.85, 0.81, 0.84]
    b = [0.78, 0.80, 0.80, 0.81, 0.79, 0.80]
    d = [x - y for x, y in zip(a, b)]  # 0.02, 0.02, -0.01, 0.04, 0.02, 0.04
    J, ratio = 6, 1 / 4  # 5-fold: each test fold is a quarter of its training folds
    mean = sum(d) / J
    variance = sum((x - mean) ** 2 for x in d) / (J - 1)
    t = mean / math.sqrt((1 / J + ratio) * variance)
    result = metrics.corrected_resampled_ttest(a, b, ratio)
    assert result["rounds"] == 6 and result["df"] == 5
    assert result["mean_difference"] == pytest.approx(0.13 / 6)
    assert result["t"] == pytest.approx(t)
    assert result["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), 5))
    half = 2.570581835636314 * math.sqrt((1 / J + ratio) * variance)  # t(0.975, 5), from a printed table
    assert (result["ci_low"], result["ci_high"]) == (pytest.approx(mean - half), pytest.approx(mean + half))
    naive = stats.ttest_rel(a, b)  # without the correction it is the ordinary paired t-test
    assert result["t_naive"] == pytest.approx(naive.statistic) and result["p_naive"] == pytest.approx(naive.pvalue)
    assert result["p_value"] > result["p_naive"], "the correction makes the test more cautious"


def test_corrected_ttest_edge_cases():
    assert metrics.corrected_resampled_ttest([0.5, 0.5], [0.5, 0.5], 0.25)["p_value"] == 1.0
    assert metrics.corrected_resampled_ttest([0.6, 0.6], [0.5, 0.5], 0.25)["p_value"] == 0.0
    assert np.isnan(metrics.corrected_resampled_ttest([0.6], [0.5], 0.25)["t"])


def test_paired_tests_pick_the_leaders_and_use_the_shared_rounds():
    results = _results([0.80, 0.82, 0.79, 0.85], [0.78, 0.80, 0.80, 0.81])
    results = pd.concat([results, _results([0.1] * 4, [0.1] * 4).replace({"model": {"A": "C", "B": "D"}})])
    tests = metrics.paired_tests(results, leaders=2)
    assert len(tests) == 1 and tests.iloc[0][["model_a", "model_b"]].tolist() == ["A", "B"]
    expected = metrics.corrected_resampled_ttest([0.80, 0.82, 0.79, 0.85], [0.78, 0.80, 0.80, 0.81], 10 / 30)
    assert tests.iloc[0]["t"] == pytest.approx(expected["t"]) and tests.iloc[0]["p_holm"] == pytest.approx(expected["p_value"])


def test_holm_and_pareto_front_by_hand():
    np.testing.assert_allclose(metrics.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    front = metrics.pareto_front(cost=[1, 2, 3, 4, 2], score=[0.5, 0.7, 0.6, 0.9, 0.7])
    assert front.tolist() == [True, True, False, True, True]


def test_a_class_absent_from_the_data_is_said_so_and_left_out_of_the_macro_average():
    # A three-class model scored on a collection without Normal images (a cross-source check).
    y_true = np.array([0, 0, 0, 2, 2, 2])
    y_prob = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3],
                       [0.1, 0.2, 0.7], [0.3, 0.1, 0.6], [0.5, 0.1, 0.4]])  # fmt: skip
    names = ["COVID-19", "Normal", "Pneumonia"]
    table = classification_metrics(y_true, y_prob, names, n_bootstrap=50)
    values = table.set_index(["class", "metric"])["value"]
    assert table.attrs["absent_classes"] == ["Normal"]
    assert values.loc["Normal"].isna().all()
    f1 = [values.loc[(name, "f1")] for name in ("COVID-19", "Pneumonia")]
    assert values.loc[("macro", "f1")] == pytest.approx(np.mean(f1))
    wide = metrics_wide(table)
    assert (wide.loc["Normal"] == "absent from these data").all()
    assert "macro (over COVID-19, Pneumonia)" in wide.index
    complete = classification_metrics(np.array([0, 1, 2]), np.eye(3), names, n_bootstrap=0)
    assert complete.attrs["absent_classes"] == [] and "macro" in metrics_wide(complete).index


def _random_predictions(seed: int, n: int = 200):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 3, n)
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), y_true] += 1.0
    return y_true, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def test_threshold_sweep_equals_operating_point_and_a_confusion_matrix_at_random_thresholds():
    from sklearn.metrics import confusion_matrix

    from covid_tutorial.metrics import decide, operating_point, threshold_sweep

    y_true, probabilities = _random_predictions(seed=1)
    rng = np.random.default_rng(2)
    # scores themselves (ties: p >= t counts the image), random values, the ends, and no threshold
    thresholds = np.concatenate([rng.choice(probabilities[:, 0], 5), rng.uniform(0, 1, 5), [0.0, 1.0, np.inf]])
    sweep = threshold_sweep(y_true, probabilities, CLASSES, thresholds=thresholds)
    assert list(sweep["threshold"]) == list(thresholds)
    for row in sweep.itertuples():
        rule = None if np.isinf(row.threshold) else row.threshold
        said = decide(probabilities, CLASSES, threshold=rule) == 0
        (tn, fp), (fn, tp) = confusion_matrix(y_true == 0, said, labels=[False, True])
        assert (row.tp, row.fn, row.tn, row.fp) == (tp, fn, tn, fp)
        point = operating_point(y_true, probabilities, CLASSES, threshold=rule, n_bootstrap=0)
        point = point.set_index("metric")["value"]
        for metric in ("sensitivity", "specificity", "precision", "npv"):
            assert getattr(row, metric) == pytest.approx(point[metric], nan_ok=True)


def test_threshold_sweep_by_default_covers_every_score_and_one_equals_the_most_probable_class():
    from covid_tutorial.metrics import threshold_sweep

    y_true, probabilities = _random_predictions(seed=3, n=60)
    sweep = threshold_sweep(y_true, probabilities, CLASSES, positive="Pneumonia")
    assert list(sweep["threshold"]) == sorted({0.0, 1.0, *probabilities[:, 2]})
    assert sweep["sensitivity"].iloc[0] == 1 and sweep["specificity"].iloc[0] == 0  # t = 0: every image positive
    assert sweep["sensitivity"].is_monotonic_decreasing and sweep["specificity"].is_monotonic_increasing
    most_probable = threshold_sweep(y_true, probabilities, CLASSES, positive="Pneumonia", thresholds=[np.inf])
    columns = ["sensitivity", "specificity", "precision", "npv", "tp", "fn", "tn", "fp"]
    assert sweep[columns].iloc[-1].tolist() == most_probable[columns].iloc[0].tolist()
    # a threshold only adds positives: the most probable class finds some even at t = 1
    assert most_probable["tp"].iloc[0] > 0


def test_threshold_sweep_leaves_rates_without_images_undefined():
    from covid_tutorial.metrics import threshold_sweep

    probabilities = np.array([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    sweep = threshold_sweep([1, 2], probabilities, CLASSES, thresholds=[0.5])
    assert np.isnan(sweep["sensitivity"].iloc[0]) and np.isnan(sweep["precision"].iloc[0])
    assert sweep["specificity"].iloc[0] == 1 and sweep["npv"].iloc[0] == 1


def test_a_perfect_score_gets_a_wilson_interval_over_its_patients_not_zero_width():
    classes = ["COVID-19", "Normal", "Pneumonia"]
    y_true = np.repeat([0, 1, 2], 10)
    groups = np.repeat(np.arange(15), 2)  # two images per patient, five patients per class
    table = metrics.classification_metrics(y_true, np.eye(3)[y_true] * 0.9 + 0.05, classes, groups, n_bootstrap=100)
    assert (table["ci_high"] - table["ci_low"] > 0.1).all(), "an interval of (almost) zero width"
    z2 = 1.959963984540054**2  # Wilson's lower bound at a proportion of 1 is n / (n + z^2)
    row = table.set_index(["class", "metric"])
    assert row.loc[("COVID-19", "sensitivity"), "ci_low"] == pytest.approx(5 / (5 + z2))  # its 5 patients
    assert row.loc[("COVID-19", "specificity"), "ci_low"] == pytest.approx(10 / (10 + z2))  # the 10 others
    assert row.loc[("macro", "accuracy"), "ci_low"] == pytest.approx(15 / (15 + z2))
    assert (table["ci_high"] == 1).all()
    assert len(table.attrs["wilson"]) == 24 and "Normal/precision" in table.attrs["wilson"]


def test_a_score_of_zero_gets_a_wilson_interval_and_a_spread_score_keeps_its_bootstrap():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, 200)
    y_prob = np.column_stack([0.4 * rng.random(200), 0.5 + 0.5 * rng.random(200)])  # class 0 is never predicted:
    # its sensitivity is 0 on every resample, while the accuracy (the share of class 1) varies
    table = metrics.classification_metrics(y_true, y_prob, ["COVID-19", "Normal"], n_bootstrap=200)
    row = table.set_index(["class", "metric"])
    positives = int((y_true == 0).sum())
    z2 = 1.959963984540054**2
    assert row.loc[("COVID-19", "sensitivity"), "value"] == 0
    assert row.loc[("COVID-19", "sensitivity"), "ci_low"] == 0
    assert row.loc[("COVID-19", "sensitivity"), "ci_high"] == pytest.approx(z2 / (positives + z2))
    low, high, _ = metrics.patient_bootstrap(
        lambda rows: (y_prob[rows].argmax(1) == y_true[rows]).mean(), 200, n_bootstrap=200, seed=0
    )
    assert (row.loc[("macro", "accuracy"), "ci_low"], row.loc[("macro", "accuracy"), "ci_high"]) == pytest.approx((low, high))
    assert "macro/accuracy" not in table.attrs["wilson"]


def test_rounds_that_agree_exactly_get_a_wilson_interval_not_zero_width():
    rows = [{"model": "A", "repeat": r, "fold": k, "n_test_images": 60, "n_train_images": 60,
             "COVID-19|sensitivity": 1.0, "Normal|sensitivity": 0.8 + 0.05 * k, "macro|f1": 0.9}
            for r in range(2) for k in range(2)]  # fmt: skip
    summary = metrics.summarize_results(pd.DataFrame(rows)).set_index(["class", "metric"])
    perfect = summary.loc[("COVID-19", "sensitivity")]
    expected = stats.binomtest(30, 30).proportion_ci(method="wilson")  # 60 images, 2 classes: 30 per class
    assert perfect["wilson"] and perfect["ci_high"] == 1.0
    assert perfect["ci_low"] == pytest.approx(expected.low) and perfect["ci_low"] < 0.95
    varied = summary.loc[("Normal", "sensitivity")]
    assert not varied["wilson"] and varied["ci_low"] < varied["mean"] < varied["ci_high"]
    assert (summary["ci_high"] - summary["ci_low"] > 0).all() and "Wilson" in summary.attrs["interval_method"]
