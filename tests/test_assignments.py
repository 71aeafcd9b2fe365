"""Graded assignments (tools/assignments.py, `python3 tasks.py assignments`): Otter-Grader writes
the student notebook and the autograder from the course's exercises, and grading three
submissions offline gives the expected scores."""

from __future__ import annotations

import zipfile
from pathlib import Path

import nbformat
import pytest
from test_exercises import WRONG

from tools import assignments

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "03_data_preparation.ipynb"
POINTS = assignments.PUBLIC_POINTS + assignments.HIDDEN_POINTS


@pytest.fixture(scope="module")
def assignment(tmp_path_factory):
    out = tmp_path_factory.mktemp("assignments")
    dist = assignments.write_assignment(NOTEBOOK, out)
    return dist, assignments.exercises_of(NOTEBOOK)


def test_the_student_notebook_holds_tasks_and_starter_code_but_no_solution_or_hidden_test(assignment):
    dist, exercises = assignment
    path = dist / "student" / "03_exercises.ipynb"
    sources = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells)
    assert [e.exercise_id for e in exercises] == ["03.7", "03.8"]
    for exercise in exercises:
        assert exercise.starter in sources
        assert exercise.solution.splitlines()[-1] not in sources, "a solution line reached students"
    assert "hint, solution" not in sources, "the course's solution() is not imported for students"
    student = path.read_text().replace('\\"', '"').replace("'", '"')
    assert 'status == "correct"' not in student, "a hidden test reached students"
    with zipfile.ZipFile(next((dist / "autograder").glob("*.zip"))) as autograder:
        tests = [autograder.read(name).decode() for name in autograder.namelist() if name.startswith("tests/q")]
    assert len(tests) == 2 and all("result.status == 'correct'" in test and "'hidden': True" in test for test in tests)


def _submission(dist: Path, exercises, answers: dict, path: Path) -> Path:
    nb = nbformat.read(dist / "student" / "03_exercises.ipynb", as_version=4)
    for exercise in exercises:
        cell = next(c for c in nb.cells if c.cell_type == "code" and c.source == exercise.starter)
        cell.source = answers.get(exercise.exercise_id, exercise.starter)
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize("kind, expected", [("correct", POINTS), ("typical mistake", assignments.PUBLIC_POINTS),
                                            ("unanswered", 0)])
def test_grading_offline_gives_the_expected_scores(assignment, tmp_path, kind, expected):
    dist, exercises = assignment
    answers = {"correct": {e.exercise_id: e.solution for e in exercises},
               "typical mistake": {e.exercise_id: WRONG[e.exercise_id][0] for e in exercises},
               "unanswered": {}}[kind]
    submission = _submission(dist, exercises, answers, tmp_path / "03_exercises.ipynb")
    autograder = next((dist / "autograder").glob("*.zip"))
    scores = assignments.grade(autograder, submission, tmp_path / "results")
    assert sorted(scores) == ["q1_03_7", "q2_03_8"]
    assert {question: score for question, (score, _) in scores.items()} == {q: expected for q in scores}
    assert all(possible == POINTS for _, possible in scores.values())
    print(f"{kind}: {sum(s for s, _ in scores.values())} of {sum(p for _, p in scores.values())} points")
