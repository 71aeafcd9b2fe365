"""Citable releases: CITATION.cff is valid, the version agrees everywhere, and the release
command tags only when every check passes (tools/release.py, `python3 tasks.py release`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tools import publish, release

ROOT = Path(__file__).resolve().parents[1]
# tasks.py installs cffconvert here, away from the environment's newer jsonschema
CFFCONVERT = Path(sys.executable).parent.parent / "cffconvert"


def _validate(path: Path) -> subprocess.CompletedProcess:
    assert CFFCONVERT.is_dir(), "run `python3 tasks.py test` once: it installs cffconvert into .venv/cffconvert"
    env = {**os.environ, "PYTHONPATH": str(CFFCONVERT)}
    code = "from cffconvert.cli.cli import cli; cli()"
    return subprocess.run([sys.executable, "-c", code, "--validate", "-i", str(path)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_citation_file_is_valid_cff():
    checked = _validate(ROOT / "CITATION.cff")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "valid" in checked.stdout


def test_the_validator_rejects_a_citation_without_authors(tmp_path):
    text = (ROOT / "CITATION.cff").read_text()
    broken = re.sub(r"^authors:\n(  - .*\n)+", "", text, flags=re.MULTILINE)
    assert broken != text
    (tmp_path / "CITATION.cff").write_text(broken)
    assert _validate(tmp_path / "CITATION.cff").returncode != 0


def test_one_version_everywhere():
    stated = release.versions(ROOT)
    assert len(set(stated.values())) == 1, stated
    version = stated["covid_tutorial/__init__.py"]
    import covid_tutorial

    assert covid_tutorial.__version__ == version
    assert publish.out_of_step(ROOT) == [], "notebooks' headers and footers: run python3 tasks.py publish"
    first = nbformat.read(next((ROOT / "notebooks").glob("0*.ipynb")), as_version=4)
    assert publish.version_line(version) in first.cells[0].source and version in first.cells[-1].source


def test_the_changelog_has_an_entry_for_the_version_dated_as_the_citation():
    text = (ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d\d-\d\d))?$", text, re.MULTILINE)
    assert headings[0] == ("Unreleased", ""), "Keep a Changelog: '## [Unreleased]' first"
    dates = [date for _, date in headings[1:]]
    assert dates == sorted(dates, reverse=True), "releases newest first"
    version = release.versions(ROOT)["covid_tutorial/__init__.py"]
    date = release.changelog_date(version, ROOT)
    assert date is not None and f'date-released: "{date}"' in (ROOT / "CITATION.cff").read_text()


def test_licence_files_and_where_they_are_stated():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    content = (ROOT / "LICENSE-CONTENT.md").read_text()
    assert "Creative Commons Attribution 4.0 International" in content and "Section 1 – Definitions" in content
    readme = (ROOT / "README.md").read_text()
    assert "LICENSE-CONTENT.md" in readme and "CC BY 4.0" in readme and "MIT" in readme


# --- the release command, in a small repository of its own


def _tiny_course(root: Path, version: str = "0.3.0", date: str = "2026-01-02") -> Path:
    """The files the release checks read, with one notebook, committed in a fresh git repository."""
    (root / "covid_tutorial").mkdir(parents=True)
    (root / "notebooks").mkdir()
    (root / "covid_tutorial" / "__init__.py").write_text(f'__version__ = "{version}"\n')
    (root / "pyproject.toml").write_text(f'[project]\nname = "x"\nversion = "{version}"\n')
    (root / "CITATION.cff").write_text(f'cff-version: 1.2.0\nversion: "{version}"\ndate-released: "{date}"\n')
    (root / "CHANGELOG.md").write_text(f"# Changelog\n\n## [Unreleased]\n\n## [{version}] - {date}\n\n- first\n")
    shutil.copy(ROOT / "course.toml", root / "course.toml")
    for readme in ("README.md", "notebooks/README.md"):
        (root / readme).write_text("# x\n\n<!-- launch:start -->\n<!-- launch:end -->\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 01 · x\n\n<!-- launch:start -->\n<!-- launch:end -->", id="head"),
                nbformat.v4.new_code_cell("", id="setup")]
    nbformat.write(nb, root / "notebooks" / "01_x.ipynb")
    publish.publish(publish.read_place(root / "course.toml"), root)
    for command in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", *command], cwd=root, check=True)
    return root


PASSES = (("a check that passes", [sys.executable, "-c", "pass"]),)
FAILS = (("a check that passes", [sys.executable, "-c", "pass"]),
         ("the site build", [sys.executable, "-c", "raise SystemExit(3)"]))


def _tags(root: Path) -> list[str]:
    return subprocess.run(["git", "tag"], cwd=root, capture_output=True, text=True, check=True).stdout.split()


def test_release_tags_when_every_check_passes(tmp_path):
    root = _tiny_course(tmp_path)
    assert release.release(root, PASSES) == "v0.3.0"
    assert _tags(root) == ["v0.3.0"]
    with pytest.raises(release.ReleaseRefused, match="exists already"):
        release.release(root, PASSES)


def test_release_refuses_when_a_check_fails_and_tags_nothing(tmp_path):
    root = _tiny_course(tmp_path)
    with pytest.raises(release.ReleaseRefused, match="the site build failed"):
        release.release(root, FAILS)
    assert _tags(root) == []


@pytest.mark.parametrize("spoil, message", [
    (lambda root: (root / "CHANGELOG.md").write_text("# Changelog\n\n## [Unreleased]\n"), "CHANGELOG.md has no entry"),
    (lambda root: (root / "pyproject.toml").write_text('[project]\nversion = "0.4.0"\n'), "the version differs"),
    (lambda root: (root / "CITATION.cff").write_text('version: "0.3.0"\ndate-released: "2025-01-01"\n'), "make them agree"),
    (lambda root: (root / "notebooks" / "01_x.ipynb").write_text(
        (root / "notebooks" / "01_x.ipynb").read_text().replace("0.3.0", "0.2.0")), "does not carry version"),
])
def test_release_refuses_what_does_not_agree(tmp_path, spoil, message):
    root = _tiny_course(tmp_path)
    spoil(root)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "spoilt"], cwd=root, check=True)
    with pytest.raises(release.ReleaseRefused, match=message):
        release.release(root, PASSES)
    assert _tags(root) == []


def test_release_refuses_an_uncommitted_change(tmp_path):
    root = _tiny_course(tmp_path)
    (root / "CHANGELOG.md").write_text((root / "CHANGELOG.md").read_text() + "- more\n")
    with pytest.raises(release.ReleaseRefused, match="uncommitted changes"):
        release.release(root, PASSES)


def test_the_command_says_why_in_one_line(tmp_path, monkeypatch, capsys):
    root = _tiny_course(tmp_path)
    monkeypatch.setattr(release, "ROOT", root)
    monkeypatch.setattr(release, "CHECKS", FAILS)
    assert release.main([]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: release refused: the site build failed") and "\n" not in err
