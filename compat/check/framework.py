"""framework-pin: what the installed sglang/vLLM release requires vs what is installed."""

from __future__ import annotations

from typing import Optional

from packaging.requirements import Requirement

from compat.check.base import (
    Context,
    applies,
    extras_of,
    installed_version,
    pip_install,
    requires_of,
    satisfied,
)
from compat.check.target import install_target
from compat.families import Family, families, other_platform_extra
from compat.matrix.schema import Release
from compat.models import Code, Finding, Severity, canonicalize_name


def _core() -> frozenset[str]:
    """Missing ones of these are errors: the framework cannot start without them. The rest of the
    stack (ray, transformers, ...) is judged only when installed, since a freeze excerpt may
    leave it out."""
    fam = families()
    compiled = {
        p.name for p in fam.rows if p.family is Family.KERNEL and (p.links_torch or p.group)
    }
    return frozenset(
        {*fam.names(Family.FRAMEWORK, Family.TORCH, Family.TRITON, Family.COMPANION), *compiled}
    )


def check(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    for fw in families().frameworks:
        dist = ctx.env.dist(fw)
        if dist is not None and dist.version is None and dist.direct_url:
            findings.append(_from_source(dist.name, dist.direct_url))
        if dist is None or dist.version is None:
            continue
        by_name: dict[str, list[tuple[Requirement, set[str]]]] = {}
        for req in requires_of(ctx, dist, families().is_stack):
            key = canonicalize_name(req.name)
            if key == fw:
                continue
            extras = extras_of(req)
            ok = [applies(req, ctx, e) for e in (extras or {""})]
            if not any(ok):
                continue
            by_name.setdefault(key, []).append((req, extras))
        for key, reqs in sorted(by_name.items()):
            rel = ctx.matrix.release(fw, dist.version)
            findings.extend(_judge(ctx, fw, str(dist.version), key, reqs, rel))
    return findings


def _from_source(name: str, url: str) -> Finding:
    return Finding(
        Code.FRAMEWORK_PIN.value,
        Severity.INFO,
        f"{name} is installed from source ({url}) with no version stated: its pins are not checked",
        evidence=(f"{name} @ {url}",),
        fix=(
            "check the environment itself (compat check where it is installed reads the "
            "checkout's own metadata), or a `compat env --json` snapshot of it",
        ),
        packages=(name,),
    )


def relevant(
    ctx: Context, reqs: list[tuple[Requirement, set[str]]]
) -> list[tuple[Requirement, set[str]]]:
    """The requirements that decide: pinned ones over bare names (`torch; extra == "blackwell"`
    says nothing), and, next to a CUDA torch, not those of ROCm/CPU/XPU extras."""
    tb = ctx.torch
    if tb is None or (not tb.is_cpu and not tb.hip):
        # Requirements of the ROCm/CPU/XPU extras never apply to a CUDA stack, whatever is left.
        reqs = [(r, ex) for r, ex in reqs if not any(other_platform_extra(e) for e in ex)]
    pinned = [(r, ex) for r, ex in reqs if str(r.specifier)]
    return pinned or reqs


def _judge(
    ctx: Context,
    fw: str,
    fw_version: str,
    key: str,
    reqs: list[tuple[Requirement, set[str]]],
    rel: Optional[Release] = None,
) -> list[Finding]:
    reqs = relevant(ctx, reqs)
    if not reqs:
        return []  # only another platform's extras ask for it
    have = installed_version(ctx, key)
    base = [r for r, extras in reqs if not extras]
    label = f"{fw} {fw_version}"
    if have is None:
        if not base or key not in _core():
            return []  # only an optional extra asks for it
        want = str(base[0])
        return [
            Finding(
                Code.FRAMEWORK_PIN.value,
                Severity.ERROR,
                f"{label} requires {base[0].name}{base[0].specifier}, which is not installed",
                evidence=(f"{label} requires {want}", f"{key}: not installed"),
                fix=(
                    install_target(ctx, (key,))
                    or pip_install(f"{base[0].name}{base[0].specifier}"),
                ),
                packages=(fw, key),
            )
        ]
    if any(satisfied(r, have) for r, _ in reqs) and all(satisfied(r, have) for r in base):
        return []
    extras = {e for _, es in reqs for e in es}
    named = rel.smallest_extras(extras) if rel is not None else sorted(extras)
    # the lines under extras that only carry another one (sglang's all, dev) repeat it
    failing = [r for r, es in reqs if not satisfied(r, have) and (not es or es & set(named))] or [
        r for r, _ in reqs if not satisfied(r, have)
    ]
    shown = failing[0]
    via = ", ".join(f"[{e}]" for e in named) or "its base requirements"
    evidence = (*tuple(f"{label} requires {r}" for r in failing[:3]), f"installed: {key} {have}")
    return [
        Finding(
            Code.FRAMEWORK_PIN.value,
            Severity.ERROR,
            f"{label} requires {shown.name}{shown.specifier} ({via}), but {key} {have} is installed",
            evidence=evidence,
            fix=(
                install_target(ctx, (key,)) or pip_install(f"{shown.name}{shown.specifier}"),
                f"or install the whole tuple it pins: compat lock {fw}=={fw_version} -o lock/ && "
                "pip install -r lock/requirements.lock",
            ),
            packages=(fw, key),
        )
    ]
