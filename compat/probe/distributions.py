"""Installed distributions, read from dist-info folders on a path list without importing anything."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Sequence
from typing import Optional

from compat.families import families
from compat.models import Distribution, canonicalize_name, parse_version


def is_stack(key: str) -> bool:
    """Whether a distribution is part of the serving stack (matrices/curated/packages.toml)."""
    return families().is_stack(key)


_DIST_INFO = re.compile(r"^(?P<name>.+?)-(?P<version>[^-]+?)\.(?P<kind>dist-info|egg-info)$")


def _read_headers(path: str, want_requires: bool) -> tuple[dict[str, str], list[str]]:
    """Name/Version (and Requires-Dist) from a METADATA header block; stops at the body."""
    headers: dict[str, str] = {}
    requires: list[str] = []
    with open(path, "rb") as fh:
        for raw in fh:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
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
                if want_requires:
                    requires.append(value)
            elif key in ("name", "version") and key not in headers:
                headers[key] = value
            elif not want_requires and "name" in headers and "version" in headers:
                break
    return headers, requires


def read_dist_info(folder: str, want_requires: bool = True) -> Distribution:
    dist = _read_dist_info(folder, want_requires)
    try:
        return dataclasses.replace(dist, installed_at=os.stat(folder).st_mtime)
    except OSError:
        return dist


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

    Only stack distributions are read unless `everything` is set, which keeps `compat env` fast.
    """
    seen: set[str] = set()
    found: list[Distribution] = []
    for entry in paths:
        for folder in _dist_folders(entry or "."):
            base = os.path.basename(folder)
            m = _DIST_INFO.match(base)
            key = canonicalize_name(m.group("name") if m else base.rsplit(".", 1)[0])
            if key in seen or not (everything or is_stack(key)):
                continue
            dist = read_dist_info(folder, want_requires=is_stack(key))
            real_key = dist.key if dist.broken is None else key
            if real_key in seen:
                continue
            seen.add(key)
            seen.add(real_key)
            found.append(dist)
    return tuple(sorted(found, key=lambda d: d.key))


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
        out.append(dataclasses.replace(d, needs=needed) if needed else d)
    return tuple(out)
