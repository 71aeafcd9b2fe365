"""The course's classes, the tasks made of them, and how a collection's label names map onto them.

A *task* is the tuple of classes a model learns: the course's three (:data:`CLASS_NAMES`),
the binary :data:`COVID_VS_REST` for CT collections whose negative class mixes healthy
and diseased lungs, or a learner's own names. :func:`map_label` sends one label value to a
class of the task using, in this order, an explicit ``label_map``, the task's own class
names, and the synonym table ``labels.toml`` shipped next to this module
(:data:`SYNONYMS`). :func:`parse_classes` and :func:`parse_label_map` read the command
line's ``--classes`` and ``--label-map``.
"""

from __future__ import annotations

import importlib.resources
import re
import tomllib
from pathlib import Path

from ..errors import DataError

__all__ = [
    "CLASS_NAMES",
    "NON_COVID",
    "COURSE_LABELS",
    "COVID_VS_REST",
    "EXCLUDED",
    "SYNONYMS",
    "COVID_TOKENS",
    "NORMAL_TOKENS",
    "PNEUMONIA_TOKENS",
    "NON_COVID_TOKENS",
    "read_synonyms",
    "course_label",
    "task_classes",
    "fit_to_task",
    "map_label",
    "parse_classes",
    "parse_label_map",
]

CLASS_NAMES = ("COVID-19", "Normal", "Pneumonia")
#: The negative class of COVID-19 vs rest: healthy lungs and other diseases together.
NON_COVID = "Non-COVID"
#: Every label the course's rules can give: the three classes and Non-COVID.
COURSE_LABELS = CLASS_NAMES + (NON_COVID,)
#: The binary task of CT collections such as sars-cov-2-ct and ucsd-covid-ct.
COVID_VS_REST = ("COVID-19", NON_COVID)
#: How ``--label-map`` and the registry write "leave these images out".
EXCLUDED = "excluded"

_SYNONYM_FILE = "labels.toml"


def _token(text) -> str:
    """Lower case, letters and digits only: "No_Finding", "no finding" and "NO-FINDING" agree."""
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def read_synonyms(path: str | Path | None = None) -> dict[str, tuple[str, ...]]:
    """The ``[synonyms]`` table of ``labels.toml`` (this package's by default): label -> names."""
    if path is None:
        text = (importlib.resources.files(__package__) / _SYNONYM_FILE).read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    table = tomllib.loads(text).get("synonyms", {})
    unknown = sorted(set(table) - set(COURSE_LABELS))
    if unknown:
        raise DataError(
            f"{path or _SYNONYM_FILE}: [synonyms] names {unknown}, not course labels {list(COURSE_LABELS)}."
        )
    return {label: tuple(names) for label, names in table.items()}


SYNONYMS = read_synonyms()
_LABEL_BY_TOKEN = {_token(name): label for label, names in SYNONYMS.items() for name in names}
_LABEL_BY_TOKEN.update({_token(label): label for label in COURSE_LABELS})

# The token sets the hierarchical rule uses, one per course label.
COVID_TOKENS = frozenset(t for t, label in _LABEL_BY_TOKEN.items() if label == "COVID-19") | {"covid19"}
NORMAL_TOKENS = frozenset(t for t, label in _LABEL_BY_TOKEN.items() if label == "Normal")
PNEUMONIA_TOKENS = frozenset(t for t, label in _LABEL_BY_TOKEN.items() if label == "Pneumonia")
NON_COVID_TOKENS = frozenset(t for t, label in _LABEL_BY_TOKEN.items() if label == NON_COVID)


def course_label(value) -> str | None:
    """The course label (:data:`COURSE_LABELS`) the synonym table gives ``value``, else None.

    A whole value found in the table wins. A finding of several parts, hierarchical
    ("Pneumonia/Viral/COVID-19") or listed ("COVID-19, ARDS"), is split at "/" and ",":
    COVID-19 anywhere in it gives "COVID-19"; only Normal names give "Normal"; any other
    pneumonia gives "Pneumonia".
    """
    whole = _LABEL_BY_TOKEN.get(_token(value))
    if whole is not None:
        return whole
    parts = [_token(p) for p in re.split(r"[/,]", str(value)) if p.strip()]
    if any(p in COVID_TOKENS for p in parts):
        return "COVID-19"
    if parts and all(p in NORMAL_TOKENS for p in parts):
        return "Normal"
    if any(p in PNEUMONIA_TOKENS or p.endswith("pneumonia") for p in parts):
        return "Pneumonia"
    return None


def _spelled_as(name: str, classes) -> str | None:
    """``name`` as the task (or the course) spells it, comparing tokens."""
    by_token = {_token(c): c for c in (*classes, *COURSE_LABELS)}
    return by_token.get(_token(name))


def task_classes(classes=None) -> tuple[str, ...]:
    """The task as a tuple of class names: ``None`` is :data:`CLASS_NAMES`, text is parsed.

    Names that spell a course label differently ("covid-19") take the course's spelling.
    Raises :class:`DataError` for fewer than two classes or a class named twice.
    """
    if classes is None:
        return CLASS_NAMES
    if isinstance(classes, str):
        return parse_classes(classes)
    names = [str(c).strip() for c in classes]
    names = [_spelled_as(n, COURSE_LABELS) or n for n in names]
    tokens = [_token(n) for n in names]
    if len(names) < 2 or not all(tokens) or len(set(tokens)) != len(tokens):
        raise DataError(
            f"classes {list(classes)}: a task needs two or more different, non-empty class names, "
            "e.g. --classes 'COVID-19,Non-COVID'."
        )
    return tuple(names)


def fit_to_task(label: str | None, classes=CLASS_NAMES) -> str | None:
    """A course label as a class of the task: itself, Non-COVID for Normal or Pneumonia when
    the task has Non-COVID but not them, else None (no class of the task)."""
    if label is None:
        return None
    if label in classes:
        return label
    if label in ("Normal", "Pneumonia") and NON_COVID in classes:
        return NON_COVID
    return None


def map_label(value, label_map: dict | None = None, classes=None) -> str | None:
    """Map a label value to a class of the task (``classes``, default :data:`CLASS_NAMES`).

    Returns the class, or ``None`` when ``label_map`` sends the value to ``None`` (drop
    those images). In order: ``label_map`` (keys compared ignoring case, spaces, "_" and
    "-"; values are a class of the task, a course label that folds into it, or None), a
    class of the task named alike, then :func:`course_label` folded into the task by
    :func:`fit_to_task`. Raises ``KeyError`` for a value with no class in the task.
    """
    classes = task_classes(classes)
    if label_map:
        by_token = {_token(k): v for k, v in label_map.items()}
        key = _token(value)
        if key in by_token:
            mapped = by_token[key]
            if mapped is None or str(mapped).strip().lower() == EXCLUDED:
                return None
            spelled = _spelled_as(mapped, classes)
            if spelled is None:
                raise DataError(
                    f"label map sends {value!r} to {mapped!r}, which is not a course class nor a "
                    f"class of the task {list(classes)}; use one of them, or '{EXCLUDED}' to leave "
                    f"those images out (--label-map '{value}={classes[0]}')."
                )
            fitted = spelled if spelled in classes else fit_to_task(spelled, classes)
            if fitted is None:
                raise KeyError(value)
            return fitted
    own = _spelled_as(value, classes)
    if own in classes:
        return own
    fitted = fit_to_task(course_label(value), classes)
    if fitted is None:
        raise KeyError(value)
    return fitted


def parse_classes(text: str) -> tuple[str, ...]:
    """``"COVID-19,Non-COVID"`` -> ``("COVID-19", "Non-COVID")`` (for ``--classes``)."""
    return task_classes([part for part in str(text).split(",") if part.strip()])


def parse_label_map(text_or_path) -> dict[str, str | None]:
    """A label map from the command line: ``'CT_NonCOVID=Non-COVID,No_findings=Normal'``
    or the path of a TOML file with a ``[labels]`` table (``"No findings" = "Normal"``).

    A value of ``excluded`` (or nothing: ``'Lung_Opacity='``) leaves those images out.
    Use the TOML file for labels that hold a comma or an equals sign.
    """
    if isinstance(text_or_path, dict):
        pairs = dict(text_or_path)
    elif Path(str(text_or_path)).suffix.lower() == ".toml" or Path(str(text_or_path)).is_file():
        path = Path(text_or_path)
        if not path.is_file():
            raise DataError(f"{path}: label map file not found. Check the path given to --label-map.")
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8-sig"))
        except tomllib.TOMLDecodeError as err:
            raise DataError(f"{path}: not a readable TOML file ({err}).") from None
        pairs = table.get("labels")
        if not isinstance(pairs, dict) or not all(isinstance(v, str) for v in pairs.values()):
            raise DataError(
                f"{path}: needs a [labels] table of \"label\" = \"class\" lines, "
                'e.g. [labels] then "No findings" = "Normal".'
            )
    else:
        pairs = {}
        for piece in str(text_or_path).split(","):
            if not piece.strip():
                continue
            key, equals, value = piece.partition("=")
            if not equals or not key.strip():
                raise DataError(
                    f"--label-map: {piece.strip()!r} is not LABEL=CLASS; write e.g. "
                    "--label-map 'CT_NonCOVID=Non-COVID,No_findings=Normal'."
                )
            pairs[key.strip()] = value.strip()
    def target(value) -> str | None:
        text = "" if value is None else str(value).strip()
        return None if text.lower() in ("", EXCLUDED) else text

    return {str(k).strip(): target(v) for k, v in pairs.items()}
