"""The teaching helpers of the notebooks: CNN fundamentals in NumPy and small Keras models
(``fundamentals``), diagrams drawn by code, ipywidgets explorers, and self-checked exercises.
"""

from . import diagrams, exercises, fundamentals, interactive
from .diagrams import *  # noqa: F403
from .exercises import *  # noqa: F403
from .fundamentals import *  # noqa: F403
from .interactive import *  # noqa: F403

__all__ = [*fundamentals.__all__, *diagrams.__all__, *interactive.__all__, *exercises.__all__]
