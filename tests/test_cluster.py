"""The comparison on a cluster: shards started by a scheduler, writing into one shared folder.

Three shard processes start at the same moment with ``--shard auto`` and the variables a
Slurm job array gives its tasks; they create ``comparison.json`` and ``folds.csv``
together, each appends to its own results file, and the merge must give the same table
as one uninterrupted run. The manifests of ``docs/cluster.md`` are parsed and their
command checked against the command line's parser.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from covid_tutorial import compare, metrics
from covid_tutorial.cli import build_parser, main
from covid_tutorial.errors import CourseError, RunError
from covid_tutorial.data.phantoms import generate_phantoms

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cluster.md"
MODELS = ["vgg16", "efficientnetb0"]
TINY = dict(folds=2, repeats=1, profile="ci", image_size=32, batch_size=32, head_epochs=1, eager=True, latency_repeats=1,
            progress=False)  # fmt: skip
ARGS = ["--models", *MODELS, "--folds", "2", "--repeats", "1", "--profile", "ci", "--image-size", "32", "--epochs", "1",
        "--batch-size", "32", "--eager", "--timed-calls", "1"]  # fmt: skip
DETERMINISTIC = ["model", "repeat", "fold", "split_seed", "train_seed", "image_size", "epochs_trained",
                 "n_train_images", "n_val_images", "n_test_images", "n_test_patients", "params"]  # fmt: skip


def _deterministic(results: pd.DataFrame) -> pd.DataFrame:
    columns = DETERMINISTIC + metrics.metric_columns(results)
    return results[columns].sort_values(["repeat", "fold", "model"]).reset_index(drop=True)


def test_scheduler_shard_reads_slurm_and_kubernetes():
    slurm = {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "3", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert compare.scheduler_shard(slurm) == (1, 4)
    assert compare.scheduler_shard({**slurm, "SLURM_ARRAY_TASK_ID": "3"}) == (4, 4)
    stepped = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "7", "SLURM_ARRAY_TASK_STEP": "2"}
    assert compare.scheduler_shard(stepped) == (3, 4), "--array=1-7:2 runs tasks 1, 3, 5, 7"
    with pytest.raises(CourseError, match="not a list"):  # --array=1,3,10 has 3 tasks but index 10
        compare.scheduler_shard({"SLURM_ARRAY_TASK_ID": "10", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "3"})
    assert compare.scheduler_shard({"JOB_COMPLETION_INDEX": "2", compare.SHARDS_ENV: "5"}) == (3, 5)
    with pytest.raises(CourseError, match=compare.SHARDS_ENV):
        compare.scheduler_shard({"JOB_COMPLETION_INDEX": "2"})
    with pytest.raises(CourseError, match="no scheduler"):
        compare.scheduler_shard({})


def test_three_shards_started_at_once_share_one_folder(tmp_path):
    data, out, reference_out = tmp_path / "ph", tmp_path / "shared", tmp_path / "whole"
    generate_phantoms(data, patients=30, size=64, seed=0, progress=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "JOB_COMPLETION"))}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", SLURM_ARRAY_TASK_MIN="1", SLURM_ARRAY_TASK_MAX="3",
               SLURM_ARRAY_TASK_COUNT="3", SLURM_ARRAY_TASK_STEP="1")  # fmt: skip
    command = [sys.executable, "-m", "covid_tutorial.cli", "compare", "run", str(data), *ARGS, "--out", str(out), "--shard", "auto"]
    shards = [
        subprocess.Popen(command, env={**env, "SLURM_ARRAY_TASK_ID": str(i)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in (1, 2, 3)
    ]  # fmt: skip
    reference = compare.run_comparison(data, reference_out, models=MODELS, **TINY)  # meanwhile, in this process
    for shard in shards:
        output, _ = shard.communicate(timeout=300)
        assert shard.returncode == 0, output[-3000:]
    files = {p.name for p in out.iterdir()}
    assert {"comparison.json", "folds.csv", "results-shard1of3.csv", "results-shard2of3.csv", "results-shard3of3.csv"} <= files
    assert not [name for name in files if name.startswith(".")], "no temporary file left behind"
    assert len(compare.read_results(out, [out / "results-shard1of3.csv"])) == 2, "4 runs in 3 shards: 2, 1, 1"
    assert (out / "folds.csv").read_bytes() == (reference_out / "folds.csv").read_bytes()
    assert main(["compare", "merge", str(out)]) == 0
    merged = compare.read_results(out)
    assert len(merged) == len(reference) == 4
    pd.testing.assert_frame_equal(_deterministic(merged), _deterministic(reference))
    with pytest.raises(RunError, match="folds: was 2, now 3"):  # a shard started with other settings
        compare.run_comparison(data, out, models=MODELS, max_runs=0, **{**TINY, "folds": 3})


def _fenced(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)


def _check_command(line: str) -> None:
    words = shlex.split(line)
    assert words[0] == "covid-tutorial"
    args = build_parser().parse_args(words[1:])
    assert args is not None


def test_the_slurm_script_and_the_kubernetes_job_run_valid_commands():
    (script,) = [block for block in _fenced("bash") if "#SBATCH" in block]
    assert re.search(r"^#SBATCH --array=1-\d+", script, flags=re.M)
    runs = [line for line in script.splitlines() if line.startswith("covid-tutorial compare")]
    assert any("--shard auto" in line and "--models zoo --folds 5 --repeats 5 --profile gpu" in line for line in runs)
    for line in runs:
        _check_command(line)
    (manifest,) = _fenced("yaml")
    documents = [d for d in yaml.safe_load_all(manifest) if d]
    job = next(d for d in documents if d["kind"] == "Job" and d["spec"].get("completionMode") == "Indexed")
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item["value"] for item in container.get("env", [])}
    assert int(env[compare.SHARDS_ENV]) == job["spec"]["completions"]
    line = " ".join(container["command"]) if container["command"][0] == "covid-tutorial" else container["args"][-1]
    assert "--shard auto" in line and "--models zoo --folds 5 --repeats 5 --profile gpu" in line
    _check_command(line)
    merges = [" ".join(d["spec"]["template"]["spec"]["containers"][0]["command"]) for d in documents if d is not job]
    assert merges and all("compare merge" in m for m in merges)
    for m in merges:
        _check_command(m)
