"""The first call of every notebook: :func:`start_lesson`.

It starts TensorFlow without its start-up log, draws matplotlib figures inline with each
figure's description as its alternative text (:func:`covid_tutorial.figures.describe_figure`,
kept in the output beside the image, where Jupyter and the course site read it), prints one
line with the versions and the profile, and returns the profile.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from . import __version__
from .figures import alt_text_formatter
from .profiles import Profile, get_profile
from .system import start_tensorflow_quietly

__all__ = ["start_lesson", "describe_figures_inline"]


def describe_figures_inline(shell) -> None:
    """Draw figures inline in IPython ``shell``, each PNG with its alternative text."""
    shell.run_line_magic("matplotlib", "inline")
    png = shell.display_formatter.formatters["image/png"]
    png.for_type(Figure, alt_text_formatter(png.lookup_by_type(Figure)))


def start_lesson(profile: str | Profile | None = None) -> Profile:
    """TensorFlow imported without its start-up log, matplotlib figures drawn inline (in
    IPython) with alternative text, and one line with the versions and the profile. Returns
    the profile (:func:`~covid_tutorial.profiles.get_profile`: ``profile``, else
    ``COVID_TUTORIAL_PROFILE``, else the default)."""
    start_tensorflow_quietly()
    import keras
    import tensorflow as tf

    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with Jupyter
        get_ipython = None
    shell = get_ipython() if get_ipython else None
    if shell is not None:
        describe_figures_inline(shell)
    chosen = get_profile(profile)
    print(f"covid_tutorial {__version__} | TensorFlow {tf.__version__} | Keras {keras.__version__} | profile {chosen.name}")
    return chosen
