"""An Environment from the pins of a file: versions as the installer would install them (the local
tag of the CUDA index a file names, from curated/indexes.toml), torch's CUDA build, and the exact
stack pins a pinned release pulls in (a framework's torch, torch's triton)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Optional, Union

from packaging.version import Version

from compat.families import Family, families
from compat.inputs.base import Pin, holds
from compat.matrix.load import Matrix
from compat.matrix.schema import WheelIndex
from compat.models import (
    Distribution,
    Environment,
    PythonInfo,
    TorchBuild,
    Unknown,
    canonicalize_name,
    cuda_from_local,
    marker_env,
    parse_version,
)

# Families whose wheels on a CUDA index carry that index's local tag (+cu126): torch and what is
# compiled against it. Triton's wheels on the PyTorch index carry none.
_TAGGED = (Family.TORCH, Family.COMPANION, Family.KERNEL)
# A framework pins a handful of stack packages, and those a few more: the walk stops long before.
_MAX_IMPLIED = 256


def _url_parts(url: str) -> Optional[tuple[str, tuple[str, ...]]]:
    try:
        u = urllib.parse.urlsplit(url.strip())
    except ValueError:
        return None
    if u.scheme not in ("http", "https") or not u.hostname:
        return None
    host = u.hostname.lower() + (f":{u.port}" if u.port else "")
    return host, tuple(part for part in u.path.split("/") if part)


def index_rows(url: str, matrix: Matrix) -> list[WheelIndex]:
    """The curated index rows a URL is (or lies under: a project page, `/simple`), the longest
    matching row URL first; rows that share the URL are all returned."""
    have = _url_parts(url)
    if have is None:
        return []
    best: list[WheelIndex] = []
    best_len = -1
    for row in matrix.indexes:
        want = _url_parts(row.url)
        if want is None or want[0] != have[0] or have[1][: len(want[1])] != want[1]:
            continue
        if len(want[1]) > best_len:
            best, best_len = [row], len(want[1])
        elif len(want[1]) == best_len:
            best.append(row)
    return best


def _admits(
    row: WheelIndex, pin: Pin, version: Version, torch: Optional[Version], matrix: Matrix
) -> bool:
    """Whether the row's `when` admits the pinned release. A row that names torch judges a
    companion by the torch release it is built for (torchvision 0.20.1 is torch 2.5.1's, not on
    an index that starts at torch 2.6), else by the torch pinned beside it; unknown admits."""
    when = row.when
    if when is None:
        return True
    subject = canonicalize_name(when.name)
    if subject == pin.key:
        return when.specifier.contains(Version(version.public), prereleases=True)
    if subject == "torch":
        rel = matrix.release(pin.key, Version(version.public))
        built = [
            parse_version(s.version)
            for r in (rel.pins("torch") if rel else [])
            for s in r.specifier
            if s.operator in ("==", "===")
        ]
        target = next((v for v in built if v is not None), None) or torch
        if target is not None:
            return when.specifier.contains(Version(target.public), prereleases=True)
    return True


def index_local(
    pin: Pin, matrix: Matrix, torch: Optional[Version] = None
) -> Optional[tuple[str, str]]:
    """(local tag, index URL) a pin without a local tag is installed with, from the index its
    file names; None when no curated index tells, or the indexes named disagree."""
    version = parse_version(pin.version) if pin.version else None
    if version is None or version.local or not pin.indexes:
        return None
    if families().family(pin.name) not in _TAGGED:
        return None
    found: list[tuple[str, str]] = []
    for url in pin.indexes:
        rows = [
            r
            for r in index_rows(url, matrix)
            if pin.key in {canonicalize_name(p) for p in r.projects}
            and r.local
            and _admits(r, pin, version, torch, matrix)
        ]
        tags = {r.local for r in rows}
        if len(tags) == 1:
            found.append((rows[0].local, url))
        elif tags:
            return None  # one URL, several builds (a release page shared by CUDA variants)
        if rows and pin.strategy == "first":
            break  # uv takes the first index that has the project
    if len({tag for tag, _ in found}) != 1:
        return None
    return found[0]


def installed_version(pin: Pin, matrix: Matrix, torch: Optional[Version] = None) -> Optional[str]:
    """The version the installer puts in place for an exact pin: with the index's local tag."""
    if pin.version is None:
        return None
    got = index_local(pin, matrix, torch)
    return f"{pin.version}+{got[0]}" if got else pin.version


def implied(
    pins: Sequence[Pin], matrix: Matrix, python: Optional[str] = None, machine: str = "x86_64"
) -> list[Pin]:
    """Exact pins of stack packages that the exactly pinned releases here require and the pins do
    not name: what the installer pulls in with them (a framework's torch and kernels, torch's
    triton), with the index and line of the pin that pulls them."""
    table = families()
    have = {p.key for p in pins}
    queue = [p for p in pins if p.version]
    out: list[Pin] = []
    while queue and len(out) < _MAX_IMPLIED:
        p = queue.pop(0)
        version = parse_version(p.version)
        rel = matrix.release(p.key, version) if version is not None else None
        if rel is None:
            continue
        extras = set(p.extras)
        for _ in range(8):  # `sglang[all]` requires `sglang[srt]`: the extras it brings along
            more = {
                canonicalize_name(e)
                for r in rel.requires
                if canonicalize_name(r.name) == p.key
                and any(holds(r.marker, marker_env(python, machine, x)) for x in extras)
                for e in r.extras
            }
            if more <= extras:
                break
            extras |= more
        for req in rel.requires:
            key = canonicalize_name(req.name)
            # NVIDIA's runtime wheels are left out: the checks derive them from torch's own pins.
            if key in have or not table.is_stack(key) or table.family(key) is Family.RUNTIME:
                continue
            if not any(holds(req.marker, marker_env(python, machine, x)) for x in {"", *extras}):
                continue
            exact = [s.version for s in req.specifier if s.operator in ("==", "===")]
            if len(exact) != 1 or "*" in exact[0] or parse_version(exact[0]) is None:
                continue
            new = Pin(
                req.name,
                req.specifier,
                exact[0],
                None,
                p.path,
                p.line,
                f"{req.name}=={exact[0]}",
                indexes=p.indexes,
                strategy=p.strategy,
                via=f"pulled in by {p.name}=={p.version}",
                extras=frozenset(canonicalize_name(e) for e in req.extras),
            )
            have.add(key)
            out.append(new)
            queue.append(new)
    return out


def environment_of(
    pins: Sequence[Pin],
    origin: str,
    matrix: Matrix,
    *,
    env: Optional[Mapping[str, str]] = None,
    python: Optional[str] = None,
    machine: str = "x86_64",
    launch: Sequence[str] = (),
    partial: bool = True,
) -> Environment:
    """An Environment of the exact pins (the first pin of a name wins): versions with the local
    tag of the index each comes from, torch's CUDA from its local tag, the CUDA the file states,
    or the database's record of the PyPI build. A file of pins is `partial`: a package it does
    not name is not known to be missing."""
    exact: dict[str, Pin] = {}
    for p in pins:
        if p.version is not None and parse_version(p.version) is not None:
            exact.setdefault(p.key, p)
    torch_pin = exact.get("torch")
    torch_public = parse_version(torch_pin.version) if torch_pin and torch_pin.version else None
    dists: list[Distribution] = []
    versions: dict[str, Version] = {}
    for key, p in sorted(exact.items()):
        raw = installed_version(p, matrix, torch_public) or ""
        v = parse_version(raw)
        if v is None:
            continue
        versions[key] = v
        dists.append(Distribution(p.name, v, raw, origin))
    torch: Union[TorchBuild, Unknown] = Unknown("torch is not in the file")
    tv = versions.get("torch")
    if tv is not None and torch_pin is not None:
        cuda = cuda_from_local(tv.local)
        deps: Optional[str] = None
        said = torch_pin.cuda
        how = f"{origin} (pinned version)"
        if cuda is None and said:
            if said == "cpu":
                how = f"{origin} (pinned version; a CPU build as the file states)"
            elif "." in said:
                cuda = said
            else:
                deps = said
            if said != "cpu":
                how = f"{origin} (pinned version; CUDA {said} as the file states)"
        if cuda is None and deps is None and not tv.local and said != "cpu":
            rel = matrix.release("torch", tv)
            deps = rel.cuda if rel else None
        hip = tv.local[4:] if tv.local and tv.local.startswith("rocm") else None
        torch = TorchBuild(tv, cuda, hip, how, deps)
    why = f"not in {origin}: give --driver/--gpu for host checks"
    py: Union[PythonInfo, Unknown] = (
        PythonInfo(python, "cpython", "", "linux", machine)
        if python
        else Unknown(f"not in {origin}: give --python X.Y")
    )
    return Environment(
        python=py,
        distributions=tuple(dists),
        torch=torch,
        driver=Unknown(why),
        gpus=Unknown(why),
        context=Unknown(why),
        env=dict(env or {}),
        source=origin,
        launch=tuple(launch),
        partial=partial,
    )


def with_implied(
    pins: Sequence[Pin], matrix: Matrix, python: Optional[str] = None, machine: str = "x86_64"
) -> list[Pin]:
    """The pins and what they pull in (see `implied`)."""
    return [*pins, *implied(pins, matrix, python, machine)]
