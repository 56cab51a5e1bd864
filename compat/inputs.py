"""Environments from files (snapshot JSON, pip freeze / requirements with exact pins) and the host
overrides that win over probes (`--driver`, `--gpu`, `--env`, `--python`)."""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from collections.abc import Sequence
from typing import Optional, Union

from packaging.requirements import InvalidRequirement, Requirement

from compat.errors import InputError, UsageError
from compat.matrix.load import Matrix, parse_gpu_arg
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

_WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-")


def parse_freeze(text: str, origin: str) -> list[tuple[str, str]]:
    """(name, version) pairs from `pip freeze` / requirements text with exact pins.

    Every line that is neither an exact pin, an option, nor a comment is an InputError naming
    the line, so a typo is not silently read as "not installed".
    """
    out: list[tuple[str, str]] = []
    joined = re.sub(r"\\\r?\n", " ", text)
    for n, raw in enumerate(joined.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if line.startswith("#"):
            continue
        if not line or line.startswith("-"):
            continue  # blank, or an option: -e, -r, --index-url, --hash ...
        line = re.sub(r"\s+--hash[= ]\S+", "", line)
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            why = str(exc).splitlines()[0]
            raise InputError(
                f"{origin}:{n}: not a requirement: {raw.strip()!r} ({why})",
                hint="pass `pip freeze` output, or a requirements file with name==version lines",
            ) from exc
        if req.url:
            path = urllib.parse.unquote(urllib.parse.urlparse(req.url).path.rsplit("/", 1)[-1])
            m = _WHEEL_NAME.match(path)
            if m and parse_version(m.group("version")) is not None:
                out.append((req.name, m.group("version")))
            continue  # a VCS/directory install: the version is not in the line
        pins = [s for s in req.specifier if s.operator in ("==", "===")]
        if len(pins) != 1 or "*" in pins[0].version:
            raise InputError(
                f"{origin}:{n}: {line!r} is not an exact pin (name==version)",
                hint="compat check needs what is installed: use `pip freeze`; "
                "for ranges use `compat lint`",
            )
        if parse_version(pins[0].version) is None:
            raise InputError(f"{origin}:{n}: invalid version {pins[0].version!r}")
        out.append((req.name, pins[0].version))
    return out


def env_from_freeze(text: str, origin: str, matrix: Matrix) -> Environment:
    """An Environment from pinned lines; torch's CUDA from its local tag or the database."""
    pairs = parse_freeze(text, origin)
    seen: dict[str, Distribution] = {}
    for name, version in pairs:
        v = parse_version(version)
        seen[canonicalize_name(name)] = Distribution(name, v, version, origin)
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
        if parse_version(driver) is None:
            raise UsageError(
                f"--driver {driver!r} is not a version", hint="e.g. --driver 550.54.15"
            )
        changes["driver"] = Driver(
            driver, Unknown("derived from the driver version"), "--driver", ""
        )
    if gpus:
        out = []
        for i, text in enumerate(gpus):
            name, cc, mem = parse_gpu_arg(text, matrix)
            out.append(
                GPU(i, name, cc, int(mem * 1024) if mem else None, None, None, None, "--gpu")
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
