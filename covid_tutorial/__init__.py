"""covid_tutorial: deep learning for COVID-19 detection in chest X-ray and CT images.

The modules follow the learner's path through the course: data (``registry``,
``download``, ``phantoms``, ``data``, ``splits``, ``inspection``) -> ``models`` -> ``train``
-> ``runs`` -> ``metrics`` -> ``explain`` and friends -> ``figures``, with the workflows
(``pipeline``, ``compare``), the benchmarks (``bench``) and the command line (``cli``) on top.
``profiles`` holds the one switch (``ci``, ``cpu``, ``gpu``) that sizes every run.
docs/architecture.md draws the layers.
"""

__version__ = "0.1.0"

NOT_FOR_CLINICAL_USE = (
    "Teaching material only: not a medical device, not for clinical use or diagnosis."
)
