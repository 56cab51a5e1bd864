"""uv.lock: the packages uv installs for the target (Linux, the machine and Python chosen), found
by walking the lock's graph from the project with every marker evaluated, each with the index it
comes from (a PyTorch CUDA index tells the build)."""

from __future__ import annotations

import re
from typing import Any, Optional

from msgspec import Struct
from packaging.markers import InvalidMarker, Marker
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from compat.inputs.base import (
    FIRST,
    MAX_ENTRIES,
    Pin,
    PinFile,
    ReadOptions,
    holds,
)
from compat.inputs.requirements import Problem, load_toml
from compat.models import (
    canonicalize_name,
    first_line,
    marker_env,
    parse_specifiers,
    parse_version,
)
from compat.redact import printable

# The Pythons a lock is evaluated for when none is given: 3.11 (the default target), else the
# lowest its requires-python admits.
_PYTHONS = ("3.11", "3.9", "3.10", "3.12", "3.13", "3.14")
_MAX_EXTRAS = 64
_MAX_DEPS = 4096
_ROOT_SOURCES = ("virtual", "editable")


class _Entry(Struct, frozen=True):
    name: str
    key: str
    version: str
    source: dict[str, Any]
    deps: tuple[dict[str, Any], ...]
    optional: dict[str, tuple[dict[str, Any], ...]]
    groups: dict[str, tuple[dict[str, Any], ...]]
    line: int

    @property
    def registry(self) -> str:
        reg = self.source.get("registry")
        return reg if isinstance(reg, str) else ""

    @property
    def root(self) -> bool:
        return any(self.source.get(k) == "." for k in _ROOT_SOURCES)


def _deps(value: object) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list):
        return ()
    return tuple(
        d for d in value[:_MAX_DEPS] if isinstance(d, dict) and isinstance(d.get("name"), str)
    )


def _groups(value: object) -> dict[str, tuple[dict[str, Any], ...]]:
    if not isinstance(value, dict):
        return {}
    return {canonicalize_name(str(k)): _deps(v) for k, v in list(value.items())[:_MAX_EXTRAS]}


def _lines(text: str) -> dict[tuple[str, str], int]:
    """(name, version) -> the line of `name = ...` in its [[package]] block."""
    out: dict[tuple[str, str], int] = {}
    name: Optional[tuple[str, int]] = None
    version = ""
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line == "[[package]]":
            if name is not None:
                out.setdefault((name[0], version), name[1])
            name, version = None, ""
            continue
        m = re.match(r'^(name|version)\s*=\s*"([^"]*)"', line)
        if m and m.group(1) == "name" and name is None:
            name = (canonicalize_name(m.group(2)), n)
        elif m and m.group(1) == "version" and name is not None and not version:
            version = m.group(2)
    if name is not None:
        out.setdefault((name[0], version), name[1])
    return out


def _python(requires: object, given: Optional[str]) -> Optional[str]:
    if given or not isinstance(requires, str):
        return given
    try:
        spec = parse_specifiers(requires)
    except InvalidSpecifier:
        return None
    for py in _PYTHONS:
        if spec.contains(py + ".0", prereleases=True):
            return py
    return None


def _conflict_extras(project: str, extras: set[str]) -> set[str]:
    """The values uv writes for a project's extras in conflict markers (`extra ==
    'extra-5-serve-cu124'`), besides the plain names."""
    out = set(extras)
    for e in extras:
        out.add(f"extra-{len(project)}-{project}-{e}")
        out.add(f"group-{len(project)}-{project}-{e}")
    return out


def read_uvlock(text: str, path: str, opts: Optional[ReadOptions] = None) -> PinFile:
    """Pins of a uv.lock: the base scope (the project's dependencies and its `dev` group), and
    the base with each of the project's extras."""
    opts = opts or ReadOptions()
    data, problems = load_toml(text, path)
    if data is None:
        return PinFile(path, (), tuple(problems), kind="uv.lock")
    raw = data.get("package", [])
    if not isinstance(data.get("version"), int) or not isinstance(raw, list):
        return PinFile(
            path,
            (),
            ((path, 1, "not a uv.lock: no `version = N` and [[package]] tables"),),
            kind="uv.lock",
        )
    if len(raw) > MAX_ENTRIES:
        problems.append((path, 1, f"more than {MAX_ENTRIES} packages: the rest is not read"))
    lines = _lines(text)
    entries: dict[str, list[_Entry]] = {}
    for i, pkg in enumerate(raw[:MAX_ENTRIES]):
        if not isinstance(pkg, dict) or not isinstance(pkg.get("name"), str):
            problems.append((path, 1, f"package[{i}] has no name"))
            continue
        key = canonicalize_name(pkg["name"])
        raw_version, raw_source = pkg.get("version"), pkg.get("source")
        version = raw_version if isinstance(raw_version, str) else ""
        source: dict[str, Any] = raw_source if isinstance(raw_source, dict) else {}
        entries.setdefault(key, []).append(
            _Entry(
                pkg["name"],
                key,
                version,
                source,
                _deps(pkg.get("dependencies")),
                _groups(pkg.get("optional-dependencies")),
                _groups(pkg.get("dev-dependencies")),
                lines.get((key, version), 1),
            )
        )
    python = _python(data.get("requires-python"), opts.python)
    roots = [e for es in entries.values() for e in es if e.root]
    if not roots:
        # No project in the lock (an unusual hand-made file): every package counts.
        every = (_pin(e, path) for es in entries.values() for e in es)
        pins = tuple(p for p in every if p is not None)
        return PinFile(path, (("", pins),), tuple(problems), python=python, kind="uv.lock")
    extras = sorted({x for r in roots for x in r.optional})
    scopes: list[tuple[str, tuple[Pin, ...]]] = [
        ("", _walk(roots, (), entries, path, python, opts.machine, problems))
    ]
    for extra in extras:
        scopes.append(
            (f"[{extra}]", _walk(roots, (extra,), entries, path, python, opts.machine, problems))
        )
    return PinFile(
        path, tuple(scopes), tuple(dict.fromkeys(problems)), python=python, kind="uv.lock"
    )


def _pin(e: _Entry, path: str) -> Optional[Pin]:
    if not e.version or parse_version(e.version) is None or e.root:
        return None
    return Pin(
        e.name,
        SpecifierSet(),
        e.version,
        None,
        path,
        e.line,
        f"{e.name}=={e.version}",
        indexes=(e.registry,) if e.registry else (),
        strategy=FIRST,
    )


def _holds(
    marker: object,
    env: dict[str, str],
    extras: set[str],
    where: str,
    problems: list[Problem],
    path: str,
    line: int,
) -> bool:
    if not isinstance(marker, str):
        return True
    try:
        m = Marker(marker)
    except (InvalidMarker, ValueError, RecursionError) as exc:
        problems.append((path, line, f"{printable(where)}: invalid marker ({first_line(exc)})"))
        return True
    return any(holds(m, {**env, "extra": x}) for x in extras | {""})


def _walk(
    roots: list[_Entry],
    extras: tuple[str, ...],
    entries: dict[str, list[_Entry]],
    path: str,
    python: Optional[str],
    machine: str,
    problems: list[Problem],
) -> tuple[Pin, ...]:
    """Every package reachable from the roots whose markers hold for the target."""
    env = marker_env(python, machine)
    seen: set[tuple[str, str]] = set()
    todo: list[tuple[_Entry, tuple[dict[str, Any], ...], set[str]]] = []
    for r in roots:
        active = _conflict_extras(r.key, set(extras) | {"dev"})
        deps = r.deps + r.groups.get("dev", ())
        for x in extras:
            deps += r.optional.get(x, ())
        todo.append((r, deps, active))
    out: list[Pin] = []
    steps = 0
    while todo:
        parent, deps, active = todo.pop()
        for dep in deps:
            steps += 1
            if steps > MAX_ENTRIES * 4:
                problems.append((path, 1, "the dependency graph is too large to walk"))
                return tuple(out)
            if not _holds(dep.get("marker"), env, active, parent.name, problems, path, parent.line):
                continue
            e = _choose(dep, entries)
            if e is None:
                continue
            named = dep.get("extra")
            want = (
                {canonicalize_name(x) for x in named[:_MAX_EXTRAS] if isinstance(x, str)}
                if isinstance(named, list)
                else set()
            )
            k = (e.key, e.version)
            sub = tuple(d for x in sorted(want) for d in e.optional.get(x, ()))
            if k in seen:
                if sub:
                    todo.append((e, sub, active))
                continue
            seen.add(k)
            pin = _pin(e, path)
            if pin is not None:
                out.append(pin)
            todo.append((e, e.deps + sub, active))
    return tuple(sorted(out, key=lambda p: (p.line, p.key)))


def _choose(dep: dict[str, Any], entries: dict[str, list[_Entry]]) -> Optional[_Entry]:
    """The locked package a dependency names: by version and source when the lock has several
    (a forked resolution), else the one there is."""
    cands = entries.get(canonicalize_name(dep["name"]), [])
    version = dep.get("version")
    if isinstance(version, str):
        cands = [e for e in cands if e.version == version] or cands
        source = dep.get("source")
        if isinstance(source, dict) and len(cands) > 1:
            cands = [e for e in cands if e.source == source] or cands
    return cands[0] if cands else None
