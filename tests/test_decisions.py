"""From scores to decisions: net benefit, temperature scaling, referral, subgroup audits."""

import numpy as np
import pandas as pd
import pytest

from covid_tutorial.decisions import (
    TemperatureScaling,
    calibration_change,
    decision_curve,
    group_labels,
    net_benefit,
    risk_coverage,
    subgroup_audit,
    treat_all_net_benefit,
)

CLASSES = ["COVID-19", "Normal", "Pneumonia"]


def test_net_benefit_matches_a_hand_computation_and_the_reference_lines():
    is_positive = np.array([1, 1, 0, 0, 1], bool)
    prob = np.array([0.9, 0.4, 0.6, 0.1, 0.7])
    # p_t = 0.5: treated rows 0, 2, 4 -> 2 true and 1 false positive of 5; weight 0.5 / 0.5 = 1
    # p_t = 0.2: treated rows 0, 1, 2, 4 -> 3 true, 1 false; weight 0.2 / 0.8 = 0.25
    assert net_benefit(is_positive, prob, [0.5, 0.2]) == pytest.approx([2 / 5 - 1 / 5 * 1, 3 / 5 - 1 / 5 * 0.25])
    assert treat_all_net_benefit(0.6, [0.5, 0.2]) == pytest.approx([0.6 - 0.4 * 1, 0.6 - 0.4 * 0.25])
    # treating everyone is the model that gives every case probability 1
    assert net_benefit(is_positive, np.ones(5), [0.5, 0.2]) == pytest.approx(treat_all_net_benefit(0.6, [0.5, 0.2]))
    assert net_benefit(is_positive, np.zeros(5), [0.5]) == pytest.approx([0.0])  # nobody treated


def _three_class(n=300, sharpness=2.0, seed=0, noise=1.0):
    """Labels and probabilities of a model whose logits are ``sharpness`` times the true ones."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    true_logits = rng.normal(0, noise, (n, 3))
    true_logits[np.arange(n), y] += 1.5
    logits = sharpness * true_logits
    p = np.exp(logits - logits.max(1, keepdims=True))
    return y, p / p.sum(1, keepdims=True), np.repeat(np.arange(n // 2), 2)[:n]


def test_decision_curve_has_intervals_around_the_points_and_finds_where_a_good_model_helps():
    y, p, patients = _three_class()
    curve = decision_curve(y, p, CLASSES, patients, n_bootstrap=200)
    table = curve.table.dropna()
    assert ((table.ci_low <= table.model + 1e-12) & (table.model <= table.ci_high + 1e-12)).all()
    assert (table.ci_high - table.ci_low > 0).all()  # never an interval of zero width
    assert curve.table.loc[curve.table.ci_low.isna(), "treated"].eq(0).all()  # none only where nobody is treated
    assert curve.prevalence == pytest.approx(np.mean(y == 0))
    low, high = curve.useful_range()
    assert low < 0.5 < high and "from" in str(curve)
    useless = decision_curve(y, np.full_like(p, 1 / 3), CLASSES, patients, n_bootstrap=200)
    assert useless.useful_range() is None and "not shown to help" in str(useless)


def test_temperature_scaling_fixes_an_over_confident_model_and_keeps_its_ranking():
    y_fit, p_fit, g_fit = _three_class(n=1000, seed=1, sharpness=3.0)
    y, p, patients = _three_class(n=1000, seed=2, sharpness=3.0)
    scaling = TemperatureScaling.fit(y_fit, p_fit, g_fit)
    assert 2.0 < scaling.temperature < 4.5  # the sharpening, undone
    assert scaling.log_loss_after < scaling.log_loss_before
    assert np.allclose(scaling.apply(p).sum(1), 1) and (scaling.apply(p).argmax(1) == p.argmax(1)).all()
    change = calibration_change(y, p, scaling, CLASSES, patients, n_bootstrap=200)
    assert change.ece_after[0] < change.ece_before[0] and change.difference[2] < 0
    assert abs(change.auc_after - change.auc_before) < 0.01  # three classes: the order of images may shift a little
    assert "lowers the calibration error" in str(change)
    assert TemperatureScaling.from_json(scaling.to_json()) == scaling


def test_with_two_classes_temperature_scaling_leaves_the_roc_auc_exactly_as_it_was():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 500)
    logit = 4 * (rng.normal(0, 1, 500) + 1.2 * (y == 0))  # over-confident for class 0, "COVID-19"
    p = np.column_stack([1 / (1 + np.exp(-logit)), 1 / (1 + np.exp(logit))])
    scaling = TemperatureScaling.fit(y[:250], p[:250])
    change = calibration_change(y[250:], p[250:], scaling, ["COVID-19", "Normal"], n_bootstrap=100)
    assert scaling.temperature > 1.5 and change.ece_after[0] < change.ece_before[0]
    assert change.auc_after == pytest.approx(change.auc_before, abs=1e-12)


def test_temperature_scaling_agrees_with_scikit_learn():
    calibration = pytest.importorskip("sklearn.calibration")
    from sklearn.frozen import FrozenEstimator

    import sklearn

    if tuple(int(part) for part in sklearn.__version__.split(".")[:2]) < (1, 8):
        pytest.skip("scikit-learn before 1.8 has no temperature scaling (Colab's 1.6)")
    y, p, _ = _three_class(seed=3, sharpness=2.5)

    from sklearn.base import BaseEstimator, ClassifierMixin

    class Given(ClassifierMixin, BaseEstimator):  # a fitted classifier whose probabilities are p, by row number
        def fit(self, X, y):
            self.classes_ = np.arange(3)
            return self

        def predict_proba(self, X):
            return p[np.asarray(X).ravel().astype(int)]

        def predict(self, X):
            return self.predict_proba(X).argmax(1)

    reference = calibration.CalibratedClassifierCV(FrozenEstimator(Given().fit(None, None)), method="temperature")
    reference.fit(np.arange(len(y))[:, None], y)
    beta = float(reference.calibrated_classifiers_[0].calibrators[0].beta_)
    assert TemperatureScaling.fit(y, p).temperature == pytest.approx(1 / beta, rel=1e-3)


def test_risk_coverage_scores_the_kept_cases_and_referral_helps_a_model_that_knows_when_it_is_unsure():
    y, p, patients = _three_class(seed=4, sharpness=1.0)
    result = risk_coverage(y, p, CLASSES, patients, coverages=(1.0, 0.8, 0.5), n_bootstrap=200)
    full, eighty, half = result.table.itertuples()
    assert full.kept == len(y) and full.referred == 0
    assert full.accuracy == pytest.approx(np.mean(p.argmax(1) == y))
    assert full.sensitivity == pytest.approx(np.mean(p[y == 0].argmax(1) == 0))
    assert eighty.kept == 240 and half.kept == 150
    assert half.accuracy > full.accuracy  # the confident half is right more often
    assert full.accuracy_low < full.accuracy < full.accuracy_high
    assert result.curve.risk.iloc[-1] == pytest.approx(1 - full.accuracy)
    assert 0 < result.aurc < 1 - full.accuracy


def test_group_labels_band_numbers_and_keep_categories():
    ages = pd.Series([20, 30, 40, 50, 60, 70, 80, 90, 25])
    assert group_labels(ages).nunique() == 3
    views = pd.Series(["PA", "AP", None])
    assert list(group_labels(views)[:2]) == ["PA", "AP"] and pd.isna(group_labels(views)[2])


def test_the_subgroup_audit_finds_a_planted_disparity_and_not_one_that_is_absent():
    rng = np.random.default_rng(5)
    n = 400
    y = rng.integers(0, 3, n)
    hospital = np.where(np.arange(n) % 2 == 0, "A", "B")
    patients = np.arange(n) // 2 * 2 + (hospital == "B")  # each patient in one hospital
    p = np.full((n, 3), 0.1)
    right = rng.random(n) < np.where(hospital == "A", 0.9, 0.55)  # planted: B is right less often
    p[np.arange(n), np.where(right, y, (y + 1) % 3)] = 0.8
    audit = subgroup_audit(y, p, CLASSES, hospital, patients, column="hospital", n_bootstrap=300)
    assert audit.found and audit.worst == "B" and audit.best == "A"
    assert set(audit.table.group) == {"A", "B"} and audit.table.images.sum() == n
    assert "finds a disparity" in str(audit)
    fair = np.full((n, 3), 0.1)
    fair[np.arange(n), np.where(rng.random(n) < 0.8, y, (y + 1) % 3)] = 0.8
    assert not subgroup_audit(y, fair, CLASSES, hospital, patients, n_bootstrap=300).found


def test_referral_and_audit_intervals_never_have_zero_width():
    y, p, patients = _three_class(n=60, seed=7)
    p[:, 0] = 0.0  # a model that never says COVID-19: sensitivity 0 in every round
    p /= p.sum(1, keepdims=True)
    referral = risk_coverage(y, p, CLASSES, patients, n_bootstrap=100)
    assert (referral.table.sensitivity == 0).all()
    assert (referral.table.sensitivity_high > referral.table.sensitivity_low).all()
    audit = subgroup_audit(y, p, CLASSES, np.arange(60) % 2, patients, n_bootstrap=100)
    assert (audit.table.sensitivity_high > audit.table.sensitivity_low).all()
