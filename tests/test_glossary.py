"""docs/glossary.md, the page of terms the notebooks link to at first use: every term the course
needs is there, under an anchor the site and GitHub both make; the terms are in order; each says
truthfully in which notebook it is first met; and every link into the glossary resolves.

Reads files only (no site build, no browser): the built page's anchors are checked by
tests/test_site.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GLOSSARY = ROOT / "docs" / "glossary.md"
NOTEBOOKS = sorted(ROOT.glob("notebooks/[0-9][0-9]_*.ipynb"))
END_OF_TERMS = "## References"  # the page's last section: the works its entries cite

# Every entry of the glossary, by anchor, with what its term looks like in a notebook's text
# (case-insensitive): the pattern that finds where a learner first meets it. An entry added to
# the glossary needs its pattern here. The first group of anchors is the list the course asked for.
REQUIRED = {
    "accuracy": r"\baccurac(y|ies)\b",
    "sensitivity": r"\bsensitivit(y|ies)\b|\brecall\b",
    "specificity": r"\bspecificit(y|ies)\b",
    "precision": r"(?<!mixed )\bprecision\b(?![- ]recall)|\bPPV\b|positive predictive",
    "negative-predictive-value": r"\bNPV\b|negative predictive",
    "f1-score": r"\bF1\b",
    "macro-average": r"\bmacro\b",
    "confusion-matrix": r"confusion (matrix|matrices)",
    "roc-curve": r"\bROC\b",
    "roc-auc": r"\bAUC\b",
    "precision-recall-curve": r"precision[- –]recall",
    "calibration": r"\bcalibrat",
    "expected-calibration-error": r"\bECE\b|expected calibration error",
    "reliability-diagram": r"reliability diagram",
    "logit": r"\blogits?\b",
    "softmax": r"\bsoftmax",
    "cross-entropy": r"cross[- ]entropy",
    "label-smoothing": r"label[ _]smoothing",
    "confidence-interval": r"confidence intervals?",
    "bootstrap": r"\bbootstrap",
    "patient-bootstrap": r"patient bootstrap|bootstrap\w*[^.]{0,40}\bpatients|resampl\w*[^.]{0,20}\bpatients",
    "wilson-interval": r"\bWilson\b",
    "corrected-resampled-t-test": r"corrected resampled|\bNadeau\b",
    "holm-correction": r"\bHolm\b",
    "p-value": r"\bp-values?\b|\bp value",
    "k-fold-cross-validation": r"\bk-fold\b|\b\d+-fold\b|cross-validation",
    "patient-wise-split": r"patient-wise|split(s|ting)? \**by patient|patient-grouped",
    "data-leakage": r"\bleak",
    "transfer-learning": r"transfer[- ]learning",
    "fine-tuning": r"fine[- ]?tun",
    "imagenet-weights": r"\bImageNet\b",
    "batch-normalization": r"batch[- ]?normali[sz]ation|\bBatchNorm\b",
    "relu": r"\bReLU\b",
    "swish": r"\bswish\b|\bSiLU\b",
    "depthwise-convolution": r"\bdepthwise\b",
    "mbconv": r"\bMBConv\b",
    "squeeze-and-excitation": r"squeeze[- ]and[- ]excitation",
    "compound-scaling": r"compound scaling",
    "receptive-field": r"receptive fields?",
    "padding": r"\bpadding\b",
    "stride": r"\bstrides?\b",
    "residual-connection": r"residual (connection|block|network|learning)s?|identity shortcut",
    "grad-cam": r"\bGrad-?CAM(?!\+\+)",
    "grad-cam-plus-plus": r"\bGrad-?CAM\+\+",
    "score-cam": r"\bScore-?CAM\b",
    "saliency-map": r"\bsaliency\b",
    "smoothgrad": r"\bSmoothGrad\b",
    "pointing-game": r"pointing game",
    "shortcut-learning": r"shortcut learning",
    "pareto-front": r"\bPareto\b",
    "macs": r"\bMACs?\b|multiply-accumulate",
    "latency": r"\blatenc",
    "mixed-precision": r"mixed[- _]precision|mixed_float16",
    "xla": r"\bXLA\b",
    "phantom": r"\bphantoms?\b",
    "profile": r"\bprofiles?\b",
}
FURTHER = {
    "activation-maximisation": r"activation maximi[sz]ation",
    "backbone": r"\bbackbones?\b",
    "class-weights": r"\bclass weights?\b",
    "convolution": r"\bconvolution",
    "data-augmentation": r"\baugment",
    "early-stopping": r"early[ -]?stopping",
    "epoch": r"\bepochs?\b",
    "feature-map": r"feature maps?",
    "global-average-pooling": r"global average pooling",
    "head": r"\bheads?\b",
    "operating-threshold": r"operating (threshold|point)|decision threshold",
    "pooling": r"\bpooling\b",
    "prevalence": r"\bprevalence\b",
    "sanity-checks": r"sanity checks?",
    "decision-curve": r"decision curves?",
    "model-card": r"model cards?",
    "net-benefit": r"net benefit",
    "risk-coverage-curve": r"risk[–-]coverage",
    "subgroup-audit": r"subgroup audits?",
    "temperature-scaling": r"temperature scaling",
}
TERMS = REQUIRED | FURTHER
# Terms a notebook shows only inside a figure, where no text pattern can find them: anchor ->
# (the notebook, the `covid_tutorial.teaching.diagrams` function that draws the figure and its
# keyword arguments). Once a notebook's text names the term, its entry leaves this list.
SHOWN_ONLY_IN_FIGURES: dict = {}  # anchor -> (notebook, drawing function, its arguments), for a term no text names

# Where text is written by a tool (the launch badges, the measured budget table), not by a person.
GENERATED = re.compile(r"<!-- (launch|budget):start -->.*?<!-- \1:end -->", re.S)
LINK_TARGET = re.compile(r"\]\([^)]*\)")
FIRST_MET = re.compile(
    r"^First met in \[notebook (\d\d)\]\(\.\./notebooks/(\d\d_\w+\.ipynb)\)"
    r"(?:; explained in \[notebook (\d\d)\]\(\.\./notebooks/(\d\d_\w+\.ipynb)\))?\.$"
)
SEE = re.compile(r"\bsee \[[^\]]+\]\(#([\w-]+)\)\.$", re.I)


def slug(title: str) -> str:
    """The anchor of a heading, GitHub style (MyST's `github_slugify`, which the site uses)."""
    return re.sub(r"[^\w\- ]", "", title.lower().replace(" ", "-"))


def sort_key(title: str) -> str:
    return re.sub(r"[^0-9a-z]", "", title.lower())


@dataclass(frozen=True)
class Entry:
    title: str
    anchor: str
    body: tuple[str, ...]  # its non-empty lines

    @property
    def see(self) -> str | None:
        """The anchor a one-line cross-reference entry ("NPV: see ...") points to."""
        match = SEE.search(self.body[0]) if len(self.body) == 1 else None
        return match[1] if match else None

    @property
    def first_met(self) -> list[re.Match]:
        return [m for line in self.body if (m := FIRST_MET.match(line))]


@cache
def entries() -> tuple[Entry, ...]:
    text = GLOSSARY.read_text(encoding="utf-8").split(f"\n{END_OF_TERMS}\n")[0]
    found = []
    for block in re.split(r"^## ", text, flags=re.M)[1:]:
        title, _, body = block.partition("\n")
        lines = tuple(line for line in body.splitlines() if line.strip())
        found.append(Entry(title.strip(), slug(title.strip()), lines))
    return tuple(found)


def main_entries() -> dict[str, Entry]:
    return {entry.anchor: entry for entry in entries() if entry.see is None}


@cache
def markdown_cells() -> tuple[tuple[str, int, str], ...]:
    """(notebook number, cell index, text) of every markdown cell, in course order, without the
    generated header blocks and without link targets (a glossary link names its anchor)."""
    cells = []
    for notebook in NOTEBOOKS:
        for index, cell in enumerate(json.loads(notebook.read_text(encoding="utf-8"))["cells"]):
            if cell["cell_type"] == "markdown":
                source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                cells.append((notebook.name[:2], index, LINK_TARGET.sub("]", GENERATED.sub("", source))))
    return tuple(cells)


def first_mention(anchor: str) -> tuple[str, int] | None:
    """The notebook number and markdown cell index where the term first appears, or None."""
    pattern = re.compile(TERMS[anchor], re.I)
    return next(((number, index) for number, index, text in markdown_cells() if pattern.search(text)), None)


def test_glossary_has_an_entry_for_every_required_term():
    missing = sorted(set(REQUIRED) - set(main_entries()))
    assert not missing, f"docs/glossary.md has no entry (a '## Term' heading) for: {missing}"
    unmatched = sorted(set(main_entries()) - set(TERMS))
    assert not unmatched, f"entries without a search pattern in tests/test_glossary.py TERMS: {unmatched}"
    print(f"{len(main_entries())} terms, {len(entries()) - len(main_entries())} cross-references")


def test_anchors_are_unique_and_the_ones_the_site_makes():
    from myst_parser.slugs import github_slugify  # what `myst_heading_anchors` uses on the site

    anchors = [entry.anchor for entry in entries()]
    repeated = sorted({a for a in anchors if anchors.count(a) > 1})
    assert not repeated, f"two headings make the same anchor (the second would get '-1'): {repeated}"
    differ = [(e.title, e.anchor, github_slugify(e.title)) for e in entries() if github_slugify(e.title) != e.anchor]
    assert not differ, f"anchors differ from the site's: {differ}"
    unclean = [e.title for e in entries() if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", e.anchor)]
    assert not unclean, f"headings whose anchor has doubled, leading or trailing hyphens: {unclean}"


def test_terms_are_in_alphabetical_order():
    titles = [entry.title for entry in entries()]
    expected = sorted(titles, key=sort_key)
    misplaced = [(got, want) for got, want in zip(titles, expected) if got != want]
    assert not misplaced, f"out of order (letter by letter, case and punctuation ignored): {misplaced[:5]}"


def test_every_term_says_where_it_is_first_met_and_links_a_notebook():
    problems = []
    for anchor, entry in main_entries().items():
        found = entry.first_met
        if len(found) != 1:
            problems.append(f"{anchor}: needs one line 'First met in [notebook NN](../notebooks/NN_….ipynb).'")
            continue
        first, first_file, explained, explained_file = found[0].groups()
        for number, file in ((first, first_file), (explained, explained_file)):
            if number is None:
                continue
            if not (ROOT / "notebooks" / file).exists() or not file.startswith(number):
                problems.append(f"{anchor}: [notebook {number}] links to notebooks/{file}, which is not that notebook")
        if explained is not None and explained <= first:
            problems.append(f"{anchor}: 'explained in' names notebook {explained}, not after where it is first met")
    assert not problems, "\n".join(problems)


def test_first_met_in_is_the_first_notebook_whose_text_names_the_term():
    wrong = []
    for anchor, entry in main_entries().items():
        claimed = entry.first_met[0][1]
        mention = first_mention(anchor)
        if anchor in SHOWN_ONLY_IN_FIGURES:
            notebook, drawn_by, _ = SHOWN_ONLY_IN_FIGURES[anchor]
            assert mention is None, (
                f"{anchor}: notebook {mention[0]} (markdown cell {mention[1]}) now names the term; "
                "remove it from SHOWN_ONLY_IN_FIGURES and check its 'First met in'"
            )
            if claimed != notebook:
                wrong.append(f"{anchor}: says {claimed}, but notebook {notebook} shows it (its figure by {drawn_by})")
        elif mention is None:
            wrong.append(f"{anchor}: no notebook's text matches {TERMS[anchor]!r}")
        elif mention[0] != claimed:
            number, cell = mention
            wrong.append(f"{anchor}: says notebook {claimed}, first named in notebook {number} (markdown cell {cell})")
    assert not wrong, "\n".join(wrong)


def test_cross_references_and_links_within_the_page_resolve():
    anchors = {entry.anchor for entry in entries()}
    main = main_entries()
    dangling = [f"{e.title} -> #{e.see}" for e in entries() if e.see is not None and e.see not in main]
    assert not dangling, f"cross-references to no term: {dangling}"
    text = GLOSSARY.read_text(encoding="utf-8")
    local = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert local <= anchors, f"links to anchors this page does not have: {sorted(local - anchors)}"
    files = {target for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text)}
    missing = sorted(f for f in files if not (GLOSSARY.parent / f).exists())
    assert not missing, f"links to files that do not exist: {missing}"


def test_links_into_the_glossary_from_notebooks_and_pages_resolve():
    """What a notebook editor adds at first use: `[Holm correction](../docs/glossary.md#holm-correction)`."""
    anchors = {entry.anchor for entry in entries()}
    pages = [*ROOT.glob("docs/*.md"), ROOT / "README.md", *ROOT.glob("*/README.md")]
    texts = [(p.relative_to(ROOT).as_posix(), p.read_text(encoding="utf-8")) for p in pages if p != GLOSSARY]
    for notebook in NOTEBOOKS:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        texts += [(notebook.name, "".join(c["source"])) for c in cells if c["cell_type"] == "markdown"]
    broken, checked = [], 0
    for name, text in texts:
        for anchor in re.findall(r"glossary\.md#([^)\s\"'>]+)", text):
            checked += 1
            if anchor not in anchors:
                broken.append(f"{name}: glossary.md#{anchor}")
    assert not broken, "links to glossary anchors that do not exist:\n" + "\n".join(broken)
    print(f"{checked} links into the glossary checked")


def test_every_work_an_entry_cites_is_in_its_references():
    text = GLOSSARY.read_text(encoding="utf-8")
    terms, _, references = text.partition(f"\n{END_OF_TERMS}\n")
    listed = {(m[1], m[2]) for m in re.finditer(r"^- ([^\s,]+) .*?\((\d{4})\)", references, re.M)}
    cited = set(re.findall(r"([A-Z][\w-]+)(?: et al\.| (?:&|and) [A-Z][\w-]+)? \(?(\d{4})\b", terms))
    missing = sorted(c for c in cited if c not in listed)
    assert not missing, f"cited in an entry, missing from '{END_OF_TERMS}': {missing}"
    assert cited, "no citation found: the pattern above is broken"


def test_glossary_is_in_the_site_side_bar_once():
    from book.build_site import read_layout

    layout = read_layout()
    placed = [section.caption for section in layout.sections if "docs/glossary.md" in section.pages]
    assert len(placed) == 1, f"docs/glossary.md is in the side bar under {placed}; it belongs in one section"
    assert list(layout.pages).count("docs/glossary.md") == 1


if __name__ == "__main__":  # the first mention of every term: the table for linking at first use
    for anchor in sorted(TERMS, key=lambda a: sort_key(a)):
        mention = first_mention(anchor)
        where = f"{mention[0]} cell {mention[1]}" if mention else "not in the text"
        print(f"{anchor:28} {where:22} ../docs/glossary.md#{anchor}")
