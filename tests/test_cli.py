"""The command line: help, the thin commands, clear errors, and the seeded end-to-end demo."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from folder_snapshot import snapshot
from covid_tutorial.cli import build_parser, main


def test_every_command_has_help(capsys):
    for command in build_parser()._subparsers._group_actions[0].choices:
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        assert "usage: covid-tutorial" in capsys.readouterr().out


def test_phantoms_command_is_deterministic(tmp_path, capsys):
    assert main(["phantoms", "--out", str(tmp_path / "a"), "--patients", "6", "--size", "64", "--seed", "4"]) == 0
    assert main(["phantoms", "--out", str(tmp_path / "b"), "--patients", "6", "--size", "64", "--seed", "4"]) == 0
    assert "metadata.csv" in capsys.readouterr().out
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert files_a and all(
        (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files_a
    )


def test_split_command_writes_patient_disjoint_folds(phantom_dir, tmp_path, capsys):
    out = tmp_path / "splits.csv"
    assert main(["split", str(phantom_dir), "--folds", "3", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert (table.groupby("patient_id")["fold"].nunique() == 1).all()
    assert sorted(table["fold"].unique()) == [0, 1, 2]
    assert "No patient is in two partitions" in capsys.readouterr().out


def test_errors_are_one_clear_line_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["split", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "bad.csv" in err and "Traceback" not in err
    assert main(["split", str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_ci_profile_learns_and_writes_its_report(tmp_path):
    """The README's main job, seeded, as a new user runs it: macro F1 >= 0.90 on held-out patients."""
    from covid_tutorial.data import ensure_phantoms

    data = ensure_phantoms("ci", progress=False)
    before = snapshot(data)
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "covid_tutorial.cli", "demo", "--profile", "ci", "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert snapshot(data) == before, "the demo wrote into its input data folder"
    metrics = json.loads((out / "metrics.json").read_text())
    macro_f1 = metrics["metrics"]["macro"]["f1"]
    assert macro_f1["value"] >= 0.90, metrics
    assert macro_f1["ci_low"] <= macro_f1["value"] <= macro_f1["ci_high"]
    assert np.array(metrics["confusion_matrix"]).sum() == metrics["n_images"]
    report = (out / "report.html").read_text()
    for section in ["Metrics on", "Confusion matrix", "ROC curves", "Training curves", "Grad-CAM", "not for clinical use"]:
        assert section in report
    assert report.count("data:image/png;base64,") == 4
    config = json.loads((out / "config.json").read_text())
    assert config["backbone"] == "ResNet50" and config["weights"] is None
    splits = pd.read_csv(out / "splits.csv")
    assert (splits.groupby("patient_id")["split"].nunique() == 1).all()
    assert (out / "model.keras").stat().st_size > 1e6
    assert "Macro F1 on held-out patients" in done.stdout
