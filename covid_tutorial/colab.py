"""Colab: install what the course needs without replacing what Colab already has.

Colab comes with TensorFlow, Keras, NumPy, scikit-learn, OpenCV and most of what the
course uses. A plain ``pip install covid-tutorial`` there would add a second OpenCV
build (``opencv-python-headless`` beside Colab's ``opencv-python``: two copies of ``cv2``,
one shadowing the other) and could pull other versions of packages Colab's own tools
rely on. So the notebooks' setup cell installs the package without its dependencies,
then calls :func:`install_missing_requirements`, which installs only the requirements
that nothing installed satisfies. Any OpenCV distribution satisfies the OpenCV requirement.

This module imports only the standard library, ``packaging`` and :mod:`covid_tutorial.system`
(standard library only at import): it runs before the course's dependencies are installed.
Whether this process runs on Colab is :func:`covid_tutorial.system.running_on_colab`.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from collections.abc import Mapping

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

__all__ = [
    "OPENCV_DISTRIBUTIONS",
    "installed_versions",
    "requirements_to_install",
    "install_missing_requirements",
]

DISTRIBUTION = "covid-tutorial"
# Every wheel that provides the module cv2: one of them is enough.
OPENCV_DISTRIBUTIONS = (
    "opencv-python",
    "opencv-python-headless",
    "opencv-contrib-python",
    "opencv-contrib-python-headless",
)


def installed_versions() -> dict[str, str]:
    """Canonical distribution name -> version, for everything importable in this Python."""
    versions = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            versions.setdefault(canonicalize_name(name), dist.version)
    return versions


def _runtime_requirements(distribution: str) -> list[Requirement]:
    requirements = []
    for text in importlib.metadata.requires(distribution) or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            requirements.append(requirement)
    return requirements


def requirements_to_install(
    installed: Mapping[str, str] | None = None, distribution: str = DISTRIBUTION
) -> list[str]:
    """The package's runtime requirements that no installed distribution satisfies.

    ``installed`` maps distribution names to versions (default: this Python's). An
    OpenCV requirement counts as met by any OpenCV distribution whose version it allows.
    """
    if installed is None:
        installed = installed_versions()
    have = {canonicalize_name(name): version for name, version in installed.items()}
    missing = []
    for requirement in _runtime_requirements(distribution):
        name = canonicalize_name(requirement.name)
        candidates = OPENCV_DISTRIBUTIONS if name in OPENCV_DISTRIBUTIONS else (name,)
        versions = [have[c] for c in candidates if c in have]
        if not any(requirement.specifier.contains(v, prereleases=True) for v in versions):
            missing.append(str(requirement))
    return missing


def install_missing_requirements(dry_run: bool = False) -> list[str]:
    """pip-install the requirements that are missing (see :func:`requirements_to_install`)."""
    missing = requirements_to_install()
    if not missing:
        print("covid-tutorial: every requirement is already installed; nothing replaced.")
        return missing
    print(f"covid-tutorial: installing {len(missing)} missing requirement(s): {', '.join(missing)}")
    if not dry_run:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", *missing],
            check=True,
        )
    return missing


if __name__ == "__main__":
    install_missing_requirements(dry_run="--dry-run" in sys.argv[1:])
