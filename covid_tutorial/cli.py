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


def _add_timing(parser, repeats: int) -> None:
    parser.add_argument("--repeats", type=int, default=repeats, help=f"timed calls of each variant (default: {repeats})")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first (default: 3)")


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
    from .splits import patient_folds, split_by_patient

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


def cmd_inspect(args) -> int:
    from .errors import DataError
    from .inspection import main_inspect

    source = args.metadata or args.data
    if source is None:
        raise DataError("inspect needs DATA (a folder) or --metadata CSV [--images DIR].")
    print(main_inspect(source, args.images, as_json=args.json))
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


def cmd_explain(args) -> int:
    from .explain import METHOD_TITLES
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
    )
    shown = summary.assign(method=summary["method"].map(METHOD_TITLES))
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(
        "pointing_hit_rate and energy_inside: images with a lesion only; chance_level: the lesion's "
        f"share of the image; faithfulness: confidence drop when the top {args.fraction:.0%} of the map's "
        "pixels are removed minus the drop for as many random pixels."
    )
    print(f"Wrote overlays and explanation_quality.csv to {args.out}")
    return 0


def cmd_bench_gradcam(args) -> int:
    import json

    from .bench import benchmark_gradcam
    from .runs import load_run

    model = load_run(args.run).model if args.run is not None else None
    result = benchmark_gradcam(
        model,
        backbone=args.backbone,
        image_size=args.image_size,
        repeats=args.repeats,
        warmup=args.warmup,
        scorecam_maps=args.scorecam_maps,
    )
    print(json.dumps(result, indent=2))
    print(
        f"Grad-CAM of one image costs {result['gradcam_over_forward']:.2f} forward passes "
        f"({result['gradcam_ms']:.1f} ms vs {result['forward_ms']:.1f} ms)"
        + (
            f"; Score-CAM with {result['scorecam_maps']} maps costs {result['scorecam_over_forward']:.1f}."
            if "scorecam_ms" in result
            else "."
        )
    )
    return 0

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
            unmapped="drop" if args.drop_unmapped else "error",
            resume=args.resume,
            overwrite=args.overwrite,
            evaluate=not args.no_evaluate,
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


def cmd_evaluate(args) -> int:
    from .pipeline import evaluate_run

    evaluate_run(
        args.run,
        args.data,
        image_dir=args.images,
        unmapped="drop" if args.drop_unmapped else "error",
        out=args.out,
        n_bootstrap=args.bootstrap,
    )
    return 0


def cmd_predict(args) -> int:
    import json

    from .pipeline import save_gradcam_overlays
    from .predict import Predictor

    predictor = Predictor.from_run(args.run)
    table = predictor.predict_files(args.images)
    if args.json:
        print(json.dumps(
            [
                {"image": row["image"], "predicted": row["predicted"],
                 "probabilities": {name: round(float(row[name]), 6) for name in predictor.class_names}}
                for _, row in table.iterrows()
            ],
            indent=2,
        ))
    else:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.gradcam:
        written = save_gradcam_overlays(predictor, table["image"].tolist(), table["predicted"].tolist(), args.gradcam)
        print(f"Wrote {len(written)} Grad-CAM overlay(s) of the predicted class to {args.gradcam}", file=sys.stderr)
    print(NOT_FOR_CLINICAL_USE, file=sys.stderr)
    return 0


def cmd_bench_predict(args) -> int:
    from .bench import benchmark_predict, format_benchmark

    result = benchmark_predict(args.run, repeats=args.repeats, batch_size=args.batch_size, warmup=args.warmup)
    print()
    print(f"Command: covid-tutorial bench predict {args.run} --repeats {args.repeats} "
          f"--batch-size {args.batch_size} --warmup {args.warmup}")
    print(format_benchmark(result))
    return 0


def cmd_bench_pipeline(args) -> int:
    from .bench import benchmark_input_pipeline

    result = benchmark_input_pipeline(
        _load(args), image_size=args.image_size, batch_size=args.batch_size, epochs=args.epochs
    )
    print(f"Command: covid-tutorial bench pipeline {args.data} --image-size {args.image_size} "
          f"--batch-size {args.batch_size} --epochs {args.epochs}")
    print(result.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    ratio = result["later_epochs_images_per_s"].iloc[-1] / result["later_epochs_images_per_s"].iloc[0]
    print(f"Course pipeline against ImageDataGenerator as older tutorials use it (epochs 2+): {ratio:.1f}x")
    return 0


def cmd_compare(args) -> int:
    import shlex

    from . import compare
    from .errors import CourseError

    command = "covid-tutorial " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["compare"] else None
    if args.zoo or args.speed:
        models = compare.resolve_models(args.models or ["zoo" if args.zoo else "efficientnetb0"])
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
        if args.zoo:
            table = compare.zoo_table(models, args.image_size, progress=True)
            shown = table[["model", "family", "in_paper", "native_size", "params_M", "GMACs", "GFLOPs", "conv_layers", "blocks"]]
            print(compare.markdown_table(shown, index=False, digits=2))
            if args.out:
                table.to_csv(args.out / "zoo.csv", index=False)
        if args.speed:
            table = compare.speed_table(
                models,
                image_size=args.image_size,
                batch_size=args.batch_size or 16,
                precisions=("float32", "mixed_float16") if args.mixed_precision else ("float32",),
                xla=(False, True) if args.xla else (False,),
                repeats=args.latency_repeats,
                train=not args.inference_only,
            )
            print(compare.speed_markdown(table))
            if args.out:
                path = args.out / "speed.csv"
                table.to_csv(path, mode="a", header=not path.is_file(), index=False)
                print(f"Appended to {path}")
        return 0
    if args.merge is not None:
        out = args.merge
    else:
        if args.data is None or args.out is None or not args.models:
            raise CourseError("compare needs DATA, --models and --out (or --merge DIR, --zoo, --speed). See --help.")
        out = args.out
        try:
            compare.run_comparison(
                args.data,
                out,
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
                latency_repeats=args.latency_repeats,
                image_dir=args.images,
                unmapped="drop" if args.drop_unmapped else "error",
                command=command,
            )
        except KeyboardInterrupt:
            print(f"Stopped. Finished runs are saved in {out}; run the same command again to continue.", file=sys.stderr)
            raise
    report = compare.write_report(out)
    about, board = report["about"], report["leaderboard"]
    print(f"\n{about['runs']} runs on {'; '.join(about['devices'])}")
    print(compare.markdown_table(board[["rounds", "macro_f1", "ci_low_corrected", "ci_high_corrected", "params_M", "latency_ms", "images_per_s"]]))
    if not report["paired_tests"].empty:
        print("\nPaired corrected resampled t-tests (macro F1):")
        columns = ["model_a", "model_b", "rounds", "mean_difference", "t", "p_value", "p_naive", "p_holm"]
        print(compare.markdown_table(report["paired_tests"][columns], index=False, digits=4))
    print(f"\nWrote merged_results.csv, summary.csv, paired_tests.csv, pareto.png and report.md to {out}")
    print(NOT_FOR_CLINICAL_USE, file=sys.stderr)
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
        "classifier, evaluate it on held-out patients with 95% CIs and write DIR/report.html.",
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

    inspect = commands.add_parser(
        "inspect",
        help="classes, patients, sizes, unreadable and missing files, exact and near duplicates",
        description="Read every image of DATA once and report what could hurt training: class "
        "balance, images per patient, image sizes and pixel formats, unreadable files, rows whose "
        "file is missing, labels with no course class, and exact (SHA-256) and near (perceptual "
        "hash) duplicates within and across patients, classes and publisher splits. Writes nothing.",
    )
    inspect.add_argument("data", type=Path, nargs="?", help="a folder per class, a folder with metadata.csv, or a CSV")
    inspect.add_argument("--metadata", type=Path, help="a metadata CSV (instead of DATA)")
    inspect.add_argument("--images", type=Path, help="the image folder for --metadata")
    inspect.add_argument("--json", action="store_true", help="print the full report as JSON")
    inspect.set_defaults(func=cmd_inspect)

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

    explain = commands.add_parser(
        "explain",
        help="heatmaps of a trained RUN on DATA: overlays (PNG) and their measured quality (CSV)",
        description="Compute Grad-CAM, Grad-CAM++, Score-CAM or SmoothGrad maps for images of DATA "
        "(the RUN's test split when the RUN was trained on DATA, else all images), write overlays "
        "and a table per method and class: pointing game and energy inside the lesion masks "
        "(phantoms) and faithfulness (confidence drop when the map's top pixels are removed).",
    )
    explain.add_argument("run", type=Path, help="a RUN folder (config.json, model.keras)")
    explain.add_argument("data", type=Path, help="a dataset folder or metadata CSV (phantoms carry lesion masks)")
    explain.add_argument(
        "--method",
        nargs="+",
        default=["gradcam"],
        choices=["gradcam", "gradcam++", "scorecam", "saliency"],
        help="one or more methods (default: gradcam)",
    )
    explain.add_argument("--out", type=Path, required=True, help="output folder")
    explain.add_argument("--split", default="test", choices=["train", "val", "test"], help="default: test")
    explain.add_argument("--per-class", type=int, default=8, help="images per class, 0 for all (default: 8)")
    explain.add_argument("--layer", help="layer for the CAM methods (default: the last feature map)")
    explain.add_argument(
        "--target", default="true", choices=["true", "predicted"], help="class to explain (default: true)"
    )
    explain.add_argument("--fraction", type=float, default=0.1, help="share of pixels removed (default: 0.1)")
    explain.add_argument("--max-maps", type=int, default=32, help="Score-CAM: feature maps used (default: 32)")
    explain.set_defaults(func=cmd_explain)

    train = commands.add_parser(
        "train",
        help="train a classifier on DATA and write a RUN folder (config, model, history, metrics)",
        description="Split DATA by patient, train a classifier (stage 1: new head on a frozen backbone; "
        "stage 2: top blocks fine-tuned with BatchNorm frozen and a tenth of the learning rate; "
        "without ImageNet weights the whole network trains at once), score it on the held-out test "
        "patients and write RUN/: config.json, model.keras, splits.csv, history.csv, metrics.json. "
        "Every epoch end is checkpointed: --resume continues an interrupted run to the same result.",
    )
    _add_data(train)
    train.add_argument("--out", type=Path, required=True, metavar="RUN", help="the RUN folder to write")
    train.add_argument("--model", help="a keras.applications backbone, e.g. resnet50, efficientnetb0 (default: resnet50)")
    train.add_argument("--epochs", type=int, help="epochs of stage 1 (or of the whole training without weights)")
    train.add_argument("--fine-tune-epochs", type=int, help="epochs of stage 2 (0 skips it)")
    train.add_argument("--image-size", type=int, help="input size in px (default: the profile's)")
    train.add_argument("--batch-size", type=int, help="default: the profile's")
    train.add_argument("--fine-tune-layers", type=int, help="backbone layers unfrozen in stage 2 (default: the last stage)")
    train.add_argument("--seed", type=int, help="random seed (default: 0)")
    train.add_argument("--resume", action="store_true", help="continue an interrupted training in RUN")
    train.add_argument("--overwrite", action="store_true", help="start again in a RUN folder that holds a run")
    train.add_argument("--no-evaluate", action="store_true", help="skip scoring the held-out test patients")
    _add_profile(train)
    train.set_defaults(func=cmd_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="score a RUN on DATA: metrics with 95%% CIs over patients, figures, per-image predictions",
        description="Predict every image of DATA that the RUN was not trained or validated on (matched by "
        "file content, so the RUN's own data leaves its held-out patients) and write metrics.json, "
        "metrics.csv, predictions.csv and figures/ into RUN (or --out).",
    )
    evaluate.add_argument("run", type=Path, metavar="RUN", help="a folder written by covid-tutorial train")
    _add_data(evaluate)
    evaluate.add_argument("--out", type=Path, help="where to write the results (default: RUN)")
    evaluate.add_argument("--bootstrap", type=int, help="bootstrap rounds (default: the RUN's profile)")
    evaluate.set_defaults(func=cmd_evaluate)

    predict = commands.add_parser(
        "predict",
        help="class probabilities for image files, from a trained RUN",
        description="Read each IMAGE as the RUN's training did and print its class probabilities. "
        + NOT_FOR_CLINICAL_USE,
    )
    predict.add_argument("run", type=Path, metavar="RUN", help="a folder written by covid-tutorial train")
    predict.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="PNG, JPEG, BMP or TIFF files")
    predict.add_argument("--gradcam", type=Path, metavar="DIR", help="also write Grad-CAM overlays to DIR")
    predict.add_argument("--json", action="store_true", help="print JSON instead of a table")
    predict.set_defaults(func=cmd_predict)

    bench = commands.add_parser(
        "bench",
        help="benchmarks: predict (model.predict vs the course predictor), pipeline, gradcam",
        description="Time the course's inference code on this machine.",
    )
    bench_kinds = bench.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    bench_predict = bench_kinds.add_parser(
        "predict",
        help="latency of one image and throughput of a batch: model.predict against compiled variants",
        description="Latency of one image with model.predict, a tf.function, XLA and the course "
        "predictor (BatchNorm folded, one tf.function), timed in turns; then throughput for a batch.",
    )
    bench_predict.add_argument("run", type=Path, metavar="RUN", help="a folder written by covid-tutorial train")
    _add_timing(bench_predict, repeats=30)
    bench_predict.add_argument("--batch-size", type=int, default=16, help="batch for throughput (default: 16)")
    bench_predict.set_defaults(func=cmd_bench_predict)

    bench_pipeline = bench_kinds.add_parser(
        "pipeline",
        help="images per second: tf-keras ImageDataGenerator against the course's tf.data pipeline",
        description="Load and augment the images of DATA with ImageDataGenerator (RGB as older "
        "tutorials do, and grayscale) and with the course pipeline (decode once, cached uint8, one "
        "fused affine warp per batch); print images per second for epoch 1 and later epochs.",
    )
    _add_data(bench_pipeline)
    bench_pipeline.add_argument("--image-size", type=int, default=224, help="default: 224")
    bench_pipeline.add_argument("--batch-size", type=int, default=32, help="default: 32")
    bench_pipeline.add_argument("--epochs", type=int, default=3, help="epochs per candidate, at least 2 (default: 3)")
    bench_pipeline.set_defaults(func=cmd_bench_pipeline)

    bench_gradcam = bench_kinds.add_parser(
        "gradcam",
        help="time Grad-CAM and Score-CAM of one image against one compiled forward pass",
        description="Median time of one compiled forward pass, one Grad-CAM and one Score-CAM of a "
        "single image, measured in the same run after warm-up. Without RUN, a ResNet50 with random "
        "weights is built (timings do not depend on the weights' values).",
    )
    bench_gradcam.add_argument("run", type=Path, nargs="?", help="a RUN folder (optional)")
    bench_gradcam.add_argument("--backbone", default="resnet50", help="without RUN (default: resnet50)")
    bench_gradcam.add_argument("--image-size", type=int, default=224, help="without RUN (default: 224)")
    _add_timing(bench_gradcam, repeats=20)
    bench_gradcam.add_argument("--scorecam-maps", type=int, default=32, help="0 skips Score-CAM (default: 32)")
    bench_gradcam.set_defaults(func=cmd_bench_gradcam)

    compare_ = commands.add_parser(
        "compare",
        help="compare backbones with repeated stratified patient-grouped k-fold (resumable, shardable)",
        description="Train and test every model of --models on the same patient-grouped folds, repeated with "
        "new folds; append each (model, repeat, fold) result to a CSV as soon as it is known, so that the same "
        "command resumes a killed run. Several machines can share the work (--shard i/n or --results-file); "
        "their results*.csv files merge when read (--merge DIR). Writes per-class and macro metrics, the mean "
        "and 95% CI across rounds, latency per image on this device, a Pareto plot and corrected resampled "
        "t-tests between the leading models. --zoo prints parameters, MACs and native resolution of the models; "
        "--speed measures images per second. " + NOT_FOR_CLINICAL_USE,
    )
    compare_.add_argument("data", type=Path, nargs="?", help="dataset folder or metadata CSV (not needed with --merge, --zoo, --speed)")
    compare_.add_argument("--images", type=Path, help="image folder for a metadata CSV (default: beside the CSV)")
    compare_.add_argument("--drop-unmapped", action="store_true", help="drop images whose label maps to no course class")
    compare_.add_argument(
        "--models", nargs="+", metavar="NAME",
        help="keras.applications names, any case (efficientnetb0 resnet50 ...), or a group: zoo (all 23), paper "
        "(the 20 of Garg et al. 2022), efficientnets, modern",
    )  # fmt: skip
    compare_.add_argument("--out", type=Path, help="results folder (the same folder resumes)")
    compare_.add_argument("--folds", type=int, help="k (default: the profile's)")
    compare_.add_argument("--repeats", type=int, help="R repeats of the k-fold with new folds (default: the profile's)")
    compare_.add_argument("--seed", type=int, default=0, help="repeat r splits with seed + r (default: 0)")
    compare_.add_argument("--image-size", type=int, help="px (default: the profile's; gpu: each model's native size)")
    compare_.add_argument("--batch-size", type=int, help="default: the profile's")
    compare_.add_argument("--epochs", type=int, help="epochs of stage 1 (or of the whole training without weights)")
    compare_.add_argument("--fine-tune-epochs", type=int, help="epochs of stage 2")
    compare_.add_argument("--mixed-precision", action="store_true", help="mixed_float16 (float32 output); with --speed: measure both")
    compare_.add_argument("--xla", action="store_true", help="XLA-compiled steps; with --speed: measure with and without")
    compare_.add_argument("--eager", action="store_true", help="no graph tracing: faster only for tiny CPU runs (ci)")
    compare_.add_argument("--shard", metavar="I/N", help="this machine does runs I, I+N, ... into results-shardIofN.csv")
    compare_.add_argument("--results-file", metavar="NAME", help="this machine's results file, e.g. results-gpu2.csv")
    compare_.add_argument("--max-runs", type=int, help="stop after this many new runs (resume later)")
    compare_.add_argument("--latency-repeats", type=int, default=20, help="timed calls per latency (default: 20)")
    compare_.add_argument("--merge", type=Path, metavar="DIR", help="only merge the results*.csv in DIR and report")
    compare_.add_argument("--zoo", action="store_true", help="print parameters, MACs and native size of --models (default: all 23)")
    compare_.add_argument("--speed", action="store_true", help="measure images per second of --models on this device")
    compare_.add_argument("--inference-only", action="store_true", help="with --speed: skip the training steps")
    _add_profile(compare_)
    compare_.set_defaults(func=cmd_compare)
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
