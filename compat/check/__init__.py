"""The checks: pure functions from a Context to findings. A new family is a module plus one entry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Optional

from compat.check import (
    caches,
    companion,
    cuda,
    envvars,
    framework,
    gpu,
    kernels,
    torch_triton,
    unknown,
)
from compat.check.base import Context
from compat.models import Finding, Severity

__all__ = ["REGISTRY", "Context", "run_checks", "sort_findings", "worst"]

CheckFn = Callable[[Context], list[Finding]]

# Order is the order of the report within a severity.
REGISTRY: tuple[tuple[str, CheckFn], ...] = (
    ("framework-pin", framework.check),
    ("torch-triton", torch_triton.check),
    ("torch-companion", companion.check),
    ("kernel-torch", kernels.check),
    ("cuda-mix", cuda.check_mix),
    ("driver-too-old", cuda.check_driver),
    ("gpu-arch", gpu.check),
    ("stale-cache", caches.check),
    ("env-var", envvars.check),
    ("unknown-combination", unknown.check),
)


def run_checks(ctx: Context, advisories: Sequence[Any] = (),
               ignore: Sequence[str] = ()) -> list[Finding]:
    """Every check, then the advisories (which may build on the findings), minus ignored ones."""
    findings: list[Finding] = []
    for _, fn in REGISTRY:
        findings.extend(fn(ctx))
    findings.extend(_memory(ctx))
    if advisories:
        from compat.advisories import match_advisories

        findings.extend(match_advisories(ctx.env, ctx.launch, advisories, findings))
    drop = set(ignore)
    findings = [f for f in findings if f.code not in drop and (f.advisory or "") not in drop]
    return sort_findings(findings)


def _memory(ctx: Context) -> list[Finding]:
    try:
        from compat.check.memory import check_memory
    except ImportError:  # pragma: no cover - shipped with the package
        return []
    result: list[Finding] = check_memory(ctx.env, ctx.launch)
    return result


def sort_findings(findings: list[Finding]) -> list[Finding]:
    order = {name: i for i, (name, _) in enumerate(REGISTRY)}
    return sorted(findings, key=lambda f: (-f.severity.rank, order.get(f.code, len(order)),
                                           f.advisory or "", f.message))


def worst(findings: Sequence[Finding]) -> Optional[Severity]:
    return max((f.severity for f in findings), key=lambda s: s.rank, default=None)
