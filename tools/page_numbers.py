#!/usr/bin/env python3
"""Find run-specific numbers typed into the notebooks' prose.

    python -m tools.page_numbers [NOTEBOOK ...]

A learner who re-runs a notebook in another profile gets other numbers, so a number that
depends on the run must be printed by a cell, never typed into markdown. This lists every
number in a markdown cell that looks like a result: a decimal with two or more digits after
the point (0.707, 12.7), a p-value (p = 0.2), a percentage with decimals (97.5%). Left out:
the header's time-and-memory line (written by `python -m tools.run_notebooks`), code spans
and blocks, LaTeX, DOIs and arXiv numbers, and the sections `## Exercises`, `## Solutions`
and `## References`, whose numbers are the exercise's or the paper's, not the run's.
Numbers quoted from a paper or fixed by the method go in notebooks/quoted_numbers.toml,
each with the reason; any other hit is an error (tests/test_page_numbers.py).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = ROOT / "notebooks"
ALLOWED_FILE = NOTEBOOKS_DIR / "quoted_numbers.toml"
NOT_THE_RUN = ("Exercises", "Solutions", "References")  # sections whose numbers are not the run's

RESULT = re.compile(
    r"(?<![\w.])(?:p\s*[=<>≈]\s*0?\.\d+|\d*\.\d{2,}%?|\d+\.\d+%)(?![\w.]*\w)"
)
HIDDEN = re.compile(
    r"<!-- budget:start -->.*?<!-- budget:end -->"  # measured by the tools, dated
    r"|```.*?```|`[^`\n]*`"  # code
    r"|\$\$.*?\$\$|\$[^$\n]*\$"  # LaTeX
    r"|doi:\S+|arXiv:\S+|https?://\S+",  # references
    re.DOTALL,
)
HEADING = re.compile(r"^## +(.+?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class TypedNumber:
    notebook: str
    cell: int
    number: str
    context: str

    def __str__(self) -> str:
        return f"{self.notebook} cell {self.cell}: {self.number!r} in '...{self.context}...'"


def lesson_prose(cells) -> list[tuple[int, str]]:
    """(cell index, text) of the markdown a learner reads as the lesson: sections named in
    NOT_THE_RUN are dropped, from their heading to the next ``## `` heading, across cells."""
    kept, skipping = [], False
    for index, cell in enumerate(cells):
        if cell.cell_type != "markdown":
            continue
        pieces, last = [], 0
        for heading in HEADING.finditer(cell.source):
            if not skipping:
                pieces.append(cell.source[last:heading.start()])
            skipping = heading.group(1).strip() in NOT_THE_RUN
            last = heading.start()
        if not skipping:
            pieces.append(cell.source[last:])
        kept.append((index, "".join(pieces)))
    return kept


def typed_numbers(cells, notebook: str = "", allowed: frozenset[str] = frozenset()) -> list[TypedNumber]:
    """Every number in the lesson prose of ``cells`` that looks like a result of the run."""
    found = []
    for index, text in lesson_prose(cells):
        visible = HIDDEN.sub(" ", text)
        for match in RESULT.finditer(visible):
            if match.group(0) in allowed:
                continue
            context = visible[max(0, match.start() - 40): match.end() + 20].replace("\n", " ")
            found.append(TypedNumber(notebook, index, match.group(0), context))
    return found


def allowed_numbers(path: Path = ALLOWED_FILE) -> dict[str, dict[str, str]]:
    """notebook name -> {number: why it may be typed}."""
    return tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def check_notebook(path: Path, allowed: dict[str, dict[str, str]] | None = None) -> list[TypedNumber]:
    allowed = allowed_numbers() if allowed is None else allowed
    nb = nbformat.read(path, as_version=4)
    return typed_numbers(nb.cells, path.name, frozenset(allowed.get(path.stem, {})))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    found = [hit for path in paths for hit in check_notebook(path)]
    for hit in found:
        print(f"error: {hit}: print it from the run, or list it in {ALLOWED_FILE.relative_to(ROOT)} with its source")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
