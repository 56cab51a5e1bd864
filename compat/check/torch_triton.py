"""torch-triton: triton against the exact pin of the installed torch, markers honoured."""

from __future__ import annotations

from compat.check.base import Context, applies, pip_install, requires_of, satisfied
from compat.check.target import install_target
from compat.models import Code, Finding, Severity, canonicalize_name

TRITONS = ("triton", "pytorch-triton", "pytorch-triton-rocm")


def check(ctx: Context) -> list[Finding]:
    dist = ctx.env.dist("torch")
    if dist is None or dist.version is None:
        return []
    torch_label = f"torch {ctx.torch.version if ctx.torch and ctx.torch.version else dist.version}"
    pins = list(requires_of(ctx, dist, TRITONS.__contains__))
    if not pins:
        return []
    live = [r for r in pins if applies(r, ctx) is not False]
    if not live:
        return []  # e.g. no triton for this Python/platform: torch installs none, not an error
    req = live[0]
    name = canonicalize_name(req.name)
    have = ctx.env.version_of(name)
    others = [t for t in TRITONS if t != name and ctx.env.version_of(t) is not None]
    if have is None:
        sev = Severity.WARNING
        extra = (
            f"; {others[0]} {ctx.env.version_of(others[0])} is installed instead" if others else ""
        )
        return [
            Finding(
                Code.TORCH_TRITON.value,
                sev,
                f"{torch_label} requires {req.name}{req.specifier}, which is not installed{extra}",
                evidence=(f"{torch_label} requires {req}",),
                fix=(install_target(ctx) or pip_install(f"{req.name}{req.specifier}"),),
                packages=("torch", name),
            )
        ]
    if satisfied(req, have):
        return []
    return [
        Finding(
            Code.TORCH_TRITON.value,
            Severity.ERROR,
            f"{name} {have} does not match {torch_label}, which requires {req.name}{req.specifier}",
            evidence=(f"{torch_label} requires {req}", f"installed: {name} {have}"),
            fix=(
                install_target(ctx) or pip_install(f"{req.name}{req.specifier}"),
                "then clear the Triton cache: rm -rf ~/.triton/cache",
            ),
            packages=("torch", name),
        )
    ]
