"""Environments from `pip freeze` output and requirements files with exact pins."""

from __future__ import annotations

import re
from typing import Optional

import msgspec
import msgspec.structs
from msgspec import Struct
from packaging.requirements import InvalidRequirement

from compat.errors import InputError
from compat.matrix.load import Matrix
from compat.models import (
    Distribution,
    Environment,
    canonicalize_name,
    parse_requirement,
    parse_version,
)
from compat.redact import quote_line

_WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-")


# A freeze line is a name, a pin and maybe hashes or a URL; a file of pins is at most a few
# thousand lines.
MAX_LINE = 64 * 1024
MAX_LINES = 100_000
# pip freeze writes this comment before an editable install it cannot name by VCS.
_EDITABLE_NOTE = re.compile(
    r"^#\s*Editable install with no version control \((?P<name>[A-Za-z0-9._-]+)==(?P<version>[^)\s]+)\)"
)
_EGG = re.compile(r"[#&]egg=(?P<name>[A-Za-z0-9._-]+)")


class FreezeEntry(Struct, frozen=True):
    """One installed distribution as a freeze file states it."""

    name: str
    version: str  # "" when the line does not state one (an install from source)
    line: int
    source: str = ""  # the VCS URL, path or URL of an install from source


def parse_freeze(text: str, origin: str) -> list[FreezeEntry]:
    """Distributions from `pip freeze` / requirements text with exact pins.

    Installs from source (`-e git+...#egg=sglang`, `sglang @ git+...`, an editable path with
    pip's "Editable install" note) are entries without a version rather than dropped. Every
    other line that is neither an exact pin, an option, nor a comment is an InputError naming
    the line, so a typo is not silently read as "not installed". An empty file is an error.
    """
    import urllib.parse

    out: list[FreezeEntry] = []
    joined = re.sub(r"\\\r?\n", " ", text)
    note: Optional[re.Match[str]] = None
    for n, raw in enumerate(joined.splitlines(), 1):
        if n > MAX_LINES:
            raise InputError(f"{origin}: more than {MAX_LINES} lines; not a freeze file")
        if len(raw) > MAX_LINE:
            raise InputError(
                f"{origin}:{n}: a line of {len(raw)} characters is not a requirement",
                hint="pass `pip freeze` output",
            )
        stripped = raw.strip()
        if stripped.startswith("#"):
            note = _EDITABLE_NOTE.match(stripped) or note
            continue
        line = raw.split(" #", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-"):
            entry = _editable(line, n, note)
            note = None
            if entry is not None:
                out.append(entry)
            continue  # another option: -r, --index-url, --hash ...
        note = None
        line = re.sub(r"\s+--hash[= ]\S+", "", line)
        try:
            req = parse_requirement(line)
        except InvalidRequirement as exc:
            why = str(exc).splitlines()[0]
            raise InputError(
                f"{origin}:{n}: not a requirement: {quote_line(raw.strip())} ({why})",
                hint="pass `pip freeze` output, or a requirements file with name==version lines",
            ) from exc
        if req.url:
            path = urllib.parse.unquote(urllib.parse.urlparse(req.url).path.rsplit("/", 1)[-1])
            m = _WHEEL_NAME.match(path)
            version = m.group("version") if m else ""
            if m and parse_version(version) is not None:
                out.append(FreezeEntry(req.name, version, n))
            else:  # a VCS/directory install: the version is not in the line
                out.append(FreezeEntry(req.name, "", n, req.url))
            continue
        pins = [s for s in req.specifier if s.operator in ("==", "===")]
        if len(pins) != 1 or "*" in pins[0].version:
            raise InputError(
                f"{origin}:{n}: {quote_line(line)} is not an exact pin (name==version)",
                hint="compat check needs what is installed: use `pip freeze`; "
                "for ranges use `compat lint`",
            )
        if parse_version(pins[0].version) is None:
            raise InputError(f"{origin}:{n}: invalid version {quote_line(pins[0].version)}")
        out.append(FreezeEntry(req.name, pins[0].version, n))
    if not out:
        raise InputError(
            f"{origin}: no installed packages in it",
            hint="pass `pip freeze` output (or a `compat env --json` snapshot)",
        )
    return out


def _editable(line: str, n: int, note: Optional[re.Match[str]]) -> Optional[FreezeEntry]:
    """`-e URL#egg=name` / `-e PATH` (with pip's note naming it) as an install from source."""
    m = re.match(r"^(-e|--editable)(?:\s*=\s*|\s+)(\S+)", line)
    if not m:
        return None
    target = m.group(2)
    egg = _EGG.search(target)
    if note is not None:
        return FreezeEntry(note.group("name"), note.group("version"), n, target)
    if egg is not None:
        return FreezeEntry(egg.group("name"), "", n, target)
    return None  # a path with nothing that names it: nothing to check


_INDEX_LINE = re.compile(
    r"^\s*(?:-i|--index-url|--extra-index-url|-f|--find-links)(?:\s*=\s*|\s+)(\S+)", re.I
)


def index_lines(text: str) -> tuple[str, ...]:
    """The index URLs a freeze/requirements file names (`--index-url`, `--extra-index-url`,
    `--find-links`): pip applies them to every pin of the file."""
    urls = (m.group(1) for m in map(_INDEX_LINE.match, text.splitlines()[:MAX_LINES]) if m)
    return tuple(dict.fromkeys(urls))


def env_from_freeze(text: str, origin: str, matrix: Matrix) -> Environment:
    """An Environment from pinned lines; torch's CUDA from its local tag, the CUDA index the file
    names (a `torch==2.5.1` beside `--index-url .../whl/cu121` is installed as 2.5.1+cu121), or
    the database's record of the PyPI build."""
    from packaging.specifiers import SpecifierSet

    from compat.inputs.base import Pin
    from compat.inputs.stack import environment_of

    seen: dict[str, FreezeEntry] = {}
    for e in parse_freeze(text, origin):
        seen[canonicalize_name(e.name)] = e
    indexes = index_lines(text)
    pins = [
        Pin(e.name, SpecifierSet(), e.version, None, origin, e.line, e.name, indexes=indexes)
        for e in seen.values()
        if e.version and parse_version(e.version) is not None
    ]
    env = environment_of(pins, origin, matrix)
    from_source = [
        Distribution(e.name, None, e.version, origin, direct_url=e.source)
        for e in seen.values()
        if not e.version or parse_version(e.version) is None
    ]
    dists = tuple(sorted((*env.distributions, *from_source), key=lambda d: d.key))
    return msgspec.structs.replace(env, distributions=dists)
