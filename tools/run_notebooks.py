#!/usr/bin/env python3
"""Re-execute the course notebooks, or measure what each one costs.

    python -m tools.run_notebooks execute [--profile page] [NOTEBOOK ...]
    python -m tools.run_notebooks measure [--profile ci|page|cpu|gpu] [NOTEBOOK ...]

``execute`` runs each notebook top to bottom in a fresh ``python3`` kernel, with the
working directory ``notebooks/`` and ``COVID_TUTORIAL_PROFILE`` set (``page`` unless
``--profile`` says otherwise), and saves it in place with its outputs, measuring its
wall time, CPU time and peak memory as ``measure`` does: the header's line of time and memory
gets that profile's entry and a line saying which run made the outputs on the page. This
is how the committed notebooks were made; nbval (``pytest --nbval-lax notebooks/``,
``ci`` profile) then re-runs them for errors and compares the cells marked
``# NBVAL_CHECK_OUTPUT``, whose output must therefore not depend on the profile.

``measure`` runs each notebook in a subprocess, without saving it, and samples the
resident memory (RSS) of the kernel process and its children every 0.2 s. It reports
the wall time of the whole run (kernel start-up included) and the peak of that
memory, writes the table into the top-level README.md between
``<!-- notebook-budget:start -->`` and ``<!-- notebook-budget:end -->`` (it prints
the table and says so when the markers are missing), and fills the line of time and memory in
each notebook's header. ImageNet weights cannot always be downloaded, so ``measure``
sets ``COVID_TUTORIAL_WEIGHTS=none``: the package then builds the same networks with
random weights, whose tensors have the same shapes and so take the same memory.

The Colab and Binder badges are written by ``python3 tasks.py publish`` (tools/publish.py).

With no NOTEBOOK arguments every ``notebooks/NN_*.ipynb`` is used, in order.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.markdown_blocks import Markers, has_block, markdown_table, read_block, replace_block, table_rows
from tools.measurement_text import describe_machine, format_duration

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = ROOT / "notebooks"
README = ROOT / "README.md"
README_MARKERS = Markers.named("notebook-budget")  # the budget table, read by tools/student_edition.py too
HEADER_MARKERS = Markers.named("budget")  # the line of time and memory in each notebook's header
OUTPUTS_LINE = "**Outputs on this page:**"
KERNEL_NAME = "python3"
PROFILES = ("ci", "page", "cpu", "gpu")
# Budgets from the course's style guide, checked by `measure`.
TIME_BUDGET_S = {"ci": 180, "page": 1200}
LONGER_CI_BUDGET_S = {"06": 300, "07": 300, "08": 300}  # they train a model, then explain it
MEMORY_BUDGET_GB = {"cpu": 1.7}  # a kernel beside the Jupyter server within Binder's 2 GB

# C++ log lines that TensorFlow and absl print at import, before any Python setting can
# silence them; they are dropped from stored outputs (nbval_sanitize.cfg does the same).
NOISE_LINES = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWEF]\d{4} \d+:\d+:\d+\.\d+\s+\d+ [\w./-]+:\d+\] .*)\n?",
    re.MULTILINE,
)


def notebook_paths(names: list[str]) -> list[Path]:
    """The notebooks named on the command line, or every ``NN_*.ipynb`` in order."""
    if not names:
        return sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    paths = []
    for name in names:
        path = Path(name)
        if not path.exists() and (NOTEBOOKS_DIR / name).exists():
            path = NOTEBOOKS_DIR / name
        if not path.exists() or path.suffix != ".ipynb":
            sys.exit(f"{name}: no such notebook. Give a path such as notebooks/01_cnn_fundamentals.ipynb.")
        paths.append(path.resolve())
    return paths


def kernel_environment(profile: str) -> dict[str, str]:
    """The environment every kernel starts with: the profile, quiet TensorFlow, the package."""
    env = dict(os.environ)
    env["COVID_TUTORIAL_PROFILE"] = profile
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.setdefault("PYTHONHASHSEED", "0")
    # The package is importable from a checkout even before `pip install -e .`.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def strip_noise(nb) -> None:
    """Drop TensorFlow's C++ log lines and empty streams from the stored outputs."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                output["text"] = NOISE_LINES.sub("", output["text"])
                if not output["text"]:
                    continue
            kept.append(output)
        cell["outputs"] = kept
        cell.get("metadata", {}).pop("execution", None)


def execute_notebook(path: Path, profile: str, output: Path | None = None, timeout: int = 1200) -> None:
    """Run one notebook in a fresh kernel (cwd ``notebooks/``) and write it with its outputs."""
    import nbformat
    from nbconvert.preprocessors import ExecutePreprocessor

    os.environ.update(kernel_environment(profile))
    nb = nbformat.read(path, as_version=4)
    executor = ExecutePreprocessor(
        timeout=timeout,
        kernel_name=KERNEL_NAME,
        record_timing=False,
        # widgets live only with a kernel; without one the page shows their static figures
        store_widget_state=False,
        # C-level writes to stderr (TensorFlow's start-up log) stay in the terminal.
        extra_arguments=["--IPKernelApp.capture_fd_output=False"],
    )
    executor.preprocess(nb, {"metadata": {"path": str(NOTEBOOKS_DIR)}})
    strip_noise(nb)
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": KERNEL_NAME}
    nbformat.write(nb, output or path)


def cmd_execute(args) -> int:
    failed = []
    for path in notebook_paths(args.notebooks):
        print(f"executing {path.relative_to(ROOT)} (profile {args.profile}) ...", flush=True)
        result = measure_notebook(path, args.profile, interval=0.2, timeout=args.timeout * 10, output=path)
        print(
            f"  {'done' if result['ok'] else 'FAILED'}: {format_duration(result['wall_s'])} wall, "
            f"{format_duration(result['cpu_s'])} kernel CPU, peak {result['peak_gb']:.2f} GB, "
            f"load average {result['load']:.1f}",
            flush=True,
        )
        if result["ok"]:
            update_notebook_header(path, [result], made_the_outputs=True)
            update_readme([result])
        else:
            failed.append(path.name)
    return 1 if failed else 0


# ---------------------------------------------------------------- measure


def _kernel_tree_sample(root_pid: int, cpu_seconds: dict) -> int:
    """RSS in bytes of every ipykernel process under ``root_pid``, children included.

    Also records the CPU time (user + system) used so far by each of those processes in
    ``cpu_seconds`` (pid -> seconds), so that the total survives the processes' exit.
    """
    import psutil

    try:
        descendants = psutil.Process(root_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in descendants:
        try:
            if "ipykernel" not in " ".join(proc.cmdline()):
                continue
            for member in (proc, *proc.children(recursive=True)):
                total += member.memory_info().rss
                times = member.cpu_times()
                cpu_seconds[member.pid] = times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def measure_notebook(path: Path, profile: str, interval: float = 0.2, timeout: int = 1800,
                     output: Path | None = None) -> dict:
    """Execute one notebook in a subprocess; return its wall time and peak kernel RSS.

    The executed notebook is thrown away, or written to ``output`` (``execute`` passes the
    notebook itself). ImageNet weights are used only where Keras has them cached already:
    this script never waits on a download, and the same shapes take the same memory."""
    env = kernel_environment(profile)
    if not _imagenet_weights_cached():
        env["COVID_TUTORIAL_WEIGHTS"] = "none"
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            "-m",
            "tools.run_notebooks",
            "_execute-one",
            "--profile",
            profile,
            "--output",
            str(output or Path(tmp) / path.name),
            str(path),
        ]
        log_path = Path(tmp) / "log.txt"  # a file, not a pipe: a full pipe would block the child
        log_file = log_path.open("w")
        start = time.perf_counter()
        child = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
        peak, cpu_seconds, loads = 0, {}, []
        while child.poll() is None:
            peak = max(peak, _kernel_tree_sample(child.pid, cpu_seconds))
            loads.append(os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"))
            if time.perf_counter() - start > timeout:
                child.kill()
                break
            time.sleep(interval)
        wall = time.perf_counter() - start
        child.wait()
        log_file.close()
        log = log_path.read_text(errors="replace")
    if child.returncode != 0:
        print(log[-4000:], file=sys.stderr)
    return {
        "notebook": path.name,
        "profile": profile,
        "wall_s": wall,
        "cpu_s": sum(cpu_seconds.values()),
        "peak_gb": peak / 1e9,
        "load": sum(loads) / len(loads) if loads else float("nan"),
        "ok": child.returncode == 0,
    }


def _imagenet_weights_cached() -> bool:
    """Whether Keras holds the ResNet50 ImageNet weights the notebooks start from."""
    from covid_tutorial.system import start_tensorflow_quietly

    start_tensorflow_quietly()  # its start-up lines stay off the terminal
    from covid_tutorial.transfer import imagenet_weights_cached

    return imagenet_weights_cached("ResNet50")


def _budget_verdict(result: dict) -> str:
    if not result["ok"]:
        return "FAILED to run"
    checks = []
    if result["profile"] in TIME_BUDGET_S:
        limit = TIME_BUDGET_S[result["profile"]]
        if result["profile"] == "ci":
            limit = LONGER_CI_BUDGET_S.get(result["notebook"][:2], limit)
        checks.append(("yes" if result["wall_s"] < limit else "NO") + f" (< {limit // 60} min)")
    if result["profile"] in MEMORY_BUDGET_GB:
        limit = MEMORY_BUDGET_GB[result["profile"]]
        checks.append(("yes" if result["peak_gb"] < limit else "NO") + f" (< {limit:g} GB)")
    return "; ".join(checks) or "-"


def _row(result: dict, date: str) -> dict:
    return {
        "notebook": result["notebook"],
        "profile": result["profile"],
        "wall time": format_duration(result["wall_s"]),
        "kernel CPU time": format_duration(result["cpu_s"]),
        "peak memory": f"{result['peak_gb']:.2f} GB",
        "within budget": _budget_verdict(result),
        "measured": f"{date}, {describe_machine(result['load'])}",
    }


COLUMNS = ("notebook", "profile", "wall time", "kernel CPU time", "peak memory", "within budget", "measured")


def _parse_table(block: str) -> dict:
    return {(row["notebook"], row["profile"]): row for row in table_rows(block, COLUMNS)}


def _render_table(rows: dict) -> str:
    order = {p: i for i, p in enumerate(PROFILES)}
    table = markdown_table(COLUMNS, (rows[key] for key in sorted(rows, key=lambda k: (k[0], order.get(k[1], 9)))))
    return table + "\n\n" + (
        "Measured with `python -m tools.run_notebooks measure --profile PROFILE`, and for the `page` "
        "rows by `python -m tools.run_notebooks execute`, the run whose outputs are committed: wall time of a "
        "fresh kernel running the whole notebook (start-up included); CPU time (user + system) used "
        "by the kernel, which other jobs on a busy machine do not inflate; peak resident memory (RSS) "
        "of the kernel process and its children sampled every 0.2 s; the 1-minute load average of the "
        "machine during the run (above the number of cores, other jobs were competing for them, and "
        "the wall time is pessimistic). Where Keras had no ImageNet weights cached, `COVID_TUTORIAL_WEIGHTS=none` "
        "was set: networks start from random weights instead; the "
        "weight tensors have the same shapes, so the memory is the same. Budgets: `ci` under 3 min "
        "on 2 CPU cores (5 min for 06 to 08, which train a model and then explain it), `page` under "
        "20 min, `cpu` under 1.7 GB (a kernel beside the Jupyter server within Binder's 2 GB)."
    )


def update_readme(results: list[dict]) -> None:
    date = _dt.date.today().isoformat()
    new = {(r["notebook"], r["profile"]): _row(r, date) for r in results}
    text = README.read_text(encoding="utf-8") if README.exists() else ""
    if has_block(text, README_MARKERS):
        rows = _parse_table(read_block(text, README_MARKERS))
        rows.update(new)
        README.write_text(replace_block(text, README_MARKERS, f"\n{_render_table(rows)}\n"), encoding="utf-8")
        print(f"\nupdated the table in {README.relative_to(ROOT)}")
        # docs/teachers.md shows the same times per notebook
        from tools import student_edition  # it reads README_MARKERS of this module

        if student_edition.main(["--teachers-table"]) != 0:
            raise SystemExit(2)  # it said why
    else:
        print(f"\n{README.name} has no {README_MARKERS} markers; the table is:\n")
    print(_render_table(new))


BUDGET_ENTRY = re.compile(r"`(?P<profile>ci|page|cpu|gpu)` (?P<figures>not measured|[^·;]+?, \d+\.\d+ GB)")
OLD_BUDGET_ROW = re.compile(r"^\| `(?P<profile>ci|page|cpu)` \| (?P<time>\S+ (?:s|min)) wall[^|]*\| (?P<memory>[\d.]+ GB) \|", re.M)
BUDGET_LEAD = "**Time and memory** on 2 CPU cores, for your profile:"
BUDGET_TAIL = "(dates and machines: [README](../README.md#notebook-budget))."


def header_budget_line(figures: dict[str, str]) -> str:
    """The header's one line of time and memory: ``{profile: "3.3 min, 2.15 GB"}`` in profile order."""
    entries = " · ".join(f"`{name}` {figures.get(name, 'not measured')}" for name in PROFILES)
    return f"{BUDGET_LEAD} {entries} {BUDGET_TAIL}"


def read_header_budget(block: str) -> dict[str, str]:
    """The figures per profile of a header's budget block (:func:`header_budget_line`)."""
    line = next((line for line in block.splitlines() if line.startswith(BUDGET_LEAD)), "")
    figures = {m["profile"]: f"{m['time']}, {m['memory']}" for m in OLD_BUDGET_ROW.finditer(block)}  # older headers' table
    figures.update({m["profile"]: m["figures"] for m in BUDGET_ENTRY.finditer(line) if m["figures"] != "not measured"})
    return figures


def update_notebook_header(path: Path, results: list[dict], made_the_outputs: bool = False) -> bool:
    """Write the measured profiles into the one line of time and memory in the notebook's first
    cell; with ``made_the_outputs``, also the line that says which run the page's outputs come from."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cell = nb.cells[0]
    if cell.cell_type != "markdown" or not has_block(cell.source, HEADER_MARKERS):
        print(f"{path.name}: no {HEADER_MARKERS.start} line in the first cell; header not updated")
        return False
    block = read_block(cell.source, HEADER_MARKERS)
    figures = read_header_budget(block)
    outputs = next((line for line in block.splitlines() if line.startswith(OUTPUTS_LINE)), None)
    date = _dt.date.today().isoformat()
    for result in results:
        figures[result["profile"]] = f"{format_duration(result['wall_s'])}, {result['peak_gb']:.2f} GB"
        if made_the_outputs:
            weights = "ImageNet weights" if _imagenet_weights_cached() else "random weights (no ImageNet weights on this machine)"
            outputs = (f"{OUTPUTS_LINE} the `{result['profile']}` profile, {weights}, executed {date} with "
                       f"`python -m tools.run_notebooks execute --profile {result['profile']} notebooks/{path.name}`.")
    lines = [header_budget_line(figures), *([outputs] if outputs else [])]
    cell.source = replace_block(cell.source, HEADER_MARKERS, "\n" + "\n\n".join(lines) + "\n")
    nbformat.write(nb, path)
    return True


def cmd_measure(args) -> int:
    results = []
    for path in notebook_paths(args.notebooks):
        print(f"measuring {path.name} (profile {args.profile}) ...", flush=True)
        result = measure_notebook(path, args.profile, interval=args.interval)
        status = "ok" if result["ok"] else "FAILED"
        print(
            f"  {status}: {format_duration(result['wall_s'])} wall, {format_duration(result['cpu_s'])} kernel CPU, "
            f"peak {result['peak_gb']:.2f} GB, load average {result['load']:.1f}",
            flush=True,
        )
        results.append(result)
        if result["ok"] and not args.no_write:
            update_notebook_header(path, [result])
    if args.no_write:
        print(_render_table({(r["notebook"], r["profile"]): _row(r, _dt.date.today().isoformat()) for r in results}))
    elif any(r["ok"] for r in results):
        update_readme([r for r in results if r["ok"]])  # a failed run measures nothing worth keeping
    return 0 if all(r["ok"] for r in results) else 1


def cmd_execute_one(args) -> int:
    path = notebook_paths(args.notebooks)[0]
    execute_notebook(path, args.profile, output=Path(args.output), timeout=args.timeout)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add_common(p, default_profile):
        p.add_argument("--profile", choices=PROFILES, default=default_profile)
        p.add_argument("--timeout", type=int, default=1200, help="seconds allowed per cell")
        p.add_argument("notebooks", nargs="*", metavar="NOTEBOOK")

    add_common(sub.add_parser("execute", help="re-execute notebooks in place and measure them (page profile)"), "page")
    measure = sub.add_parser("measure", help="measure wall time and peak memory per notebook")
    add_common(measure, "ci")
    measure.add_argument("--interval", type=float, default=0.2, help="seconds between memory samples")
    measure.add_argument("--no-write", action="store_true", help="print the table only")
    one = sub.add_parser("_execute-one")  # internal: the subprocess that `measure` watches
    add_common(one, "ci")
    one.add_argument("--output", required=True)

    args = parser.parse_args(argv)
    handler = {
        "execute": cmd_execute,
        "measure": cmd_measure,
        "_execute-one": cmd_execute_one,
    }[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
