#!/usr/bin/env python3
"""The README's quick start: each command sets up what it needs, then runs.

    python3 tasks.py demo   [ARGS...]   # covid-tutorial demo (default profile: ci)
    python3 tasks.py test   [ARGS...]   # every test: pytest on tests/, nbval on the student edition
    python3 tasks.py notebooks          # re-execute every notebook in place (page profile, as committed)
    python3 tasks.py site               # the course site, built offline into build/site/html
    python3 tasks.py student OUT        # the student edition (no solutions) into OUT
    python3 tasks.py publish [URL]      # name where the course is published; rewrite badges and setup cells
    python3 tasks.py test-colab         # the unit tests in an environment with Colab's versions
    python3 tasks.py assignments OUT    # graded assignments (Otter-Grader) from the self-checked exercises
    python3 tasks.py release            # tag vX.Y.Z once the suite, the site and the student edition pass

Setup means: a virtual environment in .venv with the package and its dev and site extras
installed from pyproject.toml (its dev, site and teach extras), ipywidgets 7.7 in .venv/ipywidgets7 for the tests that
check the widgets on Colab's version, and cffconvert in .venv/cffconvert for the test that
validates CITATION.cff; it is redone only when pyproject.toml changes. `test` also installs,
with npm, the site test's accessibility audit (axe-core, pinned in book/package-lock.json).
`test-colab` builds a second one, .venv-colab, with the versions in colab/constraints.txt.
Needs nothing but Python 3.11 to 3.13 and network access to PyPI the first time.

`notebooks`, `student`, `publish`, `assignments`, `release` and `site` run, from the repository root,
the modules tools.run_notebooks (execute), tools.student_edition, tools.publish, tools.assignments,
tools.release and book.build_site.
The other maintenance commands in tools/ run the same way with .venv's python:
`.venv/bin/python -m tools.run_notebooks measure`, `-m tools.binder_memory`, `-m tools.profile_cells`.

`test` with no ARGS builds the student edition into build/student and runs nbval on its
notebooks: their code cells are the committed notebooks' code cells, in order
(tests/test_student_edition.py checks it), so this runs the teacher's edition too. It runs
on one pytest-xdist worker per core (at most four), each test file or notebook whole in one.
With ARGS, pytest gets ARGS only (e.g. `python3 tasks.py test tests/test_data.py`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
# ipywidgets 7.7, as on Colab, beside the 8.x the package installs: tests/test_interactive.py runs
# the widgets with this folder first on PYTHONPATH. What it imports at run time, nothing more
# (widgetsnbextension and jupyterlab_widgets only hold the browser side).
IPYWIDGETS_7 = VENV / "ipywidgets7"
IPYWIDGETS_7_PACKAGES = ["ipywidgets==7.7.*", "ipython_genutils==0.2.*"]
# cffconvert, the Citation File Format's own validator, with its dependencies in a folder of its
# own: it pins jsonschema below 4, which Jupyter outgrew. tests/test_release.py runs it from there.
CFFCONVERT = VENV / "cffconvert"
CFFCONVERT_PACKAGES = ["cffconvert==2.0.*"]
# axe-core, the accessibility audit tests/test_site.py runs in Chromium: from npm, at the version
# book/package-lock.json pins, into book/node_modules (npm comes with Node.js; .ci/run installs it).
SITE_NPM = ROOT / "book"
COLAB_VENV = ROOT / ".venv-colab"
COLAB_CONSTRAINTS = ROOT / "colab" / "constraints.txt"
STUDENT_EDITION = ROOT / "build" / "student"
# The whole suite runs on one worker per core (at most 4: each holds TensorFlow and a kernel),
# a test file or notebook whole in one worker, so a notebook's cells share their kernel.
PARALLEL = ["--numprocesses=auto", "--maxprocesses=4", "--dist=loadfile"]
COMMANDS = ("demo", "test", "notebooks", "site", "student", "publish", "assignments", "release", "test-colab")


def _python(venv_dir: Path) -> Path:
    return venv_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _pip(python: Path) -> list[str]:
    return [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]


def ensure_environment() -> Path:
    python = _python(VENV)
    if not python.exists():
        print(f"Creating a virtual environment in {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    stamp = VENV / ".covid-tutorial-installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest or not IPYWIDGETS_7.is_dir() or not CFFCONVERT.is_dir():
        print("Installing covid-tutorial and its dependencies (first time: a few minutes)", flush=True)
        pip = _pip(python)
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "-e", f"{ROOT}[dev,site,teach]"], check=True)
        subprocess.run([*pip, "--upgrade", "--no-deps", "--target", str(IPYWIDGETS_7), *IPYWIDGETS_7_PACKAGES], check=True)
        subprocess.run([*pip, "--upgrade", "--target", str(CFFCONVERT), *CFFCONVERT_PACKAGES], check=True)
        stamp.write_text(digest)
    return python


def ensure_site_npm_packages() -> None:
    """`npm ci` in book/ when its lockfile changed; without npm, say what the site test will miss."""
    lock = SITE_NPM / "package-lock.json"
    stamp = SITE_NPM / "node_modules" / ".covid-tutorial-installed"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    npm = shutil.which("npm")
    if npm is None:
        print("note: npm not found, so tests/test_site.py cannot run its accessibility audit "
              "(install Node.js and npm, e.g. apt-get install nodejs npm)", flush=True)
        return
    print("Installing the site test's npm packages (book/package-lock.json)", flush=True)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=SITE_NPM, check=True)
    stamp.write_text(digest)


def ensure_colab_environment() -> Path:
    """A virtual environment with Colab's versions (colab/constraints.txt), then the package
    installed the way the notebooks' setup cell installs it on Colab."""
    python = _python(COLAB_VENV)
    stamp = COLAB_VENV / ".covid-tutorial-installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + COLAB_CONSTRAINTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    print(f"Creating {COLAB_VENV} with Colab's versions ({COLAB_CONSTRAINTS.relative_to(ROOT)})", flush=True)
    venv.create(COLAB_VENV, with_pip=True, clear=True)
    pip, constraints = _pip(python), ["-c", str(COLAB_CONSTRAINTS)]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *constraints, "-r", str(COLAB_CONSTRAINTS)], check=True)  # "Colab"
    subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True)  # the setup cell's two steps
    subprocess.run([str(python), "-m", "covid_tutorial.colab"], check=True)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    subprocess.run([*pip, *constraints, *extras["dev"], *extras["site"], *extras["teach"]], check=True)  # the test tools
    stamp.write_text(digest)
    return python


def colab_versions_kept(python: Path) -> bool:
    """Print Colab's pinned versions against what the environment has; True if all equal."""
    pins = [line.split("==") for line in COLAB_CONSTRAINTS.read_text().splitlines() if "==" in line and not line.startswith("#")]
    script = "import importlib.metadata as m, sys; print(*(m.version(n) for n in sys.argv[1:]))"
    have = subprocess.run([str(python), "-c", script, *(n for n, _ in pins)], capture_output=True, text=True, check=True)
    kept = True
    for (name, wanted), got in zip(pins, have.stdout.split(), strict=True):
        kept &= got == wanted
        print(f"  {name:<16} Colab {wanted:<12} here {got}{'' if got == wanted else '  <- replaced'}")
    return kept


def _module(python: Path, module: str, *args: str) -> list[str]:
    """`python -m MODULE ARGS`; run with cwd=ROOT, so that `tools` and `book` import from the checkout."""
    return [str(python), "-m", module, *args]


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "test-colab":
        python = ensure_colab_environment()
        print("Colab's pinned versions in .venv-colab:")
        if not colab_versions_kept(python):
            print("error: the Colab environment does not hold Colab's versions; see colab/constraints.txt", file=sys.stderr)
            return 1
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "COVID_TUTORIAL_PROFILE": "ci"}
        cmd = [str(python), "-m", "pytest", "-p", "no:nbval", "-o", "addopts=--durations=10", *(rest or ["tests"])]
        return subprocess.run(cmd, cwd=ROOT, env=env).returncode
    python = ensure_environment()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if command == "demo":
        if "--profile" not in rest:
            rest = ["--profile", "ci", *rest]
        cmd = [str(BIN / "covid-tutorial"), "demo", *rest]
    elif command == "test":
        env["COVID_TUTORIAL_PROFILE"] = "ci"
        ensure_site_npm_packages()
        if not rest:
            built = subprocess.run(_module(python, "tools.student_edition", str(STUDENT_EDITION), "--replace"), cwd=ROOT)
            if built.returncode != 0:
                return built.returncode
            rest = [*PARALLEL, "tests", str(STUDENT_EDITION.relative_to(ROOT) / "notebooks")]
        cmd = [str(python), "-m", "pytest", *rest]
    elif command == "notebooks":  # the page profile unless ARGS say --profile
        cmd = _module(python, "tools.run_notebooks", "execute", *rest)
    elif command == "site":
        cmd = _module(python, "book.build_site", *rest)
    elif command == "student":
        cmd = _module(python, "tools.student_edition", *rest)
    elif command == "release":
        cmd = _module(python, "tools.release", *rest)
    elif command == "assignments":
        cmd = _module(python, "tools.assignments", *rest)
    else:  # publish
        cmd = _module(python, "tools.publish", *rest)
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
