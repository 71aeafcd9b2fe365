"""course.toml names where the course is published; badges, links and setup cells follow it."""

import shutil
import subprocess
import urllib.parse
from pathlib import Path

import nbformat
import pytest

from tools import publish

ROOT = Path(__file__).resolve().parents[1]

URL = "https://github.com/example-account/covid_tutorial"


def test_every_generated_part_is_in_step_with_course_toml():
    stale = publish.out_of_step()
    assert not stale, f"run `python3 tasks.py publish` (or --unpublish): out of step: {stale}"


def test_unpublished_course_shows_no_link_that_would_404():
    assert not publish.read_place().published, "publishing is done by whoever publishes, not by the tests"
    for path in [*sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")), *publish.README_FILES]:
        text = path.read_text(encoding="utf-8")
        for dead in ("github.com/OWNER", "colab.research.google.com/github/", "mybinder.org/v2/gh/"):
            assert dead not in text, f"{path.name} links to {dead} before the course is published"
        if path.suffix == ".ipynb":
            assert "tasks.py publish" in nbformat.reads(text, as_version=4).cells[0].source, "the header says how"


@pytest.fixture
def course_copy(tmp_path):
    """The files publish rewrites, copied, in a git repository with a GitHub remote."""
    (tmp_path / "notebooks").mkdir()
    for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"):
        shutil.copy(path, tmp_path / "notebooks")
    shutil.copy(ROOT / "notebooks" / "README.md", tmp_path / "notebooks")
    for name in ("README.md", "course.toml"):
        shutil.copy(ROOT / name, tmp_path)
    (tmp_path / "covid_tutorial").mkdir()
    shutil.copy(ROOT / "covid_tutorial" / "__init__.py", tmp_path / "covid_tutorial")  # the version
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "remote", "add", "origin", "git@github.com:example-account/covid_tutorial.git"], cwd=tmp_path, check=True)
    return tmp_path


def test_publish_reads_the_git_remote_and_points_every_badge_at_its_notebook(course_copy, capsys):
    assert publish.main(["--root", str(course_copy), "--ref", "v1.0"]) == 0
    place = publish.read_place(course_copy / "course.toml")
    assert place == publish.Place(URL, "v1.0")
    names = publish.notebook_names(course_copy / "notebooks")
    for index, name in enumerate(names):
        nb = nbformat.read(course_copy / "notebooks" / name, as_version=4)
        header = nb.cells[0].source
        assert f"(https://colab.research.google.com/github/example-account/covid_tutorial/blob/v1.0/notebooks/{name})" in header
        labpath = urllib.parse.quote(f"notebooks/{name}", safe="")
        assert f"(https://mybinder.org/v2/gh/example-account/covid_tutorial/v1.0?labpath={labpath})" in header
        if index + 1 < len(names):  # Colab opens one notebook at a time: the next one by its Colab URL
            assert f"[next notebook](https://colab.research.google.com/github/example-account/covid_tutorial/blob/v1.0/notebooks/{names[index + 1]})" in header
        assert "(https://github.com/example-account/covid_tutorial/blob/v1.0/README.md)" in header
        setup = next(c for c in nb.cells if c.cell_type == "code").source
        assert f'%pip install -q --no-deps "covid-tutorial @ git+{URL}@v1.0"' in setup
        assert "SystemExit" not in setup, "a published course installs on Colab instead of refusing"
    readme = (course_copy / "README.md").read_text()
    assert "(https://mybinder.org/v2/gh/example-account/covid_tutorial/v1.0)" in readme
    assert publish.out_of_step(course_copy) == []
    assert f"rewrote {len(names) + 2} file(s)" in capsys.readouterr().out  # the notebooks, README.md, notebooks/README.md


def test_unpublish_restores_the_committed_files(course_copy):
    before = {p: p.read_bytes() for p in course_copy.rglob("*") if p.is_file() and ".git" not in p.parts}
    publish.main(["--root", str(course_copy), URL])
    assert publish.main(["--root", str(course_copy), "--unpublish", "--ref", "main"]) == 0
    after = {p: p.read_bytes() for p in before}
    assert after == before


def test_check_names_the_stale_file_and_the_fix(course_copy, capsys):
    notebook = course_copy / "notebooks" / "00_welcome.ipynb"
    nb = nbformat.read(notebook, as_version=4)
    next(c for c in nb.cells if c.cell_type == "code").source += "\n# edited by hand"
    nbformat.write(nb, notebook)
    assert publish.main(["--root", str(course_copy), "--check"]) == 1
    assert "error: notebooks/00_welcome.ipynb is out of step with course.toml; run: python3 tasks.py publish" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["https://gitlab.com/a/covid_tutorial", "not a url", "https://github.com/-bad/x"])
def test_a_repository_colab_cannot_open_gets_one_error_line(course_copy, capsys, bad):
    assert publish.main(["--root", str(course_copy), bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "is not a GitHub repository" in err[0]


def test_no_remote_says_to_give_the_url(course_copy, capsys):
    subprocess.run(["git", "remote", "remove", "origin"], cwd=course_copy, check=True)
    assert publish.main(["--root", str(course_copy)]) == 2
    assert "python3 tasks.py publish https://github.com/ACCOUNT/covid_tutorial" in capsys.readouterr().err


@pytest.mark.parametrize("spelling", [URL, URL + ".git", URL + "/", "git@github.com:example-account/covid_tutorial.git",
                                      "ssh://git@github.com/example-account/covid_tutorial.git"])
def test_github_spellings_name_one_repository(spelling):
    assert publish.github_repository(spelling) == URL
