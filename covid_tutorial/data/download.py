"""Fetch a collection of the registry into the data folder, check it, and unpack it safely.

:func:`download_dataset` obtains a collection the way its entry in
:data:`covid_tutorial.data.registry.REGISTRY` says: pooch for "direct" and "github" files
(checked against a published checksum, or the SHA256 recorded in ``<file>.sha256`` on
the first download), kagglehub for "kaggle", the phantom generator for "generate", and
the steps to follow for "manual". Archives are unpacked by :func:`safe_extract`: the
standard library's own guards (tarfile's "data" filter, zipfile's cleaning of member
names) plus the few checks they leave to the caller.

Typical use::

    from covid_tutorial.data.download import download_dataset
    root = download_dataset("pneumoniamnist")
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import requests

from ..errors import CourseError
from ..system import atomic_path, data_root, running_on_colab
from . import phantoms
from .registry import REGISTRY, DatasetInfo, get_dataset_info

__all__ = [
    "DATA_ENV_VAR",
    "MAX_UNPACKED_BYTES",
    "DownloadError",
    "UnsafeArchiveError",
    "ChecksumMismatchError",
    "ManualDownloadRequired",
    "default_data_dir",
    "dataset_dir",
    "dataset_location",
    "download_dataset",
    "safe_extract",
    "sha256_of_file",
]

#: Environment variable that sets where downloads go.
DATA_ENV_VAR = "COVID_TUTORIAL_DATA"

#: The most one archive may unpack to, in bytes, summed over the sizes its members
#: declare (zipfile and tarfile never write more than a member declares). A zip bomb
#: declares more; a genuine archive that needs more can pass ``max_unpacked_bytes``.
MAX_UNPACKED_BYTES = 32 * 2**30

_HTTP_TIMEOUT = 60  # seconds to wait for a server before calling it unreachable

_ARCHIVE_SUFFIXES = (
    (".tar.gz", "tar"),
    (".tgz", "tar"),
    (".tar.bz2", "tar"),
    (".tar.xz", "tar"),
    (".tar", "tar"),
    (".zip", "zip"),
)

_KAGGLE_TOKEN_HELP = """\
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

_LEADS_OUTSIDE = "is a symlink leading outside the destination ({target!r})"

_OFFLINE_HINT = (
    "Check your internet connection (and proxy settings), then run the command again. "
    "To keep working offline, use the embedded phantoms: covid-tutorial download phantoms"
)


class DownloadError(CourseError):
    """A dataset could not be obtained. The message says which, from where, and what to do.

    A :class:`~covid_tutorial.errors.CourseError`, so the command line prints it as one
    message with no traceback.
    """


class UnsafeArchiveError(DownloadError):
    """An archive member would land outside the destination, is a special file, or the
    archive unpacks to more than the size limit."""


class ChecksumMismatchError(DownloadError):
    """The downloaded bytes are not the ones expected."""


class ManualDownloadRequired(DownloadError):
    """The collection cannot be fetched automatically; the message holds the steps."""


# ---------------------------------------------------------------------------
# Where files go
# ---------------------------------------------------------------------------


def _checkout_root() -> Path | None:
    root = Path(__file__).resolve().parents[2]  # covid_tutorial/data/download.py -> the checkout
    if (root / "pyproject.toml").is_file() and (root / "covid_tutorial").is_dir():
        return root
    return None


def default_data_dir() -> Path:
    """``$COVID_TUTORIAL_DATA``, else ``<repo>/data/downloads`` in a checkout, else on Colab
    ``downloads`` in its session storage (:func:`~covid_tutorial.system.data_root`), else a user cache."""
    configured = os.environ.get(DATA_ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    root = _checkout_root()
    if root is not None:
        return root / "data" / "downloads"
    if running_on_colab():
        return data_root() / "downloads"
    import pooch  # here, not at the top: importing it reaches tqdm.auto, which warns in notebooks

    return Path(pooch.os_cache("covid_tutorial"))


def dataset_dir(name: str | DatasetInfo, dest: str | os.PathLike | None = None) -> Path:
    """The folder a collection is downloaded into (nothing is created)."""
    info = name if isinstance(name, DatasetInfo) else get_dataset_info(name)
    return Path(dest).expanduser() if dest is not None else default_data_dir() / info.name


# ---------------------------------------------------------------------------
# Hashes
# ---------------------------------------------------------------------------


def dataset_location(source) -> Path:
    """Where DATA lives: the path as given, or for a registry name that is not a path, the
    folder ``covid-tutorial download NAME`` puts that collection in."""
    path = Path(source)
    if not path.exists() and str(source) in REGISTRY:
        return dataset_dir(str(source))
    return path


def sha256_of_file(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


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
    with atomic_path(sidecar) as tmp:
        tmp.write_text(f"{digest}  {path.name}\n", encoding="utf-8")


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


def _inside(path: str | os.PathLike, root: Path) -> bool:
    real = os.path.realpath(path)
    real_root = os.path.realpath(root)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def _check_names_and_sizes(archive: Path, members: list[tuple[str, int]], limit: int) -> None:
    """Refuse names the standard library would quietly rewrite, and archives that unpack
    past ``limit`` bytes, before anything is written."""
    total = 0
    for name, size in members:
        unified = name.replace("\\", "/")
        if unified.startswith("/") or re.match(r"[A-Za-z]:", unified):
            raise _refuse(archive, name, "has an absolute path")
        if ".." in unified.split("/"):
            raise _refuse(archive, name, "has a '..' component that climbs out of the destination")
        total += size
        if total > limit:
            raise UnsafeArchiveError(
                f"Refused to extract {archive.name}: its members declare more than {limit:,} "
                f"bytes unpacked (the limit is passed at member {name!r}, {size:,} bytes).\n"
                "  Nothing from this archive was kept. A small archive that unpacks this big is "
                "a zip bomb; if this one is genuine and the disk has room, call safe_extract "
                "with a larger max_unpacked_bytes."
            )


def _unpack_zip(archive: Path, handle: zipfile.ZipFile, root: Path, limit: int) -> None:
    members = handle.infolist()
    _check_names_and_sizes(archive, [(m.filename, m.file_size) for m in members], limit)
    links = []
    for member in members:
        kind = stat.S_IFMT(member.external_attr >> 16)
        if kind == stat.S_IFLNK:
            links.append(member)
        elif kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise _refuse(archive, member.filename, "is a device, FIFO or other special file")
    handle.extractall(root, members=[member for member in members if member not in links])
    # zipfile writes a link as a file holding its target; make it a link, after every
    # file is written so that nothing is written through it.
    for member in links:
        target = handle.read(member).decode("utf-8")
        link = root / member.filename
        if not _inside(link.parent, root) or not _inside(link.parent / target, root):
            raise _refuse(archive, member.filename, _LEADS_OUTSIDE.format(target=target))
        link.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.symlink(target, link)
        except FileExistsError:
            raise _refuse(archive, member.filename, "collides with another member") from None
        except OSError as exc:  # e.g. Windows without the symlink privilege
            raise DownloadError(
                f"Could not create the symlink {member.filename!r} from {archive.name} ({exc}).\n"
                "  What to do: unpack this archive with your system's tools."
            ) from exc


def _unpack_tar(archive: Path, handle: tarfile.TarFile, root: Path, limit: int) -> None:
    members = handle.getmembers()
    _check_names_and_sizes(archive, [(m.name, m.size if m.isfile() else 0) for m in members], limit)
    try:
        handle.extractall(root, members=members, filter="data")
    except tarfile.FilterError as exc:  # PEP 706: links leading out, special files, ...
        member = exc.tarinfo
        if isinstance(exc, (tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError)):
            kind = "symlink" if member.issym() else "hard link"
            why = f"is a {kind} leading outside the destination ({member.linkname!r})"
        elif isinstance(exc, tarfile.SpecialFileError):
            why = "is a device, FIFO or other special file"
        else:
            why = f"would land outside the destination ({exc})"
        raise _refuse(archive, member.name, why) from exc


def _check_links_stay_inside(archive: Path, root: Path) -> None:
    """A link that led inside when it was made may lead out once a later link exists."""
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            if os.path.islink(path) and not _inside(path, root):
                member = Path(path).relative_to(root).as_posix()
                target = os.readlink(path)
                raise _refuse(archive, member, _LEADS_OUTSIDE.format(target=target))


def _unpack_into(archive: Path, root: Path, limit: int) -> None:
    """Extract ``archive`` into the existing folder ``root``, refusing anything unsafe."""
    kind = _archive_kind(archive) or ("zip" if zipfile.is_zipfile(archive) else "tar")
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as handle:
                _unpack_zip(archive, handle, root, limit)
        else:
            with tarfile.open(archive) as handle:
                _unpack_tar(archive, handle, root, limit)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
        raise DownloadError(
            f"{archive} is not a readable {kind} archive ({exc}).\n"
            f"  What to do: delete {archive} (and its .sha256 record if you trust the "
            "source to have changed it) and download again."
        ) from exc
    _check_links_stay_inside(archive, root)


def _partial_dir(final: Path) -> Path:
    """A hidden empty folder next to ``final`` (same file system, so renaming is atomic)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    umask = os.umask(0o022)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the final folder should not be
    return tmp


def _extract_inner(archive: Path, limit: int) -> None:
    """Unpack an archive found inside an archive next to itself, then delete it."""
    target = archive.parent / _strip_archive_suffix(archive.name)
    target.mkdir(exist_ok=True)
    _unpack_into(archive, target, limit)
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
    max_unpacked_bytes: int = MAX_UNPACKED_BYTES,
) -> Path:
    """Extract a zip or tar(.gz/.bz2/.xz) archive into ``destination``, safely and atomically.

    Before anything is written, member names that are absolute or hold ``..`` are
    refused, and so is an archive whose members declare more than
    ``max_unpacked_bytes`` in all (a zip bomb). tar members go through tarfile's "data"
    filter (PEP 706), which refuses links leading outside and special files; zip links
    leading outside and zip special files are refused here. Every refusal raises
    :class:`UnsafeArchiveError` naming the member. The files land in a hidden temporary
    folder next to ``destination`` that is renamed only when everything (including
    ``inner_archives``, glob patterns relative to the archive root) is unpacked, so a
    half-extracted folder never looks complete. ``destination`` must not exist yet.
    """
    archive = Path(archive)
    final = Path(destination)
    if final.exists():
        raise FileExistsError(f"{final} already exists; remove it first")
    tmp = _partial_dir(final)
    try:
        _unpack_into(archive, tmp, max_unpacked_bytes)
        root = tmp
        entries = list(tmp.iterdir())
        single = entries[0] if len(entries) == 1 else None
        if strip_single_folder and single and single.is_dir() and not single.is_symlink():
            root = single
        for pattern in inner_archives:
            for inner in sorted(root.glob(pattern)):
                if inner.is_file() and not inner.is_symlink() and _inside(inner, tmp):
                    _extract_inner(inner, max_unpacked_bytes)
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


def _filename_for(info: DatasetInfo) -> str:
    if info.filename:
        return info.filename
    name = PurePosixPath(urlparse(info.url or "").path).name
    return name or f"{info.name}.download"


def _fetch(info: DatasetInfo, folder: Path, progress: bool) -> Path:
    """Download ``info.url`` into ``folder`` with pooch, verifying its hash."""
    import pooch  # see default_data_dir

    fname = _filename_for(info)
    target = folder / fname
    expected, recorded = _expected_hash(info, target)
    with _pooch_messages(pooch.get_logger(), progress):
        try:
            path = pooch.retrieve(
                info.url,
                known_hash=expected,
                fname=fname,
                path=folder,
                downloader=pooch.HTTPDownloader(progressbar=progress, timeout=_HTTP_TIMEOUT),
            )
        except requests.exceptions.RequestException as exc:
            raise _request_failure(info, target, exc) from exc
        except ValueError as exc:
            if "hash" not in str(exc).lower():
                raise
            raise _checksum_failure(info, target, expected, recorded, exc) from exc
    path = Path(path)
    if info.checksum is None and recorded is None:
        _record_first_hash(path, progress)
    return path


def _expected_hash(info: DatasetInfo, target: Path) -> tuple[str | None, str | None]:
    """The hash pooch checks ``target`` against, and the SHA256 recorded beside it on the first
    download when that is where the hash comes from (None when the registry publishes one)."""
    if info.checksum is not None:
        return info.checksum, None
    recorded = _read_sidecar(target)
    return (None if recorded is None else f"sha256:{recorded}"), recorded


@contextlib.contextmanager
def _pooch_messages(logger, progress: bool):
    """Pooch's log without its hash advice, and without its progress lines unless ``progress``."""
    old_level = logger.level
    if not progress:
        logger.setLevel("WARNING")
    logger.addFilter(_hide_pooch_hash_advice)
    try:
        yield
    finally:
        logger.setLevel(old_level)
        logger.removeFilter(_hide_pooch_hash_advice)


def _request_failure(info: DatasetInfo, target: Path, exc: requests.exceptions.RequestException) -> DownloadError:
    """What went wrong on the way to the server, and what to do about it."""
    url = info.url
    if isinstance(exc, requests.exceptions.HTTPError):
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
        return DownloadError(_message(info, url, f"the server answered HTTP {status} {reason}".rstrip() + ".", todo))
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        return DownloadError(
            _message(
                info,
                url,
                "the download was interrupted before the file was complete; nothing was kept.",
                "Run the command again.",
            )
        )
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        host = urlparse(url).netloc
        return DownloadError(
            _message(
                info,
                url,
                f"could not reach {host}: you appear to be offline, or the server is "
                f"unreachable ({type(exc).__name__}).",
                _OFFLINE_HINT,
            )
        )
    return DownloadError(
        _message(
            info,
            url,
            f"the download failed and nothing was kept ({type(exc).__name__}: {exc}).",
            "Run the command again; if it keeps failing, check the address in a browser.",
        )
    )


def _checksum_failure(
    info: DatasetInfo, target: Path, expected: str | None, recorded: str | None, exc: ValueError
) -> ChecksumMismatchError:
    """The downloaded file is not the expected one: whose hash it failed, and what to do."""
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
    return ChecksumMismatchError(
        _message(
            info,
            info.url,
            f"the downloaded file does not match the expected checksum {expected} "
            f"({source}); it was deleted. Details: {exc}",
            todo,
        )
    )


def _record_first_hash(path: Path, progress: bool) -> None:
    """Write the SHA256 of a first download beside it, for later downloads to be checked against."""
    digest = sha256_of_file(path)
    _write_sidecar(path, digest)
    if progress:
        print(
            f"Recorded SHA256 {digest} in {_sidecar(path)}; later runs check the file "
            "against it.",
            file=sys.stderr,
        )


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
                "\n" + _KAGGLE_TOKEN_HELP,
            )
        )
    import kagglehub  # only for Kaggle collections

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


def _generate(folder: Path, progress: bool, force: bool) -> Path:
    if _is_populated(folder) and not force:
        return folder
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        phantoms.generate_phantoms(tmp, progress=progress)
    return folder


def download_dataset(
    name: str | DatasetInfo,
    dest: str | os.PathLike | None = None,
    *,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Obtain a collection and return the path to point a loader at.

    ``name`` is a registry name (see :func:`covid_tutorial.data.registry.list_datasets`) or a
    :class:`~covid_tutorial.data.registry.DatasetInfo` (tests use one to point an entry at a
    local server). Files go to ``dest`` or ``<data dir>/<name>`` (see
    :func:`default_data_dir`).

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
    what failed, from where, and what to do; an unknown name raises
    :class:`~covid_tutorial.data.registry.UnknownDatasetError`.
    """
    info = name if isinstance(name, DatasetInfo) else get_dataset_info(name)
    folder = dataset_dir(info, dest)

    if info.method == "generate":
        return _generate(folder, progress, force)
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
