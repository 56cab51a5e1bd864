"""Environments from files (snapshot JSON, pip freeze / requirements with exact pins) and the host
overrides that win over probes (`--driver`, `--gpu`, `--env`, `--python`)."""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional, Union

from packaging.requirements import InvalidRequirement, Requirement

from compat.errors import InputError, UsageError
from compat.hardware import parse_driver, parse_gpu
from compat.matrix.load import Matrix
from compat.models import (
    GPU,
    Distribution,
    Driver,
    Environment,
    PythonInfo,
    TorchBuild,
    Unknown,
    canonicalize_name,
    cuda_from_local,
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


@dataclass(frozen=True)
class FreezeEntry:
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
            req = Requirement(line)
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


def env_from_freeze(text: str, origin: str, matrix: Matrix) -> Environment:
    """An Environment from pinned lines; torch's CUDA from its local tag or the database."""
    seen: dict[str, Distribution] = {}
    for e in parse_freeze(text, origin):
        v = parse_version(e.version) if e.version else None
        seen[canonicalize_name(e.name)] = Distribution(
            e.name, v, e.version, origin, direct_url=e.source
        )
    dists = tuple(sorted(seen.values(), key=lambda d: d.key))
    torch: Union[TorchBuild, Unknown] = Unknown("torch is not in the file")
    t = seen.get("torch")
    if t is not None and t.version is not None:
        cuda = cuda_from_local(t.version.local)
        deps = None
        if not t.version.local:
            rel = matrix.release("torch", t.version)
            deps = rel.cuda if rel else None
        hip = (
            t.version.local[4:] if t.version.local and t.version.local.startswith("rocm") else None
        )
        torch = TorchBuild(t.version, cuda, hip, f"{origin} (pinned version)", deps)
    why = f"not in {origin}: give --driver/--gpu for host checks"
    return Environment(
        python=Unknown(f"not in {origin}: give --python X.Y"),
        distributions=dists,
        torch=torch,
        driver=Unknown(why),
        gpus=Unknown(why),
        context=Unknown(why),
        source=origin,
        partial=True,
    )


def load_from(path: str, matrix: Matrix) -> Environment:
    """A snapshot (JSON) or a freeze file, told apart by content."""
    from compat.snapshot import loads, read_text

    text = read_text(path)
    if text.lstrip().startswith("{"):
        return loads(text, path)
    return env_from_freeze(text, path, matrix)


def apply_overrides(
    env: Environment,
    matrix: Matrix,
    driver: Optional[str] = None,
    gpus: Sequence[str] = (),
    env_vars: Sequence[str] = (),
    python: Optional[str] = None,
) -> Environment:
    """Host facts given on the command line replace what was probed or read."""
    changes: dict[str, object] = {}
    if driver:
        spec = parse_driver(driver, matrix.driver_catalog)
        cuda: Union[str, Unknown] = Unknown("derived from the driver version")
        cuda_source = ""
        if spec.cuda:
            cuda, cuda_source = (
                spec.cuda,
                f"R{spec.branch} drivers report it (curated/drivers.toml)",
            )
        changes["driver"] = Driver(spec.text, cuda, spec.source, cuda_source)
    if gpus:
        out: list[GPU] = []
        for text in gpus:
            g = parse_gpu(text, matrix.gpu_catalog)
            mib = int(g.memory_gib * 1024) if g.memory_gib else None
            first = len(out)
            out.extend(
                GPU(first + i, g.name, g.compute_capability, mib, None, None, None, "--gpu")
                for i in range(g.count)
            )
        changes["gpus"] = tuple(out)
    if env_vars:
        merged = dict(env.env)
        for kv in env_vars:
            key, sep, value = kv.partition("=")
            if not sep or not key:
                raise UsageError(f"--env {kv!r}: expected KEY=VALUE")
            merged[key] = value
        changes["env"] = merged
    if python:
        if not re.match(r"^\d+\.\d+(\.\d+)?$", python):
            raise UsageError(f"--python {python!r}: expected X.Y such as 3.11")
        old = env.python
        base = (
            old
            if not isinstance(old, Unknown)
            else PythonInfo(python, "cpython", "", "linux", "x86_64")
        )
        changes["python"] = dataclasses.replace(base, version=python)
    return dataclasses.replace(env, **changes) if changes else env  # type: ignore[arg-type]
