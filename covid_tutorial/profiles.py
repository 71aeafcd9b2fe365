"""Profiles: the one switch that sizes every run (tests, a laptop or Binder, a GPU).

Pick one with ``--profile`` on the command line, with the ``COVID_TUTORIAL_PROFILE``
environment variable, or with :func:`get_profile` in a notebook.
"""

from __future__ import annotations

import dataclasses
import os

from .colab import running_on_colab

__all__ = [
    "PROFILE_ENV_VAR",
    "WEIGHTS_ENV_VAR",
    "DEFAULT_PROFILE",
    "Profile",
    "PROFILES",
    "default_profile_name",
    "get_profile",
    "trains_in_two_stages",
]

PROFILE_ENV_VAR = "COVID_TUTORIAL_PROFILE"
# "none" trains from random weights: for offline machines and for measuring memory
# (the weight tensors have the same shapes, so the memory is the same).
WEIGHTS_ENV_VAR = "COVID_TUTORIAL_WEIGHTS"
DEFAULT_PROFILE = "cpu"


@dataclasses.dataclass(frozen=True)
class Profile:
    """Every knob that a profile turns. Notebooks read these instead of hard-coding sizes."""

    name: str
    description: str
    image_size: int | None  # classifier input in px; None means each model's native size
    weights: str | None  # "imagenet" or None (random initialisation)
    phantom_patients: int  # patients in the embedded synthetic dataset
    phantom_size: int  # px of the generated phantom images
    batch_size: int
    learning_rate: float  # Adam; stage 2 uses a tenth of it
    head_epochs: int  # stage 1: frozen backbone, new head
    fine_tune_epochs: int  # stage 2: top blocks unfrozen, lower learning rate
    folds: int
    repeats: int
    bootstrap_rounds: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PROFILES: dict[str, Profile] = {
    "ci": Profile(
        name="ci",
        description="tests, nbval and CI: embedded phantoms, small images, no downloads, minutes on 2 CPU cores",
        image_size=64,
        weights=None,
        phantom_patients=150,
        phantom_size=128,
        batch_size=16,
        learning_rate=1e-3,
        head_epochs=12,
        fine_tune_epochs=0,
        folds=2,
        repeats=1,
        bootstrap_rounds=200,
    ),
    "page": Profile(
        name="page",
        description="the committed notebook pages: phantoms, 128 px, random weights, each lesson "
        "shown in at most 20 minutes per notebook on 2 CPU cores",
        image_size=128,
        weights=None,
        phantom_patients=300,
        phantom_size=128,
        batch_size=16,
        learning_rate=1e-3,
        head_epochs=20,
        fine_tune_epochs=0,
        folds=5,
        repeats=1,
        bootstrap_rounds=1000,
    ),
    "cpu": Profile(
        name="cpu",
        description="a learner on a laptop or Binder: 224 px, ImageNet weights, at most 1.7 GB per notebook kernel (Binder: 2 GB with the server)",
        image_size=224,
        weights="imagenet",
        phantom_patients=90,
        phantom_size=256,
        batch_size=8,
        learning_rate=1e-4,
        head_epochs=5,
        fine_tune_epochs=3,
        folds=5,
        repeats=1,
        bootstrap_rounds=1000,
    ),
    "gpu": Profile(
        name="gpu",
        description="Colab or a workstation: full real collections, each model's native size, all folds",
        image_size=None,
        weights="imagenet",
        phantom_patients=300,
        phantom_size=512,
        batch_size=32,
        learning_rate=1e-4,
        head_epochs=20,
        fine_tune_epochs=20,
        folds=5,
        repeats=5,
        bootstrap_rounds=2000,
    ),
}


def _gpu_visible() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def default_profile_name() -> str:
    """The profile used when none is chosen: ``gpu`` on Colab when its runtime has a GPU,
    else ``cpu``."""
    if running_on_colab() and _gpu_visible():
        return "gpu"
    return DEFAULT_PROFILE


def get_profile(name: str | Profile | None = None) -> Profile:
    """Return the named profile, else the one in ``COVID_TUTORIAL_PROFILE``, else the
    default (:func:`default_profile_name`: ``cpu``, or ``gpu`` on a Colab GPU runtime)."""
    if isinstance(name, Profile):
        return name
    chosen = name or os.environ.get(PROFILE_ENV_VAR) or default_profile_name()
    key = chosen.strip().lower()
    if key not in PROFILES:
        raise ValueError(
            f"Unknown profile {chosen!r}. Choose one of {', '.join(PROFILES)} "
            f"(with --profile or the {PROFILE_ENV_VAR} environment variable)."
        )
    profile = PROFILES[key]
    if os.environ.get(WEIGHTS_ENV_VAR, "").strip().lower() == "none":
        profile = dataclasses.replace(profile, weights=None)
    return profile


def trains_in_two_stages(profile=None) -> bool:
    """Whether a profile trains in two stages (frozen backbone, then fine-tuning).

    The recipe follows the profile's weights *as the profile defines them*: with
    ``COVID_TUTORIAL_WEIGHTS=none`` (offline, or measuring memory) the ``cpu`` and ``gpu``
    profiles keep their two stages on random weights, so that a run costs the time and
    memory it costs with ImageNet weights. Only a profile without weights of its own
    (``ci``) trains every layer from the start.
    """
    profile = get_profile(profile)
    defined = PROFILES.get(profile.name)
    forced_off = os.environ.get(WEIGHTS_ENV_VAR, "").strip().lower() == "none"
    intended = defined.weights if defined is not None and forced_off else profile.weights
    return intended is not None
