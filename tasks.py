#!/usr/bin/env python3
"""The README's quick start: each command sets up what it needs, then runs.

    python3 tasks.py demo   [ARGS...]   # covid-tutorial demo (default profile: ci)
    python3 tasks.py test   [ARGS...]   # the whole test suite: pytest on tests/ and nbval on notebooks/
    python3 tasks.py notebooks          # re-execute every notebook in place (page profile, as committed)

Setup means: a virtual environment in .venv with the package and its dev extra
installed from pyproject.toml, and ipywidgets 7.7 in .venv/ipywidgets7 for the tests that
check the widgets on Colab's version; it is redone only when pyproject.toml changes.
Needs nothing but Python 3.11 and network access to PyPI the first time.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
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


def ensure_environment() -> Path:
    python = BIN / ("python.exe" if os.name == "nt" else "python")
    if not python.exists():
        print(f"Creating a virtual environment in {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    stamp = VENV / ".covid-tutorial-installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest or not IPYWIDGETS_7.is_dir():
        print("Installing covid-tutorial and its dependencies (first time: a few minutes)", flush=True)
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
        subprocess.run([*pip, "--upgrade", "--no-deps", "--target", str(IPYWIDGETS_7), *IPYWIDGETS_7_PACKAGES], check=True)
        stamp.write_text(digest)
    return python


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "notebooks"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    python = ensure_environment()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if command == "demo":
        if "--profile" not in rest:
            rest = ["--profile", "ci", *rest]
        cmd = [str(BIN / "covid-tutorial"), "demo", *rest]
    elif command == "test":
        env["COVID_TUTORIAL_PROFILE"] = "ci"
        cmd = [str(python), "-m", "pytest", *rest]
    else:  # the page profile unless ARGS say --profile
        cmd = [str(python), str(ROOT / "notebooks" / "run_notebooks.py"), "execute", *rest]
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
