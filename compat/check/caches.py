"""stale-cache: JIT and compile caches holding entries built by other versions of the stack."""

from __future__ import annotations

from typing import Optional

from compat.check.base import Context, public
from compat.models import CacheInfo, Code, Finding, Severity

# cache kind -> the distribution whose install makes older entries stale
OWNERS = {
    "triton": "triton",
    "torchinductor": "torch",
    "vllm": "vllm",
    "flashinfer": "flashinfer-python",
}


def check(ctx: Context) -> list[Finding]:
    out = []
    for cache in ctx.env.caches:
        if not cache.exists or cache.entries == 0:
            continue
        f = _judge(ctx, cache)
        if f:
            out.append(f)
    return out


def _judge(ctx: Context, cache: CacheInfo) -> Optional[Finding]:
    owner = OWNERS.get(cache.kind)
    dist = ctx.env.dist(owner) if owner else None
    if dist is None or dist.version is None:
        return None
    fix = (f"rm -rf {cache.path}",)
    if cache.built_by:
        mine = str(public(dist.version))
        others = [v for v in cache.built_by if v != mine]
        if others:
            return Finding(
                Code.STALE_CACHE.value,
                Severity.WARNING,
                f"the {cache.kind} cache holds entries built by {owner} {', '.join(others)}; "
                f"{owner} {dist.version} is installed",
                evidence=(f"{cache.path}: versions {', '.join(cache.built_by)}",),
                fix=(
                    f"rm -rf {cache.path}/{{{','.join(others)}}}"
                    if len(others) > 1
                    else f"rm -rf {cache.path}/{others[0]}",
                ),
                packages=(owner,) if owner else (),
            )
        return None
    if (
        cache.oldest_mtime is not None
        and dist.installed_at is not None
        and cache.oldest_mtime < dist.installed_at - 60
    ):
        severity = Severity.WARNING if cache.kind in ("triton", "vllm") else Severity.INFO
        return Finding(
            Code.STALE_CACHE.value,
            severity,
            f"the {cache.kind} cache ({cache.entries}{'+' if cache.truncated else ''} entries) has "
            f"entries from before {owner} {dist.version} was installed; stale compiled kernels "
            "are a known cause of JIT segfaults during CUDA-graph capture",
            evidence=(f"{cache.path}: oldest entry older than {owner}'s install",),
            fix=fix,
            packages=(owner,) if owner else (),
        )
    return None
