"""The ``covid-tutorial`` command line: a thin layer over the package's functions.

Every subcommand calls the same function a notebook would. Errors about data, runs or
downloads are printed as one clear message (exit code 2); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from . import NOT_FOR_CLINICAL_USE, __version__
from .profiles import PROFILES


def _add_profile(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        choices=list(PROFILES),
        help="ci: tests, tiny and fast; cpu: a laptop or Binder (224 px, ImageNet); gpu: full runs "
        "(default: $COVID_TUTORIAL_PROFILE, else cpu)",
    )


def _add_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "data",
        type=Path,
        help="a folder with one subfolder per class, a folder holding metadata.csv, or a metadata CSV",
    )
    parser.add_argument("--images", type=Path, help="image folder for a metadata CSV (default: beside the CSV)")
    parser.add_argument(
        "--drop-unmapped", action="store_true", help="drop images whose label maps to no course class"
    )


def _load(args):
    from .data import load_dataset

    return load_dataset(args.data, args.images, unmapped="drop" if args.drop_unmapped else "error")


def cmd_demo(args) -> int:
    from .pipeline import run_demo

    run_demo(args.out, args.profile)
    return 0


def cmd_phantoms(args) -> int:
    from .phantoms import generate_phantoms

    table = generate_phantoms(args.out, patients=args.patients, size=args.size, seed=args.seed)
    counts = table.groupby("finding")["patientid"].agg(["nunique", "size"])
    counts.columns = ["patients", "images"]
    print(counts.to_string())
    print(f"Wrote {len(table)} images, their lesion masks and metadata.csv to {args.out}")
    return 0


def cmd_split(args) -> int:
    from .data import patient_folds, split_by_patient

    table = _load(args)
    if args.folds:
        table = patient_folds(table, folds=args.folds, seed=args.seed)
        column = "fold"
    else:
        table = split_by_patient(table, val_size=args.val_size, test_size=args.test_size, seed=args.seed)
        column = "split"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    summary = table.groupby([column, "label"])["patient_id"].agg(["nunique", "size"])
    summary.columns = ["patients", "images"]
    print(summary.unstack(fill_value=0).to_string())
    print(f"No patient is in two partitions. Wrote {args.out}")
    return 0


def cmd_datasets(args) -> int:
    from .datasets import format_dataset_table

    print(format_dataset_table())
    return 0


def cmd_download(args) -> int:
    from .datasets import download_dataset

    path = download_dataset(args.name, args.dest, force=args.force)
    print(f"Ready: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="covid-tutorial",
        description="Deep learning for COVID-19 detection in chest X-rays: the course's command line. "
        + NOT_FOR_CLINICAL_USE,
    )
    parser.add_argument("--version", action="version", version=f"covid-tutorial {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="the whole course in one run: phantoms, patient split, ResNet50, metrics, Grad-CAM, report",
        description="Make the phantom dataset if missing, split it by patient, train a ResNet50 "
        "classifier, evaluate it on held-out patients with 95%% CIs and write DIR/report.html.",
    )
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default: runs/demo)")
    _add_profile(demo)
    demo.set_defaults(func=cmd_demo)

    phantoms = commands.add_parser(
        "phantoms",
        help="write the embedded synthetic chest X-ray dataset",
        description="Write procedurally generated chest radiographs (COVID-19, other pneumonia, "
        "normal), their lesion masks and a metadata.csv. Same seed, same bytes.",
    )
    phantoms.add_argument("--out", type=Path, required=True, help="output folder")
    phantoms.add_argument("--patients", type=int, default=60, help="number of patients (default: 60)")
    phantoms.add_argument("--size", type=int, default=128, help="image size in px (default: 128)")
    phantoms.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    phantoms.set_defaults(func=cmd_phantoms)

    split = commands.add_parser(
        "split",
        help="patient-wise train/val/test split or stratified grouped k-fold, as a CSV",
        description="Split by patient so that no patient is in two partitions.",
    )
    _add_data(split)
    split.add_argument("--folds", type=int, help="k for stratified patient-grouped k-fold (else train/val/test)")
    split.add_argument("--val-size", type=float, default=0.2)
    split.add_argument("--test-size", type=float, default=0.2)
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--out", type=Path, default=Path("splits.csv"), help="output CSV (default: splits.csv)")
    split.set_defaults(func=cmd_split)

    datasets = commands.add_parser(
        "datasets",
        help="list the real collections the course knows, with licence and how to get each",
    )
    datasets.set_defaults(func=cmd_datasets)

    download = commands.add_parser(
        "download",
        help="download (or generate) a dataset from the registry, verified and safely unpacked",
        description="Download a collection with a progress bar, verify its hash, unpack it safely. "
        "Kaggle collections need your own Kaggle token; some collections need manual steps, "
        "which this command prints. Files go to $COVID_TUTORIAL_DATA (default: data/downloads).",
    )
    download.add_argument("name", help="a name from `covid-tutorial datasets`")
    download.add_argument("--dest", type=Path, help="folder to put it in")
    download.add_argument("--force", action="store_true", help="download again even if present")
    download.set_defaults(func=cmd_download)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MPLBACKEND", "Agg")
    args = build_parser().parse_args(argv)
    warnings.showwarning = _show_warning
    from .errors import CourseError

    try:
        return args.func(args)
    except (CourseError, FileNotFoundError, PermissionError) as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
