"""The RUN folder end to end: train, evaluate and predict from the command line, the course
predictor, thresholds, the benchmark, and the error paths a learner will meet."""

import json
import shutil

import keras
import numpy as np
import pandas as pd
import pytest

from covid_tutorial import __version__
from covid_tutorial.bench import benchmark_predict
from covid_tutorial.cli import main
from covid_tutorial.data.images import load_images
from covid_tutorial.metrics import decide, operating_point, threshold_for_sensitivity
from covid_tutorial.models import build_classifier
from covid_tutorial.pipeline import train_run
from covid_tutorial.predict import Predictor, fold_batchnorm
from covid_tutorial.runs import RUN_FORMAT, RunConfig, TrainingSettings, load_run

CLASSES = ["COVID-19", "Normal", "Pneumonia"]


@pytest.fixture(scope="module")
def small_run(phantom_dir, tmp_path_factory):
    """A RUN trained for one epoch on the phantoms (VGG16 at 32 px: seconds, not minutes)."""
    out = tmp_path_factory.mktemp("runs") / "small"
    train_run(
        phantom_dir, out, profile="ci", backbone="vgg16", image_size=32, batch_size=8, head_epochs=1,
        progress=False, evaluate=True,
    )
    return out


def fake_run(folder, class_names=CLASSES, size=32, **config):
    """A RUN folder with an untrained VGG16 (fast to build): for error paths and timing."""
    folder.mkdir(parents=True)
    build_classifier("vgg16", len(class_names), size, weights=None, seed=0).save(folder / "model.keras")
    training = TrainingSettings(
        backbone="VGG16", image_size=size, batch_size=8, head_epochs=1, fine_tune_epochs=0, fine_tune_layers=None,
        seed=0, weights=None, two_stages=False, learning_rate=1e-3, profile="ci", bootstrap_rounds=20,
    )
    settings = RunConfig(
        class_names=tuple(class_names), backbone="VGG16", image_size=size, preprocessing="caffe", training=training,
        data="DATA", versions={"covid_tutorial": __version__, "keras": keras.__version__}, status="complete",
    ).to_json()
    (folder / "config.json").write_text(json.dumps({**settings, **config}))
    return folder


def fails_clearly(argv, capsys, *fragments):
    """The command exits with 2 and one message naming the problem and what to do, no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


# ---------------------------------------------------------------- predictor and thresholds


def test_predict_names_the_class_the_model_means(tmp_path, phantom_dir, capsys):
    """A head rigged to answer "second class" must come out as that class's name, whatever the image."""
    run = fake_run(tmp_path / "run", class_names=["COVID-19", "Normal", "Pneumonia"])
    model = keras.models.load_model(run / "model.keras")
    kernel, _ = model.get_layer("head_logits").get_weights()
    model.get_layer("head_logits").set_weights([np.zeros_like(kernel), np.array([0.0, 5.0, 0.0], "float32")])
    model.save(run / "model.keras")
    image = next((phantom_dir / "images").glob("*.png"))
    assert main(["predict", str(run), str(image), "--json"]) == 0
    out = capsys.readouterr()
    (answer,) = json.loads(out.out)
    assert answer["predicted"] == "Normal"
    assert answer["probabilities"]["Normal"] == pytest.approx(np.exp(5) / (np.exp(5) + 2), abs=1e-5)
    assert "not for clinical use" in out.err
    assert main(["predict", str(run), str(image)]) == 0
    assert "Normal" in capsys.readouterr().out


@pytest.mark.slow
def test_predict_gives_the_right_class_for_known_phantoms(tmp_path, capsys):
    """Trained end to end as notebook 04 trains in the ci profile, on textbook phantoms (difficulty 0),
    then asked from the command line about held-out ones whose class is known: COVID-19 ones must
    come back as COVID-19."""
    from covid_tutorial.data.phantoms import generate_phantoms

    run, data = tmp_path / "run", tmp_path / "phantoms"
    generate_phantoms(data, patients=150, size=128, difficulty=0, progress=False)
    train_run(data, run, profile="ci", head_epochs=8, checkpoints=False, progress=False)
    splits = pd.read_csv(run / "splits.csv")
    test = splits[splits["split"] == "test"]
    capsys.readouterr()
    assert main(["predict", str(run), *test["path"], "--json"]) == 0
    predicted = np.array([answer["predicted"] for answer in json.loads(capsys.readouterr().out)])
    covid = (test["label"] == "COVID-19").to_numpy()
    assert covid.any() and (predicted[covid] == "COVID-19").all()
    assert (predicted == test["label"].to_numpy()).mean() >= 0.8


def test_predictor_matches_keras_and_reads_files_as_training_did(small_run):
    predictor = Predictor.from_run(small_run)
    splits = pd.read_csv(small_run / "splits.csv").head(6)
    images, _ = load_images(splits, 32, progress=False)
    expected = predictor.model.predict(np.repeat(images[..., None], 3, -1).astype("float32"), verbose=0)
    np.testing.assert_allclose(predictor.predict_arrays(images), expected, atol=1e-5)
    table = predictor.predict_files(splits["path"])  # with the temperature train fitted (calibration.json)
    assert predictor.calibration is not None
    np.testing.assert_allclose(table[CLASSES].to_numpy(), predictor.calibration.apply(expected), atol=1e-5)
    assert list(table.columns) == ["image", "predicted", *CLASSES]
    predictions = pd.read_csv(small_run / "predictions.csv")  # written at training time by model.predict
    again = predictor.predict_files(predictions["path"])
    np.testing.assert_allclose(again[CLASSES].to_numpy(), predictions[[f"p_{c}" for c in CLASSES]].to_numpy(), atol=1e-5)


def test_folding_batchnorm_into_convolutions_keeps_the_function():
    model = build_classifier("resnet50", 3, 32, weights=None, seed=0)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # ImageNet-like statistics, far from the initial 0 and 1
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.gamma.shape
            layer.set_weights([rng.uniform(0.5, 1.5, shape), rng.normal(0, 0.2, shape),
                               rng.normal(0, 0.2, shape), rng.uniform(0.5, 2.0, shape)])
    folded = fold_batchnorm(model)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    assert folded.count_params() < model.count_params()
    images = rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    expected = model.predict(images, verbose=0)
    np.testing.assert_allclose(folded.predict(images, verbose=0), expected, rtol=1e-4, atol=1e-5)
    predictor = Predictor(model, CLASSES, 32)
    np.testing.assert_allclose(predictor.predict_arrays(images), expected, rtol=1e-4, atol=1e-5)
    assert predictor.model is model, "Grad-CAM still gets the original layers"


def test_threshold_favouring_sensitivity_and_what_it_costs():
    probabilities = np.array([[0.9, 0.05, 0.05], [0.4, 0.5, 0.1], [0.2, 0.7, 0.1], [0.3, 0.1, 0.6], [0.05, 0.9, 0.05]])
    y_true = np.array([0, 0, 1, 2, 1])
    threshold = threshold_for_sensitivity(y_true, probabilities, CLASSES, target=1.0)
    assert threshold == pytest.approx(0.4), "the highest threshold that still finds every COVID-19 image"
    assert threshold_for_sensitivity(y_true, probabilities, CLASSES, target=0.5) == 1.0, "argmax is enough"
    np.testing.assert_array_equal(decide(probabilities, CLASSES), [0, 1, 1, 2, 1])
    np.testing.assert_array_equal(decide(probabilities, CLASSES, threshold=0.25), [0, 0, 1, 0, 1])
    argmax = operating_point(y_true, probabilities, CLASSES, n_bootstrap=50).set_index("metric")["value"]
    low = operating_point(y_true, probabilities, CLASSES, threshold=0.25, n_bootstrap=50).set_index("metric")["value"]
    assert argmax["sensitivity"] == 0.5 and low["sensitivity"] == 1.0
    assert argmax["specificity"] == 1.0 and low["specificity"] == pytest.approx(2 / 3), "the cost in specificity"


def test_benchmark_reports_every_variant(tmp_path):
    run = fake_run(tmp_path / "run")
    result = benchmark_predict(run, repeats=2, batch_size=2, batch_repeats=1, warmup=0, progress=False)
    methods = result.latency["method"].tolist()
    assert methods == ["model.predict", "tf.function", "tf.function + XLA", "BatchNorm folded + XLA", "course predictor"]
    assert (result.latency["median_ms"] > 0).all() and result.max_abs_difference < 1e-5
    text = str(result)
    assert "| course predictor |" in text and "images/s" in text and "CPU cores" in text


# ---------------------------------------------------------------- train, evaluate, resume


def test_evaluate_scores_only_held_out_patients_whatever_the_folder(small_run, phantom_dir, phantom_tree, tmp_path, capsys):
    splits = pd.read_csv(small_run / "splits.csv")
    held_out = int((splits["split"] == "test").sum())
    at_train_time = json.loads((small_run / "metrics.json").read_text())
    assert at_train_time["n_images"] == held_out
    for data, out in ((phantom_dir, tmp_path / "same"), (phantom_tree, tmp_path / "copy")):
        assert main(["evaluate", str(small_run), str(data), "--out", str(out), "--bootstrap-rounds", "20"]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["n_images"] == held_out and metrics["left_out"] == len(splits) - held_out
        assert np.array(metrics["confusion_matrix"]).sum() == held_out
        assert {"confusion_matrix.png", "roc_curves.png", "precision_recall.png", "reliability.png"} <= {
            p.name for p in (out / "figures").iterdir()
        }
        assert len(pd.read_csv(out / "predictions.csv")) == held_out
    assert "Left out" in capsys.readouterr().out


def test_train_on_a_folder_per_class(phantom_tree, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", str(phantom_tree), "--out", str(run), "--model", "vgg16", "--image-size", "32", "--epochs", "1", "--profile", "ci"]
    assert main(argv) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["class_names"] == CLASSES and config["backbone"] == "VGG16" and config["status"] == "complete"
    assert config["versions"]["tensorflow"] and config["preprocessing"] == "caffe"
    for name in ("model.keras", "history.csv", "splits.csv", "metrics.json"):
        assert (run / name).is_file(), name
    assert not (run / "checkpoint").exists(), "a finished run keeps no checkpoint"
    assert "A PATIENT-WISE SPLIT IS THEN IMPOSSIBLE" in capsys.readouterr().err


def test_a_binary_task_on_the_publishers_split_trains_and_evaluates(phantom_tree, tmp_path, capsys):
    # A CT-style collection: train/ and test/ folders, a negative class that mixes healthy and
    # diseased lungs. The RUN remembers the task; evaluate follows it.
    data = tmp_path / "collection"
    for k, image in enumerate(sorted(phantom_tree.rglob("*.png"))):
        part = "test" if k % 4 == 0 else "train"
        name = {"COVID-19": "CT_COVID", "Normal": "CT_NonCOVID", "Pneumonia": "CT_NonCOVID"}[image.parent.name]
        (data / part / name).mkdir(parents=True, exist_ok=True)
        shutil.copy(image, data / part / name / f"{image.parent.name}_{image.name}")
    run = tmp_path / "run"
    argv = ["train", str(data), "--out", str(run), "--classes", "COVID-19,Non-COVID", "--split", "publisher",
            "--model", "vgg16", "--image-size", "32", "--epochs", "1", "--profile", "ci"]  # fmt: skip
    assert main(argv) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["class_names"] == ["COVID-19", "Non-COVID"]
    splits = pd.read_csv(run / "splits.csv")
    assert (splits.loc[splits["split"] == "test", "path"].str.contains("/test/")).all()
    assert not (splits.loc[splits["split"] != "test", "path"].str.contains("/test/")).any()
    assert main(["evaluate", str(run), str(data), "--out", str(tmp_path / "scores")]) == 0
    scores = json.loads((tmp_path / "scores" / "metrics.json").read_text())
    assert scores["classes"] == ["COVID-19", "Non-COVID"] and len(scores["confusion_matrix"]) == 2


class Crash(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            raise KeyboardInterrupt("simulated crash")


def test_cli_resume_reaches_the_result_of_an_uninterrupted_run(phantom_dir, tmp_path, capsys):
    options = dict(profile="ci", backbone="vgg16", image_size=32, batch_size=8, head_epochs=3, progress=False)
    train_run(phantom_dir, tmp_path / "whole", checkpoints=False, **options)  # checkpoints change nothing
    with pytest.raises(KeyboardInterrupt):
        train_run(phantom_dir, tmp_path / "cut", callbacks=[Crash()], **options)
    fails_clearly(["predict", str(tmp_path / "cut"), "x.png"], capsys, "interrupted", "--resume")
    fails_clearly(
        ["train", str(phantom_dir), "--out", str(tmp_path / "cut"), "--resume", "--batch-size", "4"], capsys,
        "batch_size 4 (the run has 8)",
    )
    fails_clearly(["train", str(phantom_dir), "--out", str(tmp_path / "cut")], capsys, "--resume", "--overwrite")
    assert main(["train", str(phantom_dir), "--out", str(tmp_path / "cut"), "--resume", "--no-evaluate"]) == 0
    assert "Resuming VGG16 from the checkpoint after stage 'full' (epoch 2)" in capsys.readouterr().out
    whole, cut = (pd.read_csv(tmp_path / name / "history.csv") for name in ("whole", "cut"))
    assert len(cut) == 3
    np.testing.assert_allclose(cut["loss"], whole["loss"], rtol=1e-4, atol=1e-6)
    for ours, theirs in zip(load_run(tmp_path / "cut").model.get_weights(), load_run(tmp_path / "whole").model.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
    fails_clearly(["train", str(phantom_dir), "--out", str(tmp_path / "cut"), "--resume"], capsys, "nothing to resume")


# ---------------------------------------------------------------- error paths


def test_errors_for_missing_or_foreign_folders(tmp_path, capsys):
    fails_clearly(["predict", str(tmp_path / "nowhere"), "x.png"], capsys, "no such RUN folder", "covid-tutorial train")
    (tmp_path / "empty").mkdir()
    fails_clearly(["evaluate", str(tmp_path / "empty"), str(tmp_path)], capsys, "not a RUN folder")


def test_error_for_a_run_of_an_incompatible_version(tmp_path, capsys):
    run = fake_run(tmp_path / "run", run_format=RUN_FORMAT + 1, versions={"covid_tutorial": "9.0", "keras": keras.__version__})
    fails_clearly(["predict", str(run), "x.png"], capsys, "covid_tutorial 9.0", "Train it again")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "run_format": RUN_FORMAT, "versions": {"keras": "2.15.0"}}))
    fails_clearly(["predict", str(run), "x.png"], capsys, "Keras 2.15.0")


def test_error_for_a_wrong_number_of_classes(phantom_dir, tmp_path, capsys):
    run = fake_run(tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "class_names": ["COVID-19", "Normal"]}))
    fails_clearly(["predict", str(run), "x.png"], capsys, "lists 2 classes", "predicts 3")
    two = fake_run(tmp_path / "two", class_names=["COVID-19", "Normal"])
    fails_clearly(
        ["evaluate", str(two), str(phantom_dir)], capsys, "no class in the task ['COVID-19', 'Normal']",
        "--label-map", "--drop-unmapped",
    )  # fmt: skip


def test_error_for_unreadable_images(phantom_dir, tmp_path, capsys):
    run = fake_run(tmp_path / "run")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    good = next((phantom_dir / "images").glob("*.png"))
    err = fails_clearly(["predict", str(run), str(good), str(broken)], capsys, "broken.png", "nothing was predicted")
    assert "Re-export it as PNG or JPEG" in err
    fails_clearly(["predict", str(run), str(tmp_path / "missing.png")], capsys, "missing.png")


def test_model_files_load_in_safe_mode(tmp_path, capsys):
    """A model.keras with a Lambda layer (arbitrary code) is refused, not executed."""
    run = fake_run(tmp_path / "run", class_names=CLASSES)
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(3, activation="softmax")(
        keras.layers.Lambda(lambda x: x * 2)(keras.layers.GlobalAveragePooling2D()(inputs))
    )
    keras.Model(inputs, outputs).save(run / "model.keras")
    fails_clearly(["predict", str(run), "x.png"], capsys, "cannot be loaded", "train the run again")


def test_test_time_augmentation_predicts_each_view_of_each_image(small_run):
    predictor = Predictor.from_run(small_run)
    images, _ = load_images(pd.read_csv(small_run / "splits.csv").head(4), 32, progress=False)
    views = predictor.predict_augmented(images, shift=3)
    assert views.shape == (6, 4, 3)
    np.testing.assert_allclose(views[0], predictor.predict_arrays(images), atol=1e-6)
    np.testing.assert_allclose(views[1], predictor.predict_arrays(images[:, :, ::-1].copy()), atol=1e-6)
    moved = np.pad(images, [(0, 0), (3, 3), (3, 3)], mode="edge")[:, 0:32, 3:35]  # content moved down by 3 px
    np.testing.assert_allclose(views[2], predictor.predict_arrays(moved), atol=1e-6)
