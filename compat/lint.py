"""Static check of pinned files offline: requirements/constraints (pip-compile output too),
pyproject.toml, pylock.toml, uv.lock, conda environment.yml and `conda list` files, Dockerfiles.

Each file is read by its reader in compat.inputs; the exact pins of each scope become an
Environment and go through the same pipeline as `compat check`; every finding is mapped back to
the line of the pin (or the variable) it names. Ranges are judged only against the exact pins: a
range none of whose known releases fits them gives an info. Host checks (driver, GPU) run only
when the target host is given. Pure: file contents arrive as text, and the reader for includes
is a parameter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, Callable, Optional

import msgspec
import msgspec.structs
from msgspec import Struct, field
from packaging.utils import canonicalize_name

from compat.errors import CompatError
from compat.hardware import parse_driver
from compat.inputs import apply_overrides, read_pins
from compat.inputs.base import Note, Pin, PinFile, ReadOptions, Setting, holds
from compat.inputs.kinds import Kind, kind_by_name, requirements_name
from compat.inputs.requirements import read_pylock, read_pyproject, read_requirements
from compat.inputs.stack import environment_of
from compat.matrix.load import Matrix
from compat.models import Code, Environment, Finding, Severity, marker_env
from compat.pipeline import Database, LaunchInput, check, parse_launch_for
from compat.redact import printable, redacted

__all__ = [
    "FILE_PATTERN",
    "LintFinding",
    "LintResult",
    "Pin",
    "PinFile",
    "Target",
    "exit_code",
    "format_json",
    "format_sarif",
    "format_text",
    "kind_of",
    "lint_files",
    "matching",
    "read_pylock",
    "read_pyproject",
    "read_requirements",
    "summary",
]

LINT_SCHEMA = "compat.lint/1"

#: File names `compat lint` understands (the pre-commit hook's `files` pattern matches these).
FILE_PATTERN = re.compile(
    r"(^|/)(requirements[^/]*\.txt|requirements/[^/]+\.txt|constraints[^/]*\.txt|pyproject\.toml"
    r"|pylock(\.[^/.]+)?\.toml|uv\.lock|environment[^/]*\.ya?ml"
    r"|(Dockerfile|Containerfile)(?![^/]*\.dockerignore$)([._-][^/]*)?"
    r"|[^/]+\.(dockerfile|Dockerfile|containerfile))$"
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


def kind_of(path: str) -> Optional[str]:
    """The format a file name tells ('requirements' for requirements/constraints names), or None
    when only the content can tell."""
    kind = kind_by_name(path)
    if kind is not None:
        return kind.value
    return Kind.REQUIREMENTS.value if requirements_name(path) else None


class LintFinding(Struct, frozen=True):
    path: str
    line: int
    finding: Finding
    related: tuple[Pin, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "line": self.line}
        d.update(self.finding.to_dict())
        d["related"] = [{"path": p.path, "line": p.line, "pin": p.text} for p in self.related]
        return d


class LintResult(Struct, frozen=True):
    files: tuple[str, ...]
    findings: tuple[LintFinding, ...]
    problems: tuple[tuple[str, int, str], ...]


# --------------------------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------------------------


class Target(Struct, frozen=True):
    """The declared target host of a lint (all optional: host checks run only when given)."""

    python: Optional[str] = None
    driver: Optional[str] = None
    gpus: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    machine: str = "x86_64"


class _Scope(Struct, frozen=True):
    """What a file says besides its pins: variables it sets, its server command, its Python."""

    origin: str
    env: tuple[Setting, ...] = ()
    launch: tuple[str, ...] = ()
    python: Optional[str] = None
    machine: Optional[str] = None
    settings: dict[str, Setting] = field(default_factory=dict)
    launch_line: int = 0


def _environment(
    exact: dict[str, Pin], scope: _Scope, matrix: Matrix, target: Target
) -> Environment:
    python = target.python or scope.python
    env = environment_of(
        list(exact.values()),
        scope.origin,
        matrix,
        env={s.key: s.value for s in scope.env},
        python=python,
        machine=scope.machine or target.machine,
        launch=scope.launch,
    )
    return apply_overrides(env, matrix, target.driver, target.gpus, (), None)


def _names_env(f: Finding, scope: _Scope) -> list[str]:
    """Variables the file sets that a finding names (in its message or evidence)."""
    text = " ".join((f.message, *f.evidence))
    return [
        k for k in scope.settings if re.search(r"(?<![A-Za-z0-9_])" + re.escape(k) + r"\b", text)
    ]


def _keep(f: Finding, pinned: set[str], target: Target, scope: Optional[_Scope] = None) -> bool:
    """A finding about the pins themselves: every package it names is pinned here, and it is not
    a host fact nobody gave (or a "could not tell" note about one). A variable the file itself
    sets (CUDA_VISIBLE_DEVICES in a Dockerfile's ENV) is a fact of the file."""
    if any(canonicalize_name(p) not in pinned for p in f.packages):
        return False  # "requires X, which is not installed": X is left to the resolver here
    if f.severity is Severity.INFO:
        return f.code in _STATIC_INFO
    if f.code not in _HOST_CODES or target.driver or target.gpus:
        return True
    return f.code == Code.ENV_VAR.value and scope is not None and bool(_names_env(f, scope))


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
    pins: Sequence[Pin], scope: _Scope, db: Database, target: Target
) -> list[LintFinding]:
    env_markers = marker_env(target.python or scope.python, scope.machine or target.machine)
    live = [p for p in pins if holds(p.marker, env_markers)]
    exact: dict[str, Pin] = {}
    ranges: dict[str, Pin] = {}
    for p in live:
        if p.version is not None:
            exact.setdefault(p.key, p)
    for p in live:
        if p.version is None and p.key not in exact and str(p.specifier):
            ranges.setdefault(p.key, p)
    if not exact and not scope.env:
        return []
    env = _environment(exact, scope, db.matrix, target)
    # A Dockerfile's ENTRYPOINT/CMD is the server command: parsed by the release it starts.
    launch = parse_launch_for(env, LaunchInput()) if env.launch else None
    found = check(env, db, launch, ignore=target.ignore)
    pinned = set(exact)
    out = [_place(f, exact, scope) for f in found if _keep(f, pinned, target, scope)]
    for _, pin in sorted(ranges.items()):
        hit = _judge_range(pin, exact, scope, db.matrix, target)
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
    if pin is None or pin.via:
        return fix  # a pin the file does not state (a base image's, one pulled in): no line to edit
    return f"{pin.where}: change `{pin.text}` to `{m.group(1)}{m.group(2)}`"


def _place(f: Finding, pinned: dict[str, Pin], scope: _Scope) -> LintFinding:
    """At the line of the last pin the finding names (the others are related), else at the line
    of a variable it names, else at the first pin."""
    shown = msgspec.structs.replace(
        f,
        message=_present(f.message),
        evidence=tuple(_present(e) for e in f.evidence),
        fix=tuple(_edit(x, pinned) for x in f.fix),
    )
    names = _names_in(f, pinned)
    if f.code == Code.LAUNCH_FLAG.value and scope.launch_line:
        related = tuple(pinned[k] for k in names)
        return LintFinding(scope.origin.split("[", 1)[0], scope.launch_line, shown, related)
    if names:
        subject = pinned[names[-1]]
        return LintFinding(subject.path, subject.line, shown, tuple(pinned[k] for k in names[:-1]))
    keys = _names_env(f, scope)
    if keys:
        s = scope.settings[keys[0]]
        return LintFinding(s.path, s.line, shown)
    if pinned:
        first = next(iter(pinned.values()))
        return LintFinding(first.path, first.line, shown)
    return LintFinding(scope.origin, 1, shown)


def _judge_range(
    pin: Pin, exact: dict[str, Pin], scope: _Scope, matrix: Matrix, target: Target
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
        trial[pin.key] = msgspec.structs.replace(pin, version=str(v))
        env = _environment(
            trial, scope, matrix, msgspec.structs.replace(target, driver=None, gpus=())
        )
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


def _keep_note(note: Note, target: Target, matrix: Matrix) -> bool:
    """A note of a reader, shown unless ignored or about a host nobody gave."""
    f = note.finding
    if f.code in target.ignore or (f.advisory or "") in target.ignore:
        return False
    if note.below_cuda is not None:
        cuda = parse_driver(target.driver, matrix.driver_catalog).cuda if target.driver else None
        return note.applies(cuda, bool(target.driver))
    return f.code not in _HOST_CODES or bool(target.driver or target.gpus)


def read_file(
    text: str,
    path: str,
    read: Optional[Callable[[str], str]] = None,
    matrix: Optional[Matrix] = None,
    target: Optional[Target] = None,
) -> PinFile:
    """The pins of one file, by its format; a file of no format compat reads is one problem."""
    target = target or Target()
    try:
        return read_pins(
            path, text, matrix or Matrix(), ReadOptions(target.python, target.machine, read)
        )
    except CompatError as exc:
        return PinFile(path, (), ((path, 1, printable(exc.message)),))


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

    def add(lf: LintFinding) -> None:
        k = (lf.path, lf.line, lf.finding.code, lf.finding.message)
        if k not in seen:
            seen.add(k)
            out.append(lf)

    for path, text in files:
        pf = read_file(text, path, read, db.matrix, target)
        problems.extend(pf.problems)
        for note in pf.notes:
            if _keep_note(note, target, db.matrix):
                add(LintFinding(note.path, note.line, note.finding))
        for name, pins in pf.scopes:
            scope = _Scope(
                f"{path}{name}",
                pf.env,
                pf.launch,
                pf.python,
                pf.machine,
                {s.key: s for s in pf.env},
                pf.launch_line,
            )
            for lf in _check_scope(pins, scope, db, target):
                add(lf)
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


@redacted
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


@redacted
def summary(result: LintResult) -> str:
    counts = {s: sum(1 for lf in result.findings if lf.finding.severity is s) for s in Severity}
    return (
        f"compat lint: {len(result.files)} file(s): {counts[Severity.ERROR]} error(s), "
        f"{counts[Severity.WARNING]} warning(s), {counts[Severity.INFO]} info"
        + (f", {len(result.problems)} unreadable line(s)" if result.problems else "")
    )


@redacted
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


@redacted
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
