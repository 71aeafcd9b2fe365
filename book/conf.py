"""Sphinx configuration of the course site; `python -m book.build_site` runs Sphinx with it.

The pages and their order come from `book/site.toml`, where the course is published from
`course.toml`. Notebooks are rendered from their committed outputs (MyST-NB, no execution).
"""

import base64
import hashlib
import os
from pathlib import Path

from docutils import nodes
from sphinx import addnodes

from book.build_site import ROOT, read_layout, read_published
from tools.publish import course_version

LAYOUT = read_layout()
PUBLISHED = read_published()

project = LAYOUT.title
version = release = course_version(ROOT)  # the package's, as in CITATION.cff and the notebooks
html_title = f"{LAYOUT.title} ({version})"
language = "en"
root_doc = str(Path(LAYOUT.landing).with_suffix("").as_posix())
html_show_copyright = False
exclude_patterns = ["**/.ipynb_checkpoints"]

extensions = ["myst_nb"]  # brings myst_parser along
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 4  # links such as comparison.md#several-gpus-in-one-machine

# Notebooks as committed: no kernel at build time. Widget state is not stored, so a widget
# output shows its text (the note saying how to get it back) after the static figure.
nb_execution_mode = "off"
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]

html_theme = "sphinx_book_theme"
templates_path = ["_templates"]  # the search button named by what it shows (axe-core's audit)
html_static_path = ["_static"]
html_css_files = ["accessible.css"]  # outputs' own colours at the page's contrast
html_favicon = "_static/favicon.svg"  # without one, browsers ask for /favicon.ico and get a 404
html_context = {"default_mode": "auto"}  # unset, the theme logs "Got invalid theme mode" on a first visit
html_theme_options = {
    "use_download_button": True,
    "use_fullscreen_button": False,
    # every page's footer: the version and the licences (LICENSE-CONTENT.md says what each covers)
    "extra_footer": (
        f"<p>covid_tutorial {version}. Text, notebooks and figures: CC BY 4.0; code: MIT "
        "(LICENSE-CONTENT.md and LICENSE in the repository). Images of real collections keep their "
        "publishers' licences, which the course's do not cover. Teaching material only: not for clinical use.</p>"
    ),
}
if PUBLISHED.repository:  # the repository button and the Colab and Binder launch buttons
    html_theme_options |= {
        "repository_url": PUBLISHED.repository,
        "repository_branch": PUBLISHED.ref,
        "path_to_docs": "",  # the source tree has the repository's layout
        "use_repository_button": True,
        "launch_buttons": {
            "binderhub_url": "https://mybinder.org",
            "colab_url": "https://colab.research.google.com",
            "notebook_interface": "jupyterlab",
        },
    }


def _table_of_contents(app, docname, source):
    """The side bar: a hidden toctree per section of site.toml, added to the home page."""
    if docname != root_doc:
        return
    for section in LAYOUT.sections:
        entries = "\n".join(str(Path(page).with_suffix("").as_posix()) for page in section.pages)
        source[0] += f"\n\n```{{toctree}}\n:hidden:\n:caption: {section.caption}\n\n{entries}\n```\n"


def _repository_file_url(path: str, anchor: str) -> str:
    kind = "tree" if (ROOT / path).is_dir() else "blob"
    return f"{PUBLISHED.repository}/{kind}/{PUBLISHED.ref}/{path}" + (f"#{anchor}" if anchor else "")


def _link_repository_files(app, doctree):
    """A link to a repository file that is not a page (tasks.py, covid_tutorial/data/registry.toml)
    points at the file in the published repository, or, unpublished, becomes plain text.
    A link to a path that exists nowhere is left to MyST, which warns (and -W fails the build)."""
    docdir = Path(app.env.docname).parent
    for node in list(doctree.findall(lambda n: isinstance(n, (addnodes.pending_xref, addnodes.download_reference)))):
        if node.get("reftype") != "myst" or node.get("refdomain") not in (None, ""):
            continue
        target, _, anchor = node["reftarget"].partition("#")
        if not target or "://" in target or target.startswith("mailto:"):
            continue
        path = os.path.normpath(docdir / target)
        if path.startswith("..") or not (ROOT / path).exists():
            continue
        content = node.children or [nodes.literal(target, target)]
        if PUBLISHED.repository:
            replacement = nodes.reference("", "", *content, refuri=_repository_file_url(Path(path).as_posix(), anchor))
        else:
            replacement = nodes.inline("", "", *content, classes=["repository-file"])
        node.replace_self(replacement)


def _output_alt_texts(notebook: Path) -> dict[str, str]:
    """Each image output's alternative text (its metadata's `alt`, written with the figure by
    covid_tutorial.lesson.start_lesson), by the SHA-256 of the image: MyST-NB names the
    image's file by that hash, and reads no `alt` from an output's metadata."""
    import nbformat

    texts = {}
    for cell in nbformat.read(notebook, as_version=4).cells:
        for output in cell.get("outputs", []):
            for mime, data in output.get("data", {}).items():
                alt = output.get("metadata", {}).get(mime, {}).get("alt")
                if mime.startswith("image/") and mime != "image/svg+xml" and alt:
                    texts[hashlib.sha256(base64.b64decode(data)).hexdigest()] = alt
    return texts


def _alt_text_from_outputs(app, doctree):
    """Give each notebook figure on the site its alternative text from the notebook."""
    source = Path(app.env.doc2path(app.env.docname))
    if source.suffix != ".ipynb":
        return
    texts = _output_alt_texts(source)
    for image in doctree.findall(nodes.image):
        alt = texts.get(Path(image["uri"]).stem)
        if alt:
            image["alt"] = alt


def setup(app):
    app.connect("source-read", _table_of_contents)
    app.connect("doctree-read", _link_repository_files)
    app.connect("doctree-read", _alt_text_from_outputs)
