"""The source network (ImageNet or the course's own, cached) and the data-efficiency curve."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from covid_tutorial import transfer
from covid_tutorial.errors import CourseError
from covid_tutorial.transfer import (
    IMAGENET_NOTOP_FILE,
    SourceSettings,
    data_efficiency_curve,
    imagenet_weights_cached,
    pretrained_source_network,
    source_labels,
    train_subset,
)

TINY = SourceSettings(patients=6, image_size=32, epochs=1, batch_size=8)


def _split_table(patients_per_class: int = 6) -> pd.DataFrame:
    rows = []
    for label in ("COVID-19", "Normal", "Pneumonia"):
        for p in range(patients_per_class):
            for image in range(2):
                rows.append({"label": label, "patient_id": f"{label[0]}{p}", "image": image})
    table = pd.DataFrame(rows)
    table["split"] = np.where(table["patient_id"].str[1:].astype(int) < 4, "train", "val")
    table.loc[table["patient_id"].str[1:].astype(int) == 5, "split"] = "test"
    return table


def test_source_labels_merge_every_lesion_into_opacity():
    labels = source_labels(["Normal", "COVID-19", "Pneumonia"])
    assert list(labels) == ["clear", "opacity", "opacity"]


def test_train_subset_takes_whole_patients_per_class_and_nests():
    table = _split_table()
    small, large = train_subset(table, 1, seed=3), train_subset(table, 3, seed=3)
    assert table[small].groupby("label")["patient_id"].nunique().tolist() == [1, 1, 1]
    assert table[large].groupby("label")["patient_id"].nunique().tolist() == [3, 3, 3]
    assert (table.loc[small, "split"] == "train").all()
    assert not (small & ~large).any(), "a smaller subset lies inside every larger one"
    assert table[small].groupby("patient_id").size().eq(2).all(), "all images of a chosen patient"


def test_train_subset_refuses_more_patients_than_there_are():
    with pytest.raises(CourseError, match="has 4"):
        train_subset(_split_table(), 5)


def test_imagenet_weights_found_only_where_keras_keeps_them(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert not imagenet_weights_cached("ResNet50")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / IMAGENET_NOTOP_FILE).write_bytes(b"")
    assert imagenet_weights_cached("ResNet50")
    assert not imagenet_weights_cached("DenseNet121")
    source = pretrained_source_network(TINY)
    assert source.kind == "imagenet" and source.weights == "imagenet" and "Keras holds" in source.reason


@pytest.mark.slow  # two ResNet50 trainings, minutes on 2 busy CPU cores
def test_course_source_network_is_trained_once_then_read_from_the_cache(tmp_path, monkeypatch):
    import keras

    from covid_tutorial.models import build_classifier

    monkeypatch.setattr(transfer, "_code_digest", lambda: "fixed")  # another hand may edit the generator meanwhile
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # no ImageNet weights here
    monkeypatch.setenv("COVID_TUTORIAL_CACHE", str(tmp_path / "cache"))
    first = pretrained_source_network(TINY)
    assert first.kind == "course" and not first.cached and first.seconds > 0
    assert "no ImageNet weights" in first.reason and "opacity vs clear" in first.description
    assert first.weights.endswith(".weights.h5") and str(tmp_path / "cache") in first.weights
    assert first.summary["patients"] == 6 and len(first.history) == 1
    again = pretrained_source_network(TINY)
    assert again.cached and again.weights == first.weights and again.seconds == 0
    other = pretrained_source_network(SourceSettings(patients=6, image_size=32, epochs=1, batch_size=8, seed=2))
    assert other.weights != first.weights, "other settings, another cache entry"
    model = build_classifier("ResNet50", 3, 48, weights=first.weights, seed=0)
    bare = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    bare.load_weights(first.weights)
    for name in ("conv1_conv", "conv5_block3_3_bn"):
        for mine, saved in zip(model.get_layer(name).get_weights(), bare.get_layer(name).get_weights()):
            np.testing.assert_array_equal(mine, saved)


@pytest.mark.slow  # three ResNet50 trainings
def test_data_efficiency_curve_compares_both_starts_on_the_same_test_patients(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("COVID_TUTORIAL_CACHE", str(tmp_path / "cache"))
    source = pretrained_source_network(TINY)
    table = _split_table()
    images = np.random.default_rng(0).integers(0, 255, (len(table), 32, 32), dtype=np.uint8)
    curve = data_efficiency_curve(
        images, table, ["COVID-19", "Normal", "Pneumonia"], source, patients_per_class=(2,),
        image_size=32, head_epochs=1, fine_tune_epochs=1, batch_size=8, n_bootstrap=20,
    )
    assert list(curve["start"]) == ["pretrained", "scratch"]
    assert list(curve["training_patients"]) == [6, 6]
    assert (curve["epochs"] == 2).all(), "scratch trains as many epochs as the two stages together"
    assert (curve["ci_low"] <= curve["ci_high"]).all() and curve["macro_f1"].between(0, 1).all()
    gaps = curve.attrs["gaps"]
    assert list(gaps.index) == [2]
    for n, row in gaps.iterrows():
        scores = curve[curve["patients_per_class"] == n].set_index("start")["macro_f1"]
        assert row.gap == pytest.approx(scores["pretrained"] - scores["scratch"])
        assert row.ci_low <= row.ci_high
    assert curve.attrs["test_patients"] == 3


def test_a_curve_without_sizes_trains_nothing_and_still_plots():
    # notebook 04's cpu profile: no points, for memory; the cells after it still run
    from covid_tutorial.figures import plot_data_efficiency

    table = _split_table()
    images = np.zeros((len(table), 32, 32), dtype=np.uint8)
    curve = data_efficiency_curve(images, table, ["COVID-19", "Normal", "Pneumonia"], None, patients_per_class=())
    assert curve.empty and curve.attrs["gaps"].empty
    assert curve.attrs["test_patients"] == 3 and curve.attrs["test_images"] == 6
    assert not plot_data_efficiency(curve).axes[0].lines


def test_cache_key_changes_with_the_generator_code(monkeypatch):
    key = transfer._cache_key(TINY)
    monkeypatch.setattr(transfer, "_code_digest", lambda: "another")
    assert transfer._cache_key(TINY) != key
