"""The checks: pure functions from a Context to findings. A new family is a module plus one entry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable, Optional

from compat.check import (
    broken,
    caches,
    companion,
    container,
    cuda,
    driver_gpu,
    envvars,
    fit,
    framework,
    gpu,
    kernels,
    launch_flags,
    requirements,
    torch_triton,
    unknown,
)
from compat.check.base import Context
from compat.models import Finding, Severity

__all__ = ["REGISTRY", "Context", "run_registry", "sort_findings", "worst"]

CheckFn = Callable[[Context], list[Finding]]

# Order is the order of the report within a severity.
REGISTRY: tuple[tuple[str, CheckFn], ...] = (
    ("broken-dist", broken.check),
    ("framework-pin", framework.check),
    ("stack-pin", requirements.check),
    ("torch-triton", torch_triton.check),
    ("torch-companion", companion.check),
    ("kernel-torch", kernels.check),
    ("cuda-mix", cuda.check_mix),
    ("cuda-mix", cuda.check_minor),
    ("driver-too-old", cuda.check_driver),
    ("driver-too-old", driver_gpu.check),
    ("driver-too-old", container.check),
    ("gpu-arch", gpu.check),
    ("gpu-arch", fit.check_quantization),
    ("parallelism", fit.check_parallelism),
    ("memory-fit", fit.check_memory),
    ("stale-cache", caches.check),
    ("env-var", envvars.check),
    ("launch-flag", launch_flags.check),
    ("unknown-combination", unknown.check),
)


def run_registry(ctx: Context) -> list[Finding]:
    """Every check of the registry, in its order (advisories are the pipeline's next step)."""
    findings: list[Finding] = []
    for _, fn in REGISTRY:
        findings.extend(fn(ctx))
    return findings


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
