"""The one tuple a report's fixes aim at, so that applied together they give a consistent stack.

The framework's exact pins decide (sglang 0.4.6.post1 pins torch 2.6.0 and torchvision 0.21.0);
without them the installed torch stays. torch's own pin gives triton; a companion's release is
the one its database records as built for that torch. Every fix that installs a stack package
takes its version from here, instead of each check fixing its own pair and the fixes disagreeing
(torch 2.6.0 from one finding, a triton for torch 2.7.1 from another).
"""

from __future__ import annotations

from typing import Optional

from packaging.requirements import Requirement
from packaging.version import Version

from compat.check.base import (
    Context,
    TargetTuple,
    applies,
    installed_version,
    public,
    requires_of,
)
from compat.families import Family, families, other_platform_extra
from compat.models import canonicalize_name

_TRITONS = ("triton", "pytorch-triton")


def _exact(req: Requirement) -> Optional[Version]:
    pins = [s for s in req.specifier if s.operator in ("==", "===") and "*" not in s.version]
    if len(pins) != 1:
        return None
    try:
        return Version(pins[0].version)
    except ValueError:
        return None


def compose(ctx: Context) -> TargetTuple:
    pins: dict[str, Version] = {}
    why: dict[str, str] = {}
    fam = families()
    # 1. The framework's exact pins on the stack (CUDA-side extras included, other platforms not).
    for fw in fam.frameworks:
        dist = ctx.env.dist(fw)
        if dist is None or dist.version is None:
            continue
        for req in requires_of(ctx, dist, fam.is_stack):
            key = canonicalize_name(req.name)
            extras = _extras(req)
            if any(other_platform_extra(e) for e in extras) or not fam.is_stack(key):
                continue
            if key == fw or all(applies(req, ctx, e) is False for e in (extras or {""})):
                continue
            v = _exact(req)
            if v is not None and key not in pins:
                pins[key] = v
                why[key] = f"{fw} {dist.version} pins it"
    # 2. torch: the framework's pin, else what is installed.
    torch = pins.get("torch")
    if torch is None:
        have = installed_version(ctx, "torch")
        if have is None:
            return TargetTuple(pins, why)
        torch = public(have)
        pins["torch"], why["torch"] = torch, "installed"
    # 3. triton: what that torch pins.
    rel = ctx.matrix.release("torch", torch)
    if rel is not None:
        for req in rel.requires:
            key = canonicalize_name(req.name)
            if key in _TRITONS and applies(req, ctx) is not False and key not in pins:
                v = _exact(req)
                if v is not None:
                    pins[key], why[key] = v, f"torch {torch} pins it"
    # 4. Companions (and companions of companions' kind): the release built for that torch.
    for name in fam.names(Family.COMPANION):
        if name in pins or installed_version(ctx, name) is None:
            continue
        built = _built_for(ctx, name, torch)
        if built is not None:
            pins[name], why[name] = built, f"built for torch {torch}"
    return TargetTuple(pins, why)


def _built_for(ctx: Context, name: str, torch: Version) -> Optional[Version]:
    """The newest release of `name` whose metadata pins exactly this torch; for releases that
    pin none (torchaudio from 2.10), the newest whose wheel's torch symbols say so."""
    from compat.matrix.builtfor import built_for, releases_built_for

    best: Optional[Version] = None
    for v, rel in ctx.matrix.releases(name).items():
        if rel.yanked or v.is_prerelease:
            continue
        for req in rel.pins("torch"):
            if _exact(req) == torch:
                if best is None or v > best:
                    best = v
                break
    if best is None:
        # The installed release first: when its own wheel is built for this torch, it stays
        # (and only its facts are read); else the newest release whose wheel is.
        have = installed_version(ctx, name)
        facts = ctx.matrix.build_facts(name, have) if have is not None else None
        if facts is not None and built_for(facts, torch, ctx.matrix.torch_exports()).answer:
            return public(have) if have is not None else None
        built = releases_built_for(ctx.matrix.builds(name), torch, ctx.matrix.torch_exports())
        best = built[0] if built else None
    return best


def _extras(req: Requirement) -> set[str]:
    from compat.check.base import extras_of

    return extras_of(req)


def target_of(ctx: Context) -> TargetTuple:
    """The context's tuple (the pipeline composes it once), composed here when a test built the
    context by hand."""
    return ctx.target if ctx.target is not None else compose(ctx)


def install_target(ctx: Context, names: tuple[str, ...] = ()) -> Optional[str]:
    """One pip command that moves the torch side of the stack (torch, triton, companions, and
    `names`) to the target tuple: only what differs from what is installed, each in the build
    of the installed torch's CUDA (its index and local tag), so the fixes of a report compose."""
    target = target_of(ctx)
    fam = families()
    wanted = ["torch", *_TRITONS, *fam.names(Family.COMPANION), *names]
    tb = ctx.torch
    build = None
    torch_v = target.get("torch")
    if tb is not None and torch_v is not None and (tb.cuda or tb.is_cpu):
        build = ctx.matrix.build_of(torch_v, "cpu" if tb.is_cpu else tb.cuda)
    local = build.local if build is not None and build.local and not build.pypi_default else ""
    parts: list[str] = []
    for name in dict.fromkeys(canonicalize_name(n) for n in wanted):
        v = target.get(name)
        if v is None:
            continue
        have = installed_version(ctx, name)
        if have is not None and public(have) == v:
            continue
        tagged = local and name in ("torch", *fam.names(Family.COMPANION))
        parts.append(f"'{name}=={v}{'+' + local if tagged else ''}'")
    if not parts:
        return None
    index = (
        f" --extra-index-url {build.index}" if local and build is not None and build.index else ""
    )
    return "pip install " + " ".join(parts) + index
