"""One run's settings: `covid-tutorial train` and `covid-tutorial compare run` size a training alike.

Both commands are driven through the command line on the phantoms; the functions that build
and fit a network are replaced by recorders that stop the command at its first fit, so
nothing heavy is trained and no ImageNet weights are downloaded.
"""

import json

import numpy as np
import pandas as pd
import pytest

from covid_tutorial import __version__, compare, pipeline
from covid_tutorial.cli import main
from covid_tutorial.errors import RunError
from covid_tutorial.models import get_backbone
from covid_tutorial.profiles import PROFILES, TrainingSettings
from covid_tutorial.runs import Evaluation, RunConfig, read_run_config, write_evaluation

KNOBS = ("image_size", "batch_size", "weights", "two_stages", "head_epochs", "fine_tune_epochs", "learning_rate")


class FirstFit(Exception):
    """Raised by the recorder at the first fit: the settings are known, the training is not needed."""


def record_training(monkeypatch, module, builder: str) -> dict:
    """Replace ``module``'s network builder and ``train_two_stage`` by recorders; return what they saw."""
    seen = {}

    def build(name, classes, size, weights=None, **_):
        seen.update(image_size=int(size), weights=weights)
        return object()  # never used: the fit below stops the command first

    def fit(model, train_ds, val_ds, *, pretrained, head_epochs, fine_tune_epochs, learning_rate, **_):
        seen.update(batch_size=train_ds.batch_size, two_stages=bool(pretrained), head_epochs=head_epochs,
                    fine_tune_epochs=fine_tune_epochs, learning_rate=float(learning_rate))  # fmt: skip
        raise FirstFit

    monkeypatch.setattr(module, builder, build)
    monkeypatch.setattr(module, "train_two_stage", fit)
    return seen


OPTIONS = ["--image-size", "48", "--batch-size", "4", "--epochs", "2", "--fine-tune-epochs", "1"]


@pytest.mark.parametrize("options", [[], OPTIONS], ids=["profile-sizes", "options"])
@pytest.mark.parametrize("weights", ["profile", "none"])
@pytest.mark.parametrize("profile", ["ci", "page", "cpu", "gpu"])
def test_train_and_compare_run_train_alike(profile, weights, options, phantom_dir, tmp_path, monkeypatch, capsys):
    """The bug this guards against: with COVID_TUTORIAL_WEIGHTS=none, `compare run` decided
    the stages by the weights (one stage) where `train` asked the profile (two stages)."""
    if weights == "none":
        monkeypatch.setenv("COVID_TUTORIAL_WEIGHTS", "none")
    else:
        monkeypatch.delenv("COVID_TUTORIAL_WEIGHTS", raising=False)
    trained = record_training(monkeypatch, pipeline, "build_classifier")
    with pytest.raises(FirstFit):
        main(["train", str(phantom_dir), "--out", str(tmp_path / "run"), "--profile", profile, *options])
    compared = record_training(monkeypatch, compare, "build_for_comparison")
    with pytest.raises(FirstFit):
        main(["compare", "run", str(phantom_dir), "--models", "resnet50", "--out", str(tmp_path / "cmp"),
              "--profile", profile, *options])  # fmt: skip
    capsys.readouterr()
    assert set(trained) == set(compared) == set(KNOBS)
    assert compared == trained, f"profile {profile}, weights {weights}: compare run {compared} but train {trained}"
    if options:
        assert (trained["image_size"], trained["batch_size"], trained["head_epochs"]) == (48, 4, 2)


# ---------------------------------------------------------------- the resolver


def test_settings_come_from_the_profile_unless_an_option_is_given(monkeypatch):
    monkeypatch.delenv("COVID_TUTORIAL_WEIGHTS", raising=False)
    ci = TrainingSettings.resolve("ci", backbone=get_backbone("resnet50"))
    assert (ci.backbone, ci.image_size, ci.batch_size, ci.seed) == ("ResNet50", 64, 16, 0)
    assert (ci.weights, ci.two_stages, ci.profile, ci.bootstrap_rounds) == (None, False, "ci", 200)
    cpu = TrainingSettings.resolve("cpu", head_epochs=0, fine_tune_epochs=0, batch_size=2, learning_rate=0.5, seed=3)
    assert (cpu.head_epochs, cpu.fine_tune_epochs, cpu.batch_size, cpu.learning_rate, cpu.seed) == (0, 0, 2, 0.5, 3)
    assert (cpu.weights, cpu.two_stages, cpu.backbone, cpu.image_size) == ("imagenet", True, None, 224)


def test_weights_none_keeps_the_profiles_two_stages(monkeypatch):
    monkeypatch.setenv("COVID_TUTORIAL_WEIGHTS", "none")
    for name in PROFILES:
        settings = TrainingSettings.resolve(name)
        assert settings.weights is None
        assert settings.two_stages == (PROFILES[name].weights is not None), name


def test_the_image_size_is_the_native_one_when_unset_and_never_below_the_backbones_least():
    gpu = TrainingSettings.resolve("gpu")
    assert gpu.image_size is None
    assert gpu.for_backbone(get_backbone("inceptionv3")).image_size == 299
    assert gpu.for_backbone(get_backbone("resnet50")).image_size == 224
    ci = TrainingSettings.resolve("ci")
    assert ci.for_backbone(get_backbone("inceptionv3")).image_size == 75
    assert TrainingSettings.resolve("ci", image_size=96, backbone=get_backbone("vgg16")).image_size == 96


def test_run_configs_written_before_the_resolver_still_load(tmp_path):
    training = TrainingSettings.resolve("ci", backbone=get_backbone("vgg16"), image_size=32)
    config = RunConfig(class_names=("COVID-19", "Normal"), backbone="VGG16", image_size=32, preprocessing="caffe",
                       training=training, data="DATA", versions={"covid_tutorial": __version__})  # fmt: skip
    content = config.to_json()
    assert list(content["training"]) == [
        "backbone", "image_size", "batch_size", "head_epochs", "fine_tune_epochs", "fine_tune_layers", "seed",
        "weights", "two_stages", "learning_rate", "profile", "bootstrap_rounds",
    ], "the field names are the RUN format"
    for key in ("two_stages", "bootstrap_rounds"):  # not recorded by the first RUNs of format 1
        del content["training"][key]
    (tmp_path / "config.json").write_text(json.dumps(content))
    read = read_run_config(tmp_path).training
    assert read == TrainingSettings(**{**vars(training), "bootstrap_rounds": 1000})


def test_a_comparison_started_before_two_stages_were_recorded(phantom_dir, tmp_path, monkeypatch):
    """An old comparison.json implies two stages exactly with weights: a cpu comparison on random
    weights that trained one stage is not continued with two, a consistent one resumes."""
    tiny = dict(models=["vgg16"], folds=2, image_size=32, batch_size=8, head_epochs=1, max_runs=0, progress=False)
    monkeypatch.setenv("COVID_TUTORIAL_WEIGHTS", "none")
    for profile, resumes in (("ci", True), ("cpu", False)):
        out = tmp_path / profile
        compare.run_comparison(phantom_dir, out, profile=profile, **tiny)
        manifest = json.loads((out / compare.MANIFEST).read_text())
        assert manifest["settings"]["two_stages"] is (profile == "cpu")
        del manifest["settings"]["two_stages"]
        (out / compare.MANIFEST).write_text(json.dumps(manifest))
        if resumes:
            compare.run_comparison(phantom_dir, out, profile=profile, **tiny)
        else:
            with pytest.raises(RunError, match="two_stages: was False, now True"):
                compare.run_comparison(phantom_dir, out, profile=profile, **tiny)


# ---------------------------------------------------------------- the evaluation


def test_an_evaluation_prints_its_metrics_and_writes_its_files(tmp_path):
    class_names = ["COVID-19", "Normal", "Pneumonia"]
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"path": [f"{i}.png" for i in range(12)], "label": class_names * 4,
                          "patient_id": [f"p{i // 2}" for i in range(12)]})  # fmt: skip
    probabilities = rng.dirichlet(np.ones(3), size=12)
    evaluation = pipeline.score_predictions(probabilities, None, table, class_names, n_bootstrap=20)
    assert isinstance(evaluation, Evaluation)
    text = str(evaluation)
    assert text.startswith("Scores on 12 images of 6 patients, 95% bootstrap CI over patients (20 rounds):")
    assert "macro" in text and "[" in text and "roc_auc" in text
    summary = write_evaluation(tmp_path, evaluation, class_names)
    assert summary["confusion_matrix"] == evaluation.confusion.tolist()
    assert len(pd.read_csv(tmp_path / "predictions.csv")) == 12
