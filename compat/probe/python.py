"""The interpreter whose packages are inspected: this one, or another (a server's venv) by path."""

from __future__ import annotations

import itertools
import json
import platform
import subprocess
import sys
from dataclasses import dataclass
from typing import Optional

from compat.errors import UsageError
from compat.models import PythonInfo

# Runs inside the other interpreter: stdlib only, imports none of its packages.
_CHILD = r"""
import json, platform, sys, sysconfig
print(json.dumps({
    "version": platform.python_version(),
    "implementation": sys.implementation.name,
    "executable": sys.executable,
    "platform": sysconfig.get_platform(),
    "machine": platform.machine(),
    "path": [p for p in sys.path if p],
    "soabi": sysconfig.get_config_var("SOABI") or "",
}))
"""


@dataclass(frozen=True)
class Interpreter:
    info: PythonInfo
    path: tuple[str, ...]


def _tags(limit: int = 4) -> tuple[str, ...]:
    from packaging import tags

    return tuple(str(t) for t in itertools.islice(tags.sys_tags(), limit))


def current() -> Interpreter:
    info = PythonInfo(
        version=platform.python_version(),
        implementation=sys.implementation.name,
        executable=sys.executable,
        platform=sys.platform,
        machine=platform.machine(),
        tags=_tags(),
    )
    return Interpreter(info, tuple(p for p in sys.path if p))


def other(executable: str, timeout: float = 10.0) -> Interpreter:
    """Ask another interpreter for its version and sys.path, without importing its packages."""
    try:
        proc = subprocess.run(
            [executable, "-c", _CHILD],
            capture_output=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(
            f"cannot run the interpreter {executable}: {exc}",
            hint="pass the path of a python executable, e.g. /srv/venv/bin/python",
        ) from exc
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise UsageError(
            f"{executable} exited {proc.returncode}: {err[0]}",
            hint="pass the path of a python executable, e.g. /srv/venv/bin/python",
        )
    try:
        data = json.loads(proc.stdout)
    except ValueError as exc:
        raise UsageError(f"{executable} did not answer like a Python interpreter") from exc
    info = PythonInfo(
        version=data["version"],
        implementation=data["implementation"],
        executable=data["executable"],
        platform=data["platform"],
        machine=data["machine"],
        tags=_other_tags(data["version"], data["soabi"]),
    )
    return Interpreter(info, tuple(data["path"]))


def _other_tags(version: str, soabi: str, limit: int = 4) -> tuple[str, ...]:
    from packaging import tags

    major_minor = tuple(int(x) for x in version.split(".")[:2])
    abi = "cp" + "".join(map(str, major_minor)) if soabi.startswith("cpython") else None
    gen = tags.cpython_tags(major_minor, [abi] if abi else None)
    return tuple(str(t) for t in itertools.islice(gen, limit))


def resolve(executable: Optional[str]) -> Interpreter:
    return other(executable) if executable else current()
