#!/usr/bin/env python3
"""Write the student edition of the course, and the generated tables of the teachers' page.

    python -m tools.student_edition OUT [--without-answers]
    python -m tools.student_edition --teachers-table

The committed notebooks are the teacher's edition. The student edition in OUT has the same
notebooks with the solutions removed (the `## Solutions` cells, and links to a removed
solution reduced to their text), the outputs of the cells tagged `exercise` cleared, and
everything else as committed: the same code cells in the same order, so nbval runs the
same code on it. Beside them it copies what the notebooks need to run under nbval and
every file their relative links reach, followed from page to page.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shutil
import subprocess
import sys
import tomllib
import urllib.parse
from pathlib import Path

import nbformat

from tools.markdown_blocks import Markers, MissingBlock, markdown_table, read_block, replace_block, table_rows
from tools.measurement_text import format_duration, parse_duration
from tools.run_notebooks import COLUMNS as BUDGET_COLUMNS
from tools.run_notebooks import README_MARKERS as BUDGET_MARKERS

REPOSITORY = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPOSITORY / "notebooks"
TEACHERS_PAGE = REPOSITORY / "docs" / "teachers.md"
INSTRUCTOR_NOTES = REPOSITORY / "docs" / "instructor-notes.md"  # holds the class-time table too
NOTEBOOK_NAME = re.compile(r"\d\d_[a-z0-9_]+\.ipynb")
# Paths relative to the notebooks folder, copied when present: nbval's conftest and
# sanitizer, the two READMEs, the data's README, and the GPU results notebook 05 reads.
SUPPORT_PATHS = ("README.md", "conftest.py", "nbval_sanitize.cfg", "results", "../README.md", "../data/README.md")
SOLUTIONS_FOLDER = "solutions"  # notebooks/solutions/NN_*.md: never copied
NOT_COPIED = {".venv", "build", "dist", "runs", "cache", "__pycache__", ".ipynb_checkpoints", ".pytest_cache"}
EXERCISE_TAG = "exercise"
MARKER_FILE = ".student-edition"  # marks a folder this script wrote, and may replace
TEACHERS_MARKERS = Markers.named("teachers-time")
CLASS_TIME_MARKERS = Markers.named("teachers-class-time")
#: The rules behind the class-time table: words of lesson prose read per minute (technical text,
#: read with the code beside it), and minutes per exercise of each kind.
READING_WORDS_PER_MINUTE = 120
MINUTES_PER_SELF_CHECKED, MINUTES_PER_WRITTEN, MINUTES_PER_CHECK = 10, 15, 2
EXERCISES_MARKERS = Markers.named("teachers-exercises")
EXERCISES_TOML = REPOSITORY / "covid_tutorial" / "teaching" / "exercises.toml"

SOLUTIONS_HEADING = re.compile(r"^## Solutions\b")
SECTION_HEADING = re.compile(r"^#{1,2} \S")
FENCE = re.compile(r"^\s*(```|~~~)")
ANSWER_BLOCK = re.compile(r"\n*<details>\s*<summary>\s*Answer\s*</summary>.*?</details>[ \t]*", re.S)
# [text](target) or ![alt](target "title"); <a href="target">text</a>; src="target"
MARKDOWN_LINK = re.compile(r"!?\[(?P<text>[^\]]*)\]\(\s*<?(?P<target>[^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_ANCHOR = re.compile(r"<a\s[^>]*href=\"(?P<target>[^\"]*)\"[^>]*>(?P<text>.*?)</a>", re.S)
HTML_SOURCE = re.compile(r"\b(?:href|src)=\"(?P<target>[^\"]*)\"")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


@dataclasses.dataclass
class Edition:
    """What `write_student_edition` wrote."""

    out: Path
    notebooks: int = 0
    exercise_cells_cleared: int = 0
    solution_cells_removed: int = 0
    solution_sections_cut: int = 0  # `## Solutions` sections cut from cells that keep other text
    solution_links_unlinked: int = 0
    checks_for_understanding: int = 0
    answers_removed: int = 0
    copied: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)


class Refused(Exception):
    """OUT is a place the edition must not be written to; the message says why and what to do."""


# --- the notebooks --------------------------------------------------------------------------


def is_exercise_cell(cell) -> bool:
    return cell.cell_type == "code" and EXERCISE_TAG in cell.metadata.get("tags", [])


def _cut_solutions_section(source: str) -> tuple[str, bool]:
    """Remove a `## Solutions` section: from its heading to the next level-1 or level-2
    heading outside code fences and `<details>` blocks, or to the end of the cell."""
    lines = source.split("\n")
    start = next((i for i, line in enumerate(lines) if SOLUTIONS_HEADING.match(line)), None)
    if start is None:
        return source, False
    end, in_fence, details = len(lines), False, 0
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence:
            details += line.count("<details") - line.count("</details>")
            if details <= 0 and SECTION_HEADING.match(line):
                end = i
                break
    kept = "\n".join(lines[:start]).rstrip() + "\n\n" + "\n".join(lines[end:]).lstrip()
    return kept.strip(), True


def _is_solution_target(target: str, folder: Path, notebooks: Path) -> bool:
    path, _, fragment = urllib.parse.unquote(target).partition("#")
    if SCHEME.match(target):
        return False
    if fragment.lower() == "solutions" and (not path or path.endswith(".ipynb")):
        return True
    resolved = (folder / path).resolve() if path else None
    return resolved is not None and resolved.is_relative_to((notebooks / SOLUTIONS_FOLDER).resolve())


def _unlink_solutions(source: str, folder: Path, notebooks: Path) -> tuple[str, int]:
    """Reduce each link to a removed solution to its text; a link alone in parentheses,
    `([solution](solutions/04.md))`, goes with its parentheses."""
    count = 0

    def replace(match: re.Match) -> str:
        nonlocal count
        if not _is_solution_target(match["target"], folder, notebooks):
            return match[0]
        count += 1
        if match["open"] and match["close"]:
            return ""
        return (match["open"] or "") + match["text"] + (match["close"] or "")

    for link in (MARKDOWN_LINK, HTML_ANCHOR):
        wrapped = re.compile(r"(?P<open>[ \t]*\()?" + link.pattern + r"(?P<close>\))?", link.flags)
        source = wrapped.sub(replace, source)
    return source, count


def student_notebook(notebook, edition: Edition, *, folder: Path, notebooks: Path, without_answers: bool):
    """The student version of one teacher notebook (a copy; the argument is left as it is)."""
    notebook = nbformat.from_dict(notebook)  # a deep copy
    cells = []
    for cell in notebook.cells:
        if is_exercise_cell(cell):
            cell.outputs, cell.execution_count = [], None
            edition.exercise_cells_cleared += 1
        if cell.cell_type == "markdown":
            source, cut = _cut_solutions_section(cell.source)
            if cut and not source:
                edition.solution_cells_removed += 1
                continue
            edition.solution_sections_cut += cut
            source, unlinked = _unlink_solutions(source, folder, notebooks)
            edition.solution_links_unlinked += unlinked
            if "**Check your understanding.**" in source:
                edition.checks_for_understanding += 1
                if without_answers:
                    source, removed = ANSWER_BLOCK.subn("", source)
                    edition.answers_removed += removed
            cell.source = source
        cells.append(cell)
    notebook.cells = cells
    return notebook


# --- the files beside them ------------------------------------------------------------------


def relative_link_targets(markdown: str) -> list[str]:
    """The relative link and image targets of a markdown text (no URLs, no bare #anchors)."""
    targets = [m["target"] for m in MARKDOWN_LINK.finditer(markdown)]
    targets += [m["target"] for m in HTML_SOURCE.finditer(markdown)]
    return [t for t in targets if t and not SCHEME.match(t) and not t.startswith("#")]


def _copy_linked_files(pages: list[tuple[Path, str]], notebooks: Path, out: Path, edition: Edition) -> None:
    """Copy the support paths and every file the pages' relative links reach (following the
    links of each copied markdown file in turn) from the repository into OUT."""
    repository, notebooks = notebooks.parent.resolve(), notebooks.resolve()
    solutions = notebooks / SOLUTIONS_FOLDER
    queue = [(None, notebooks / path) for path in SUPPORT_PATHS if (notebooks / path).exists()]
    for page, text in pages:
        queue += _linked_paths(page, text)
    seen = set()
    while queue:
        page, target = queue.pop(0)
        where = f" (linked from {page.relative_to(repository)})" if page else ""
        target = target.resolve()
        if target in seen:
            continue
        seen.add(target)
        if not target.is_relative_to(repository):
            edition.warnings.append(f"{target} is outside the repository{where}: not copied")
            continue
        if target.is_relative_to(solutions):
            edition.warnings.append(f"{target.relative_to(repository)} is a solution{where}: not copied")
            continue
        if not target.exists():
            edition.warnings.append(f"{target.relative_to(repository)} does not exist{where}")
            continue
        files = [target] if target.is_file() else sorted(p for p in target.rglob("*") if p.is_file())
        for file in files:
            relative = file.relative_to(repository)
            if _not_copied(relative) or file.is_relative_to(solutions) or _is_edition_notebook(file, notebooks):
                continue  # build outputs and caches; solutions; notebooks written by write_student_edition
            destination = out / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, destination)
            edition.copied.append(str(relative))
            if file.suffix == ".md":
                queue += _linked_paths(file, file.read_text(encoding="utf-8"))


def _linked_paths(page: Path, text: str) -> list[tuple[Path, Path]]:
    return [(page, page.parent / urllib.parse.unquote(t.partition("#")[0])) for t in relative_link_targets(text)]


def _is_edition_notebook(path: Path, notebooks: Path) -> bool:
    return path.parent == notebooks and bool(NOTEBOOK_NAME.fullmatch(path.name))


def _not_copied(relative: Path) -> bool:
    return any(part in NOT_COPIED or part.endswith(".egg-info") for part in relative.parts)


# --- where it may be written ----------------------------------------------------------------


def _ignored_by_git(path: Path, repository: Path) -> bool:
    try:
        done = subprocess.run(["git", "-C", str(repository), "check-ignore", "-q", str(path)], capture_output=True)
    except OSError:  # no git: nothing counts as ignored
        return False
    return done.returncode == 0


def check_out_folder(out: Path, notebooks: Path, *, replace: bool = False) -> None:
    """Raise Refused when OUT is the repository root, inside the notebooks or another source
    folder, around the repository, a folder of other files, or an edition written before
    and `replace` is false."""
    out, notebooks = out.resolve(), notebooks.resolve()
    repository = notebooks.parent
    fix = "write it to a new folder outside the repository or under its build/, e.g. build/student"
    if out == repository:
        raise Refused(f"OUT {out} is the repository root; {fix}")
    if out.is_relative_to(notebooks):
        raise Refused(f"OUT {out} is inside {notebooks}, whose notebooks are the teacher's edition; {fix}")
    if repository.is_relative_to(out):
        raise Refused(f"OUT {out} holds the repository {repository}; {fix}")
    if out.is_relative_to(repository):
        top = repository / out.relative_to(repository).parts[0]
        if not _ignored_by_git(out / MARKER_FILE, repository):  # a file inside OUT: git then reads OUT as a folder
            where = f"the source folder {top.name}/ of" if top.is_dir() else "a folder git would track in"
            raise Refused(f"OUT {out} is inside {where} the repository; {fix}")
    if out.exists() and not out.is_dir():
        raise Refused(f"OUT {out} is a file; {fix}")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER_FILE).is_file():
            raise Refused(f"OUT {out} holds files that this script did not write; choose a new or empty folder")
        if not replace:
            raise Refused(f"OUT {out} holds a student edition written before; add --replace to replace it")


# --- the whole edition ----------------------------------------------------------------------


def write_student_edition(
    out: Path, *, notebooks: Path = NOTEBOOKS, without_answers: bool = False, replace: bool = False
) -> Edition:
    """Write the student edition of the notebooks in `notebooks` to `out`, laid out as the
    repository is (OUT/notebooks/NN_*.ipynb, OUT/README.md, ...). An edition written there
    before is replaced when `replace` is true; anything else there is refused (`Refused`)."""
    notebooks = notebooks.resolve()
    check_out_folder(out, notebooks, replace=replace)
    if out.is_dir():
        shutil.rmtree(out)
    out_notebooks = out / notebooks.name
    out_notebooks.mkdir(parents=True)
    (out / MARKER_FILE).write_text("Written by tools/student_edition.py, which --replace lets rewrite it.\n")
    edition, pages = Edition(out=out), []
    for path in sorted(p for p in notebooks.iterdir() if NOTEBOOK_NAME.fullmatch(p.name)):
        teacher = _read_notebook(path)
        student = student_notebook(
            teacher, edition, folder=path.parent, notebooks=notebooks, without_answers=without_answers
        )
        nbformat.write(student, out_notebooks / path.name)
        edition.notebooks += 1
        pages += [(path, cell.source) for cell in student.cells if cell.cell_type == "markdown"]
    _copy_linked_files(pages, notebooks, out, edition)
    return edition


def _read_notebook(path: Path):
    try:
        return nbformat.read(path, as_version=4)
    except Exception as err:  # not JSON, or not a notebook
        raise Refused(f"{path} is not a readable notebook ({type(err).__name__}); restore it with git") from err


# --- the teachers' page ---------------------------------------------------------------------


def _missing_markers(where: str, markers: Markers) -> Refused:
    return Refused(f"{where} lacks the markers {markers}; add them where the table goes")


def teachers_time_table(readme: str) -> str:
    """The teachers' table, one row per notebook, from the README's notebook budget table:
    the wall time in each measured profile, the peak memory in `cpu`, and the totals."""
    try:
        records = table_rows(read_block(readme, BUDGET_MARKERS), BUDGET_COLUMNS)
    except MissingBlock:
        raise _missing_markers("README.md", BUDGET_MARKERS) from None
    profiles = list(dict.fromkeys(record["profile"] for record in records))
    notebooks = list(dict.fromkeys(record["notebook"] for record in records))
    by_key = {(record["notebook"], record["profile"]): record for record in records}
    rows = []
    for notebook in notebooks:
        times = [by_key[(notebook, p)]["wall time"] if (notebook, p) in by_key else "not measured" for p in profiles]
        memory = by_key[(notebook, "cpu")]["peak memory"] if (notebook, "cpu") in by_key else "not measured"
        rows.append([notebook, *times, memory])
    totals = [format_duration(sum(parse_duration(r["wall time"]) for r in records if r["profile"] == p)) for p in profiles]
    rows.append(["**all notebooks**", *totals, ""])
    columns = ["notebook", *(f"`{p}` wall time" for p in profiles), "`cpu` peak memory"]
    return "\n" + markdown_table(columns, rows) + "\n"


def _exercises_section(notebook) -> str:
    """A notebook's markdown from `## Exercises` to `## Solutions`: the exercises' list, whose
    items may be split over several cells (one per self-checked exercise)."""
    text = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    match = re.search(r"^## Exercises\b(.*?)(?=^## Solutions\b|\Z)", text, re.M | re.S)
    return match[1] if match else ""


def teachers_exercise_table(notebooks: Path = NOTEBOOKS, exercises: Path = EXERCISES_TOML) -> str:
    """One row per notebook: its self-checked exercises (from the package's exercises.toml),
    the numbers of its written exercises (the rest of its `## Exercises` list), and how
    many checks for understanding it has."""
    checked = tomllib.loads(exercises.read_text(encoding="utf-8"))["exercises"] if exercises.is_file() else {}
    columns = ["notebook", "self-checked exercises: `check`, `hint`, `solution`", "written exercises",
               "checks for understanding"]
    rows = []
    for path in sorted(p for p in notebooks.iterdir() if NOTEBOOK_NAME.fullmatch(p.name)):
        notebook = _read_notebook(path)
        number = path.name[:2]
        ids = sorted((int(key.split(".")[1]), key) for key in checked if key.split(".")[0] == number)
        items = [int(n) for n in re.findall(r"^(\d+)\. ", _exercises_section(notebook), re.M)]
        written = [str(n) for n in items if n not in {k for k, _ in ids}]
        checks = sum("**Check your understanding.**" in cell.source for cell in notebook.cells)
        link = f"[{path.stem}](../{notebooks.name}/{path.name})"
        self_checked = "; ".join(f"`{key}` {checked[key]['title']}" for _, key in ids) or "none"
        rows.append([link, self_checked, ", ".join(written) or "none", checks])
    return "\n" + markdown_table(columns, rows) + "\n"


def _lesson_words(notebook) -> int:
    """Words of the lesson prose: the markdown up to `## Solutions`, header included."""
    text = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    return len(re.split(r"^## Solutions\b", text, flags=re.M)[0].split())


def class_time_table(readme: str, notebooks: Path = NOTEBOOKS, exercises: Path = EXERCISES_TOML) -> str:
    """Minutes of class per notebook: reading (its prose at READING_WORDS_PER_MINUTE), running (the
    README's `cpu` wall time), the checks for understanding and the exercises (MINUTES_PER_...)."""
    records = table_rows(read_block(readme, BUDGET_MARKERS), BUDGET_COLUMNS)
    cpu = {record["notebook"]: parse_duration(record["wall time"]) for record in records if record["profile"] == "cpu"}
    checked = tomllib.loads(exercises.read_text(encoding="utf-8"))["exercises"]
    columns = ["notebook", "reading", "running (`cpu`)", "checks for understanding", "exercises", "in all"]
    rows = []
    for path in sorted(p for p in notebooks.iterdir() if NOTEBOOK_NAME.fullmatch(p.name)):
        notebook = _read_notebook(path)
        number = path.name[:2]
        self_checked = sum(key.split(".")[0] == number for key in checked)
        items = len(re.findall(r"^(\d+)\. ", _exercises_section(notebook), re.M))
        checks = sum("**Check your understanding.**" in cell.source for cell in notebook.cells)
        minutes = [round(_lesson_words(notebook) / READING_WORDS_PER_MINUTE), round(cpu.get(path.name, 0) / 60 + 0.49),
                   checks * MINUTES_PER_CHECK,
                   self_checked * MINUTES_PER_SELF_CHECKED + (items - self_checked) * MINUTES_PER_WRITTEN]
        rows.append([path.stem, *(f"{m} min" for m in minutes), f"{sum(minutes)} min"])
    return "\n" + markdown_table(columns, rows) + "\n"


def rewrite_teachers_tables(page: Path = TEACHERS_PAGE, readme: Path = REPOSITORY / "README.md") -> None:
    """Rewrite the generated tables of the teachers' page: time per notebook, class time, exercises."""
    text = page.read_text(encoding="utf-8")
    readme_text = readme.read_text(encoding="utf-8")
    for markers, table in ((TEACHERS_MARKERS, teachers_time_table(readme_text)),
                           (CLASS_TIME_MARKERS, class_time_table(readme_text)),
                           (EXERCISES_MARKERS, teachers_exercise_table())):
        try:
            text = replace_block(text, markers, table)
        except MissingBlock:
            raise _missing_markers(str(page), markers) from None
    page.write_text(text, encoding="utf-8")
    if page == TEACHERS_PAGE:
        notes = INSTRUCTOR_NOTES.read_text(encoding="utf-8")
        try:
            notes = replace_block(notes, CLASS_TIME_MARKERS, class_time_table(readme_text))
        except MissingBlock:
            raise _missing_markers(str(INSTRUCTOR_NOTES), CLASS_TIME_MARKERS) from None
        INSTRUCTOR_NOTES.write_text(notes, encoding="utf-8")


# --- command line ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.student_edition",
        description="Write the student edition of the course notebooks to OUT: the `## Solutions` cells removed, "
        "the outputs of the exercise cells cleared, everything else as committed (the committed notebooks "
        "are the teacher's edition).",
    )
    parser.add_argument("out", nargs="?", type=Path, metavar="OUT",
                        help="a new folder outside the repository or under build/, e.g. build/student")
    parser.add_argument("--without-answers", action="store_true",
                        help="also remove the answers of the checks for understanding (by default they stay: "
                        "they are part of the lesson, collapsed under each question)")
    parser.add_argument("--replace", action="store_true",
                        help="replace the student edition that this command wrote to OUT before (never other files)")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS, help=argparse.SUPPRESS)
    parser.add_argument("--teachers-table", action="store_true",
                        help=f"rewrite the generated tables of {TEACHERS_PAGE.relative_to(REPOSITORY)} (time per "
                        "notebook, from the README's budget table; exercises, from the notebooks and "
                        "covid_tutorial/teaching/exercises.toml), and write no edition")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.teachers_table:
            rewrite_teachers_tables()
            print(f"rewrote the tables of {TEACHERS_PAGE}: time per notebook from {REPOSITORY / 'README.md'}, "
                  f"exercises from the notebooks and {EXERCISES_TOML}")
            return 0
        if args.out is None:
            raise Refused("no OUT folder given; run e.g. python -m tools.student_edition build/student")
        edition = write_student_edition(
            args.out, notebooks=args.notebooks, without_answers=args.without_answers, replace=args.replace
        )
    except Refused as refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    except OSError as err:  # a page or README that cannot be read or written
        print(f"error: {err.filename}: {err.strerror}; check that the file exists and can be written", file=sys.stderr)
        return 2
    for warning in edition.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    checks = edition.checks_for_understanding
    answers = (f"removed from {edition.answers_removed} of {checks}" if args.without_answers
               else f"kept in all {checks} (--without-answers removes them)")
    print(f"wrote the student edition to {args.out}:")
    print(f"  {edition.notebooks} notebooks in {args.out / args.notebooks.resolve().name}")
    print(f"  {edition.exercise_cells_cleared} exercise cells cleared of their outputs")
    print(f"  {edition.solution_cells_removed} solution cells removed, {edition.solution_sections_cut} solution "
          f"sections cut from cells that keep their other text, {edition.solution_links_unlinked} links to them "
          "unlinked")
    print(f"  answers of the checks for understanding: {answers}")
    print(f"  {len(edition.copied)} files copied beside them: {', '.join(edition.copied)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
