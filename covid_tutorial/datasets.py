"""Where the course's images come from, and how to fetch them safely.

The registry (:data:`REGISTRY`) holds one :class:`DatasetInfo` per collection: what it
contains, how its classes map to the course labels, whether it identifies patients,
its licence and citation, and how to obtain it. :func:`download_dataset` fetches a
collection into the data folder, checks its hash and unpacks it with a safe extractor.

Honesty rules for the registry: every URL, Kaggle handle, licence, size and checksum
below was read in a public source named in the comment next to it (and in the entry's
``provenance``). Where a fact could not be checked it says so instead of guessing.
No checksum is typed in by hand unless its publisher printed it; for every other file
the first download records the SHA256 it computed in ``<file>.sha256`` and later runs
verify against that record.

Typical use::

    from covid_tutorial.datasets import list_datasets, download_dataset
    list_datasets()                       # a tidy table of the registry
    root = download_dataset("pneumoniamnist")
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import os
import posixpath
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import types
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from .labels import CLASS_NAMES
from .errors import CourseError

__all__ = [
    "COURSE_LABELS",
    "NON_COVID_LABEL",
    "DATA_ENV_VAR",
    "DatasetInfo",
    "DownloadError",
    "UnknownDatasetError",
    "UnsafeArchiveError",
    "ChecksumMismatchError",
    "ManualDownloadRequired",
    "REGISTRY",
    "get_dataset_info",
    "list_datasets",
    "format_dataset_table",
    "format_registry_markdown",
    "default_data_dir",
    "dataset_dir",
    "download_dataset",
    "safe_extract",
    "sha256_of",
]

# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------

#: The labels every collection is mapped onto. "Pneumonia" means a non-COVID lung
#: infection (viral or bacterial pneumonia, "other pulmonary infections").
COURSE_LABELS = CLASS_NAMES

#: Binary collections (COVID vs not) whose negative class mixes healthy lungs and other
#: diseases cannot honestly be called "Normal"; they map to this label instead.
NON_COVID_LABEL = "Non-COVID"

#: Environment variable that sets where downloads go.
DATA_ENV_VAR = "COVID_TUTORIAL_DATA"

METHODS = ("direct", "github", "kaggle", "manual", "generate")
LAYOUTS = ("folder-per-class", "metadata-csv", "npz-arrays")
MODALITIES = ("X-ray", "CT")

#: Seconds to wait for a server before calling it unreachable.
HTTP_TIMEOUT = 60

_HASH_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64}
_ARCHIVE_SUFFIXES = (
    (".tar.gz", "tar"),
    (".tgz", "tar"),
    (".tar.bz2", "tar"),
    (".tar.xz", "tar"),
    (".tar", "tar"),
    (".zip", "zip"),
)

LICENCE_NOT_VERIFIED = (
    "not verified here: read the licence on the dataset page before you use or share it"
)

KAGGLE_TOKEN_HELP = """\
Kaggle needs your own API token (it is free):
  1. Sign in at https://www.kaggle.com and open https://www.kaggle.com/settings
  2. In the "API" section click "Create New Token"; your browser saves kaggle.json
  3. Put it where the Kaggle tools look for it:
       Linux/macOS:  mkdir -p ~/.kaggle && mv ~/Downloads/kaggle.json ~/.kaggle/ && chmod 600 ~/.kaggle/kaggle.json
       Windows:      move kaggle.json to C:\\Users\\<you>\\.kaggle\\kaggle.json
     or set the environment variables KAGGLE_USERNAME and KAGGLE_KEY (values from kaggle.json),
     or KAGGLE_API_TOKEN, or KAGGLE_CONFIG_DIR=<folder holding kaggle.json>.
  4. Open the dataset page once in a browser and accept its terms if Kaggle asks.
Never commit kaggle.json or paste the key into a notebook you share."""


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class DownloadError(CourseError):
    """A dataset could not be obtained. The message says which, from where, and what to do.

    A :class:`~covid_tutorial.errors.CourseError`, so the command line prints it as one
    message with no traceback.
    """


class UnknownDatasetError(DownloadError, LookupError):
    """The name is not in the registry."""


class UnsafeArchiveError(DownloadError):
    """An archive member would land outside the destination folder (or is a device file)."""


class ChecksumMismatchError(DownloadError):
    """The downloaded bytes are not the ones expected."""


class ManualDownloadRequired(DownloadError):
    """The collection cannot be fetched automatically; the message holds the steps."""


# ---------------------------------------------------------------------------
# The registry entry
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Everything the course knows about one collection.

    ``classes`` maps each class as it appears in the collection (a folder name, a label
    value) to a course label from :data:`COURSE_LABELS`, to :data:`NON_COVID_LABEL`, or
    to ``None`` when the class is left out of the course (for example ``Lung_Opacity``).
    """

    name: str
    title: str
    modality: str  # "X-ray" or "CT"
    method: str  # "direct", "github", "kaggle", "manual" or "generate"
    source_url: str  # the page a person reads
    licence: str
    citation: str
    classes: Mapping[str, str | None] = dataclasses.field(hash=False)
    has_patient_ids: bool
    patient_ids: str  # where the patient identifiers are, or why there are none
    layout: str  # "folder-per-class", "metadata-csv" or "npz-arrays"
    url: str | None = None  # file to fetch for "direct" and "github"
    kaggle_handle: str | None = None  # "owner/dataset" for "kaggle"
    filename: str | None = None  # name to save the download under
    checksum: str | None = None  # "md5:<hex>" or "sha256:<hex>", only if published
    checksum_source: str | None = None  # where that checksum was published
    documented_size: str | None = None  # image counts as documented, with the source
    manual_steps: str | None = None  # for "manual" and "generate"
    inner_archives: tuple[str, ...] = ()  # glob patterns of archives inside the archive
    notes: str = ""
    provenance: tuple[str, ...] = ()  # where each fact above was read

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", types.MappingProxyType(dict(self.classes)))
        object.__setattr__(self, "inner_archives", tuple(self.inner_archives))
        object.__setattr__(self, "provenance", tuple(self.provenance))
        problems = []
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", self.name):
            problems.append("name must be lower-case letters, digits and dashes")
        if self.method not in METHODS:
            problems.append(f"method must be one of {METHODS}")
        if self.modality not in MODALITIES:
            problems.append(f"modality must be one of {MODALITIES}")
        if self.layout not in LAYOUTS:
            problems.append(f"layout must be one of {LAYOUTS}")
        if not self.classes:
            problems.append("classes must not be empty")
        allowed = set(COURSE_LABELS) | {NON_COVID_LABEL, None}
        for source, label in self.classes.items():
            if label not in allowed:
                problems.append(f"class {source!r} maps to {label!r}, not a course label")
        if self.method in ("direct", "github") and not self.url:
            problems.append(f"method {self.method!r} needs url")
        if self.method == "kaggle" and not re.fullmatch(
            r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/versions/\d+)?", self.kaggle_handle or ""
        ):
            problems.append("method 'kaggle' needs kaggle_handle 'owner/dataset'")
        if self.method in ("manual", "generate") and not self.manual_steps:
            problems.append(f"method {self.method!r} needs manual_steps")
        if self.checksum is not None:
            algorithm, _, digest = self.checksum.partition(":")
            if _HASH_LENGTHS.get(algorithm) != len(digest) or not re.fullmatch(
                r"[0-9a-f]+", digest
            ):
                problems.append("checksum must look like 'md5:<32 hex>' or 'sha256:<64 hex>'")
            if not self.checksum_source:
                problems.append("a checksum needs checksum_source: where it was published")
        if problems:
            raise ValueError(f"DatasetInfo {self.name!r}: " + "; ".join(problems))

    @property
    def course_labels(self) -> tuple[str, ...]:
        """The labels this collection contributes, in course order."""
        present = {label for label in self.classes.values() if label is not None}
        order = COURSE_LABELS + (NON_COVID_LABEL,)
        return tuple(label for label in order if label in present)

    @property
    def obtain(self) -> str:
        """One line saying how the files are obtained."""
        if self.method == "kaggle":
            return f"kaggle: {self.kaggle_handle}"
        if self.method in ("direct", "github"):
            return f"{self.method}: {self.url}"
        if self.method == "generate":
            return "generate: covid-tutorial phantoms --out DIR"
        return "manual: see the steps"

    def class_map_text(self) -> str:
        """``source -> label`` pairs, excluded classes marked as such."""
        parts = []
        for source, label in self.classes.items():
            parts.append(f"{source} -> {label if label else '(excluded)'}")
        return "; ".join(parts)


# ---------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------

_MEDMNIST_INFO = (
    "MedMNIST/MedMNIST medmnist/info.py, version 3.0.2 "
    "(commit 3bb56be69bca38e5f105b21e4d6482b91354d3a4), INFO['pneumoniamnist']"
)

_ENTRIES = (
    DatasetInfo(
        name="covid-chestxray",
        title="COVID-19 image data collection (ieee8023/covid-chestxray-dataset)",
        modality="X-ray",
        method="github",
        source_url="https://github.com/ieee8023/covid-chestxray-dataset",
        # Archive of the default branch "master": the same URL is used by several public
        # projects found with the code search (e.g. ".../archive/refs/heads/master.zip").
        url="https://github.com/ieee8023/covid-chestxray-dataset/archive/refs/heads/master.zip",
        filename="covid-chestxray-dataset-master.zip",
        # README.md, section "License" (ieee8023/covid-chestxray-dataset, commit cec70df).
        licence=(
            "per image, in the 'license' column of metadata.csv (among them Apache 2.0, "
            "CC BY-NC-SA 4.0, CC BY 4.0); metadata.csv, scripts and documents: CC BY-NC-SA 4.0"
        ),
        # README.md, section "Citations".
        citation=(
            "Cohen JP, Morrison P, Dao L, Roth K, Duong TQ, Ghassemi M. COVID-19 Image Data "
            "Collection: Prospective Predictions Are the Future. arXiv:2006.11988, 2020. "
            "Cohen JP, Morrison P, Dao L. COVID-19 image data collection. arXiv:2003.11597, 2020."
        ),
        # The 'finding' column is hierarchical, e.g. "Pneumonia/Viral/COVID-19" (seen in
        # many public loaders); "No Finding" is listed in SCHEMA.md.
        classes={
            "Pneumonia/Viral/COVID-19": "COVID-19",
            "No Finding": "Normal",
            "Pneumonia/... (any other pneumonia finding)": "Pneumonia",
            "anything else (e.g. Tuberculosis, todo)": None,
        },
        has_patient_ids=True,
        patient_ids="'patientid' column of metadata.csv (SCHEMA.md)",
        layout="metadata-csv",
        documented_size=None,
        notes=(
            "Images come from publications and websites; X-ray and CT rows share "
            "metadata.csv (filter modality == 'X-ray', views PA/AP). Labels are in the "
            "'finding' column, images in images/. The maintainers ask that no diagnostic "
            "performance be claimed without a clinical study. The collection grew over "
            "2020, so counts depend on the commit downloaded."
        ),
        provenance=(
            "licence, citation, warning: README.md of ieee8023/covid-chestxray-dataset",
            "patientid, finding, modality, view, license columns: SCHEMA.md of the same repository",
            "archive URL: used in public code (code search for "
            "'ieee8023/covid-chestxray-dataset/archive')",
        ),
    ),
    DatasetInfo(
        name="covid19-radiography",
        title="COVID-19 Radiography Database",
        modality="X-ray",
        method="kaggle",
        # Kaggle handle: used in kagglehub and kaggle-CLI calls in public code, e.g.
        # rishavpramanik/TOPCONet download.sh and sunlabuiuc/PyHealth covid19_cxr.py.
        kaggle_handle="tawsifurrahman/covid19-radiography-database",
        source_url="https://www.kaggle.com/datasets/tawsifurrahman/covid19-radiography-database",
        licence=LICENCE_NOT_VERIFIED,
        # The two articles the dataset description asks users to cite (quoted in
        # sunlabuiuc/PyHealth pyhealth/datasets/covid19_cxr.py).
        citation=(
            "Chowdhury MEH, Rahman T, Khandakar A, et al. Can AI help in screening viral and "
            "COVID-19 pneumonia? IEEE Access 8:132665-132676, 2020. "
            "doi:10.1109/ACCESS.2020.3010287. Rahman T, Khandakar A, Qiblawey Y, et al. "
            "Exploring the effect of image enhancement techniques on COVID-19 detection using "
            "chest X-ray images. Comput Biol Med 132:104319, 2021. "
            "doi:10.1016/j.compbiomed.2021.104319"
        ),
        # Folder names as read by sunlabuiuc/PyHealth: COVID-19_Radiography_Dataset/<class>/images.
        classes={
            "COVID": "COVID-19",
            "Normal": "Normal",
            "Viral Pneumonia": "Pneumonia",
            "Lung_Opacity": None,
        },
        has_patient_ids=False,
        patient_ids=(
            "none: the <class>.metadata.xlsx files give file name, format, size and source URL"
        ),
        layout="folder-per-class",
        documented_size=(
            "3,616 COVID-19, 10,192 Normal, 6,012 Lung Opacity and 1,345 Viral Pneumonia "
            "images after the second update (dataset description)"
        ),
        notes=(
            "Files unpack to COVID-19_Radiography_Dataset/<class>/images/*.png. The "
            "COVID-19 images were gathered from several public sources, among them the "
            "ieee8023 collection, so do not test on one after training on the other. Normal "
            "and Viral Pneumonia images partly come from a paediatric pneumonia set while "
            "COVID-19 images are from adults: a model can learn age instead of disease."
        ),
        provenance=(
            "handle, folder layout, counts, sources of the images: sunlabuiuc/PyHealth "
            "pyhealth/datasets/covid19_cxr.py (docstring quoting the dataset description)",
            "handle also in rishavpramanik/TOPCONet download.sh",
            "licence: not found in a source we could read",
        ),
    ),
    DatasetInfo(
        name="covid-qu-ex",
        title="COVID-QU-Ex",
        modality="X-ray",
        method="kaggle",
        # Handle: public code (e.g. a torch_em loader calling download_source_kaggle with
        # dataset_name="anasmohammedtahir/covidqu"; kagglehub cache paths
        # ".../datasets/anasmohammedtahir/covidqu/versions/7").
        kaggle_handle="anasmohammedtahir/covidqu",
        source_url="https://www.kaggle.com/datasets/anasmohammedtahir/covidqu",
        licence=LICENCE_NOT_VERIFIED,
        # Citation list in hisyam99/MACHINE_LEARNING_PROJECT docs/dataset/citation.md.
        citation=(
            "Tahir AM, Chowdhury MEH, Khandakar A, et al. COVID-19 infection localization and "
            "severity grading from chest X-ray images. Comput Biol Med 139:105002, 2021. "
            "doi:10.1016/j.compbiomed.2021.105002. Dataset: Tahir AM et al. COVID-QU-Ex, "
            "Kaggle, 2021. doi:10.34740/kaggle/dsv/3122958"
        ),
        classes={"COVID-19": "COVID-19", "Normal": "Normal", "Non-COVID": "Pneumonia"},
        has_patient_ids=False,
        patient_ids="none documented",
        layout="folder-per-class",
        documented_size=(
            "33,920 images: 11,956 COVID-19, 11,263 Non-COVID infections (viral or "
            "bacterial pneumonia), 10,701 Normal (dataset description)"
        ),
        notes=(
            "Two experiment sets (Lung Segmentation Data, Infection Segmentation Data), each "
            "already split into train, validation and test, with lung masks. Built by the same "
            "Qatar University group as the COVID-19 Radiography Database: check for shared "
            "images before testing a model trained on one with the other."
        ),
        provenance=(
            "handle: public loaders and READMEs (code search 'anasmohammedtahir/covidqu')",
            "counts and class names: KevenDuan/Fine-grained-recognition-of-medical-images-"
            "based-on-dynamic-focus-search README and hisyam99/MACHINE_LEARNING_PROJECT "
            "datasets/README.md (quoting the dataset description)",
            "licence: not found in a source we could read",
        ),
    ),
    DatasetInfo(
        name="sars-cov-2-ct",
        title="SARS-CoV-2 CT-scan dataset",
        modality="CT",
        method="kaggle",
        # Handle: public code, e.g. kaggle.api.dataset_download_files(
        # 'plameneduardo/sarscov2-ctscan-dataset', ...) which then reads COVID/ and non-COVID/.
        kaggle_handle="plameneduardo/sarscov2-ctscan-dataset",
        source_url="https://www.kaggle.com/datasets/plameneduardo/sarscov2-ctscan-dataset",
        licence=LICENCE_NOT_VERIFIED,
        citation=(
            "Soares E, Angelov P, Biaso S, Froes MH, Abe DK. SARS-CoV-2 CT-scan dataset: a large "
            "dataset of real patients CT scans for SARS-CoV-2 identification. medRxiv, 2020. "
            "doi:10.1101/2020.04.24.20078584"
        ),
        classes={"COVID": "COVID-19", "non-COVID": NON_COVID_LABEL},
        has_patient_ids=False,
        patient_ids="none: one folder per class, file names do not identify patients",
        layout="folder-per-class",
        documented_size=(
            "1,252 CT slices positive for SARS-CoV-2 and 1,230 from non-infected patients, "
            "2,482 in total (dataset description, quoted in public READMEs); from 120 "
            "patients according to a reproduction README"
        ),
        notes=(
            "Collected in hospitals in Sao Paulo, Brazil. Several slices per patient and no "
            "patient identifiers: any random split puts slices of one patient on both sides, "
            "which inflates accuracy. The negative class holds non-COVID patients, not only "
            "healthy lungs, hence the 'Non-COVID' label."
        ),
        provenance=(
            "handle, folder names COVID/non-COVID: public code (code search "
            "'plameneduardo/sarscov2-ctscan-dataset')",
            "counts, Sao Paulo: public READMEs quoting the dataset description",
            "citation: reference list of a public reproduction README ('Beyond single-split "
            "accuracy ...')",
            "licence: not found in a source we could read",
        ),
    ),
    DatasetInfo(
        name="covid-ct-multiclass",
        title="A COVID multiclass dataset of CT scans (used by Garg et al. 2022)",
        modality="CT",
        method="kaggle",
        # Garg et al. (sources/004) name the dataset "A COVID multiclass dataset of CT scans";
        # their code repository ML-Aksh/COV-AID README links
        # https://www.kaggle.com/plameneduardo/a-covid-multiclass-dataset-of-ct-scans
        kaggle_handle="plameneduardo/a-covid-multiclass-dataset-of-ct-scans",
        source_url=(
            "https://www.kaggle.com/datasets/plameneduardo/a-covid-multiclass-dataset-of-ct-scans"
        ),
        licence=LICENCE_NOT_VERIFIED,
        citation=(
            "Soares E, Angelov P, Biaso S, Cury M, Abe D. A large multiclass dataset of CT scans "
            "for COVID-19 identification. Evolving Systems 15:635-640, 2024. "
            "doi:10.1007/s12530-023-09511-2. Used by: Garg A, Salehi S, La Rocca M, Garner R, "
            "Duncan D. Efficient and visualizable convolutional neural networks for COVID-19 "
            "classification using chest CT. Expert Syst Appl, 2022. "
            "doi:10.1016/j.eswa.2022.116540"
        ),
        # Folder names New_Data_CoV2/{Covid,Healthy,Others}/<patient>/*.png, as read by
        # several public loaders (code search 'New_Data_CoV2').
        classes={"Covid": "COVID-19", "Healthy": "Normal", "Others": "Pneumonia"},
        has_patient_ids=True,
        patient_ids="one sub-folder per patient inside each class folder",
        layout="folder-per-class",
        documented_size=(
            "4,173 CT images of 210 patients: 2,168 COVID-19 (80 patients), 758 healthy "
            "(50), 1,247 other pulmonary infections (80), as reported by Garg et al. and "
            "the COV-AID README; a reproduction README counts 4,171 slices in the Kaggle "
            "release"
        ),
        notes=(
            "Files unpack to New_Data_CoV2/<class>/<patient>/*.png. 'Others' are other "
            "pulmonary infections, mapped to the course label 'Pneumonia'. Garg et al. split "
            "by patient with 5-fold cross-validation, which the per-patient folders allow. "
            "Same authors and Sao Paulo hospitals as sars-cov-2-ct: an overlap of patients "
            "is not ruled out, so do not test one on the other. A Synapse copy "
            "(syn22174850) is mentioned by a public reproduction README; not wired here."
        ),
        provenance=(
            "dataset name and counts: Garg et al. 2022 (sources/004), abstract",
            "Kaggle link: ML-Aksh/COV-AID README.md (the paper's code)",
            "folder layout: public loaders (code search 'New_Data_CoV2')",
            "citation of the dataset: reference list of a public reproduction README "
            "('Beyond single-split accuracy ...')",
            "licence: not found in a source we could read",
        ),
    ),
    DatasetInfo(
        name="ucsd-covid-ct",
        title="COVID-CT (UCSD-AI4H/COVID-CT)",
        modality="CT",
        method="github",
        source_url="https://github.com/UCSD-AI4H/COVID-CT",
        # Default branch "master": public code links .../COVID-CT/blob/master/Images-processed/
        # CT_COVID.zip and .../tree/master/Images-processed; the archive URL follows
        # GitHub's scheme for that branch.
        url="https://github.com/UCSD-AI4H/COVID-CT/archive/refs/heads/master.zip",
        filename="COVID-CT-master.zip",
        inner_archives=("Images-processed/CT_COVID.zip", "Images-processed/CT_NonCOVID.zip"),
        # README (mirrored in desaisrkr/https-github.com-UCSD-AI4H-COVID-CT): "All copyrights
        # of the data belong to the authors and publishers of these papers."
        licence=(
            "no open licence stated: the README says the copyright of the images stays with "
            "the authors and publishers of the papers they were taken from"
        ),
        citation=(
            "Zhao J, Zhang Y, He X, Xie P. COVID-CT-Dataset: a CT scan dataset about COVID-19. "
            "arXiv:2003.13865, 2020"
        ),
        classes={"CT_COVID": "COVID-19", "CT_NonCOVID": NON_COVID_LABEL},
        has_patient_ids=True,
        patient_ids="patient ID column of COVID-CT-MetaInfo.xlsx (README); check its coverage",
        layout="folder-per-class",
        documented_size=(
            "349 COVID-19 CT images (README) and 397 non-COVID images (a public reproduction README)"
        ),
        notes=(
            "Images were cut out of figures in COVID-19 papers (medRxiv, bioRxiv, NEJM, "
            "JAMA, Lancet, ...): mixed sources and quality. The class images are in "
            "Images-processed/CT_COVID.zip and CT_NonCOVID.zip, which download_dataset "
            "unpacks too; a data split is in Data-split/. A public reproduction README reports the original "
            "repository offline and used the mirror "
            "github.com/desaisrkr/https-github.com-UCSD-AI4H-COVID-CT: if the download "
            "answers 404, fetch that mirror by hand."
        ),
        provenance=(
            "README text, file names, citation: desaisrkr/https-github.com-UCSD-AI4H-COVID-CT "
            "README.md (mirror of the original README)",
            "branch 'master': public code linking UCSD-AI4H/COVID-CT/blob/master/...",
            "non-COVID count and the 'offline' report: public reproduction README "
            "('Beyond single-split accuracy ...')",
        ),
    ),
    DatasetInfo(
        name="pneumoniamnist",
        title="PneumoniaMNIST (MedMNIST v2/v3), 28 x 28 px",
        modality="X-ray",
        method="direct",
        source_url="https://doi.org/10.5281/zenodo.10519652",
        # URL, MD5, licence, labels and counts: MedMNIST/MedMNIST medmnist/info.py v3.0.2,
        # INFO["pneumoniamnist"] ("url", "MD5", "license", "label", "n_samples").
        url="https://zenodo.org/records/10519652/files/pneumoniamnist.npz?download=1",
        filename="pneumoniamnist.npz",
        checksum="md5:28209eda62fecd6e6a2d98b1501bb15f",
        checksum_source=f"published by the MedMNIST maintainers: {_MEDMNIST_INFO}['MD5']",
        licence="CC BY 4.0 (" + _MEDMNIST_INFO + "['license'])",
        citation=(
            "Yang J, Shi R, Wei D, Liu Z, Zhao L, Ke B, Pfister H, Ni B. MedMNIST v2 - a "
            "large-scale lightweight benchmark for 2D and 3D biomedical image classification. "
            "Sci Data 10:41, 2023. Source images: Kermany DS et al. Identifying medical "
            "diagnoses and treatable diseases by image-based deep learning. Cell "
            "172(5):1122-1131, 2018"
        ),
        classes={"normal (label 0)": "Normal", "pneumonia (label 1)": "Pneumonia"},
        has_patient_ids=False,
        patient_ids="none: the .npz holds image and label arrays only",
        layout="npz-arrays",
        documented_size=(
            "4,708 train, 524 validation, 624 test images of 28 x 28 px (INFO n_samples)"
        ),
        notes=(
            "No COVID-19 class: a small, real, openly licensed download for trying the "
            "pipeline end to end on real radiographs. Paediatric images. Arrays "
            "train_images, train_labels, val_images, val_labels, test_images, test_labels. "
            "64, 128 and 224 px versions are on the same Zenodo record."
        ),
        provenance=(
            "URL, MD5, licence, labels, counts: " + _MEDMNIST_INFO,
            "array names: public loaders of pneumoniamnist.npz",
        ),
    ),
    DatasetInfo(
        name="phantoms",
        title="Embedded synthetic phantoms (generated by this package)",
        modality="X-ray",
        method="generate",
        source_url="covid_tutorial.phantoms (this repository)",
        licence="MIT, like the rest of this repository (the images are generated, not collected)",
        citation="covid_tutorial course material (this repository)",
        # covid_tutorial.phantoms.PHANTOM_FINDINGS: the 'finding' values it writes.
        classes={
            "Pneumonia/Viral/COVID-19": "COVID-19",
            "No Finding": "Normal",
            "Pneumonia/Bacterial/Streptococcus": "Pneumonia",
        },
        has_patient_ids=True,
        patient_ids="'patientid' column of metadata.csv",
        layout="metadata-csv",
        manual_steps=(
            "Run: covid-tutorial phantoms --out DIR   (or in Python: "
            "covid_tutorial.phantoms.generate_phantoms(DIR))"
        ),
        documented_size="set by the profile (ci: 60 patients at 128 px)",
        notes=(
            "Synthetic frontal chest radiographs with known ground truth and lesion masks, "
            "made in seconds without a network, in the layout of covid-chestxray (images/, "
            "masks/, metadata.csv): the data of the 'ci' profile and the fall-back when no "
            "real collection is present. Cartoons, not medical images: a good score on them "
            "says a pipeline works, nothing about detecting COVID-19."
        ),
        provenance=("generated by covid_tutorial.phantoms.generate_phantoms",),
    ),
)

#: name -> DatasetInfo, read-only.
REGISTRY: Mapping[str, DatasetInfo] = types.MappingProxyType({info.name: info for info in _ENTRIES})


def get_dataset_info(name: str) -> DatasetInfo:
    """The registry entry for ``name`` (case-insensitive; ``_`` and spaces count as ``-``)."""
    key = str(name).strip().lower().replace("_", "-").replace(" ", "-")
    if key in REGISTRY:
        return REGISTRY[key]
    known = ", ".join(REGISTRY)
    raise UnknownDatasetError(
        f"Unknown dataset {name!r}. Known datasets: {known}. "
        "Run 'covid-tutorial datasets' to see what each one holds."
    )


def list_datasets():
    """The registry as a tidy :class:`pandas.DataFrame`, one row per collection."""
    import pandas as pd

    rows = []
    for info in REGISTRY.values():
        rows.append(
            {
                "name": info.name,
                "title": info.title,
                "modality": info.modality,
                "method": info.method,
                "obtain": info.obtain,
                "classes": info.class_map_text(),
                "course_labels": ", ".join(info.course_labels),
                "has_patient_ids": info.has_patient_ids,
                "patient_ids": info.patient_ids,
                "layout": info.layout,
                "licence": info.licence,
                "checksum": info.checksum or "",
                "checksum_source": info.checksum_source or "",
                "documented_size": info.documented_size or "",
                "citation": info.citation,
                "source_url": info.source_url,
                "notes": info.notes,
            }
        )
    return pd.DataFrame(rows)


def format_dataset_table() -> str:
    """A readable terminal table of the registry (what ``covid-tutorial datasets`` prints)."""
    header = ("NAME", "MODALITY", "GET VIA", "COURSE LABELS", "PATIENT IDS", "TITLE")
    rows = [header]
    for info in REGISTRY.values():
        title = info.title if len(info.title) <= 48 else info.title[:45] + "..."
        rows.append(
            (
                info.name,
                info.modality,
                info.method,
                ", ".join(info.course_labels),
                "yes" if info.has_patient_ids else "no",
                title,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append("")
    lines.append("Download one with:  covid-tutorial download NAME [--dest DIR]")
    lines.append(f"Files go to: {default_data_dir()}  (set {DATA_ENV_VAR} to change)")
    lines.append("Licences, citations and details: docs/datasets.md")
    return "\n".join(lines)


def format_registry_markdown() -> str:
    """The registry as Markdown (the generated part of ``docs/datasets.md``)."""

    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| name | title | modality | how to get it | classes -> course labels | patient ids | layout |",
        "|---|---|---|---|---|---|---|",
    ]
    for info in REGISTRY.values():
        how = info.method
        if info.method == "kaggle":
            how = f"kaggle `{info.kaggle_handle}`"
        elif info.method in ("direct", "github"):
            check = "checksum published" if info.checksum else "SHA256 recorded on first download"
            how = f"{info.method} ({check})"
        lines.append(
            "| "
            + " | ".join(
                cell(value)
                for value in (
                    f"`{info.name}`",
                    info.title,
                    info.modality,
                    how,
                    info.class_map_text(),
                    "yes" if info.has_patient_ids else "no",
                    info.layout,
                )
            )
            + " |"
        )
    for info in REGISTRY.values():
        lines += ["", f"### `{info.name}`: {info.title}", ""]
        lines.append(f"- **Source:** {info.source_url}")
        if info.url:
            lines.append(f"- **File:** {info.url}")
        if info.kaggle_handle:
            lines.append(f"- **Kaggle handle:** `{info.kaggle_handle}`")
        lines.append(f"- **Licence:** {info.licence}")
        lines.append(f"- **Cite:** {info.citation}")
        lines.append(f"- **Patient ids:** {info.patient_ids}")
        if info.documented_size:
            lines.append(f"- **Size as documented:** {info.documented_size}")
        if info.checksum:
            lines.append(f"- **Checksum:** `{info.checksum}`, {info.checksum_source}")
        if info.manual_steps:
            lines.append(f"- **Steps:** {info.manual_steps}")
        lines.append(f"- **Notes:** {info.notes}")
        lines.append("- **Checked in:** " + "; ".join(info.provenance))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Where files go
# ---------------------------------------------------------------------------


def _checkout_root() -> Path | None:
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "covid_tutorial").is_dir():
        return root
    return None


def default_data_dir() -> Path:
    """``$COVID_TUTORIAL_DATA``, else ``<repo>/data/downloads`` in a checkout, else a user cache."""
    configured = os.environ.get(DATA_ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    root = _checkout_root()
    if root is not None:
        return root / "data" / "downloads"
    import pooch

    return Path(pooch.os_cache("covid_tutorial"))


def dataset_dir(name: str | DatasetInfo, dest: str | os.PathLike | None = None) -> Path:
    """The folder a collection is downloaded into (nothing is created)."""
    info = name if isinstance(name, DatasetInfo) else get_dataset_info(name)
    return Path(dest).expanduser() if dest is not None else default_data_dir() / info.name


# ---------------------------------------------------------------------------
# Hashes
# ---------------------------------------------------------------------------


def sha256_of(path: str | os.PathLike) -> str:
    """SHA256 hex digest of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _read_sidecar(path: Path) -> str | None:
    sidecar = _sidecar(path)
    if not sidecar.exists():
        return None
    text = sidecar.read_text(encoding="utf-8").split()
    if not text or not re.fullmatch(r"[0-9a-f]{64}", text[0]):
        raise DownloadError(
            f"The checksum record {sidecar} is not a SHA256 line.\n"
            f"  What to do: delete {sidecar} and download again."
        )
    return text[0]


def _write_sidecar(path: Path, digest: str) -> None:
    sidecar = _sidecar(path)
    tmp = sidecar.with_name(sidecar.name + ".tmp")
    tmp.write_text(f"{digest}  {path.name}\n", encoding="utf-8")
    os.replace(tmp, sidecar)


# ---------------------------------------------------------------------------
# Safe archive extraction
# ---------------------------------------------------------------------------


def _archive_kind(path: Path) -> str | None:
    lower = path.name.lower()
    for suffix, kind in _ARCHIVE_SUFFIXES:
        if lower.endswith(suffix):
            return kind
    return None


def _strip_archive_suffix(filename: str) -> str:
    lower = filename.lower()
    for suffix, _ in _ARCHIVE_SUFFIXES:
        if lower.endswith(suffix):
            return filename[: -len(suffix)]
    return filename


def _refuse(archive: Path, member: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"Refused to extract {archive.name}: member {member!r} {why}.\n"
        "  Nothing from this archive was kept. An archive that tries this is damaged or "
        "hostile: do not unpack it by hand; report it to whoever published it."
    )


def _member_path(archive: Path, name: str) -> PurePosixPath | None:
    """The member's safe relative path, None for the archive root, or an error."""
    if not name or "\x00" in name:
        raise _refuse(archive, name, "has an empty or invalid name")
    unified = name.replace("\\", "/")
    if unified.startswith("/") or re.match(r"^[A-Za-z]:", unified):
        raise _refuse(archive, name, "has an absolute path")
    parts = [part for part in unified.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _refuse(archive, name, "has a '..' component that climbs out of the destination")
    return PurePosixPath(*parts) if parts else None


def _link_stays_inside(member: PurePosixPath, target: str) -> bool:
    unified = target.replace("\\", "/")
    if not unified or unified.startswith("/") or re.match(r"^[A-Za-z]:", unified):
        return False
    combined = posixpath.normpath(posixpath.join(str(member.parent), unified))
    return combined != ".." and not combined.startswith("../")


def _inside(path: str | os.PathLike, root: Path) -> bool:
    real = os.path.realpath(path)
    real_root = os.path.realpath(root)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def _plan_members(archive: Path, kind: str, handle) -> list:
    """Check every member before anything is written; return (member, path, kind, link)."""
    plan = []
    if kind == "zip":
        for info in handle.infolist():
            path = _member_path(archive, info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                target = handle.read(info).decode("utf-8", "replace")
                if path is None or not _link_stays_inside(path, target):
                    raise _refuse(
                        archive, info.filename, f"is a symlink pointing outside ({target!r})"
                    )
                plan.append((info, path, "symlink", target))
            elif path is None:
                continue
            elif info.is_dir():
                plan.append((info, path, "dir", None))
            else:
                plan.append((info, path, "file", None))
        return plan
    for member in handle.getmembers():
        path = _member_path(archive, member.name)
        if member.issym():
            if path is None or not _link_stays_inside(path, member.linkname):
                raise _refuse(
                    archive, member.name, f"is a symlink pointing outside ({member.linkname!r})"
                )
            plan.append((member, path, "symlink", member.linkname))
        elif member.islnk():
            try:
                target = _member_path(archive, member.linkname)
            except UnsafeArchiveError:
                target = None
            if path is None or target is None:
                raise _refuse(
                    archive, member.name, f"is a hard link pointing outside ({member.linkname!r})"
                )
            plan.append((member, path, "hardlink", target))
        elif path is None:
            continue
        elif member.isdir():
            plan.append((member, path, "dir", None))
        elif member.isfile():
            plan.append((member, path, "file", None))
        else:
            raise _refuse(archive, member.name, "is a device, FIFO or other special file")
    return plan


def _extract_members(archive: Path, root: Path) -> None:
    """Extract ``archive`` into the existing folder ``root``, refusing anything unsafe."""
    kind = _archive_kind(archive)
    if kind is None:
        kind = "zip" if zipfile.is_zipfile(archive) else "tar"
    try:
        opened = zipfile.ZipFile(archive) if kind == "zip" else tarfile.open(archive)
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as exc:
        raise DownloadError(
            f"{archive} is not a readable {kind} archive ({exc}).\n"
            f"  What to do: delete {archive} (and its .sha256 record if you trust the "
            "source to have changed it) and download again."
        ) from exc
    links = []
    with opened as handle:
        plan = _plan_members(archive, kind, handle)
        for member, rel, what, link in plan:
            out = root.joinpath(*rel.parts)
            shown = member.filename if kind == "zip" else member.name
            if what == "dir":
                if out.is_symlink():
                    raise _refuse(archive, shown, "would write through a symlink")
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            if not _inside(out.parent, root):
                raise _refuse(archive, shown, "would be written through a symlink leading outside")
            if out.is_symlink() or out.is_file():
                out.unlink()
            elif out.exists():
                raise _refuse(archive, shown, "collides with a folder of the same name")
            if what == "file":
                source = handle.open(member) if kind == "zip" else handle.extractfile(member)
                with source, open(out, "xb") as target:
                    shutil.copyfileobj(source, target)
            elif what == "symlink":
                try:
                    os.symlink(link, out)
                except OSError as exc:  # e.g. Windows without the symlink privilege
                    raise DownloadError(
                        f"Could not create the symlink {shown!r} from {archive.name} ({exc}).\n"
                        "  What to do: unpack this archive with your system's tools."
                    ) from exc
                links.append((out, shown))
                if not _inside(out, root):
                    raise _refuse(archive, shown, f"is a symlink resolving outside ({link!r})")
            else:  # hard link: copy the already extracted file instead of linking
                source_path = root.joinpath(*link.parts)
                if not source_path.is_file() or not _inside(source_path, root):
                    raise _refuse(
                        archive, shown, f"is a hard link to {str(link)!r}, not an extracted file"
                    )
                shutil.copyfile(source_path, out)
    for out, shown in links:  # a later member may have changed where an earlier link leads
        if not _inside(out, root):
            raise _refuse(archive, shown, "is a symlink resolving outside")


def _partial_dir(final: Path) -> Path:
    """A hidden empty folder next to ``final`` (same file system, so renaming is atomic)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale_partials(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    umask = os.umask(0o022)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the final folder should not be
    return tmp


def _clear_stale_partials(final: Path) -> None:
    for stale in final.parent.glob(f".{final.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _extract_inner(archive: Path) -> None:
    """Unpack an archive found inside an archive next to itself, then delete it."""
    target = archive.parent / _strip_archive_suffix(archive.name)
    target.mkdir(exist_ok=True)
    _extract_members(archive, target)
    entries = [entry for entry in target.iterdir() if entry.name != "__MACOSX"]
    nested = target / target.name
    if len(entries) == 1 and nested.is_dir() and not nested.is_symlink():
        for child in nested.iterdir():  # "CT_COVID.zip" holding "CT_COVID/...": drop a level
            child.rename(target / child.name)
        nested.rmdir()
    archive.unlink()


def safe_extract(
    archive: str | os.PathLike,
    destination: str | os.PathLike,
    *,
    inner_archives: tuple[str, ...] = (),
    strip_single_folder: bool = False,
) -> Path:
    """Extract a zip or tar(.gz/.bz2/.xz) archive into ``destination``, safely and atomically.

    Every member is checked before anything is written: absolute paths, ``..``
    components, links leading outside, and device files are refused with an
    :class:`UnsafeArchiveError` naming the member. The files land in a hidden
    temporary folder next to ``destination`` that is renamed only when everything
    (including ``inner_archives``, glob patterns relative to the archive root) is
    unpacked, so a half-extracted folder never looks complete. ``destination``
    must not exist yet.
    """
    archive = Path(archive)
    final = Path(destination)
    if final.exists():
        raise FileExistsError(f"{final} already exists; remove it first")
    tmp = _partial_dir(final)
    try:
        _extract_members(archive, tmp)
        root = tmp
        entries = list(tmp.iterdir())
        if (
            strip_single_folder
            and len(entries) == 1
            and entries[0].is_dir()
            and not entries[0].is_symlink()
        ):
            root = entries[0]
        for pattern in inner_archives:
            for inner in sorted(root.glob(pattern)):
                if inner.is_file() and not inner.is_symlink() and _inside(inner, tmp):
                    _extract_inner(inner)
        os.replace(root, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


# ---------------------------------------------------------------------------
# Downloading
# ---------------------------------------------------------------------------


def _message(info: DatasetInfo, where: str, problem: str, what_to_do: str) -> str:
    return (
        f"Could not obtain dataset '{info.name}' ({info.title}).\n"
        f"  From: {where}\n"
        f"  Problem: {problem}\n"
        f"  What to do: {what_to_do}"
    )


_OFFLINE_HINT = (
    "Check your internet connection (and proxy settings), then run the command again. "
    "To keep working offline, use the embedded phantoms: covid-tutorial download phantoms"
)


def _filename_for(info: DatasetInfo) -> str:
    if info.filename:
        return info.filename
    name = PurePosixPath(urlparse(info.url or "").path).name
    return name or f"{info.name}.download"


def _fetch(info: DatasetInfo, folder: Path, progress: bool) -> Path:
    """Download ``info.url`` into ``folder`` with pooch, verifying its hash."""
    import pooch
    import requests

    url = info.url
    fname = _filename_for(info)
    target = folder / fname
    expected = info.checksum
    recorded = None
    if expected is None:
        recorded = _read_sidecar(target)
        if recorded is not None:
            expected = f"sha256:{recorded}"
    logger = pooch.get_logger()
    old_level = logger.level
    if not progress:
        logger.setLevel("WARNING")
    logger.addFilter(_hide_pooch_hash_advice)
    try:
        path = pooch.retrieve(
            url,
            known_hash=expected,
            fname=fname,
            path=folder,
            downloader=pooch.HTTPDownloader(progressbar=progress, timeout=HTTP_TIMEOUT),
        )
    except requests.exceptions.HTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        reason = getattr(exc.response, "reason", "") or ""
        if status is not None and 400 <= status < 500:
            todo = (
                f"The file may have moved or been withdrawn. Check {info.source_url} for a "
                "current link, or fetch it by hand and place it at "
                f"{target} (its hash is then checked as usual)."
            )
        else:
            todo = "The server had a problem; try again later."
        raise DownloadError(
            _message(info, url, f"the server answered HTTP {status} {reason}".rstrip() + ".", todo)
        ) from exc
    except (
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
    ) as exc:
        raise DownloadError(
            _message(
                info,
                url,
                "the download was interrupted before the file was complete; nothing was kept.",
                "Run the command again.",
            )
        ) from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        host = urlparse(url).netloc
        raise DownloadError(
            _message(
                info,
                url,
                f"could not reach {host}: you appear to be offline, or the server is "
                f"unreachable ({type(exc).__name__}).",
                _OFFLINE_HINT,
            )
        ) from exc
    except requests.exceptions.RequestException as exc:
        raise DownloadError(
            _message(
                info,
                url,
                f"the download failed and nothing was kept ({type(exc).__name__}: {exc}).",
                "Run the command again; if it keeps failing, check the address in a browser.",
            )
        ) from exc
    except ValueError as exc:
        if "hash" not in str(exc).lower():
            raise
        if recorded is not None:
            todo = (
                f"The file on the server is not the one you downloaded first (its SHA256 was "
                f"recorded in {_sidecar(target)}). If the publisher released a new version on "
                f"purpose, delete {_sidecar(target)} and download again; results may then "
                "differ from earlier runs. Otherwise do not use it."
            )
            source = f"recorded on the first download in {_sidecar(target)}"
        else:
            todo = (
                "The file may have been changed by its publisher or damaged on the way. Try "
                "again; if it persists, report it (the registry's checksum came from "
                f"{info.checksum_source})."
            )
            source = info.checksum_source
        raise ChecksumMismatchError(
            _message(
                info,
                url,
                f"the downloaded file does not match the expected checksum {expected} "
                f"({source}); it was deleted. Details: {exc}",
                todo,
            )
        ) from exc
    finally:
        logger.setLevel(old_level)
        logger.removeFilter(_hide_pooch_hash_advice)
    path = Path(path)
    if info.checksum is None and recorded is None:
        digest = sha256_of(path)
        _write_sidecar(path, digest)
        if progress:
            print(
                f"Recorded SHA256 {digest} in {_sidecar(path)}; later runs check the file "
                "against it.",
                file=sys.stderr,
            )
    return path


def _hide_pooch_hash_advice(record) -> bool:
    """Drop pooch's hint to paste the hash into code: the course records it in a file."""
    message = record.getMessage()
    return "known_hash" not in message and not message.startswith("SHA256 hash of downloaded")


def _kaggle_credentials_found() -> bool:
    env = os.environ
    if env.get("KAGGLE_API_TOKEN"):
        return True
    if env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY"):
        return True
    if env.get("KAGGLE_KERNEL_RUN_TYPE"):  # inside a Kaggle notebook
        return True
    if "google.colab" in sys.modules:  # kagglehub can read Colab secrets itself
        return True
    home_kaggle = Path.home() / ".kaggle"
    folders = [Path(env["KAGGLE_CONFIG_DIR"])] if env.get("KAGGLE_CONFIG_DIR") else []
    folders.append(home_kaggle)
    if any((folder / "kaggle.json").is_file() for folder in folders):
        return True
    return any((home_kaggle / name).is_file() for name in ("access_token", "access_token.txt"))


def _fetch_kaggle(info: DatasetInfo, folder: Path, force: bool) -> Path:
    page = f"https://www.kaggle.com/datasets/{info.kaggle_handle}"
    if not _kaggle_credentials_found():
        raise DownloadError(
            _message(
                info,
                f"Kaggle dataset {info.kaggle_handle} ({page})",
                "no Kaggle API token found (looked for KAGGLE_API_TOKEN, KAGGLE_USERNAME and "
                "KAGGLE_KEY, $KAGGLE_CONFIG_DIR/kaggle.json and ~/.kaggle/kaggle.json).",
                "\n" + KAGGLE_TOKEN_HELP,
            )
        )
    import kagglehub
    import requests

    kwargs = {"force_download": force}
    if "output_dir" in inspect.signature(kagglehub.dataset_download).parameters:
        kwargs["output_dir"] = str(folder)
    try:
        return Path(kagglehub.dataset_download(info.kaggle_handle, **kwargs))
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise DownloadError(
            _message(
                info,
                page,
                f"could not reach Kaggle: you appear to be offline ({exc}).",
                _OFFLINE_HINT,
            )
        ) from exc
    except requests.exceptions.HTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        todo = (
            "Check that your token is current (create a new one at "
            "https://www.kaggle.com/settings) and that you accepted the dataset's terms on "
            f"{page}."
            if status in (401, 403)
            else f"Check that {page} still exists."
        )
        raise DownloadError(
            _message(info, page, f"Kaggle answered HTTP {status}: {exc}", todo)
        ) from exc
    except Exception as exc:  # kagglehub raises its own types for credentials and backend errors
        raise DownloadError(
            _message(
                info,
                page,
                f"kagglehub failed: {type(exc).__name__}: {exc}",
                "Check your token (see docs/datasets.md) and the dataset page, then retry. "
                f"If {folder} holds a half-finished download, retry with force.",
            )
        ) from exc


def _is_populated(folder: Path) -> bool:
    return folder.is_dir() and any(not entry.name.startswith(".") for entry in folder.iterdir())


def _generate(info: DatasetInfo, folder: Path, progress: bool, force: bool) -> Path:
    if _is_populated(folder) and not force:
        return folder
    try:
        phantoms = importlib.import_module("covid_tutorial.phantoms")
    except ImportError as exc:
        raise DownloadError(
            _message(
                info,
                info.source_url,
                f"the phantom generator could not be imported ({exc}).",
                "Reinstall the package (pip install -e .) and try again.",
            )
        ) from exc
    tmp = _partial_dir(folder)
    try:
        phantoms.generate_phantoms(tmp, progress=progress)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def download_dataset(
    name: str | DatasetInfo,
    dest: str | os.PathLike | None = None,
    *,
    progress: bool = True,
    force: bool = False,
    info: DatasetInfo | None = None,
) -> Path:
    """Obtain a collection and return the path to point a loader at.

    ``name`` is a registry name (see :func:`list_datasets`) or a :class:`DatasetInfo`
    (``info=`` does the same; tests use it to point an entry at a local server).
    Files go to ``dest`` or ``<data dir>/<name>`` (see :func:`default_data_dir`).

    - ``direct``/``github``: the file is fetched with pooch into a temporary file that is
      renamed only once complete and hash-checked (a published checksum, or the SHA256
      recorded in ``<file>.sha256`` on the first download). Archives are unpacked by
      :func:`safe_extract` into ``<file name without suffix>/`` (a single wrapping folder,
      as in GitHub archives, is dropped); that folder is returned. Other files are
      returned as they are.
    - ``kaggle``: needs your Kaggle token; kagglehub downloads and unpacks.
    - ``manual``: raises :class:`ManualDownloadRequired` with the steps until the folder
      holds files, then returns the folder.
    - ``generate``: the phantoms are generated into the folder.

    An unpacked folder whose archive was deleted (to save space) is returned as it is;
    ``force=True`` fetches again (keeping the ``.sha256`` record, so a changed file is
    still caught). Every failure raises :class:`DownloadError` with a message saying
    what failed, from where, and what to do.
    """
    if isinstance(name, DatasetInfo):
        info = name
    elif info is None:
        info = get_dataset_info(name)
    folder = dataset_dir(info, dest)

    if info.method == "generate":
        return _generate(info, folder, progress, force)
    if info.method == "manual":
        if _is_populated(folder) and not force:
            return folder
        raise ManualDownloadRequired(
            f"Dataset '{info.name}' ({info.title}) cannot be downloaded automatically.\n"
            f"  Source: {info.source_url}\n"
            f"  Steps:\n    {info.manual_steps.strip().replace(chr(10), chr(10) + '    ')}\n"
            f"  Put the files in: {folder}\n"
            "  Then run the same command again; it will find them there."
        )
    if info.method == "kaggle":
        return _fetch_kaggle(info, folder, force)
    folder.mkdir(parents=True, exist_ok=True)

    fname = _filename_for(info)
    kind = _archive_kind(Path(fname))
    extracted = folder / _strip_archive_suffix(fname)
    if force:
        (folder / fname).unlink(missing_ok=True)
        if kind and extracted.exists():
            shutil.rmtree(extracted)
    if kind and extracted.is_dir() and not (folder / fname).exists():
        return extracted  # unpacked earlier and the archive deleted to save space
    path = _fetch(info, folder, progress)
    if kind is None:
        return path
    if not extracted.is_dir():
        safe_extract(path, extracted, inner_archives=info.inner_archives, strip_single_folder=True)
    return extracted
