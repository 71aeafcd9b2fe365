"""docs/instructor-notes.md: a section per notebook in the Carpentries' style, whose class-time
table is generated and whose live checks name sections that hold a check for understanding."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from tools import student_edition
from tools.markdown_blocks import read_block

ROOT = Path(__file__).resolve().parents[1]
NOTES = (ROOT / "docs" / "instructor-notes.md").read_text(encoding="utf-8")
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PARTS = ("Key points.", "Common errors.", "Discussion.", "Checks to use live.")


def _section(number: str) -> str:
    found = re.search(rf"^## {number} .*?(?=^## |\Z)", NOTES, re.MULTILINE | re.DOTALL)
    assert found, f"docs/instructor-notes.md has no '## {number} ...' section"
    return found.group(0)


def _sections_with_checks(path: Path) -> set[int]:
    """The numbered sections of a notebook that hold a check for understanding."""
    text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
    headings = [(m.start(), int(m.group(1))) for m in re.finditer(r"^## (\d+)\. ", text, re.MULTILINE)]
    checks = [m.start() for m in re.finditer(r"\*\*Check your understanding\.\*\*", text)]
    return {max((n for start, n in headings if start < at), default=0) for at in checks}


def test_the_class_time_table_is_generated():
    expected = student_edition.class_time_table((ROOT / "README.md").read_text(encoding="utf-8"))
    assert read_block(NOTES, student_edition.CLASS_TIME_MARKERS) == expected, (
        "regenerate it: python -m tools.student_edition --teachers-table"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_each_notebook_has_its_notes_and_the_live_checks_exist(path):
    section = _section(path.name[:2])
    for part in PARTS:
        assert f"**{part}**" in section, f"{path.name}: the notes lack '{part}'"
    named = {int(n) for n in re.findall(r"after section (\d+)", section.split("**Checks to use live.**")[1])}
    assert named <= _sections_with_checks(path), (
        f"{path.name}: the notes name checks after sections {sorted(named)}; the notebook has them after "
        f"{sorted(_sections_with_checks(path))}"
    )
