"""The explanations chapter: Grad-CAM and the library CAM methods (``maps``), how good a map
is (``quality``), intermediate activations (``activations``) and shortcut learning (``shortcuts``).
"""

from . import activations, maps, quality, shortcuts
from .activations import *  # noqa: F403
from .maps import *  # noqa: F403
from .quality import *  # noqa: F403
from .shortcuts import *  # noqa: F403

__all__ = [*maps.__all__, *quality.__all__, *activations.__all__, *shortcuts.__all__]
