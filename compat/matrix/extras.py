"""Extras that name other extras of the same project, flattened.

A release's METADATA can make one extra install others: sglang 0.4.6.post1 has
`sglang[runtime_common]; extra == "srt"` and `sglang[srt,openai,...]; extra == "all"`. The sync
keeps these self-references as they are; here they become the lines they stand for, so that
`extra == "all"` carries srt's torch pin and every consumer of `Release.requires` sees one flat
list (no consumer has to follow a project's requirement on itself).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from packaging.utils import canonicalize_name

_EXTRA = re.compile(r"""extra\s*==\s*(["'])([^"']+)\1""")
# How deep extras may include each other (sglang: all -> srt -> runtime_common).
MAX_DEPTH = 8


def _norm(extra: str) -> str:
    return canonicalize_name(extra)


def _split_and(marker: str) -> list[str]:
    """Top-level `and` clauses of a marker (parentheses respected); one clause if none."""
    out, depth, start, i = [], 0, 0, 0
    while i < len(marker):
        ch = marker[i]
        if ch in "\"'":
            end = marker.find(ch, i + 1)
            i = len(marker) if end < 0 else end + 1
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and marker.startswith(" and ", i):
            out.append(marker[start:i].strip())
            start = i + 5
            i += 5
            continue
        i += 1
    out.append(marker[start:].strip())
    return [c for c in out if c]


def _extra_clause(marker: str) -> tuple[str, str]:
    """(the extra a self-reference is under, the rest of its marker) or ("", "") when its marker
    is not `extra == "X"` joined by `and` to other clauses."""
    if " or " in marker:
        return "", ""
    clauses = _split_and(marker)
    extras = [m for c in clauses if (m := _EXTRA.fullmatch(c.strip("() ")))]
    if len(extras) != 1:
        return "", ""
    rest = [c for c in clauses if not _EXTRA.fullmatch(c.strip("() "))]
    return _norm(extras[0].group(2)), " and ".join(f"({c})" for c in rest)


def _move(line: str, extra: str, under: str, rest: str) -> str:
    """`line` with `extra == "<extra>"` read as `extra == "<under>"`, and `rest` added."""
    head, _, marker = line.partition(";")
    marker = _EXTRA.sub(
        lambda m: f'extra == "{under}"' if _norm(m.group(2)) == extra else m.group(0), marker
    ).strip()
    if rest:
        marker = f"({marker}) and {rest}"
    return f"{head.strip()}; {marker}"


# `name[extra, ...]` with an optional `; marker`, as Requires-Dist writes a requirement on a
# project (no version: the lines on the project itself name only extras).
_SELF = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*\[([^\]]*)\]\s*(?:;\s*(.*))?$")


def expand_self_extras(project: str, requires: Sequence[str]) -> tuple[str, ...]:
    """`requires` with each requirement on the project itself replaced by the lines of the
    extras it names, moved under the extra that names them (and that line's other markers)."""
    return flatten(project, requires)[0]


def flatten(
    project: str, requires: Sequence[str]
) -> tuple[tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...]]:
    """(the flat lines, each extra -> the extras it installs too, transitively). Text only:
    this runs on every release a check loads, so nothing here parses a requirement."""
    key = canonicalize_name(project)
    own: list[tuple[str, tuple[str, ...], str]] = []  # (under extra, includes, other markers)
    plain: list[str] = []
    for line in requires:
        m = _SELF.match(line)
        if m is None or canonicalize_name(m.group(1)) != key:
            plain.append(line)
            continue
        includes = tuple(sorted({_norm(e) for e in m.group(2).split(",") if e.strip()}))
        under, rest = _extra_clause(m.group(3) or "") if m.group(3) else ("", "")
        if under and includes:
            own.append((under, includes, rest))
        # a self-reference not under one extra (no marker, `or`) adds nothing it could pin
    if not own:
        return (tuple(requires) if len(plain) == len(requires) else tuple(plain)), ()
    out = list(plain)
    seen = set(out)
    included: dict[str, set[str]] = {}
    # lines by the extras they are under, so each extra's lines are found once
    by_extra: dict[str, list[str]] = {}
    for line in plain:
        for em in _EXTRA.finditer(line.partition(";")[2]):
            by_extra.setdefault(_norm(em.group(2)), []).append(line)
    for under, includes, rest in own:
        stack = [(e, 1) for e in includes]
        visited: set[str] = set()
        while stack:
            extra, depth = stack.pop()
            if extra in visited or extra == under or depth > MAX_DEPTH:
                continue
            visited.add(extra)
            included.setdefault(under, set()).add(extra)
            for line in by_extra.get(extra, ()):
                moved = _move(line, extra, under, rest)
                if moved not in seen:
                    seen.add(moved)
                    out.append(moved)
            stack.extend((i, depth + 1) for u, inc, _ in own if u == extra for i in inc)
    return tuple(out), tuple((k, tuple(sorted(v))) for k, v in sorted(included.items()))
