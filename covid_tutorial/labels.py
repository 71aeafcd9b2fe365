"""The course's classes, and how a collection's own label names map onto them."""

from __future__ import annotations

import re

from .errors import DataError

__all__ = [
    "CLASS_NAMES",
    "COVID_TOKENS",
    "NORMAL_TOKENS",
    "PNEUMONIA_TOKENS",
    "map_label",
]

CLASS_NAMES = ("COVID-19", "Normal", "Pneumonia")

# Label tokens, compared after lower-casing and dropping everything but letters and digits,
# so "COVID-19", "covid19" and "COVID" all match. A hierarchical finding such as
# "Pneumonia/Viral/COVID-19" is split at "/" and COVID-19 anywhere in it wins.
COVID_TOKENS = {"covid19", "covid", "sarscov2", "ctcovid"}
NORMAL_TOKENS = {"normal", "nofinding", "healthy"}
PNEUMONIA_TOKENS = {"pneumonia", "viralpneumonia", "bacterialpneumonia", "otherpneumonia"}


def _token(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def map_label(value: str, label_map: dict | None = None) -> str | None:
    """Map a dataset's label to a course class (``CLASS_NAMES``), ``None`` to drop it.

    ``label_map`` comes first: its keys are matched case-insensitively against the whole
    value, and a value of ``None`` drops those images. Then the default rules apply:
    COVID-19 anywhere in a hierarchical finding gives "COVID-19"; "No Finding", "normal"
    or "healthy" give "Normal"; any other pneumonia gives "Pneumonia".
    Raises ``KeyError`` for a value no rule covers.
    """
    if label_map:
        lowered = {str(k).strip().lower(): v for k, v in label_map.items()}
        key = str(value).strip().lower()
        if key in lowered:
            mapped = lowered[key]
            if mapped is not None and mapped not in CLASS_NAMES:
                raise DataError(
                    f"label_map sends {value!r} to {mapped!r}, which is not a course class; "
                    f"use one of {list(CLASS_NAMES)} or None to drop those images."
                )
            return mapped
    parts = [_token(p) for p in str(value).split("/") if p.strip()]
    if any(p in COVID_TOKENS for p in parts):
        return "COVID-19"
    if parts and all(p in NORMAL_TOKENS for p in parts):
        return "Normal"
    if any(p in PNEUMONIA_TOKENS or p.endswith("pneumonia") for p in parts):
        return "Pneumonia"
    raise KeyError(value)
