import pytest

from covid_tutorial.errors import DataError
from covid_tutorial.data.labels import (
    CLASS_NAMES,
    COVID_VS_REST,
    SYNONYMS,
    course_label,
    map_label,
    parse_classes,
    parse_label_map,
    task_classes,
)
from covid_tutorial.data.registry import REGISTRY


@pytest.mark.parametrize(
    "value, expected",
    [
        ("No finding", "Normal"),
        ("No_findings", "Normal"),
        ("normal", "Normal"),
        ("Healthy", "Normal"),
        ("COVID", "COVID-19"),
        ("covid19", "COVID-19"),
        ("CT_COVID", "COVID-19"),
        ("Viral Pneumonia", "Pneumonia"),
        ("bacterial", "Pneumonia"),
        ("non-COVID", "Non-COVID"),
        ("CT_NonCOVID", "Non-COVID"),
        ("NonCOVID", "Non-COVID"),
        ("  NON covid ", "Non-COVID"),
        ("Pneumonia/Viral/COVID-19", "COVID-19"),
        ("Lung_Opacity", None),
    ],
)
def test_synonyms_ignore_case_spaces_and_underscores(value, expected):
    assert course_label(value) == expected


def test_the_synonym_table_is_data_shipped_with_the_package():
    assert set(SYNONYMS) == {"COVID-19", "Normal", "Pneumonia", "Non-COVID"}
    assert "CT_NonCOVID" in SYNONYMS["Non-COVID"]


def test_binary_task_folds_normal_and_pneumonia_into_non_covid():
    assert map_label("Healthy", classes=COVID_VS_REST) == "Non-COVID"
    assert map_label("Viral Pneumonia", classes=COVID_VS_REST) == "Non-COVID"
    assert map_label("CT_COVID", classes=COVID_VS_REST) == "COVID-19"
    with pytest.raises(KeyError):
        map_label("CT_NonCOVID")  # the course's three classes have no Non-COVID


def test_a_task_of_the_users_own_names():
    task = ("Tuberculosis", "Normal")
    assert map_label("tuberculosis", classes=task) == "Tuberculosis"
    assert map_label("No finding", classes=task) == "Normal"
    assert map_label("TB", {"TB": "Tuberculosis"}, classes=task) == "Tuberculosis"
    with pytest.raises(KeyError):
        map_label("COVID", classes=task)


def test_label_map_wins_and_may_exclude():
    assert map_label("Others", {"others": "pneumonia"}) == "Pneumonia"
    assert map_label("Lung_Opacity", {"Lung Opacity": "excluded"}) is None
    with pytest.raises(DataError, match="not a course class"):
        map_label("x", {"x": "Flu"})


def test_parse_classes():
    assert parse_classes("COVID-19,Non-COVID") == COVID_VS_REST
    assert parse_classes(" covid-19 , normal,Pneumonia ") == CLASS_NAMES
    assert task_classes(None) == CLASS_NAMES
    for bad in ("COVID-19", "Normal,normal", ""):
        with pytest.raises(DataError, match="two or more"):
            parse_classes(bad)


def test_parse_label_map_from_text_and_toml(tmp_path):
    assert parse_label_map("CT_NonCOVID=Non-COVID, No_findings=Normal,Lung_Opacity=") == {
        "CT_NonCOVID": "Non-COVID",
        "No_findings": "Normal",
        "Lung_Opacity": None,
    }
    toml = tmp_path / "labels.toml"
    toml.write_text('[labels]\n"No findings" = "Normal"\nLung_Opacity = "excluded"\n')
    assert parse_label_map(str(toml)) == {"No findings": "Normal", "Lung_Opacity": None}
    with pytest.raises(DataError, match="LABEL=CLASS"):
        parse_label_map("Normal")
    with pytest.raises(DataError, match="not found"):
        parse_label_map(str(tmp_path / "missing.toml"))
    (tmp_path / "bad.toml").write_text("[other]\nx = 1\n")
    with pytest.raises(DataError, match=r"\[labels\] table"):
        parse_label_map(str(tmp_path / "bad.toml"))


@pytest.mark.parametrize("name", [n for n, info in REGISTRY.items() if info.metadata is None or info.metadata.label_rules == "classes"])
def test_every_registry_class_name_maps_through_the_entry(name):
    info = REGISTRY[name]
    task = COVID_VS_REST if "Non-COVID" in info.classes.values() else CLASS_NAMES
    for source, label in info.classes.items():
        expected = None if label is None else label if label in task else "Non-COVID"
        assert map_label(source, dict(info.classes), classes=task) == expected
