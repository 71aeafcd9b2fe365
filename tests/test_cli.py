"""The command line: help, the thin commands, clear errors, and the seeded end-to-end demo."""

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from folder_snapshot import snapshot

from covid_tutorial.cli import build_parser, main


def walk_commands(parser=None, path=(), help_line=None):
    """(command path, its parser, its one-line help) for the program and every command and subcommand."""
    parser = parser or build_parser()
    yield path, parser, help_line
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield from walk_commands(sub, (*path, name), helps.get(name))


def options_by_name():
    """Every option string -> [(command path, action)] over the whole command tree."""
    found = {}
    for path, parser, _ in walk_commands():
        for action in parser._actions:
            for option in action.option_strings:
                found.setdefault(option, []).append((" ".join(path), action))
    return found


def test_every_command_and_subcommand_has_a_help_line_a_description_and_helped_options(capsys):
    commands = list(walk_commands())
    assert {" ".join(path) for path, _, _ in commands} >= {
        "compare run", "compare merge", "compare zoo", "compare speed", "bench predict", "bench pipeline", "bench load", "bench gradcam",
    }
    for path, parser, help_line in commands:
        name = " ".join(path) or "covid-tutorial"
        assert parser.description, f"{name}: no description"
        if path:
            assert help_line and "\n" not in help_line, f"{name}: no one-line help"
        for action in parser._actions:
            assert action.help, f"{name} {action.option_strings or action.dest}: no help"
        with pytest.raises(SystemExit) as exit_info:
            main([*path, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: covid-tutorial {' '.join(path)}".rstrip() in " ".join(capsys.readouterr().out.split())


def test_positionals_use_the_course_metavars():
    allowed = {"DATA", "RUN", "DIR", "IMAGE", "NAME", "COMMAND", "BENCHMARK", "SUBCOMMAND"}
    for path, parser, _ in walk_commands():
        for action in parser._actions:
            if not action.option_strings and action.dest != "help":
                assert action.metavar in allowed, (path, action.dest, action.metavar)


def test_one_name_per_concept_across_commands():
    options = options_by_name()
    for gone in ("--backbone", "--latency-repeats", "--bootstrap", "--merge", "--zoo", "--speed"):
        assert gone not in options, f"{gone} is used by {[where for where, _ in options[gone]]}"
    assert not [option for option in options if "backbone" in option]
    for where, action in options["--repeats"]:
        assert "k-fold" in action.help, f"{where}: --repeats must mean the repeats of the k-fold"
    timed = {where for where, _ in options["--timed-calls"]}
    assert timed == {"bench predict", "bench gradcam", "bench load", "compare run", "compare speed"}
    assert {where for where, _ in options["--model"]} == {"train", "bench gradcam"}
    assert {where for where, _ in options["--models"]} == {"compare run", "compare zoo", "compare speed"}
    assert {where for where, _ in options["--bootstrap-rounds"]} == {"evaluate"}
    for option, uses in options.items():  # the same option takes the same kind of value everywhere
        assert len({(action.type, action.nargs, type(action)) for _, action in uses}) == 1, option
        if option != "--out":  # --out is a DIR, except a RUN for train and a CSV for split
            assert len({action.metavar for _, action in uses}) == 1, option
    assert {action.metavar for _, action in options["--out"]} == {"DIR", "RUN", "CSV"}
    for option in ("--profile", "--epochs", "--fine-tune-epochs"):
        helps = {action.help for where, action in options[option] if where != "bench pipeline"}
        assert len(helps) == 1, (option, helps)


@pytest.mark.parametrize(
    "argv",
    [
        ["compare", "DATA", "--models", "vgg16", "--out", "OUT"],
        ["compare", "--merge", "DIR"],
        ["compare", "--zoo"],
        ["compare", "--speed"],
        ["compare", "run", "DATA", "--models", "vgg16", "--out", "OUT", "--latency-repeats", "1"],
        ["compare", "speed", "--latency-repeats", "1"],
        ["compare", "speed", "--repeats", "1"],
        ["bench", "gradcam", "--backbone", "vgg16"],
        ["bench", "gradcam", "--repeats", "1"],
        ["bench", "predict", "RUN", "--repeats", "1"],
        ["evaluate", "RUN", "DATA", "--bootstrap", "20"],
        ["inspect"],
    ],
)
def test_old_spellings_and_missing_arguments_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, module, function, expected",
    [
        (["compare", "run", "DATA", "--models", "vgg16", "resnet50", "--out", "OUT", "--repeats", "3", "--timed-calls", "4",
          "--epochs", "2", "--fine-tune-epochs", "1", "--seed", "5", "--profile", "ci"],
         "covid_tutorial.compare", "run_comparison",
         {"models": ["vgg16", "resnet50"], "repeats": 3, "latency_repeats": 4, "head_epochs": 2, "fine_tune_epochs": 1,
          "seed": 5, "profile": "ci",
          "command": "covid-tutorial compare run DATA --models vgg16 resnet50 --out OUT --repeats 3 --timed-calls 4 "
                     "--epochs 2 --fine-tune-epochs 1 --seed 5 --profile ci"}),
        (["evaluate", "RUN", "DATA", "--bootstrap-rounds", "20"], "covid_tutorial.pipeline", "evaluate_run",
         {"n_bootstrap": 20}),
        (["train", "DATA", "--out", "RUN", "--model", "vgg16", "--epochs", "2"], "covid_tutorial.pipeline", "train_run",
         {"backbone": "vgg16", "head_epochs": 2, "seed": None}),
        (["bench", "phantoms", "--out", "OUT", "--difficulties", "0", "0.3", "--profile", "ci"],
         "covid_tutorial.pipeline", "calibrate_phantoms", {"difficulties": [0.0, 0.3], "profile": "ci"}),
        (["phantoms", "--out", "OUT", "--difficulty", "0.2", "--no-lesions"],
         "covid_tutorial.data", "generate_phantoms", {"difficulty": 0.2, "lesions": False}),
        (["compare", "speed", "--models", "vgg16", "--timed-calls", "2", "--xla", "--inference-only"],
         "covid_tutorial.bench", "speed_table",
         {"repeats": 2, "xla": (False, True), "precisions": ("float32",), "train": False, "batch_size": 16}),
    ],
)  # fmt: skip
def test_options_reach_the_library_under_their_keyword_names(argv, module, function, expected, monkeypatch, capsys):
    import importlib

    import covid_tutorial.cli as cli

    calls = []

    class Stop(Exception):
        pass

    def record(*args, **kwargs):
        calls.append(kwargs)
        raise Stop

    monkeypatch.setattr(importlib.import_module(module), function, record)
    with pytest.raises(Stop):
        cli.main(argv)
    assert calls and {key: calls[0][key] for key in expected} == expected


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


def one_error_line(capsys, *fragments):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], err
    return lines[0]


def test_an_unusable_output_path_is_one_error_line_and_debug_shows_the_traceback(phantom_dir, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    argv = ["split", str(phantom_dir), "--out", str(blocker / "splits.csv")]
    assert main(argv) == 2
    one_error_line(capsys, str(blocker))
    with pytest.raises(OSError):
        main(["--debug", *argv])


def test_phantoms_refuse_a_folder_holding_other_files_in_one_error_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["phantoms", "--out", str(tmp_path), "--patients", "3", "--size", "32"]) == 2
    one_error_line(capsys, str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_compare_merge_of_a_missing_folder_is_one_error_line(tmp_path, capsys):
    assert main(["compare", "merge", str(tmp_path / "nowhere")]) == 2
    one_error_line(capsys, "nowhere")


def test_compare_zoo_prints_the_table_and_writes_it(tmp_path, capsys):
    assert main(["compare", "zoo", "--models", "vgg16", "--image-size", "32", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = markdown_rows(out)
    assert rows[0][:2] == ["model", "family"] and ["VGG16", "VGG"] in [row[:2] for row in rows]
    table = pd.read_csv(tmp_path / "zoo.csv")
    assert table["model"].tolist() == ["VGG16"] and table["params"].iloc[0] > 1e6


def test_compare_speed_appends_one_row_per_setting(tmp_path, capsys):
    argv = ["compare", "speed", "--models", "vgg16", "--image-size", "32", "--batch-size", "2", "--inference-only",
            "--timed-calls", "1", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    assert main(argv) == 0
    assert ["VGG16", "32", "2", "float32", "off"] in [row[:5] for row in markdown_rows(capsys.readouterr().out)]
    speed = pd.read_csv(tmp_path / "speed.csv")
    assert len(speed) == 2 and (speed["images_per_s"] > 0).all()


def test_bench_gradcam_builds_the_model_it_is_given(capsys):
    argv = ["bench", "gradcam", "--model", "vgg16", "--image-size", "32", "--timed-calls", "1", "--warmup", "0",
            "--scorecam-maps", "0"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    result = json.loads(out[: out.rindex("}") + 1])
    assert "vgg16" in result["model"].lower() and result["image_size"] == 32 and result["repeats"] == 1
    assert "Grad-CAM of one image costs" in out and "Score-CAM" not in out


@pytest.mark.slow
def test_phantom_calibration_trains_per_difficulty_and_on_the_control(tmp_path):
    """One small network per trial against the 1-NN lookup on the same split: textbook phantoms
    are learnt, the control without lesions is not (the lookup has nothing to look up there)."""
    import dataclasses

    from covid_tutorial.pipeline import calibrate_phantoms
    from covid_tutorial.profiles import get_profile

    tiny = dataclasses.replace(get_profile("ci"), phantom_patients=45, phantom_size=64, image_size=32,
                               head_epochs=1, bootstrap_rounds=50)  # fmt: skip
    table = calibrate_phantoms(tmp_path, difficulties=(0.0,), profile=tiny, progress=False)
    assert table[["difficulty", "lesions"]].drop_duplicates().values.tolist() == [[0.0, True], [0.5, False]]
    assert set(table["model"]) == {"network", "1-NN on 32-px thumbnails"}
    assert (table["CI low"] <= table["macro F1"]).all() and (table["macro F1"] <= table["CI high"]).all()
    lookup = table[table["model"] != "network"].set_index("lesions")["macro F1"]
    assert lookup[True] > 0.8 and lookup[False] < 0.6
    assert pd.read_csv(tmp_path / "calibration.csv").shape == table.shape


@pytest.mark.slow
def test_demo_ci_profile_learns_and_writes_its_report(tmp_path):
    """The README's main job, seeded, as a new user runs it: on the phantoms' calibrated default
    difficulty the network is right most of the time but not always (macro F1 between 0.85 and
    0.98 on held-out patients, with an interval of real width)."""
    from covid_tutorial.data.table import ensure_phantoms

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
    assert 0.85 <= macro_f1["value"] <= 0.98, metrics
    assert macro_f1["ci_low"] <= macro_f1["value"] <= macro_f1["ci_high"]
    assert macro_f1["ci_high"] - macro_f1["ci_low"] > 0.05, "the phantoms are too easy to tell anything"
    assert np.array(metrics["confusion_matrix"]).sum() == metrics["n_images"]
    report = (out / "report.html").read_text()
    for section in ["Metrics on", "Confusion matrix", "ROC curves", "Training curves", "Grad-CAM", "not for clinical use",
                    "Decision curve", "Calibration: ECE before", "Referral at fixed coverage"]:
        assert section in report
    assert report.count("data:image/png;base64,") == 7
    for written in ("decision_curve.csv", "calibration.csv", "risk_coverage.csv", "calibration.json", "confounders.json"):
        assert (out / written).is_file(), written
    card = (out / "model_card.md").read_text()
    assert "# Model card: ResNet50 for COVID-19, Normal, Pneumonia" in card and "## Known shortcuts" in card
    checklist = json.loads((out / "reporting_checklist.json").read_text())
    assert {"claim", "tripod_ai"} == set(checklist)
    config = json.loads((out / "config.json").read_text())
    assert config["backbone"] == "ResNet50" and config["weights"] is None
    splits = pd.read_csv(out / "splits.csv")
    assert (splits.groupby("patient_id")["split"].nunique() == 1).all()
    assert (out / "model.keras").stat().st_size > 1e6
    assert "Macro F1 on held-out patients" in done.stdout


def markdown_rows(text: str) -> list[list[str]]:
    """The cells of each row of the Markdown tables in ``text``, stripped of padding."""
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in text.splitlines() if line.startswith("|")]


def test_tensorflow_start_up_lines_stay_off_the_terminal(tmp_path):
    # TensorFlow 2.21 prints absl, oneDNN and CUDA lines on import that no variable silences.
    command = [sys.executable, "-m", "covid_tutorial.cli", "evaluate", str(tmp_path / "no-run"), str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: {tmp_path / 'no-run'}: no such RUN folder. Train one with "
        f"`covid-tutorial train DATA --out {tmp_path / 'no-run'}`."
    ]


def test_run_in_process_prints_the_command_and_its_output_as_typed(tmp_path, monkeypatch, capsys):
    from covid_tutorial.cli import run_in_process

    monkeypatch.chdir(tmp_path)
    run_in_process("phantoms", "--out", "phantoms-here", "--patients", 6, "--size", 32, "--seed", 3)
    printed = capsys.readouterr().out
    assert printed.startswith("$ covid-tutorial phantoms --out phantoms-here --patients 6 --size 32 --seed 3\n")
    assert len(list((tmp_path / "phantoms-here" / "images").glob("*.png"))) > 0
    assert len(printed.splitlines()) > 1, "what the command printed follows the command"
    assert f"{tmp_path}{os.sep}" not in printed, "paths under the working folder are shown relative to it"


def test_run_in_process_raises_when_the_command_fails(tmp_path, capsys):
    from covid_tutorial.cli import run_in_process

    with pytest.raises(RuntimeError, match="exit status 2"):
        run_in_process("inspect", tmp_path / "no-such-folder")
    assert "error:" in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="exit status 2"):
        run_in_process("train", "--no-such-flag")  # argparse's usage error, not a SystemExit
