"""The ``covid-tutorial`` command line: a thin layer over the package's functions.

Every subcommand calls the same function a notebook would and prints what it returns;
this module only maps options to keyword arguments. One name per idea across commands:
``--model`` (one backbone) or ``--models`` (several), ``--repeats`` (repeats of the
k-fold), ``--timed-calls`` (calls timed by a benchmark), ``--bootstrap-rounds``,
``--profile``, ``--seed``, ``--out``, ``--image-size``, ``--batch-size``, ``--epochs``,
``--fine-tune-epochs``. Errors about data, runs, downloads and the user's files are
printed as one ``error:`` line (exit code 2); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import warnings
from pathlib import Path

from . import NOT_FOR_CLINICAL_USE, __version__
from .profiles import PROFILES
from .system import release_memory, start_tensorflow_quietly


class _HelpFormatter(argparse.HelpFormatter):
    """Appends each option's default to its help, unless it has none or the help already names it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or isinstance(action.default, list):
            return text
        return text + " (default: %(default)s)"


def _add_command(commands, name: str, func, help: str, description: str) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name, help=help, description=description, formatter_class=_HelpFormatter, allow_abbrev=False
    )
    if func is not None:  # None: a group whose subcommands set their own
        parser.set_defaults(func=func)
    return parser


# ---------------------------------------------------------------- options shared by several commands


def _add_profile(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        choices=list(PROFILES),
        help="ci: tests, tiny and fast; page: the committed notebook pages (128 px, 2 CPU cores); "
        "cpu: a laptop or Binder (224 px, ImageNet); gpu: full runs "
        "(default: $COVID_TUTORIAL_PROFILE, else cpu)",
    )


def _add_seed(parser: argparse.ArgumentParser, default: int | None = 0, detail: str = "") -> None:
    parser.add_argument("--seed", type=int, default=default, help=f"random seed{detail} (default: 0)")


DATA_HELP = (
    "a folder (one subfolder per class, or per class and patient, optionally under train/val/test), "
    "a metadata CSV or a folder holding one, a .npz archive, or a name from `covid-tutorial datasets`"
)


def _add_data(
    parser: argparse.ArgumentParser, *, positional: bool = True, task: bool = True, unmapped: bool = True
) -> None:
    """DATA and the options that say how to read it, the same in every command."""
    if positional:
        parser.add_argument("data", type=Path, metavar="DATA", help=DATA_HELP)
    parser.add_argument(
        "--images", type=Path, metavar="DIR", help="image folder for a metadata CSV (default: beside the CSV)"
    )
    parser.add_argument(
        "--collection", metavar="NAME",
        help="read DATA with the rules of this registry entry (class names, patient ids, layout): for a "
        "copy you fetched by hand",
    )  # fmt: skip
    parser.add_argument(
        "--label-map", metavar="MAP",
        help="your labels to the task's classes, 'LABEL=CLASS,...' or a TOML file, e.g. "
        "'CT_NonCOVID=Non-COVID,No_findings=Normal'",
    )  # fmt: skip
    if unmapped:
        parser.add_argument(
            "--drop-unmapped", action="store_true", help="drop images whose label maps to no class of the task"
        )
    if task:
        parser.add_argument(
            "--classes", metavar="LIST",
            help="the task: class names in the model's output order, e.g. COVID-19,Non-COVID "
            "(default: COVID-19,Normal,Pneumonia)",
        )  # fmt: skip


def _add_training(parser: argparse.ArgumentParser) -> None:
    """The training options that ``train`` and ``compare run`` share, with the same meaning."""
    parser.add_argument(
        "--image-size", type=int, metavar="PX",
        help="input size of the classifier in px (default: the profile's; gpu: each model's native size)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, metavar="N", help="images per batch (default: the profile's)")
    parser.add_argument(
        "--epochs", type=int, metavar="N",
        help="epochs of stage 1, the new head on a frozen backbone; without ImageNet weights, of the whole "
        "training (default: the profile's)",
    )  # fmt: skip
    parser.add_argument(
        "--fine-tune-epochs", type=int, metavar="N",
        help="epochs of stage 2, the top blocks fine-tuned; 0 skips it (default: the profile's)",
    )  # fmt: skip


def _add_distribute(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--distribute", choices=["mirrored"],
        help="mirrored: train on every visible GPU at once (tf.distribute.MirroredStrategy); --batch-size is then "
        "per GPU (default: one device)",
    )  # fmt: skip
    parser.add_argument("--devices", metavar="LIST", help="with --distribute: the devices to use, e.g. /gpu:0,/gpu:1")


def _add_timed_calls(parser: argparse.ArgumentParser, default: int, warmup: bool = True) -> None:
    parser.add_argument(
        "--timed-calls", type=int, default=default, metavar="N",
        help="calls timed for each measurement, of which the median is reported",
    )  # fmt: skip
    if warmup:
        parser.add_argument("--warmup", type=int, default=3, metavar="N", help="untimed calls before the timed ones")


def _add_models(parser: argparse.ArgumentParser, required: bool = False, default=None) -> None:
    shown = f" (default: {' '.join(default)})" if default else ""
    parser.add_argument(
        "--models", nargs="+", metavar="NAME", required=required, default=default,
        help="keras.applications names in any case (efficientnetb0 resnet50 ...) or a group: zoo (all 23), "
        f"paper (the 20 of Garg et al. 2022), efficientnets, modern{shown}",
    )  # fmt: skip


def _unmapped(args) -> str:
    return "drop" if getattr(args, "drop_unmapped", False) else "error"


def _reading(args) -> dict:
    """How to read DATA, as load_dataset's keyword arguments."""
    from .data import parse_classes, parse_label_map

    reading = {
        "collection": args.collection,
        "label_map": parse_label_map(args.label_map) if args.label_map else None,
        "unmapped": _unmapped(args),
    }
    if hasattr(args, "classes"):  # evaluate and explain follow the RUN's task instead
        reading["classes"] = parse_classes(args.classes) if args.classes else None
    return reading


def _load(args):
    from .data import load_dataset

    return load_dataset(args.data, args.images, **_reading(args))


# ---------------------------------------------------------------- the commands
#
# Each command is two functions side by side: ``_add_NAME_command`` declares its options
# (a subparser whose ``func`` is the handler) and ``cmd_NAME`` calls the package with them.


def _add_demo_command(commands) -> None:
    demo = _add_command(
        commands, "demo", cmd_demo,
        help="the whole course in one run: phantoms, patient split, ResNet50, metrics, Grad-CAM, report",
        description="Make the phantom dataset if missing, split it by patient, train a ResNet50 "
        "classifier, evaluate it on held-out patients with 95% CIs and write DIR/report.html.",
    )  # fmt: skip
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), metavar="DIR", help="output folder")
    _add_profile(demo)


def cmd_demo(args) -> int:
    from .pipeline import run_demo

    run_demo(args.out, args.profile)
    return 0


def _add_phantoms_command(commands) -> None:
    phantoms = _add_command(
        commands, "phantoms", cmd_phantoms,
        help="write the embedded synthetic chest X-ray dataset",
        description="Write procedurally generated chest radiographs (COVID-19, other pneumonia, "
        "normal), their lesion masks and a metadata.csv into a new or empty folder. Same seed, same bytes.",
    )  # fmt: skip
    phantoms.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (new or empty)")
    phantoms.add_argument("--patients", type=int, default=60, metavar="N", help="number of patients")
    phantoms.add_argument("--size", type=int, default=128, metavar="PX", help="side of the written images in px")
    phantoms.add_argument(
        "--modality", choices=["xray", "ct"], default="xray",
        help="xray: chest radiographs; ct: adjacent axial CT slices of one synthetic volume per patient",
    )  # fmt: skip
    phantoms.add_argument("--slices", type=int, default=16, metavar="N", help="with --modality ct: slices per patient")
    phantoms.add_argument(
        "--difficulty", type=float, metavar="D",
        help="xray: 0 (textbook cases, one ideal scanner) to 1 (mild cases, overlapping classes, "
        "varied pose and exposure, side markers); default: the calibrated value in data/README.md",
    )  # fmt: skip
    phantoms.add_argument(
        "--no-lesions", action="store_true",
        help="xray: the same patients and labels with their lesions left out, a control that any model must score at chance on",
    )  # fmt: skip
    _add_seed(phantoms)


def cmd_phantoms(args) -> int:
    from .data import DEFAULT_DIFFICULTY, generate_ct_phantoms, generate_phantoms, phantom_counts

    if args.modality == "ct":
        table = generate_ct_phantoms(args.out, patients=args.patients, slices=args.slices, size=args.size, seed=args.seed)
    else:
        table = generate_phantoms(
            args.out, patients=args.patients, size=args.size, seed=args.seed,
            difficulty=DEFAULT_DIFFICULTY if args.difficulty is None else args.difficulty,
            lesions=not args.no_lesions,
        )  # fmt: skip
    print(phantom_counts(table).to_string())
    print(f"Wrote {len(table)} images, their lesion masks and metadata.csv to {args.out}")
    return 0


def _add_split_command(commands) -> None:
    split = _add_command(
        commands, "split", cmd_split,
        help="patient-wise train/val/test split or stratified grouped k-fold, as a CSV",
        description="Split DATA by patient, so that no patient is in two partitions: train, val and "
        "test, or with --folds a stratified patient-grouped k-fold. Writes one row per image.",
    )  # fmt: skip
    _add_data(split)
    split.add_argument("--folds", type=int, metavar="K", help="k of a stratified patient-grouped k-fold (default: train/val/test)")
    split.add_argument("--val-size", type=float, default=0.2, metavar="SHARE", help="share of the patients for validation")
    split.add_argument("--test-size", type=float, default=0.2, metavar="SHARE", help="share of the patients for the test")
    _add_seed(split)
    split.add_argument("--out", type=Path, default=Path("splits.csv"), metavar="CSV", help="output CSV")


def cmd_split(args) -> int:
    from .data import partition_counts, patient_folds, split_by_patient

    table = _load(args)
    if args.folds:
        table = patient_folds(table, folds=args.folds, seed=args.seed)
        column = "fold"
    else:
        table = split_by_patient(table, val_size=args.val_size, test_size=args.test_size, seed=args.seed)
        column = "split"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(partition_counts(table, column).to_string())
    print(f"No patient is in two partitions. Wrote {args.out}")
    return 0


def _add_inspect_command(commands) -> None:
    inspect = _add_command(
        commands, "inspect", cmd_inspect,
        help="classes, patients, sizes, unreadable and missing files, exact and near duplicates",
        description="Read every image of DATA once and report what could hurt training: class "
        "balance, images per patient, image sizes and pixel formats, unreadable files, rows whose "
        "file is missing, labels with no course class, and exact (SHA-256) and near (perceptual "
        "hash) duplicates within and across patients, classes and publisher splits. Writes nothing.",
    )  # fmt: skip
    source = inspect.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "data", type=Path, nargs="?", metavar="DATA",
        help="a folder with one subfolder per class, a folder holding metadata.csv, or a metadata CSV",
    )  # fmt: skip
    source.add_argument("--metadata", type=Path, metavar="CSV", help="a metadata CSV (instead of DATA)")
    _add_data(inspect, positional=False, unmapped=False)
    inspect.add_argument("--json", action="store_true", help="print the full report as JSON")


def cmd_inspect(args) -> int:
    from .data import inspection_text

    reading = _reading(args)
    del reading["unmapped"]  # inspect reports labels with no class instead of refusing them
    print(inspection_text(args.metadata or args.data, args.images, as_json=args.json, **reading))
    return 0


def _add_datasets_command(commands) -> None:
    _add_command(
        commands, "datasets", cmd_datasets,
        help="list the real collections the course knows, with licence and how to get each",
        description="Print the registry of collections: classes, patient ids, licence, size and how "
        "to get each (download, Kaggle token or manual steps).",
    )  # fmt: skip


def cmd_datasets(args) -> int:
    from .data import default_data_dir, format_dataset_table

    print(format_dataset_table(data_dir=default_data_dir()))
    return 0


def _add_download_command(commands) -> None:
    download = _add_command(
        commands, "download", cmd_download,
        help="download (or generate) a dataset from the registry, verified and safely unpacked",
        description="Download a collection with a progress bar, verify its hash, unpack it safely. "
        "Kaggle collections need your own Kaggle token; some collections need manual steps, "
        "which this command prints. Files go to $COVID_TUTORIAL_DATA (default: data/downloads).",
    )  # fmt: skip
    download.add_argument("name", metavar="NAME", help="a name from `covid-tutorial datasets`")
    download.add_argument("--dest", type=Path, metavar="DIR", help="folder to put it in")
    download.add_argument("--force", action="store_true", help="download again even if present")


def cmd_download(args) -> int:
    from .data import download_dataset

    path = download_dataset(args.name, args.dest, force=args.force)
    print(f"Ready: {path}")
    return 0


def _add_train_command(commands) -> None:
    train = _add_command(
        commands, "train", cmd_train,
        help="train a classifier on DATA and write a RUN folder (config, model, history, metrics)",
        description="Split DATA by patient, train a classifier (stage 1: new head on a frozen backbone; "
        "stage 2: top blocks fine-tuned with BatchNorm frozen and a tenth of the learning rate; "
        "without ImageNet weights the whole network trains at once), score it on the held-out test "
        "patients and write RUN/: config.json, model.keras, splits.csv, history.csv, metrics.json. "
        "Every epoch end is checkpointed: --resume continues an interrupted run to the same result.",
    )  # fmt: skip
    _add_data(train)
    train.add_argument("--out", type=Path, required=True, metavar="RUN", help="the RUN folder to write")
    train.add_argument(
        "--split", choices=["patient", "publisher"], default="patient",
        help="patient: a new patient-wise split; publisher: the train/val/test folders the collection ships",
    )  # fmt: skip
    train.add_argument(
        "--model", metavar="NAME", help="a keras.applications backbone, any case, e.g. resnet50, efficientnetb0 (default: resnet50)"
    )
    _add_training(train)
    train.add_argument(
        "--fine-tune-layers", type=int, metavar="N", help="backbone layers unfrozen in stage 2 (default: the last stage)"
    )
    _add_seed(train, default=None)
    train.add_argument("--resume", action="store_true", help="continue an interrupted training in RUN")
    train.add_argument("--overwrite", action="store_true", help="start again in a RUN folder that holds a run")
    train.add_argument("--no-evaluate", action="store_true", help="skip scoring the held-out test patients")
    _add_distribute(train)
    _add_profile(train)


def cmd_train(args) -> int:
    from .pipeline import train_run

    try:
        train_run(
            args.data,
            args.out,
            backbone=args.model,
            profile=args.profile,
            image_size=args.image_size,
            batch_size=args.batch_size,
            head_epochs=args.epochs,
            fine_tune_epochs=args.fine_tune_epochs,
            fine_tune_layers=args.fine_tune_layers,
            seed=args.seed,
            image_dir=args.images,
            split=args.split,
            resume=args.resume,
            overwrite=args.overwrite,
            evaluate=not args.no_evaluate,
            distribute=args.distribute,
            devices=args.devices,
            **_reading(args),
        )
    except KeyboardInterrupt:
        print(
            f"Training stopped. Continue it from its last finished epoch with: "
            f"covid-tutorial train {args.data} --out {args.out} --resume",
            file=sys.stderr,
        )
        raise
    print(f"Next: covid-tutorial evaluate {args.out} DATA   or   covid-tutorial predict {args.out} IMAGE...")
    return 0


def _add_evaluate_command(commands) -> None:
    evaluate = _add_command(
        commands, "evaluate", cmd_evaluate,
        help="score a RUN on DATA: metrics with 95%% CIs over patients, figures, per-image predictions",
        description="Predict every image of DATA that the RUN was not trained or validated on (matched by "
        "file content, so the RUN's own data leaves its held-out patients) and write metrics.json, "
        "metrics.csv, predictions.csv and figures/ into RUN (or --out).",
    )  # fmt: skip
    evaluate.add_argument("run", type=Path, metavar="RUN", help="a folder written by covid-tutorial train")
    _add_data(evaluate, task=False)
    evaluate.add_argument("--out", type=Path, metavar="DIR", help="where to write the results (default: RUN)")
    evaluate.add_argument(
        "--bootstrap-rounds", type=int, metavar="N",
        help="resamples of the test patients for each 95%% CI (default: the RUN's profile)",
    )  # fmt: skip
    evaluate.add_argument(
        "--by", action="append", default=[], metavar="COLUMN",
        help="audit the scores per group of this metadata column (sex, age, view, hospital...): each group's "
        "metrics with 95%% CIs and the gap between the best and the worst; repeat for several columns",
    )  # fmt: skip


def cmd_evaluate(args) -> int:
    from .pipeline import evaluate_run

    evaluate_run(
        args.run,
        args.data,
        image_dir=args.images,
        out=args.out,
        n_bootstrap=args.bootstrap_rounds,
        by=args.by,
        **_reading(args),
    )
    print(f"Next: covid-tutorial card {args.run}   (a model card and a reporting checklist from the RUN)")
    return 0


def _add_card_command(commands) -> None:
    card = _add_command(
        commands, "card", cmd_card,
        help="write a model card and a reporting checklist (CLAIM 2024, TRIPOD+AI) for a RUN",
        description="Read the RUN folder (its configuration, split, calibration, confounder check and every "
        "evaluation in it or its sub-folders) and write model_card.md and .json, and reporting_checklist.md "
        "and .json: each checklist item the RUN can answer is answered with the file that shows it; every other "
        "item stays open for the author.",
    )  # fmt: skip
    card.add_argument("run", type=Path, metavar="RUN", help="a folder written by covid-tutorial train")
    card.add_argument("--out", type=Path, metavar="DIR", help="where to write the files (default: RUN)")


def cmd_card(args) -> int:
    from .card import write_model_card

    card = write_model_card(args.run, args.out)
    out = args.out or args.run
    checklist = card.checklist()
    answered = ", ".join(f"{g['name']} {sum(i['status'] != 'open: for the author' for i in g['items'])} of "
                         f"{len(g['items'])} items" for g in checklist.values())
    print(f"Wrote model_card.md, model_card.json, reporting_checklist.md and reporting_checklist.json to {out}")
    print(f"Answered from the RUN: {answered}; the others are open for the author.")
    return 0


def _add_predict_command(commands) -> None:
    predict = _add_command(
        commands, "predict", cmd_predict,
        help="class probabilities for image files, from a trained RUN",
        description="Read each IMAGE as the RUN's training did and print its class probabilities. "
        + NOT_FOR_CLINICAL_USE,
    )  # fmt: skip
    predict.add_argument("run", type=Path, metavar="RUN", help="a folder written by covid-tutorial train")
    predict.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="PNG, JPEG, BMP or TIFF files")
    predict.add_argument("--gradcam", type=Path, metavar="DIR", help="also write Grad-CAM overlays to DIR")
    predict.add_argument("--json", action="store_true", help="print JSON instead of a table")


def cmd_predict(args) -> int:
    import json

    from .pipeline import save_gradcam_overlays
    from .predict import Predictor, predictions_as_json

    predictor = Predictor.from_run(args.run)
    table = predictor.predict_files(args.images)
    if args.json:
        print(json.dumps(predictions_as_json(table, predictor.class_names), indent=2))
    else:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.gradcam:
        written = save_gradcam_overlays(predictor, table["image"].tolist(), table["predicted"].tolist(), args.gradcam)
        print(f"Wrote {len(written)} Grad-CAM overlay(s) of the predicted class to {args.gradcam}", file=sys.stderr)
    print(NOT_FOR_CLINICAL_USE, file=sys.stderr)
    return 0


def _add_explain_command(commands) -> None:
    explain = _add_command(
        commands, "explain", cmd_explain,
        help="heatmaps of a trained RUN on DATA: overlays (PNG) and their measured quality (CSV)",
        description="Compute Grad-CAM, Grad-CAM++, Score-CAM or SmoothGrad maps for images of DATA "
        "(the RUN's test split when the RUN was trained on DATA, else all images), write overlays "
        "and a table per method and class: pointing game and energy inside the lesion masks "
        "(phantoms) and faithfulness (confidence drop when the map's top pixels are removed).",
    )  # fmt: skip
    explain.add_argument("run", type=Path, metavar="RUN", help="a folder written by covid-tutorial train")
    _add_data(explain, task=False)
    explain.add_argument(
        "--method", nargs="+", default=["gradcam"], choices=["gradcam", "gradcam++", "scorecam", "saliency"],
        metavar="METHOD", help="one or more of gradcam, gradcam++, scorecam, saliency (default: gradcam)",
    )  # fmt: skip
    explain.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    explain.add_argument("--split", default="test", choices=["train", "val", "test"], help="the RUN's split to explain")
    explain.add_argument("--per-class", type=int, default=8, metavar="N", help="images per class, 0 for all")
    explain.add_argument("--layer", metavar="NAME", help="layer for the CAM methods (default: the last feature map)")
    explain.add_argument("--target", default="true", choices=["true", "predicted"], help="the class to explain")
    explain.add_argument("--fraction", type=float, default=0.1, metavar="SHARE", help="share of pixels removed for faithfulness")
    explain.add_argument("--max-maps", type=int, default=32, metavar="N", help="Score-CAM: feature maps used")


def cmd_explain(args) -> int:
    from .explain import quality_text
    from .pipeline import explain_run

    summary = explain_run(
        args.run,
        args.data,
        args.out,
        args.method,
        split=args.split,
        per_class=args.per_class or None,
        layer_name=args.layer,
        target=args.target,
        fraction=args.fraction,
        max_maps=args.max_maps,
        image_dir=args.images,
        **_reading(args),
    )
    print(quality_text(summary, args.fraction))
    print(f"Wrote overlays and explanation_quality.csv to {args.out}")
    return 0


# ---------------------------------------------------------------- covid-tutorial bench BENCHMARK


def _add_bench_command(commands) -> None:
    bench = _add_command(
        commands, "bench", None,
        help="benchmarks on this machine: predict, pipeline, gradcam",
        description="Time the course's code on this machine; each benchmark prints the machine, its "
        "load, the date and the software versions with its figures. Timed calls: --timed-calls.",
    )  # fmt: skip
    benchmarks = bench.add_subparsers(
        dest="benchmark", required=True, metavar="BENCHMARK", help="covid-tutorial bench BENCHMARK --help tells more"
    )
    for add_benchmark in (
        _add_bench_predict_command,
        _add_bench_pipeline_command,
        _add_bench_load_command,
        _add_bench_phantoms_command,
        _add_bench_gradcam_command,
    ):
        add_benchmark(benchmarks)


def _add_bench_predict_command(benchmarks) -> None:
    bench_predict = _add_command(
        benchmarks, "predict", cmd_bench_predict,
        help="latency of one image and throughput of a batch: model.predict against compiled variants",
        description="Latency of one image with model.predict, a tf.function, XLA and the course "
        "predictor (BatchNorm folded, one tf.function), timed in turns; then throughput for a batch.",
    )  # fmt: skip
    bench_predict.add_argument("run", type=Path, metavar="RUN", help="a folder written by covid-tutorial train")
    _add_timed_calls(bench_predict, 30)
    bench_predict.add_argument("--batch-size", type=int, default=16, metavar="N", help="images per batch, for throughput")


def cmd_bench_predict(args) -> int:
    from .bench import benchmark_predict

    result = benchmark_predict(args.run, repeats=args.timed_calls, batch_size=args.batch_size, warmup=args.warmup)
    print()
    print(f"Command: covid-tutorial bench predict {args.run} --timed-calls {args.timed_calls} "
          f"--batch-size {args.batch_size} --warmup {args.warmup}")  # fmt: skip
    print(result)
    return 0


def _add_bench_pipeline_command(benchmarks) -> None:
    bench_pipeline = _add_command(
        benchmarks, "pipeline", cmd_bench_pipeline,
        help="images per second: tf-keras ImageDataGenerator against the course's tf.data pipeline",
        description="Load and augment the images of DATA with ImageDataGenerator (RGB as older "
        "tutorials do, and grayscale) and with the course pipeline (decode once, cached uint8, one "
        "fused affine warp per batch); print images per second for epoch 1 and later epochs.",
    )  # fmt: skip
    _add_data(bench_pipeline)
    bench_pipeline.add_argument("--image-size", type=int, default=224, metavar="PX", help="size of the loaded images in px")
    bench_pipeline.add_argument("--batch-size", type=int, default=32, metavar="N", help="images per batch")
    bench_pipeline.add_argument(
        "--epochs", type=int, default=3, metavar="N", help="epochs (passes over DATA) timed for each pipeline, at least 2"
    )


def cmd_bench_pipeline(args) -> int:
    from .bench import benchmark_input_pipeline

    result = benchmark_input_pipeline(
        _load(args), image_size=args.image_size, batch_size=args.batch_size, epochs=args.epochs
    )
    print(f"Command: covid-tutorial bench pipeline {args.data} --image-size {args.image_size} "
          f"--batch-size {args.batch_size} --epochs {args.epochs}")  # fmt: skip
    print(result)
    return 0


def _add_bench_load_command(benchmarks) -> None:
    bench_load = _add_command(
        benchmarks, "load", cmd_bench_load,
        help="seconds to read DATA's images: one by one in full, the course's loader, and its cache",
        description="Read the images of DATA three ways, in turns and in one run: one file after the "
        "other decoded in full (the old path); the course's loader with an empty cache (a thread pool, "
        "JPEG decoded at reduced size when the target is smaller); and the same loader a second time, "
        "from its cache of decoded, resized images. Prints seconds, images per second and the ratios.",
    )  # fmt: skip
    _add_data(bench_load)
    bench_load.add_argument("--image-size", type=int, default=224, metavar="PX", help="size of the loaded images in px")
    bench_load.add_argument("--workers", type=int, metavar="N", help="reading threads (default: the cores this process may use)")
    _add_timed_calls(bench_load, default=3, warmup=False)


def cmd_bench_load(args) -> int:
    from .bench import benchmark_image_loading

    result = benchmark_image_loading(
        _load(args), image_size=args.image_size, workers=args.workers, repeats=args.timed_calls
    )
    print(f"Command: {args.command_line}")
    print(result)
    return 0


def _add_bench_phantoms_command(benchmarks) -> None:
    bench_phantoms = _add_command(
        benchmarks, "phantoms", cmd_bench_phantoms,
        help="how hard the phantoms are: the demo's network against a 1-NN lookup, per difficulty",
        description="For each difficulty, draw the demo's phantom set, train the demo's network on it "
        "and score it on the held-out patients, beside a 1-nearest-neighbour lookup on 32-px thumbnails "
        "of the same split; then the control: the default difficulty with the lesions left out, on which "
        "both must score at chance. Macro F1 with 95% bootstrap CIs over patients. Minutes per difficulty.",
    )  # fmt: skip
    bench_phantoms.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the phantoms and RUNs")
    bench_phantoms.add_argument(
        "--difficulties", type=float, nargs="+", metavar="D",
        help="difficulties to try, 0 to 1 (default: 0, the generator's default and 1)",
    )
    _add_profile(bench_phantoms)


def cmd_bench_phantoms(args) -> int:
    from .pipeline import calibrate_phantoms

    levels = {} if args.difficulties is None else {"difficulties": args.difficulties}
    table = calibrate_phantoms(args.out, profile=args.profile, **levels)
    print(f"Command: {args.command_line}")
    print(table.to_string(index=False, float_format="%.3f"))
    print(f"Wrote {args.out / 'calibration.csv'}")
    return 0


def _add_bench_gradcam_command(benchmarks) -> None:
    bench_gradcam = _add_command(
        benchmarks, "gradcam", cmd_bench_gradcam,
        help="time Grad-CAM and Score-CAM of one image against one compiled forward pass",
        description="Median time of one compiled forward pass, one Grad-CAM and one Score-CAM of a "
        "single image, measured in the same run after warm-up. Without RUN, a --model classifier with "
        "random weights is built (timings do not depend on the weights' values).",
    )  # fmt: skip
    bench_gradcam.add_argument("run", type=Path, nargs="?", metavar="RUN", help="a folder written by covid-tutorial train (optional)")
    bench_gradcam.add_argument("--model", default="resnet50", metavar="NAME", help="backbone built without RUN")
    bench_gradcam.add_argument("--image-size", type=int, default=224, metavar="PX", help="input size in px, without RUN")
    _add_timed_calls(bench_gradcam, 20)
    bench_gradcam.add_argument("--scorecam-maps", type=int, default=32, metavar="N", help="Score-CAM's feature maps, 0 skips it")


def cmd_bench_gradcam(args) -> int:
    from .bench import benchmark_gradcam
    from .runs import load_run

    result = benchmark_gradcam(
        load_run(args.run).model if args.run is not None else None,
        backbone=args.model,
        image_size=args.image_size,
        repeats=args.timed_calls,
        warmup=args.warmup,
        scorecam_maps=args.scorecam_maps,
    )
    print(result)
    return 0


# ---------------------------------------------------------------- covid-tutorial compare SUBCOMMAND


def _add_compare_command(commands) -> None:
    compare = _add_command(
        commands, "compare", None,
        help="compare backbones: repeated patient-grouped k-fold (run, merge), their size (zoo), their speed",
        description="Compare keras.applications backbones as Garg et al. (2022) did: `run` trains and tests "
        "every model on the same patient-grouped folds, resumable and shardable; `merge` reports on the "
        "results of several machines; `zoo` prints parameters, MACs and native resolution; `speed` "
        "measures images per second on this device. " + NOT_FOR_CLINICAL_USE,
    )  # fmt: skip
    comparisons = compare.add_subparsers(
        dest="comparison", required=True, metavar="SUBCOMMAND", help="covid-tutorial compare SUBCOMMAND --help tells more"
    )
    for add_subcommand in (
        _add_compare_run_command,
        _add_compare_merge_command,
        _add_compare_zoo_command,
        _add_compare_speed_command,
    ):
        add_subcommand(comparisons)


def _print_comparison(out: Path) -> None:
    from .compare import format_comparison, write_report

    print()
    print(format_comparison(write_report(out), out))
    print(NOT_FOR_CLINICAL_USE, file=sys.stderr)


def _add_compare_run_command(comparisons) -> None:
    compare_run = _add_command(
        comparisons, "run", cmd_compare_run,
        help="train and test every model on the same repeated patient-grouped folds (resumable, shardable)",
        description="Train and test every model of --models on the same stratified patient-grouped folds, "
        "repeated with new folds; append each (model, repeat, fold) result to a CSV as soon as it is known, "
        "so that the same command resumes a killed run. Several machines can share the work (--shard I/N or "
        "--results-file); `compare merge DIR` reports on their files copied into one folder. Writes per-class "
        "and macro metrics, the mean and 95% CI across rounds, latency per image on this device, a Pareto "
        "plot and corrected resampled t-tests between the leading models.",
    )  # fmt: skip
    _add_data(compare_run)
    _add_models(compare_run, required=True)
    compare_run.add_argument("--out", type=Path, required=True, metavar="DIR", help="results folder (the same folder resumes)")
    compare_run.add_argument("--folds", type=int, metavar="K", help="k of the k-fold (default: the profile's)")
    compare_run.add_argument(
        "--repeats", type=int, metavar="R", help="repeats of the k-fold, each with new folds (default: the profile's)"
    )
    _add_seed(compare_run, detail=": repeat r draws its folds with seed + r")
    _add_training(compare_run)
    compare_run.add_argument("--mixed-precision", action="store_true", help="train in mixed_float16 (float32 output)")
    compare_run.add_argument("--xla", action="store_true", help="XLA-compiled training, evaluation and latency")
    compare_run.add_argument("--eager", action="store_true", help="no graph tracing: faster only for tiny CPU runs (ci)")
    compare_run.add_argument(
        "--shard", metavar="I/N",
        help="this machine does runs I, I+N, ... into results-shardIofN.csv; 'auto' reads I and N from a Slurm job "
        "array or a Kubernetes Indexed Job (docs/cluster.md)",
    )  # fmt: skip
    compare_run.add_argument("--results-file", metavar="NAME", help="this machine's results file, e.g. results-gpu2.csv")
    compare_run.add_argument("--max-runs", type=int, metavar="N", help="stop after this many new runs (resume later)")
    _add_timed_calls(compare_run, 20, warmup=False)
    _add_distribute(compare_run)
    _add_profile(compare_run)


def cmd_compare_run(args) -> int:
    from .compare import run_comparison

    try:
        run_comparison(
            args.data,
            args.out,
            models=args.models,
            folds=args.folds,
            repeats=args.repeats,
            profile=args.profile,
            seed=args.seed,
            image_size=args.image_size,
            batch_size=args.batch_size,
            head_epochs=args.epochs,
            fine_tune_epochs=args.fine_tune_epochs,
            mixed_precision=args.mixed_precision,
            xla=args.xla,
            eager=args.eager,
            shard=args.shard,
            results_file=args.results_file,
            max_runs=args.max_runs,
            latency_repeats=args.timed_calls,
            image_dir=args.images,
            command=args.command_line,
            distribute=args.distribute,
            devices=args.devices,
            **_reading(args),
        )
    except KeyboardInterrupt:
        print(f"Stopped. Finished runs are saved in {args.out}; run the same command again to continue.", file=sys.stderr)
        raise
    _print_comparison(args.out)
    return 0


def _add_compare_merge_command(comparisons) -> None:
    compare_merge = _add_command(
        comparisons, "merge", cmd_compare_merge,
        help="merge the results*.csv files of a comparison folder and write its report",
        description="Read every results*.csv in DIR (one per machine; comparison.json and folds.csv beside "
        "them), keep each run once, and write merged_results.csv, summary.csv, paired_tests.csv, "
        "pareto.png and report.md there.",
    )  # fmt: skip
    compare_merge.add_argument("folder", type=Path, metavar="DIR", help="a folder written by covid-tutorial compare run")


def cmd_compare_merge(args) -> int:
    _print_comparison(args.folder)
    return 0


def _add_compare_zoo_command(comparisons) -> None:
    compare_zoo = _add_command(
        comparisons, "zoo", cmd_compare_zoo,
        help="parameters, MACs and native resolution of the models, computed from Keras",
        description="Build each backbone without its ImageNet top and with random weights, and print its "
        "family, native resolution, parameters, multiply-accumulates of one image and layer counts.",
    )  # fmt: skip
    _add_models(compare_zoo, default=["zoo"])
    compare_zoo.add_argument("--image-size", type=int, metavar="PX", help="input size in px (default: each model's native size)")
    compare_zoo.add_argument("--out", type=Path, metavar="DIR", help="also write DIR/zoo.csv")


def cmd_compare_zoo(args) -> int:
    from .compare import format_zoo_table, save_zoo_table
    from .models import zoo_table

    table = zoo_table(args.models, args.image_size, progress=True)
    print(format_zoo_table(table))
    if args.out is not None:
        print(f"Wrote {save_zoo_table(table, args.out)}")
    return 0


def _add_compare_speed_command(comparisons) -> None:
    compare_speed = _add_command(
        comparisons, "speed", cmd_compare_speed,
        help="images per second of the models on this device, with mixed precision and XLA as options",
        description="For each model: latency of one image, inference throughput and (unless "
        "--inference-only) training throughput with random weights, in float32 and with --mixed-precision "
        "also mixed_float16, XLA off and with --xla also on.",
    )  # fmt: skip
    _add_models(compare_speed, default=["efficientnetb0"])
    compare_speed.add_argument("--image-size", type=int, metavar="PX", help="input size in px (default: each model's native size)")
    compare_speed.add_argument("--batch-size", type=int, default=16, metavar="N", help="images per batch, for throughput")
    compare_speed.add_argument("--mixed-precision", action="store_true", help="also measure mixed_float16")
    compare_speed.add_argument("--xla", action="store_true", help="also measure with XLA")
    compare_speed.add_argument("--inference-only", action="store_true", help="skip the training steps")
    _add_timed_calls(compare_speed, 20, warmup=False)
    compare_speed.add_argument("--out", type=Path, metavar="DIR", help="also append the rows to DIR/speed.csv")


def cmd_compare_speed(args) -> int:
    from .bench import append_speed_table, speed_table

    speed = speed_table(
        args.models,
        image_size=args.image_size,
        batch_size=args.batch_size,
        precisions=("float32", "mixed_float16") if args.mixed_precision else ("float32",),
        xla=(False, True) if args.xla else (False,),
        repeats=args.timed_calls,
        train=not args.inference_only,
    )
    print(speed)
    if args.out is not None:
        print(f"Appended to {append_speed_table(speed, args.out)}")
    return 0


# ---------------------------------------------------------------- the parser


def build_parser() -> argparse.ArgumentParser:
    """The program's own options, then each command's, in the order ``covid-tutorial --help`` lists them."""
    parser = argparse.ArgumentParser(
        prog="covid-tutorial",
        description="Deep learning for COVID-19 detection in chest X-rays: the course's command line. "
        + NOT_FOR_CLINICAL_USE,
        formatter_class=_HelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"covid-tutorial {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks instead of one error line")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="each has its own --help: covid-tutorial COMMAND --help"
    )
    for add_command in (
        _add_demo_command,
        _add_phantoms_command,
        _add_split_command,
        _add_inspect_command,
        _add_datasets_command,
        _add_download_command,
        _add_train_command,
        _add_evaluate_command,
        _add_card_command,
        _add_predict_command,
        _add_explain_command,
        _add_bench_command,
        _add_compare_command,
    ):
        add_command(commands)
    return parser


# ---------------------------------------------------------------- running a command


# Commands that never import TensorFlow; every other one starts it quietly first.
_WITHOUT_TENSORFLOW = {cmd_phantoms, cmd_split, cmd_inspect, cmd_datasets, cmd_download}


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)


def _error_line(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename is not None:
        return f"{err.filename}: {err.strerror or err}"
    return str(err) or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MPLBACKEND", "Agg")
    argv = sys.argv[1:] if argv is None else [str(arg) for arg in argv]
    args = build_parser().parse_args(argv)
    args.command_line = "covid-tutorial " + shlex.join(argv)
    warnings.showwarning = _show_warning
    from .errors import CourseError

    try:
        if args.func not in _WITHOUT_TENSORFLOW:
            start_tensorflow_quietly()
        return args.func(args)
    except (CourseError, OSError) as err:
        if args.debug:
            raise
        print(f"error: {_error_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def run_in_process(*words) -> None:
    """Run ``covid-tutorial WORDS...`` as typed in a terminal, inside this Python process.

    For notebooks: prints ``$ covid-tutorial WORDS``, then what the command printed, with
    paths below the working folder shown relative to it and without progress bars; frees
    the network the command loaded; raises ``RuntimeError`` when the command fails
    (a shell escape, ``!covid-tutorial``, would carry on). In-process, because a second
    process would load TensorFlow a second time, which a 2 GB Binder session cannot hold.
    """
    import contextlib
    import io
    import re

    words = [str(word) for word in words]
    print("$ covid-tutorial", shlex.join(words), flush=True)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(words)
            except SystemExit as stop:  # argparse's usage errors
                status = stop.code if isinstance(stop.code, int) else 2
    finally:
        print(out.getvalue().replace(f"{Path.cwd()}{os.sep}", ""), end="")
        messages = [line for line in re.split(r"[\r\n]+", err.getvalue()) if line and not re.search(r"\d+%\|", line)]
        if messages:
            print(*messages, sep="\n", file=sys.stderr)
        if "keras" in sys.modules:
            sys.modules["keras"].backend.clear_session()  # each command loads its own copy of the network
        release_memory()
    if status != 0:
        raise RuntimeError(f"covid-tutorial {words[0] if words else ''} failed with exit status {status}; see the message above")


if __name__ == "__main__":
    sys.exit(main())
