"""Shared fixtures: a small phantom dataset made once per test session, offline."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


def pytest_report_header(config):
    import importlib.metadata as md

    names = ["tensorflow", "keras", "numpy", "pandas", "scikit-learn", "opencv-python-headless", "tf-keras-vis"]
    return "versions: " + ", ".join(f"{n} {md.version(n)}" for n in names)


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory):
    """30 patients at 96 px: enough for loaders and splits, fast to make."""
    from covid_tutorial.phantoms import generate_phantoms

    out = tmp_path_factory.mktemp("phantoms")
    generate_phantoms(out, patients=30, size=96, seed=0, progress=False)
    return out


@pytest.fixture(scope="session")
def phantom_tree(phantom_dir, tmp_path_factory):
    """The same phantoms as a folder per class (no patient ids), as Kaggle collections ship."""
    import shutil

    from covid_tutorial.data import load_dataset

    root = tmp_path_factory.mktemp("tree")
    for row in load_dataset(phantom_dir).itertuples():
        (root / row.label).mkdir(exist_ok=True)
        shutil.copy(row.path, root / row.label)
    return root
