"""covid_tutorial: deep learning for COVID-19 detection in chest X-ray and CT images.

The modules follow the learner's path through the course:
``phantoms`` and ``data`` -> ``models`` -> ``train`` -> ``metrics`` -> ``explain`` -> ``report``.
``profiles`` holds the one switch (``ci``, ``cpu``, ``gpu``) that sizes every run.
"""

__version__ = "0.1.0"

NOT_FOR_CLINICAL_USE = (
    "Teaching material only: not a medical device, not for clinical use or diagnosis."
)
