"""pyproject.toml, environment.yml and binder/requirements.txt must install the same thing."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _normalise(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower()


def _pyproject() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_normalise(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}


def _environment_yml() -> set[str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = lines.index("  - pip:")
    items = [l.strip()[2:].strip().strip('"') for l in lines[start + 1 :] if l.strip().startswith("- ")]
    assert "python=3.11" in (ROOT / "environment.yml").read_text()
    assert "-e ." in items, "environment.yml must pip-install the package itself"
    return {_normalise(i) for i in items if i != "-e ."}


def _binder() -> set[str]:
    lines = [l.strip() for l in (ROOT / "binder" / "requirements.txt").read_text().splitlines()]
    items = [l for l in lines if l and not l.startswith("#")]
    assert items[-1] == ".", "binder/requirements.txt must end by installing the package"
    return {_normalise(i) for i in items[:-1]}


def test_the_three_dependency_lists_agree():
    expected = _pyproject()
    assert _environment_yml() == expected
    assert _binder() == expected


def test_runtime_dependencies_named_by_the_course_are_declared():
    names = {re.split(r"[<>=!~\[]", r)[0] for r in _pyproject()}
    for needed in ["tensorflow", "keras", "numpy", "pandas", "scikit-learn", "opencv-python-headless",
                   "matplotlib", "seaborn", "tf-keras-vis", "pooch", "tqdm", "pytest", "nbval", "jupyterlab"]:
        assert needed in names


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r"```(?:bash|sh)?\n(python3 tasks\.py test)\n```", readme)
    assert command, "README quick start must show the test command in its own code block"
    assert command.group(1) in ci.splitlines()
    assert re.search(r"```(?:bash|sh)?\npython3 tasks\.py demo\n```", readme)
