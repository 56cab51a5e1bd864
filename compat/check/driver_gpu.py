"""driver-too-old for the GPU itself: the driver branch against each GPU architecture's range."""

from __future__ import annotations

from compat.check.base import Context
from compat.models import Code, Finding, Severity, Unknown, parse_version


def check(ctx: Context) -> list[Finding]:
    """An architecture needs the branch of its first CUDA toolkit's driver and loses support after
    its last branch (curated/drivers.toml): outside that range the GPU cannot be used at all."""
    gpus, drv = ctx.env.gpus, ctx.env.driver
    if isinstance(gpus, Unknown) or not gpus or isinstance(drv, Unknown):
        return []
    if isinstance(drv.version, Unknown):
        return []
    version = parse_version(drv.version)
    if version is None:
        return []
    branch = version.major
    catalog = ctx.matrix.driver_catalog
    by_cc: dict[tuple[int, int], list[str]] = {}
    for g in gpus:
        if g.compute_capability is not None:
            by_cc.setdefault(g.compute_capability, []).append(f"GPU {g.index} ({g.name})")
    out: list[Finding] = []
    for cc, labels in sorted(by_cc.items()):
        floor = catalog.floor(cc)
        if floor is None:
            continue
        arch = floor.support.architecture
        sm = f"sm_{cc[0]}{cc[1]}"
        who = labels[0] if len(labels) == 1 else f"{labels[0]} and {len(labels) - 1} more"
        note = () if floor.support.verified else (f"unverified: {floor.support.note}",)
        if floor.min_branch is not None and branch < floor.min_branch:
            out.append(
                Finding(
                    Code.DRIVER_TOO_OLD.value,
                    Severity.ERROR,
                    f"driver {drv.version} (R{branch}) is too old for {who}: {arch} GPUs ({sm}) "
                    f"need R{floor.min_branch} or newer, whatever CUDA build the stack uses",
                    evidence=(
                        f"{', '.join(labels)}: {arch}, {sm}",
                        f"{arch} is supported from CUDA {floor.support.first_cuda}, whose driver "
                        f"is {floor.min_release} (R{floor.min_branch})",
                        *note,
                    ),
                    fix=(
                        f"upgrade the NVIDIA driver to R{floor.min_branch} or newer "
                        f"(>= {floor.min_release})",
                    ),
                    references=(floor.support.source, floor.min_source),
                )
            )
        if floor.last_branch is not None and branch > floor.last_branch:
            out.append(
                Finding(
                    Code.DRIVER_TOO_OLD.value,
                    Severity.ERROR,
                    f"driver {drv.version} (R{branch}) no longer supports {who}: "
                    f"R{floor.last_branch} is the last driver branch for {arch} GPUs ({sm})",
                    evidence=(f"{', '.join(labels)}: {arch}, {sm}", *note),
                    fix=(f"install an R{floor.last_branch} driver (the last one for {arch})",),
                    references=(floor.support.source,),
                )
            )
    return out
