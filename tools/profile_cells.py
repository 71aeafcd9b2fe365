"""Peak memory of a notebook cell by cell, to find what to shrink when a notebook is over budget.

    COVID_TUTORIAL_WEIGHTS=none python -m tools.profile_cells notebooks/07_intermediate_activations.ipynb --profile cpu

Runs the notebook in a fresh kernel (cwd ``notebooks/``, nothing is written) and prints, for
each code cell, the peak and the final resident memory of the kernel and its children,
sampled every 0.1 s, and the seconds it took. ``python -m tools.run_notebooks measure``
gives the whole notebook's figures; this script says which cell they come from.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"


def resident_bytes(pid: int) -> int:
    try:
        process = psutil.Process(pid)
        return process.memory_info().rss + sum(c.memory_info().rss for c in process.children(recursive=True))
    except psutil.Error:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--profile", choices=["ci", "cpu", "gpu"], default="cpu")
    args = parser.parse_args()
    os.environ["COVID_TUTORIAL_PROFILE"] = args.profile
    nb = nbformat.read(args.notebook, as_version=4)
    client = NotebookClient(nb, timeout=3600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
    with client.setup_kernel():
        pid = client.km.provisioner.process.pid
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            peak, running = [0], [True]

            def sample() -> None:
                while running[0]:
                    peak[0] = max(peak[0], resident_bytes(pid))
                    time.sleep(0.1)

            sampler = threading.Thread(target=sample)
            sampler.start()
            start = time.perf_counter()
            client.execute_cell(cell, index)
            running[0] = False
            sampler.join()
            first_line = (cell.source.splitlines() or [""])[0][:70]
            print(f"cell {index}: peak {peak[0] / 1e9:.2f} GB, after {resident_bytes(pid) / 1e9:.2f} GB, "
                  f"{time.perf_counter() - start:.0f} s | {first_line}", flush=True)


if __name__ == "__main__":
    main()
