"""A model card and a reporting checklist for every RUN, written from the RUN folder alone.

:func:`write_model_card` reads what ``covid-tutorial train`` and ``evaluate`` wrote
(config.json, splits.csv, calibration.json, confounders.json, and each evaluation's
metrics.json and decisions.json) and writes, into the RUN folder:

- ``model_card.md`` and its machine-readable twin ``model_card.json``, in the sections of
  Mitchell et al. (2019): model details, intended use, training and evaluation data, metrics
  with their intervals, calibration, decisions, subgroups and other sources, known shortcuts,
  caveats;
- ``reporting_checklist.md`` and ``.json``: the items of CLAIM 2024 and TRIPOD+AI
  (``reporting.toml``), each answered from the RUN with the file that shows it, or left open
  for the author. Nothing is invented: what a RUN cannot know (ethics approval, the
  reference standard's readers, funding) stays open.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import tomllib
from functools import cache
from pathlib import Path

import pandas as pd

from . import NOT_FOR_CLINICAL_USE, __version__
from .data import STAMP_FILENAME, UnknownDatasetError, get_dataset_info
from .data.hospitals import MARK_FILENAME as TWO_HOSPITALS_MARK
from .errors import RunError
from .runs import (
    CALIBRATION_FILE,
    CONFIG_FILE,
    CONFOUNDERS_FILE,
    SPLITS_FILE,
    RunConfig,
    read_calibration,
    read_confounder_check,
    read_run_config,
    read_splits,
)
from .system import write_json

__all__ = ["REPORTING_FILE", "Answer", "EvaluationFound", "ModelCard", "find_evaluations", "model_card",
           "write_model_card"]

REPORTING_FILE = Path(__file__).with_name("reporting.toml")
OPEN = "open: for the author"
INTENDED_USE = (
    "Teaching: a network trained in a course on deep learning for chest images, to learn how such models are "
    "built, scored and questioned. " + NOT_FOR_CLINICAL_USE
)


@cache
def _guidelines() -> dict:
    return tomllib.loads(REPORTING_FILE.read_text(encoding="utf-8"))


@dataclasses.dataclass(frozen=True)
class Answer:
    """What a RUN says about one fact, and the file that shows it."""

    text: str
    evidence: str


@dataclasses.dataclass(frozen=True)
class EvaluationFound:
    """One evaluation of the RUN: its folder, what it scored, and its two result files."""

    folder: Path
    data: str
    scored: str
    metrics: dict
    decisions: dict | None

    @property
    def internal(self) -> bool:
        return self.scored == "the RUN's test split" or self.scored.startswith("held-out")

    def score(self, name: str, metric: str) -> tuple[float, float, float] | None:
        cell = self.metrics.get("metrics", {}).get(name, {}).get(metric)
        if not cell or cell.get("value") is None:
            return None
        return cell["value"], cell["ci_low"], cell["ci_high"]


def find_evaluations(run: Path) -> list[EvaluationFound]:
    """The RUN's own evaluation and those in its sub-folders (``evaluate --out RUN/NAME``)."""
    found = []
    for path in sorted([run / "metrics.json", *run.glob("*/metrics.json")]):
        if not path.is_file():
            continue
        metrics = json.loads(path.read_text(encoding="utf-8"))
        decisions_path = path.with_name("decisions.json")
        decisions = json.loads(decisions_path.read_text(encoding="utf-8")) if decisions_path.is_file() else None
        found.append(EvaluationFound(path.parent, str(metrics.get("data", "?")), str(metrics.get("scored", "?")),
                                     metrics, decisions))
    return found


def _interval(cell) -> str:
    return "not defined on these data" if cell is None else f"{cell[0]:.3f} [{cell[1]:.3f}, {cell[2]:.3f}]"


def _relative(run: Path, path: Path) -> str:
    try:
        return path.relative_to(run).as_posix()
    except ValueError:
        return str(path)


@dataclasses.dataclass
class ModelCard:
    """Everything the card and the checklist say, gathered from one RUN folder."""

    run: Path
    config: RunConfig
    splits: pd.DataFrame
    evaluations: list[EvaluationFound]
    calibration: object | None
    confounders: dict | None
    written: str

    # -------------------------------------------------------------- facts

    @property
    def positive(self) -> str:
        return "COVID-19" if "COVID-19" in self.config.class_names else self.config.class_names[0]

    def counts(self) -> pd.DataFrame:
        """Patients and images per split and class."""
        table = self.splits.groupby(["split", "label"])["patient_id"].agg(patients="nunique", images="size")
        return table.reset_index()

    def patients_in_two_splits(self) -> int:
        return int((self.splits.groupby("patient_id")["split"].nunique() > 1).sum())

    def facts(self) -> dict[str, Answer]:
        """Each fact the RUN can state (the keys of reporting.toml's ``evidence``); absent keys stay open."""
        c, t = self.config, self.config.training
        classes = ", ".join(c.class_names)
        split_counts = self.counts().groupby("split")[["patients", "images"]].sum()
        split_text = "; ".join(f"{s}: {r.patients} patients, {r.images} images" for s, r in split_counts.iterrows())
        facts = {
            "intended_use": Answer(INTENDED_USE, "the course's statement (covid_tutorial)"),
            "data_sources": Answer(self._source_text(), CONFIG_FILE),
            "preprocessing": Answer(f"{c.resize}; {c.image_size} px; input {c.input}; {c.preprocessing}", CONFIG_FILE),
            "label_source": Answer(self._label_text(), f"{CONFIG_FILE}, {SPLITS_FILE}"),
            "partitions": Answer(f"{split_text}; assigned by patient, with a fixed seed ({t.seed})", SPLITS_FILE),
            "model": Answer(
                f"{c.backbone} as one functional graph, a new classification head with {len(c.class_names)} "
                f"outputs ({classes}), input {c.image_size} x {c.image_size} px; trainable parameters: "
                + ", ".join(f"{n:,} ({stage})" for stage, n in (c.trainable_parameters or {}).items()),
                f"{CONFIG_FILE}, model.keras"),
            "software": Answer(", ".join(f"{name} {version}" for name, version in c.versions.items()), CONFIG_FILE),
            "initialisation": Answer(f"{'ImageNet weights' if t.weights else 'random weights'} for the backbone, "
                                     f"seed {t.seed}", CONFIG_FILE),
            "training": Answer(
                (f"two stages: {t.head_epochs} epochs with the backbone frozen, then {t.fine_tune_epochs} with its "
                 f"top layers unfrozen at a tenth of the learning rate" if t.two_stages else
                 f"one stage of {t.head_epochs} epochs") +
                f"; Adam, learning rate {t.learning_rate}, batch {t.batch_size}, class weights; {c.epochs_trained} "
                "epochs run (early stopping on the validation loss)", f"{CONFIG_FILE}, history.csv"),
            "model_selection": Answer("the weights of the epoch with the lowest validation loss (early stopping "
                                      "restores them)", "history.csv"),
            "ensembling": Answer("none: one network", CONFIG_FILE),
            "predictors": Answer(f"the image alone: its pixels, resized to {c.image_size} px; no clinical variables",
                                 CONFIG_FILE),
            "class_imbalance": Answer("class weights inversely proportional to each class's training images"
                                      + ("; probabilities recalibrated afterwards by temperature scaling"
                                         if self.calibration is not None else ""), CONFIG_FILE),
            "model_output": Answer(
                f"a probability per class ({classes}) from a softmax"
                + (f", divided in the log domain by a temperature of {self.calibration.temperature:.3f}"
                   if self.calibration is not None else "")
                + "; the decision is the most probable class", f"{CONFIG_FILE}" +
                (f", {CALIBRATION_FILE}" if self.calibration is not None else "")),
            "prediction_code": Answer(f"covid-tutorial predict {self.run.name} IMAGES (covid_tutorial {__version__}); "
                                      "the preprocessing is inside model.keras", "model.keras"),
            "availability": Answer(f"trained model: model.keras in the RUN folder; code: covid_tutorial "
                                   f"{c.versions.get('covid_tutorial', __version__)}", "model.keras"),
            "counts": Answer(split_text + " (no sample size was planned: the data at hand were used)", SPLITS_FILE),
        }
        if self.patients_in_two_splits() == 0:
            facts["partition_level"] = Answer("patient: no patient has images in two partitions (checked)", SPLITS_FILE)
        demographics = self._demographics()
        if demographics:
            facts["demographics"] = Answer(demographics, SPLITS_FILE)
        internal = [e for e in self.evaluations if e.internal]
        external = [e for e in self.evaluations if not e.internal]
        if self.evaluations:
            facts["evaluation_measures"] = Answer(
                "per class and macro: accuracy, sensitivity, specificity, precision, F1, ROC AUC; calibration (ECE, "
                "reliability); net benefit across threshold probabilities (decision curve); accuracy and sensitivity "
                "when the model refers its least confident cases (risk-coverage)", "metrics.json, decisions.json")
            n_bootstrap = self.evaluations[0].metrics.get("n_bootstrap", "?")
            facts["uncertainty"] = Answer(f"95% percentile bootstrap intervals over patients ({n_bootstrap} rounds); "
                                          "Wilson intervals where every round gives the same value", "metrics.json")
        if internal:
            e = internal[0]
            facts["internal"] = Answer(f"{e.scored}: macro F1 {_interval(e.score('macro', 'f1'))}",
                                       _relative(self.run, e.folder / "metrics.json"))
            facts["metrics"] = Answer(self._metrics_text(e), _relative(self.run, e.folder / "metrics.json"))
            facts["diagnostic"] = Answer(
                f"{self.positive}: sensitivity {_interval(e.score(self.positive, 'sensitivity'))}, specificity "
                f"{_interval(e.score(self.positive, 'specificity'))}", _relative(self.run, e.folder / "metrics.json"))
            wrong = sum(sum(row) - row[i] for i, row in enumerate(e.metrics.get("confusion_matrix", [])))
            facts["failure_analysis"] = Answer(
                f"{wrong} of {e.metrics.get('n_images', '?')} images misclassified; each listed with its "
                "probabilities in predictions.csv and counted in the confusion matrix (no reading of the errors yet)",
                _relative(self.run, e.folder / "predictions.csv"))
        if external:
            facts["external"] = Answer("; ".join(f"{e.data}: macro F1 {_interval(e.score('macro', 'f1'))}"
                                                 for e in external),
                                       ", ".join(_relative(self.run, e.folder / "metrics.json") for e in external))
        audits = [(e, a) for e in self.evaluations if e.decisions for a in e.decisions.get("subgroups", [])]
        if audits or external:
            facts["robustness"] = Answer(
                "; ".join([a["summary"] for _, a in audits] +
                          [f"on other data ({e.data}): macro F1 {_interval(e.score('macro', 'f1'))}" for e in external]),
                ", ".join(sorted({_relative(self.run, e.folder / "decisions.json") for e, _ in audits} |
                                 {_relative(self.run, e.folder / "metrics.json") for e in external})))
        if self.calibration is not None:
            change = next((e.decisions["calibration"] for e in self.evaluations
                           if e.decisions and e.decisions.get("calibration")), None)
            facts["calibration"] = Answer(str(self.calibration) + (f" On the evaluation: {change['summary']}"
                                                                   if change else ""), CALIBRATION_FILE)
        return facts

    def _source_text(self) -> str:
        c = self.config
        if c.collection:
            try:
                entry = get_dataset_info(c.collection)
            except UnknownDatasetError:
                return f"the collection {c.collection!r} (not in this version's registry), read from {c.data}"
            return f"{entry.title} ({c.collection}, read from {c.data}); {entry.citation}; licence: {entry.licence}"
        return f"the images in {c.data}"

    def _label_text(self) -> str:
        c = self.config
        rules = f"mapped with the label map {c.label_map}" if c.label_map else "mapped by the course's rules (labels.toml)"
        origin = (f"the findings its publisher recorded for {c.collection}" if c.collection else
                  "the labels the data carry (metadata or folder names)")
        return f"{origin}, {rules}; how the publisher obtained them is not recorded in the RUN"

    def _demographics(self) -> str | None:
        parts = []
        for split, rows in self.splits.groupby("split"):
            said = []
            if "sex" in rows and rows["sex"].astype(str).str.len().gt(0).any():
                sexes = rows.drop_duplicates("patient_id")["sex"].value_counts()
                said.append(", ".join(f"{k} {v}" for k, v in sexes.items() if k))
            if "age" in rows:
                ages = pd.to_numeric(rows.drop_duplicates("patient_id")["age"], errors="coerce").dropna()
                if len(ages):
                    said.append(f"age median {ages.median():.0f} (range {ages.min():.0f}-{ages.max():.0f})")
            if "view" in rows and rows["view"].astype(str).str.len().gt(0).any():
                said.append("views " + ", ".join(f"{k} {v}" for k, v in rows["view"].value_counts().items() if k))
            if said:
                parts.append(f"{split}: " + "; ".join(said))
        return " | ".join(parts) or None

    def _metrics_text(self, e: EvaluationFound) -> str:
        return "; ".join(f"{name}: F1 {_interval(e.score(name, 'f1'))}" for name in [*self.config.class_names, "macro"])

    # -------------------------------------------------------------- the two documents

    def checklist(self) -> dict:
        facts = self.facts()
        out = {}
        for key, guideline in _guidelines().items():
            items = []
            for item in guideline["items"]:
                fact = facts.get(item.get("evidence", ""))
                items.append({"number": item["number"], "section": item["section"], "topic": item["topic"],
                              "status": "answered from the RUN" if fact else OPEN,
                              "answer": fact.text if fact else "", "evidence": fact.evidence if fact else ""})
            out[key] = {"name": guideline["name"], "citation": guideline["citation"], "doi": guideline["doi"],
                        "items": items}
        return out

    def to_json(self) -> dict:
        facts = self.facts()
        return {
            "run": str(self.run), "written": self.written, "covid_tutorial": __version__,
            "model": {"backbone": self.config.backbone, "classes": list(self.config.class_names),
                      "image_size": self.config.image_size, "training": dataclasses.asdict(self.config.training),
                      "versions": self.config.versions},
            "intended_use": INTENDED_USE,
            "training_data": {"source": facts["data_sources"].text, "counts": self.counts().to_dict(orient="records"),
                              "patients_in_two_splits": self.patients_in_two_splits()},
            "evaluations": [{"folder": _relative(self.run, e.folder), "data": e.data, "scored": e.scored,
                             "n_images": e.metrics.get("n_images"), "n_patients": e.metrics.get("n_patients"),
                             "metrics": e.metrics.get("metrics"), "decisions": e.decisions} for e in self.evaluations],
            "calibration": None if self.calibration is None else self.calibration.to_json(),
            "confounder_check": self.confounders,
            "caveats": self.caveats(),
        }

    def caveats(self) -> list[str]:
        notes = [NOT_FOR_CLINICAL_USE]
        if any(Path(self.config.data, mark).is_file() for mark in (STAMP_FILENAME, TWO_HOSPITALS_MARK)):
            notes.append("Trained and scored on synthetic phantoms: a score here shows that the pipeline works, "
                         "not that the model can detect any disease in real radiographs.")
        if not any(not e.internal for e in self.evaluations):
            notes.append("No evaluation on data from another source: how the model does elsewhere is unknown.")
        if self.confounders and self.confounders.get("flagged"):
            notes.append("The confounder check flagged the training data: the classes differ in their files, so "
                         "the model may have learnt the source of the images instead of the disease.")
        if not any(e.decisions and e.decisions.get("subgroups") for e in self.evaluations):
            notes.append("No subgroup audit: run covid-tutorial evaluate with --by COLUMN where the data carry "
                         "sex, age, view or hospital.")
        notes.append("Items the RUN cannot know (the reference standard's readers, ethics approval, funding, "
                     "dates and setting of the data) are left open in reporting_checklist.md.")
        return notes

    def markdown(self) -> str:
        c, facts = self.config, self.facts()
        lines = [f"# Model card: {c.backbone} for {', '.join(c.class_names)} ({self.run.name})", "",
                 f"*Written by `covid-tutorial card` (covid_tutorial {__version__}) on {self.written} from the RUN "
                 "folder alone; each statement names the file that shows it. After Mitchell et al. (2019), Model "
                 "Cards for Model Reporting.*", "",
                 "## Model details", ""]
        for key in ("model", "initialisation", "training", "model_output", "software"):
            lines.append(f"- **{key.replace('_', ' ').capitalize()}**: {facts[key].text} (`{facts[key].evidence}`)")
        lines += ["", "## Intended use", "", INTENDED_USE,
                  "Out of scope: any decision about a patient, and any claim about the detection of COVID-19.", "",
                  "## Training data", "", f"- **Source**: {facts['data_sources'].text}",
                  f"- **Labels**: {facts['label_source'].text}",
                  f"- **Partitions** (`{SPLITS_FILE}`): {facts['partitions'].text}; patients in two partitions: "
                  f"{self.patients_in_two_splits()}", ""]
        lines += ["| split | class | patients | images |", "|---|---|---:|---:|"]
        lines += [f"| {r.split} | {r.label} | {r.patients} | {r.images} |" for r in self.counts().itertuples()]
        if "demographics" in facts:
            lines += ["", f"- **Characteristics**: {facts['demographics'].text}"]
        lines += ["", "## Evaluations and metrics", ""]
        if not self.evaluations:
            lines.append("None yet: run `covid-tutorial evaluate` on this RUN.")
        for e in self.evaluations:
            where = _relative(self.run, e.folder) if e.folder != self.run else "the RUN folder"
            lines += [f"### {e.scored} ({where})", "",
                      f"Data: {e.data}; {e.metrics.get('n_images', '?')} images of {e.metrics.get('n_patients', '?')} "
                      f"patients; 95% bootstrap intervals over patients ({e.metrics.get('n_bootstrap', '?')} rounds).", "",
                      "| class | F1 | sensitivity | specificity | ROC AUC |", "|---|---|---|---|---|"]
            for name in [*c.class_names, "macro"]:
                lines.append(f"| {name} | " + " | ".join(_interval(e.score(name, m)) for m in
                                                          ("f1", "sensitivity", "specificity", "roc_auc")) + " |")
            if e.decisions:
                d = e.decisions
                lines += ["", f"- **Decision curve**: {d['decision_curve']['summary']}",
                          f"- **Referral**: {d['referral']['summary']}"]
                if d.get("calibration"):
                    lines.append(f"- **Calibration**: {d['calibration']['summary']}")
                lines += [f"- **Subgroups**: {a['summary']}" for a in d.get("subgroups", [])]
            lines.append("")
        lines += ["## Calibration", "", str(self.calibration) + f" (`{CALIBRATION_FILE}`)" if self.calibration
                  else "No temperature in this RUN (trained before the course fitted one): the model's own probabilities are used.", "",
                  "## Known shortcuts", "", self._confounder_text(), "",
                  "## Caveats and recommendations", ""]
        lines += [f"- {note}" for note in self.caveats()]
        return "\n".join(lines) + "\n"

    def _confounder_text(self) -> str:
        if self.confounders is None:
            return "The confounder check's result is not in this RUN (trained before it was recorded)."
        check = self.confounders
        if check.get("flagged"):
            return (f"FLAGGED: a classifier of file properties alone tells the classes apart ({check.get('metric')} "
                    f"{check.get('score', float('nan')):.2f}, chance {check.get('chance', float('nan')):.2f}; "
                    f"`{CONFOUNDERS_FILE}`). The network may have learnt the source of the images.")
        return (f"Not flagged: file properties alone do not tell the classes apart ({check.get('metric', 'score')} "
                f"{check.get('score', float('nan')):.2f}, chance {check.get('chance', float('nan')):.2f}; "
                f"`{CONFOUNDERS_FILE}`). Shortcuts in the pixels (markers, text) are not covered by this check.")

    def checklist_markdown(self) -> str:
        lines = [f"# Reporting checklist: {self.run.name}", "",
                 "Each item is named by its number and section in the published checklist, with a topic in the "
                 "course's words: read the item's own wording in the article. An item the RUN answers gives the "
                 "answer and the file that shows it; every other item is open for the author.", ""]
        for guideline in self.checklist().values():
            answered = sum(item["status"] != OPEN for item in guideline["items"])
            lines += [f"## {guideline['name']}", "", f"{guideline['citation']} doi:{guideline['doi']}", "",
                      f"{answered} of {len(guideline['items'])} items answered from the RUN.", "",
                      "| item | section | topic | status | answer | evidence |", "|---|---|---|---|---|---|"]
            for item in guideline["items"]:
                answer = item["answer"].replace("|", "/").replace("\n", " ")
                lines.append(f"| {item['number']} | {item['section']} | {item['topic']} | {item['status']} | "
                             f"{answer} | {item['evidence']} |")
            lines.append("")
        return "\n".join(lines)


def model_card(run) -> ModelCard:
    """A :class:`ModelCard` of a trained RUN folder."""
    run = Path(run)
    config = read_run_config(run)
    if config.status != "complete":
        raise RunError(f"{run}: training has not finished, so there is no model to describe; finish it first "
                       f"(covid-tutorial train {config.data} --out {run} --resume).")
    splits = read_splits(run)
    if splits is None:
        raise RunError(f"{run}: no {SPLITS_FILE}, so the card cannot say what the model was trained on; train the run "
                       "again with this version.")
    return ModelCard(run, config, splits, find_evaluations(run), read_calibration(run), read_confounder_check(run),
                     datetime.date.today().isoformat())


def write_model_card(run, out=None) -> ModelCard:
    """Write model_card.md, model_card.json, reporting_checklist.md and reporting_checklist.json
    into ``out`` (default: the RUN folder); returns the :class:`ModelCard`."""
    card = model_card(run)
    out = Path(out) if out is not None else card.run
    out.mkdir(parents=True, exist_ok=True)
    (out / "model_card.md").write_text(card.markdown(), encoding="utf-8")
    write_json(out / "model_card.json", card.to_json())
    (out / "reporting_checklist.md").write_text(card.checklist_markdown(), encoding="utf-8")
    write_json(out / "reporting_checklist.json", card.checklist())
    return card
