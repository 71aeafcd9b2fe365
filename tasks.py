#!/usr/bin/env python3
"""The README's quick start: each command sets up what it needs, then runs.

    python3 tasks.py demo   [ARGS...]   # covid-tutorial demo (default profile: ci)
    python3 tasks.py test   [ARGS...]   # the whole test suite: pytest on tests/ and nbval on notebooks/
    python3 tasks.py notebooks          # re-execute every notebook in place (ci profile)

Setup means: a virtual environment in .venv with the package and its dev extra
installed from pyproject.toml; it is redone only when pyproject.toml changes.
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


def ensure_environment() -> Path:
    python = BIN / ("python.exe" if os.name == "nt" else "python")
    if not python.exists():
        print(f"Creating a virtual environment in {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    stamp = VENV / ".covid-tutorial-installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        print("Installing covid-tutorial and its dependencies (first time: a few minutes)", flush=True)
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
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
    else:
        env["COVID_TUTORIAL_PROFILE"] = "ci"
        cmd = [str(python), str(ROOT / "notebooks" / "run_notebooks.py"), "execute", *rest]
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
