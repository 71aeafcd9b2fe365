"""No run-specific number typed into a notebook's prose (tools/page_numbers.py)."""

from pathlib import Path

import nbformat
import pytest

from tools import page_numbers

NOTEBOOKS = sorted(page_numbers.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def _cells(*markdown: str):
    return [nbformat.v4.new_markdown_cell(text) for text in markdown]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def test_lesson_prose_types_no_result_of_the_run(path: Path):
    found = page_numbers.check_notebook(path)
    assert not found, "print these from the run, or list them in notebooks/quoted_numbers.toml:\n" + "\n".join(map(str, found))


# Sentences of the pages before the conclusions were printed by cells (issue 24).
OLD_PAGES = [
    "The network reaches a validation accuracy 0.707 after fine-tuning.",
    "MobileNetV2 leads with a macro F1 of 0.632 [0.573, 0.687], its whole interval above chance.",
    "the difference is not significant: corrected p = 0.2312 (the naive paired test gives 0.1537)",
    "raises the activation most (on average from 2.195 to 7.229 at `conv2_block3_out`)",
    "(`conv4_block6_out`: 0.41 against -0.25)",
    "a sensitivity of 97.5% on the test patients",
]


@pytest.mark.parametrize("sentence", OLD_PAGES)
def test_flags_the_numbers_the_old_pages_typed(sentence):
    assert page_numbers.typed_numbers(_cells(sentence)), sentence


def test_leaves_alone_what_is_not_a_result_of_the_run():
    cells = _cells(
        "# 05 · Title\n\n<!-- budget:start -->\n`ci` 3.3 min, 2.15 GB\n<!-- budget:end -->",
        "Adam at `1e-4`, $\\gamma = 1.15$, doi:10.1016/j.eswa.2022.116540, arXiv:1706.02677, 3 rounds, 25,557,032 weights",
        "```python\nanswer = 0.90 * 4.30\n```",
        "## Summary\n\n- short\n\n## Exercises\n\n1. A mean of 0.90 with a standard error of 0.08.",
        "2. Still an exercise: 0.012.",
        "## Solutions\n\n<details>0.889</details>",
    )
    assert page_numbers.typed_numbers(cells) == []


def test_a_section_after_the_exercises_is_read_again():
    cells = _cells("## Exercises\n\n1. 0.90", "## 7. Back to the lesson\n\nThe model scored 0.81.")
    assert [hit.number for hit in page_numbers.typed_numbers(cells)] == ["0.81"]


def test_the_allow_list_names_each_number_with_its_reason():
    allowed = page_numbers.allowed_numbers()
    names = {path.stem for path in NOTEBOOKS}
    assert set(allowed) <= names, "quoted_numbers.toml names a notebook that does not exist"
    for notebook, numbers in allowed.items():
        for number, reason in numbers.items():
            assert len(reason.split()) >= 3, f"{notebook}: say where {number} comes from"
    assert page_numbers.typed_numbers(_cells("EfficientNet-B5's F1 is 0.9769."), allowed=frozenset({"0.9769"})) == []
