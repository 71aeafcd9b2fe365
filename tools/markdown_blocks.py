"""Generated parts of a markdown text, between a pair of HTML comments, and the tables in them.

    <!-- notebook-budget:start -->
    | notebook | profile | ... |
    |---|---|---|
    | 00_welcome.ipynb | ci | ... |
    <!-- notebook-budget:end -->

The tools read such a block, merge their new rows into its table and write it back; the
text around the markers is left as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple


class Markers(NamedTuple):
    """The comments that open and close a generated block."""

    start: str
    end: str

    @classmethod
    def named(cls, name: str) -> Markers:
        """``<!-- NAME:start -->`` and ``<!-- NAME:end -->``."""
        return cls(f"<!-- {name}:start -->", f"<!-- {name}:end -->")

    def __str__(self) -> str:
        return f"{self.start} ... {self.end}"


class MissingBlock(ValueError):
    """The text lacks the start marker, or the end marker after it."""

    def __init__(self, markers: Markers):
        super().__init__(f"no {markers} block")
        self.markers = markers


def _inside(text: str, markers: Markers) -> tuple[int, int] | None:
    start = text.find(markers.start)
    if start < 0:
        return None
    start += len(markers.start)
    end = text.find(markers.end, start)
    return None if end < 0 else (start, end)


def has_block(text: str, markers: Markers) -> bool:
    return _inside(text, markers) is not None


def read_block(text: str, markers: Markers) -> str:
    """What lies between the first start marker and the end marker after it."""
    span = _inside(text, markers)
    if span is None:
        raise MissingBlock(markers)
    return text[span[0] : span[1]]


def replace_block(text: str, markers: Markers, inside: str) -> str:
    """``text`` with ``inside`` between the markers instead of what was there (markers kept)."""
    span = _inside(text, markers)
    if span is None:
        raise MissingBlock(markers)
    return text[: span[0]] + inside + text[span[1] :]


def table_rows(block: str, columns: Sequence[str]) -> list[dict[str, str]]:
    """The rows of a markdown table with these columns, as ``{column: cell}``; the header row,
    the separator row and any line that is not a row of as many cells are skipped."""
    rows = []
    for line in block.splitlines():
        if not line.lstrip().startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != len(columns) or cells == list(columns) or all(set(cell) <= set("-: ") for cell in cells):
            continue
        rows.append(dict(zip(columns, cells)))
    return rows


def table_line(cells: Iterable[object]) -> str:
    """One row of a markdown table: ``| a | b |``; an empty cell is written ``| |``."""
    return "|" + "|".join(f" {cell} " if str(cell) else " " for cell in cells) + "|"


def markdown_table(columns: Sequence[str], rows: Iterable[Mapping[str, object] | Sequence[object]]) -> str:
    """A markdown table: the header, the separator, then each row (a mapping by column, or the
    cells in order), without a final newline."""
    lines = [table_line(columns), "|" + "---|" * len(columns)]
    for row in rows:
        lines.append(table_line(row[column] for column in columns) if isinstance(row, Mapping) else table_line(row))
    return "\n".join(lines)
