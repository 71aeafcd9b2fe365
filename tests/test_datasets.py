"""Tests for the dataset registry and the downloader.

All downloads go to a local HTTP server on 127.0.0.1 that serves archives built in
``tmp_path``; a guard fails any test that tries to open a connection elsewhere.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import socket
import sys
import types
from pathlib import Path

import pytest

from covid_tutorial import datasets as ds
from fixtures_http import (
    CLASS_TREE,
    closed_port,
    serve_directory,
    tiny_png,
    write_tar_gz,
    write_tar_with_links,
    write_zip,
    write_zip_raw_names,
    write_zip_with_symlink,
)

REPO = Path(__file__).resolve().parent.parent
REQUIRED = {
    "covid-chestxray",
    "covid19-radiography",
    "covid-qu-ex",
    "sars-cov-2-ct",
    "covid-ct-multiclass",
    "ucsd-covid-ct",
    "pneumoniamnist",
    "phantoms",
}


@pytest.fixture(autouse=True)
def only_loopback(monkeypatch):
    """Fail fast if anything tries to reach a host other than 127.0.0.1."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"test tried to connect to {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def served(tmp_path):
    """A folder served over HTTP; yields (folder, base_url, requests_seen)."""
    folder = tmp_path / "served"
    folder.mkdir()
    with serve_directory(folder) as (base_url, seen):
        yield folder, base_url, seen


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    monkeypatch.setenv(ds.DATA_ENV_VAR, str(folder))
    return folder


def make_info(
    url: str, name: str = "fixture", filename: str | None = None, **changes
) -> ds.DatasetInfo:
    """A registry entry pointing at the local server."""
    base = dict(
        name=name,
        title="Test fixture",
        modality="X-ray",
        method="direct",
        source_url="http://127.0.0.1/",
        url=url,
        filename=filename,
        licence="test",
        citation="test",
        classes={"COVID": "COVID-19", "Normal": "Normal", "Viral Pneumonia": "Pneumonia"},
        has_patient_ids=False,
        patient_ids="none",
        layout="folder-per-class",
    )
    base.update(changes)
    return ds.DatasetInfo(**base)


def tree_of(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def leftovers(folder: Path) -> list[str]:
    """Temporary or partial files that must never be left behind."""
    return sorted(
        path.name
        for path in folder.rglob("*")
        if path.name.startswith("tmp") or ".partial-" in path.name or path.name.endswith(".tmp")
    )


# --- good archives ------------------------------------------------------------------


def test_zip_downloads_and_extracts_to_the_class_tree(served, data_dir):
    folder, base_url, _ = served
    write_zip(folder / "good.zip", CLASS_TREE)
    root = ds.download_dataset(make_info(f"{base_url}/good.zip"), progress=False)
    assert root == data_dir / "fixture" / "good"
    assert tree_of(root) == CLASS_TREE
    assert (data_dir / "fixture" / "good.zip").is_file()
    assert leftovers(data_dir) == []


def test_tar_gz_with_wrapping_folder_extracts_to_the_class_tree(served, data_dir):
    folder, base_url, _ = served
    write_tar_gz(folder / "good.tar.gz", CLASS_TREE, prefix="good-main/")
    root = ds.download_dataset(make_info(f"{base_url}/good.tar.gz"), progress=False)
    assert root == data_dir / "fixture" / "good"  # the single wrapping folder is dropped
    assert tree_of(root) == CLASS_TREE


def test_dest_argument_puts_files_there(served, tmp_path):
    folder, base_url, _ = served
    write_zip(folder / "good.zip", CLASS_TREE)
    dest = tmp_path / "elsewhere"
    root = ds.download_dataset(make_info(f"{base_url}/good.zip"), dest=dest, progress=False)
    assert root == dest / "good"
    assert tree_of(root) == CLASS_TREE


def test_inner_archives_are_unpacked_in_place(served, data_dir):
    folder, base_url, _ = served
    inner = write_zip(
        folder / "inner.zip", {"a.png": tiny_png(1), "b.png": tiny_png(2)}, prefix="CT_COVID/"
    )
    outer = {"Images-processed/CT_COVID.zip": inner.read_bytes(), "README.md": b"hi"}
    write_zip(folder / "outer.zip", outer, prefix="repo-master/")
    info = make_info(f"{base_url}/outer.zip", inner_archives=("Images-processed/*.zip",))
    root = ds.download_dataset(info, progress=False)
    assert sorted(tree_of(root)) == [
        "Images-processed/CT_COVID/a.png",
        "Images-processed/CT_COVID/b.png",
        "README.md",
    ]


def test_single_file_download_is_returned_as_is(served, data_dir):
    folder, base_url, _ = served
    (folder / "arrays.npz").write_bytes(b"not really npz")
    info = make_info(
        f"{base_url}/arrays.npz?download=1", filename="arrays.npz", layout="npz-arrays"
    )
    path = ds.download_dataset(info, progress=False)
    assert path == data_dir / "fixture" / "arrays.npz"
    assert path.read_bytes() == b"not really npz"


# --- checksums ----------------------------------------------------------------------


def test_sha256_recorded_on_first_download_and_verified_on_the_second(served, data_dir):
    folder, base_url, seen = served
    archive = write_zip(folder / "good.zip", CLASS_TREE)
    info = make_info(f"{base_url}/good.zip")
    ds.download_dataset(info, progress=False)
    sidecar = data_dir / "fixture" / "good.zip.sha256"
    expected = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert sidecar.read_text().split() == [expected, "good.zip"]
    assert len(seen) == 1

    ds.download_dataset(info, progress=False)  # file present and matching: no new request
    assert len(seen) == 1

    local = data_dir / "fixture" / "good.zip"
    local.write_bytes(b"corrupted on disk")  # a damaged local copy is fetched again
    ds.download_dataset(info, progress=False)
    assert len(seen) == 2
    assert local.read_bytes() == archive.read_bytes()


def test_file_changed_on_the_server_after_first_download_is_refused(served, data_dir):
    folder, base_url, _ = served
    archive = write_zip(folder / "good.zip", CLASS_TREE)
    info = make_info(f"{base_url}/good.zip")
    ds.download_dataset(info, progress=False)
    write_zip(archive, {**CLASS_TREE, "COVID/extra.png": tiny_png(9)})  # tampered upstream

    with pytest.raises(ds.ChecksumMismatchError) as caught:
        ds.download_dataset(info, progress=False, force=True)
    message = str(caught.value)
    assert "'fixture'" in message and f"{base_url}/good.zip" in message
    assert "good.zip.sha256" in message and "delete" in message
    assert not (data_dir / "fixture" / "good.zip").exists()  # the bad bytes were not kept
    assert (data_dir / "fixture" / "good.zip.sha256").exists()
    assert leftovers(data_dir) == []


def test_published_checksum_mismatch_keeps_nothing(served, data_dir):
    folder, base_url, _ = served
    write_zip(folder / "good.zip", CLASS_TREE)
    info = make_info(
        f"{base_url}/good.zip", checksum="sha256:" + "0" * 64, checksum_source="a test that lies"
    )
    with pytest.raises(ds.ChecksumMismatchError, match="a test that lies"):
        ds.download_dataset(info, progress=False)
    assert sorted(p.name for p in (data_dir / "fixture").iterdir()) == []


def test_published_checksum_match_passes_and_writes_no_sidecar(served, data_dir):
    folder, base_url, _ = served
    archive = write_zip(folder / "good.zip", CLASS_TREE)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    info = make_info(
        f"{base_url}/good.zip", checksum=f"md5:{md5}", checksum_source="computed in this test"
    )
    root = ds.download_dataset(info, progress=False)
    assert tree_of(root) == CLASS_TREE
    assert not (data_dir / "fixture" / "good.zip.sha256").exists()


def test_interrupted_download_leaves_no_file(served, data_dir):
    _, base_url, _ = served
    with pytest.raises(ds.DownloadError, match="interrupted"):
        ds.download_dataset(make_info(f"{base_url}/truncated/x.zip"), progress=False)
    assert list((data_dir / "fixture").iterdir()) == []


# --- hostile archives ---------------------------------------------------------------


def assert_nothing_escaped(tmp_path: Path, data_dir: Path) -> None:
    assert not [p for p in tmp_path.rglob("evil*") if "served" not in p.parts]
    assert not (data_dir / "fixture" / "bad").exists()
    assert leftovers(data_dir) == []


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        ("../evil.txt", "'..' component"),
        ("COVID/../../evil.txt", "'..' component"),
        ("..\\evil.txt", "'..' component"),
        ("/tmp/evil_absolute.txt", "absolute path"),
        ("C:/evil.txt", "absolute path"),
    ],
)
def test_hostile_zip_member_is_refused_and_named(served, data_dir, tmp_path, member, reason):
    folder, base_url, _ = served
    write_zip_raw_names(folder / "bad.zip", [("COVID/ok.png", tiny_png(1)), (member, b"owned")])
    assert member in __import__("zipfile").ZipFile(folder / "bad.zip").namelist()
    with pytest.raises(ds.UnsafeArchiveError) as caught:
        ds.download_dataset(make_info(f"{base_url}/bad.zip"), progress=False)
    assert repr(member) in str(caught.value) and reason in str(caught.value)
    assert not Path("/tmp/evil_absolute.txt").exists()
    assert_nothing_escaped(tmp_path, data_dir)


def test_tar_symlink_escaping_is_refused(served, data_dir, tmp_path):
    folder, base_url, _ = served
    write_tar_with_links(
        folder / "bad.tar",
        [("symlink", "COVID/link", "../../../outside"), ("file", "COVID/link/evil.txt", "owned")],
    )
    with pytest.raises(ds.UnsafeArchiveError, match="'COVID/link' is a symlink pointing outside"):
        ds.download_dataset(make_info(f"{base_url}/bad.tar"), progress=False)
    assert not (tmp_path / "outside").exists()
    assert_nothing_escaped(tmp_path, data_dir)


def test_tar_absolute_symlink_is_refused(served, data_dir, tmp_path):
    folder, base_url, _ = served
    write_tar_with_links(folder / "bad.tar", [("symlink", "etc", "/etc")])
    with pytest.raises(ds.UnsafeArchiveError, match="'etc' is a symlink pointing outside"):
        ds.download_dataset(make_info(f"{base_url}/bad.tar"), progress=False)
    assert_nothing_escaped(tmp_path, data_dir)


def test_tar_chained_symlinks_that_escape_are_refused(served, data_dir, tmp_path):
    # each link looks harmless alone; together d/c/.. leads out of the destination
    folder, base_url, _ = served
    write_tar_with_links(
        folder / "bad.tar",
        [
            ("file", "d/x.txt", "x"),
            ("symlink", "d/c", ".."),
            ("symlink", "a", "d/c/../.."),
            ("file", "a/evil.txt", "owned"),
        ],
    )
    with pytest.raises(ds.UnsafeArchiveError, match="'a' is a symlink resolving outside"):
        ds.download_dataset(make_info(f"{base_url}/bad.tar"), progress=False)
    assert_nothing_escaped(tmp_path, data_dir)


def test_tar_symlink_made_to_escape_by_a_later_member_is_refused(tmp_path):
    # "a" is created while it still resolves inside; "d/c" then makes it lead outside
    archive = write_tar_with_links(
        tmp_path / "bad.tar",
        [("file", "d/x.txt", "x"), ("symlink", "a", "d/c/../.."), ("symlink", "d/c", "..")],
    )
    with pytest.raises(ds.UnsafeArchiveError, match="'a' is a symlink resolving outside"):
        ds.safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_tar_special_files_are_refused(tmp_path):
    import tarfile

    archive = tmp_path / "fifo.tar"
    with tarfile.open(archive, "w") as handle:
        member = tarfile.TarInfo("COVID/pipe")
        member.type = tarfile.FIFOTYPE
        handle.addfile(member)
    with pytest.raises(ds.UnsafeArchiveError, match="'COVID/pipe' is a device, FIFO"):
        ds.safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_tar_hardlink_escaping_is_refused(served, data_dir, tmp_path):
    folder, base_url, _ = served
    write_tar_with_links(folder / "bad.tar", [("hardlink", "COVID/evil", "../../etc/passwd")])
    with pytest.raises(ds.UnsafeArchiveError, match="'COVID/evil'.*hard link"):
        ds.download_dataset(make_info(f"{base_url}/bad.tar"), progress=False)
    assert_nothing_escaped(tmp_path, data_dir)


def test_zip_symlink_escaping_is_refused(served, data_dir, tmp_path):
    folder, base_url, _ = served
    write_zip_with_symlink(folder / "bad.zip", "COVID/link", "/etc/passwd")
    with pytest.raises(ds.UnsafeArchiveError, match="'COVID/link' is a symlink pointing outside"):
        ds.download_dataset(make_info(f"{base_url}/bad.zip"), progress=False)
    assert_nothing_escaped(tmp_path, data_dir)


def test_extraction_happens_in_a_hidden_folder_renamed_when_complete(tmp_path, monkeypatch):
    archive = write_zip(tmp_path / "good.zip", CLASS_TREE)
    final = tmp_path / "out"
    seen = []
    real = ds._extract_members

    def spy(path, root):
        seen.append((Path(root), final.exists()))
        real(path, root)

    monkeypatch.setattr(ds, "_extract_members", spy)
    assert ds.safe_extract(archive, final) == final
    ((root, final_existed),) = seen
    assert root.parent == final.parent and root.name.startswith(".out.partial-")
    assert not final_existed and not root.exists()
    assert tree_of(final) == CLASS_TREE
    with pytest.raises(FileExistsError):
        ds.safe_extract(archive, final)


def test_links_that_stay_inside_are_extracted(tmp_path):
    archive = write_tar_with_links(
        tmp_path / "ok.tar",
        [
            ("file", "COVID/a.txt", "a"),
            ("symlink", "COVID/b.txt", "a.txt"),
            ("hardlink", "Normal/c.txt", "COVID/a.txt"),
        ],
    )
    out = ds.safe_extract(archive, tmp_path / "out")
    assert (out / "COVID" / "b.txt").read_text() == "a"
    assert (out / "Normal" / "c.txt").read_text() == "a"
    assert not (out / "Normal" / "c.txt").is_symlink()


# --- HTTP and network errors --------------------------------------------------------


@pytest.mark.parametrize("status", [404, 500])
def test_http_error_names_the_url_and_status(served, data_dir, status):
    _, base_url, _ = served
    url = f"{base_url}/status/{status}"
    with pytest.raises(ds.DownloadError) as caught:
        ds.download_dataset(make_info(url, filename="x.zip"), progress=False)
    message = str(caught.value)
    assert url in message and f"HTTP {status}" in message and "What to do" in message
    assert list((data_dir / "fixture").iterdir()) == []


def test_connection_refused_says_offline_or_unreachable(data_dir):
    url = f"http://127.0.0.1:{closed_port()}/good.zip"
    with pytest.raises(ds.DownloadError) as caught:
        ds.download_dataset(make_info(url), progress=False)
    message = str(caught.value)
    assert url in message and "offline" in message and "unreachable" in message
    assert "phantoms" in message


# --- Kaggle, manual, generated ------------------------------------------------------


def clear_kaggle_credentials(monkeypatch, home: Path) -> None:
    for var in (
        "KAGGLE_API_TOKEN",
        "KAGGLE_USERNAME",
        "KAGGLE_KEY",
        "KAGGLE_CONFIG_DIR",
        "KAGGLE_KERNEL_RUN_TYPE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)


def test_missing_kaggle_token_explains_how_to_get_one(monkeypatch, tmp_path, data_dir):
    clear_kaggle_credentials(monkeypatch, tmp_path / "home")
    import kagglehub

    monkeypatch.setattr(
        kagglehub, "dataset_download", lambda *a, **k: pytest.fail("kagglehub was called")
    )
    with pytest.raises(ds.DownloadError) as caught:
        ds.download_dataset("covid19-radiography", progress=False)
    message = str(caught.value)
    assert "tawsifurrahman/covid19-radiography-database" in message
    assert "https://www.kaggle.com/settings" in message and "Create New Token" in message
    assert "kaggle.json" in message and "KAGGLE_USERNAME" in message


def test_kaggle_token_file_lets_kagglehub_run(monkeypatch, tmp_path, data_dir):
    home = tmp_path / "home"
    clear_kaggle_credentials(monkeypatch, home)
    (home / ".kaggle").mkdir(parents=True)
    (home / ".kaggle" / "kaggle.json").write_text('{"username": "u", "key": "k"}')
    calls = []

    def fake_download(handle, **kwargs):
        calls.append((handle, kwargs))
        return str(tmp_path / "kaggle-files")

    import kagglehub

    monkeypatch.setattr(kagglehub, "dataset_download", fake_download)
    path = ds.download_dataset("SARS-CoV-2-CT", progress=False)
    assert path == tmp_path / "kaggle-files"
    assert calls[0][0] == "plameneduardo/sarscov2-ctscan-dataset"


def test_kaggle_errors_become_download_errors(monkeypatch, tmp_path, data_dir):
    clear_kaggle_credentials(monkeypatch, tmp_path / "home")
    monkeypatch.setenv("KAGGLE_USERNAME", "u")
    monkeypatch.setenv("KAGGLE_KEY", "k")
    import kagglehub

    def broken(handle, **kwargs):
        raise RuntimeError("backend said no")

    monkeypatch.setattr(kagglehub, "dataset_download", broken)
    with pytest.raises(ds.DownloadError, match="backend said no"):
        ds.download_dataset("covid-qu-ex", progress=False)


def test_manual_dataset_gives_steps_then_finds_the_files(tmp_path):
    info = make_info(None, method="manual", manual_steps="1. Ask the author.\n2. Unzip here.")
    dest = tmp_path / "manual"
    with pytest.raises(ds.ManualDownloadRequired) as caught:
        ds.download_dataset(info, dest=dest)
    message = str(caught.value)
    assert "Ask the author" in message and "Unzip here" in message and str(dest) in message
    dest.mkdir()
    (dest / "image.png").write_bytes(tiny_png(3))
    assert ds.download_dataset(info, dest=dest) == dest


def test_phantoms_are_generated_by_the_phantoms_module(monkeypatch, tmp_path):
    calls = []

    def generate_phantoms(
        out_dir, patients=60, size=128, seed=0, *, marker_class=None, marker_rate=1.0, progress=True
    ):
        calls.append(Path(out_dir))
        (Path(out_dir) / "metadata.csv").write_text("patient,label\n")

    fake = types.ModuleType("covid_tutorial.phantoms")
    fake.generate_phantoms = generate_phantoms
    monkeypatch.setitem(sys.modules, "covid_tutorial.phantoms", fake)
    dest = tmp_path / "phantoms"
    assert ds.download_dataset("phantoms", dest=dest, progress=False) == dest
    assert (dest / "metadata.csv").is_file()
    assert len(calls) == 1 and calls[0] != dest  # generated aside, then renamed into place
    assert ds.download_dataset("phantoms", dest=dest, progress=False) == dest
    assert len(calls) == 1  # already there
    assert leftovers(tmp_path) == []


def test_phantoms_download_runs_the_real_generator(tmp_path):
    import pandas as pd

    dest = tmp_path / "phantoms"
    assert ds.download_dataset("phantoms", dest=dest, progress=False) == dest
    table = pd.read_csv(dest / "metadata.csv")
    info = ds.get_dataset_info("phantoms")
    assert set(table["finding"]) == set(info.classes)
    assert table["patientid"].notna().all() and (dest / "images").is_dir()
    assert leftovers(tmp_path) == []


def test_phantoms_entry_matches_the_real_generator():
    import inspect

    from covid_tutorial import phantoms

    inspect.signature(phantoms.generate_phantoms).bind(Path("out"), progress=False)
    info = ds.get_dataset_info("phantoms")
    assert set(info.classes) == set(phantoms.PHANTOM_FINDINGS.values())
    assert {info.classes[f] for f in phantoms.PHANTOM_FINDINGS.values()} == set(ds.COURSE_LABELS)
    for label, finding in phantoms.PHANTOM_FINDINGS.items():
        assert info.classes[finding] == label


# --- the registry -------------------------------------------------------------------


def test_registry_has_every_required_entry_with_fields_filled():
    table = ds.list_datasets()
    assert REQUIRED <= set(table["name"])
    for column in (
        "title",
        "modality",
        "method",
        "obtain",
        "classes",
        "course_labels",
        "patient_ids",
        "layout",
        "licence",
        "citation",
        "source_url",
        "notes",
    ):
        assert table[column].astype(str).str.strip().ne("").all(), column
    for info in ds.REGISTRY.values():
        assert info.provenance, info.name
        assert set(info.course_labels) <= set(ds.COURSE_LABELS) | {ds.NON_COVID_LABEL}
        if info.method == "kaggle":
            assert re.fullmatch(r"[\w.-]+/[\w.-]+", info.kaggle_handle)
            assert info.kaggle_handle in info.source_url
        if info.method in ("direct", "github"):
            assert info.url.startswith("https://")


def test_registry_facts_the_course_relies_on():
    assert ds.get_dataset_info("covid19-radiography").classes["Lung_Opacity"] is None
    assert ds.get_dataset_info("covid-chestxray").has_patient_ids
    assert ds.get_dataset_info("covid-chestxray").layout == "metadata-csv"
    assert not ds.get_dataset_info("sars-cov-2-ct").has_patient_ids
    multiclass = ds.get_dataset_info("covid-ct-multiclass")
    assert multiclass.course_labels == ("COVID-19", "Normal", "Pneumonia")
    assert multiclass.modality == "CT"
    assert ds.get_dataset_info("pneumoniamnist").licence.startswith("CC BY 4.0")
    assert ds.get_dataset_info("phantoms").method == "generate"


def test_no_checksum_without_a_named_source():
    for info in ds.REGISTRY.values():
        if info.checksum is not None:
            assert info.checksum_source and len(info.checksum_source) > 20, info.name
            assert "published" in info.checksum_source, info.name
        else:
            assert info.checksum_source is None, info.name
    with pytest.raises(ValueError, match="checksum_source"):
        make_info("https://example.invalid/x.zip", checksum="sha256:" + "a" * 64)
    with pytest.raises(ValueError, match="checksum must look like"):
        make_info("https://example.invalid/x.zip", checksum="sha256:abc", checksum_source="x")


def test_entries_are_validated():
    with pytest.raises(ValueError, match="not a course label"):
        make_info("https://example.invalid/x.zip", classes={"COVID": "Covid"})
    with pytest.raises(ValueError, match="kaggle_handle"):
        make_info(None, method="kaggle", kaggle_handle="no-slash")
    info = ds.get_dataset_info("covid19-radiography")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.name = "other"
    with pytest.raises(TypeError):
        info.classes["Lung_Opacity"] = "Pneumonia"


def test_names_are_case_insensitive_and_unknown_names_list_the_known_ones():
    assert ds.get_dataset_info("PneumoniaMNIST") is ds.REGISTRY["pneumoniamnist"]
    assert ds.get_dataset_info(" covid_qu_ex ") is ds.REGISTRY["covid-qu-ex"]
    with pytest.raises(ds.UnknownDatasetError) as caught:
        ds.get_dataset_info("covid-19-everything")
    for name in REQUIRED:
        assert name in str(caught.value)
    with pytest.raises(ds.DownloadError):  # the CLI catches one type
        ds.download_dataset("nope")


def test_terminal_table_lists_every_entry():
    text = ds.format_dataset_table()
    for name in ds.REGISTRY:
        assert re.search(rf"^{re.escape(name)}\s", text, flags=re.MULTILINE), name
    assert "covid-tutorial download NAME" in text


def test_docs_table_matches_the_registry():
    docs = (REPO / "docs" / "datasets.md").read_text(encoding="utf-8")
    start, end = "<!-- registry:start -->", "<!-- registry:end -->"
    assert start in docs and end in docs
    generated = docs.split(start, 1)[1].split(end, 1)[0].strip()
    assert generated == ds.format_registry_markdown().strip(), (
        "docs/datasets.md is out of date: paste the output of "
        "covid_tutorial.datasets.format_registry_markdown() between the registry markers"
    )
    rows = re.findall(r"^\| `([a-z0-9-]+)` \|", generated, flags=re.MULTILINE)
    assert rows == list(ds.REGISTRY)


# --- where files go -----------------------------------------------------------------


def test_data_dir_from_environment_and_checkout(monkeypatch, tmp_path):
    monkeypatch.setenv(ds.DATA_ENV_VAR, str(tmp_path / "mine"))
    assert ds.default_data_dir() == tmp_path / "mine"
    assert ds.dataset_dir("pneumoniamnist") == tmp_path / "mine" / "pneumoniamnist"
    monkeypatch.delenv(ds.DATA_ENV_VAR)
    assert ds.default_data_dir() == REPO / "data" / "downloads"
