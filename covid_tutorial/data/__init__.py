"""The data chapter: the collections the course knows, downloading them, the synthetic
phantoms, one table of images, labels and patients, pixels, patient-wise splits, checks.

Nothing in this chapter imports TensorFlow or Keras (a contract in pyproject.toml keeps it),
so ``covid-tutorial inspect``, ``split`` and ``datasets`` start at once.
"""

from . import ct_phantoms, download, images, inspection, labels, phantoms, registry, splits, table
from .ct_phantoms import *  # noqa: F403
from .download import *  # noqa: F403
from .images import *  # noqa: F403
from .inspection import *  # noqa: F403
from .labels import *  # noqa: F403
from .phantoms import *  # noqa: F403
from .registry import *  # noqa: F403
from .splits import *  # noqa: F403
from .table import *  # noqa: F403

__all__ = [
    *labels.__all__,
    *registry.__all__,
    *download.__all__,
    *phantoms.__all__,
    *ct_phantoms.__all__,
    *table.__all__,
    *images.__all__,
    *splits.__all__,
    *inspection.__all__,
]
