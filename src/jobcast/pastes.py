"""Pastes: content-addressed text in `<data-dir>/pastes/<sha256>`, referred to as
`ctx://paste/<sha256>`.

The functions here do blocking file I/O: the server calls them in a thread, never on its loop.
A hash reaches the file system only after `parse_hash` has checked it is exactly 64 lowercase hex
digits, so no ref or URL can name another path.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

__all__ = [
    "CONTEXT_ENV",
    "PASTE_DIR",
    "REF_PREFIX",
    "Pastes",
    "parse_hash",
    "parse_ref",
    "ref_of",
]

PASTE_DIR = "pastes"
#: what a job's context files are listed in, `:`-separated
CONTEXT_ENV = "JOBCAST_CONTEXT"
REF_PREFIX = "ctx://paste/"
_HASH = re.compile(r"[0-9a-f]{64}")


def parse_hash(value: str) -> str:
    """`value` if it is a sha256 in lowercase hex, else ValueError saying what one looks like."""
    if not _HASH.fullmatch(value):
        raise ValueError(f"{value[:80]!r} is not a paste hash (64 lowercase hex digits, a sha256)")
    return value


def parse_ref(ref: str) -> str:
    """The hash of `ctx://paste/<sha256>`; ValueError naming the ref if it is not one."""
    if not ref.startswith(REF_PREFIX) or not _HASH.fullmatch(ref[len(REF_PREFIX) :]):
        raise ValueError(
            f"{ref[:100]!r} is not a paste ref; refs look like ctx://paste/<sha256>, "
            "as POST /pastes answers"
        )
    return ref[len(REF_PREFIX) :]


def ref_of(digest: str) -> str:
    return REF_PREFIX + digest


class Pastes:
    """The paste directory. Each paste is written whole or not at all (a temp file, fsynced,
    renamed into place), so a crash never leaves a torn paste under a valid name."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / PASTE_DIR

    def open(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        for stale in self.root.glob(".tmp-*"):  # a crash mid-write: never renamed, never valid
            stale.unlink(missing_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / parse_hash(digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put(self, data: bytes) -> tuple[str, bool]:
        """Store `data`; its hash, and whether it was new (the same content is stored once)."""
        digest = hashlib.sha256(data).hexdigest()
        final = self.path(digest)
        if final.is_file():
            return digest, False
        tmp = self.root / f".tmp-{digest}-{os.getpid()}-{id(data):x}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        # Atomic: a reader sees the whole paste or none. Two uploads of the same content race
        # harmlessly, each renaming identical bytes over the other.
        os.replace(tmp, final)
        dir_fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power cut
        finally:
            os.close(dir_fd)
        return digest, True

    def get(self, digest: str) -> bytes:
        """The paste's bytes. Raises FileNotFoundError if there is none."""
        return self.path(digest).read_bytes()

    def paths(self, refs: list[str]) -> list[str]:
        """The absolute paths of `refs`' files, in order, without touching the disk (the loop may
        call it). Raises ValueError for a malformed ref."""
        return [os.path.abspath(self.root / parse_ref(ref)) for ref in refs]

    def resolve(self, refs: list[str]) -> list[str]:
        """`paths(refs)`, checked: raises LookupError naming the first ref not stored."""
        paths = self.paths(refs)
        for ref, path in zip(refs, paths, strict=True):
            if not os.path.isfile(path):
                raise LookupError(ref)
        return paths
