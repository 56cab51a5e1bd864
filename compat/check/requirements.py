"""stack-pin: every requirement on a package of the stack, by any installed distribution, is met.

`pip check` judges these too; compat judges them against what it knows of the stack (a build's
local tag, torch's version from its files), so it is a superset of `pip check` for the stack:
torch's pins of its CUDA runtime wheels, an RL framework or cache connector pinning vllm, a
library pinning torch. What a more specific check already judges is left to it: the framework's
own pins (framework-pin), torch's triton (torch-triton), a kernel's or companion's torch
(kernel-torch, torch-companion).
"""

from __future__ import annotations

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName

from compat.check.base import Context, installed_version, pip_install, requires_of, satisfied
from compat.families import Family, families
from compat.models import Code, Distribution, Finding, Severity, canonicalize_name

_TRITON = frozenset({"triton", "pytorch-triton"})


def _left_to_others(requirer: Distribution, target: str) -> bool:
    fam = families()
    family = fam.family(requirer.key)
    if family is Family.FRAMEWORK:
        return True
    if requirer.key == "torch" and target in _TRITON:
        return True
    return target == "torch" and fam.links_torch(requirer.key)


def check(ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    fam = families()
    complete = not ctx.env.partial
    marker_env = ctx.marker_env("")
    for d in ctx.env.distributions:
        if d.broken is not None:
            continue

        # Named elsewhere or off the stack: skipped by name, before any parsing.
        def judged(target: str, d: Distribution = d) -> bool:
            return target != d.key and fam.is_stack(target) and not _left_to_others(d, target)

        for req in requires_of(ctx, d, judged):
            target = canonicalize_name(req.name)
            try:
                if req.marker is not None and not req.marker.evaluate(marker_env):
                    continue  # another platform, Python, or an extra (pip check skips them too)
            except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
                continue
            have = installed_version(ctx, target)
            label = f"{d.name} {d.version}" if d.version is not None else d.name
            if have is None:
                if complete and str(req.specifier):
                    out.append(
                        Finding(
                            Code.STACK_PIN.value,
                            Severity.WARNING,
                            f"{label} requires {req.name}{req.specifier}, which is not installed",
                            evidence=(f"{label} requires {req}",),
                            fix=(pip_install(f"{req.name}{req.specifier}"),),
                            packages=(d.key, target),
                        )
                    )
                continue
            if satisfied(req, have):
                continue
            out.append(
                Finding(
                    Code.STACK_PIN.value,
                    Severity.ERROR,
                    f"{label} requires {req.name}{req.specifier}, but {target} {have} is installed",
                    evidence=(f"{label} requires {req}", f"installed: {target} {have}"),
                    fix=(
                        pip_install(f"{req.name}{req.specifier}"),
                        f"or a {d.name} release that supports {target} {have}",
                    ),
                    packages=(d.key, target),
                )
            )
    return out
