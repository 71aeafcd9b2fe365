"""tools/binder_memory.py: a real Jupyter server runs a notebook and its memory is measured.

The notebooks here are tiny (NumPy only), so the whole file costs a few seconds of CPU; the
course's own figures come from `python -m tools.binder_memory` and are checked in README.md.
"""

import re
from pathlib import Path

import nbformat
import pytest

from tools import binder_memory

ROOT = Path(__file__).resolve().parents[1]
HELD_BYTES = 300_000_000
ROLLUP = Path("/proc/self/smaps_rollup")
needs_linux_proc = pytest.mark.skipif(
    not ROLLUP.exists() or b"Pss_Anon:" not in ROLLUP.read_bytes(),
    reason="binder_memory.py reads Linux's /proc/PID/smaps_rollup",
)


def _write_notebook(folder: Path, name: str, cells: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# a test notebook")] + [nbformat.v4.new_code_cell(c) for c in cells]
    path = folder / name
    nbformat.write(nb, path)
    return path


@needs_linux_proc
def test_an_array_held_by_the_kernel_shows_in_the_server_plus_kernel_peak(tmp_path):
    path = _write_notebook(tmp_path, "01_holds_an_array.ipynb", [
        "import time\nimport numpy as np\ntime.sleep(0.6)",
        f"held = np.ones({HELD_BYTES} // 8)  # np.ones writes every page: resident\ntime.sleep(0.6)",
        "print(held.nbytes)",
    ])
    result = binder_memory.measure_notebook(path, tmp_path, profile="ci")

    assert result.ok, result.error
    assert [c.number for c in result.cells] == [1, 2, 3]
    before, holding, after = result.cells
    rise = holding.peak - holding.start
    assert HELD_BYTES * 0.9 < rise < HELD_BYTES * 1.15, f"the 300 MB array raised PSS by {rise / 1e6:.0f} MB"
    assert after.peak >= holding.peak * 0.95  # still held
    assert result.peak >= result.idle + HELD_BYTES
    assert 0 < result.idle < before.peak  # the server alone, then with a kernel
    assert result.peak_rss >= result.peak  # RSS counts shared pages once per process
    assert result.cells[0].first_line == "import time"


@needs_linux_proc
def test_a_cell_error_fails_the_notebook_and_names_the_cell(tmp_path):
    path = _write_notebook(tmp_path, "02_fails.ipynb", ["x = 1", "x / 0", "print('not reached')"])
    result = binder_memory.measure_notebook(path, tmp_path, profile="ci")

    assert not result.ok
    assert "In [2]" in result.error and "ZeroDivisionError" in result.error
    assert [c.number for c in result.cells] == [1, 2]  # stops at the error, as Run All does


def test_a_missing_notebook_is_one_error_line(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        binder_memory.notebook_paths(["99_nothing.ipynb"], tmp_path)
    message = str(exit_info.value)
    assert message.startswith("error: 99_nothing.ipynb") and "\n" not in message


def test_readme_table_has_every_notebook_within_binders_limit():
    rows = binder_memory.parse_table((ROOT / "README.md").read_text(encoding="utf-8"))
    notebooks = {p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert set(rows) == notebooks, "run `python -m tools.binder_memory` for the notebooks missing or renamed"
    for name, row in rows.items():
        peak_gb = float(re.fullmatch(r"([\d.]+) GB", row["peak server+kernel"]).group(1))
        assert peak_gb <= binder_memory.BINDER_LIMIT_GB, f"{name}: {peak_gb} GB on Binder"
        assert row["within 2 GB"] == "yes", f"{name}: {row}"
        assert "profile cpu" in row["measured"], f"{name}: measure it in the cpu profile, as Binder runs it"
