"""Shared fixtures: a small phantom dataset made once per test session, offline."""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Decoded images and unpacked arrays go to a cache of this session, not the checkout's data/.
os.environ.setdefault("COVID_TUTORIAL_CACHE", tempfile.mkdtemp(prefix="covid-tutorial-cache-"))
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_report_header(config):
    from covid_tutorial.colab import OPENCV_DISTRIBUTIONS, installed_versions

    installed = installed_versions()
    opencv = [n for n in OPENCV_DISTRIBUTIONS if n in installed]  # Colab has opencv-python, pip gives headless
    names = ["tensorflow", "keras", "numpy", "pandas", "scikit-learn", *opencv, "tf-keras-vis"]
    return "versions: " + ", ".join(f"{n} {installed.get(n, 'not installed')}" for n in names)


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory):
    """30 patients at 96 px: enough for loaders and splits, fast to make."""
    from covid_tutorial.data.phantoms import generate_phantoms

    out = tmp_path_factory.mktemp("phantoms")
    generate_phantoms(out, patients=30, size=96, seed=0, progress=False)
    return out


@pytest.fixture(scope="session")
def phantom_tree(phantom_dir, tmp_path_factory):
    """The same phantoms as a folder per class (no patient ids), as Kaggle collections ship."""
    import shutil

    from covid_tutorial.data.table import load_dataset

    root = tmp_path_factory.mktemp("tree")
    for row in load_dataset(phantom_dir).itertuples():
        (root / row.label).mkdir(exist_ok=True)
        shutil.copy(row.path, root / row.label)
    return root


@pytest.fixture(scope="session")
def model_and_image():
    """An untrained ResNet50 whose head is set so that every class has a map that is not flat.

    (At initialisation the maps of some classes are zero everywhere: their weighted sum of
    positive feature maps is negative at every position, and Grad-CAM's ReLU removes it.)
    """
    import keras

    from covid_tutorial.models import build_classifier

    keras.utils.set_random_seed(0)
    model = build_classifier("resnet50", 3, 64, weights=None, seed=0)
    kernel, bias = model.get_layer("head_logits").get_weights()
    rng = np.random.default_rng(0)
    kernel[:, 0] = np.abs(rng.normal(0, kernel.std(), kernel.shape[0]))
    kernel[:, 2] = np.abs(rng.normal(0, kernel.std(), kernel.shape[0])) * (rng.random(kernel.shape[0]) < 0.5)
    model.get_layer("head_logits").set_weights([kernel, bias])
    image = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    return model, image


@pytest.fixture(scope="session")
def gray_images():
    """Two smooth grayscale images (a bright blob in different places), uint8 (2, 64, 64)."""
    y, x = np.mgrid[0:64, 0:64]
    blobs = [np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 120.0) for cx, cy in ((20, 24), (44, 40))]
    return np.stack([np.uint8(60 + 180 * b) for b in blobs])
