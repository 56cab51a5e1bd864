"""Facts `--deep` read from installed files, kept per file in the user cache and used while the file is unchanged."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from msgspec import Struct

from compat import __version__
from compat.errors import CompatError
from compat.fileio import atomic_write, prune, read_bytes
from compat.matrix.tomlfile import cache_root

FORMAT = 1
# torch's exports are the largest entry: ~100k names, a few MiB of JSON.
MAX_ENTRY = 32 * 1024 * 1024
# Entries are per file (a few dozen per environment); past this many the oldest are removed.
MAX_ENTRIES = 4096


class FileKey(Struct, frozen=True):
    """What identifies one version of a file: a reinstall changes its size or mtime."""

    path: str  # realpath
    size: int
    mtime_ns: int


def file_key(path: str) -> Optional[FileKey]:
    """The key of a regular file (links followed), None when it is not one or cannot be read."""
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return FileKey(real, st.st_size, st.st_mtime_ns)


def key_of_fd(real: str, fd: int) -> Optional[FileKey]:
    """The key of an open file, from fstat (compared with the key taken before reading it)."""
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return FileKey(real, st.st_size, st.st_mtime_ns)


class FactCache:
    """One JSON file per (kind, file): {format, reader, kind, path, size, mtime_ns, value}.

    An entry is used only when all of format, reader (the compat release that read the file),
    kind, path, size and mtime match; anything else (unreadable, not JSON, another file's, an
    older format or release) is ignored and rewritten after the file is read again. Writes are
    atomic and best effort: a read-only home just means no cache. `folder` None reads and
    writes nothing.
    """

    def __init__(self, folder: Optional[Path], reader: str = __version__) -> None:
        self.folder = folder
        self.reader = reader
        self.hits = 0
        self.misses = 0
        self._pruned = False

    def _entry(self, kind: str, key: FileKey) -> Optional[Path]:
        if self.folder is None:
            return None
        digest = hashlib.sha256(f"{kind}\0{key.path}".encode("utf-8", "surrogateescape"))
        return self.folder / f"{digest.hexdigest()[:32]}.json"

    def get(self, kind: str, key: FileKey) -> Optional[dict[str, Any]]:
        path = self._entry(kind, key)
        if path is None:
            return None
        try:
            doc = json.loads(read_bytes(path, MAX_ENTRY, "cache entry"))
        except (CompatError, ValueError, RecursionError):
            doc = None  # absent, unreadable, not a regular file, too large, not JSON
        expected = {"format": FORMAT, "reader": self.reader, "kind": kind, "path": key.path}
        if (
            not isinstance(doc, dict)
            or any(doc.get(k) != v for k, v in expected.items())
            or doc.get("size") != key.size
            or doc.get("mtime_ns") != key.mtime_ns
            or not isinstance(doc.get("value"), dict)
        ):
            self.misses += 1
            return None
        self.hits += 1
        value: dict[str, Any] = doc["value"]
        return value

    def put(self, kind: str, key: FileKey, value: dict[str, Any]) -> None:
        path = self._entry(kind, key)
        if path is None:
            return
        doc = {
            "format": FORMAT,
            "reader": self.reader,
            "kind": kind,
            "path": key.path,
            "size": key.size,
            "mtime_ns": key.mtime_ns,
            "value": value,
        }
        try:
            data = json.dumps(doc, separators=(",", ":")).encode("utf-8", "surrogateescape")
        except (TypeError, ValueError, UnicodeEncodeError):
            return
        if len(data) > MAX_ENTRY:
            return
        with contextlib.suppress(OSError):
            self._prune()
            atomic_write(path, data)

    def _prune(self) -> None:
        """Keep the folder bounded: once per run, past MAX_ENTRIES, the oldest quarter goes."""
        if self._pruned or self.folder is None:
            return
        self._pruned = True
        prune(self.folder, MAX_ENTRIES, MAX_ENTRIES * 3 // 4)


def default_cache() -> FactCache:
    """The cache under $COMPAT_CACHE_DIR (else $XDG_CACHE_HOME/compat, ~/.cache/compat): deep/."""
    return FactCache(cache_root() / "deep")


def texts(value: dict[str, Any], name: str, limit: int = 1_000_000) -> Optional[tuple[str, ...]]:
    """A list of strings from a cache value, None when it is anything else."""
    got = value.get(name)
    if not isinstance(got, list) or len(got) > limit or not all(isinstance(x, str) for x in got):
        return None
    return tuple(got)


def ints(value: dict[str, Any], name: str, limit: int = 4096) -> Optional[tuple[int, ...]]:
    """A list of non-negative integers from a cache value, None when it is anything else."""
    got = value.get(name)
    if (
        not isinstance(got, list)
        or len(got) > limit
        or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in got)
    ):
        return None
    return tuple(got)


def fingerprint(keys: Sequence[FileKey]) -> str:
    """One string for a set of file keys (torch's libraries): a judgment made against them is
    reused while it matches."""
    text = json.dumps(sorted([k.path, k.size, k.mtime_ns] for k in keys))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]
