"""Host facts given on the command line (`--driver`, `--gpu`, `--env`, `--python`) win over what
was probed or read from a file."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Optional, Union

import msgspec
import msgspec.structs

from compat.errors import UsageError
from compat.hardware import parse_driver, parse_gpu
from compat.matrix.load import Matrix
from compat.models import GPU, Driver, Environment, PythonInfo, Unknown
from compat.redact import redact_value


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
            merged[key] = redact_value(key, value)
        changes["env"] = merged
    if python:
        if not re.match(r"^[0-9]+\.[0-9]+(\.[0-9]+)?$", python):
            raise UsageError(f"--python {python!r}: expected X.Y such as 3.11")
        old = env.python
        base = (
            old
            if not isinstance(old, Unknown)
            else PythonInfo(python, "cpython", "", "linux", "x86_64")
        )
        changes["python"] = msgspec.structs.replace(base, version=python)
    return msgspec.structs.replace(env, **changes) if changes else env
