"""Tag a release of the course, or refuse with one line saying why.

    python3 tasks.py release              # check everything, then tag vX.Y.Z (X.Y.Z: the package's version)
    python3 tasks.py release --dry-run    # check everything, tag nothing

The version is the package's ``__version__``. A release is tagged only when:

1. the working tree is clean (what is tagged is what was checked) and the tag does not exist yet;
2. the version agrees everywhere it appears: ``pyproject.toml``, ``covid_tutorial/__init__.py``,
   ``CITATION.cff`` and every notebook's header and footer (``python3 tasks.py publish --check``);
3. ``CHANGELOG.md`` has an entry ``## [X.Y.Z] - YYYY-MM-DD`` and ``CITATION.cff``'s
   ``date-released`` is that date;
4. the checks pass, in this order: the suite (``python3 tasks.py test``), the site build
   (``python3 tasks.py site``) and the student edition (``python3 tasks.py student``).

Then ``git tag -a vX.Y.Z``. Pushing the tag and archiving the release (Zenodo, with a DOI)
need a person: docs/teachers.md, "Releases", says how.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from tools import publish

ROOT = Path(__file__).resolve().parents[1]
#: What must pass before a tag, as (name, command run from the repository root).
CHECKS = (
    ("the suite", [sys.executable, "tasks.py", "test"]),
    ("the site build", [sys.executable, "tasks.py", "site"]),
    ("the student edition", [sys.executable, "tasks.py", "student", "build/release-student", "--replace"]),
)


class ReleaseRefused(Exception):
    """One line: what stops the release, and what to do."""


def _field(text: str, pattern: str, where: str) -> str:
    found = re.search(pattern, text, re.MULTILINE)
    if not found:
        raise ReleaseRefused(f"{where}: no {pattern!r} line")
    return found.group(1)


def versions(root: Path = ROOT) -> dict[str, str]:
    """The version as each file states it."""
    return {
        "covid_tutorial/__init__.py": publish.course_version(root),
        "pyproject.toml": _field((root / "pyproject.toml").read_text(), r'^version = "([^"]+)"', "pyproject.toml"),
        "CITATION.cff": _field((root / "CITATION.cff").read_text(), r'^version: "?([^"\s]+)"?', "CITATION.cff"),
    }


def changelog_date(version: str, root: Path = ROOT) -> str | None:
    """The date of the changelog's entry for ``version``, or None without one."""
    entry = re.search(rf"^## \[{re.escape(version)}\] - (\d{{4}}-\d\d-\d\d)\s*$", (root / "CHANGELOG.md").read_text(),
                      re.MULTILINE)
    return entry.group(1) if entry else None


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def check_ready(root: Path = ROOT) -> str:
    """The version to tag, after the checks that read files (1 to 3); raises ReleaseRefused."""
    stated = versions(root)
    version = stated["covid_tutorial/__init__.py"]
    differ = {where: v for where, v in stated.items() if v != version}
    if differ:
        raise ReleaseRefused(f"the version differs: {stated}; make them agree (the package's is {version})")
    if _git(root, "status", "--porcelain").stdout.strip():
        raise ReleaseRefused("the working tree has uncommitted changes: commit them, so that what is tagged is what was checked")
    if _git(root, "rev-parse", "-q", "--verify", f"refs/tags/v{version}").returncode == 0:
        raise ReleaseRefused(f"the tag v{version} exists already: raise the version in covid_tutorial/__init__.py, "
                             "pyproject.toml, CITATION.cff and CHANGELOG.md")
    stale = publish.out_of_step(root)
    if stale:
        raise ReleaseRefused(f"{stale[0].relative_to(root)} does not carry version {version}: run python3 tasks.py publish")
    date = changelog_date(version, root)
    if date is None:
        raise ReleaseRefused(f"CHANGELOG.md has no entry '## [{version}] - YYYY-MM-DD': write what the release changes")
    released = _field((root / "CITATION.cff").read_text(), r'^date-released: "?([\d-]+)"?', "CITATION.cff")
    if released != date:
        raise ReleaseRefused(f"CITATION.cff says date-released {released}, CHANGELOG.md {date}: make them agree")
    return version


def run_checks(checks=CHECKS, root: Path = ROOT) -> None:
    """Run each check from the repository root; the first that fails refuses the release."""
    for name, command in checks:
        print(f"==> {name}: {' '.join(map(str, command))}", flush=True)
        if subprocess.run(command, cwd=root).returncode != 0:
            raise ReleaseRefused(f"{name} failed ({' '.join(map(str, command))}): fix it before releasing")


def release(root: Path = ROOT, checks=CHECKS, dry_run: bool = False) -> str:
    """Check, then tag; returns the tag (the one it would make, with ``dry_run``)."""
    version = check_ready(root)
    run_checks(checks, root)
    tag = f"v{version}"
    if not dry_run:
        made = _git(root, "tag", "-a", tag, "-m", f"covid_tutorial {version}")
        if made.returncode != 0:
            raise ReleaseRefused(f"git tag {tag} failed: {made.stderr.strip()}")
    return tag


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 tasks.py release", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--dry-run", action="store_true", help="check everything, tag nothing")
    args = parser.parse_args(argv)
    try:
        tag = release(ROOT, CHECKS, dry_run=args.dry_run)
    except ReleaseRefused as refused:
        print(f"error: release refused: {refused}", file=sys.stderr)
        return 1
    print(f"{'Ready to tag' if args.dry_run else 'Tagged'} {tag}. Push it with: git push origin {tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
