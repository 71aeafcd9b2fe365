"""Helpers for the download tests: a local HTTP server and small fixture archives.

Everything here runs on 127.0.0.1 and in a temporary folder; nothing touches the network.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import socket
import struct
import tarfile
import threading
import zipfile
import zlib
from pathlib import Path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files from a folder; a few special paths misbehave on purpose."""

    requests_seen: list  # set per server

    def log_message(self, format, *args):  # noqa: A002 - signature from the base class
        pass

    def do_GET(self):  # noqa: N802 - name from the base class
        self.requests_seen.append(self.path)
        if self.path.startswith("/status/"):
            code = int(self.path.split("/")[2])
            self.send_error(code)
            return
        if self.path.startswith("/truncated/"):
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"PK\x03\x04" + b"\0" * 96)
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@contextlib.contextmanager
def serve_directory(directory: Path):
    """Serve ``directory`` at ``http://127.0.0.1:<port>``; yields (base_url, requests_seen)."""
    seen: list = []
    handler = functools.partial(
        type("Handler", (_QuietHandler,), {"requests_seen": seen}), directory=str(directory)
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tiny_png(value: int, size: int = 4) -> bytes:
    """A valid grey ``size`` x ``size`` PNG filled with ``value`` (no image library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + bytes([value % 256]) * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


#: The folder-per-class tree put into the good archives: relative path -> bytes.
CLASS_TREE = {
    f"{label}/img_{index}.png": tiny_png(40 * index + offset)
    for offset, label in enumerate(("COVID", "Normal", "Viral Pneumonia"))
    for index in range(3)
}


def write_zip(
    path: Path, files: dict[str, bytes], prefix: str = "", compression: int = zipfile.ZIP_STORED
) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in files.items():
            archive.writestr(prefix + name, data)
    return path


def write_tar_gz(path: Path, files: dict[str, bytes], prefix: str = "") -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            member = tarfile.TarInfo(prefix + name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return path


def write_zip_raw_names(path: Path, names_and_data: list[tuple[str, bytes]]) -> Path:
    """A zip whose member names are written exactly as given (for hostile names)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in names_and_data:
            archive.writestr(zipfile.ZipInfo(name), data)
    return path


def write_tar_with_links(path: Path, members: list[tuple[str, str, str]]) -> Path:
    """A tar of (kind, name, payload): kind 'file' (payload = text), 'symlink' or 'hardlink'
    (payload = link target)."""
    with tarfile.open(path, "w") as archive:
        for kind, name, payload in members:
            member = tarfile.TarInfo(name)
            if kind == "file":
                data = payload.encode()
                member.size = len(data)
                archive.addfile(member, io.BytesIO(data))
            else:
                member.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                member.linkname = payload
                archive.addfile(member)
    return path


def write_zip_with_mode(path: Path, name: str, mode: int, data: bytes) -> Path:
    """A zip holding one entry with the given unix ``mode`` (file type and permissions)."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(info, data)
    return path


def write_zip_with_symlink(path: Path, name: str, target: str) -> Path:
    """A zip holding one symlink entry (unix mode S_IFLNK) pointing at ``target``."""
    return write_zip_with_mode(path, name, 0o120777, target.encode())


def write_zip_declaring_size(path: Path, name: str, data: bytes, declared: int) -> Path:
    """A deflated zip of one member whose headers claim ``declared`` bytes unpacked, not
    ``len(data)``: the lie a zip bomb tells to slip past a size check."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    raw = bytearray(path.read_bytes())
    local = raw.index(b"PK\x03\x04")
    central = raw.index(b"PK\x01\x02")
    struct.pack_into("<I", raw, local + 22, declared)  # local header: uncompressed size
    struct.pack_into("<I", raw, central + 24, declared)  # central directory: the same
    path.write_bytes(bytes(raw))
    return path
