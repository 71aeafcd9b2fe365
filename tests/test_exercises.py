"""The self-checked exercises of notebooks 01-10 (covid_tutorial.teaching.exercises and exercises.toml).

Each exercise cell is run on its own, as nbval and a learner run it: its starter code must
say "not yet attempted", the solution of exercises.toml "correct", and a typical mistake
"incorrect" with a message that says what is off. The notebooks' Solutions cells must
repeat exercises.toml's solutions word for word.
"""

from __future__ import annotations

import ast
import functools
import re
import textwrap
import tomllib
from importlib import resources
from pathlib import Path

import nbformat
import pytest

from covid_tutorial.teaching.exercises import UnknownExerciseError, check, exercise_ids, hint, solution

NOTEBOOKS = sorted(p for p in (Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb")
                   if "01" <= p.name[:2] <= "10")  # 00 welcomes, 11 wraps up
TITLE_LINE = re.compile(r"# Exercise (\d\d\.\d+): (.+)")
CHECK_LINE = re.compile(r'check\("(\d\d\.\d+)", (\w+)\)')
# What the setup cell (and the first exercise cell) of every notebook imports.
PREAMBLE = """import keras
import numpy as np
import pandas as pd
from covid_tutorial.teaching.exercises import check, hint, solution
"""

# A typical mistake per exercise, and a piece of the message that must point at it.
WRONG = {
    "01.4": ("answer = (2 * 64, 2 * 64)  # γ and β only", "γ and β"),
    "01.8": (
        "def output_size(n, k, s, padding):\n    return (n - k) // s + 1  # padding ignored",
        "what Keras computes",
    ),
    "01.9": (
        "def conv_weights(kernel_size, in_channels, filters, use_bias=True):\n"
        "    return kernel_size * kernel_size * filters + filters  # one input channel",
        "all the input channels",
    ),
    "02.8": (
        "answer = (256 * 64 + 64) + (9 * 64 * 64 + 64) + (64 * 256 + 256)  # no BatchNorm",
        "batch normalizations",
    ),
    "02.9": ("def needs_projection(input_shape, filters, stride):\n    return stride != 1", "cannot be added"),
    "03.7": (
        "def patient_wise_split(patient_ids, test_size, seed):  # image-wise\n"
        "    return np.random.default_rng(seed).random(len(patient_ids)) < test_size",
        "keeps all of a patient's images on one side",
    ),
    "03.8": (
        "def balanced_weights(labels):  # the frequencies\n"
        "    names, counts = np.unique(labels, return_counts=True)\n"
        "    return dict(zip(names, counts / len(labels)))",
        "compute_class_weight",
    ),
    "04.9": (
        "def sensitivity_specificity(is_covid, p_covid, threshold):\n"
        "    said = p_covid > threshold\n"
        "    return np.mean(said[is_covid]), np.mean(~said[~is_covid])",
        "p >= threshold",
    ),
    "04.10": (
        "def freeze_for_fine_tuning(model, top_layers):  # BatchNorm unfrozen, the rest left as it was\n"
        "    for layer in model.layers[-top_layers:]:\n"
        "        layer.trainable = True",
        "is trainable",
    ),
    "04.11": (
        "def threshold_for_target(is_covid, p_covid, target):\n    return p_covid[is_covid].min()",
        "still reaches the target",
    ),
    "05.1": ("import math\n\nanswer = math.log(672 / 224) / math.log(1.2)", "depth constant"),
    "05.7": ("answer = (0.90 - 4.30 * 0.08, 0.90 + 4.30 * 0.08)", "plain interval"),
    "05.8": (
        "def pareto_mask(cost, score):  # the best score only\n    return np.asarray(score) >= np.max(score)",
        "front",
    ),
    "06.8": ("def channel_weights(gradients):\n    return gradients.sum(axis=(0, 1))", "don't sum"),
    "06.9": (
        "def gradcam_map(feature_maps, gradients):  # no ReLU\n"
        "    return (feature_maps * gradients.mean(axis=(0, 1))).sum(axis=-1)",
        "the ReLU",
    ),
    "07.8": ("def sparsity(activations):\n    return np.mean(activations == 0)", "not only exact zeros"),
    "07.9": (
        "def dead_channel_share(activations):  # dead in every image\n"
        "    return 1 - (activations > 0).any(axis=(0, 1, 2)).mean()",
        "average over images",
    ),
    "08.3": (
        "def where_classes_differ(images, labels, first, second):  # the signed difference\n"
        "    difference = images[labels == first].mean(axis=0) - images[labels == second].mean(axis=0)\n"
        "    return np.unravel_index(difference.argmax(), difference.shape)",
        "whatever its sign",
    ),
    "08.7": (
        "def mask_outside(images, box):  # int() instead of round()\n"
        "    top, bottom, left, right = box\n"
        "    height, width = images.shape[1:3]\n"
        "    masked = np.zeros_like(images)\n"
        "    rows = slice(int(top * height), int(bottom * height))\n"
        "    columns = slice(int(left * width), int(right * width))\n"
        "    masked[:, rows, columns] = images[:, rows, columns]\n"
        "    return masked",
        "mask_outside_box",
    ),
    "08.8": (
        "from sklearn.metrics import recall_score\n\n\n"
        "def recall_drop(source_true, source_pred, shifted_true, shifted_pred):  # shifted minus source\n"
        "    classes = np.unique(source_true)\n"
        "    before = recall_score(source_true, source_pred, labels=classes, average=None)\n"
        "    after = recall_score(shifted_true, shifted_pred, labels=classes, average=None)\n"
        "    return dict(zip(classes, after - before))",
        "source minus shifted",
    ),
    "09.4": (
        "from sklearn.metrics import f1_score\n\n\n"
        "def macro_f1_lost(classes, own_true, own_pred, other_true, other_pred):  # only the classes present\n"
        "    own = f1_score(own_true, own_pred, average='macro', zero_division=0)\n"
        "    other = f1_score(other_true, other_pred, average='macro', zero_division=0)\n"
        "    return own - other",
        "also one the other collection lacks",
    ),
    "09.5": (
        "def agreement_beyond_chance(first, second):  # the raw share of equal answers\n"
        "    return np.mean(np.asarray(first) == np.asarray(second))",
        "before the correction for chance",
    ),
    "10.1": (
        "def net_benefit_at(is_covid, p_covid, threshold):  # the false positives unweighted\n"
        "    treated = np.asarray(p_covid) >= threshold\n"
        "    is_covid = np.asarray(is_covid, bool)\n"
        "    return (np.sum(treated & is_covid) - np.sum(treated & ~is_covid)) / len(is_covid)",
        "weighted by p_t / (1 - p_t)",
    ),
    "10.2": (
        "def apply_temperature(probabilities, temperature):  # not renormalised\n"
        "    return np.asarray(probabilities) ** (1 / temperature)",
        "divide each row by its sum",
    ),
}


@functools.cache
def _notebook(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _exercise_cells() -> dict[str, tuple[Path, int, nbformat.NotebookNode]]:
    found = {}
    for path in NOTEBOOKS:
        nb = _notebook(path)
        for index, cell in enumerate(nb.cells):
            title = TITLE_LINE.match(cell.source)
            if cell.cell_type == "code" and title:
                assert title.group(1) not in found, f"exercise {title.group(1)} appears twice"
                found[title.group(1)] = (path, index, cell)
    return found


CELLS = _exercise_cells()
IDS = exercise_ids()


def _run(source: str):
    """Run a cell's code in a fresh namespace that holds the setup cell's imports; the value of its last line."""
    namespace: dict = {}
    exec(PREAMBLE, namespace)
    *body, last = ast.parse(source).body
    exec(compile(ast.Module(body, type_ignores=[]), "<exercise cell>", "exec"), namespace)
    return eval(compile(ast.Expression(last.value), "<exercise cell>", "eval"), namespace)


def _replaced(cell_source: str, code: str) -> str:
    """The exercise cell with its starter code replaced by ``code``: title line, code, check line."""
    lines = cell_source.strip().splitlines()
    return "\n".join([lines[0], code.strip("\n"), lines[-1]])


@functools.cache
def _toml() -> dict:
    return tomllib.loads(resources.files("covid_tutorial.teaching").joinpath("exercises.toml").read_text(encoding="utf-8"))


def _toml_entry(exercise_id: str) -> dict:
    return _toml()["exercises"][exercise_id]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_lesson_has_at_least_two_self_checked_exercises(path):
    in_notebook = [i for i, (p, _, _) in CELLS.items() if p == path]
    assert len(in_notebook) >= 2, f"{path.name} has {len(in_notebook)} exercise cells; give it at least two"
    assert all(i.startswith(path.name[:2] + ".") for i in in_notebook), f"{path.name} checks another notebook's ids"


def test_the_notebooks_and_exercises_toml_hold_the_same_exercises():
    assert sorted(CELLS) == sorted(IDS), "every exercise cell needs a table in exercises.toml, and vice versa"
    for exercise_id in IDS:
        assert set(_toml_entry(exercise_id)) == {"title", "hint", "solution", "explanation"}, exercise_id


@pytest.mark.parametrize("exercise_id", IDS)
def test_the_exercise_cell_follows_the_convention(exercise_id):
    path, index, cell = CELLS[exercise_id]
    title, *_, last = cell.source.strip().splitlines()
    assert "exercise" in cell.metadata.get("tags", []), "tag the cell 'exercise' (the student edition clears it)"
    assert TITLE_LINE.match(title).group(2) == _toml_entry(exercise_id)["title"]
    checked = CHECK_LINE.fullmatch(last)
    assert checked and checked.group(1) == exercise_id, "end the cell with check(id, answer)"
    nb = _notebook(path)
    exercise_cells = [i for i, c in enumerate(nb.cells) if "exercise" in c.metadata.get("tags", [])]
    if index == exercise_cells[0]:
        assert "from covid_tutorial.teaching import check, hint, solution" in cell.source
    assert nb.cells[index - 1].cell_type == "markdown", "a markdown cell states the task before each exercise cell"


@pytest.mark.parametrize("exercise_id", IDS)
def test_the_untouched_starter_code_is_not_yet_attempted(exercise_id):
    result = _run(CELLS[exercise_id][2].source)
    assert result.status == "unattempted", result


@pytest.mark.parametrize("exercise_id", IDS)
def test_the_solution_is_correct(exercise_id):
    cell = CELLS[exercise_id][2]
    result = _run(_replaced(cell.source, _toml_entry(exercise_id)["solution"]))
    assert result.status == "correct", result


@pytest.mark.parametrize("exercise_id", IDS)
def test_a_typical_mistake_is_incorrect_and_the_message_says_what_is_off(exercise_id):
    code, pointer = WRONG[exercise_id]
    result = _run(_replaced(CELLS[exercise_id][2].source, code))
    assert result.status == "incorrect", result
    assert pointer in result.message, result.message
    assert f'hint("{exercise_id}")' in result.message


@pytest.mark.parametrize("exercise_id", IDS)
def test_the_notebook_solutions_repeat_exercises_toml(exercise_id):
    path = CELLS[exercise_id][0]
    last = _notebook(path).cells[-2]  # the last cell is the footer
    assert last.source.startswith("## Solutions"), f"{path.name}: the last cell before the footer is the Solutions cell"
    entry = _toml_entry(exercise_id)
    code = textwrap.indent(entry["solution"].strip("\n"), "   ")  # inside a numbered item
    assert code in last.source, f"{path.name}: the Solutions cell lacks the solution code of {exercise_id}"
    assert " ".join(entry["explanation"].split()) in " ".join(last.source.split()), (
        f"{path.name}: the Solutions cell lacks the explanation of {exercise_id} in exercises.toml"
    )
    shown = str(solution(exercise_id))
    assert entry["solution"].strip() in shown and entry["explanation"].strip() in shown


@pytest.mark.parametrize("function", [hint, solution, lambda exercise_id: check(exercise_id, 1)])
def test_an_unknown_id_is_one_clear_error_naming_the_valid_ids(function):
    with pytest.raises(UnknownExerciseError) as raised:
        function("04.99")
    message = str(raised.value)
    assert "'04.99'" in message and all(exercise_id in message for exercise_id in IDS)


@pytest.mark.parametrize("exercise_id", IDS)
def test_hint_and_solution_show_markdown(exercise_id):
    entry = _toml_entry(exercise_id)
    for text, part in ((hint(exercise_id), entry["hint"]), (solution(exercise_id), entry["solution"])):
        assert part.strip() in str(text) and text._repr_markdown_() == str(text) == repr(text)
        assert entry["title"] in str(text)


def test_a_result_shows_as_one_coloured_line_and_reads_as_plain_text():
    answers = {"unattempted": None, "incorrect": lambda g: g.sum(axis=(0, 1)), "correct": lambda g: g.mean(axis=(0, 1))}
    results = {status: check("06.8", answer) for status, answer in answers.items()}
    assert {status: result.status for status, result in results.items()} == {s: s for s in results}
    colours = {result._repr_markdown_().split("color:")[1].split('"')[0] for result in results.values()}
    assert len(colours) == 3, "one colour per status"
    for result in results.values():
        assert "\n" not in result._repr_markdown_() and "<span" not in repr(result)
        assert result.message in repr(result)


@pytest.mark.parametrize(
    "exercise_id, answer, pointer",
    [("01.8", 42, "pass your function itself"), ("01.4", "many", "a pair of whole numbers"),
     ("05.7", (0.1,), "a pair (low, high)"), ("03.8", lambda labels: [1.0, 2.0], "dict")],
)
def test_an_answer_of_the_wrong_kind_is_incorrect_not_a_traceback(exercise_id, answer, pointer):
    result = check(exercise_id, answer)
    assert result.status == "incorrect" and pointer in result.message, result


def test_an_error_in_the_learners_function_names_the_inputs_that_caused_it():
    def output_size(n, k, s, padding):
        return n // 0 if padding == "same" else (n - k) // s + 1

    result = check("01.8", output_size)
    assert result.status == "incorrect", result
    assert "ZeroDivisionError" in result.message and "padding 'same'" in result.message


def test_a_function_that_changes_its_input_is_caught():
    def mask_outside(images, box):
        images[:, :1] = 0
        return images

    result = check("08.7", mask_outside)
    assert result.status == "incorrect" and "copy" in result.message, result


def test_an_answer_shown_in_the_message_cannot_read_as_html():
    result = check("03.8", lambda labels: print)  # returns a function, whose repr is <built-in function print>
    assert result.status == "incorrect" and "<built-in" in result.message
    assert "<built-in" not in result._repr_markdown_() and "&lt;built-in" in result._repr_markdown_()
