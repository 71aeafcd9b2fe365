"""The collections the course knows, read from ``registry.toml``, and tables of them.

The facts live as data in ``registry.toml`` next to this module (shipped with the
package), with comments saying where each one was read. This module reads that file,
checks every entry and offers one frozen :class:`DatasetInfo` per collection in
:data:`REGISTRY`: what it holds, how its classes map to the course classes, where its
patient ids are, how its files are laid out, its licence and citation, and how to get it.
A broken entry stops the import with a :class:`RegistryError` naming the file, the entry
and the field.

Typical use::

    from covid_tutorial.data.registry import get_dataset_info, list_datasets
    list_datasets()                                   # a tidy table of the registry
    get_dataset_info("covid-ct-multiclass").patient_ids.source   # "subfolder"
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import pandas as pd

from ..errors import CourseError
from .labels import CLASS_NAMES, EXCLUDED, NON_COVID

__all__ = [
    "NON_COVID_LABEL",
    "METHODS",
    "MODALITIES",
    "LAYOUTS",
    "PATIENT_ID_SOURCES",
    "LABEL_RULES",
    "RegistryError",
    "UnknownDatasetError",
    "PatientIds",
    "MetadataTable",
    "NpzArrays",
    "DatasetInfo",
    "read_registry",
    "REGISTRY",
    "get_dataset_info",
    "list_datasets",
    "format_dataset_table",
    "format_registry_markdown",
]

#: Binary collections (COVID vs not) whose negative class mixes healthy lungs and other
#: diseases cannot honestly be called "Normal"; they map to this label instead.
NON_COVID_LABEL = NON_COVID
# EXCLUDED (from labels): how ``registry.toml`` and ``--label-map`` write a class left out
# of the course (``None`` in Python).

METHODS = ("direct", "github", "kaggle", "manual", "generate")
MODALITIES = ("X-ray", "CT")
#: folder-per-class: ``<class>/*``; folder-per-class-per-patient: ``<class>/<patient>/*``;
#: metadata-csv: a table of file names and labels next to an image folder;
#: npz-arrays: numpy arrays of images and labels in one ``.npz`` file.
LAYOUTS = ("folder-per-class", "folder-per-class-per-patient", "metadata-csv", "npz-arrays")
#: column: a column of the metadata CSV; subfolder: one folder per patient in each class
#: folder; filename-pattern: a regular expression on the file name; side-table: a column
#: of a separate file; none: the collection does not identify patients.
PATIENT_ID_SOURCES = ("column", "subfolder", "filename-pattern", "side-table", "none")
#: classes: the keys of ``classes`` are the exact label values; course: the keys describe
#: groups of values, each value is mapped by :func:`covid_tutorial.data.labels.map_label`.
LABEL_RULES = ("classes", "course")

_REGISTRY_FILE = "registry.toml"
_HASH_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64}
_FOLDER_LAYOUTS = ("folder-per-class", "folder-per-class-per-patient")


class RegistryError(CourseError, ValueError):
    """An entry of the registry file breaks its schema; the message names file, entry and field."""


class UnknownDatasetError(CourseError, LookupError):
    """The name is not in the registry."""


# ---------------------------------------------------------------------------
# The entry: a frozen dataclass per collection, with small ones for its parts
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PatientIds:
    """Where a collection's patient identifiers are, or why it has none."""

    source: str  # one of PATIENT_ID_SOURCES
    description: str  # in words, as the sources say it
    column: str | None = None  # "column" and "side-table": the column holding the ids
    pattern: str | None = None  # "filename-pattern": a regex with a group named "patient"
    file: str | None = None  # "side-table": the file, as the sources name it


@dataclasses.dataclass(frozen=True)
class MetadataTable:
    """For layout "metadata-csv": the table, the image folder and the columns to read.

    Paths are relative to the entry's ``data_root``. ``filters`` keeps only the rows whose
    column holds one of the listed values (e.g. ``{"modality": ("X-ray",)}``).
    """

    csv: str
    images: str
    label_column: str
    label_rules: str  # one of LABEL_RULES
    file_column: str | None = None  # None where the sources do not name it
    filters: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        filters = {column: tuple(values) for column, values in self.filters.items()}
        object.__setattr__(self, "filters", types.MappingProxyType(filters))


@dataclasses.dataclass(frozen=True)
class NpzArrays:
    """For layout "npz-arrays": the array names per publisher split, and the label values.

    ``label_values`` maps each label value, written as text (``"0"``), to a key of the
    entry's ``classes``.
    """

    images: Mapping[str, str] = dataclasses.field(hash=False)  # split -> array of images
    labels: Mapping[str, str] = dataclasses.field(hash=False)  # split -> array of labels
    label_values: Mapping[str, str] = dataclasses.field(hash=False)

    def __post_init__(self) -> None:
        for name in ("images", "labels", "label_values"):
            object.__setattr__(self, name, types.MappingProxyType(dict(getattr(self, name))))


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Everything the course knows about one collection: one ``[datasets.<name>]`` table.

    ``classes`` maps each class as the collection names it (a folder name, a label value)
    to a course class (:data:`~covid_tutorial.data.labels.CLASS_NAMES`), to
    :data:`NON_COVID_LABEL`, or to ``None`` ("excluded" in the file) when the class is
    left out of the course (for example ``Lung_Opacity``).

    The loader fields say where the images are, relative to the folder that
    ``download_dataset`` returns: ``layout``; ``data_root``, the folder where that layout
    starts (None where no source says); ``images_subfolder``, a folder inside each class
    folder that holds the images; ``publisher_splits``, whether the publisher split the
    images (into ``split_folders`` above the class folders, where their names are known);
    ``metadata`` for "metadata-csv"; ``arrays`` for "npz-arrays".
    """

    name: str  # the table's key in registry.toml
    title: str
    modality: str  # one of MODALITIES
    method: str  # one of METHODS
    source_url: str  # the page a person reads
    licence: str
    citation: str
    classes: Mapping[str, str | None] = dataclasses.field(hash=False)
    patient_ids: PatientIds
    layout: str  # one of LAYOUTS
    provenance: tuple[str, ...]  # where each fact above was read
    data_root: str | None = None
    images_subfolder: str | None = None
    publisher_splits: bool = False
    split_folders: tuple[str, ...] = ()
    metadata: MetadataTable | None = None
    arrays: NpzArrays | None = None
    url: str | None = None  # file to fetch for "direct" and "github"
    kaggle_handle: str | None = None  # "owner/dataset" for "kaggle"
    filename: str | None = None  # name to save the download under
    checksum: str | None = None  # "md5:<hex>" or "sha256:<hex>", only if published
    checksum_source: str | None = None  # where that checksum was published
    documented_size: str | None = None  # image counts as documented, with the source
    manual_steps: str | None = None  # for "manual" and "generate"
    inner_archives: tuple[str, ...] = ()  # glob patterns of archives inside the archive
    # class as the collection names it -> where its images come from and under what licence,
    # for collections whose classes come from different sources (shown beside each image)
    image_sources: Mapping[str, str] = dataclasses.field(default_factory=dict, hash=False)
    notes: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", types.MappingProxyType(dict(self.classes)))
        object.__setattr__(self, "image_sources", types.MappingProxyType(dict(self.image_sources)))
        for name in ("provenance", "split_folders", "inner_archives"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _raise_problems(self.name, _problems(self))

    @property
    def has_patient_ids(self) -> bool:
        return self.patient_ids.source != "none"

    @property
    def course_labels(self) -> tuple[str, ...]:
        """The labels this collection contributes, in course order."""
        present = {label for label in self.classes.values() if label is not None}
        return tuple(label for label in CLASS_NAMES + (NON_COVID_LABEL,) if label in present)

    @property
    def obtain(self) -> str:
        """One line saying how the files are obtained."""
        if self.method == "kaggle":
            return f"kaggle: {self.kaggle_handle}"
        if self.method in ("direct", "github"):
            return f"{self.method}: {self.url}"
        if self.method == "generate":
            return "generate: covid-tutorial phantoms --out DIR"
        return "manual: see the steps"

    def source_of(self, source_label: str) -> str:
        """Where images of this class (as the collection names it) come from and their licence."""
        return self.image_sources.get(source_label, f"{self.title}; licence: {self.licence}")

    def class_map_text(self) -> str:
        """``source -> label`` pairs, excluded classes marked as such."""
        pairs = self.classes.items()
        return "; ".join(f"{source} -> {label or '(excluded)'}" for source, label in pairs)

    def layout_text(self) -> str:
        """Where the images are, in one line; ``...`` marks a folder no source names."""
        root = "..." if self.data_root is None else self.data_root
        parts = [] if root == "." else [root]
        if self.layout == "metadata-csv":
            table = self.metadata
            where = "/".join(parts + [table.csv])
            images = "/".join(parts + [table.images])
            text = f"`{where}`, label column '{table.label_column}', images in `{images}/`"
            if table.filters:
                kept = ", ".join(f"{col} {' or '.join(v)}" for col, v in table.filters.items())
                text += f"; rows with {kept}"
            return text
        if self.layout == "npz-arrays":
            arrays = self.arrays
            splits = ", ".join(f"{arrays.images[s]}/{arrays.labels[s]}" for s in arrays.images)
            values = ", ".join(f"{value} = {key}" for value, key in arrays.label_values.items())
            return f"`{self.filename}` arrays {splits}; label values {values}"
        if self.publisher_splits:
            parts.append("|".join(self.split_folders) or "<split>")
        parts.append("<class>")
        if self.layout == "folder-per-class-per-patient":
            parts.append("<patient>")
        if self.images_subfolder:
            parts.append(self.images_subfolder)
        return "`" + "/".join(parts + ["*"]) + "`"


def _raise_problems(name: str, problems: list[tuple[str, str]]) -> None:
    if problems:
        lines = "".join(f"\n  field {field!r}: {text}" for field, text in problems)
        raise RegistryError(f"entry {name!r}:{lines}")


def _is_relative_inside(path: str) -> bool:
    pure = PurePosixPath(path.replace("\\", "/"))
    return bool(path) and not pure.is_absolute() and ".." not in pure.parts and ":" not in path


def _one_of(value, allowed) -> str:
    return f"{value!r} is not one of {', '.join(allowed)}"


class _Problems(list):
    """What is wrong with an entry, as (field, text) pairs."""

    def need(self, condition, field: str, text: str) -> None:
        if not condition:
            self.append((field, text))


def _problems(info: DatasetInfo) -> list[tuple[str, str]]:
    """Every rule an entry breaks."""
    problems = _Problems()
    problems.need(
        re.fullmatch(r"[a-z0-9][a-z0-9-]*", info.name),
        "name",
        "must be lower-case letters, digits and dashes",
    )
    problems.need(info.modality in MODALITIES, "modality", _one_of(info.modality, MODALITIES))
    problems.need(info.method in METHODS, "method", _one_of(info.method, METHODS))
    problems.need(info.layout in LAYOUTS, "layout", _one_of(info.layout, LAYOUTS))
    problems.need(info.provenance, "provenance", "must name where the facts were read")
    problems.need(info.classes, "classes", "must not be empty")
    strays = sorted(set(info.image_sources) - set(info.classes))
    problems.need(not strays, "image_sources", f"names classes the entry does not have: {strays}")
    allowed = set(CLASS_NAMES) | {NON_COVID_LABEL, None}
    for source, label in info.classes.items():
        problems.need(
            label in allowed,
            "classes",
            f"{source!r} maps to {label!r}, not a course label; use one of "
            f"{', '.join(CLASS_NAMES + (NON_COVID_LABEL, EXCLUDED))}",
        )
    _check_obtaining(info, problems)
    _check_paths(info, problems)
    _check_layout(info, problems)
    _check_patient_ids(info, problems)
    return problems


def _check_obtaining(info: DatasetInfo, problems: _Problems) -> None:
    if info.method in ("direct", "github"):
        problems.need(info.url, "url", f"method {info.method!r} needs url")
    if info.method == "kaggle":
        handle = r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/versions/\d+)?"
        problems.need(
            re.fullmatch(handle, info.kaggle_handle or ""),
            "kaggle_handle",
            "method 'kaggle' needs kaggle_handle 'owner/dataset'",
        )
    if info.method in ("manual", "generate"):
        problems.need(
            info.manual_steps, "manual_steps", f"method {info.method!r} needs manual_steps"
        )
    if info.checksum is None:
        problems.need(info.checksum_source is None, "checksum_source", "given without a checksum")
        return
    algorithm, _, digest = info.checksum.partition(":")
    problems.need(
        _HASH_LENGTHS.get(algorithm) == len(digest) and re.fullmatch(r"[0-9a-f]+", digest),
        "checksum",
        "must look like 'md5:<32 hex>' or 'sha256:<64 hex>'",
    )
    problems.need(
        info.checksum_source,
        "checksum_source",
        "a checksum needs checksum_source: where it was published",
    )


def _check_paths(info: DatasetInfo, problems: _Problems) -> None:
    """Paths a loader joins to the download folder must stay inside it."""
    paths = [("data_root", info.data_root), ("images_subfolder", info.images_subfolder)]
    paths += [("split_folders", folder) for folder in info.split_folders]
    paths += [("inner_archives", pattern) for pattern in info.inner_archives]
    if info.metadata is not None:
        paths += [("metadata.csv", info.metadata.csv), ("metadata.images", info.metadata.images)]
    for field, path in paths:
        problems.need(
            path is None or _is_relative_inside(path),
            field,
            f"{path!r} must be a relative path without '..'",
        )


def _check_layout(info: DatasetInfo, problems: _Problems) -> None:
    folders = info.layout in _FOLDER_LAYOUTS
    only_folders = "only for folder layouts"
    problems.need(folders or info.images_subfolder is None, "images_subfolder", only_folders)
    problems.need(folders or not info.split_folders, "split_folders", only_folders)
    problems.need(
        info.publisher_splits or not info.split_folders,
        "split_folders",
        "needs publisher_splits = true",
    )
    problems.need(
        (info.layout == "metadata-csv") == (info.metadata is not None),
        "metadata",
        "a [metadata] table goes with layout 'metadata-csv', and only with it",
    )
    problems.need(
        (info.layout == "npz-arrays") == (info.arrays is not None),
        "arrays",
        "an [arrays] table goes with layout 'npz-arrays', and only with it",
    )
    if info.metadata is not None:
        rules = info.metadata.label_rules
        problems.need(rules in LABEL_RULES, "metadata.label_rules", _one_of(rules, LABEL_RULES))
        for column, values in info.metadata.filters.items():
            problems.need(values, f"metadata.filters.{column}", "must list the values to keep")
    if info.arrays is not None:
        arrays = info.arrays
        problems.need(
            arrays.images.keys() == arrays.labels.keys(),
            "arrays.labels",
            "must name the same splits as arrays.images",
        )
        problems.need(arrays.label_values, "arrays.label_values", "must not be empty")
        for value, key in arrays.label_values.items():
            problems.need(
                key in info.classes,
                "arrays.label_values",
                f"{value!r} maps to {key!r}, which is not a key of classes",
            )


def _check_patient_ids(info: DatasetInfo, problems: _Problems) -> None:
    ids = info.patient_ids
    problems.need(
        ids.source in PATIENT_ID_SOURCES,
        "patient_ids.source",
        _one_of(ids.source, PATIENT_ID_SOURCES),
    )
    problems.need(
        ids.description.strip(),
        "patient_ids.description",
        "must say where the ids are, or why there are none",
    )
    problems.need(
        (ids.source == "subfolder") == (info.layout == "folder-per-class-per-patient"),
        "patient_ids.source",
        "'subfolder' goes with layout 'folder-per-class-per-patient', and only with it",
    )
    if ids.source == "column":
        problems.need(ids.column, "patient_ids.column", "source 'column' needs the column's name")
        problems.need(
            info.layout == "metadata-csv",
            "patient_ids.source",
            "'column' reads the metadata CSV: it needs layout 'metadata-csv'",
        )
    problems.need(
        ids.column is None or ids.source in ("column", "side-table"),
        "patient_ids.column",
        f"not used with source {ids.source!r}",
    )
    problems.need(
        (ids.file is not None) == (ids.source == "side-table"),
        "patient_ids.file",
        "goes with source 'side-table', and only with it",
    )
    problems.need(
        (ids.pattern is not None) == (ids.source == "filename-pattern"),
        "patient_ids.pattern",
        "goes with source 'filename-pattern', and only with it",
    )
    if ids.pattern is None:
        return
    try:
        groups = re.compile(ids.pattern).groupindex
    except re.error as exc:
        problems.append(("patient_ids.pattern", f"not a regular expression ({exc})"))
        return
    problems.need(
        "patient" in groups,
        "patient_ids.pattern",
        "needs a group named 'patient', e.g. '^(?P<patient>P\\d+)_'",
    )


# ---------------------------------------------------------------------------
# Reading registry.toml
# ---------------------------------------------------------------------------


def _optional_removed(hint):
    """``X`` from ``X | None``; other hints unchanged (TOML has no null)."""
    if isinstance(hint, types.UnionType):
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    return hint


def _from_toml(cls, table: dict, prefix: str, problems: list) -> dict:
    """Keyword arguments for dataclass ``cls`` from a TOML table, checking names and types.

    The dataclass is the schema: its fields are the allowed keys, the ones without a
    default are required, and each value must have the field's type.
    """
    hints = typing.get_type_hints(cls)
    fields = [field for field in dataclasses.fields(cls) if field.name != "name"]
    known = {field.name for field in fields}
    for key in table.keys() - known:
        problems.append((prefix + key, f"unknown field; known fields: {', '.join(sorted(known))}"))
    values = {}
    for field in fields:
        if field.name in table:
            hint, value = hints[field.name], table[field.name]
            values[field.name] = _value_from_toml(hint, value, prefix + field.name, problems)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            problems.append((prefix + field.name, "is required"))
    return values


def _value_from_toml(hint, value, field: str, problems: list):
    hint = _optional_removed(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            problems.append((field, "must be a table"))
            return None
        before = len(problems)
        values = _from_toml(hint, value, field + ".", problems)
        return hint(**values) if len(problems) == before else None
    if typing.get_origin(hint) is Mapping:
        if not isinstance(value, dict):
            problems.append((field, "must be a table of key = value"))
            return None
        value_hint = typing.get_args(hint)[1]
        return {
            key: _value_from_toml(value_hint, item, f"{field}.{key}", problems)
            for key, item in value.items()
        }
    if hint == tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            problems.append((field, "must be a list of strings"))
            return ()
        return tuple(value)
    if not isinstance(value, hint):
        wanted = "true or false" if hint is bool else f"a {hint.__name__}"
        problems.append((field, f"must be {wanted}, not {value!r}"))
    return value


def _entry_from_toml(name: str, table) -> DatasetInfo:
    if not isinstance(table, dict):
        raise RegistryError(f"entry {name!r}: must be a table [datasets.{name}]")
    problems: list[tuple[str, str]] = []
    values = _from_toml(DatasetInfo, table, "", problems)
    _raise_problems(name, problems)
    classes = values["classes"].items()
    values["classes"] = {key: None if label == EXCLUDED else label for key, label in classes}
    return DatasetInfo(name=name, **values)


def read_registry(path: str | os.PathLike | None = None) -> Mapping[str, DatasetInfo]:
    """Read and check a registry file: ``registry.toml`` of this package by default.

    Returns a read-only mapping name -> :class:`DatasetInfo`, in the file's order.
    Raises :class:`RegistryError` naming the file, each broken entry and field.
    """
    if path is None:
        source = importlib.resources.files(__package__) / _REGISTRY_FILE
    else:
        source = Path(path)
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RegistryError(f"{source}: cannot be read ({exc}). Reinstall the package.") from None
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{source}: not valid TOML ({exc}).") from None
    tables = data.get("datasets")
    if set(data) != {"datasets"} or not isinstance(tables, dict) or not tables:
        raise RegistryError(
            f"{source}: expected [datasets.<name>] tables only, found {sorted(data)}."
        )
    entries, errors = {}, []
    for name, table in tables.items():
        try:
            entries[name] = _entry_from_toml(name, table)
        except RegistryError as exc:
            errors.append(str(exc))
    if errors:
        raise RegistryError(f"{source}, " + f"\n{source}, ".join(errors))
    return types.MappingProxyType(entries)


#: name -> DatasetInfo, read-only, in the order of registry.toml.
REGISTRY: Mapping[str, DatasetInfo] = read_registry()


# ---------------------------------------------------------------------------
# Looking up and listing
# ---------------------------------------------------------------------------


def get_dataset_info(name: str) -> DatasetInfo:
    """The registry entry for ``name`` (case-insensitive; ``_`` and spaces count as ``-``)."""
    key = str(name).strip().lower().replace("_", "-").replace(" ", "-")
    if key in REGISTRY:
        return REGISTRY[key]
    raise UnknownDatasetError(
        f"Unknown dataset {name!r}. Known datasets: {', '.join(REGISTRY)}. "
        "Run 'covid-tutorial datasets' to see what each one holds."
    )


def list_datasets():
    """The registry as a tidy :class:`pandas.DataFrame`, one row per collection."""

    rows = [
        {
            "name": info.name,
            "title": info.title,
            "modality": info.modality,
            "method": info.method,
            "obtain": info.obtain,
            "classes": info.class_map_text(),
            "course_labels": ", ".join(info.course_labels),
            "has_patient_ids": info.has_patient_ids,
            "patient_ids": info.patient_ids.description,
            "layout": info.layout,
            "licence": info.licence,
            "checksum": info.checksum or "",
            "checksum_source": info.checksum_source or "",
            "documented_size": info.documented_size or "",
            "citation": info.citation,
            "source_url": info.source_url,
            "notes": info.notes,
        }
        for info in REGISTRY.values()
    ]
    return pd.DataFrame(rows)


def format_dataset_table(data_dir: str | os.PathLike | None = None) -> str:
    """A readable terminal table of the registry (what ``covid-tutorial datasets`` prints).

    ``data_dir``, where downloads go (``covid_tutorial.data.download.default_data_dir()``), is
    named at the end when given.
    """
    table = pd.DataFrame(
        [
            {
                "NAME": info.name,
                "MODALITY": info.modality,
                "GET VIA": info.method,
                "COURSE LABELS": ", ".join(info.course_labels),
                "PATIENT IDS": "yes" if info.has_patient_ids else "no",
                "TITLE": info.title if len(info.title) <= 48 else info.title[:45] + "...",
            }
            for info in REGISTRY.values()
        ]
    )
    left = {column: f"{{:<{table[column].str.len().max()}}}".format for column in table}
    lines = [table.to_string(index=False, justify="left", formatters=left)]
    lines.append("")
    lines.append("Download one with:  covid-tutorial download NAME [--dest DIR]")
    if data_dir is not None:
        lines.append(f"Files go to: {data_dir}  (to change it: docs/datasets.md, 'Where files go')")
    lines.append("Licences, citations and details: docs/datasets.md")
    return "\n".join(lines)


def format_registry_markdown() -> str:
    """The registry as Markdown (the generated part of ``docs/datasets.md``)."""

    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    rows = []
    for info in REGISTRY.values():
        how = info.method
        if info.method == "kaggle":
            how = f"kaggle `{info.kaggle_handle}`"
        elif info.method in ("direct", "github"):
            check = "checksum published" if info.checksum else "SHA256 recorded on first download"
            how = f"{info.method} ({check})"
        rows.append({
            "name": f"`{info.name}`",
            "title": info.title,
            "modality": info.modality,
            "how to get it": how,
            "classes -> course labels": info.class_map_text(),
            "patient ids": "yes" if info.has_patient_ids else "no",
            "layout": info.layout,
        })  # fmt: skip
    lines = [pd.DataFrame(rows).map(cell).to_markdown(index=False, tablefmt="pipe")]
    for info in REGISTRY.values():
        lines += ["", f"### `{info.name}`: {info.title}", ""]
        lines.append(f"- **Source:** {info.source_url}")
        if info.url:
            lines.append(f"- **File:** {info.url}")
        if info.kaggle_handle:
            lines.append(f"- **Kaggle handle:** `{info.kaggle_handle}`")
        lines.append(f"- **Licence:** {info.licence}")
        lines.append(f"- **Cite:** {info.citation}")
        lines.append(f"- **Patient ids:** {info.patient_ids.description}")
        lines.append(f"- **Layout:** {info.layout}, {info.layout_text()}")
        if info.documented_size:
            lines.append(f"- **Size as documented:** {info.documented_size}")
        if info.checksum:
            lines.append(f"- **Checksum:** `{info.checksum}`, {info.checksum_source}")
        if info.manual_steps:
            lines.append(f"- **Steps:** {info.manual_steps}")
        lines.append(f"- **Notes:** {info.notes}")
        lines.append("- **Checked in:** " + "; ".join(info.provenance))
    return "\n".join(lines) + "\n"
