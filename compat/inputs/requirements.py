"""Pins of requirements/constraints files (pip-compile output with hashes, `-r`/`-c` includes,
index lines), pyproject.toml (dependencies, extras, `[tool.uv.sources]`, `[[tool.uv.index]]`) and
pylock.toml (PEP 751). Pure: texts arrive as arguments, includes through a reader function."""

from __future__ import annotations

import os
import re
import sys
import urllib.parse
from typing import Any, Callable, Optional

import msgspec
import msgspec.structs
from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet

from compat.errors import CompatError
from compat.inputs.base import (
    FIRST,
    MAX_INCLUDE_DEPTH,
    MAX_INCLUDED_FILES,
    MAX_LINE,
    MAX_LINES,
    Pin,
    PinFile,
    holds,
)
from compat.models import (
    canonicalize_name,
    first_line,
    marker_env,
    parse_requirement,
    parse_version,
)
from compat.redact import printable, quote_line

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Problem = tuple[str, int, str]

_WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-")
_OPTION_WITH_FILE = re.compile(r"^(-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+)(\S+)")
# pip's options that name where packages come from: they apply to every requirement of the run.
_INDEX_OPTION = re.compile(
    r"^(-i|--index-url|--extra-index-url|-f|--find-links)(?:\s*=\s*|\s+)(\S+)", re.I
)
_PER_REQ_OPTION = re.compile(r"\s+--(hash|config-settings|global-option|install-option)[= ]\S+")


def pin_from_requirement(req: Requirement, path: str, line: int, text: str) -> Pin:
    """A requirement as a pin: exact when it is `==V`/`===V` or a URL to a wheel of version V."""
    version: Optional[str] = None
    if req.url:
        tail = urllib.parse.unquote(urllib.parse.urlparse(req.url).path.rsplit("/", 1)[-1])
        m = _WHEEL_NAME.match(tail)
        if m and parse_version(m.group("version")) is not None:
            version = m.group("version")
    else:
        exact = [s for s in req.specifier if s.operator in ("==", "===")]
        if len(exact) == 1 and "*" not in exact[0].version and parse_version(exact[0].version):
            version = exact[0].version
    return Pin(
        req.name,
        req.specifier,
        version,
        req.marker,
        path,
        line,
        text,
        extras=frozenset(canonicalize_name(e) for e in req.extras),
    )


def join_continuations(text: str) -> list[tuple[int, str]]:
    """Logical lines of a requirements file with the number of the line each starts on."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = n
        if raw.endswith("\\"):
            buf.append(raw[:-1])
            continue
        buf.append(raw)
        out.append((start, " ".join(buf)))
        buf = []
    if buf:
        out.append((start, " ".join(buf)))
    return out


def file_key(path: str) -> str:
    """One name per file, however it was spelled (./a.txt, a.txt, dir/../a.txt, a link)."""
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return os.path.normpath(path)


def relative(base: str, target: str) -> str:
    """`target` as named from inside `base` (an include path is relative to the including file)."""
    if target.startswith("/") or "/" not in base.replace("\\", "/"):
        return target
    return base.replace("\\", "/").rsplit("/", 1)[0] + "/" + target


def read_requirements(
    text: str,
    path: str,
    read: Optional[Callable[[str], str]] = None,
    _seen: Optional[set[str]] = None,
    _depth: int = 0,
) -> tuple[list[Pin], list[Problem]]:
    """Pins of a requirements/constraints file, following `-r`/`-c` includes through `read`
    (each file once, at most MAX_INCLUDE_DEPTH deep and MAX_INCLUDED_FILES in all). The index
    lines of the file and its includes (`--index-url`, `--extra-index-url`, `--find-links`) apply
    to every pin, as pip applies them."""
    pins, problems, indexes = _read(text, path, read, _seen, _depth)
    if indexes:
        urls = tuple(dict.fromkeys(indexes))
        pins = [msgspec.structs.replace(p, indexes=urls) for p in pins]
    return pins, problems


def _read(
    text: str,
    path: str,
    read: Optional[Callable[[str], str]],
    seen_in: Optional[set[str]],
    depth: int,
) -> tuple[list[Pin], list[Problem], list[str]]:
    seen = seen_in if seen_in is not None else set()
    seen.add(file_key(path))
    pins: list[Pin] = []
    problems: list[Problem] = []
    indexes: list[str] = []
    for count, (n, raw) in enumerate(join_continuations(text), 1):
        if count > MAX_LINES:
            problems.append((path, n, f"more than {MAX_LINES} lines: the rest is not read"))
            break
        line = raw.strip()
        if line.startswith("#"):
            continue
        line = re.split(r"\s#", line, maxsplit=1)[0].strip()
        if not line:
            continue
        if len(line) > MAX_LINE:
            problems.append((path, n, f"a line of {len(line)} characters, not a requirement"))
            continue
        if line.startswith("-"):
            idx = _INDEX_OPTION.match(line)
            if idx:
                indexes.append(idx.group(2))
                continue
            m = _OPTION_WITH_FILE.match(line)
            if m and read is not None and "://" not in m.group(2):
                inc = relative(path, m.group(2))
                if file_key(inc) in seen:
                    continue  # already read (an include loop, or the same file twice)
                if depth >= MAX_INCLUDE_DEPTH or len(seen) >= MAX_INCLUDED_FILES:
                    problems.append(
                        (path, n, f"-r {printable(m.group(2))}: includes nest too deep")
                    )
                    continue
                try:
                    sub, sub_problems, sub_indexes = _read(read(inc), inc, read, seen, depth + 1)
                except CompatError as exc:
                    problems.append((path, n, printable(exc.message)))
                    continue
                except OSError as exc:
                    problems.append(
                        (path, n, f"cannot read {printable(inc)}: {exc.strerror or exc}")
                    )
                    continue
                pins.extend(sub)
                problems.extend(sub_problems)
                indexes.extend(sub_indexes)
            continue  # -e, --pre, --no-binary, --trusted-host ...
        line = _PER_REQ_OPTION.sub("", " " + line).strip()
        try:
            req = parse_requirement(line)
        except InvalidRequirement as exc:
            problems.append((path, n, f"not a requirement: {quote_line(line)} ({first_line(exc)})"))
            continue
        pins.append(pin_from_requirement(req, path, n, line))
    return pins, problems, indexes


def locate(lines: list[str], pattern: re.Pattern[str], after: int) -> int:
    """1-based number of the first line after `after` that matches, else of any line, else 1."""
    for i in range(after, len(lines)):
        if pattern.search(lines[i]):
            return i + 1
    for i in range(len(lines)):
        if pattern.search(lines[i]):
            return i + 1
    return 1


def load_toml(text: str, path: str) -> tuple[Optional[dict[str, Any]], list[Problem]]:
    """A TOML document, or the line where it stops being one. Nesting is bounded by tomllib's
    own recursion limit; a RecursionError is reported like a syntax error."""
    try:
        return tomllib.loads(text), []
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or 1
        return None, [(path, int(line), f"not valid TOML: {first_line(exc)}")]
    except (RecursionError, ValueError, OverflowError) as exc:
        return None, [(path, 1, f"not valid TOML: {first_line(exc)}")]


def read_pyproject(text: str, path: str, python: Optional[str] = None) -> PinFile:
    """[project].dependencies and [project.optional-dependencies]: the base, and base + each
    extra; `[tool.uv.sources]` and `[[tool.uv.index]]` name the index each pin comes from."""
    data, problems = load_toml(text, path)
    if data is None:
        return PinFile(path, (), tuple(problems), kind="pyproject")
    project = data.get("project")
    if not isinstance(project, dict):
        return PinFile(path, (), kind="pyproject")
    own = canonicalize_name(str(project.get("name", "")))
    lines = text.splitlines()
    used: set[int] = set()
    sources = _uv_sources(data, path, lines, problems, python)

    def pins_of(items: object, where: str, extra: str) -> list[Pin]:
        out: list[Pin] = []
        if not isinstance(items, list):
            problems.append((path, 1, f"{where} is not a list"))
            return out
        for item in items[:MAX_LINES]:
            if not isinstance(item, str):
                problems.append((path, 1, f"{where}: {printable(repr(item)[:80])} is not a string"))
                continue
            pat = re.compile(r"([\"'])" + re.escape(item[:MAX_LINE]) + r"\1")
            n = locate(lines, pat, 0)
            while n in used and n < len(lines):  # the same text twice: take the next occurrence
                n = locate(lines, pat, n)
                if n in used:
                    break
            used.add(n)
            try:
                req = parse_requirement(item)
            except InvalidRequirement as exc:
                problems.append(
                    (path, n, f"not a requirement: {quote_line(item)} ({first_line(exc)})")
                )
                continue
            if canonicalize_name(req.name) == own:
                # `svc[old]` inside an extra of svc: that extra's pins come along
                includes.setdefault(canonicalize_name(where.rsplit(".", 1)[-1]), []).extend(
                    canonicalize_name(e) for e in req.extras
                )
                continue
            pin = pin_from_requirement(req, path, n, item)
            out.append(_with_source(pin, sources, extra))
        return out

    includes: dict[str, list[str]] = {}  # extra -> other extras of the project it names
    base = pins_of(project.get("dependencies", []), "project.dependencies", "")
    scopes: list[tuple[str, tuple[Pin, ...]]] = [("", tuple(base))]
    extras = project.get("optional-dependencies", {})
    if isinstance(extras, dict):
        own_pins: dict[str, list[Pin]] = {
            canonicalize_name(name): pins_of(
                items, f"optional-dependencies.{name}", canonicalize_name(name)
            )
            for name, items in sorted(extras.items())[:MAX_LINES]
        }
        for name in sorted(own_pins):
            todo: list[str] = [name]
            done: set[str] = set()
            pins = list(base)
            while todo:
                extra = todo.pop()
                if extra in done or extra not in own_pins:
                    continue
                done.add(extra)
                pins.extend(own_pins[extra])
                todo.extend(includes.get(extra, []))
            scopes.append((f"[{name}]", tuple(pins)))
    return PinFile(path, tuple(scopes), tuple(problems), kind="pyproject")


# package -> [(index URLs, the extra the source is limited to ("" for all))]
_Sources = dict[str, list[tuple[tuple[str, ...], str]]]


def _with_source(pin: Pin, sources: tuple[_Sources, tuple[str, ...]], extra: str) -> Pin:
    named, implicit = sources
    for urls, only in named.get(pin.key, []):
        if not only or only == extra:
            return msgspec.structs.replace(pin, indexes=urls, strategy=FIRST)
    if implicit:
        return msgspec.structs.replace(pin, indexes=implicit, strategy=FIRST)
    return pin


def _uv_sources(
    data: dict[str, Any],
    path: str,
    lines: list[str],
    problems: list[Problem],
    python: Optional[str],
) -> tuple[_Sources, tuple[str, ...]]:
    """uv's indexes for each package: a `[tool.uv.sources]` entry naming an index (with its
    marker and extra), else the project's non-explicit `[[tool.uv.index]]` entries, which uv
    searches before the default index, first match wins."""
    tool = data.get("tool")
    uv = tool.get("uv") if isinstance(tool, dict) else None
    if not isinstance(uv, dict):
        return {}, ()
    named: dict[str, str] = {}
    implicit: list[str] = []
    index_rows = uv.get("index", [])
    if not isinstance(index_rows, list):
        problems.append(
            (
                path,
                locate(lines, re.compile(r"tool\.uv\.index"), 0),
                "tool.uv.index is not an array of tables",
            )
        )
        index_rows = []
    for i, row in enumerate(index_rows[:MAX_LINES]):
        if not isinstance(row, dict) or not isinstance(row.get("url"), str):
            problems.append((path, 1, f"tool.uv.index[{i}] has no url"))
            continue
        name = row.get("name")
        if isinstance(name, str):
            named[name] = row["url"]
        if row.get("explicit") is not True:
            implicit.append(row["url"])
    out: _Sources = {}
    raw = uv.get("sources", {})
    if not isinstance(raw, dict):
        return {}, tuple(implicit)
    env = marker_env(python)
    for pkg, spec in list(raw.items())[:MAX_LINES]:
        entries = spec if isinstance(spec, list) else [spec]
        for entry in entries[:64]:
            if not isinstance(entry, dict) or not isinstance(entry.get("index"), str):
                continue  # git, path, url or workspace sources: not an index
            index = entry["index"]
            n = locate(lines, re.compile(r"^\s*" + re.escape(str(pkg)[:200]) + r"\s*="), 0)
            url = named.get(index)
            if url is None:
                problems.append(
                    (
                        path,
                        n,
                        f"tool.uv.sources.{printable(str(pkg)[:80])} names index "
                        f"{quote_line(index)}, which no [[tool.uv.index]] defines",
                    )
                )
                continue
            marker = entry.get("marker")
            if isinstance(marker, str):
                try:
                    if not holds(Marker(marker), env):
                        continue
                except InvalidMarker as exc:
                    problems.append(
                        (path, n, f"tool.uv.sources.{printable(str(pkg)[:80])}: {first_line(exc)}")
                    )
                    continue
            extra = entry.get("extra")
            out.setdefault(canonicalize_name(str(pkg)), []).append(
                ((url,), canonicalize_name(extra) if isinstance(extra, str) else "")
            )
    return out, tuple(implicit)


def read_pylock(text: str, path: str) -> PinFile:
    """PEP 751 lock: every `[[packages]]` entry with a version is an exact pin (its `index`
    kept: it tells the CUDA build of a torch without a local tag)."""
    data, problems = load_toml(text, path)
    if data is None:
        return PinFile(path, (), tuple(problems), kind="pylock")
    packages = data.get("packages", [])
    if not isinstance(packages, list):
        return PinFile(path, (), ((path, 1, "packages is not an array of tables"),), kind="pylock")
    lines = text.splitlines()
    after = 0
    pins: list[Pin] = []
    for i, pkg in enumerate(packages[:MAX_LINES]):
        if not isinstance(pkg, dict) or not isinstance(pkg.get("name"), str):
            problems.append((path, 1, f"packages[{i}] has no name"))
            continue
        name = pkg["name"][:MAX_LINE]
        n = locate(
            lines,
            re.compile(
                r"^\s*name\s*=\s*([\"'])" + re.escape(name) + r"\1|"
                r"\bname\s*=\s*([\"'])" + re.escape(name) + r"\2"
            ),
            after,
        )
        after = n
        version = pkg.get("version")
        marker: Optional[Marker] = None
        if isinstance(pkg.get("marker"), str):
            try:
                marker = Marker(pkg["marker"])
            except (InvalidMarker, ValueError, RecursionError) as exc:
                problems.append((path, n, f"packages[{i}].marker: {first_line(exc)}"))
        if not isinstance(version, str) or parse_version(version) is None:
            continue  # a VCS or directory entry: no version to check
        index = pkg.get("index")
        pins.append(
            Pin(
                name,
                SpecifierSet(f"=={version}"),
                version,
                marker,
                path,
                n,
                f"{name}=={version}",
                indexes=(index,) if isinstance(index, str) and index else (),
            )
        )
    return PinFile(path, (("", tuple(pins)),), tuple(problems), kind="pylock")


def read_requirements_file(
    text: str, path: str, read: Optional[Callable[[str], str]] = None
) -> PinFile:
    pins, problems = read_requirements(text, path, read)
    return PinFile(path, (("", tuple(pins)),), tuple(problems), kind="requirements")
