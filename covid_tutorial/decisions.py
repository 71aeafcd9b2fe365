"""From scores to decisions: would using the model help, can its probabilities be trusted,
which cases should it hand back, and is it worse for some patients than for others?

* :func:`decision_curve`: the net benefit of deciding "COVID-19" when its probability reaches a
  threshold, across thresholds, beside testing everyone and no one (Vickers and Elkin 2006).
* :class:`TemperatureScaling`: one number fitted on validation patients that softens or
  sharpens every probability without changing their order (Guo et al. 2017); stored in the RUN.
* :func:`calibration_change`: the expected calibration error before and after it.
* :func:`risk_coverage`: selective prediction; the model answers the cases it is most confident
  about and refers the rest, and is scored on the cases it keeps.
* :func:`subgroup_audit`: the scores of each group of a metadata column (sex, age band, view,
  hospital) and the gap between the best and the worst group.

Every interval comes from the course's one bootstrap over patients
(:func:`covid_tutorial.metrics.patient_bootstrap`); scores from scikit-learn.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from sklearn.metrics import accuracy_score, f1_score, log_loss, recall_score

from .errors import DataError
from .metrics import classification_metrics, patient_bootstrap, reliability_table, wilson_where_degenerate

__all__ = [
    "DECISION_THRESHOLDS",
    "net_benefit",
    "treat_all_net_benefit",
    "DecisionCurve",
    "decision_curve",
    "TemperatureScaling",
    "CalibrationChange",
    "calibration_change",
    "COVERAGES",
    "RiskCoverage",
    "risk_coverage",
    "AUDIT_METRICS",
    "SubgroupAudit",
    "subgroup_audit",
    "group_labels",
    "positive_class",
    "DecisionReport",
    "decision_report",
]

DECISION_THRESHOLDS = np.round(np.arange(0.02, 0.99, 0.02), 2)  # threshold probabilities of the curve
COVERAGES = (1.0, 0.9, 0.8)  # shares of the cases the model answers in the referral table


def _positive_index(class_names, positive: str) -> int:
    if positive not in class_names:
        raise DataError(f"the class {positive!r} is not among this task's classes {list(class_names)}; "
                        "pass positive= one of them")
    return list(class_names).index(positive)


# ---------------------------------------------------------------- decision curves


def net_benefit(is_positive, prob_positive, thresholds) -> np.ndarray:
    """Net benefit of treating the cases whose probability reaches each threshold p_t:
    true positives / n - false positives / n * p_t / (1 - p_t). The weight p_t / (1 - p_t)
    is the harm of a needless treatment relative to the benefit of a needed one that a
    threshold of p_t implies (Vickers and Elkin 2006)."""
    is_positive = np.asarray(is_positive, bool)
    prob_positive = np.asarray(prob_positive, float)
    thresholds = np.asarray(thresholds, float)
    treated = prob_positive[None, :] >= thresholds[:, None]
    n = max(len(is_positive), 1)
    true_pos = (treated & is_positive[None, :]).sum(axis=1) / n
    false_pos = (treated & ~is_positive[None, :]).sum(axis=1) / n
    return true_pos - false_pos * thresholds / (1 - thresholds)


def treat_all_net_benefit(prevalence: float, thresholds) -> np.ndarray:
    """Net benefit of treating everyone: prevalence - (1 - prevalence) * p_t / (1 - p_t)."""
    thresholds = np.asarray(thresholds, float)
    return prevalence - (1 - prevalence) * thresholds / (1 - thresholds)


@dataclasses.dataclass
class DecisionCurve:
    """Net benefit of the model's decision for one class across threshold probabilities, with
    95% intervals over patients, beside treating everyone and no one. ``print()`` says where
    the model is useful."""

    table: pd.DataFrame  # threshold, treated (cases at or above it), model, ci_low, ci_high, treat_all, treat_none
    positive: str
    prevalence: float
    n_images: int
    n_patients: int
    n_bootstrap: int

    def useful(self) -> pd.Series:
        """At each threshold: is the model's net benefit above both references, by its whole interval?"""
        best_reference = np.maximum(self.table["treat_all"], self.table["treat_none"])
        return pd.Series(self.table["ci_low"].to_numpy() > best_reference.to_numpy(), index=self.table["threshold"])

    def useful_range(self) -> tuple[float, float] | None:
        """The widest run of adjacent thresholds where :meth:`useful` holds, or None."""
        useful = self.useful().to_numpy()
        best, start = None, None
        for i, flag in enumerate([*useful, False]):
            if flag and start is None:
                start = i
            elif not flag and start is not None:
                if best is None or i - start > best[1] - best[0]:
                    best = (start, i)
                start = None
        if best is None:
            return None
        thresholds = self.table["threshold"].to_numpy()
        return float(thresholds[best[0]]), float(thresholds[best[1] - 1])

    def __str__(self) -> str:
        where = self.useful_range()
        head = (f"Net benefit of deciding {self.positive} at p({self.positive}) >= threshold, on {self.n_images} images of "
                f"{self.n_patients} patients (prevalence {self.prevalence:.2f}; 95% intervals over patients, "
                f"{self.n_bootstrap} rounds).")
        if where is None:
            return head + (f"\nAt no threshold is the model's net benefit above both testing everyone and testing no one "
                           "by its whole interval: on these data it is not shown to help any decision.")
        return head + (f"\nThe model does more good than testing everyone or no one, by the whole of its interval, "
                       f"for threshold probabilities from {where[0]:.2f} to {where[1]:.2f}: for a reader who would "
                       f"accept between {_odds(where[1])} and {_odds(where[0])} needless tests per case found.")


def _odds(threshold: float) -> str:
    """p_t / (1 - p_t) as 'n needless tests per case found' reads it: (1 - p_t) / p_t."""
    return f"{(1 - threshold) / threshold:.3g}"


def decision_curve(y_true, probabilities, class_names, groups=None, *, positive: str = "COVID-19",
                   thresholds=DECISION_THRESHOLDS, n_bootstrap: int = 1000, seed: int = 0) -> DecisionCurve:
    """:class:`DecisionCurve` of deciding ``positive`` when its probability reaches each threshold."""
    k = _positive_index(class_names, positive)
    is_positive = np.asarray(y_true) == k
    prob = np.asarray(probabilities, float)[:, k]
    thresholds = np.asarray(thresholds, float)
    model = net_benefit(is_positive, prob, thresholds)
    low, high, n_patients = patient_bootstrap(
        lambda rows: net_benefit(is_positive[rows], prob[rows], thresholds), len(prob), groups,
        n_bootstrap=n_bootstrap, seed=seed, shape=model.shape,
    )
    prevalence = float(is_positive.mean()) if len(prob) else math.nan
    treated = (prob[None, :] >= thresholds[:, None]).sum(axis=1)
    nobody = np.isclose(low, high)  # no case reaches the threshold in any round: nothing to put an interval on
    low, high = np.where(nobody, np.nan, low), np.where(nobody, np.nan, high)
    table = pd.DataFrame({"threshold": thresholds, "treated": treated, "model": model, "ci_low": low, "ci_high": high,
                          "treat_all": treat_all_net_benefit(prevalence, thresholds), "treat_none": 0.0})
    return DecisionCurve(table, positive, prevalence, len(prob), n_patients, n_bootstrap)


# ---------------------------------------------------------------- calibration


def _log_probabilities(probabilities) -> np.ndarray:
    return np.log(np.clip(np.asarray(probabilities, float), np.finfo(float).tiny, 1.0))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class TemperatureScaling:
    """Probabilities softened (temperature above 1) or sharpened (below 1): softmax(log p / T).
    Dividing every logit by one positive number keeps each image's order of the classes, so
    every prediction, the confusion matrix and the accuracy stay as they were; only how sure
    the model says it is changes. With two classes the order of the images by either class's
    probability is kept too, so the ROC AUC does not move; with three or more it can shift a
    little, since p(class) then depends on the other classes' logits as well. Fitted by
    :meth:`fit` on validation patients."""

    temperature: float
    n_images: int
    n_patients: int
    log_loss_before: float
    log_loss_after: float
    fitted_on: str = "the RUN's validation patients"

    @classmethod
    def fit(cls, y_true, probabilities, groups=None, *, fitted_on: str = "the RUN's validation patients") -> "TemperatureScaling":
        """The temperature that minimises the log loss (negative log-likelihood) on these images."""
        y_true = np.asarray(y_true)
        logits = _log_probabilities(probabilities)
        labels = np.arange(logits.shape[1])
        if len(y_true) == 0:
            raise DataError("temperature scaling needs validation images; this RUN has none")

        def loss(log_temperature: float) -> float:
            return log_loss(y_true, _softmax(logits / math.exp(log_temperature)), labels=labels)

        found = minimize_scalar(loss, bounds=(-5.0, 5.0), method="bounded", options={"xatol": 1e-6})
        patients = len(np.unique(groups)) if groups is not None else len(y_true)
        return cls(float(math.exp(found.x)), len(y_true), patients, loss(0.0), float(found.fun), fitted_on)

    def apply(self, probabilities) -> np.ndarray:
        """The scaled probabilities, rows summing to 1."""
        return _softmax(_log_probabilities(probabilities) / self.temperature)

    def to_json(self) -> dict:
        return {"method": "temperature scaling", **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: dict) -> "TemperatureScaling":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in fields})

    def __str__(self) -> str:
        kind = "softens" if self.temperature > 1 else "sharpens"
        return (f"Temperature {self.temperature:.3f} ({kind} the probabilities), fitted on {self.n_images} images of "
                f"{self.n_patients} patients ({self.fitted_on}): log loss {self.log_loss_before:.3f} -> "
                f"{self.log_loss_after:.3f} there.")


def _ece(y_true, probabilities) -> float:
    return reliability_table(y_true, probabilities).attrs["ece"]


@dataclasses.dataclass
class CalibrationChange:
    """Expected calibration error (confidence of the predicted class, 10 equal bins) before and
    after temperature scaling, with 95% intervals over patients, and the macro ROC AUC before
    and after (unchanged with two classes; see :class:`TemperatureScaling`)."""

    ece_before: tuple[float, float, float]  # value, ci_low, ci_high
    ece_after: tuple[float, float, float]
    difference: tuple[float, float, float]  # after - before
    auc_before: float
    auc_after: float
    temperature: float
    n_images: int
    n_patients: int

    def to_frame(self) -> pd.DataFrame:
        rows = [("before", *self.ece_before), ("after", *self.ece_after), ("after - before", *self.difference)]
        return pd.DataFrame(rows, columns=["ece", "value", "ci_low", "ci_high"])

    def __str__(self) -> str:
        value, low, high = self.difference
        if high < 0:
            verdict = "lowers the calibration error: the whole interval of the change is below 0"
        elif low > 0:
            verdict = "raises the calibration error here: the whole interval of the change is above 0"
        else:
            verdict = "changes the calibration error by less than these data can tell apart from none"
        b, a = self.ece_before, self.ece_after
        biased = any(e[0] < e[1] for e in (b, a))
        note = (" (The ECE is biased upward on few images, so resampled values can all lie above the value itself.)"
                if biased else "")
        return (f"ECE before {b[0]:.3f} [{b[1]:.3f}, {b[2]:.3f}], after {a[0]:.3f} [{a[1]:.3f}, {a[2]:.3f}] "
                f"(temperature {self.temperature:.3f}; {self.n_images} images of {self.n_patients} patients, 95% "
                f"intervals over patients); change {value:+.3f} [{low:+.3f}, {high:+.3f}]: scaling {verdict}. "
                f"Macro ROC AUC {self.auc_before:.4f} before and {self.auc_after:.4f} after.{note}")


def calibration_change(y_true, raw_probabilities, scaling: TemperatureScaling, class_names, groups=None, *,
                       n_bootstrap: int = 1000, seed: int = 0) -> CalibrationChange:
    """:class:`CalibrationChange` of ``scaling`` on these images (not the ones it was fitted on)."""
    y_true = np.asarray(y_true)
    before = np.asarray(raw_probabilities, float)
    after = scaling.apply(before)

    def both(rows):
        b, a = _ece(y_true[rows], before[rows]), _ece(y_true[rows], after[rows])
        return np.array([b, a, a - b])

    point = both(np.arange(len(y_true)))
    low, high, n_patients = patient_bootstrap(both, len(y_true), groups, n_bootstrap=n_bootstrap, seed=seed, shape=(3,))
    auc = [classification_metrics(y_true, p, class_names, n_bootstrap=0).query("`class` == 'macro' and metric == 'roc_auc'")
           ["value"].item() for p in (before, after)]  # fmt: skip
    values = [tuple(float(v) for v in column) for column in zip(point, low, high)]
    return CalibrationChange(*values, auc[0], auc[1], scaling.temperature, len(y_true), n_patients)


# ---------------------------------------------------------------- referral under uncertainty


def _kept(confidence: np.ndarray, coverage: float) -> np.ndarray:
    """Rows of the ``coverage`` share of cases with the highest confidence (ties in order)."""
    keep = max(1, math.ceil(coverage * len(confidence) - 1e-9))
    return np.argsort(-confidence, kind="stable")[:keep]


@dataclasses.dataclass
class RiskCoverage:
    """The model answers only its most confident cases and refers the rest to a reader.
    ``table``: at each coverage, the accuracy and the sensitivity for ``positive`` on the cases
    it keeps, with 95% intervals over patients; ``curve``: the risk (1 - accuracy) of the kept
    cases at every coverage; ``aurc``: the area under that curve (lower is better)."""

    table: pd.DataFrame  # coverage, kept, referred, accuracy (+ci), sensitivity (+ci)
    curve: pd.DataFrame  # coverage, risk
    aurc: float
    uncertainty: str  # what ranks the cases: "softmax" (1 - the top probability), or another source
    positive: str
    n_images: int
    n_patients: int

    def __str__(self) -> str:
        lines = [f"Referral by {self.uncertainty} uncertainty, on {self.n_images} images of {self.n_patients} patients "
                 f"(95% intervals over patients); area under the risk-coverage curve {self.aurc:.3f}:"]
        for row in self.table.itertuples():
            lines.append(
                f"  answers {row.coverage:.0%} ({row.kept} kept, {row.referred} referred): accuracy {row.accuracy:.3f} "
                f"[{row.accuracy_low:.3f}, {row.accuracy_high:.3f}], {self.positive} sensitivity "
                f"{row.sensitivity:.3f} [{row.sensitivity_low:.3f}, {row.sensitivity_high:.3f}]"
            )
        return "\n".join(lines)


def risk_coverage(y_true, probabilities, class_names, groups=None, *, positive: str = "COVID-19",
                  coverages=COVERAGES, confidence=None, uncertainty: str = "softmax",
                  n_bootstrap: int = 1000, seed: int = 0) -> RiskCoverage:
    """:class:`RiskCoverage`. ``confidence`` ranks the cases (default: the top softmax
    probability); in each bootstrap round the kept share is chosen again among the patients drawn."""
    k = _positive_index(class_names, positive)
    y_true = np.asarray(y_true)
    probabilities = np.asarray(probabilities, float)
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1) if confidence is None else np.asarray(confidence, float)

    def scores(rows, coverage):
        kept = rows[_kept(confidence[rows], coverage)]
        positives = kept[y_true[kept] == k]
        sensitivity = recall_score(y_true[positives] == k, predicted[positives] == k, zero_division=np.nan) \
            if len(positives) else np.nan
        return np.array([accuracy_score(y_true[kept], predicted[kept]), sensitivity])

    everyone = np.arange(len(y_true))
    patients = np.arange(len(y_true)) if groups is None else np.asarray(groups)
    rows_out = []
    for coverage in coverages:
        point = scores(everyone, coverage)
        low, high, n_patients = patient_bootstrap(lambda rows: scores(rows, coverage), len(y_true), groups,
                                                  n_bootstrap=n_bootstrap, seed=seed, shape=(2,))
        kept_rows = _kept(confidence, coverage)
        counts = np.array([[len(np.unique(patients[kept_rows])),
                            len(np.unique(patients[kept_rows[y_true[kept_rows] == k]]))]])
        low, high, _ = wilson_where_degenerate(point[None], low[None], high[None], counts)  # never zero width
        low, high = low[0], high[0]
        kept = len(kept_rows)
        rows_out.append({"coverage": coverage, "kept": kept, "referred": len(y_true) - kept,
                         "accuracy": point[0], "accuracy_low": low[0], "accuracy_high": high[0],
                         "sensitivity": point[1], "sensitivity_low": low[1], "sensitivity_high": high[1]})
    order = np.argsort(-confidence, kind="stable")
    errors = (predicted[order] != y_true[order]).astype(float)
    risk = np.cumsum(errors) / np.arange(1, len(errors) + 1)
    curve = pd.DataFrame({"coverage": np.arange(1, len(errors) + 1) / max(len(errors), 1), "risk": risk})
    n_patients = len(np.unique(groups)) if groups is not None else len(y_true)
    return RiskCoverage(pd.DataFrame(rows_out), curve, float(risk.mean()) if len(risk) else math.nan,
                        uncertainty, positive, len(y_true), n_patients)


# ---------------------------------------------------------------- subgroup audits

AUDIT_METRICS = ("accuracy", "macro_f1", "sensitivity")  # sensitivity: for the positive class


def group_labels(values: pd.Series, bands: int = 3) -> pd.Series:
    """A metadata column as groups: categories as they are; a number with more than ``bands``
    values in bands of about equal size (an age becomes "18-44", "45-62", "63-92")."""
    values = values.replace("", np.nan)
    numbers = pd.to_numeric(values, errors="coerce")  # metadata read as text: "55" is a number
    if numbers.notna().sum() == values.notna().sum() and numbers.nunique() > bands:
        edges = np.unique(np.quantile(numbers.dropna(), np.linspace(0, 1, bands + 1)))
        cut = pd.cut(numbers, edges, include_lowest=True)
        return cut.map(lambda band: f"{band.left:.0f}-{band.right:.0f}" if pd.notna(band) else np.nan).astype(object)
    return values.astype(object)


@dataclasses.dataclass
class SubgroupAudit:
    """Scores per group of one metadata column with 95% intervals over patients, and the gap
    between the best and the worst group on ``metric`` with its own interval."""

    column: str
    metric: str
    positive: str
    table: pd.DataFrame  # group, images, patients, then each AUDIT_METRICS with _low and _high
    best: str
    worst: str
    gap: tuple[float, float, float]  # best - worst, ci_low, ci_high
    unknown: int  # images without a value in the column, left out

    @property
    def found(self) -> bool:
        """Whether the worst group is worse than the best by the whole interval of the gap."""
        return bool(self.gap[1] > 0)

    def __str__(self) -> str:
        value, low, high = self.gap
        name = "macro F1" if self.metric == "macro_f1" else (
            f"{self.positive} sensitivity" if self.metric == "sensitivity" else self.metric)
        verdict = (f"the audit finds a disparity: {self.worst} scores below {self.best} by the whole interval of the gap"
                   if self.found else
                   f"the gap's interval includes 0, so these data do not show {self.worst} to be worse than {self.best}")
        skipped = f" ({self.unknown} images without a value left out)" if self.unknown else ""
        return (f"Audit by {self.column}{skipped}, {name}: worst group {self.worst}, best {self.best}, gap "
                f"{value:.3f} [{low:.3f}, {high:.3f}] (95% interval over patients): {verdict}.")


def _group_scores(y_true, predicted, k: int) -> np.ndarray:
    if len(y_true) == 0:
        return np.full(len(AUDIT_METRICS), np.nan)
    positives = y_true == k
    sensitivity = recall_score(positives[positives], predicted[positives] == k, zero_division=np.nan) \
        if positives.any() else np.nan
    macro = f1_score(y_true, predicted, labels=np.unique(y_true), average="macro", zero_division=0)
    return np.array([accuracy_score(y_true, predicted), macro, sensitivity])


def subgroup_audit(y_true, probabilities, class_names, values, groups=None, *, column: str = "group",
                   positive: str = "COVID-19", metric: str = "macro_f1", n_bootstrap: int = 1000,
                   seed: int = 0) -> SubgroupAudit:
    """:class:`SubgroupAudit` of the images' ``values`` of one metadata column (see :func:`group_labels`)."""
    if metric not in AUDIT_METRICS:
        raise DataError(f"metric must be one of {', '.join(AUDIT_METRICS)}, got {metric!r}")
    k = _positive_index(class_names, positive)
    y_true = np.asarray(y_true)
    predicted = np.asarray(probabilities, float).argmax(axis=1)
    labels = group_labels(pd.Series(values).reset_index(drop=True))
    known = labels.notna().to_numpy()
    names = sorted(labels[known].unique(), key=str)
    if len(names) < 2:
        raise DataError(f"the column {column!r} has {len(names)} group(s) among the images scored; an audit needs two")
    patients = np.arange(len(y_true)) if groups is None else np.asarray(groups)
    group_of = labels.to_numpy()
    member = [np.flatnonzero(group_of == name) for name in names]
    m = AUDIT_METRICS.index(metric)

    def per_group(rows):
        """Each group's scores on the rows drawn (a patient drawn twice counts twice)."""
        return np.stack([_group_scores(y_true[rows[group_of[rows] == name]], predicted[rows[group_of[rows] == name]], k)
                         for name in names])

    point = per_group(np.arange(len(y_true)))
    best, worst = int(np.nanargmax(point[:, m])), int(np.nanargmin(point[:, m]))

    def with_gap(rows):
        scores = per_group(rows)
        return np.vstack([scores, np.full((1, scores.shape[1]), scores[best, m] - scores[worst, m])])

    low, high, _ = patient_bootstrap(with_gap, len(y_true), patients, n_bootstrap=n_bootstrap, seed=seed,
                                     shape=(len(names) + 1, len(AUDIT_METRICS)))
    counts = np.array([[len(np.unique(patients[inside]))] * 2 + [len(np.unique(patients[inside[y_true[inside] == k]]))]
                       for inside in member])  # patients behind accuracy, macro F1 and sensitivity
    low[:-1], high[:-1], _ = wilson_where_degenerate(point, low[:-1], high[:-1], counts)  # never zero width
    rows_out = []
    for g, (name, inside) in enumerate(zip(names, member)):
        row = {"group": name, "images": len(inside), "patients": len(np.unique(patients[inside]))}
        for j, metric_name in enumerate(AUDIT_METRICS):
            row |= {metric_name: point[g, j], f"{metric_name}_low": low[g, j], f"{metric_name}_high": high[g, j]}
        rows_out.append(row)
    gap = (float(point[best, m] - point[worst, m]), float(low[-1, m]), float(high[-1, m]))
    return SubgroupAudit(column, metric, positive, pd.DataFrame(rows_out), str(names[best]), str(names[worst]), gap,
                         int((~known).sum()))


# ---------------------------------------------------------------- all of it, for one evaluation


def positive_class(class_names) -> str:
    """The class whose decision the curves and referral are about: COVID-19 where the task has it."""
    return "COVID-19" if "COVID-19" in class_names else list(class_names)[0]


@dataclasses.dataclass
class DecisionReport:
    """What an evaluation's scores mean for decisions: the decision curve, the calibration
    before and after the RUN's temperature (when it has one), referral at fixed coverages,
    and an audit per metadata column asked for. ``print()`` gives each part's verdict."""

    curve: DecisionCurve
    referral: RiskCoverage
    calibration: CalibrationChange | None = None
    audits: list[SubgroupAudit] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        parts = [str(self.curve), str(self.referral)]
        if self.calibration is not None:
            parts.append(str(self.calibration))
        parts += [str(audit) for audit in self.audits]
        return "\n".join(parts)

    def to_json(self) -> dict:
        useful = self.curve.useful_range()
        out = {
            "positive": self.curve.positive,
            "decision_curve": {
                "prevalence": self.curve.prevalence, "n_images": self.curve.n_images,
                "n_patients": self.curve.n_patients, "n_bootstrap": self.curve.n_bootstrap,
                "useful_thresholds": None if useful is None else list(useful), "summary": str(self.curve),
            },
            "referral": {
                "uncertainty": self.referral.uncertainty, "aurc": self.referral.aurc,
                "at_coverage": self.referral.table.to_dict(orient="records"), "summary": str(self.referral),
            },
            "calibration": None,
            "subgroups": [],
        }
        if self.calibration is not None:
            c = self.calibration
            out["calibration"] = {
                "temperature": c.temperature, "ece_before": list(c.ece_before), "ece_after": list(c.ece_after),
                "change": list(c.difference), "roc_auc_before": c.auc_before, "roc_auc_after": c.auc_after,
                "summary": str(c),
            }
        for audit in self.audits:
            out["subgroups"].append({
                "column": audit.column, "metric": audit.metric, "best": audit.best, "worst": audit.worst,
                "gap": list(audit.gap), "found": audit.found, "unknown": audit.unknown,
                "groups": audit.table.to_dict(orient="records"), "summary": str(audit),
            })
        return out


def decision_report(y_true, probabilities, class_names, groups=None, *, uncalibrated=None,
                    scaling: TemperatureScaling | None = None, metadata: pd.DataFrame | None = None, by=(),
                    n_bootstrap: int = 1000, seed: int = 0) -> DecisionReport:
    """A :class:`DecisionReport` of ``probabilities`` (after the RUN's ``scaling``, if any; then
    ``uncalibrated`` holds the model's own). ``by`` names columns of ``metadata`` (one row per
    image) to audit; a missing column is a :class:`~covid_tutorial.errors.DataError`."""
    positive = positive_class(class_names)
    options = dict(n_bootstrap=n_bootstrap, seed=seed)
    missing = [column for column in by if metadata is None or column not in metadata.columns]
    if missing:
        have = [] if metadata is None else [c for c in metadata.columns if c not in ("path", "label", "mask_path")]
        raise DataError(f"no column {', '.join(map(repr, missing))} in these data to audit by; they have "
                        f"{', '.join(have) or 'no metadata'}")
    calibration = None
    if scaling is not None and uncalibrated is not None:
        calibration = calibration_change(y_true, uncalibrated, scaling, class_names, groups, **options)
    audits = [subgroup_audit(y_true, probabilities, class_names, metadata[column].to_numpy(), groups,
                             column=column, positive=positive, **options) for column in by]
    return DecisionReport(
        decision_curve(y_true, probabilities, class_names, groups, positive=positive, **options),
        risk_coverage(y_true, probabilities, class_names, groups, positive=positive, **options),
        calibration,
        audits,
    )
