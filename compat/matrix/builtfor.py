"""Was a release built for this torch? One answer from the build facts, with its method and evidence."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Optional

from msgspec import Struct
from packaging.version import InvalidVersion, Version

from compat.matrix.schema import BuildFacts, ExportsTable

_PINNED = re.compile(r"^torch==(\S+)")
_LOCAL_TORCH = re.compile(r"torch([0-9]+)\.([0-9]+)")


class Verdict(Struct, frozen=True):
    """`answer` True: built for that torch; False: not; None: cannot tell (then `method` is
    "none"). `method` says which fact decided it, strongest first: "exports" (the symbols the
    wheel imports against those torch's libraries export), "requires" (its own torch pin),
    "copin" (a framework release pins it and torch together), "local" (+...torchX.Y tag)."""

    answer: Optional[bool]
    method: str
    built_for: str  # the torch it was built against, in words ("torch 2.8.0, 2.8.1"); "" unknown
    evidence: tuple[str, ...]


def span(versions: Sequence[Version]) -> str:
    """`torch 2.8.0, 2.8.1`, `torch 2.4.0 ... 2.5.1 (4 releases)`, or ""."""
    if not versions:
        return ""
    if len(versions) <= 3:
        return "torch " + ", ".join(str(v) for v in versions)
    return f"torch {versions[0]} ... {versions[-1]} ({len(versions)} releases)"


def _minor(v: Version) -> tuple[int, ...]:
    return v.release[:2]


def _signal(facts: BuildFacts, torch: Version) -> Optional[Verdict]:
    label = f"{facts.project} {facts.version}"
    pinned: list[tuple[Version, str, str]] = []
    for text in facts.signals.copins:
        m = _PINNED.match(text)
        if m:
            try:
                pinned.append((Version(m.group(1)), "copin", f"{text} pins {label} with it"))
            except InvalidVersion:
                continue
    local = _LOCAL_TORCH.search(facts.signals.local)
    if local:
        v = Version(f"{local.group(1)}.{local.group(2)}")
        pinned.append((v, "local", f"{label}'s local tag +{facts.signals.local}"))
    if not pinned:
        return None
    method = pinned[0][1]
    matching = [p for p in pinned if _minor(p[0]) == _minor(torch)]
    built = "torch " + ", ".join(sorted({str(p[0]) for p in pinned}, key=Version))
    if matching:
        return Verdict(True, method, built, tuple(p[2] for p in matching))
    return Verdict(False, method, built, tuple(p[2] for p in pinned))


def built_for(facts: BuildFacts, torch: Version, exports: ExportsTable) -> Verdict:
    """Whether `facts`' release was built for `torch` (a local tag on torch is ignored: the
    C++ symbols of one torch release are the same in its CUDA builds)."""
    label = f"{facts.project} {facts.version}"
    public = Version(torch.public)
    covered = span(facts.torch)
    if not facts.import_count:
        why = (
            "links torch's libraries but imports none of its symbols"
            if facts.links_torch
            else "imports no torch symbol"
        )
        signal = _signal(facts, torch)
        return signal or Verdict(None, "none", "", (f"{label} {why} ({facts.file})",))
    row = exports.releases.get(public)
    imported = f"{label}'s libraries import {facts.import_count} torch symbols ({facts.file})"
    if row is not None and facts.variants and row.answers(facts.imports):
        # One extension per torch: built for this torch when one of them is.
        fits = [m for m, imp in facts.member_imports if imp <= row.provides]
        where = f"it ships one extension per torch release: {'; '.join(facts.variants)}"
        if fits:
            return Verdict(
                True,
                "exports",
                covered,
                (
                    imported,
                    where,
                    f"torch {public}'s libraries export all that {fits[0]} imports ({row.file})",
                ),
            )
        return Verdict(False, "exports", covered, (imported, where))
    if row is not None and row.answers(facts.imports):
        lacking = facts.imports - row.provides
        if not lacking:
            return Verdict(
                True,
                "exports",
                covered,
                (imported, f"torch {public}'s libraries export all of them ({row.file})"),
            )
        where = (
            f"the exports of {covered} cover them"
            if covered
            else "no torch release in the database exports all of them"
        )
        return Verdict(
            False,
            "exports",
            covered,
            (
                imported,
                f"torch {public}'s libraries lack {len(lacking)} of them ({row.file})",
                where,
            ),
        )
    signal = _signal(facts, torch)
    missing = f"torch {public}'s exports are not in the database"
    if signal is not None:
        return Verdict(
            signal.answer, signal.method, signal.built_for or covered, (*signal.evidence, missing)
        )
    return Verdict(None, "none", covered, (imported, missing))


def releases_built_for(
    builds: Mapping[Version, BuildFacts], torch: Version, exports: ExportsTable
) -> list[Version]:
    """Releases of one project whose build facts say they were built for `torch`, newest
    first (by exports, else by a co-pin or local tag)."""
    out = [v for v, f in builds.items() if built_for(f, torch, exports).answer]
    return sorted(out, reverse=True)
