#!/usr/bin/env python3
"""Where the course is published, written once (course.toml) and everywhere else generated.

    python3 tasks.py publish                      # the repository of the git remote `origin`
    python3 tasks.py publish URL [--ref REF]      # e.g. https://github.com/ACCOUNT/covid_tutorial
    python3 tasks.py publish --unpublish          # back to no published place
    python3 tasks.py publish --check              # exit 1 and name what is out of step

It writes course.toml, then regenerates from it: the launch block of every notebook's
header and of the README files (Colab and Binder badges, links to the neighbouring
notebooks on Colab; in a notebook also the course's version), every notebook's setup cell,
whose Colab branch installs the package from the published repository at the published ref,
and every notebook's last cell, the footer with the version and the licences. Until a place is published,
no badge is shown (it would open a page that does not exist) and the setup cell says so
on Colab in one sentence.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import nbformat

from tools.markdown_blocks import Markers, MissingBlock, replace_block

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = ROOT / "notebooks"
COURSE_FILE = ROOT / "course.toml"
README_FILES = (ROOT / "README.md", NOTEBOOKS_DIR / "README.md")
LAUNCH = Markers.named("launch")  # the badges' block in every notebook's header and in the READMEs
FOOTER = Markers.named("licence")  # every notebook's last cell: version and licences
GITHUB = re.compile(
    r"^(?:https://github\.com/|git@github\.com:|ssh://git@github\.com/)"
    r"(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/(?P<name>[A-Za-z0-9._-]+?)(?:\.git)?/?$"
)
REF = re.compile(r"[A-Za-z0-9._/-]+")

NOT_PUBLISHED = (
    "*Colab and Binder badges appear here once the course is published "
    "(`python3 tasks.py publish`, see the README).*"
)

SETUP_CELL = '''\
import sys

if "google.colab" in sys.modules:  # Colab: install the course and what Colab lacks (README, "Colab")
{colab}
from covid_tutorial.lesson import start_lesson
profile = start_lesson()  # TensorFlow without its log, figures inline with alt text, the versions; COVID_TUTORIAL_PROFILE
import keras, tensorflow as tf, numpy as np, pandas as pd, matplotlib.pyplot as plt'''

FOOTER_TEXT = (
    "---\n\n*covid_tutorial {version}. The text, notebooks and figures of this course are licensed under "
    "CC BY 4.0, its code under the MIT licence ([LICENSE-CONTENT.md](../LICENSE-CONTENT.md) says which covers "
    "what); cite it as `CITATION.cff` says. Images of real collections shown here keep their publishers' "
    "licences ([docs/datasets.md](../docs/datasets.md)), which the course's licences do not cover. "
    "Teaching material only: not for clinical use.*"
)

COLAB_INSTALL = '''\
    %pip install -q --no-deps "covid-tutorial @ git+{repository}@{ref}"
    from covid_tutorial.colab import install_missing_requirements; install_missing_requirements()'''

COLAB_NOT_PUBLISHED = '''\
    raise SystemExit("This copy of the course is not published, so Colab cannot install it: "
                     "open the notebook from the course's published repository (README, 'Colab').")'''


class PublishError(Exception):
    """A message for the command line: what is wrong and what to do."""


@dataclass(frozen=True)
class Place:
    """Where the course is published: a GitHub repository and a branch or tag (empty: nowhere)."""

    repository: str = ""
    ref: str = "main"

    @property
    def published(self) -> bool:
        return bool(self.repository)

    @property
    def owner_and_name(self) -> str:
        match = GITHUB.match(self.repository)
        return f"{match['owner']}/{match['name']}"

    def colab_url(self, notebook: str) -> str:
        return f"https://colab.research.google.com/github/{self.owner_and_name}/blob/{self.ref}/notebooks/{notebook}"

    def binder_url(self, notebook: str | None = None) -> str:
        url = f"https://mybinder.org/v2/gh/{self.owner_and_name}/{self.ref}"
        return f"{url}?labpath=notebooks%2F{notebook}" if notebook else url

    def file_url(self, path: str) -> str:
        return f"https://github.com/{self.owner_and_name}/blob/{self.ref}/{path}"


def github_repository(url: str) -> str:
    """``https://github.com/OWNER/NAME`` for any of GitHub's https or ssh spellings."""
    match = GITHUB.match(url.strip())
    if not match:
        raise PublishError(
            f"{url!r} is not a GitHub repository: Colab and Binder open notebooks from GitHub; "
            "give its URL, e.g. https://github.com/ACCOUNT/covid_tutorial"
        )
    return f"https://github.com/{match['owner']}/{match['name']}"


def read_place(path: Path = COURSE_FILE) -> Place:
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))["published"]
        place = Place(repository=table["repository"], ref=table["ref"])
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise PublishError(f"{path}: cannot read [published] repository and ref ({exc}); restore it with git") from exc
    if place.repository:
        github_repository(place.repository)
    if not REF.fullmatch(place.ref):
        raise PublishError(f"{path}: ref {place.ref!r} is not a branch or tag name")
    return place


def write_place(place: Place, path: Path = COURSE_FILE) -> None:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r'^repository = "[^"]*"', f'repository = "{place.repository}"', text, count=1, flags=re.MULTILINE)
    text = re.sub(r'^ref = "[^"]*"', f'ref = "{place.ref}"', text, count=1, flags=re.MULTILINE)
    path.write_text(text, encoding="utf-8")


def origin_repository(root: Path = ROOT) -> str:
    result = subprocess.run(["git", "remote", "get-url", "origin"], cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        raise PublishError(
            "this checkout has no git remote 'origin': give the repository, "
            "python3 tasks.py publish https://github.com/ACCOUNT/covid_tutorial"
        )
    return github_repository(result.stdout.strip())


def course_version(root: Path = ROOT) -> str:
    """The package's ``__version__``, read as text (importing the package is not needed)."""
    text = (root / "covid_tutorial" / "__init__.py").read_text(encoding="utf-8")
    return re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE).group(1)


def version_line(version: str) -> str:
    return f"*Course version {version}.*"


def notebook_names(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[str]:
    return sorted(p.name for p in notebooks_dir.glob("[0-9][0-9]_*.ipynb"))


def _launch(lines: list[str]) -> str:
    """What goes between the launch markers: one line each, on lines of their own."""
    return "".join(f"\n{line}" for line in lines) + "\n"


def notebook_launch_block(place: Place, notebook: str, names: list[str], version: str) -> str:
    if not place.published:
        return _launch([NOT_PUBLISHED, version_line(version)])
    lines = [
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({place.colab_url(notebook)})",
        f"[![Launch Binder](https://mybinder.org/badge_logo.svg)]({place.binder_url(notebook)})",
    ]
    index = names.index(notebook)
    links = []  # Colab opens each notebook by itself: links to the others must be absolute there
    if index > 0:
        links.append(f"[previous notebook]({place.colab_url(names[index - 1])})")
    if index + 1 < len(names):
        links.append(f"[next notebook]({place.colab_url(names[index + 1])})")
    links.append(f"[the course README]({place.file_url('README.md')})")
    lines.append("On Colab: " + " · ".join(links))
    return _launch([*lines, version_line(version)])


def readme_launch_block(place: Place, names: list[str]) -> str:
    if not place.published:
        return _launch([NOT_PUBLISHED])
    return _launch([
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({place.colab_url(names[0])})",
        f"[![Launch Binder](https://mybinder.org/badge_logo.svg)]({place.binder_url()})",
    ])


def setup_cell_source(place: Place) -> str:
    if not place.published:
        return SETUP_CELL.format(colab=COLAB_NOT_PUBLISHED)
    return SETUP_CELL.format(colab=COLAB_INSTALL.format(repository=place.repository, ref=place.ref))


def _replace_launch(text: str, block: str, where: Path) -> str:
    try:
        return replace_block(text, LAUNCH, block)
    except MissingBlock:
        raise PublishError(f"{where}: no {LAUNCH} block to rewrite") from None


def footer_source(version: str) -> str:
    return f"{FOOTER.start}\n{FOOTER_TEXT.format(version=version)}\n{FOOTER.end}"


def _with_footer(nb, version: str) -> None:
    """The notebook's last cell is the footer: rewritten where it is, added where it is missing."""
    if nb.cells and nb.cells[-1].cell_type == "markdown" and nb.cells[-1].source.startswith(FOOTER.start):
        nb.cells[-1].source = footer_source(version)
    else:
        nb.cells.append(nbformat.v4.new_markdown_cell(footer_source(version), id="licence-footer"))


def generated_files(place: Place, root: Path = ROOT) -> dict[Path, str]:
    """Every file publish writes, as it should read for ``place`` (path -> new text)."""
    notebooks_dir = root / "notebooks"
    names = notebook_names(notebooks_dir)
    version = course_version(root)
    out = {}
    for name in names:
        path = notebooks_dir / name
        nb = nbformat.read(path, as_version=4)
        header = nb.cells[0]
        header.source = _replace_launch(header.source, notebook_launch_block(place, name, names, version), path)
        _with_footer(nb, version)
        setup = next(cell for cell in nb.cells if cell.cell_type == "code")
        setup.source = setup_cell_source(place)
        out[path] = nbformat.writes(nb) + "\n"
    for path in (root / "README.md", notebooks_dir / "README.md"):
        out[path] = _replace_launch(path.read_text(encoding="utf-8"), readme_launch_block(place, names), path)
    return out


def out_of_step(root: Path = ROOT) -> list[Path]:
    place = read_place(root / "course.toml")
    return [path for path, text in generated_files(place, root).items() if path.read_text(encoding="utf-8") != text]


def publish(place: Place, root: Path = ROOT) -> list[Path]:
    write_place(place, root / "course.toml")
    changed = []
    for path, text in generated_files(place, root).items():
        if path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 tasks.py publish", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("repository", nargs="?", help="the GitHub repository (default: git remote origin)")
    parser.add_argument("--ref", help="the branch or tag badges open and Colab installs from (default: course.toml's)")
    parser.add_argument("--unpublish", action="store_true", help="name no published place")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is out of step")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = out_of_step(args.root)
            for path in stale:
                print(f"error: {path.relative_to(args.root)} is out of step with course.toml; "
                      "run: python3 tasks.py publish (or --unpublish)")
            return 1 if stale else 0
        current = read_place(args.root / "course.toml")
        if args.unpublish:
            repository = ""
        else:
            repository = github_repository(args.repository) if args.repository else origin_repository(args.root)
        place = Place(repository=repository, ref=args.ref or current.ref)
        if not REF.fullmatch(place.ref):
            raise PublishError(f"--ref {place.ref!r} is not a branch or tag name")
        changed = publish(place, args.root)
    except PublishError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    where = f"{place.repository} at {place.ref}" if place.published else "nowhere (no launch badges)"
    print(f"course.toml: published {where}; rewrote {len(changed)} file(s)")
    for path in changed:
        print(f"  {path.relative_to(args.root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
