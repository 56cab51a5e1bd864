"""TOML data files read once and kept as JSON keyed by their content (the database's fast path)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

from compat.errors import CompatError, DataError
from compat.fileio import MAX_DATA, atomic_write, read_bytes

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def cache_root() -> Path:
    """$COMPAT_CACHE_DIR, else $XDG_CACHE_HOME/compat, else ~/.cache/compat."""
    root = os.environ.get("COMPAT_CACHE_DIR")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "compat"


def parse_toml(raw: bytes, origin: str) -> dict[str, Any]:
    """TOML bytes as a dict; any problem (syntax, encoding, nesting too deep) is a DataError."""
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataError(
            [f"{origin}: not valid TOML: {exc}"],
            hint="run `compat matrix validate` after fixing the file",
        ) from exc
    except RecursionError:
        raise DataError(
            [f"{origin}: not valid TOML: nested too deeply"],
            hint="run `compat matrix validate` after fixing the file",
        ) from None


def read_toml(path: Path, cached: bool = False) -> dict[str, Any]:
    """A TOML file as a dict; with `cached`, through a JSON copy keyed by the file's content.

    TOML parsing of the generated files costs ~30x what JSON does, and `compat check` runs
    before every launch: the cache makes the second and later runs cheap, and a content hash
    (not a timestamp) keeps it correct whatever installs or edits the file. A cache entry that
    cannot be read, or holds anything but a JSON object, is ignored and rewritten.
    """
    raw = read_bytes(path, MAX_DATA, "data file")
    cache_file = _cache_path(raw) if cached else None
    if cache_file is not None:
        hit = _load_cached(cache_file)
        if hit is not None:
            return hit
    data = parse_toml(raw, str(path))
    if cache_file is not None:
        _store(cache_file, data)
    return data


def _cache_path(raw: bytes) -> Path:
    return cache_root() / "index" / f"{hashlib.sha256(raw).hexdigest()[:32]}.json"


def _load_cached(path: Path) -> Optional[dict[str, Any]]:
    try:
        data = json.loads(read_bytes(path, MAX_DATA, "cache entry"))
    except (CompatError, ValueError, RecursionError):
        return None  # unreadable, not a regular file, too large, not JSON: no cache
    return data if isinstance(data, dict) else None


def _store(path: Path, data: dict[str, Any]) -> None:
    """Best effort: a read-only home just means no cache; a value JSON cannot hold (a TOML
    datetime) means this file is not cached, and validation reports the value."""
    try:
        text = json.dumps(data, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return
    with contextlib.suppress(OSError):
        atomic_write(path, text.encode("utf-8"))
