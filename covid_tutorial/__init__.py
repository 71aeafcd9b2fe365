"""covid_tutorial: deep learning for COVID-19 detection in chest X-ray and CT images.

The package follows the learner's path through the course: the ``data`` chapter (collections,
phantoms, one table of images, labels and patients, splits) -> ``models`` and ``feed`` ->
``train`` and ``metrics`` -> ``runs`` (the RUN folder) -> the ``explain`` chapter,
``figures``, ``predict``, ``transfer`` -> ``bench`` -> the workflows (``pipeline``,
``compare``) and the notebooks' ``teaching`` helpers -> the command line (``cli``).
``profiles`` holds the one switch (``ci``, ``page``, ``cpu``, ``gpu``) that sizes every run.
docs/architecture.md draws the layers.
"""

__version__ = "0.1.0"

NOT_FOR_CLINICAL_USE = (
    "Teaching material only: not a medical device, not for clinical use or diagnosis."
)
