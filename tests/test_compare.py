"""The model comparison: the zoo, patient-disjoint folds, resumable and shardable runs, the statistics.

The runs here are tiny on purpose (VGG16, 32 px, one epoch, steps run eagerly): they
check the machinery, not the models. Every hand computation is written out with
plain arithmetic, so a wrong formula in the package cannot hide behind the same
wrong formula in the test.
"""

import math

import keras
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from covid_tutorial import bench, compare, metrics, models, splits, train
from covid_tutorial.cli import main
from covid_tutorial.data import load_dataset
from covid_tutorial.errors import CourseError, RunError
from covid_tutorial.models import BACKBONES, build_classifier, get_backbone

# The slowest builds and steps of the zoo (about 10-25 s each on 2 busy CPU cores); they
# still run by default: `-m "not slow"` skips them.
SLOWEST = {"EfficientNetB7", "ResNet152V2", "InceptionResNetV2", "DenseNet201", "EfficientNetB6"}
TINY = dict(folds=2, repeats=1, profile="ci", image_size=32, batch_size=32, head_epochs=1, eager=True, latency_repeats=1,
            progress=False)  # fmt: skip


# ---------------------------------------------------------------- the zoo


def test_the_zoo_is_the_papers_twenty_plus_three_modern_references():
    assert len(models.PAPER_MODELS) == 20 and len(set(models.PAPER_MODELS)) == 20
    assert models.ZOO == models.PAPER_MODELS + ("EfficientNetV2B0", "EfficientNetV2S", "ConvNeXtTiny")
    assert all(name.lower() in BACKBONES for name in models.ZOO)
    assert models.resolve_models(["EFFICIENTNETB0", "resnet50", "efficientnetb0"]) == ["EfficientNetB0", "ResNet50"]
    assert models.resolve_models("efficientnets") == [f"EfficientNetB{i}" for i in range(8)]
    with pytest.raises(CourseError, match="Choose one of"):
        models.resolve_models(["resnet51"])


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOWEST else n for n in models.ZOO]
)
def test_every_zoo_model_builds_and_trains_one_step(name):
    """Build at the smallest size the model takes (75 px for the Inception family, else 32), predict,
    and take one optimizer step on two images: the graph is complete, differentiable and trainable."""
    size = 75 if get_backbone(name).min_size > 32 else 32
    keras.backend.clear_session()
    model = build_classifier(name, 3, size, weights=None, seed=0)
    images = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    probabilities = np.asarray(model(images, training=False))
    assert probabilities.shape == (2, 3) and np.allclose(probabilities.sum(1), 1, atol=1e-5)
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="categorical_crossentropy", run_eagerly=True)
    before = model.get_layer("head_logits").kernel.numpy().copy()
    loss = model.train_on_batch(images, np.eye(3, dtype="float32")[[0, 2]])
    assert np.isfinite(loss)
    assert not np.allclose(before, model.get_layer("head_logits").kernel.numpy()), "no step taken"
    assert all(np.isfinite(w.numpy()).all() for w in model.trainable_weights)


def test_efficientnet_b0_read_off_the_model():
    row = models.describe_backbone("EfficientNetB0")
    assert row["native_size"] == 224 and row["image_size"] == 224
    assert row["params"] == 4_049_571  # keras.applications, no top
    assert row["blocks"] == 16 and row["se_blocks"] == 16, "B0 has 16 MBConv blocks, each with squeeze-and-excitation"
    assert row["stem_width"] == 32 and row["head_width"] == 1280
    assert 0.38e9 < row["macs"] < 0.40e9, "Tan and Le (2019) give 0.39 B FLOPs (multiply-adds) for B0"


def test_efficientnet_scaling_ratios_and_phi_by_hand():
    zoo = pd.DataFrame(
        {
            "model": ["EfficientNetB0", "EfficientNetB3"],
            "native_size": [224, 300],
            "blocks": [16, 26],
            "head_width": [1280, 1536],
            "params_M": [4.0, 10.8],
            "GMACs": [0.4, 1.8],
            "macs": [0.4e9, 1.8e9],
        }
    )
    scaling = models.efficientnet_scaling(zoo).loc["EfficientNetB3"]
    assert scaling["depth_ratio"] == pytest.approx(26 / 16)
    assert scaling["width_ratio"] == pytest.approx(1536 / 1280)
    assert scaling["resolution_ratio"] == pytest.approx(300 / 224)
    assert scaling["phi_from_depth"] == pytest.approx(math.log(26 / 16) / math.log(1.2))
    assert scaling["phi_from_width"] == pytest.approx(math.log(1.2) / math.log(1.1))
    assert scaling["predicted_cost_ratio"] == pytest.approx(26 / 16 * 1.2**2 * (300 / 224) ** 2)
    assert scaling["measured_cost_ratio"] == pytest.approx(4.5)


# ---------------------------------------------------------------- folds


def test_folds_hold_no_shared_patient_and_are_the_same_for_every_call(phantom_dir):
    table = load_dataset(phantom_dir)
    folds = splits.comparison_folds(table, folds=3, repeats=2, seed=5)
    again = splits.comparison_folds(table, folds=3, repeats=2, seed=5)
    pd.testing.assert_frame_equal(folds, again)
    for r in range(2):
        column = folds[f"fold_{r}"]
        assert sorted(column.unique()) == [0, 1, 2]
        assert splits.shared_patients(column, folds["patient_id"]) == []
        assert (folds.groupby("patient_id")[f"fold_{r}"].nunique() == 1).all()
        assert (folds.groupby(f"fold_{r}")["label"].nunique() == 3).all(), "every fold holds every class"
    assert not (folds["fold_0"] == folds["fold_1"]).all(), "a new repeat draws new folds"
    train = folds[folds["fold_0"] != 0]
    validation = splits.validation_rows(train, seed=0)
    assert validation.any() and not validation.all()
    assert set(train["patient_id"][validation]).isdisjoint(train["patient_id"][~validation])


def test_shards_split_the_task_list_and_name_their_files():
    tasks = compare.comparison_tasks(["A", "B"], repeats=2, folds=2)
    assert tasks[:3] == [(0, 0, "A"), (0, 0, "B"), (0, 1, "A")], "every model on a round before the next round"
    assert compare.parse_shard("2/3") == (2, 3)
    with pytest.raises(CourseError):
        compare.parse_shard("4/3")
    assert compare.results_file_name((2, 3)) == "results-shard2of3.csv"
    assert compare.results_file_name(name="gpu-a") == "results-gpu-a.csv"
    assert compare.results_file_name() == "results.csv"


# ---------------------------------------------------------------- resume, shards, merge

DETERMINISTIC = ["model", "repeat", "fold", "split_seed", "train_seed", "image_size", "epochs_trained",
                 "n_train_images", "n_val_images", "n_test_images", "n_test_patients", "params"]  # fmt: skip


def _deterministic(results: pd.DataFrame) -> pd.DataFrame:
    columns = DETERMINISTIC + metrics.metric_columns(results)
    return results[columns].sort_values(["repeat", "fold", "model"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def uninterrupted(phantom_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    return compare.run_comparison(phantom_dir, out, models=["vgg16"], **TINY), out


def test_a_killed_run_resumes_to_the_same_results(phantom_dir, uninterrupted, tmp_path):
    reference, _ = uninterrupted
    assert len(reference) == 2 and reference["macro|f1"].notna().all()

    class Kill(Exception):
        pass

    def kill_after_first(row):
        raise Kill("simulated kill after the first result")

    with pytest.raises(Kill):
        compare.run_comparison(phantom_dir, tmp_path, models=["vgg16"], on_result=kill_after_first, **TINY)
    saved = tmp_path / "results.csv"
    assert len(compare.read_results(tmp_path)) == 1, "the finished run was saved before the kill"
    with open(saved, "a") as handle:  # a line cut short, as a kill during the write leaves it
        handle.write("VGG16,0,1,1,1,32,none")
    resumed = compare.run_comparison(phantom_dir, tmp_path, models=["vgg16"], **TINY)
    assert len(resumed) == 2
    pd.testing.assert_frame_equal(_deterministic(resumed), _deterministic(reference))
    again = compare.run_comparison(phantom_dir, tmp_path, models=["vgg16"], **TINY)
    pd.testing.assert_frame_equal(again, resumed)  # nothing left to do: nothing runs


def test_shards_on_two_machines_merge_to_the_same_results(phantom_dir, uninterrupted, tmp_path, capsys):
    reference, _ = uninterrupted
    common = ["--models", "vgg16", "--folds", "2", "--repeats", "1", "--profile", "ci", "--image-size", "32",
              "--epochs", "1", "--batch-size", "32", "--eager", "--latency-repeats", "1"]  # fmt: skip
    for shard in ("1/2", "2/2"):  # each "machine" writes its own file into its own folder
        assert main(["compare", str(phantom_dir), *common, "--shard", shard, "--out", str(tmp_path / shard[0])]) == 0
    merged = tmp_path / "merged"
    merged.mkdir()
    for shard in ("1", "2"):
        for name in ("comparison.json", "folds.csv"):
            (merged / name).write_bytes((tmp_path / shard / name).read_bytes())
        file = f"results-shard{shard}of2.csv"
        (merged / file).write_bytes((tmp_path / shard / file).read_bytes())
        assert len(compare.read_results(tmp_path / shard)) == 1
    assert main(["compare", "--merge", str(merged)]) == 0
    assert "Wrote merged_results.csv" in capsys.readouterr().out
    pd.testing.assert_frame_equal(_deterministic(compare.read_results(merged)), _deterministic(reference))
    for name in ("merged_results.csv", "summary.csv", "paired_tests.csv", "pareto.png", "report.md"):
        assert (merged / name).is_file()


def test_other_settings_in_the_same_folder_are_refused(phantom_dir, tmp_path):
    compare.run_comparison(phantom_dir, tmp_path, models=["vgg16"], max_runs=0, **TINY)
    assert (tmp_path / "comparison.json").is_file() and (tmp_path / "folds.csv").is_file()
    with pytest.raises(RunError, match="folds: was 2, now 3"):
        compare.run_comparison(phantom_dir, tmp_path, models=["vgg16"], **{**TINY, "folds": 3})
    # more models and more repeats are welcome: the folds of the first repeat stay the same
    compare.run_comparison(phantom_dir, tmp_path, models=["vgg16", "vgg19"], max_runs=0, **{**TINY, "repeats": 2})
    assert list(pd.read_csv(tmp_path / "folds.csv").columns[-2:]) == ["fold_0", "fold_1"]


def test_append_repairs_a_cut_line_and_read_results_keeps_each_run_once(tmp_path):
    columns = compare.results_columns(["A", "B"])
    row = {"model": "M", "repeat": 0, "fold": 0, "finished": "now", "macro|f1": 0.5}
    compare.append_result(tmp_path / "results-a.csv", row, columns)
    with open(tmp_path / "results-a.csv", "a") as handle:
        handle.write("M,0,1,unfinished")
    compare.append_result(tmp_path / "results-a.csv", {**row, "fold": 1, "macro|f1": 0.25}, columns)
    compare.append_result(tmp_path / "results-b.csv", {**row, "macro|f1": 0.9}, columns)  # same run, other machine
    results = compare.read_results(tmp_path)
    assert results[["fold", "macro|f1"]].to_numpy().tolist() == [[0, 0.5], [1, 0.25]]
    assert (tmp_path / "results-a.csv").read_text().count("\n") == 3


# ---------------------------------------------------------------- statistics


def _results(values_a, values_b, n_test=10, n_train=30):
    rows = []
    for model, values in (("A", values_a), ("B", values_b)):
        for j, value in enumerate(values):
            rows.append({"model": model, "repeat": j // 2, "fold": j % 2, "n_test_images": n_test,
                         "n_train_images": n_train, "params": 1, "latency_ms": 1.0, "images_per_s": 1.0,
                         "image_size": 32, "device": "test", "macro|f1": value, "COVID-19|f1": value / 2})  # fmt: skip
    return pd.DataFrame(rows)


def test_summary_ci_equals_a_hand_computation():
    a = [0.70, 0.80, 0.75, 0.85]
    summary = metrics.summarize_results(_results(a, [0.5, 0.6, 0.55, 0.65]))
    row = summary[(summary["model"] == "A") & (summary["class"] == "macro") & (summary["metric"] == "f1")].iloc[0]
    mean = (0.70 + 0.80 + 0.75 + 0.85) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in a) / 3)
    t = 3.182446305284263  # t(0.975, 3 degrees of freedom), from a printed table
    assert row["k"] == 4 and row["mean"] == pytest.approx(0.775)
    assert row["ci_low"] == pytest.approx(mean - t * sd / 2) and row["ci_high"] == pytest.approx(mean + t * sd / 2)
    corrected = t * sd * math.sqrt(1 / 4 + 10 / 30)
    assert row["ci_low_corrected"] == pytest.approx(mean - corrected)
    assert row["ci_high_corrected"] == pytest.approx(mean + corrected)
    per_class = summary[(summary["model"] == "A") & (summary["class"] == "COVID-19")]
    assert per_class["mean"].iloc[0] == pytest.approx(mean / 2), "per-class rows sit next to the macro ones"


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


# ---------------------------------------------------------------- speed options


def test_mixed_precision_copy_keeps_inputs_and_output_in_float32():
    keras.backend.clear_session()
    model = build_classifier("vgg16", 3, 32, weights=None, seed=0)
    mixed = train.to_mixed_precision(model)
    assert keras.config.dtype_policy().name == "float32", "the global policy is left as it was"
    assert mixed.get_layer("preprocess").compute_dtype == "float32"
    assert mixed.get_layer("block1_conv1").compute_dtype == "float16"
    assert mixed.get_layer("block1_conv1").kernel.dtype == "float32", "variables stay float32"
    assert mixed.get_layer("predictions").compute_dtype == "float32" and mixed.output.dtype == "float32"
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(mixed(images, training=False), model(images, training=False), atol=2e-2)
    mixed.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    assert isinstance(mixed.optimizer, keras.optimizers.LossScaleOptimizer), "small float16 gradients are scaled up"
    # No training step here: float16 backpropagation is emulated on CPUs and takes ~20 s even for this model.


def test_execution_options_reach_the_fit_of_train_two_stage():
    from covid_tutorial.train import train_two_stage

    keras.backend.clear_session()
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(keras.layers.Conv2D(2, 3)(inputs))
    x = keras.layers.Dense(3, name="head_logits")(keras.layers.Dropout(0.1, name="head_dropout")(x))
    model = keras.Model(inputs, keras.layers.Activation("softmax", name="predictions")(x))
    images = np.random.default_rng(0).uniform(0, 255, (8, 8, 8)).astype("uint8")
    labels = np.eye(3, dtype="float32")[np.arange(8) % 3]
    batches = train.HostAugmentedBatches(images, labels, batch_size=4, seed=0)
    first = next(iter(batches.dataset(0, 1)))[0].numpy()
    assert first.shape == (4, 8, 8, 3) and not np.allclose(first, np.repeat(images[batches.order(0)[:4]][..., None], 3, -1))
    val = (np.repeat(images[..., None], 3, -1).astype("float32"), labels)
    options = train.ExecutionOptions(jit_compile=True)
    model.jit_compile = False
    history = train_two_stage(model, batches, val, pretrained=False, head_epochs=1, fine_tune_epochs=0,
                              learning_rate=1e-3, verbose=0, callbacks=[options])  # fmt: skip
    assert len(history) == 1 and model.jit_compile is True and model.run_eagerly is False
    train_two_stage(model, batches, val, pretrained=False, head_epochs=1, fine_tune_epochs=0, learning_rate=1e-3,
                    verbose=0, callbacks=[train.ExecutionOptions(run_eagerly=True, jit_compile=True)])  # fmt: skip
    assert model.run_eagerly is True and model.jit_compile is False, "eager steps cannot be XLA-compiled"
    speed = bench.measure_training(model, batch_size=4, steps=1, jit_compile=True)
    assert speed["train_images_per_s"] > 0 and model.jit_compile is True


def test_speed_table_measures_images_per_second_with_and_without_xla():
    table = bench.speed_table(["vgg16"], image_size=32, batch_size=4, xla=(False, True), repeats=2, train=False, progress=False)
    assert table[["model", "precision", "xla"]].to_numpy().tolist() == [["VGG16", "float32", False], ["VGG16", "float32", True]]
    assert (table["images_per_s"] > 0).all() and (table["latency_ms"] > 0).all()
    assert table["device"].str.startswith(("CPU: ", "GPU: ")).all()
    assert "| VGG16 | 32 | 4 | float32 | on |" in bench.speed_markdown(table)
