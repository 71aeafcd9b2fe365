"""Tests for the downloader: fetching, checksums, safe unpacking, Kaggle, manual, generated.

All downloads go to a local HTTP server on 127.0.0.1 that serves archives built in
``tmp_path``; a guard fails any test that tries to open a connection elsewhere.
"""

from __future__ import annotations

import hashlib
import socket
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from fixtures_http import (
    CLASS_TREE,
    closed_port,
    serve_directory,
    tiny_png,
    write_tar_gz,
    write_tar_with_links,
    write_zip,
    write_zip_declaring_size,
    write_zip_raw_names,
    write_zip_with_mode,
    write_zip_with_symlink,
)

from covid_tutorial.data import download as dl
from covid_tutorial.data.registry import DatasetInfo, PatientIds, get_dataset_info

REPO = Path(__file__).resolve().parent.parent


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
    monkeypatch.setenv(dl.DATA_ENV_VAR, str(folder))
    return folder


def make_info(
    url: str, name: str = "fixture", filename: str | None = None, **changes
) -> DatasetInfo:
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
        patient_ids=PatientIds(source="none", description="none"),
        layout="folder-per-class",
        provenance=("a local test server",),
    )
    base.update(changes)
    return DatasetInfo(**base)


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
        if path.name.startswith(("tmp", ".tmp-")) or ".partial-" in path.name or path.name.endswith(".tmp")
    )


# --- good archives ------------------------------------------------------------------


def test_zip_downloads_and_extracts_to_the_class_tree(served, data_dir):
    folder, base_url, _ = served
    write_zip(folder / "good.zip", CLASS_TREE)
    root = dl.download_dataset(make_info(f"{base_url}/good.zip"), progress=False)
    assert root == data_dir / "fixture" / "good"
    assert tree_of(root) == CLASS_TREE
    assert (data_dir / "fixture" / "good.zip").is_file()
    assert leftovers(data_dir) == []


def test_tar_gz_with_wrapping_folder_extracts_to_the_class_tree(served, data_dir):
    folder, base_url, _ = served
    write_tar_gz(folder / "good.tar.gz", CLASS_TREE, prefix="good-main/")
    root = dl.download_dataset(make_info(f"{base_url}/good.tar.gz"), progress=False)
    assert root == data_dir / "fixture" / "good"  # the single wrapping folder is dropped
    assert tree_of(root) == CLASS_TREE


def test_dest_argument_puts_files_there(served, tmp_path):
    folder, base_url, _ = served
    write_zip(folder / "good.zip", CLASS_TREE)
    dest = tmp_path / "elsewhere"
    root = dl.download_dataset(make_info(f"{base_url}/good.zip"), dest=dest, progress=False)
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
    root = dl.download_dataset(info, progress=False)
    assert sorted(tree_of(root)) == [
        "Images-processed/CT_COVID/a.png",
        "Images-processed/CT_COVID/b.png",
        "README.md",
    ]


def test_single_file_download_is_returned_as_is(served, data_dir):
    folder, base_url, _ = served
    (folder / "arrays.npz").write_bytes(b"not really npz")
    info = make_info(f"{base_url}/arrays.npz?download=1", filename="arrays.npz")
    path = dl.download_dataset(info, progress=False)
    assert path == data_dir / "fixture" / "arrays.npz"
    assert path.read_bytes() == b"not really npz"


# --- checksums ----------------------------------------------------------------------


def test_sha256_recorded_on_first_download_and_verified_on_the_second(served, data_dir):
    folder, base_url, seen = served
    archive = write_zip(folder / "good.zip", CLASS_TREE)
    info = make_info(f"{base_url}/good.zip")
    dl.download_dataset(info, progress=False)
    sidecar = data_dir / "fixture" / "good.zip.sha256"
    expected = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert sidecar.read_text().split() == [expected, "good.zip"]
    assert len(seen) == 1

    dl.download_dataset(info, progress=False)  # file present and matching: no new request
    assert len(seen) == 1

    local = data_dir / "fixture" / "good.zip"
    local.write_bytes(b"corrupted on disk")  # a damaged local copy is fetched again
    dl.download_dataset(info, progress=False)
    assert len(seen) == 2
    assert local.read_bytes() == archive.read_bytes()


def test_file_changed_on_the_server_after_first_download_is_refused(served, data_dir):
    folder, base_url, _ = served
    archive = write_zip(folder / "good.zip", CLASS_TREE)
    info = make_info(f"{base_url}/good.zip")
    dl.download_dataset(info, progress=False)
    write_zip(archive, {**CLASS_TREE, "COVID/extra.png": tiny_png(9)})  # tampered upstream

    with pytest.raises(dl.ChecksumMismatchError) as caught:
        dl.download_dataset(info, progress=False, force=True)
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
    with pytest.raises(dl.ChecksumMismatchError, match="a test that lies"):
        dl.download_dataset(info, progress=False)
    assert sorted(p.name for p in (data_dir / "fixture").iterdir()) == []


def test_published_checksum_match_passes_and_writes_no_sidecar(served, data_dir):
    folder, base_url, _ = served
    archive = write_zip(folder / "good.zip", CLASS_TREE)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    info = make_info(
        f"{base_url}/good.zip", checksum=f"md5:{md5}", checksum_source="computed in this test"
    )
    root = dl.download_dataset(info, progress=False)
    assert tree_of(root) == CLASS_TREE
    assert not (data_dir / "fixture" / "good.zip.sha256").exists()


def test_interrupted_download_leaves_no_file(served, data_dir):
    _, base_url, _ = served
    with pytest.raises(dl.DownloadError, match="interrupted"):
        dl.download_dataset(make_info(f"{base_url}/truncated/x.zip"), progress=False)
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
    assert member in zipfile.ZipFile(folder / "bad.zip").namelist()
    with pytest.raises(dl.UnsafeArchiveError) as caught:
        dl.download_dataset(make_info(f"{base_url}/bad.zip"), progress=False)
    assert repr(member) in str(caught.value) and reason in str(caught.value)
    assert not Path("/tmp/evil_absolute.txt").exists()
    assert_nothing_escaped(tmp_path, data_dir)


def test_tar_symlink_escaping_is_refused(served, data_dir, tmp_path):
    folder, base_url, _ = served
    write_tar_with_links(
        folder / "bad.tar",
        [("symlink", "COVID/link", "../../../outside"), ("file", "COVID/link/evil.txt", "owned")],
    )
    with pytest.raises(dl.UnsafeArchiveError, match="'COVID/link' is a symlink leading outside"):
        dl.download_dataset(make_info(f"{base_url}/bad.tar"), progress=False)
    assert not (tmp_path / "outside").exists()
    assert_nothing_escaped(tmp_path, data_dir)


def test_tar_absolute_symlink_is_refused(served, data_dir, tmp_path):
    folder, base_url, _ = served
    write_tar_with_links(folder / "bad.tar", [("symlink", "etc", "/etc")])
    with pytest.raises(dl.UnsafeArchiveError, match="'etc' is a symlink leading outside"):
        dl.download_dataset(make_info(f"{base_url}/bad.tar"), progress=False)
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
    with pytest.raises(dl.UnsafeArchiveError, match="'a' is a symlink leading outside"):
        dl.download_dataset(make_info(f"{base_url}/bad.tar"), progress=False)
    assert_nothing_escaped(tmp_path, data_dir)


def test_tar_symlink_made_to_escape_by_a_later_member_is_refused(tmp_path):
    # "a" is created while it still resolves inside; "d/c" then makes it lead outside
    archive = write_tar_with_links(
        tmp_path / "bad.tar",
        [("file", "d/x.txt", "x"), ("symlink", "a", "d/c/../.."), ("symlink", "d/c", "..")],
    )
    with pytest.raises(dl.UnsafeArchiveError, match="'a' is a symlink leading outside"):
        dl.safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_tar_special_files_are_refused(tmp_path):
    archive = tmp_path / "fifo.tar"
    with tarfile.open(archive, "w") as handle:
        member = tarfile.TarInfo("COVID/pipe")
        member.type = tarfile.FIFOTYPE
        handle.addfile(member)
    with pytest.raises(dl.UnsafeArchiveError, match="'COVID/pipe' is a device, FIFO"):
        dl.safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_tar_hardlink_escaping_is_refused(served, data_dir, tmp_path):
    folder, base_url, _ = served
    write_tar_with_links(folder / "bad.tar", [("hardlink", "COVID/evil", "../../etc/passwd")])
    with pytest.raises(dl.UnsafeArchiveError, match="'COVID/evil'.*hard link"):
        dl.download_dataset(make_info(f"{base_url}/bad.tar"), progress=False)
    assert_nothing_escaped(tmp_path, data_dir)


def test_zip_symlink_escaping_is_refused(served, data_dir, tmp_path):
    folder, base_url, _ = served
    write_zip_with_symlink(folder / "bad.zip", "COVID/link", "/etc/passwd")
    with pytest.raises(dl.UnsafeArchiveError, match="'COVID/link' is a symlink leading outside"):
        dl.download_dataset(make_info(f"{base_url}/bad.zip"), progress=False)
    assert_nothing_escaped(tmp_path, data_dir)


def test_extraction_happens_in_a_hidden_folder_renamed_when_complete(tmp_path, monkeypatch):
    archive = write_zip(tmp_path / "good.zip", CLASS_TREE)
    final = tmp_path / "out"
    seen = []
    real = dl._unpack_into

    def spy(path, root, limit):
        seen.append((Path(root), final.exists()))
        real(path, root, limit)

    monkeypatch.setattr(dl, "_unpack_into", spy)
    assert dl.safe_extract(archive, final) == final
    ((root, final_existed),) = seen
    assert root.parent == final.parent and root.name.startswith(".out.partial-")
    assert not final_existed and not root.exists()
    assert tree_of(final) == CLASS_TREE
    with pytest.raises(FileExistsError):
        dl.safe_extract(archive, final)


def test_links_that_stay_inside_are_extracted(tmp_path):
    archive = write_tar_with_links(
        tmp_path / "ok.tar",
        [
            ("file", "COVID/a.txt", "a"),
            ("symlink", "COVID/b.txt", "a.txt"),
            ("hardlink", "Normal/c.txt", "COVID/a.txt"),
        ],
    )
    out = dl.safe_extract(archive, tmp_path / "out")
    assert (out / "COVID" / "b.txt").read_text() == "a"
    assert (out / "Normal" / "c.txt").read_text() == "a"
    assert not (out / "Normal" / "c.txt").is_symlink()


def test_zip_link_that_stays_inside_is_made_a_link(tmp_path):
    # zipfile alone would write the link as a file holding "a.txt"
    archive = write_zip(tmp_path / "ok.zip", {"COVID/a.txt": b"a"})
    link = zipfile.ZipInfo("COVID/b.txt")
    link.create_system, link.external_attr = 3, 0o120777 << 16
    with zipfile.ZipFile(archive, "a") as handle:
        handle.writestr(link, "a.txt")
    out = dl.safe_extract(archive, tmp_path / "out")
    assert (out / "COVID" / "b.txt").is_symlink()
    assert (out / "COVID" / "b.txt").read_text() == "a"

def test_tar_absolute_member_name_is_refused_not_rewritten(tmp_path):
    # tarfile's "data" filter would quietly strip the "/"; a hostile name is refused instead
    archive = write_tar_with_links(tmp_path / "bad.tar", [("file", "/tmp/evil_tar.txt", "owned")])
    with pytest.raises(dl.UnsafeArchiveError, match="'/tmp/evil_tar.txt' has an absolute path"):
        dl.safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_zip_special_files_are_refused(tmp_path):
    archive = write_zip_with_mode(tmp_path / "fifo.zip", "COVID/pipe", 0o010644, b"")
    with pytest.raises(dl.UnsafeArchiveError, match="'COVID/pipe' is a device, FIFO"):
        dl.safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_zip_bomb_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    # 8 MiB of zeros compress to a few KiB; the limit is lowered so the test stays small
    archive = write_zip(
        tmp_path / "bomb.zip",
        {
            "COVID/ok.png": tiny_png(1),
            "Normal/zeros_0.bin": bytes(4 << 20),
            "Normal/zeros_1.bin": bytes(4 << 20),
        },
        compression=zipfile.ZIP_DEFLATED,
    )
    assert archive.stat().st_size < 64 << 10
    writes = []
    monkeypatch.setattr(zipfile.ZipFile, "extractall", lambda *a, **k: writes.append(a))
    with pytest.raises(dl.UnsafeArchiveError) as caught:
        dl.safe_extract(archive, tmp_path / "out", max_unpacked_bytes=6 << 20)
    message = str(caught.value)
    assert "bomb.zip" in message and "'Normal/zeros_1.bin'" in message
    assert "zip bomb" in message and "max_unpacked_bytes" in message
    assert writes == []
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_zip_member_expanding_past_its_declared_size_is_refused(tmp_path):
    # the header claims 1 KiB; zipfile stops there and the CRC check fails
    archive = write_zip_declaring_size(tmp_path / "liar.zip", "COVID/big.bin", bytes(4 << 20), 1024)
    assert zipfile.ZipFile(archive).getinfo("COVID/big.bin").file_size == 1024
    with pytest.raises(dl.DownloadError, match="liar.zip is not a readable zip archive"):
        dl.safe_extract(archive, tmp_path / "out", max_unpacked_bytes=1 << 20)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []



# --- HTTP and network errors --------------------------------------------------------


@pytest.mark.parametrize("status", [404, 500])
def test_http_error_names_the_url_and_status(served, data_dir, status):
    _, base_url, _ = served
    url = f"{base_url}/status/{status}"
    with pytest.raises(dl.DownloadError) as caught:
        dl.download_dataset(make_info(url, filename="x.zip"), progress=False)
    message = str(caught.value)
    assert url in message and f"HTTP {status}" in message and "What to do" in message
    assert list((data_dir / "fixture").iterdir()) == []


def test_connection_refused_says_offline_or_unreachable(data_dir):
    url = f"http://127.0.0.1:{closed_port()}/good.zip"
    with pytest.raises(dl.DownloadError) as caught:
        dl.download_dataset(make_info(url), progress=False)
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
    with pytest.raises(dl.DownloadError) as caught:
        dl.download_dataset("covid19-radiography", progress=False)
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
    path = dl.download_dataset("SARS-CoV-2-CT", progress=False)
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
    with pytest.raises(dl.DownloadError, match="backend said no"):
        dl.download_dataset("covid-qu-ex", progress=False)


def test_manual_dataset_gives_steps_then_finds_the_files(tmp_path):
    info = make_info(None, method="manual", manual_steps="1. Ask the author.\n2. Unzip here.")
    dest = tmp_path / "manual"
    with pytest.raises(dl.ManualDownloadRequired) as caught:
        dl.download_dataset(info, dest=dest)
    message = str(caught.value)
    assert "Ask the author" in message and "Unzip here" in message and str(dest) in message
    dest.mkdir()
    (dest / "image.png").write_bytes(tiny_png(3))
    assert dl.download_dataset(info, dest=dest) == dest


def test_phantoms_are_generated_by_the_phantoms_module(monkeypatch, tmp_path):
    calls = []

    def generate_phantoms(
        out_dir, patients=60, size=128, seed=0, *, marker_class=None, marker_rate=1.0, progress=True
    ):
        calls.append(Path(out_dir))
        (Path(out_dir) / "metadata.csv").write_text("patient,label\n")

    monkeypatch.setattr(dl.phantoms, "generate_phantoms", generate_phantoms)
    dest = tmp_path / "phantoms"
    assert dl.download_dataset("phantoms", dest=dest, progress=False) == dest
    assert (dest / "metadata.csv").is_file()
    assert len(calls) == 1 and calls[0] != dest  # generated aside, then renamed into place
    assert dl.download_dataset("phantoms", dest=dest, progress=False) == dest
    assert len(calls) == 1  # already there
    assert leftovers(tmp_path) == []


def test_phantoms_download_runs_the_real_generator(tmp_path):
    import pandas as pd

    dest = tmp_path / "phantoms"
    assert dl.download_dataset("phantoms", dest=dest, progress=False) == dest
    info = get_dataset_info("phantoms")
    table = pd.read_csv(dest / info.metadata.csv)
    assert set(table[info.metadata.label_column]) == set(info.classes)
    assert table[info.patient_ids.column].notna().all()
    images = dest / info.metadata.images
    assert all((images / name).is_file() for name in table[info.metadata.file_column])
    assert leftovers(tmp_path) == []


# --- where files go -----------------------------------------------------------------


def test_data_dir_from_environment_and_checkout(monkeypatch, tmp_path):
    monkeypatch.setenv(dl.DATA_ENV_VAR, str(tmp_path / "mine"))
    assert dl.default_data_dir() == tmp_path / "mine"
    assert dl.dataset_dir("pneumoniamnist") == tmp_path / "mine" / "pneumoniamnist"
    monkeypatch.delenv(dl.DATA_ENV_VAR)
    assert dl.default_data_dir() == REPO / "data" / "downloads"
