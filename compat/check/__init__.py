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
    ("cuda-mix", cuda.check_minor),
    ("driver-too-old", cuda.check_driver),
    ("gpu-arch", gpu.check),
    ("stale-cache", caches.check),
    ("env-var", envvars.check),
    ("unknown-combination", unknown.check),
)


def run_checks(
    ctx: Context, advisories: Sequence[Any] = (), ignore: Sequence[str] = ()
) -> list[Finding]:
    """Every check, then the advisories (which may build on the findings), minus ignored ones."""
    findings: list[Finding] = []
    for _, fn in REGISTRY:
        findings.extend(fn(ctx))
    findings.extend(_memory(ctx))
    if advisories:
        from compat.advisories import match_advisories

        findings.extend(
            _collapse_launch_unknowns(match_advisories(ctx.env, ctx.launch, advisories, findings))
        )
    drop = set(ignore)
    findings = [f for f in findings if f.code not in drop and (f.advisory or "") not in drop]
    return sort_findings(findings)


def _collapse_launch_unknowns(found: list[Finding]) -> list[Finding]:
    """Advisories that could only be told with the launch command become one note, not a page."""
    waiting = [
        f
        for f in found
        if f.severity is Severity.INFO
        and f.advisory
        and any("no launch command given" in e for e in f.evidence)
    ]
    if len(waiting) < 2:
        return found
    rest = [f for f in found if f not in waiting]
    ids = ", ".join(sorted(f.advisory or "" for f in waiting))
    return [
        *rest,
        Finding(
            "known-crash",
            Severity.INFO,
            f"{len(waiting)} known-crash advisories may apply to this stack; telling needs the "
            f"launch command: {ids}",
            evidence=tuple(f"{f.advisory}: {f.message.split(': ', 1)[-1]}" for f in waiting),
            fix=(
                "pass the server command after `--` (compat check -- python -m sglang.launch_server "
                "...) or with --launch-file; `compat explain ID` describes each",
            ),
        ),
    ]


def _memory(ctx: Context) -> list[Finding]:
    try:
        from compat.check.memory import check_memory
    except ImportError:  # pragma: no cover - shipped with the package
        return []
    result: list[Finding] = check_memory(ctx.env, ctx.launch)
    return result


def sort_findings(findings: list[Finding]) -> list[Finding]:
    order = {name: i for i, (name, _) in enumerate(REGISTRY)}
    return sorted(
        findings,
        key=lambda f: (
            -f.severity.rank,
            order.get(f.code, len(order)),
            f.advisory or "",
            f.message,
        ),
    )


def worst(findings: Sequence[Finding]) -> Optional[Severity]:
    return max((f.severity for f in findings), key=lambda s: s.rank, default=None)
