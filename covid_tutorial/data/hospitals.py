"""One phantom collection from two hospitals, with a disparity planted on purpose, for audits.

A subgroup audit (``covid-tutorial evaluate --by hospital``) should find a model worse for
some patients than for others when it is, and not when it is not. On real data nobody
knows the truth; here it is planted: :func:`write_two_hospital_phantoms` draws the patients
of hospital ``A`` with the phantom generator's usual acquisition (difficulty
:data:`~covid_tutorial.data.phantoms.DEFAULT_DIFFICULTY`) and those of hospital ``B`` with a
harder one (``difficulty_b``: more rotation, shift, exposure and noise, fainter and smaller
lesions, side markers), and writes them as one collection in the layout of
:func:`~covid_tutorial.data.phantoms.generate_phantoms`, with a ``hospital`` column in
``metadata.csv``. A model trained on the mix is then worse at ``B``, by construction; sex,
age and view are drawn independently of everything, so an audit by them should find nothing.
Phantoms, not radiographs: not for clinical use.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from ..errors import DataError
from .phantoms import DEFAULT_DIFFICULTY, IMAGE_FOLDER, MASK_FOLDER, METADATA_FILENAME, generate_phantoms

__all__ = ["HOSPITALS", "MARK_FILENAME", "write_two_hospital_phantoms"]

HOSPITALS = ("A", "B")
MARK_FILENAME = "two_hospitals.txt"  # marks a folder as made by write_two_hospital_phantoms


def write_two_hospital_phantoms(out, *, patients: int, size: int = 128, share_b: float = 0.4,
                                difficulty_b: float = 0.95, seed: int = 0, progress: bool = False) -> pd.DataFrame:
    """Draw ``patients`` phantom patients into ``out``: ``share_b`` of them at hospital ``B``,
    whose acquisition is at ``difficulty_b``, the rest at hospital ``A`` at the default
    difficulty. Patient ids are ``A-P0001``, ``B-P0001``, ...; file names carry the hospital.
    Returns the metadata (also in ``out/metadata.csv``). The same arguments give the same files;
    ``out`` must be new, empty, or an earlier collection of this kind."""
    if not 0 < share_b < 1:
        raise DataError(f"share_b must lie strictly between 0 and 1, got {share_b!r}")
    counts = {"B": max(1, round(patients * share_b))}
    counts["A"] = patients - counts["B"]
    if counts["A"] < 3 or counts["B"] < 3:
        raise DataError(f"{patients} patients leave fewer than 3 at a hospital; ask for more patients")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / MARK_FILENAME).is_file():
        raise DataError(f"{out} is not empty and holds no two-hospital phantoms ({MARK_FILENAME}): choose an empty folder.")
    shutil.rmtree(out, ignore_errors=True)
    (out / IMAGE_FOLDER).mkdir(parents=True)
    (out / MASK_FOLDER).mkdir()
    tables = []
    for offset, hospital in enumerate(HOSPITALS):
        drawn = out / f"hospital-{hospital}-drawing"
        difficulty = DEFAULT_DIFFICULTY if hospital == "A" else difficulty_b
        table = generate_phantoms(drawn, patients=counts[hospital], size=size, seed=seed + offset,
                                  difficulty=difficulty, progress=progress)
        for row in table.itertuples():
            name = f"{hospital}-{row.filename}"
            (drawn / IMAGE_FOLDER / row.filename).rename(out / IMAGE_FOLDER / name)
            (drawn / row.mask_filename).rename(out / MASK_FOLDER / name)
        table = table.assign(patientid=hospital + "-" + table["patientid"], hospital=hospital,
                             filename=hospital + "-" + table["filename"],
                             mask_filename=MASK_FOLDER + "/" + hospital + "-" + table["filename"])
        tables.append(table)
        shutil.rmtree(drawn)
    metadata = pd.concat(tables, ignore_index=True)
    metadata.to_csv(out / METADATA_FILENAME, index=False, lineterminator="\n")
    (out / MARK_FILENAME).write_text(
        f"Two-hospital phantoms drawn by covid_tutorial.data.hospitals (patients={patients}, size={size}, "
        f"share_b={share_b}, difficulty_b={difficulty_b}, seed={seed})\n"
    )
    return metadata
