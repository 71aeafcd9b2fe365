"""Build the course site: Sphinx with MyST-NB and the sphinx-book-theme, offline.

    .venv/bin/python -m book.build_site [--out DIR]     # from the repository root; or: python3 tasks.py site

The pages are the files `book/site.toml` names (the README as the home page, the notebooks in
course order, the data and docs pages) and a page of the course's citations, gathered from
the notebooks' `## References` sections. The notebooks are shown with their committed
outputs: nothing is executed and nothing is downloaded. Any Sphinx warning (a link to a page
that does not exist, an unknown document) fails the build.

DIR (default build/site) receives `html/` (the site), and the build's working folders:
`source/` (the pages, copied from the repository in its own layout, so that relative links
resolve as they do there), `doctrees/` and `jupyter_execute/` (the notebooks' images).
"""

from __future__ import annotations

import argparse
import glob
import html
import os
import re
import shutil
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tools import publish  # course.toml, the one place that says where the course is

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
DEFAULT_OUT = ROOT / "build" / "site"


@dataclass(frozen=True)
class Section:
    caption: str
    pages: tuple[str, ...]  # repository paths, e.g. "notebooks/04_resnet50_transfer_learning.ipynb"


@dataclass(frozen=True)
class SiteLayout:
    title: str
    landing: str
    sections: tuple[Section, ...]
    references_page: str
    references_title: str
    references_intro: str
    references_sources: tuple[str, ...]
    references_heading: str

    @property
    def pages(self) -> tuple[str, ...]:
        return (self.landing, *(page for section in self.sections for page in section.pages))


@dataclass(frozen=True)
class Citation:
    text: str  # the markdown of the fullest variant of the entry
    cited_in: tuple[Path, ...]  # the notebooks that cite it, in course order


class SiteError(Exception):
    """A problem with the site's configuration or sources, said in one line."""


def _is_glob(pattern: str) -> bool:
    return any(char in pattern for char in "*?[")


def _expand(pattern: str, generated: set[str], named: frozenset[str] = frozenset()) -> list[str]:
    """The pages a pattern of site.toml stands for. A glob pattern leaves out the pages some
    section names literally (`docs/glossary.md` in its own section, not again under `docs/*.md`)."""
    if pattern in generated:
        return [pattern]
    found = sorted(Path(p).relative_to(ROOT).as_posix() for p in glob.glob(str(ROOT / pattern)))
    if not found:
        raise SiteError(f"book/site.toml: no file matches {pattern!r}; fix the pattern or add the file")
    if _is_glob(pattern):
        found = [page for page in found if page not in named]
    return found


def read_layout(path: Path = BOOK / "site.toml") -> SiteLayout:
    """The site's pages from `book/site.toml`, glob patterns expanded in sorted order."""
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
        references = config["references"]
        generated = {references["page"]}
        named = frozenset(p for s in config["section"] for p in s["pages"] if not _is_glob(p))
        sections = tuple(
            Section(s["caption"], tuple(p for pattern in s["pages"] for p in _expand(pattern, generated, named)))
            for s in config["section"]
        )
        pages = [page for section in sections for page in section.pages]
        repeated = sorted({page for page in pages if pages.count(page) > 1})
        if repeated:
            raise SiteError(f"{path}: {', '.join(repeated)} listed in more than one place; name each page once")
        return SiteLayout(
            title=config["title"],
            landing=config["landing"],
            sections=sections,
            references_page=references["page"],
            references_title=references["title"],
            references_intro=references["intro"].strip(),
            references_sources=tuple(_expand(references["sources"], set())),
            references_heading=references["heading"],
        )
    except KeyError as exc:
        raise SiteError(f"{path}: the setting {exc} is missing; compare the file with the one in git") from exc
    except (OSError, tomllib.TOMLDecodeError, TypeError) as exc:
        raise SiteError(f"{path}: cannot read the site's layout ({exc}); compare it with the one in git") from exc


def read_published(path: Path = ROOT / "course.toml") -> publish.Place:
    """Where the course is published (course.toml, read as `python3 tasks.py publish` reads it)."""
    if not path.exists():
        return publish.Place()
    try:
        return publish.read_place(path)
    except publish.PublishError as exc:
        raise SiteError(str(exc)) from exc


# ---------------------------------------------------------------- the citations page


def references_section(notebook: Path, heading: str) -> list[str]:
    """The list items under `heading` in a notebook's markdown, up to the next heading."""
    import nbformat

    level = len(heading) - len(heading.lstrip("#"))
    items: list[str] = []
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type != "markdown":
            continue
        inside = False
        for line in cell.source.splitlines():
            stripped = line.strip()
            if stripped == heading:
                inside = True
            elif inside and re.match(rf"#{{1,{level}}} ", stripped):
                inside = False
            elif inside and re.match(r"[-*] ", stripped):
                items.append(stripped[2:].strip())
            elif inside and items and stripped and line.startswith(" "):
                items[-1] += " " + stripped  # an item wrapped over several lines
    return items


def _words(text: str) -> list[str]:
    return re.sub(r"[^0-9a-z]+", " ", text.lower().replace("*", "")).split()


def citation_key(text: str) -> tuple[str, ...]:
    """Entries that differ only in punctuation, initials or the detail given (pages, doi) share a
    key: first author's surname, year and the first words of the title; or, for an entry with
    no year, its first words."""
    match = re.match(r"(?P<authors>[^(]+?)\s*\((?P<year>\d{4})\)\.?\s*(?P<title>.*)", text)
    if not match:
        return tuple(_words(text)[:6])
    title = re.split(r"\.\s", match["title"], maxsplit=1)[0]  # up to the end of its first sentence
    return (_words(match["authors"])[0], match["year"], *_words(title)[:6])


def collect_citations(notebooks: list[Path], heading: str) -> list[Citation]:
    """Every notebook's references, one entry per work (its longest variant), sorted by author."""
    variants: dict[tuple[str, ...], list[str]] = {}
    cited_in: dict[tuple[str, ...], list[Path]] = {}
    for notebook in notebooks:
        for item in references_section(notebook, heading):
            key = citation_key(item)
            variants.setdefault(key, []).append(item)
            names = cited_in.setdefault(key, [])
            if notebook not in names:
                names.append(notebook)
    citations = [Citation(max(variants[key], key=len), tuple(cited_in[key])) for key in variants]
    return sorted(citations, key=lambda c: _words(c.text))


def references_markdown(citations: list[Citation], layout: SiteLayout) -> str:
    page_dir = (ROOT / layout.references_page).parent
    lines = [f"# {layout.references_title}", "", layout.references_intro, ""]
    for citation in citations:
        # links relative to this page, so the site resolves them to the notebook pages
        where = ", ".join(
            f"[{path.name[:2]}]({Path(os.path.relpath(path, page_dir)).as_posix()})" for path in citation.cited_in
        )
        lines.append(f"- {citation.text} (cited in {where})")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- building


def assemble_sources(layout: SiteLayout, source: Path) -> None:
    """One source tree in the repository's layout: a copy of each page, plus the citations page.
    (Copies, not symbolic links: Sphinx resolves links and would then not know the pages.)"""
    if source.exists():
        shutil.rmtree(source)
    for page in layout.pages:
        if page == layout.references_page:
            continue
        target = source / page
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / page, target)
    citations = collect_citations([ROOT / p for p in layout.references_sources], layout.references_heading)
    page = source / layout.references_page
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(references_markdown(citations, layout), encoding="utf-8")


def write_home_redirect(html_dir: Path, landing_docname: str) -> None:
    """`index.html`, for servers that open it: the home page is the README's."""
    target = html.escape(f"{landing_docname}.html")
    html_dir.joinpath("index.html").write_text(
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Redirecting</title>'
        f'<meta http-equiv="refresh" content="0; url={target}"><link rel="canonical" href="{target}">'
        f'<link rel="icon" href="_static/favicon.svg"></head>'
        f'<body><p>The course starts at <a href="{target}">{target}</a>.</p></body></html>\n',
        encoding="utf-8",
    )


def build_site(out: Path, *, quiet: bool = True) -> Path:
    """Build the site into `out/html` from scratch; returns that folder. Raises SiteError on failure."""
    from sphinx.cmd.build import build_main

    layout = read_layout()
    read_published()  # conf.py reads it too; a broken course.toml is reported here in one line
    out = out.resolve()
    source, doctrees, html_dir = out / "source", out / "doctrees", out / "html"
    assemble_sources(layout, source)
    shutil.rmtree(doctrees, ignore_errors=True)  # a fresh build, so that every warning is seen again
    args = ["-b", "html", "-c", str(BOOK), "-d", str(doctrees), "-W", "--keep-going", "-E"]
    status = build_main([*args, *(["-q"] if quiet else []), str(source), str(html_dir)])
    if status != 0:
        raise SiteError("the site did not build: Sphinx reported the warnings above; fix them in the pages named")
    write_home_redirect(html_dir, Path(layout.landing).with_suffix("").as_posix())
    return html_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: build/site)")
    parser.add_argument("--verbose", action="store_true", help="show Sphinx's progress, not only its warnings")
    args = parser.parse_args(argv)
    try:
        html_dir = build_site(args.out, quiet=not args.verbose)
    except SiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"The site is in {html_dir}")
    print(f"View it with: python3 -m http.server --bind 127.0.0.1 --directory {html_dir} 8000")
    print("then open http://127.0.0.1:8000/ in a browser.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
