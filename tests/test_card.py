"""From a RUN to decisions and a report: calibration stored by train, the decision files of
evaluate (with --by), the two-hospital phantoms' planted disparity, and the model card and
reporting checklist of `covid-tutorial card`, for a three-class and a two-class RUN."""

import json
import tomllib

import numpy as np
import pandas as pd
import pytest

from covid_tutorial.card import OPEN, REPORTING_FILE, model_card
from covid_tutorial.cli import main
from covid_tutorial.data import load_dataset
from covid_tutorial.data.hospitals import write_two_hospital_phantoms
from covid_tutorial.pipeline import train_run
from covid_tutorial.runs import read_calibration

SMALL = dict(profile="ci", backbone="vgg16", image_size=32, batch_size=8, head_epochs=1, checkpoints=False,
             progress=False)


@pytest.fixture(scope="module")
def hospitals(tmp_path_factory):
    out = tmp_path_factory.mktemp("hospitals") / "two-hospitals"
    write_two_hospital_phantoms(out, patients=60, size=64, progress=False)
    return out


@pytest.fixture(scope="module")
def evaluated_run(hospitals, tmp_path_factory):
    """Three classes, trained on the two-hospital phantoms, evaluated from the command line with --by."""
    run = tmp_path_factory.mktemp("runs") / "three"
    train_run(hospitals, run, **SMALL)
    assert main(["evaluate", str(run), str(hospitals), "--by", "hospital", "--by", "age", "--bootstrap-rounds", "50"]) == 0
    assert main(["card", str(run)]) == 0
    return run


def test_two_hospital_phantoms_carry_their_hospital_and_keep_patients_apart(hospitals):
    table = load_dataset(hospitals)
    assert set(table["hospital"]) == {"A", "B"}
    assert (table.groupby("patient_id")["hospital"].nunique() == 1).all()
    patients = table.drop_duplicates("patient_id")["hospital"].value_counts()
    assert patients["A"] == 36 and patients["B"] == 24  # 40% at hospital B
    stamp = (hospitals / "two_hospitals.txt").read_text()
    assert "difficulty_b=0.95" in stamp


def test_train_fits_a_temperature_on_validation_patients_and_predict_applies_it(evaluated_run, capsys):
    scaling = read_calibration(evaluated_run)
    assert scaling is not None and scaling.temperature > 0
    splits = pd.read_csv(evaluated_run / "splits.csv")
    assert scaling.n_images == (splits["split"] == "val").sum()
    assert scaling.log_loss_after <= scaling.log_loss_before + 1e-9
    predictions = pd.read_csv(evaluated_run / "predictions.csv")
    raw = predictions[[c for c in predictions if c.endswith("_uncalibrated")]].to_numpy()
    calibrated = predictions[["p_COVID-19", "p_Normal", "p_Pneumonia"]].to_numpy()
    np.testing.assert_allclose(scaling.apply(raw), calibrated, atol=1e-6)
    capsys.readouterr()
    assert main(["predict", str(evaluated_run), predictions["path"].iloc[0], "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)[0]["probabilities"]
    assert answer["COVID-19"] == pytest.approx(calibrated[0, 0], abs=1e-5)


def test_evaluate_writes_the_decision_curve_calibration_referral_and_the_audits(evaluated_run):
    decisions = json.loads((evaluated_run / "decisions.json").read_text())
    curve = pd.read_csv(evaluated_run / "decision_curve.csv")
    assert list(curve.columns) == ["threshold", "treated", "model", "ci_low", "ci_high", "treat_all", "treat_none"]
    assert (curve["treat_none"] == 0).all() and decisions["positive"] == "COVID-19"
    referral = pd.read_csv(evaluated_run / "risk_coverage.csv")
    assert list(referral["coverage"]) == [1.0, 0.9, 0.8]
    assert referral["referred"].iloc[0] == 0 and referral["kept"].iloc[2] < referral["kept"].iloc[0]
    calibration = pd.read_csv(evaluated_run / "calibration.csv")
    assert list(calibration["ece"]) == ["before", "after", "after - before"]
    assert decisions["calibration"]["temperature"] == pytest.approx(read_calibration(evaluated_run).temperature)
    hospital = pd.read_csv(evaluated_run / "subgroups_hospital.csv")
    assert list(hospital["group"]) == ["A", "B"]
    ages = pd.read_csv(evaluated_run / "subgroups_age.csv")
    assert len(ages) == 3  # banded
    for name in ("decision_curve", "risk_coverage", "calibration", "subgroups_hospital", "subgroups_age"):
        assert (evaluated_run / "figures" / f"{name}.png").stat().st_size > 5000


def test_evaluate_by_a_column_the_data_lack_says_so_in_one_line(evaluated_run, hospitals, capsys):
    assert main(["evaluate", str(evaluated_run), str(hospitals), "--by", "scanner", "--out",
                 str(evaluated_run.parent / "elsewhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "'scanner'" in err and "hospital" in err and "Traceback" not in err


def test_the_model_card_states_what_the_run_holds_and_invents_nothing(evaluated_run):
    card = (evaluated_run / "model_card.md").read_text()
    splits = pd.read_csv(evaluated_run / "splits.csv")
    test_patients = splits[splits["split"] == "test"]["patient_id"].nunique()
    assert "## Intended use" in card and "not for clinical use" in card.lower()
    covid_test = splits[(splits["split"] == "test") & (splits["label"] == "COVID-19")]
    assert f"| test | COVID-19 | {covid_test['patient_id'].nunique()} | {len(covid_test)} |" in card
    assert f"of {test_patients} patients" in card
    assert "Audit by hospital" in card and "Audit by age" in card
    assert "synthetic phantoms" in card  # the caveat that matters most here
    twin = json.loads((evaluated_run / "model_card.json").read_text())
    assert twin["calibration"]["temperature"] == pytest.approx(read_calibration(evaluated_run).temperature)
    assert twin["confounder_check"] is not None and "flagged" in twin["confounder_check"]


def test_the_checklist_answers_from_the_run_only_where_it_has_evidence(evaluated_run):
    checklist = json.loads((evaluated_run / "reporting_checklist.json").read_text())
    guidelines = tomllib.loads(REPORTING_FILE.read_text())
    for key, guideline in guidelines.items():
        items = {item["number"]: item for item in checklist[key]["items"]}
        assert len(items) == len(guideline["items"])
        for item in guideline["items"]:
            answered = items[item["number"]]
            if "evidence" not in item:
                assert answered["status"] == OPEN and not answered["answer"], item
            elif answered["status"] != OPEN:
                assert answered["answer"] and answered["evidence"], item
    claim = {item["number"]: item for item in checklist["claim"]["items"]}
    assert claim["34"]["status"] == OPEN  # clinical trial registration: no RUN can know it
    assert claim["20"]["answer"].startswith("patient")  # partitions disjoint by patient, checked
    assert claim["33"]["status"] == OPEN  # no evaluation on other data yet
    assert "splits.csv" in claim["35"]["evidence"]


def test_a_two_class_run_gets_its_card_and_checklist(hospitals, tmp_path, capsys):
    run = tmp_path / "two"
    train_run(hospitals, run, classes=("COVID-19", "Normal"), unmapped="drop", evaluate=True, **SMALL)
    assert main(["card", str(run)]) == 0
    assert "CLAIM 2024" in capsys.readouterr().out
    card = model_card(run)
    assert card.config.class_names == ("COVID-19", "Normal")
    text = (run / "model_card.md").read_text()
    assert "for COVID-19, Normal" in text and "Pneumonia" not in text
    checklist = json.loads((run / "reporting_checklist.json").read_text())
    diagnostic = next(i for i in checklist["claim"]["items"] if i["number"] == "38")
    assert diagnostic["answer"].startswith("COVID-19: sensitivity")
