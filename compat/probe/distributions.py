"""Installed distributions, read from dist-info folders on a path list without importing anything."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Optional

import msgspec
import msgspec.structs

from compat.families import families
from compat.fileio import identity
from compat.models import Distribution, canonicalize_name, parse_version, requirement_name


def is_stack(key: str) -> bool:
    """Whether a distribution is part of the serving stack (matrices/curated/packages.toml)."""
    return families().is_stack(key)


_DIST_INFO = re.compile(r"^(?P<name>.+?)-(?P<version>[^-]+?)\.(?P<kind>dist-info|egg-info)$")


# A METADATA header block is a few KiB (torch's, with ~30 Requires-Dist, is ~5 KiB); the long
# description follows a blank line. Only this much is read, and only this many requirements kept.
MAX_HEADER_BYTES = 1024 * 1024
MAX_HEADER_LINE = 8192
MAX_REQUIRES = 4096


def _read_headers(path: str, want_requires: bool) -> tuple[dict[str, str], list[str]]:
    """Name/Version (and Requires-Dist) from a METADATA header block; stops at the body.

    Bounded: a FIFO or device is refused by type, at most MAX_HEADER_BYTES are read, an
    overlong header line is skipped (a 20 MB `Name:` is not a name)."""
    headers: dict[str, str] = {}
    requires: list[str] = []
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        block = fh.read(MAX_HEADER_BYTES)
        for raw in block.split(b"\n"):
            if len(raw) > MAX_HEADER_LINE:
                continue
            line = raw.decode("utf-8", "replace").rstrip("\r")
            if not line:
                break
            if line[0] in " \t":
                continue
            key, sep, value = line.partition(":")
            if not sep:
                continue
            key = key.strip().lower()
            value = value.strip()
            if key == "requires-dist":
                if want_requires and len(requires) < MAX_REQUIRES:
                    requires.append(value)
            elif key in ("name", "version") and key not in headers:
                headers[key] = value
            elif not want_requires and "name" in headers and "version" in headers:
                break
    return headers, requires


def read_dist_info(folder: str, want_requires: bool = True, source: bool = True) -> Distribution:
    dist = _read_dist_info(folder, want_requires)
    if want_requires and source:  # a stack package: was it installed from source?
        url = _direct_url(folder)
        if url:
            dist = msgspec.structs.replace(dist, direct_url=url)
    try:
        return msgspec.structs.replace(dist, installed_at=os.stat(folder).st_mtime)
    except OSError:
        return dist


def _direct_url(folder: str) -> str:
    """PEP 610 direct_url.json: the URL a distribution was installed from (VCS, local path or
    archive), or "" for an install from an index (pip writes no such file then)."""
    path = os.path.join(folder, "direct_url.json")
    if not os.path.exists(path):
        return ""
    from compat.errors import CompatError
    from compat.fileio import read_text
    from compat.jsondoc import Reader, parse

    try:
        doc = parse(read_text(path, limit=64 * 1024, what="direct_url.json"), path)
        r = Reader(path)
        d = r.obj(doc, "$")
        url = r.get_text(d, "url", "", "", 4096)
        vcs = d.get("vcs_info")
        if isinstance(vcs, dict) and isinstance(vcs.get("vcs"), str):
            commit = vcs.get("commit_id")
            url = f"{vcs['vcs']}+{url}" + (f"@{commit}" if isinstance(commit, str) else "")
        return url
    except CompatError:
        return ""


def _read_dist_info(folder: str, want_requires: bool) -> Distribution:
    """One dist-info/egg-info folder as a Distribution; problems make it `broken`, never raise."""
    base = os.path.basename(folder)
    m = _DIST_INFO.match(base)
    dir_name = m.group("name") if m else base
    dir_version = m.group("version") if m else ""
    location = os.path.dirname(folder)
    meta = os.path.join(folder, "METADATA" if base.endswith(".dist-info") else "PKG-INFO")
    try:
        headers, requires = _read_headers(meta, want_requires)
    except FileNotFoundError:
        return Distribution(
            dir_name,
            parse_version(dir_version),
            dir_version,
            location,
            broken=f"no {os.path.basename(meta)} in {base}",
        )
    except OSError as exc:
        return Distribution(
            dir_name,
            parse_version(dir_version),
            dir_version,
            location,
            broken=f"unreadable {os.path.basename(meta)}: {exc.strerror}",
        )
    name = headers.get("name") or dir_name
    raw = headers.get("version", "")
    if not raw:
        return Distribution(
            name, None, "", location, tuple(requires), broken="no Version in metadata"
        )
    version = parse_version(raw)
    broken = None if version is not None else f"invalid version {raw!r}"
    return Distribution(name, version, raw, location, tuple(requires), broken)


def scan(paths: Sequence[str], everything: bool = False) -> tuple[Distribution, ...]:
    """Distributions found on `paths` (like sys.path); the first one of a name wins, as for import.

    The stack's distributions, and those that require a package of the stack (an RL framework
    pinning vllm, a library pinning torch: what `pip check` would judge against the stack),
    with only those requirements kept; with `everything`, every distribution.

    The stack's METADATA is read on every run. What the other distributions' METADATA said (a
    site-packages holds ~200, and most name nothing of the stack) is kept in the user cache and
    used while the file and its folder are unchanged (`_Seen`).
    """
    seen: set[str] = set()
    found: list[Distribution] = []
    for entry in paths:
        folders = _dist_folders(entry or ".")
        if not folders:
            continue
        memo = _Seen.load(entry or ".")
        for folder in folders:
            base = os.path.basename(folder)
            m = _DIST_INFO.match(base)
            key = canonicalize_name(m.group("name") if m else base.rsplit(".", 1)[0])
            if key in seen:
                continue
            if is_stack(key):
                dist = read_dist_info(folder, want_requires=True, source=True)
            else:
                dist = memo.other(folder)
                if not everything and not dist.requires:
                    continue
            real_key = dist.key if dist.broken is None else key
            if real_key in seen:
                continue
            seen.add(key)
            seen.add(real_key)
            found.append(dist)
        memo.save()
    return tuple(sorted(found, key=lambda d: d.key))


class _Seen:
    """The other distributions of one site-packages folder as last read: per dist-info folder,
    the stat fields of the folder and of its METADATA (size, mtime, ctime, inode: a reinstall
    or an edit changes them) with its name, version and requirements on the stack. One JSON
    entry per folder, stack table and compat release; best effort, as every cache here."""

    def __init__(self, path: Optional[Path], rows: dict[str, Any]) -> None:
        self.path = path
        self.rows = rows
        self.fresh: dict[str, Any] = {}

    @classmethod
    def load(cls, entry: str) -> _Seen:
        from compat import __version__
        from compat.matrix.tomlfile import cache_root, load_entry

        try:
            where = os.path.realpath(entry)
        except (OSError, ValueError):
            return cls(None, {})
        ident = "\0".join((__version__, families().fingerprint, where))
        name = hashlib.sha256(ident.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        path = cache_root() / "dists" / f"{name}.json"
        doc = load_entry(path)
        rows = doc.get("folders") if doc is not None else None
        return cls(path, rows if isinstance(rows, dict) else {})

    def other(self, folder: str) -> Distribution:
        """A distribution off the stack, with only its requirements on the stack."""
        base = os.path.basename(folder)
        sig = _stat_fields(folder, base)
        row = self.rows.get(base)
        dist = _from_row(row, os.path.dirname(folder), sig) if sig is not None else None
        if dist is None:
            dist = read_dist_info(folder, want_requires=True, source=False)
            dist = msgspec.structs.replace(
                dist, requires=tuple(r for r in dist.requires if _names_stack(r))
            )
            row = [
                sig,
                dist.name,
                dist.raw_version,
                list(dist.requires),
                dist.broken,
                dist.installed_at,
            ]
        if sig is not None:
            self.fresh[base] = row
        return dist

    def save(self) -> None:
        if self.path is not None and self.fresh != self.rows:
            from compat.matrix.tomlfile import store_entry

            store_entry(self.path, {"folders": self.fresh})


def _stat_fields(folder: str, base: str) -> Optional[list[int]]:
    """The folder's and its METADATA's identity (compat.fileio.identity); None when either
    cannot be told (read the slow way, which says what is wrong)."""
    meta = os.path.join(folder, "METADATA" if base.endswith(".dist-info") else "PKG-INFO")
    try:
        fst = os.stat(folder)
    except (OSError, ValueError):
        return None
    mst = identity(meta)
    if mst is None:
        return None
    return [fst.st_mtime_ns, fst.st_ctime_ns, fst.st_ino, *mst]


def _from_row(row: Any, location: str, sig: list[int]) -> Optional[Distribution]:
    """The Distribution a cached row holds, None unless it is well formed and its stat fields
    are the file's now."""
    if not (isinstance(row, list) and len(row) == 6 and row[0] == sig):
        return None
    _, name, raw, requires, broken, installed_at = row
    if not (
        isinstance(name, str)
        and isinstance(raw, str)
        and isinstance(requires, list)
        and all(isinstance(r, str) for r in requires)
        and (broken is None or isinstance(broken, str))
        and (installed_at is None or isinstance(installed_at, (int, float)))
    ):
        return None
    version = parse_version(raw) if raw else None
    return Distribution(name, version, raw, location, tuple(requires), broken, installed_at)


def _names_stack(requirement: str) -> bool:
    name = requirement_name(requirement)
    return name is not None and is_stack(name)


def _dist_folders(entry: str) -> Iterable[str]:
    try:
        with os.scandir(entry) as it:
            names = sorted(
                e.name for e in it if e.name.endswith((".dist-info", ".egg-info")) and e.is_dir()
            )
    except OSError:
        return ()
    return [os.path.join(entry, n) for n in names]


def find(dists: Iterable[Distribution], name: str) -> Optional[Distribution]:
    key = canonicalize_name(name)
    for d in dists:
        if d.key == key:
            return d
    return None


def with_extension_needs(dists: tuple[Distribution, ...]) -> tuple[Distribution, ...]:
    """Record what each torch-linked extension module needs (ELF headers only: cheap)."""
    from compat import elf

    out = []
    for d in dists:
        ext = families().extensions.get(d.key)
        needed = elf.try_needed(os.path.join(d.location, ext)) if ext and not d.broken else None
        out.append(msgspec.structs.replace(d, needs=needed) if needed else d)
    return tuple(out)
