"""The course site, as a reader sees it: built offline by `python -m book.build_site`, served on
127.0.0.1, and every page loaded in headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by selenium). Nothing leaves the machine: Chromium resolves no
host but 127.0.0.1, so external links and images are never fetched.

The site is built and walked once (the `walk` fixture); each test then checks one property
of what the browser saw. Screenshots of the home page and of notebooks 04 and 06 are saved
to build/site-screenshots/.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = ROOT / "build" / "site-screenshots"
NOTEBOOKS = sorted(ROOT.glob("notebooks/[0-9][0-9]_*.ipynb"))
SCREENSHOT_NOTEBOOKS = ("04", "06")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# The publishing account's placeholder, or a repository URL built from an empty setting.
PLACEHOLDER_REPOSITORY = re.compile(r"(github\.com|/github|/gh)/OWNER\b|/gh//|/github//|//blob/|//tree/")
LAUNCH_PREFIXES = ("https://colab.research.google.com/github/", "https://mybinder.org/v2/")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no request leaves the machine
    "--window-size=1280,1000",
)

# What the browser reports about one page, read in one script after the load event.
PAGE_SCRIPT = """
const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
const h1 = document.querySelector('article h1, main h1, h1');
const notPermalink = (n) => !(n.classList && n.classList.contains('headerlink'));
return {
  url: location.href,
  title: h1 ? Array.from(h1.childNodes).filter(notPermalink).map(n => n.textContent).join('') : null,
  links: Array.from(document.querySelectorAll('a[href]'), a => a.href),
  ids: Array.from(document.querySelectorAll('[id]'), e => e.id),
  images: Array.from(document.images, i => ({src: i.currentSrc || i.src, width: i.naturalWidth,
    alt: i.getAttribute('alt'), in_main: !!i.closest('main'), output: !!i.closest('.cell_output')})),
  outputs: Array.from(document.querySelectorAll('.cell_output'), o => ({
    text: o.innerText,
    figures: Array.from(o.querySelectorAll('img'), i => i.naturalWidth).filter(w => w > 0).length,
    visible_figures: Array.from(o.querySelectorAll('img')).filter(i => i.naturalWidth > 0 && visible(i)).length})),
};
"""


@dataclass
class Page:
    path: str  # relative to the site root, e.g. "notebooks/04_resnet50_transfer_learning.html"
    url: str  # where the browser ended up (index.html redirects)
    title: str | None
    links: list[str]
    ids: set[str]
    images: list[dict]
    outputs: list[dict]
    console_errors: list[str] = field(default_factory=list)
    violations: list[dict] = field(default_factory=list)  # axe-core's, one entry per rule broken


@dataclass
class Walk:
    base: str  # http://127.0.0.1:PORT/
    html_dir: Path
    pages: dict[str, Page]
    ignored_console: list[str]  # failed requests to other hosts, refused on purpose
    link_status: dict[str, int]  # every same-host link target (no fragment) -> HTTP status
    screenshots: list[Path]
    tab_stops: list[dict]  # the first elements the Tab key reaches on the home page, in order
    skip_target: str  # where Enter on the first of them leads (location.hash)


AXE = ROOT / "book" / "node_modules" / "axe-core" / "axe.min.js"
AUDIT_IMPACTS = ("critical", "serious", "moderate", "minor")
# axe-core's default rules (WCAG 2.0, 2.1 and 2.2 A and AA, and its best practices), every node it flags.
AXE_SCRIPT = """
const done = arguments[0];
axe.run(document, {resultTypes: ['violations']})
  .then(r => done(r.violations.map(v => ({rule: v.id, impact: v.impact, help: v.help,
                                          nodes: v.nodes.map(n => n.html.slice(0, 200))}))))
  .catch(e => done([{rule: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));
"""
TAB_STOPS = 8
FOCUSED_SCRIPT = """
const e = document.activeElement;
const name = (e.getAttribute('aria-label') || e.innerText || e.title || e.getAttribute('alt') || '').trim();
return {tag: e.tagName.toLowerCase(), name: name.replace(/\\s+/g, ' ').slice(0, 80), href: e.getAttribute('href'),
        visible: !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length)};
"""
TEACHERS = ROOT / "docs" / "teachers.md"
AUDIT_BLOCK = re.compile(r"<!-- accessibility:start -->\n(.*?)<!-- accessibility:end -->", re.S)


def _require_axe() -> str:
    if not AXE.is_file():
        pytest.fail(f"{AXE.relative_to(ROOT)} is missing: python3 tasks.py test installs it with npm "
                    "(needs Node.js and npm: apt-get install nodejs npm), or run npm ci in book/", pytrace=False)
    return AXE.read_text(encoding="utf-8")


def _audit(driver, axe_source: str) -> list[dict]:
    driver.execute_script(axe_source)
    return driver.execute_async_script(AXE_SCRIPT)


def _keyboard_walk(driver, url: str) -> tuple[list[dict], str]:
    """Tab from the top of the page TAB_STOPS times; then Enter on the first stop."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver.get(url)
    stops = []
    for _ in range(TAB_STOPS):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        stops.append(driver.execute_script(FOCUSED_SCRIPT))
    driver.get(url)
    ActionChains(driver).send_keys(Keys.TAB).send_keys(Keys.ENTER).perform()
    return stops, driver.execute_script("return location.hash")


def _notebook_title(path: Path) -> str:
    for cell in nbformat.read(path, as_version=4).cells:
        for line in cell.source.splitlines():
            if cell.cell_type == "markdown" and line.startswith("# "):
                return re.sub(r"[*`]", "", line[2:]).strip()  # as the page shows it: no emphasis marks
    raise AssertionError(f"{path.name} has no '# ' title")


def _widget_notes(notebook: Path) -> list[str]:
    """The text each widget output of a notebook carries beside its view (shown without a kernel)."""
    return [
        output.data["text/plain"]
        for cell in nbformat.read(notebook, as_version=4).cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if WIDGET_VIEW in output.get("data", {})
    ]


def _note_key(note: str) -> str:
    return note.split(";")[0]  # its first clause: the page may wrap or re-space the rest


def _page_html(notebook: Path) -> str:
    return f"notebooks/{notebook.stem}.html"


def _clean_heading(text: str | None) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def _serve(directory: Path):
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = _QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature from the base class
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a browser that moved on mid-download
            super().handle_error(request, client_address)


def _require_chromium() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: install Debian's chromium and chromium-driver packages "
            "(apt-get install -y chromium chromium-driver)",
            pytrace=False,
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail("selenium is not installed: pip install -e '.[dev]'", pytrace=False)


def _start_chromium(profile_dir: Path):
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)))


def _split_console(entries: list[dict], base: str) -> tuple[list[str], list[str]]:
    """Errors of the page, and failed loads from other hosts (expected: nothing is resolved)."""
    errors, ignored = [], []
    for entry in entries:
        if entry["level"] != "SEVERE":
            continue
        message = entry["message"]
        external_load = (
            entry.get("source") == "network" and not message.startswith(base) and "Failed to load resource" in message
        )
        (ignored if external_load else errors).append(message)
    return errors, ignored


def _build_site(root: Path, out: Path) -> subprocess.CompletedProcess:
    """`python -m book.build_site` of the course at `root`, run from there as tasks.py runs it."""
    command = [sys.executable, "-m", "book.build_site", "--out", str(out)]
    return subprocess.run(command, capture_output=True, text=True, cwd=root)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture(scope="module")
def walk(tmp_path_factory) -> Walk:
    _require_chromium()
    axe_source = _require_axe()
    out = tmp_path_factory.mktemp("site")
    build = _build_site(ROOT, out)
    assert build.returncode == 0, f"the site did not build:\n{build.stdout}\n{build.stderr}"
    html_dir = out / "html"
    server = _serve(html_dir)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    driver = _start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    driver.set_script_timeout(120)
    pages, ignored, screenshots = {}, [], []
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    try:
        for file in sorted(html_dir.rglob("*.html")):
            path = file.relative_to(html_dir).as_posix()
            if path.startswith("_static/"):  # the theme's template fragments, not pages
                continue
            driver.get(base + path)
            seen = driver.execute_script(PAGE_SCRIPT)
            errors, external = _split_console(driver.get_log("browser"), base)
            ignored += external
            pages[path] = Page(path, seen["url"], seen["title"], seen["links"], set(seen["ids"]), seen["images"],
                               seen["outputs"], errors, _audit(driver, axe_source))
            screenshots += _screenshots(driver, path)
        tab_stops, skip_target = _keyboard_walk(driver, base + "README.html")
        link_status = {}
        for page in pages.values():
            for link in page.links:
                target = link.split("#")[0]
                if target.startswith(base) and target not in link_status:
                    link_status[target] = _status(target)
    finally:
        driver.quit()
        server.shutdown()
    for shot in screenshots:
        print(f"screenshot: {shot}")
    return Walk(base, html_dir, pages, ignored, link_status, screenshots, tab_stops, skip_target)


def _screenshots(driver, path: str) -> list[Path]:
    """The home page; notebooks 04 and 06 at their top and at their interactive figure's
    static version (or, without one, their first figure)."""
    if path == "README.html":
        shot = SCREENSHOTS / "home.png"
        driver.save_screenshot(str(shot))
        return [shot]
    name = Path(path).stem
    if not (path.startswith("notebooks/") and name[:2] in SCREENSHOT_NOTEBOOKS):
        return []
    top, figure = SCREENSHOTS / f"{name}-top.png", SCREENSHOTS / f"{name}-figure.png"
    driver.save_screenshot(str(top))
    notes = _widget_notes(ROOT / "notebooks" / f"{name}.ipynb")
    driver.execute_script(
        """const outputs = Array.from(document.querySelectorAll('.cell_output'));
        const output = outputs.find(o => arguments[0] && o.innerText.includes(arguments[0]))
                       || outputs.find(o => o.querySelector('img'));
        output.querySelector('img').scrollIntoView({block: 'start'});""",
        _note_key(notes[0]) if notes else None,
    )
    driver.save_screenshot(str(figure))
    return [top, figure]


def _content_pages() -> set[str]:
    """The pages the site must have, from the repository's own files."""
    pages = {"README.html", "notebooks/README.html", "data/README.html", "references.html"}
    pages |= {f"docs/{p.stem}.html" for p in ROOT.glob("docs/*.md")}
    return pages | {_page_html(nb) for nb in NOTEBOOKS}


def test_site_has_every_course_page_and_the_home_page_opens_the_readme(walk):
    missing = _content_pages() - set(walk.pages)
    assert not missing, f"pages missing from the site: {sorted(missing)}"
    assert walk.pages["index.html"].url == walk.base + "README.html"
    readme_title = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()[0].lstrip("# ").strip()
    assert _clean_heading(walk.pages["README.html"].title) == readme_title
    print(f"{len(walk.pages)} pages walked: {', '.join(sorted(walk.pages))}")


def test_every_page_loads_without_console_errors(walk):
    errors = {path: page.console_errors for path, page in walk.pages.items() if page.console_errors}
    assert not errors, json.dumps(errors, indent=1)
    print(f"{len(walk.ignored_console)} loads from other hosts refused on purpose (offline), e.g. MathJax and badges")


def test_every_internal_link_resolves(walk):
    broken = {url: status for url, status in walk.link_status.items() if status != 200}
    assert not broken, f"internal links that do not resolve: {broken}"
    missing_anchors = []
    for page in walk.pages.values():
        for link in page.links:
            target, _, anchor = link.partition("#")
            linked = walk.pages.get(target.removeprefix(walk.base))
            if anchor and linked is not None and urllib.parse.unquote(anchor) not in linked.ids:
                missing_anchors.append(f"{page.path} -> {link}")
    assert not missing_anchors, "links to anchors that do not exist:\n" + "\n".join(missing_anchors)
    links = sum(1 for page in walk.pages.values() for link in page.links if link.startswith(walk.base))
    print(f"{links} internal links checked, {len(walk.link_status)} distinct targets, all HTTP 200")


def test_every_image_on_the_site_has_loaded(walk):
    images = [(page.path, image) for page in walk.pages.values() for image in page.images]
    local = [(path, image) for path, image in images if image["src"].startswith(walk.base)]
    unloaded = [f"{path}: {image['src']}" for path, image in local if not image["width"] > 0]
    assert not unloaded, "images that did not load:\n" + "\n".join(unloaded)
    external = len(images) - len(local)
    print(f"{len(local)} images loaded (natural width > 0); {external} external badge images not fetched (offline)")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem[:2])
def test_notebook_page_shows_its_title_and_a_figure(walk, notebook):
    page = walk.pages[_page_html(notebook)]
    assert _clean_heading(page.title) == _notebook_title(notebook)
    assert sum(output["figures"] for output in page.outputs) >= 1, f"{page.path} shows no figure from its outputs"


def test_interactive_figures_show_their_static_version(walk):
    """Widget state is not stored: where a notebook displayed a widget, the page shows the static
    PNG and the widget's note in the same output, and no widget."""
    checked = 0
    for notebook in NOTEBOOKS:
        page = walk.pages[_page_html(notebook)]
        for note in _widget_notes(notebook):
            shown = [output for output in page.outputs if _note_key(note) in output["text"]]
            assert shown, f"{page.path}: the widget's note is missing"
            assert all(output["visible_figures"] >= 1 for output in shown), f"{page.path}: no figure beside {note!r}"
            checked += 1
    assert checked >= 1, "no notebook displays a widget: this test checks nothing"
    print(f"{checked} interactive figures shown as their static PNG")


def test_no_link_points_at_a_placeholder_or_unpublished_repository(walk):
    published = tomllib.loads((ROOT / "course.toml").read_text(encoding="utf-8"))["published"]
    repository = published["repository"].rstrip("/")
    links = {link for page in walk.pages.values() for link in page.links}
    placeholder = sorted(link for link in links if PLACEHOLDER_REPOSITORY.search(link))
    assert not placeholder, f"links to a placeholder or empty repository: {placeholder}"
    launch = sorted(link for link in links if link.startswith(LAUNCH_PREFIXES))
    if not repository:
        assert not launch, f"course.toml names no repository, yet the site links to Colab or Binder: {launch}"
    else:
        owner_repo = urllib.parse.urlparse(repository).path.strip("/")
        assert launch and all(owner_repo in link for link in launch), f"launch links not at {repository}: {launch}"


def test_citations_page_lists_every_notebook_reference_once(walk):
    page = (walk.html_dir.parent / "source" / "references.md").read_text(encoding="utf-8")
    entries = [line for line in page.splitlines() if line.startswith("- ")]
    cited = []
    for notebook in NOTEBOOKS:
        for cell in nbformat.read(notebook, as_version=4).cells:
            section = cell.source.partition("## References")[2].split("\n## ")[0] if cell.cell_type == "markdown" else ""
            cited += [line[2:] for line in section.splitlines() if line.startswith("- ")]
    # each work by its first author's surname and its year ("Tan", "(2019)"), or its first word
    works = {(re.match(r"[*\w-]+", item)[0].strip("*"), re.search(r"\(\d{4}\)|$", item)[0]) for item in cited}
    missing = sorted(w for w in works if not any(w[0] in entry and w[1] in entry for entry in entries))
    assert not missing, f"cited in a notebook, missing from the citations page: {missing}"
    assert len(entries) == len(set(entries)) and len(entries) < len(cited)  # duplicates merged
    print(f"{len(cited)} references in the notebooks, {len(entries)} entries on the citations page")


def _glossary_anchors() -> list[str]:
    """The anchor of every `## Term` heading of docs/glossary.md, as MyST makes it (GitHub style)."""
    from myst_parser.slugs import github_slugify

    text = (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8").split("\n## References\n")[0]
    return [github_slugify(line[3:].strip()) for line in text.splitlines() if line.startswith("## ")]


def test_glossary_page_keeps_every_term_anchor(walk):
    """The notebooks link `../docs/glossary.md#term` at first use: each such anchor is on the page,
    and the page is in the side bar (tests/test_glossary.py checks the page's own text)."""
    page = walk.pages["docs/glossary.html"]
    anchors = _glossary_anchors()
    missing = [anchor for anchor in anchors if anchor not in page.ids]
    assert not missing, f"glossary anchors missing from the built page: {missing}"
    side_bar = walk.pages["README.html"].links
    assert walk.base + "docs/glossary.html" in side_bar, "the side bar does not list the glossary"
    print(f"{len(anchors)} glossary anchors on docs/glossary.html")


def test_a_page_named_in_a_section_is_not_repeated_by_a_glob(tmp_path):
    from book.build_site import SiteError, read_layout

    def layout_with(words: str) -> Path:
        path = tmp_path / "site.toml"
        path.write_text(
            'title = "T"\nlanding = "README.md"\n'
            '[[section]]\ncaption = "Docs"\npages = ["docs/*.md"]\n'
            f'[[section]]\ncaption = "Words"\npages = [{words}]\n'
            '[references]\npage = "references.md"\ntitle = "R"\nintro = "R"\n'
            'sources = "notebooks/0[0-9]_*.ipynb"\nheading = "## References"\n'
        )
        return path

    docs, words = read_layout(layout_with('"docs/glossary.md"')).sections
    assert "docs/glossary.md" not in docs.pages and "docs/intervals.md" in docs.pages
    assert words.pages == ("docs/glossary.md",)
    with pytest.raises(SiteError, match="more than one place"):
        read_layout(layout_with('"docs/glossary.md", "docs/glossary.md"'))


def test_screenshots_show_a_rendered_page(walk):
    """Saved for a person to look at; a blank or unstyled capture (one flat colour) fails."""
    import cv2

    shot_notebooks = [nb for nb in NOTEBOOKS if nb.name[:2] in SCREENSHOT_NOTEBOOKS]
    expected = {"home.png"} | {f"{nb.stem}-{part}.png" for nb in shot_notebooks for part in ("top", "figure")}
    assert {shot.name for shot in walk.screenshots} == expected
    for shot in walk.screenshots:
        image = cv2.imread(str(shot), cv2.IMREAD_GRAYSCALE)
        assert image is not None and image.shape[1] == 1280 and image.std() > 10, f"{shot} looks blank"


def _mini_course(root: Path, repository: str) -> None:
    """A course of one page and one notebook, with links to repository files that are not pages."""
    shutil.copytree(ROOT / "book", root / "book", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tools", root / "tools", ignore=shutil.ignore_patterns("__pycache__"))  # publish reads course.toml
    (root / "notebooks").mkdir()
    (root / "book" / "site.toml").write_text(
        'title = "Mini"\nlanding = "README.md"\n'
        '[[section]]\ncaption = "Lessons"\npages = ["notebooks/01_a.ipynb", "references.md"]\n'
        '[references]\npage = "references.md"\ntitle = "References"\nintro = "Cited."\n'
        'sources = "notebooks/01_a.ipynb"\nheading = "## References"\n'
    )
    (root / "course.toml").write_text(f'[published]\nrepository = "{repository}"\nref = "v1"\n')
    (root / "covid_tutorial" / "data").mkdir(parents=True)
    (root / "covid_tutorial" / "data" / "registry.toml").write_text("")
    (root / "covid_tutorial" / "__init__.py").write_text('__version__ = "9.9.9"\n')  # the site shows it
    (root / "tasks.py").write_text("")
    (root / "README.md").write_text(
        "# Mini\n\nSee [the tasks](tasks.py), the [package](covid_tutorial/) and [lesson 01](notebooks/01_a.ipynb).\n"
    )
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [
        nbformat.v4.new_markdown_cell(
            "# Lesson A\n\nBack to [the README](../README.md); the [registry](../covid_tutorial/data/registry.toml).\n\n"
            "## References\n\n- Doe J (2020). A short title. *J*\n- Doe J (2020). A short title. *J* 1:2. doi:10/x\n"
        ),
        nbformat.v4.new_code_cell("1"),
    ]
    nbformat.write(notebook, root / "notebooks" / "01_a.ipynb")


@pytest.mark.parametrize(
    "repository", ["https://github.com/someone/covid_tutorial", ""], ids=["published", "unpublished"]
)
def test_links_to_repository_files_follow_course_toml(tmp_path, repository):
    """Published: links to repository files open them on the repository, and the notebook has its
    launch buttons. Unpublished: the same links are plain text, and nothing links to a repository."""
    _mini_course(tmp_path, repository)
    build = _build_site(tmp_path, tmp_path / "out")
    assert build.returncode == 0, build.stderr
    home = (tmp_path / "out" / "html" / "README.html").read_text(encoding="utf-8")
    lesson = (tmp_path / "out" / "html" / "notebooks" / "01_a.html").read_text(encoding="utf-8")
    hrefs = set(re.findall(r'href="([^"]+)"', home + lesson))
    assert {"notebooks/01_a.html", "../README.html"} <= hrefs  # pages link to pages
    files = {
        f"{repository}/blob/v1/tasks.py",
        f"{repository}/tree/v1/covid_tutorial",
        f"{repository}/blob/v1/covid_tutorial/data/registry.toml",
    }
    colab = "https://colab.research.google.com/github/someone/covid_tutorial/blob/v1/notebooks/01_a.ipynb"
    if repository:
        assert files | {colab} <= hrefs
    else:
        assert not [h for h in hrefs if re.search(r"github|colab|binder|\.py$|\.toml$", h)]
        assert "the tasks" in home and "registry" in lesson  # the text stays, without a link
    references = (tmp_path / "out" / "source" / "references.md").read_text(encoding="utf-8")
    assert references.count("Doe J (2020)") == 1 and "doi:10/x" in references  # one entry, its fullest variant


def test_build_reports_a_broken_link_and_fails(tmp_path):
    _mini_course(tmp_path, "")
    with (tmp_path / "README.md").open("a") as readme:
        readme.write("\nSee also [the missing page](docs/missing.md).\n")
    build = _build_site(tmp_path, tmp_path / "out")
    assert build.returncode == 1
    assert "docs/missing.md" in build.stderr and build.stderr.strip().splitlines()[-1].startswith("error: ")


def test_every_page_states_the_version_and_the_licences(walk):
    from tools.publish import course_version

    version = course_version(ROOT)
    footer = f"covid_tutorial {version}. Text, notebooks and figures: CC BY 4.0; code: MIT"
    missing = [path for path in sorted(_content_pages()) if footer not in (walk.html_dir / path).read_text(encoding="utf-8")]
    assert not missing, f"pages without the footer of version {version} and the licences: {missing}"
    assert f"({version})" in (walk.html_dir / "README.html").read_text(encoding="utf-8"), "the site title carries the version"
    assert "LICENSE-CONTENT.html" in walk.pages and "CHANGELOG.html" in walk.pages


def _output_alt_texts(notebook: Path) -> list[str]:
    """The alternative text of each image output of a notebook, in order (empty if it has none)."""
    return [
        output.get("metadata", {}).get(mime, {}).get("alt", "")
        for cell in nbformat.read(notebook, as_version=4).cells
        if cell.cell_type == "code"
        for output in cell.outputs
        for mime in output.get("data", {})
        if mime in ("image/png", "image/jpeg")
    ]


def test_every_figure_on_the_site_has_alternative_text_generated_with_it(walk):
    """Each notebook figure carries, as its alt, the description its notebook stored with it
    (covid_tutorial.figures.describe_figure, through start_lesson); no image of a page's content
    has an empty alt or a file name for one."""
    figures = 0
    for notebook in NOTEBOOKS:
        page = walk.pages[_page_html(notebook)]
        shown = [image["alt"] for image in page.images if image["output"]]
        stored = _output_alt_texts(notebook)
        assert all(stored), f"{notebook.name}: a figure output without alt text; re-execute it (python3 tasks.py notebooks)"
        assert sorted(shown) == sorted(stored), f"{page.path}: the page's figures do not carry their notebook's alt texts"
        figures += len(shown)
    bad = [
        f"{page.path}: {image['src'].rsplit('/', 1)[-1]} alt={image['alt']!r}"
        for page in walk.pages.values()
        for image in page.images
        if image["in_main"]
        and (not (image["alt"] or "").strip() or re.search(r"\.(png|jpe?g|svg|gif)$", image["alt"], re.I))
    ]
    assert not bad, "images without alternative text, or with a file name for one:\n" + "\n".join(bad)
    assert figures >= len(NOTEBOOKS)
    print(f"{figures} notebook figures, each with its generated alternative text")


def _audit_counts(walk) -> dict[str, int]:
    counts = {impact: 0 for impact in AUDIT_IMPACTS}
    for page in walk.pages.values():
        for violation in page.violations:
            counts[violation["impact"]] += len(violation["nodes"])
    return counts


def test_the_accessibility_audit_finds_no_serious_or_critical_violation_on_any_page(walk):
    """axe-core in Chromium, on every page of the site: nothing critical or serious."""
    found = [
        f"{page.path}: {v['rule']} ({v['impact']}, {len(v['nodes'])} elements): {v['help']}; e.g. {v['nodes'][:1]}"
        for page in walk.pages.values()
        for v in page.violations
        if v["impact"] in ("critical", "serious")
    ]
    assert not found, "\n".join(found)
    rules = sorted({f"{v['rule']} ({v['impact']})" for page in walk.pages.values() for v in page.violations})
    print(f"axe-core on {len(walk.pages)} pages: {_audit_counts(walk)}; rules still flagged: {rules}")


def _audit_summary(walk) -> str:
    counts = _audit_counts(walk)
    figures = sum(1 for page in walk.pages.values() for image in page.images if image["output"])
    rules = {}
    for page in walk.pages.values():
        for v in page.violations:
            rules.setdefault((v["impact"], v["rule"]), set()).add(page.path)
    named = "; ".join(f"{rule} ({impact}, {len(pages)} pages)" for (impact, rule), pages in sorted(rules.items()))
    return (
        "| pages audited | notebook figures, each with generated alt text | critical | serious | moderate | minor |\n"
        "|---:|---:|---:|---:|---:|---:|\n"
        f"| {len(walk.pages)} | {figures} | {counts['critical']} | {counts['serious']} | {counts['moderate']} | {counts['minor']} |\n"
        f"\nRules still flagged: {named or 'none'}.\n"
    )


def test_the_teachers_page_summarises_this_audit(walk):
    """docs/teachers.md states the audit's figures (elements flagged, by impact) as this walk finds them."""
    block = AUDIT_BLOCK.search(TEACHERS.read_text(encoding="utf-8"))
    assert block, "docs/teachers.md has no <!-- accessibility:start --> ... <!-- accessibility:end --> block"
    expected = _audit_summary(walk)
    assert block.group(1) == expected, f"docs/teachers.md: replace the accessibility block's text with:\n{expected}"


def test_the_keyboard_reaches_the_skip_link_first_then_named_visible_controls(walk):
    """Tab from the top of the home page: the first stop is the theme's skip link, which leads to the
    main content; every stop is visible when focused and has a name a screen reader can say."""
    first, *rest = walk.tab_stops
    assert first["tag"] == "a" and first["href"] == "#main-content" and "skip" in first["name"].lower(), first
    assert walk.skip_target == "#main-content"
    unnamed = [stop for stop in walk.tab_stops if not stop["name"] or not stop["visible"]]
    assert not unnamed, f"focused elements without a name or not visible: {unnamed}"
    stuck = [a for a, b in zip(walk.tab_stops, rest) if a == b]
    assert not stuck, f"the Tab key did not move on from {stuck}"
    print("tab stops: " + " | ".join(stop["name"] for stop in walk.tab_stops))
