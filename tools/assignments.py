"""Graded assignments from the course's self-checked exercises, with Otter-Grader.

    python3 tasks.py assignments OUT             # every notebook with self-checked exercises
    python3 tasks.py assignments OUT 03 04       # only these notebooks

For each notebook NN it writes, under OUT/NN:

- ``master.ipynb``: the teacher's source in Otter's format: for each exercise its task, the
  starter code students get, the solution from ``covid_tutorial/teaching/exercises.toml`` and
  the tests;
- ``dist/student/NN_exercises.ipynb``: the assignment to hand out, without solutions or hidden
  tests;
- ``dist/autograder/``: the autograder (a zip) and the solved notebook.

Each exercise is one question worth 3 points: 1 for a public test (the answer is given and
runs on the course's example) and 2 for a hidden test (the course's own check calls it
correct: against Keras, scikit-learn or the course's functions, on examples it builds). A
partly right submission scores in between; an unanswered one scores 0. Grade submissions
offline, in this environment: ``otter run -a OUT/NN/dist/autograder/NN_exercises-autograder_*.zip
SUBMISSION.ipynb -o RESULTS`` writes ``RESULTS/results.json``. The autograder zip also runs on
Gradescope. docs/teachers.md, "Graded assignments", says why Otter and how to mark.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = ROOT / "notebooks"
PUBLIC_POINTS, HIDDEN_POINTS = 1, 2
TITLE_LINE = re.compile(r"^# Exercise (\d\d\.\d+): (.+)$")
CHECK_LINE = re.compile(r'^check\("(\d\d\.\d+)", (\w+)\)$')
IMPORT_LINE = re.compile(r"^from covid_tutorial\.teaching import .*$", re.MULTILINE)
OTTER = [sys.executable, "-m", "otter"]
QUIET = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}  # TensorFlow's start-up lines stay out of the output


@dataclass(frozen=True)
class Exercise:
    """One self-checked exercise as a notebook holds it."""

    exercise_id: str
    title: str
    task: str  # the markdown cell before the exercise cell
    starter: str  # the exercise cell without its title, the course's import and the check line
    answer: str  # the name the check line passes: the learner's function or value
    solution: str  # exercises.toml's solution


def _solutions() -> dict:
    text = resources.files("covid_tutorial.teaching").joinpath("exercises.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)["exercises"]


def exercises_of(notebook: Path) -> list[Exercise]:
    """The self-checked exercises of a course notebook, in order."""
    cells, solutions, found = nbformat.read(notebook, as_version=4).cells, _solutions(), []
    for index, cell in enumerate(cells):
        if "exercise" not in cell.metadata.get("tags", []):
            continue
        lines = cell.source.strip().splitlines()
        title, check = TITLE_LINE.match(lines[0]), CHECK_LINE.match(lines[-1])
        exercise_id = title.group(1)
        starter = IMPORT_LINE.sub("", "\n".join(lines[1:-1])).strip("\n")
        found.append(Exercise(exercise_id, title.group(2), cells[index - 1].source, starter, check.group(2),
                              solutions[exercise_id]["solution"].strip("\n")))
    return found


def master_notebook(number: str, exercises: list[Exercise]) -> nbformat.NotebookNode:
    """Otter's master notebook for one course notebook's exercises."""
    raw, md, code = nbformat.v4.new_raw_cell, nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    name = f"{number}_exercises"
    cells = [
        raw(f"# ASSIGNMENT CONFIG\nname: {name}\nrequirements: null\ngenerate: true\nexport_cell: false\n"
            "check_all_cell: false\nrun_tests: true"),
        md(f"# Notebook {number}: graded exercises\n\nWrite each answer in place of the starter code, run the cell, "
           "then the `grader.check` cell under it: it runs the public test (is an answer there, and does it run?). "
           f"Hidden tests decide the rest: {PUBLIC_POINTS} point for the public test and {HIDDEN_POINTS} for the "
           "hidden one, per question. Teaching material only: not for clinical use."),
        code("import numpy as np\nimport pandas as pd\nimport keras"),
    ]
    for k, exercise in enumerate(exercises, start=1):
        question = f"q{k}_{exercise.exercise_id.replace('.', '_')}"
        test = f'from covid_tutorial.teaching.exercises import check\nresult = check("{exercise.exercise_id}", {exercise.answer})'
        cells += [
            raw(f"# BEGIN QUESTION\nname: {question}\npoints: [{PUBLIC_POINTS}, {HIDDEN_POINTS}]"),
            md(f"**Exercise {exercise.exercise_id}: {exercise.title}.**\n\n{exercise.task}"),
            raw("# BEGIN PROMPT"), code(exercise.starter), raw("# END PROMPT"),
            raw("# BEGIN SOLUTION"), code(f"# BEGIN SOLUTION NO PROMPT\n{exercise.solution}\n# END SOLUTION"),
            raw("# END SOLUTION"),
            raw("# BEGIN TESTS"),
            code(f'{test}\nassert result.status != "unattempted", "no answer yet"'),
            code(f'# HIDDEN\n{test}\nassert result.status == "correct", result.message'),
            raw("# END TESTS"), raw("# END QUESTION"),
        ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def write_assignment(notebook: Path, out: Path) -> Path:
    """Write OUT/NN/master.ipynb and run ``otter assign`` on it; returns OUT/NN/dist."""
    number = notebook.name[:2]
    folder = out / number
    folder.mkdir(parents=True, exist_ok=True)
    master = folder / f"{number}_exercises.ipynb"
    nbformat.write(master_notebook(number, exercises_of(notebook)), master)
    dist = folder / "dist"
    done = subprocess.run([*OTTER, "assign", "-v", master.name, "dist"], cwd=folder, capture_output=True, text=True,
                          env=QUIET)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-1:]
        raise RuntimeError(f"otter assign failed on {master}: {' '.join(tail)}")
    return dist


def grade(autograder_zip: Path, submission: Path, out: Path) -> dict:
    """Grade one submission offline with ``otter run``; returns {question: (score, possible)}."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([*OTTER, "run", "-a", str(autograder_zip), "-o", str(out), str(submission)],
                   capture_output=True, text=True, check=True, env=QUIET)
    results = json.loads((out / "results.json").read_text())
    return {test["name"]: (test["score"], test["max_score"]) for test in results["tests"] if test.get("max_score")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 tasks.py assignments", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("out", type=Path, help="a new folder, e.g. build/assignments")
    parser.add_argument("notebooks", nargs="*", help="notebook numbers, e.g. 03 04 (default: every one with exercises)")
    args = parser.parse_args(argv)
    wanted = set(args.notebooks)
    notebooks = [p for p in sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
                 if (not wanted or p.name[:2] in wanted) and exercises_of(p)]
    if not notebooks:
        print(f"error: no notebook with self-checked exercises among {sorted(wanted) or 'the course'}", file=sys.stderr)
        return 1
    for notebook in notebooks:
        try:
            dist = write_assignment(notebook, args.out)
        except RuntimeError as failed:
            print(f"error: {failed}", file=sys.stderr)
            return 1
        print(f"{notebook.name}: hand out {dist / 'student'}; grade with {next((dist / 'autograder').glob('*.zip'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
