"""Every course notebook follows the skeleton written down in notebooks/README.md.

The checks run over all ``notebooks/NN_*.ipynb``, so a notebook added later is held to
the same rules. They read the committed files only (no kernel is started): running the
notebooks is nbval's job (``pytest --nbval-lax notebooks/``).
"""

from __future__ import annotations

import ast
import re
import statistics
import tomllib
from pathlib import Path

import nbformat
import pytest

from covid_tutorial.profiles import LESSONS_FILE
from tools import run_notebooks

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
IDS = [path.name for path in NOTEBOOKS]

MAX_CODE_LINES = 25  # any one code cell
MAX_MEDIAN_CODE_LINES = 10  # median over a notebook's code cells (d2l: about 7)
MAX_CODE_CELLS_IN_A_ROW = 3  # prose says why before the code says how
MAX_HEADER_WORDS = 550  # title, badges, previous/next, what and why, objectives, time and memory
MAX_CONFIG_LINES = 14  # the lesson's knobs in about ten lines, with an import and the seed
TRAINING = re.compile(r"\.fit\(|\btrain_two_stage\(|\btrain_run\(|\bfit_stage\(")
TF_NOISE = re.compile(r"absl::InitializeLog|^[IWEF]\d{4} \d+:\d+:\d+\.\d+\s+\d+ \S+:\d+\]", re.MULTILINE)
LESSON_SIZES = tomllib.loads(LESSONS_FILE.read_text(encoding="utf-8"))
BUDGET = re.compile(r"<!-- budget:start -->(.*?)<!-- budget:end -->", re.DOTALL)


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def _markdown(nb) -> str:
    return "\n\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")


def _python_only(source: str) -> str:
    """The cell without IPython magics and shell escapes, so that ast can parse it."""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            lines.append(line[: len(line) - len(stripped)] + "pass")
        else:
            lines.append(line)
    return "\n".join(lines)


def _lines(cell) -> int:
    return sum(1 for line in cell.source.splitlines() if line.strip())


@pytest.fixture(params=NOTEBOOKS, ids=IDS)
def nb_path(request) -> Path:
    return request.param


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no NN_*.ipynb notebooks found in {NOTEBOOKS_DIR}"


def test_file_name(nb_path):
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", nb_path.name), "name notebooks NN_lower_case_words.ipynb"


def test_header_title_objectives_and_launch_block(nb_path):
    nb = _read(nb_path)
    first = nb.cells[0]
    assert first.cell_type == "markdown", "the first cell is the markdown header"
    assert re.match(r"# \S", first.source), "the header starts with a '# ' title"
    objectives = first.source.split("## Learning objectives", 1)
    assert len(objectives) == 2, "the header has a '## Learning objectives' section"
    bullets = re.findall(r"^\s*(?:[-*]|\d+\.)\s+\S", objectives[1].split("\n## ", 1)[0], re.MULTILINE)
    assert len(bullets) >= 2, "list at least two learning objectives"
    assert re.search(r"<!-- launch:start -->\n.+<!-- launch:end -->", first.source, re.DOTALL), (
        "the header holds the launch block that `python3 tasks.py publish` writes (tests/test_publish.py)"
    )


def test_header_is_short_and_holds_no_infrastructure(nb_path):
    """Title, launch badges, previous/next, what and why, objectives, one line of time and
    memory: launch, profile and memory tables live in the README and the teachers' page."""
    header = _read(nb_path).cells[0].source
    words = len(header.split())
    assert words <= MAX_HEADER_WORDS, f"the header has {words} words (limit {MAX_HEADER_WORDS}): move the rest out"
    assert "## Steps" not in header and "| profile |" not in header, "no table of steps or of profiles in the header"
    assert re.search(r"\*\*(Previous|Next):\*\* \[", header), "the header links the previous and the next notebook"


def test_header_states_measured_run_time_and_memory_per_profile(nb_path):
    block = BUDGET.search(_read(nb_path).cells[0].source)
    assert block, "the header holds the line of time and memory between <!-- budget:start --> and <!-- budget:end -->"
    figures = run_notebooks.read_header_budget(block.group(1))
    for profile in ("ci", "page", "cpu"):
        assert re.fullmatch(r"\d+(\.\d+)? (s|min), \d+\.\d+ GB", figures.get(profile, "")), (
            f"the {profile} entry must hold a measured time and memory: "
            f"run `python -m tools.run_notebooks measure --profile {profile} {nb_path.name}`"
        )
    assert block.group(1).strip().startswith(run_notebooks.header_budget_line(figures)), "one line, as the tool writes it"


def test_header_says_which_run_made_the_outputs(nb_path):
    """The committed outputs come from the page profile, and the header says so with its command."""
    block = BUDGET.search(_read(nb_path).cells[0].source)
    assert block and re.search(
        rf"\*\*Outputs on this page:\*\* the `page` profile, .*executed \d{{4}}-\d\d-\d\d with "
        rf"`python -m tools\.run_notebooks execute --profile page notebooks/{re.escape(nb_path.name)}`",
        block.group(1),
    ), f"re-execute it: python -m tools.run_notebooks execute notebooks/{nb_path.name}"


def test_setup_is_one_short_call(nb_path):
    setup = _code_cells(_read(nb_path))[0]
    assert '"google.colab" in sys.modules' in setup.source, "install the package only when running on Colab"
    assert "profile = start_lesson()" in setup.source, "one call starts the lesson (covid_tutorial.lesson.start_lesson)"
    assert _lines(setup) <= 8, "the setup cell stays short: tools/publish.py writes it"
    assert "NBVAL_CHECK_OUTPUT" not in setup.source, "versions vary: the setup cell's output must not be checked"


def test_sizes_come_from_the_profile_not_from_dictionaries_in_the_notebook(nb_path):
    """Per-profile sizes live in covid_tutorial/lessons.toml; the configuration cell unpacks
    them under their own names, in the file's order, and stays about ten lines long."""
    cells = _code_cells(_read(nb_path))
    for index, cell in enumerate(cells):
        found = re.search(r"\[profile\.name\]|\.get\(profile\.name|profile\.name (?:==|!=|in|not in) ", cell.source)
        assert not found, f"code cell {index + 1} sizes a knob by profile ({found.group(0)}): put it in lessons.toml"
    config = cells[1]
    assert _lines(config) <= MAX_CONFIG_LINES, f"the configuration cell has {_lines(config)} lines (limit {MAX_CONFIG_LINES})"
    number = nb_path.name[:2]
    sized = LESSON_SIZES.get(number)
    if sized is None:
        assert "profile.lesson(" not in config.source
        return
    assert f'SIZES = profile.lesson("{number}")' in config.source, "read the lesson's sizes with profile.lesson"
    unpacked = [node for node in ast.parse(_python_only(config.source)).body
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "attr", "") == "values"]
    assert len(unpacked) == 1, "unpack every sized knob in one line: NAME, ... = SIZES.values()"
    target = unpacked[0].targets[0]
    names = [element.id for element in target.elts] if isinstance(target, ast.Tuple) else [target.id]
    assert names == list(sized), f"unpack the knobs of lessons.toml under their own names, in its order: {list(sized)}"


def test_one_configuration_cell_holds_every_knob(nb_path):
    cells = _code_cells(_read(nb_path))
    assert len(cells) >= 2 and cells[1].source.startswith("# Configuration"), (
        "the second code cell is the configuration cell and starts with '# Configuration'"
    )
    config_cells = [c for c in cells if c.source.startswith("# Configuration")]
    assert len(config_cells) == 1, "exactly one configuration cell"
    for index, cell in enumerate(cells):
        if cell is cells[1]:
            continue
        tree = ast.parse(_python_only(cell.source))
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            for target in targets:
                for name in (ast.walk(target) if target is not None else []):
                    if isinstance(name, ast.Name) and re.fullmatch(r"[A-Z][A-Z0-9_]+", name.id):
                        pytest.fail(f"code cell {index + 1} sets the knob {name.id}: knobs live in the configuration cell")


def test_short_code_cells_after_prose(nb_path):
    nb = _read(nb_path)
    sizes = [_lines(cell) for cell in _code_cells(nb)]
    assert max(sizes) <= MAX_CODE_LINES, f"a code cell has {max(sizes)} lines; split it (limit {MAX_CODE_LINES})"
    assert statistics.median(sizes) <= MAX_MEDIAN_CODE_LINES, "keep code cells short (median <= 10 lines)"
    run = 0
    for cell in nb.cells:
        run = run + 1 if cell.cell_type == "code" else 0
        assert run <= MAX_CODE_CELLS_IN_A_ROW, "more than 3 code cells in a row: say why in a markdown cell"


def test_summary_exercises_and_solutions_out_of_sight(nb_path):
    nb = _read(nb_path)
    text = _markdown(nb)
    summary = re.search(r"^## Summary\s*$", text, re.MULTILINE)
    exercises = re.search(r"^## Exercises\s*$", text, re.MULTILINE)
    assert summary and exercises and summary.start() < exercises.start(), "a '## Summary', then '## Exercises'"
    questions = re.findall(r"^\d+\.\s", text[exercises.end():].split("\n## ", 1)[0], re.MULTILINE)
    assert len(questions) >= 3, "at least three numbered exercises"
    after = text[exercises.end():]
    link = re.search(r"\(solutions/(\d\d_[\w-]+\.md)\)", after)
    if link:
        assert (NOTEBOOKS_DIR / "solutions" / link.group(1)).is_file(), f"missing solutions/{link.group(1)}"
    else:
        last = nb.cells[-2]  # the cell before the footer
        assert last.cell_type == "markdown" and "<details>" in last.source, (
            "solutions go in a collapsed <details> block in the last cell before the footer, or in "
            "notebooks/solutions/NN_*.md"
        )


def test_the_last_cell_is_the_footer_with_the_version_and_the_licences(nb_path):
    from tools import publish

    last = _read(nb_path).cells[-1]
    assert last.cell_type == "markdown" and last.source == publish.footer_source(publish.course_version()), (
        "the last cell is the footer that `python3 tasks.py publish` writes"
    )
    assert "CC BY 4.0" in last.source and "MIT" in last.source and "not cover" in last.source


def test_not_for_clinical_use_wherever_a_model_is_trained(nb_path):
    nb = _read(nb_path)
    trains = any(TRAINING.search(cell.source) for cell in _code_cells(nb))
    if trains:
        assert "not for clinical use" in _markdown(nb).lower(), "a model is trained here: say 'Not for clinical use'"


def test_committed_executed_in_order_without_errors_or_noise(nb_path):
    nb = _read(nb_path)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    counts = [cell.execution_count for cell in _code_cells(nb)]
    assert None not in counts, "commit the notebook executed: python -m tools.run_notebooks execute"
    assert counts == list(range(1, len(counts) + 1)), "execute top to bottom in a fresh kernel"
    for cell in _code_cells(nb):
        for output in cell.outputs:
            assert output.output_type != "error", f"a cell failed: {output.get('ename')}: {output.get('evalue')}"
            if output.output_type == "stream":
                assert not TF_NOISE.search(output.text), "TensorFlow's C++ log leaked into the stored outputs"


def test_nbval_checked_cells_have_outputs(nb_path):
    for cell in _code_cells(_read(nb_path)):
        if cell.source.startswith("# NBVAL_CHECK_OUTPUT"):
            assert cell.outputs, "a cell marked NBVAL_CHECK_OUTPUT must have a stored output to compare"


def test_notebook_is_listed_in_the_readme(nb_path):
    readme = (NOTEBOOKS_DIR / "README.md").read_text(encoding="utf-8")
    assert nb_path.name in readme, f"list {nb_path.name} in notebooks/README.md"


def _page_text(nb) -> str:
    """Everything a learner reads: markdown, code, and the text of the stored outputs."""
    parts = [cell.source for cell in nb.cells]
    for cell in _code_cells(nb):
        for output in cell.outputs:
            if output.output_type == "stream":
                parts.append(output.text)
            elif "data" in output:
                parts.append(str(output.data.get("text/plain", "")))
                parts.append(str(output.data.get("text/html", "")))
    return "\n".join(parts)


def test_publications_are_cited_not_the_course_source_file_numbers(nb_path):
    # "source text 004" means nothing to a learner: name the authors, the title and the year.
    found = re.findall(r"[Ss]ource[ _]texts?[ _]`?\d{3}|`00\d`|_source_00\d", _page_text(_read(nb_path)))
    assert not found, f"cite the publication instead of {found}"


def test_no_path_of_the_machine_that_ran_it(nb_path):
    # a learner's copy lives elsewhere: print paths relative to the notebook folder
    found = re.findall(r"(?:/work/|/tmp/|/home/|/Users/|[A-Z]:\\\\Users)\S*", _page_text(_read(nb_path)))
    assert not found, f"an absolute path of the machine that ran the notebook is on the page: {found[:3]}"


CHECK = re.compile(r"^\*\*Check your understanding\.\*\*.+?<details>\s*<summary>Answer</summary>.+?</details>",
                   re.DOTALL | re.MULTILINE)


LESSONS = [path for path in NOTEBOOKS if not path.name.startswith("00_")]  # 00 is the welcome page


@pytest.mark.parametrize("nb_path", LESSONS, ids=[path.name for path in LESSONS])
def test_checks_for_understanding_inside_the_lessons(nb_path):
    nb = _read(nb_path)
    sections = [i for i, cell in enumerate(nb.cells)
                if cell.cell_type == "markdown" and re.search(r"^## \d+\. ", cell.source, re.MULTILINE)]
    summary = next(i for i, cell in enumerate(nb.cells)
                   if cell.cell_type == "markdown" and re.search(r"^## Summary", cell.source, re.MULTILINE))
    assert sections, "number the lesson's sections '## 1. Title', as ## Steps lists them"
    checks = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "markdown" and CHECK.search(cell.source)]
    assert len(checks) >= 2, "at least two checks for understanding, each a question with its answer in <details>"
    assert all(sections[0] < i < summary for i in checks), "checks belong inside the lessons, before the summary"
    assert len({max(s for s in sections if s < i) for i in checks}) >= 2, "checks after at least two sections"
