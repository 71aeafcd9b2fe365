"""Tests for the dataset registry: registry.toml, its checks, and the tables made from it."""

from __future__ import annotations

import dataclasses
import importlib.resources
import re
import tomllib
from pathlib import Path

import pytest

from covid_tutorial.data import registry as reg
from covid_tutorial.data.download import download_dataset
from covid_tutorial.errors import CourseError
from covid_tutorial.data.labels import CLASS_NAMES

REPO = Path(__file__).resolve().parent.parent
REQUIRED = {
    "covid-chestxray",
    "covid19-radiography",
    "covid-qu-ex",
    "sars-cov-2-ct",
    "covid-ct-multiclass",
    "ucsd-covid-ct",
    "pneumoniamnist",
    "phantoms",
}

# One valid entry; {extra} adds top-level fields, {patient_ids} and {tables} replace parts.
FIXTURE_TOML = """\
[datasets.fixture]
title = "Test fixture"
modality = "X-ray"
method = "direct"
source_url = "http://127.0.0.1/"
url = "http://127.0.0.1/fixture.zip"
licence = "test"
citation = "test"
layout = "{layout}"
provenance = ["written in tests/test_registry.py"]
{extra}

[datasets.fixture.classes]
COVID = "COVID-19"
Normal = "Normal"
Lung_Opacity = "excluded"

[datasets.fixture.patient_ids]
{patient_ids}
{tables}
"""


def write_fixture(tmp_path, layout="folder-per-class", extra="", patient_ids=None, tables=""):
    if patient_ids is None:
        patient_ids = 'source = "none"\ndescription = "none: a test"'
    path = tmp_path / "registry.toml"
    text = FIXTURE_TOML.format(layout=layout, extra=extra, patient_ids=patient_ids, tables=tables)
    path.write_text(text, encoding="utf-8")
    return path


def test_registry_has_every_required_entry_with_fields_filled():
    table = reg.list_datasets()
    assert REQUIRED <= set(table["name"])
    for column in (
        "title",
        "modality",
        "method",
        "obtain",
        "classes",
        "course_labels",
        "patient_ids",
        "layout",
        "licence",
        "citation",
        "source_url",
        "notes",
    ):
        assert table[column].astype(str).str.strip().ne("").all(), column
    for info in reg.REGISTRY.values():
        assert info.provenance, info.name
        assert set(info.course_labels) <= set(CLASS_NAMES) | {reg.NON_COVID_LABEL}
        if info.method == "kaggle":
            assert re.fullmatch(r"[\w.-]+/[\w.-]+", info.kaggle_handle)
            assert info.kaggle_handle in info.source_url
        if info.method in ("direct", "github"):
            assert info.url.startswith("https://")


def test_registry_facts_the_course_relies_on():
    assert reg.get_dataset_info("covid19-radiography").classes["Lung_Opacity"] is None
    assert reg.get_dataset_info("covid-chestxray").has_patient_ids
    assert reg.get_dataset_info("covid-chestxray").layout == "metadata-csv"
    assert not reg.get_dataset_info("sars-cov-2-ct").has_patient_ids
    multiclass = reg.get_dataset_info("covid-ct-multiclass")
    assert multiclass.course_labels == ("COVID-19", "Normal", "Pneumonia")
    assert multiclass.modality == "CT"
    assert reg.get_dataset_info("pneumoniamnist").licence.startswith("CC BY 4.0")
    assert reg.get_dataset_info("phantoms").method == "generate"


def test_no_checksum_without_a_named_source():
    for info in reg.REGISTRY.values():
        if info.checksum is not None:
            assert info.checksum_source and len(info.checksum_source) > 20, info.name
            assert "published" in info.checksum_source, info.name
        else:
            assert info.checksum_source is None, info.name
    mnist = reg.get_dataset_info("pneumoniamnist")
    with pytest.raises(ValueError, match="field 'checksum_source': a checksum needs"):
        dataclasses.replace(mnist, checksum="sha256:" + "a" * 64, checksum_source=None)
    with pytest.raises(ValueError, match="field 'checksum': must look like"):
        dataclasses.replace(mnist, checksum="sha256:abc", checksum_source="x")


def test_entries_are_validated():
    radiography = reg.get_dataset_info("covid19-radiography")
    with pytest.raises(ValueError, match="not a course label"):
        dataclasses.replace(radiography, classes={"COVID": "Covid"})
    with pytest.raises(ValueError, match="kaggle_handle"):
        dataclasses.replace(radiography, kaggle_handle="no-slash")
    with pytest.raises(dataclasses.FrozenInstanceError):
        radiography.name = "other"
    with pytest.raises(TypeError):
        radiography.classes["Lung_Opacity"] = "Pneumonia"


def test_names_are_case_insensitive_and_unknown_names_list_the_known_ones():
    assert reg.get_dataset_info("PneumoniaMNIST") is reg.REGISTRY["pneumoniamnist"]
    assert reg.get_dataset_info(" covid_qu_ex ") is reg.REGISTRY["covid-qu-ex"]
    with pytest.raises(reg.UnknownDatasetError) as caught:
        reg.get_dataset_info("covid-19-everything")
    for name in REQUIRED:
        assert name in str(caught.value)
    with pytest.raises(CourseError):  # the CLI catches one type
        download_dataset("nope")


def test_terminal_table_lists_every_entry(tmp_path):
    text = reg.format_dataset_table(data_dir=tmp_path)
    for name in reg.REGISTRY:
        assert re.search(rf"^{re.escape(name)}\s", text, flags=re.MULTILINE), name
    assert "covid-tutorial download NAME" in text
    assert f"Files go to: {tmp_path}" in text


def test_docs_table_matches_the_registry():
    docs = (REPO / "docs" / "datasets.md").read_text(encoding="utf-8")
    start, end = "<!-- registry:start -->", "<!-- registry:end -->"
    assert start in docs and end in docs
    generated = docs.split(start, 1)[1].split(end, 1)[0].strip()
    assert generated == reg.format_registry_markdown().strip(), (
        "docs/datasets.md is out of date: paste the output of "
        "covid_tutorial.data.registry.format_registry_markdown() between the registry markers"
    )
    rows = re.findall(r"^\| `([a-z0-9-]+)` +\|", generated, flags=re.MULTILINE)
    assert rows == list(reg.REGISTRY)


# --- registry.toml ------------------------------------------------------------------


def test_every_entry_of_the_packaged_toml_loads_and_validates():
    packaged = importlib.resources.files("covid_tutorial.data") / "registry.toml"
    raw = tomllib.loads(packaged.read_text(encoding="utf-8"))["datasets"]
    assert list(raw) == list(reg.REGISTRY)
    again = reg.read_registry(REPO / "covid_tutorial" / "data" / "registry.toml")
    assert again == reg.REGISTRY
    for name, table in raw.items():
        info = reg.REGISTRY[name]
        assert info.name == name and isinstance(info, reg.DatasetInfo)
        assert set(info.classes) == set(table["classes"])
        excluded = {key for key, label in table["classes"].items() if label == reg.EXCLUDED}
        assert excluded == {key for key, label in info.classes.items() if label is None}


def test_a_valid_fixture_entry_loads(tmp_path):
    registry = reg.read_registry(write_fixture(tmp_path))
    (info,) = registry.values()
    assert info.name == "fixture" and info.classes["Lung_Opacity"] is None
    assert info.patient_ids == reg.PatientIds(source="none", description="none: a test")
    pattern = (
        'source = "filename-pattern"\npattern = "^(?P<patient>P\\\\d+)_"\ndescription = "P0001_"'
    )
    (info,) = reg.read_registry(write_fixture(tmp_path, patient_ids=pattern)).values()
    assert re.match(info.patient_ids.pattern, "P0001_s0.png")["patient"] == "P0001"


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"layout": "folder-per-pixel"}, "layout", "is not one of"),
        ({"extra": 'classes_url = "x"'}, "classes_url", "unknown field"),
        ({"extra": 'provenance_note = "x"'}, "provenance_note", "unknown field"),
        ({"extra": 'checksum = "md5:' + "0" * 32 + '"'}, "checksum_source", "a checksum needs"),
        ({"extra": 'checksum_source = "a blog"'}, "checksum_source", "without a checksum"),
        ({"extra": "publisher_splits = 1"}, "publisher_splits", "true or false"),
        ({"extra": 'data_root = "../elsewhere"'}, "data_root", "relative path"),
        ({"extra": 'split_folders = ["train"]'}, "split_folders", "publisher_splits = true"),
        (
            {"tables": "[datasets.fixture.arrays]\nimages = {}\nlabels = {}\nlabel_values = {}"},
            "arrays",
            "goes with layout 'npz-arrays'",
        ),
        ({"layout": "metadata-csv"}, "metadata", "goes with layout 'metadata-csv'"),
        (
            {"patient_ids": 'source = "column"\ndescription = "somewhere"'},
            "patient_ids.column",
            "needs the column's name",
        ),
        (
            {"patient_ids": 'source = "filename-pattern"\npattern = "^P"\ndescription = "x"'},
            "patient_ids.pattern",
            "group named 'patient'",
        ),
        (
            {"patient_ids": 'source = "subfolder"\ndescription = "x"'},
            "patient_ids.source",
            "'subfolder' goes with layout",
        ),
        ({"patient_ids": 'description = "x"'}, "patient_ids.source", "is required"),
        (
            {
                "layout": "metadata-csv",
                "tables": '[datasets.fixture.metadata]\ncsv = "m.csv"\nimages = "i"\n'
                'label_column = "finding"\nlabel_rules = "guess"',
            },
            "metadata.label_rules",
            "is not one of",
        ),
    ],
)
def test_a_broken_entry_names_the_file_the_entry_and_the_field(tmp_path, changes, field, says):
    path = write_fixture(tmp_path, **changes)
    with pytest.raises(reg.RegistryError) as caught:
        reg.read_registry(path)
    message = str(caught.value)
    assert str(path) in message and "entry 'fixture'" in message
    assert re.search(rf"field '{re.escape(field)}': [^\n]*{re.escape(says)}", message), message
    assert isinstance(caught.value, CourseError)


def test_a_class_mapped_to_a_non_course_label_is_refused(tmp_path):
    path = write_fixture(tmp_path)
    path.write_text(path.read_text().replace('Normal = "Normal"', 'Normal = "Healthy"'))
    says = "entry 'fixture':\n  field 'classes': 'Normal' maps to 'Healthy', not a course label"
    with pytest.raises(reg.RegistryError, match=says):
        reg.read_registry(path)


def test_a_file_that_is_not_toml_is_named(tmp_path):
    path = tmp_path / "registry.toml"
    path.write_text("[datasets.fixture\n")
    with pytest.raises(reg.RegistryError, match=re.escape(str(path)) + ": not valid TOML"):
        reg.read_registry(path)


# --- the loader fields --------------------------------------------------------------


def test_loader_fields_say_where_images_labels_and_patients_are():
    multiclass = reg.get_dataset_info("covid-ct-multiclass")  # Garg et al.'s CT collection
    assert multiclass.layout == "folder-per-class-per-patient"
    assert multiclass.patient_ids.source == "subfolder" and multiclass.has_patient_ids
    assert multiclass.data_root == "New_Data_CoV2"
    assert set(multiclass.classes) == {"Covid", "Healthy", "Others"}

    chestxray = reg.get_dataset_info("covid-chestxray")
    assert chestxray.patient_ids == reg.PatientIds(
        source="column", column="patientid", description=chestxray.patient_ids.description
    )
    table = chestxray.metadata
    assert (table.csv, table.images, table.label_column) == ("metadata.csv", "images", "finding")
    assert table.label_rules == "course" and table.file_column is None  # not in our sources
    assert dict(table.filters) == {"modality": ("X-ray",), "view": ("PA", "AP")}

    radiography = reg.get_dataset_info("covid19-radiography")
    assert (radiography.data_root, radiography.images_subfolder) == (
        "COVID-19_Radiography_Dataset",
        "images",
    )
    assert radiography.patient_ids.source == "none"

    quex = reg.get_dataset_info("covid-qu-ex")
    assert quex.publisher_splits and quex.split_folders == () and quex.data_root is None

    ucsd = reg.get_dataset_info("ucsd-covid-ct")
    assert ucsd.patient_ids.source == "side-table" and ucsd.has_patient_ids
    assert ucsd.patient_ids.file == "COVID-CT-MetaInfo.xlsx" and ucsd.patient_ids.column is None

    mnist = reg.get_dataset_info("pneumoniamnist")
    assert dict(mnist.arrays.images) == {
        "train": "train_images",
        "val": "val_images",
        "test": "test_images",
    }
    labels = {mnist.classes[key] for key in mnist.arrays.label_values.values()}
    assert labels == {"Normal", "Pneumonia"}
    assert mnist.arrays.label_values["1"] == "pneumonia (label 1)"


def test_phantoms_entry_matches_the_real_generator():
    import inspect

    from covid_tutorial.data import phantoms

    inspect.signature(phantoms.generate_phantoms).bind(Path("out"), progress=False)
    info = reg.get_dataset_info("phantoms")
    assert set(info.classes) == set(phantoms.PHANTOM_FINDINGS.values())
    assert {info.classes[f] for f in phantoms.PHANTOM_FINDINGS.values()} == set(CLASS_NAMES)
    for label, finding in phantoms.PHANTOM_FINDINGS.items():
        assert info.classes[finding] == label
    table = info.metadata
    assert (table.csv, table.images) == (phantoms.METADATA_FILENAME, phantoms.IMAGE_FOLDER)
    columns = {table.label_column, table.file_column, info.patient_ids.column}
    assert columns <= set(phantoms.METADATA_COLUMNS)


def test_image_sources_name_only_classes_of_the_entry():
    entry = reg.REGISTRY["darkcovidnet"]
    assert entry.source_of("No_findings").startswith("NIH ChestX-ray8")
    assert reg.REGISTRY["covid19-image-dataset"].source_of("Covid").endswith(reg.REGISTRY["covid19-image-dataset"].licence)
    with pytest.raises(reg.RegistryError, match="image_sources"):
        dataclasses.replace(entry, image_sources={"Lung_Opacity": "somewhere"})
