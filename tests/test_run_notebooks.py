"""The header's one line of time and memory, as `python -m tools.run_notebooks` writes it."""

import shutil
from pathlib import Path

import nbformat

from tools import run_notebooks

ROOT = Path(__file__).resolve().parents[1]


def test_the_budget_line_round_trips_and_keeps_profiles_in_order():
    figures = {"page": "4.7 min, 4.78 GB", "ci": "81 s, 2.89 GB"}
    line = run_notebooks.header_budget_line(figures)
    assert line.index("`ci` 81 s") < line.index("`page` 4.7 min") < line.index("`cpu` not measured") < line.index("`gpu`")
    assert run_notebooks.read_header_budget(line) == figures


def test_a_measurement_rewrites_only_its_profile_and_the_outputs_line(tmp_path, monkeypatch):
    path = tmp_path / "02_resnet_residual_learning.ipynb"
    shutil.copy(ROOT / "notebooks" / path.name, path)
    before = run_notebooks.read_header_budget(nbformat.read(path, as_version=4).cells[0].source)
    monkeypatch.setattr(run_notebooks, "_imagenet_weights_cached", lambda: False)
    result = {"profile": "cpu", "wall_s": 125.0, "cpu_s": 100.0, "peak_gb": 1.234, "load": 1.0}
    assert run_notebooks.update_notebook_header(path, [result], made_the_outputs=False)
    header = nbformat.read(path, as_version=4).cells[0].source
    after = run_notebooks.read_header_budget(header)
    assert after["cpu"] == "2.1 min, 1.23 GB" and after["ci"] == before["ci"] and after["page"] == before["page"]
    assert header.count("**Outputs on this page:**") == 1 and "executed" in header
    page = {**result, "profile": "page"}
    run_notebooks.update_notebook_header(path, [page], made_the_outputs=True)
    header = nbformat.read(path, as_version=4).cells[0].source
    assert "the `page` profile, random weights" in header and header.count("**Outputs on this page:**") == 1


def test_the_table_of_older_headers_is_read_too():
    block = "| profile | run time |\n|---|---|\n| `ci` | 24 s wall, 26 s CPU | 0.90 GB | 2026-11-24 |\n| `gpu` | not measured | | |"
    assert run_notebooks.read_header_budget(block) == {"ci": "24 s, 0.90 GB"}
