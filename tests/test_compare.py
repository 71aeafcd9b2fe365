"""The model comparison: the zoo, patient-disjoint folds, resumable and shardable runs, the statistics.

The runs here are tiny on purpose (VGG16, 32 px, one epoch, steps run eagerly): they
check the machinery, not the models. Every hand computation is written out with
plain arithmetic, so a wrong formula in the package cannot hide behind the same
wrong formula in the test.
"""


import pandas as pd
import pytest

from covid_tutorial import compare, metrics
from covid_tutorial.data import splits
from covid_tutorial.cli import main
from covid_tutorial.data.table import load_dataset
from covid_tutorial.errors import CourseError, RunError

TINY = dict(folds=2, repeats=1, profile="ci", image_size=32, batch_size=32, head_epochs=1, eager=True, latency_repeats=1,
            progress=False)  # fmt: skip


# ---------------------------------------------------------------- the zoo


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
              "--epochs", "1", "--batch-size", "32", "--eager", "--timed-calls", "1"]  # fmt: skip
    for shard in ("1/2", "2/2"):  # each "machine" writes its own file into its own folder
        assert main(["compare", "run", str(phantom_dir), *common, "--shard", shard, "--out", str(tmp_path / shard[0])]) == 0
    merged = tmp_path / "merged"
    merged.mkdir()
    for shard in ("1", "2"):
        for name in ("comparison.json", "folds.csv"):
            (merged / name).write_bytes((tmp_path / shard / name).read_bytes())
        file = f"results-shard{shard}of2.csv"
        (merged / file).write_bytes((tmp_path / shard / file).read_bytes())
        assert len(compare.read_results(tmp_path / shard)) == 1
    assert main(["compare", "merge", str(merged)]) == 0
    assert "Wrote merged_results.csv" in capsys.readouterr().out
    pd.testing.assert_frame_equal(_deterministic(compare.read_results(merged)), _deterministic(reference))
    for name in ("merged_results.csv", "summary.csv", "paired_tests.csv", "pareto.png", "report.md"):
        assert (merged / name).is_file()
    assert "logit scale" in (merged / "report.md").read_text(), "the report states how its intervals were made"


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


# ---------------------------------------------------------------- speed options


    # No training step here: float16 backpropagation is emulated on CPUs and takes ~20 s even for this model.


