"""What a folder holds: used to prove that reading data never writes into it, and that a
generator writes the same bytes for the same seed."""

import hashlib
from pathlib import Path


def snapshot(folder):
    """Every file under ``folder`` with its size and modification time."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def file_hashes(folder: Path) -> dict:
    """sha256 of every file under ``folder``, keyed by relative path."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
