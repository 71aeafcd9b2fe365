"""Profiles: the one switch that sizes every run (tests, a laptop or Binder, a GPU).

Pick one with ``--profile`` on the command line, with the ``COVID_TUTORIAL_PROFILE``
environment variable, or with :func:`get_profile` in a notebook.
:meth:`TrainingSettings.resolve` turns a profile and the caller's options into the
settings of one training: ``covid-tutorial train``, ``covid-tutorial compare run`` and the
demo all ask it, so that they size and stage a training alike.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from functools import cache
from pathlib import Path

from .system import running_on_colab

__all__ = [
    "PROFILE_ENV_VAR",
    "WEIGHTS_ENV_VAR",
    "DEFAULT_PROFILE",
    "Profile",
    "PROFILES",
    "default_profile_name",
    "get_profile",
    "trains_in_two_stages",
    "TrainingSettings",
    "LessonSizes",
    "LESSONS_FILE",
]

LESSONS_FILE = Path(__file__).with_name("lessons.toml")

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

    def lesson(self, number: str) -> "LessonSizes":
        """The knobs of notebook ``number`` (``"06"``) that this profile sizes, from
        ``covid_tutorial/lessons.toml``; a notebook's configuration cell unpacks them with
        :meth:`LessonSizes.values`."""
        return LessonSizes.of(number, self)


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


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """How one network trains: the profile's values, overridden by the caller's options.

    Made by :meth:`resolve`, the one place where a profile and options become a training,
    and recorded in a RUN's ``config.json`` (:mod:`covid_tutorial.runs`; the field names are
    its format). ``backbone`` and ``image_size`` are None until a backbone is chosen
    (:meth:`for_backbone`): a comparison shares everything else among its models, and None
    as image size means each model's native size.
    """

    backbone: str | None
    image_size: int | None
    batch_size: int
    head_epochs: int  # stage 1; without two stages, the whole training
    fine_tune_epochs: int  # stage 2; 0 skips it
    fine_tune_layers: int | None  # backbone layers unfrozen in stage 2; None: its last stage
    seed: int
    weights: str | None
    two_stages: bool  # frozen backbone, then fine-tuning (:func:`trains_in_two_stages`)
    learning_rate: float
    profile: str
    bootstrap_rounds: int

    @classmethod
    def resolve(
        cls,
        profile=None,
        *,
        backbone=None,
        image_size: int | None = None,
        batch_size: int | None = None,
        head_epochs: int | None = None,
        fine_tune_epochs: int | None = None,
        fine_tune_layers: int | None = None,
        seed: int | None = None,
        learning_rate: float | None = None,
    ) -> "TrainingSettings":
        """The settings of a training with ``profile`` (a name, a :class:`Profile` or None for
        :func:`get_profile`'s default); every option left None takes the profile's value, the
        seed 0. The weights are the profile's (``COVID_TUTORIAL_WEIGHTS=none`` included) and
        the two-stage recipe is :func:`trains_in_two_stages`'s answer. ``backbone``: a
        :class:`covid_tutorial.models.Backbone` (:func:`~covid_tutorial.models.get_backbone`)
        to size the settings for at once (:meth:`for_backbone`), or None."""
        profile = get_profile(profile)
        size = image_size or profile.image_size
        settings = cls(
            backbone=None,
            image_size=None if size is None else int(size),
            batch_size=int(batch_size or profile.batch_size),
            head_epochs=int(profile.head_epochs if head_epochs is None else head_epochs),
            fine_tune_epochs=int(profile.fine_tune_epochs if fine_tune_epochs is None else fine_tune_epochs),
            fine_tune_layers=fine_tune_layers,
            seed=0 if seed is None else int(seed),
            weights=profile.weights,
            two_stages=trains_in_two_stages(profile),
            learning_rate=float(learning_rate or profile.learning_rate),
            profile=profile.name,
            bootstrap_rounds=profile.bootstrap_rounds,
        )
        return settings if backbone is None else settings.for_backbone(backbone)

    def for_backbone(self, backbone) -> "TrainingSettings":
        """These settings for one backbone (its ``name``, ``native_size`` and ``min_size``): the
        image size, or the backbone's native size when there is none, raised to the least size
        the backbone accepts (InceptionV3 needs 75 px)."""
        if isinstance(backbone, str):
            raise TypeError(f"backbone: give covid_tutorial.models.get_backbone({backbone!r}), not its name")
        size = max(int(self.image_size or backbone.native_size), int(backbone.min_size))
        return dataclasses.replace(self, backbone=backbone.name, image_size=size)

    @classmethod
    def from_json(cls, content: dict) -> "TrainingSettings":
        """The settings recorded in a RUN's ``config.json``, of any RUN of format 1."""
        # RUNs written before two_stages and bootstrap_rounds were recorded
        defaults = {"two_stages": content.get("weights") is not None, "bootstrap_rounds": 1000}
        names = [field.name for field in dataclasses.fields(cls)]
        return cls(**{name: content.get(name, defaults.get(name)) for name in names})


@cache
def _lessons() -> dict:
    with LESSONS_FILE.open("rb") as file:
        return tomllib.load(file)


def _knob_value(knob: dict, profile: Profile):
    value = knob.get(profile.name, knob.get("default"))
    if isinstance(value, str) and value.startswith("profile."):
        return getattr(profile, value.removeprefix("profile."))
    return value


def _shown(value) -> str:
    if value is None:
        return "(none)"
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


@dataclasses.dataclass(frozen=True)
class LessonSizes:
    """One notebook's knobs as one profile sizes them (``covid_tutorial/lessons.toml``).

    ``values()`` gives them in the file's order, so that a configuration cell reads
    ``IMAGE_SIZE, EPOCHS = profile.lesson("06").values()``; ``values("EPOCHS")`` names them,
    and a knob the file does not list for the lesson is an error, not a silent None. Shown in a notebook,
    it is a table of every profile's value with this profile's column first; "(none)" is None, which
    the lesson reads as "the profile's own" (or "all" for a count of rounds).
    """

    lesson: str
    profile: str
    sizes: dict

    @classmethod
    def of(cls, number: str, profile: Profile | str | None = None) -> "LessonSizes":
        profile = get_profile(profile)
        table = _lessons().get(str(number))
        if table is None:
            raise KeyError(f"{LESSONS_FILE.name} has no table [\"{number}\"] of lesson sizes")
        return cls(lesson=str(number), profile=profile.name,
                   sizes={name: _knob_value(knob, profile) for name, knob in table.items()})

    def values(self, names: str | None = None) -> tuple:
        """The values of the knobs named (separated by spaces), in that order; with no names,
        every knob in the file's order (tests/test_notebook_skeleton.py checks that a
        configuration cell unpacks them under their own names)."""
        wanted = list(self.sizes) if names is None else names.split()
        unknown = [name for name in wanted if name not in self.sizes]
        if unknown:
            raise KeyError(f"lesson {self.lesson} has no knob {', '.join(unknown)} in {LESSONS_FILE.name}; "
                           f"it has {', '.join(self.sizes)}")
        return tuple(self.sizes[name] for name in wanted)

    def table(self):
        """Every profile's value of each knob, this profile's column first (a DataFrame)."""
        import pandas as pd

        order = [self.profile, *(name for name in PROFILES if name != self.profile)]
        columns = {name: LessonSizes.of(self.lesson, PROFILES[name]).sizes for name in order}
        rows = [[_shown(columns[name][knob]) for name in order] for knob in self.sizes]
        frame = pd.DataFrame(rows, index=list(self.sizes), columns=order, dtype=object)
        return frame.rename(columns={self.profile: f"{self.profile} (this run)"}).rename_axis(f"lesson {self.lesson}")

    def _repr_html_(self) -> str:
        return self.table().to_html()

    def __str__(self) -> str:
        return self.table().to_string()
