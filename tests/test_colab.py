"""Colab: the package resolves for Colab's Python 3.13 without replacing Colab's packages,
and the notebooks' setup cell installs it in a kernel that looks like Colab's."""

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from covid_tutorial import colab, profiles, system
from covid_tutorial.data import download
from tools import publish  # the setup cell's one source

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "colab" / "constraints.txt"


def colab_pins() -> dict[str, str]:
    lines = [line.strip() for line in CONSTRAINTS.read_text().splitlines()]
    return dict(line.split("==") for line in lines if line and not line.startswith("#"))


# ------------------------------------------------------------- what is installed on Colab


def test_colab_versions_satisfy_the_package_except_what_it_must_add():
    missing = colab.requirements_to_install(installed=colab_pins())
    names = {m.split("<")[0].split(">")[0].split("=")[0].split("!")[0].split("~")[0] for m in missing}
    assert names.isdisjoint({"tensorflow", "keras", "tf-keras", "numpy", "scikit-learn", "ipywidgets"})
    assert not any(name.startswith("opencv") for name in names), "Colab's opencv-python provides cv2"
    assert "tf-keras-vis" in names  # not in the pins: it must be installed


def test_any_opencv_build_satisfies_the_opencv_requirement_within_its_range():
    base = dict(colab_pins())
    del base["opencv-python"]
    assert any(m.startswith("opencv-python-headless") for m in colab.requirements_to_install(installed=base))
    for dist in colab.OPENCV_DISTRIBUTIONS:
        found = colab.requirements_to_install(installed={**base, dist: "4.10.0.84"})
        assert not any(m.startswith("opencv") for m in found), dist
    too_old = colab.requirements_to_install(installed={**base, "opencv-python": "3.4.18.65"})
    assert any(m.startswith("opencv-python-headless") for m in too_old), "a version out of range does not count"


def test_a_version_out_of_range_is_installed_again():
    missing = colab.requirements_to_install(installed={**colab_pins(), "tensorflow": "2.12.0"})
    assert any(m.startswith("tensorflow") for m in missing)


def test_package_resolves_for_python_313_against_colab_without_replacing_anything(tmp_path):
    """What the setup cell installs on Colab (the package without its dependencies, then the
    requirements Colab lacks), resolved by pip for Python 3.13 with Colab's pins as constraints:
    a requirement that needed another version of a pinned package would fail the resolution."""
    pins = colab_pins()
    missing = colab.requirements_to_install(installed=pins)
    common = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--disable-pip-version-check",
              "--python-version", "3.13", "--only-binary=:all:", "--ignore-installed"]
    package = subprocess.run([*common, "--no-deps", "--target", str(tmp_path / "a"), f"covid-tutorial @ {ROOT.as_uri()}"],
                             capture_output=True, text=True, env={**os.environ, "PIP_NO_BUILD_ISOLATION": "0"})
    assert package.returncode == 0, f"the package itself for Python 3.13 (requires-python):\n{package.stderr[-3000:]}"
    report = tmp_path / "report.json"
    resolved = subprocess.run(
        [*common, "--target", str(tmp_path / "b"), "--report", str(report), "-c", str(CONSTRAINTS),
         *(f"{name}=={version}" for name, version in pins.items()), *missing],
        capture_output=True, text=True,
    )
    assert resolved.returncode == 0, (
        "pip could not resolve the requirements Colab lacks for Python 3.13 without replacing "
        f"one of Colab's packages (needs PyPI):\n{resolved.stderr[-3000:]}"
    )
    installed = {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
                 for item in json.loads(report.read_text())["install"]}
    for name, version in pins.items():
        assert installed[name] == version, f"{name} would be replaced"
    assert {n for n in installed if n.startswith("opencv")} == {"opencv-python"}, "a second OpenCV build"
    assert "tf-keras-vis" in installed


# ------------------------------------------------------------- profile and data on Colab


@pytest.fixture
def on_colab(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    monkeypatch.delenv(profiles.PROFILE_ENV_VAR, raising=False)


def test_colab_with_a_gpu_picks_the_gpu_profile_unless_the_learner_chose(on_colab, monkeypatch):
    monkeypatch.setattr(profiles, "_gpu_visible", lambda: True)
    assert profiles.get_profile().name == "gpu"
    monkeypatch.setenv(profiles.PROFILE_ENV_VAR, "cpu")
    assert profiles.get_profile().name == "cpu"


def test_colab_without_a_gpu_and_elsewhere_the_default_is_cpu(on_colab, monkeypatch):
    monkeypatch.setattr(profiles, "_gpu_visible", lambda: False)
    assert profiles.get_profile().name == "cpu"
    monkeypatch.delitem(sys.modules, "google.colab")
    monkeypatch.setattr(profiles, "_gpu_visible", lambda: True)
    assert profiles.get_profile().name == "cpu", "a local GPU does not change the default"


def test_on_colab_data_and_caches_go_to_session_storage(on_colab, monkeypatch):
    monkeypatch.setattr(system.os, "access", lambda *a: False)  # as when installed, not a checkout
    monkeypatch.setattr(download, "_checkout_root", lambda: None)
    monkeypatch.delenv(download.DATA_ENV_VAR, raising=False)
    assert system.data_root() == Path("/content/covid_tutorial_data")
    assert download.default_data_dir() == Path("/content/covid_tutorial_data/downloads")


# ------------------------------------------------------------- the setup cell in a Colab-like kernel


def _repository_of_the_working_tree(where: Path) -> str:
    """A git repository holding what builds the package, as the working tree has it now."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "pyproject.toml", "README.md", "covid_tutorial"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        target = where / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / name).read_bytes())
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=where, check=True)
    subprocess.run([*git, "add", "-A"], cwd=where, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "course"], cwd=where, check=True)
    return where.as_uri()


def _colab_like_environment(where: Path) -> Path:
    """A fresh virtual environment that sees what this one has installed, as Colab has its
    packages preinstalled, except the course package; and a stand-in google.colab module."""
    venv.create(where / "venv", with_pip=False)
    python = where / "venv" / "bin" / "python"
    preinstalled = where / "preinstalled"
    preinstalled.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(("covid_tutorial", "covid-tutorial", "__editable__", "_covid_tutorial")) and entry.suffix != ".pth":
            (preinstalled / entry.name).symlink_to(entry)
    stand_in = where / "stand-in" / "google" / "colab"
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text('"""A stand-in for Colab\'s module: its presence is what the setup cell tests."""\n')
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "colab-preinstalled.pth").write_text(f"{where / 'stand-in'}\n{preinstalled}\n")
    kernel = where / "jupyter" / "kernels" / "colab"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab-like", "language": "python",
        "env": {"PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "TF_CPP_MIN_LOG_LEVEL": "3"},
    }))
    return where / "venv"


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


@pytest.mark.slow
def test_setup_cell_installs_the_package_on_a_colab_like_kernel(tmp_path, monkeypatch):
    url = _repository_of_the_working_tree(tmp_path / "repo")
    environment = _colab_like_environment(tmp_path)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv(profiles.PROFILE_ENV_VAR, raising=False)
    cells = [
        "import google.colab  # Colab imports it when the kernel starts",
        publish.setup_cell_source(publish.Place()),  # nothing published
        publish.setup_cell_source(publish.Place(repository=url, ref="main")),
        "import covid_tutorial, covid_tutorial.system as s; print(covid_tutorial.__file__); print(s.data_root())",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, kernel_name="colab", timeout=600, allow_errors=True, resources={"metadata": {"path": str(tmp_path)}}).execute()

    unpublished = nb.cells[1].outputs
    errors = [o for o in unpublished if o.output_type == "error"]
    assert errors and errors[0].ename == "SystemExit" and "not published" in errors[0].evalue
    assert not any("Traceback" in line or 'File "' in line for line in errors[0].traceback), "one sentence, no traceback"

    setup = nb.cells[2]
    assert not [o for o in setup.outputs if o.output_type == "error"], setup.outputs
    assert "nothing replaced" in _text(setup)
    assert "| profile cpu" in _text(setup)  # no GPU here, nothing chosen
    installed_at, data_at = _text(nb.cells[3]).split()
    assert Path(installed_at).is_relative_to(environment), "imported from the fresh install, not the checkout"
    assert data_at == "/content/covid_tutorial_data"
