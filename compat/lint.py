"""Static check of pinned files (requirements, constraints, pyproject.toml, pylock.toml) offline.

The exact pins of a file become an Environment and go through the same checks as `compat check`;
every finding is mapped back to the line of the pin it names. Ranges are judged only against the
exact pins: a range none of whose known releases fits them gives an info. Host checks (driver,
GPU) run only when the target host is given. Pure: file contents arrive as text, and the reader
for `-r`/`-c` includes is a parameter.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from compat.errors import CompatError
from compat.inputs import apply_overrides, env_from_freeze
from compat.jsondoc import printable
from compat.matrix.load import Matrix
from compat.models import Code, Environment, Finding, Severity, parse_version
from compat.pipeline import Database, check
from compat.redact import quote_line

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LINT_SCHEMA = "compat.lint/1"

#: File names `compat lint` understands (the pre-commit hook's `files` pattern matches these).
FILE_PATTERN = re.compile(
    r"(^|/)(requirements[^/]*\.txt|requirements/[^/]+\.txt|constraints[^/]*\.txt|pyproject\.toml"
    r"|pylock(\.[^/.]+)?\.toml)$"
)

# Codes whose findings are about the host (driver, GPUs, caches, env vars): in a pinned file
# there is no host, so unless one is given they can only say "could not tell".
_HOST_CODES = frozenset(
    {
        Code.DRIVER_TOO_OLD.value,
        Code.GPU_ARCH.value,
        Code.STALE_CACHE.value,
        Code.ENV_VAR.value,
        Code.MEMORY_HEADROOM.value,
        Code.PARALLELISM.value,
        Code.MEMORY_FIT.value,
    }
)
# Infos worth showing for a file: a release the database does not know.
_STATIC_INFO = frozenset({Code.UNKNOWN_COMBINATION.value})
_WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-")
_OPTION_WITH_FILE = re.compile(r"^(-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+)(\S+)")
_PER_REQ_OPTION = re.compile(r"\s+--(hash|config-settings|global-option|install-option)[= ]\S+")


@dataclass(frozen=True)
class Pin:
    """One requirement line of a file: exact (`version` set) or a range."""

    name: str
    specifier: SpecifierSet
    version: Optional[str]
    marker: Optional[Marker]
    path: str
    line: int
    text: str

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class PinFile:
    """The pins of a file grouped in scopes: sets of pins installed together (a pyproject's base
    dependencies, and the base plus each extra)."""

    path: str
    scopes: tuple[tuple[str, tuple[Pin, ...]], ...]
    problems: tuple[tuple[str, int, str], ...] = ()  # (path, line, what cannot be read)


@dataclass(frozen=True)
class LintFinding:
    path: str
    line: int
    finding: Finding
    related: tuple[Pin, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "line": self.line}
        d.update(self.finding.to_dict())
        d["related"] = [{"path": p.path, "line": p.line, "pin": p.text} for p in self.related]
        return d


@dataclass(frozen=True)
class LintResult:
    files: tuple[str, ...]
    findings: tuple[LintFinding, ...]
    problems: tuple[tuple[str, int, str], ...]


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------


def kind_of(path: str) -> str:
    """'requirements', 'pyproject' or 'pylock' from the file name (requirements by default)."""
    base = path.replace("\\", "/").rsplit("/", 1)[-1]
    if base == "pyproject.toml":
        return "pyproject"
    if base.startswith("pylock") and base.endswith(".toml"):
        return "pylock"
    return "requirements"


def _pin_from_requirement(req: Requirement, path: str, line: int, text: str) -> Pin:
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
    return Pin(req.name, req.specifier, version, req.marker, path, line, text)


def _join_continuations(text: str) -> list[tuple[int, str]]:
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


# Bounds on `-r`/`-c` includes: pip itself nests a few levels; a loop or a fan-out is refused.
MAX_INCLUDE_DEPTH = 16
MAX_INCLUDED_FILES = 256
MAX_LINE = 64 * 1024


def _key(path: str) -> str:
    """One name per file, however it was spelled (./a.txt, a.txt, dir/../a.txt, a link)."""
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return os.path.normpath(path)


def read_requirements(
    text: str,
    path: str,
    read: Optional[Callable[[str], str]] = None,
    _seen: Optional[set[str]] = None,
    _depth: int = 0,
) -> tuple[list[Pin], list[tuple[str, int, str]]]:
    """Pins of a requirements/constraints file, following `-r`/`-c` includes through `read`
    (each file once, at most MAX_INCLUDE_DEPTH deep and MAX_INCLUDED_FILES in all)."""
    seen = _seen if _seen is not None else set()
    seen.add(_key(path))
    pins: list[Pin] = []
    problems: list[tuple[str, int, str]] = []
    for n, raw in _join_continuations(text):
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
            m = _OPTION_WITH_FILE.match(line)
            if m and read is not None and "://" not in m.group(2):
                inc = _relative(path, m.group(2))
                if _key(inc) in seen:
                    continue  # already read (an include loop, or the same file twice)
                if _depth >= MAX_INCLUDE_DEPTH or len(seen) >= MAX_INCLUDED_FILES:
                    problems.append(
                        (path, n, f"-r {printable(m.group(2))}: includes nest too deep")
                    )
                    continue
                try:
                    sub, sub_problems = read_requirements(read(inc), inc, read, seen, _depth + 1)
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
            continue  # -e, --index-url, --extra-index-url, --find-links ...
        line = _PER_REQ_OPTION.sub("", " " + line).strip()
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            problems.append(
                (path, n, f"not a requirement: {quote_line(line)} ({_first_line(exc)})")
            )
            continue
        pins.append(_pin_from_requirement(req, path, n, line))
    return pins, problems


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _relative(base: str, target: str) -> str:
    if target.startswith("/") or "/" not in base.replace("\\", "/"):
        return target
    return base.replace("\\", "/").rsplit("/", 1)[0] + "/" + target


def _locate(lines: list[str], pattern: re.Pattern[str], after: int) -> int:
    """1-based number of the first line after `after` that matches, else of any line, else 1."""
    for i in range(after, len(lines)):
        if pattern.search(lines[i]):
            return i + 1
    for i in range(len(lines)):
        if pattern.search(lines[i]):
            return i + 1
    return 1


def _toml(text: str, path: str) -> tuple[Optional[dict[str, Any]], list[tuple[str, int, str]]]:
    try:
        return tomllib.loads(text), []
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or 1
        return None, [(path, int(line), f"not valid TOML: {exc}")]


def read_pyproject(text: str, path: str) -> PinFile:
    """[project].dependencies and [project.optional-dependencies]: the base, and base + each extra."""
    data, problems = _toml(text, path)
    if data is None:
        return PinFile(path, (), tuple(problems))
    project = data.get("project")
    if not isinstance(project, dict):
        return PinFile(path, ())
    own = canonicalize_name(str(project.get("name", "")))
    lines = text.splitlines()
    used: set[int] = set()

    def pins_of(items: object, where: str) -> list[Pin]:
        out: list[Pin] = []
        if not isinstance(items, list):
            problems.append((path, 1, f"{where} is not a list"))
            return out
        for item in items:
            if not isinstance(item, str):
                problems.append((path, 1, f"{where}: {item!r} is not a string"))
                continue
            pat = re.compile(r"([\"'])" + re.escape(item) + r"\1")
            n = _locate(lines, pat, 0)
            while n in used and n < len(lines):  # the same text twice: take the next occurrence
                n = _locate(lines, pat, n)
                if n in used:
                    break
            used.add(n)
            try:
                req = Requirement(item)
            except InvalidRequirement as exc:
                problems.append((path, n, f"not a requirement: {item!r} ({_first_line(exc)})"))
                continue
            if canonicalize_name(req.name) == own:
                # `svc[old]` inside an extra of svc: that extra's pins come along
                includes.setdefault(canonicalize_name(where.rsplit(".", 1)[-1]), []).extend(
                    canonicalize_name(e) for e in req.extras
                )
                continue
            out.append(_pin_from_requirement(req, path, n, item))
        return out

    includes: dict[str, list[str]] = {}  # extra -> other extras of the project it names
    base = pins_of(project.get("dependencies", []), "project.dependencies")
    scopes: list[tuple[str, tuple[Pin, ...]]] = [("", tuple(base))]
    extras = project.get("optional-dependencies", {})
    if isinstance(extras, dict):
        own_pins: dict[str, list[Pin]] = {
            canonicalize_name(name): pins_of(items, f"optional-dependencies.{name}")
            for name, items in sorted(extras.items())
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
    return PinFile(path, tuple(scopes), tuple(problems))


def read_pylock(text: str, path: str) -> PinFile:
    """PEP 751 lock: every `[[packages]]` entry with a version is an exact pin."""
    data, problems = _toml(text, path)
    if data is None:
        return PinFile(path, (), tuple(problems))
    packages = data.get("packages", [])
    if not isinstance(packages, list):
        return PinFile(path, (), ((path, 1, "packages is not an array of tables"),))
    lines = text.splitlines()
    after = 0
    pins: list[Pin] = []
    for i, pkg in enumerate(packages):
        if not isinstance(pkg, dict) or not isinstance(pkg.get("name"), str):
            problems.append((path, 1, f"packages[{i}] has no name"))
            continue
        name = pkg["name"]
        n = _locate(
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
            except InvalidMarker as exc:
                problems.append((path, n, f"packages[{i}].marker: {exc}"))
        if not isinstance(version, str) or parse_version(version) is None:
            continue  # a VCS or directory entry: no version to check
        pins.append(
            Pin(name, SpecifierSet(f"=={version}"), version, marker, path, n, f"{name}=={version}")
        )
    return PinFile(path, (("", tuple(pins)),), tuple(problems))


def read_file(text: str, path: str, read: Optional[Callable[[str], str]] = None) -> PinFile:
    kind = kind_of(path)
    if kind == "pyproject":
        return read_pyproject(text, path)
    if kind == "pylock":
        return read_pylock(text, path)
    pins, problems = read_requirements(text, path, read)
    return PinFile(path, (("", tuple(pins)),), tuple(problems))


# --------------------------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------------------------


def _marker_env(python: Optional[str]) -> dict[str, str]:
    """PEP 508 marker values of the serving target: Linux x86_64, CPython (3.11 unless told)."""
    version = ".".join((python or "3.11").split(".")[:2])
    full = python if python and python.count(".") == 2 else f"{version}.0"
    return {
        "python_version": version,
        "python_full_version": full,
        "platform_system": "Linux",
        "sys_platform": "linux",
        "os_name": "posix",
        "platform_machine": "x86_64",
        "platform_python_implementation": "CPython",
        "implementation_name": "cpython",
        "platform_release": "",
        "platform_version": "",
        "implementation_version": full,
        "extra": "",
    }


def _applies(pin: Pin, python: Optional[str]) -> bool:
    if pin.marker is None:
        return True
    try:
        return bool(pin.marker.evaluate(_marker_env(python)))
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
        return True


@dataclass(frozen=True)
class Target:
    """The declared target host of a lint (all optional: host checks run only when given)."""

    python: Optional[str] = None
    driver: Optional[str] = None
    gpus: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()


def _environment(exact: dict[str, Pin], origin: str, matrix: Matrix, target: Target) -> Environment:
    text = "\n".join(f"{p.name}=={p.version}" for p in exact.values()) + "\n"
    env = env_from_freeze(text, origin, matrix)
    return apply_overrides(env, matrix, target.driver, target.gpus, (), target.python)


def _keep(f: Finding, pinned: set[str], target: Target) -> bool:
    """A finding about the pins themselves: every package it names is pinned here, and it is not
    a host fact nobody gave (or a "could not tell" note about one)."""
    if any(canonicalize_name(p) not in pinned for p in f.packages):
        return False  # "requires X, which is not installed": X is left to the resolver here
    if f.severity is Severity.INFO:
        return f.code in _STATIC_INFO
    return f.code not in _HOST_CODES or bool(target.driver or target.gpus)


def _names_in(f: Finding, pinned: dict[str, Pin]) -> list[str]:
    keys: list[str] = [canonicalize_name(p) for p in f.packages if canonicalize_name(p) in pinned]
    if keys:
        return list(dict.fromkeys(keys))
    out: list[str] = []
    for e in (f.message, *f.evidence):
        for word in re.findall(r"[A-Za-z0-9][A-Za-z0-9._-]*", e):
            k = canonicalize_name(word)
            if k in pinned and k not in out:
                out.append(k)
    return out


def _present(msg: str) -> str:
    """Words of `compat check` about an installed environment, said of pins."""
    return msg.replace(" is installed", " is pinned").replace("installed: ", "pinned: ")


def _check_scope(
    pins: Sequence[Pin], origin: str, db: Database, target: Target
) -> list[LintFinding]:
    live = [p for p in pins if _applies(p, target.python)]
    exact: dict[str, Pin] = {}
    ranges: dict[str, Pin] = {}
    for p in live:
        if p.version is not None:
            exact.setdefault(p.key, p)
    for p in live:
        if p.version is None and p.key not in exact and str(p.specifier):
            ranges.setdefault(p.key, p)
    if not exact:
        return []
    env = _environment(exact, origin, db.matrix, target)
    found = check(env, db, ignore=target.ignore)
    pinned = set(exact)
    out = [_place(f, exact) for f in found if _keep(f, pinned, target)]
    for _, pin in sorted(ranges.items()):
        hit = _judge_range(pin, exact, origin, db.matrix, target)
        if hit is not None:
            out.append(hit)
    return out


_PIP_PIN = re.compile(r"^pip install '?([A-Za-z0-9][A-Za-z0-9._-]*)([<>=!~][^' ]*)'?$")


def _edit(fix: str, pinned: dict[str, Pin]) -> str:
    """A fix that installs a pinned package, said as the line to change: a lint fix is an edit."""
    m = _PIP_PIN.match(fix.strip())
    if not m:
        return fix
    pin = pinned.get(canonicalize_name(m.group(1)))
    if pin is None:
        return fix
    return f"{pin.where}: change `{pin.text}` to `{m.group(1)}{m.group(2)}`"


def _place(f: Finding, pinned: dict[str, Pin]) -> LintFinding:
    names = _names_in(f, pinned)
    subject = pinned[names[-1]] if names else next(iter(pinned.values()))
    related = tuple(pinned[k] for k in names[:-1])
    shown = dataclasses.replace(
        f,
        message=_present(f.message),
        evidence=tuple(_present(e) for e in f.evidence),
        fix=tuple(_edit(x, pinned) for x in f.fix),
    )
    return LintFinding(subject.path, subject.line, shown, related)


def _judge_range(
    pin: Pin, exact: dict[str, Pin], origin: str, matrix: Matrix, target: Target
) -> Optional[LintFinding]:
    """An info when no release in the range that the database knows fits the exact pins."""
    releases = matrix.releases(pin.key)
    candidates = sorted(
        (
            v
            for v, r in releases.items()
            if not r.yanked and pin.specifier.contains(v, prereleases=False)
        ),
        reverse=True,
    )
    if not candidates:
        return None
    first: Optional[Finding] = None
    for v in candidates:
        trial = dict(exact)
        trial[pin.key] = dataclasses.replace(pin, version=str(v))
        env = _environment(trial, origin, matrix, dataclasses.replace(target, driver=None, gpus=()))
        errors = [
            f
            for f in check(env, Database(matrix, ()), ignore=target.ignore)
            if f.severity is Severity.ERROR
            and pin.key in {canonicalize_name(p) for p in f.packages}
            and _keep(f, set(trial), Target())
        ]
        if not errors:
            return None
        first = first or errors[0]
    assert first is not None
    others = sorted({k for k in (canonicalize_name(p) for p in first.packages) if k != pin.key})
    related = tuple(exact[k] for k in others if k in exact)
    newest = candidates[0]
    return LintFinding(
        pin.path,
        pin.line,
        Finding(
            first.code,
            Severity.INFO,
            f"{pin.name}{pin.specifier} admits no release known to compat that fits the pins here "
            f"({len(candidates)} tried); the newest, {pin.key} {newest}: {_present(first.message)}",
            evidence=tuple(_present(e) for e in first.evidence),
            fix=first.fix,
            references=first.references,
            packages=first.packages,
            advisory=first.advisory,
        ),
        related,
    )


def lint_files(
    files: Sequence[tuple[str, str]],
    db: Database,
    target: Optional[Target] = None,
    read: Optional[Callable[[str], str]] = None,
) -> LintResult:
    """Lint (path, text) pairs; includes are read through `read`. Findings are deduplicated
    (a file included by another and also named) and sorted by file, line and severity."""
    target = target or Target()
    seen: set[tuple[str, int, str, str]] = set()
    out: list[LintFinding] = []
    problems: list[tuple[str, int, str]] = []
    for path, text in files:
        pf = read_file(text, path, read)
        problems.extend(pf.problems)
        for scope, pins in pf.scopes:
            origin = f"{path}{scope}"
            for lf in _check_scope(pins, origin, db, target):
                k = (lf.path, lf.line, lf.finding.code, lf.finding.message)
                if k not in seen:
                    seen.add(k)
                    out.append(lf)
    order = {p: i for i, (p, _) in enumerate(files)}
    out.sort(
        key=lambda lf: (
            order.get(lf.path, len(order)),
            lf.path,
            lf.line,
            -lf.finding.severity.rank,
            lf.finding.code,
            lf.finding.message,
        )
    )
    return LintResult(tuple(p for p, _ in files), tuple(out), tuple(dict.fromkeys(problems)))


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def format_text(result: LintResult, verbose: bool = True) -> str:
    """`path:line: code severity: message`, then the fix and related pins, indented."""
    lines: list[str] = []
    for path, n, what in result.problems:
        lines.append(f"{path}:{n}: unreadable: {what}")
    for lf in result.findings:
        f = lf.finding
        tag = f.code + (f" {f.advisory}" if f.advisory else "")
        lines.append(f"{lf.path}:{lf.line}: {tag} {f.severity.value}: {f.message}")
        if not verbose:
            continue
        for p in lf.related:
            lines.append(
                f"    with {p.text} ({'line ' + str(p.line) if p.path == lf.path else p.where})"
            )
        for fix in f.fix[:2]:
            lines.append(f"    fix: {fix}")
    return "\n".join(lines) + ("\n" if lines else "")


def summary(result: LintResult) -> str:
    counts = {s: sum(1 for lf in result.findings if lf.finding.severity is s) for s in Severity}
    return (
        f"compat lint: {len(result.files)} file(s): {counts[Severity.ERROR]} error(s), "
        f"{counts[Severity.WARNING]} warning(s), {counts[Severity.INFO]} info"
        + (f", {len(result.problems)} unreadable line(s)" if result.problems else "")
    )


def format_json(result: LintResult) -> str:
    doc = {
        "schema": LINT_SCHEMA,
        "files": list(result.files),
        "summary": {
            s.value: sum(1 for lf in result.findings if lf.finding.severity is s) for s in Severity
        },
        "problems": [{"path": p, "line": n, "message": m} for p, n, m in result.problems],
        "findings": [lf.to_dict() for lf in result.findings],
    }
    return json.dumps(doc, indent=2) + "\n"


def format_sarif(result: LintResult) -> str:
    """SARIF 2.1.0 with each result at its file and line (GitHub code scanning annotates it)."""
    from compat.format.sarif import Located, sarif

    return sarif([Located(lf.finding, lf.path, lf.line) for lf in result.findings], "compat lint")


def exit_code(result: LintResult, fail_on: str) -> int:
    """1 when a finding at or above `fail_on` is found; 3 when a line could not be read."""
    if result.problems:
        return 3
    if fail_on == "never":
        return 0
    threshold = Severity(fail_on)
    return 1 if any(lf.finding.severity >= threshold for lf in result.findings) else 0


def matching(paths: Iterable[str]) -> list[str]:
    """The paths whose names `compat lint` understands."""
    return [p for p in paths if FILE_PATTERN.search(p.replace("\\", "/"))]
