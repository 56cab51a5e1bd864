"""torch-companion: torchvision, torchaudio and xformers built for another torch or CUDA build.

Two sources: their torch pin (metadata), and what their extension module links against (recorded
by the probe from the ELF headers): a CUDA torchvision needs libtorch_cuda.so and libc10_cuda.so,
which a CPU torch does not ship, and then `import torchvision` fails with "operator
torchvision::nms does not exist" while `pip check` sees nothing wrong.
"""

from __future__ import annotations

from typing import Optional

from compat.check.base import Context, public, reinstall_matching_torch, requires_of, satisfied
from compat.check.builds import TORCH_CUDA_LIBS, cudart_major, parse_local
from compat.check.target import install_target
from compat.families import families
from compat.models import Code, Distribution, Finding, Severity, TorchBuild


def check(ctx: Context) -> list[Finding]:
    tb = ctx.torch
    if tb is None or tb.version is None:
        return []
    findings: list[Finding] = []
    for name in families().extensions:
        dist = ctx.env.dist(name)
        if dist is None or dist.version is None:
            continue
        finding = _pin(ctx, dist, tb) or _build_kind(ctx, dist, tb)
        if finding:
            findings.append(finding)
    return findings


def _pin(ctx: Context, dist: Distribution, tb: TorchBuild) -> Optional[Finding]:
    assert tb.version is not None
    pins = [
        r
        for r in requires_of(ctx, dist, "torch".__eq__)
        if r.marker is None or "extra" not in str(r.marker)
    ]
    bad = [r for r in pins if not satisfied(r, tb.version)]
    if not bad:
        return None
    label = f"{dist.key} {dist.version}"
    return Finding(
        Code.TORCH_COMPANION.value,
        Severity.ERROR,
        f"{label} is built for {bad[0].name}{bad[0].specifier}, but torch {tb.version} is installed",
        evidence=(f"{label} requires {bad[0]}", f"installed: torch {tb.version}"),
        fix=(
            install_target(ctx)
            or f"install the {dist.key} release built for torch {public(tb.version)} "
            f"(`compat lock 'torch=={public(tb.version)}'` names it)",
        ),
        packages=("torch", dist.key),
    )


def _build_kind(ctx: Context, dist: Distribution, tb: TorchBuild) -> Optional[Finding]:
    """A CUDA build next to a CPU torch, a CPU build next to a CUDA torch, or another CUDA major."""
    assert dist.version is not None
    label = f"{dist.key} {dist.version}"
    fix = (reinstall_matching_torch(ctx, dist.key, dist.version),)
    pair = ("torch", dist.key)
    tag = parse_local(dist.version)
    torch_flavour = "a CPU build" if tb.is_cpu else f"built for CUDA {tb.cuda or tb.cuda_from_deps}"
    if tag.cuda and tb.is_cpu:
        return Finding(
            Code.TORCH_COMPANION.value,
            Severity.ERROR,
            f"{label} is a CUDA {tag.cuda} build, but torch {tb.version} is a CPU build",
            evidence=(
                f"{dist.key} {dist.version}: local tag names CUDA {tag.cuda}",
                f"torch {tb.version}: {torch_flavour}",
            ),
            fix=fix,
            packages=pair,
        )
    if tag.cpu and not tb.is_cpu:
        return Finding(
            Code.TORCH_COMPANION.value,
            Severity.ERROR,
            f"{label} is a CPU build, but torch {tb.version} is {torch_flavour}",
            evidence=(f"{dist.key} {dist.version}", f"torch {tb.version}"),
            fix=fix,
            packages=pair,
        )
    if tag.cuda and tb.cuda_major and int(tag.cuda.split(".")[0]) != tb.cuda_major:
        return Finding(
            Code.TORCH_COMPANION.value,
            Severity.ERROR,
            f"{label} is built for CUDA {tag.cuda}, torch {tb.version} is {torch_flavour}",
            evidence=(f"{dist.key} {dist.version}", f"torch {tb.version}"),
            fix=fix,
            packages=pair,
        )
    if not dist.needs or not tb.libs:
        return None  # no tag to go by and no link information recorded
    ext = families().extensions[dist.key]
    missing = [lib for lib in dist.needs if lib in TORCH_CUDA_LIBS and lib not in tb.libs]
    if missing:
        linked = ", ".join(
            n for n in dist.needs if n.startswith(("libtorch", "libc10", "libcudart"))
        )
        return Finding(
            Code.TORCH_COMPANION.value,
            Severity.ERROR,
            f"{label} is a CUDA build: {ext} needs {', '.join(missing)}, which torch {tb.version} "
            f"({torch_flavour}) does not ship; `import {dist.key}` fails"
            + (
                ' with "operator torchvision::nms does not exist"'
                if dist.key == "torchvision"
                else ""
            )
            + " although pip check passes",
            evidence=(f"{ext} needs: {linked}", f"torch/lib has: {', '.join(tb.libs)}"),
            fix=fix,
            packages=pair,
        )
    rt = cudart_major(dist.needs)
    if rt and tb.cuda_major and rt != tb.cuda_major:
        return Finding(
            Code.TORCH_COMPANION.value,
            Severity.ERROR,
            f"{label} links libcudart.so.{rt} (CUDA {rt}), torch {tb.version} is {torch_flavour}",
            evidence=(f"{ext} needs libcudart.so.{rt}",),
            fix=fix,
            packages=pair,
        )
    return None
