"""The student edition (tools/student_edition.py): no solution text, the teacher's code
cells unchanged and in order (so nbval on the edition runs the same code), exercise outputs
cleared, every other output as committed, links that resolve inside the edition, and the
refusals. Cheap: nothing is executed here; nbval runs the edition itself.

The edge cases use a small synthetic repository; the rest the committed notebooks."""

import json
import re
import tomllib
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from tools import student_edition

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXERCISES_TOML = ROOT / "covid_tutorial" / "teaching" / "exercises.toml"
TEACHER_NOTEBOOKS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
SOLUTION_LINE_MIN_LENGTH = 30  # shorter lines ("</details>", "1. Measure it.") say nothing
EXERCISE_FIRST_LINE = re.compile(r"# Exercise \d\d\.\d+:")
LINK_TARGET = re.compile(r"\]\(\s*<?([^)\s>]+)|\b(?:href|src)=\"([^\"]+)\"")


# --- helpers --------------------------------------------------------------------------------


def _strings(value):
    """Every string in a JSON document (a notebook's sources, outputs and metadata)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _text_of_folder(folder: Path) -> str:
    """All text in a folder: notebooks decoded from their JSON, other text files as they are."""
    parts = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix == ".ipynb":
            parts += _strings(json.loads(path.read_text(encoding="utf-8")))
        else:
            try:
                parts.append(path.read_text(encoding="utf-8"))
            except UnicodeDecodeError:
                continue  # images
    return "\n".join(parts)


def _split_at_solutions(cell_source: str) -> tuple[str, str]:
    """(lesson, solutions) of a markdown cell: the solutions run from a `## Solutions`
    heading to the end of the cell, the course's convention (they come last)."""
    match = re.search(r"^## Solutions\b", cell_source, re.M)
    return (cell_source, "") if match is None else (cell_source[: match.start()], cell_source[match.start() :])


def _teacher_text() -> tuple[str, str]:
    """(lesson, solutions): the teacher's edition's text outside and inside its solutions."""
    lesson, solutions = [], []
    for path in TEACHER_NOTEBOOKS:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        for cell in notebook["cells"]:
            if cell["cell_type"] == "markdown":
                before, after = _split_at_solutions("".join(cell["source"]))
                lesson.append(before)
                solutions.append(after)
            else:
                lesson += _strings(cell)
    solutions += [p.read_text(encoding="utf-8") for p in sorted((NOTEBOOKS / "solutions").glob("*.md"))]
    return "\n".join(lesson), "\n".join(solutions)


def _telling_lines(text: str, lesson: str) -> list[str]:
    """The lines of `text` long enough to identify it, less those the lesson shows anyway."""
    lines = {line.strip() for line in text.splitlines()}
    return sorted(line for line in lines if len(line) > SOLUTION_LINE_MIN_LENGTH and line not in lesson)


def _toml_solutions(value) -> list[str]:
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            found += [item] if key == "solution" and isinstance(item, str) else _toml_solutions(item)
        return found
    if isinstance(value, list):
        return [text for item in value for text in _toml_solutions(item)]
    return []


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _code_cells(notebook) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _is_exercise(cell) -> bool:
    return cell.cell_type == "code" and (
        "exercise" in cell.metadata.get("tags", []) or bool(EXERCISE_FIRST_LINE.match(cell.source))
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- the committed notebooks ----------------------------------------------------------------


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    out = tmp_path_factory.mktemp("edition") / "student"
    summary = student_edition.write_student_edition(out)
    return out, summary


def _pairs(out: Path):
    for teacher_path in TEACHER_NOTEBOOKS:
        yield teacher_path.name, _read(teacher_path), _read(out / "notebooks" / teacher_path.name)


def test_every_notebook_is_in_the_edition(edition):
    out, summary = edition
    assert sorted(p.name for p in (out / "notebooks").glob("*.ipynb")) == [p.name for p in TEACHER_NOTEBOOKS]
    assert summary.notebooks == len(TEACHER_NOTEBOOKS)


def test_the_edition_has_no_solutions_cell(edition):
    out, _ = edition
    for name, _, student in _pairs(out):
        headings = [c.source[:40] for c in student.cells if re.search(r"^## Solutions\b", c.source, re.M)]
        assert not headings, f"{name} still has a solutions section: {headings}"
    assert not (out / "notebooks" / "solutions").exists()


def test_no_line_of_the_teachers_solutions_appears_in_the_edition(edition):
    out, _ = edition
    lesson, solutions = _teacher_text()
    lines = _telling_lines(solutions, lesson)
    assert len(lines) > 20, "the teacher's edition should have solutions to look for"
    text = _text_of_folder(out)
    leaked = [line for line in lines if line in text]
    assert not leaked, f"{len(leaked)} solution lines in the student edition, e.g. {leaked[:3]}"


def test_no_solution_of_exercises_toml_appears_in_the_edition(edition):
    if not EXERCISES_TOML.is_file():
        pytest.skip(f"{EXERCISES_TOML.relative_to(ROOT)} does not exist yet: its solutions cannot be looked for")
    out, _ = edition
    lesson, _ = _teacher_text()
    solutions = _toml_solutions(tomllib.loads(EXERCISES_TOML.read_text(encoding="utf-8")))
    assert solutions, f"{EXERCISES_TOML.name} has no `solution` entries"
    text = _text_of_folder(out)
    leaked = [line for solution in solutions for line in _telling_lines(solution, lesson) if line in text]
    assert not leaked, f"{len(leaked)} lines of {EXERCISES_TOML.name}'s solutions in the edition, e.g. {leaked[:3]}"


def test_exercise_cells_exist_and_have_no_outputs(edition):
    out, summary = edition
    exercises = 0
    for name, teacher, student in _pairs(out):
        cells = [cell for cell in student.cells if _is_exercise(cell)]
        assert len(cells) == sum(map(_is_exercise, teacher.cells)), name
        for cell in cells:
            assert "exercise" in cell.metadata.get("tags", []), f"{name}: {cell.source.splitlines()[0]} lacks the tag"
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: {cell.source.splitlines()[0]}"
        exercises += len(cells)
    assert exercises > 0, "no exercise cells (tagged `exercise`) in the notebooks"
    assert summary.exercise_cells_cleared == exercises


def test_no_exercise_cell_has_its_output_checked_by_nbval():
    # nbval would compare the fresh output with the cleared one, and fail
    for path in TEACHER_NOTEBOOKS:
        for cell in filter(_is_exercise, _read(path).cells):
            assert "NBVAL_CHECK_OUTPUT" not in cell.source, f"{path.name}: {cell.source.splitlines()[0]}"


def test_code_cells_are_the_teachers_in_order(edition):
    out, _ = edition
    for name, teacher, student in _pairs(out):
        as_run = lambda notebook: [(c.id, c.source, c.metadata) for c in _code_cells(notebook)]  # noqa: E731
        assert as_run(student) == as_run(teacher), name


def test_outputs_of_other_code_cells_are_the_teachers(edition):
    out, _ = edition
    for name, teacher, student in _pairs(out):
        for mine, theirs in zip(_code_cells(student), _code_cells(teacher)):
            if not _is_exercise(theirs):
                assert (mine.outputs, mine.execution_count) == (theirs.outputs, theirs.execution_count), (name, mine.id)


def test_markdown_is_the_teachers_less_the_solutions(edition):
    out, _ = edition
    for name, teacher, student in _pairs(out):
        assert student.metadata == teacher.metadata, name
        expected = []
        for cell in teacher.cells:
            if cell.cell_type == "markdown":
                lesson, _ = _split_at_solutions(cell.source)
                if lesson.strip():
                    expected.append((cell.id, lesson.strip()))
        assert [(c.id, c.source.strip()) for c in student.cells if c.cell_type == "markdown"] == expected, name


def test_answers_of_the_checks_for_understanding_are_kept_by_default(edition):
    out, summary = edition
    checks = [c.source for _, _, s in _pairs(out) for c in s.cells if "**Check your understanding.**" in c.source]
    assert checks and summary.checks_for_understanding == len(checks)
    assert all("<summary>Answer</summary>" in check for check in checks)


def test_relative_links_in_the_edition_resolve_inside_it(edition):
    out, _ = edition
    pages = [(p, p.read_text(encoding="utf-8")) for p in out.rglob("*.md")]
    pages += [(p, c.source) for p in out.rglob("*.ipynb") for c in _read(p).cells if c.cell_type == "markdown"]
    checked, broken = 0, []
    for page, text in pages:
        for match in LINK_TARGET.finditer(text):
            target = match[1] or match[2]
            if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", target):
                continue  # a URL
            path, _, fragment = target.partition("#")
            checked += 1
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.is_file() or not resolved.is_relative_to(out.resolve()) or fragment.lower() == "solutions":
                broken.append(f"{page.relative_to(out)}: {target}")
    assert checked > 20
    assert not broken, broken


def test_the_edition_holds_no_build_outputs_or_caches(edition):
    out, _ = edition
    names = {part for p in out.rglob("*") for part in p.relative_to(out).parts}
    assert not names & {".venv", "build", "runs", "cache", "__pycache__", ".ipynb_checkpoints", "covid_tutorial"}
    assert (out / "notebooks" / "conftest.py").read_bytes() == (NOTEBOOKS / "conftest.py").read_bytes()


@pytest.mark.parametrize(
    "out, reason",
    [
        (ROOT, "is the repository root"),
        (NOTEBOOKS, "the teacher's edition"),
        (NOTEBOOKS / "student", "the teacher's edition"),
        (ROOT / "covid_tutorial" / "student", "inside the source folder covid_tutorial/"),
    ],
)
def test_refuses_the_repository_its_notebooks_and_source_folders(out, reason, capsys):
    listing = lambda: (sorted(NOTEBOOKS.iterdir()), out.is_dir() and sorted(out.iterdir()))  # noqa: E731
    before = listing()
    assert student_edition.main([str(out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: OUT ") and str(out) in error[0] and reason in error[0]
    assert listing() == before


def test_accepts_a_folder_under_the_ignored_build_folder():
    student_edition.check_out_folder(ROOT / "build" / "student-edition-never-written", NOTEBOOKS)


# --- the teachers' page ---------------------------------------------------------------------


def _teachers_page_table(markers: tuple[str, str]) -> str:
    page = (ROOT / "docs" / "teachers.md").read_text(encoding="utf-8")
    start, end = (page.index(marker) for marker in markers)
    return page[start + len(markers[0]) : end]


def test_teachers_page_time_table_is_the_readmes():
    expected = student_edition.teachers_time_table((ROOT / "README.md").read_text(encoding="utf-8"))
    assert _teachers_page_table(student_edition.TEACHERS_MARKERS) == expected, (
        "regenerate it: python -m tools.student_edition --teachers-table"
    )


def test_teachers_page_exercise_table_is_the_notebooks():
    expected = student_edition.teachers_exercise_table()
    assert _teachers_page_table(student_edition.EXERCISES_MARKERS) == expected, (
        "regenerate it: python -m tools.student_edition --teachers-table"
    )


def test_teachers_time_table_is_read_from_the_budget_table():
    start, end = student_edition.BUDGET_MARKERS
    readme = "\n".join([
        "# course", start,
        "| notebook | profile | wall time | kernel CPU time | peak memory | within budget | measured |",
        "|---|---|---|---|---|---|---|",
        "| 00_a.ipynb | ci | 10 s | 7 s | 0.70 GB | yes | today |",
        "| 00_a.ipynb | cpu | 2.5 min | 6 s | 0.81 GB | yes | today |",
        "| 01_b.ipynb | ci | 80 s | 7 s | 0.90 GB | yes | today |",
        end, ""])  # fmt: skip
    rows = [line for line in student_edition.teachers_time_table(readme).splitlines() if line.startswith("| ")]
    assert rows[0] == "| notebook | `ci` wall time | `cpu` wall time | `cpu` peak memory |"
    assert rows[1] == "| 00_a.ipynb | 10 s | 2.5 min | 0.81 GB |"
    assert rows[2] == "| 01_b.ipynb | 80 s | not measured | not measured |"
    assert rows[3] == "| **all notebooks** | 90 s | 2.5 min | |"


# --- edge cases, on a small synthetic repository --------------------------------------------

SECRET = "the secret worked answer that only a teacher should read"
ANSWER = "the answer to the check, part of the lesson"
CHECK_CELL = f"""**Check your understanding.** Why?

<details><summary>Answer</summary>

{ANSWER}

</details>"""
# Summary, exercises, solutions and references in one cell; inside the <details> block, an
# unfenced line looks like a heading and must not end the section.
END_CELL = f"""## Summary

- one

## Exercises

1. Sum it.

## Solutions

<details>
<summary>Open after trying.</summary>

1. {SECRET} (in the cell), as in
# a comment pasted without a code fence
{SECRET}

</details>

## References

- Author (2020). A paper."""
# Solutions in a cell of their own, not collapsed; a comment in the code fence looks like a
# heading and must not end the section.
SOLUTIONS_CELL = f"""## Solutions

1. {SECRET} (own cell):
```python
# Solutions, as code
{SECRET}
```"""
EXERCISES_WITH_SOLUTION_LINKS = """## Exercises

1. Do X ([solution](solutions/02_second.md#1)).
2. Do Y, then compare with [the solutions](#Solutions)."""


def _write_notebook(path: Path, cells) -> None:
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


@pytest.fixture()
def course(tmp_path):
    """A repository with two notebooks: solutions in a cell of their own, as a section of a
    longer cell (with a code fence whose comment looks like a heading), and in a file."""
    repo = tmp_path / "repo"
    notebooks = repo / "notebooks"
    (notebooks / "solutions").mkdir(parents=True)
    (notebooks / "runs" / "04").mkdir(parents=True)
    (repo / "docs" / "img").mkdir(parents=True)
    (repo / "data").mkdir()
    (repo / "README.md").write_text("# Course\n\nSee [the guide](docs/guide.md) and [the notebooks](notebooks/).\n")
    (repo / "docs" / "guide.md").write_text("[notebook 01](../notebooks/01_first.ipynb) ![fig](img/fig.png)\n")
    (repo / "docs" / "img" / "fig.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (repo / "docs" / "unlinked.md").write_text("nobody links here\n")
    (repo / "data" / "README.md").write_text("# Data\n")
    (notebooks / "README.md").write_text("[01](01_first.ipynb) [02](02_second.ipynb)\n")
    (notebooks / "conftest.py").write_text("collect_ignore = []\n")
    (notebooks / "nbval_sanitize.cfg").write_text("[none]\n")
    (notebooks / "solutions" / "02_second.md").write_text(f"1. {SECRET} (from the file)\n")
    (notebooks / "runs" / "04" / "model.keras").write_bytes(b"weights")
    lesson_output = new_output("stream", name="stdout", text="lesson output 42\n")
    exercise_output = new_output("stream", name="stdout", text="not yet attempted\n")
    exercise = '# Exercise 01.1: a sum\nanswer = None\ncheck("01.1", answer)'
    _write_notebook(notebooks / "01_first.ipynb", [
        new_markdown_cell("# 01 · First\n\nBack to [the README](README.md), or [the top](../README.md)."),
        new_code_cell("print('lesson output', 42)", execution_count=1, outputs=[lesson_output]),
        new_code_cell(exercise, execution_count=2, outputs=[exercise_output], metadata={"tags": ["exercise"]}),
        new_markdown_cell(CHECK_CELL),
        new_markdown_cell(END_CELL),
    ])  # fmt: skip
    _write_notebook(notebooks / "02_second.ipynb", [
        new_markdown_cell("# 02 · Second"),
        new_markdown_cell(EXERCISES_WITH_SOLUTION_LINKS),
        new_markdown_cell(SOLUTIONS_CELL),
    ])  # fmt: skip
    return repo


def test_teachers_exercise_table_counts_checked_and_written_exercises(course, tmp_path):
    toml = tmp_path / "exercises.toml"
    toml.write_text('[exercises."01.1"]\ntitle = "a sum"\nhint = "add"\nsolution = "answer = 3"\n')
    rows = student_edition.teachers_exercise_table(course / "notebooks", toml).strip().splitlines()[2:]
    assert rows == [
        "| [01_first](../notebooks/01_first.ipynb) | `01.1` a sum | none | 1 |",
        "| [02_second](../notebooks/02_second.ipynb) | none | 1, 2 | 0 |",
    ]


def test_solutions_are_removed_wherever_they_sit(course, tmp_path, capsys):
    out = tmp_path / "out"
    assert student_edition.main([str(out), "--notebooks", str(course / "notebooks")]) == 0
    first, second = _read(out / "notebooks" / "01_first.ipynb"), _read(out / "notebooks" / "02_second.ipynb")
    assert SECRET not in _text_of_folder(out) and "Solutions" not in first.cells[-1].source
    assert first.cells[-1].source.startswith("## Summary") and first.cells[-1].source.endswith("A paper.")
    assert [c.source.splitlines()[0] for c in second.cells] == ["# 02 · Second", "## Exercises"]
    printed = capsys.readouterr().out
    assert "2 notebooks" in printed and "1 solution cells removed, 1 solution sections cut" in printed


def test_links_to_removed_solutions_are_reduced_to_their_text(course, tmp_path):
    out = tmp_path / "out"
    summary = student_edition.write_student_edition(out, notebooks=course / "notebooks")
    exercises = _read(out / "notebooks" / "02_second.ipynb").cells[1].source
    assert exercises == "## Exercises\n\n1. Do X.\n2. Do Y, then compare with the solutions."
    assert summary.solution_links_unlinked == 2
    assert not (out / "notebooks" / "solutions").exists()


def test_exercise_outputs_are_cleared_and_other_outputs_kept(course, tmp_path):
    out = tmp_path / "out"
    summary = student_edition.write_student_edition(out, notebooks=course / "notebooks")
    teacher = _read(course / "notebooks" / "01_first.ipynb")
    lesson, exercise = _code_cells(_read(out / "notebooks" / "01_first.ipynb"))
    assert (lesson.outputs, lesson.execution_count) == (teacher.cells[1].outputs, 1)
    assert (exercise.outputs, exercise.execution_count, exercise.source) == ([], None, teacher.cells[2].source)
    assert exercise.metadata["tags"] == ["exercise"] and summary.exercise_cells_cleared == 1


def test_answers_are_removed_only_when_asked(course, tmp_path):
    kept = student_edition.write_student_edition(tmp_path / "kept", notebooks=course / "notebooks")
    removed = student_edition.write_student_edition(
        tmp_path / "removed", notebooks=course / "notebooks", without_answers=True
    )
    assert ANSWER in _text_of_folder(tmp_path / "kept") and kept.answers_removed == 0
    check = _read(tmp_path / "removed" / "notebooks" / "01_first.ipynb").cells[3].source
    assert check == "**Check your understanding.** Why?" and removed.answers_removed == 1


def test_help_says_the_answers_stay_by_default(capsys):
    with pytest.raises(SystemExit):
        student_edition.main(["--help"])
    assert "by default they stay" in " ".join(capsys.readouterr().out.split())


def test_linked_files_are_copied_and_build_outputs_are_not(course, tmp_path):
    out = tmp_path / "out"
    student_edition.write_student_edition(out, notebooks=course / "notebooks")
    copied = set(_files(out)) - {student_edition.MARKER_FILE}
    assert copied == {
        "README.md", "data/README.md", "docs/guide.md", "docs/img/fig.png",
        "notebooks/README.md", "notebooks/conftest.py", "notebooks/nbval_sanitize.cfg",
        "notebooks/01_first.ipynb", "notebooks/02_second.ipynb",
    }  # fmt: skip


def test_a_link_to_a_missing_file_is_reported(course, tmp_path, capsys):
    (course / "docs" / "guide.md").write_text("[gone](missing.md)\n")
    assert student_edition.main([str(tmp_path / "out"), "--notebooks", str(course / "notebooks")]) == 0
    assert "warning: docs/missing.md does not exist (linked from docs/guide.md)" in capsys.readouterr().err


def test_writing_again_replaces_the_previous_edition_only_when_asked(course, tmp_path, capsys):
    out = tmp_path / "out"
    student_edition.write_student_edition(out, notebooks=course / "notebooks")
    (out / "notebooks" / "03_stale.ipynb").write_text("{}")
    assert student_edition.main([str(out), "--notebooks", str(course / "notebooks")]) == 2
    assert "add --replace" in capsys.readouterr().err and (out / "notebooks" / "03_stale.ipynb").exists()
    assert student_edition.main([str(out), "--replace", "--notebooks", str(course / "notebooks")]) == 0
    assert not (out / "notebooks" / "03_stale.ipynb").exists() and (out / "notebooks" / "01_first.ipynb").exists()


@pytest.mark.parametrize(
    "where, reason",
    [
        ("repo", "is the repository root"),
        ("repo/notebooks", "the teacher's edition"),
        ("repo/notebooks/student", "the teacher's edition"),
        ("repo/docs/student", "inside the source folder docs/"),
        ("repo/student", "inside a folder git would track"),
        ("other files", "holds files that this script did not write"),
        (".", "holds the repository"),
    ],
)
def test_refusals_write_nothing(course, tmp_path, where, reason, capsys):
    (tmp_path / "other files").mkdir()
    (tmp_path / "other files" / "thesis.tex").write_text("mine")
    out = tmp_path / where
    before = _files(tmp_path)
    assert student_edition.main([str(out), "--notebooks", str(course / "notebooks")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: OUT ") and str(out.resolve()) in error[0]
    assert reason in error[0] and _files(tmp_path) == before


def test_teachers_page_class_time_table_is_the_notebooks_and_the_readme():
    expected = student_edition.class_time_table((ROOT / "README.md").read_text(encoding="utf-8"))
    assert _teachers_page_table(student_edition.CLASS_TIME_MARKERS) == expected, (
        "regenerate it: python -m tools.student_edition --teachers-table"
    )
    first = expected.splitlines()[3]
    assert first.startswith("| 00_welcome |") and first.endswith(" min |")
