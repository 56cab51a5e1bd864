"""DATA.toml: a database folder's version, sync date, format and where the copy came from."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Optional

from msgspec import Struct
from packaging.version import InvalidVersion, Version

from compat.errors import DataError

DATA_FILE = "DATA.toml"
# The layout of matrices/ this compat reads. A data release of another format is never switched
# to: its files could mean something else to this code. 2: launch rules may name GPUs (gpu_cc)
# and say a value is unknown.
DATA_FORMAT = 2
MAX_INFO = 64 * 1024

HEADER = (
    "# What this database is (docs/data-format.md): its version (calendar: YYYY.M.D), the day its\n"
    "# generated files were last synced with the index, and the layout it is written in.\n"
    "# `compat matrix sync --write` and scripts/build_data.py write it.\n"
)


class DataInfo(Struct, frozen=True):
    """What DATA.toml says; `version` None when the folder has none (an older or hand-made tree)."""

    version: Optional[Version] = None
    synced: Optional[date] = None
    format: int = DATA_FORMAT
    # How this copy reached the user folder (empty elsewhere).
    origin: str = ""  # "compat-data" or "sync"
    url: str = ""  # the wheel it came from, or the index the sync read
    sha256: str = ""  # of that wheel, as the index gave it and as verified
    fetched: str = ""  # when (UTC, ISO 8601)
    base: str = ""  # the version a sync started from

    def to_toml(self) -> str:
        lines = [HEADER, "[data]", f"format = {self.format}"]
        if self.version is not None:
            lines.append(f'version = "{self.version}"')
        if self.synced is not None:
            lines.append(f'synced = "{self.synced.isoformat()}"')
        src = [
            (k, getattr(self, k))
            for k in ("origin", "url", "sha256", "fetched", "base")
            if getattr(self, k)
        ]
        if src:
            lines += ["", "[source]"] + [f'{k} = "{_escape(v)}"' for k, v in src]
        return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def parse_info(raw: bytes, origin: str) -> DataInfo:
    """DATA.toml's bytes as a DataInfo; a DataError naming every problem."""
    from compat.matrix.tomlfile import parse_toml_cached

    # through the JSON cache: a check reads this on every run
    doc = parse_toml_cached(raw, origin)
    problems: list[str] = []
    data = doc.get("data")
    if not isinstance(data, dict):
        raise DataError([f"{origin}: data: a [data] table is required"])
    extra = set(doc) - {"data", "source"}
    problems += [f"{origin}: {k}: unknown table" for k in sorted(extra)]
    problems += [f"{origin}: data.{k}: unknown key" for k in sorted(set(data) - _DATA_KEYS)]
    fmt = data.get("format")
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 1:
        problems.append(f"{origin}: data.format: a positive integer is required")
        fmt = DATA_FORMAT
    version: Optional[Version] = None
    if "version" in data:
        try:
            version = Version(str(data["version"]))
        except InvalidVersion:
            problems.append(f"{origin}: data.version: {data['version']!r} is not a version")
    synced: Optional[date] = None
    if "synced" in data:
        try:
            synced = date.fromisoformat(str(data["synced"]))
        except ValueError:
            problems.append(f"{origin}: data.synced: {data['synced']!r} is not a date (YYYY-MM-DD)")
    source = doc.get("source", {})
    if not isinstance(source, dict):
        problems.append(f"{origin}: source: expected a table")
        source = {}
    problems += [f"{origin}: source.{k}: unknown key" for k in sorted(set(source) - _SOURCE_KEYS)]
    strs = {k: source.get(k, "") for k in _SOURCE_KEYS}
    problems += [
        f"{origin}: source.{k}: expected a string"
        for k, v in strs.items()
        if not isinstance(v, str)
    ]
    if problems:
        raise DataError(problems, hint="DATA.toml is written by the sync and the data build")
    return DataInfo(version, synced, fmt, **{k: str(v) for k, v in strs.items()})


_DATA_KEYS = frozenset({"format", "version", "synced"})
_SOURCE_KEYS = frozenset({"origin", "url", "sha256", "fetched", "base"})


def read_info(root: Path) -> DataInfo:
    """The DATA.toml of a database folder; an empty DataInfo when there is none."""
    from compat.fileio import read_bytes

    path = root / DATA_FILE
    if not path.is_file():
        return DataInfo()
    return parse_info(read_bytes(path, MAX_INFO, "data file"), str(path))


def next_version(old: Optional[Version], today: date) -> Version:
    """The calendar version of data changed today: YYYY.M.D, or one more .N when a version of
    today (or later) already exists."""
    cal = Version(f"{today.year}.{today.month}.{today.day}")
    if old is None or cal > Version(old.public):
        return cal
    release = Version(old.public).release
    if len(release) <= 3:
        return Version(".".join(map(str, (*release, 1))))
    return Version(".".join(map(str, (*release[:-1], release[-1] + 1))))


def sync_version(base: Optional[Version], stamp: str) -> Version:
    """The version of a user-folder sync made on top of `base`: newer than base, older than any
    later published release (a local label sorts just above its public version)."""
    public = base.public if base is not None else "0"
    return Version(f"{public}+sync.{re.sub(r'[^0-9]', '.', stamp).strip('.')}")


def meta_version(text: str) -> Optional[str]:
    """`version` of a DATA.toml text, read by the same rule hatchling's regex uses."""
    match = re.search(r'^version = "([^"]+)"', text, re.MULTILINE)
    return match.group(1) if match else None


def describe(info: DataInfo) -> dict[str, Any]:
    return {
        "version": str(info.version) if info.version else None,
        "synced": info.synced.isoformat() if info.synced else None,
        "format": info.format,
        **({"origin": info.origin} if info.origin else {}),
        **({"url": info.url} if info.url else {}),
        **({"sha256": info.sha256} if info.sha256 else {}),
        **({"fetched": info.fetched} if info.fetched else {}),
        **({"base": info.base} if info.base else {}),
    }
