"""gpu-arch: every visible GPU against the arch list of the torch build.

CUDA's rules are compat.nvidia.coverage's; arch-specific targets (sm_90a) count as sm_90.
"""

from __future__ import annotations

from compat.check.base import Context
from compat.matrix.schema import cc_str, parse_cc
from compat.models import GPU, Code, Finding, Severity, Unknown
from compat.nvidia import coverage


def check(ctx: Context) -> list[Finding]:
    tb = ctx.torch
    gpus = ctx.env.gpus
    if tb is None or tb.version is None or tb.is_cpu:
        return []
    if isinstance(gpus, Unknown):
        return [
            Finding(
                Code.GPU_ARCH.value,
                Severity.INFO,
                f"could not tell whether torch {tb.version} has kernels for the GPUs: {gpus.reason}",
                fix=("name the target GPUs: compat check --gpu h100 (or --gpu sm_90)",),
                missing="gpu",
            )
        ]
    if tb.hip:
        return []
    if tb.arch_list:  # read from torch itself (--deep): better than any table
        sass = tuple(sorted({parse_cc(a) for a in tb.arch_list if a.startswith("sm_")}))
        ptx = tuple(sorted({parse_cc(a) for a in tb.arch_list if a.startswith("compute_")}))
        covered = ", ".join(f"sm_{a}{b}" for a, b in sass)
        source = tb.arch_source or "torch.cuda.get_arch_list()"
        return [
            f for g in gpus if (f := _judge(g, sass, ptx, f"torch {tb.version}", covered, source))
        ]
    build = ctx.matrix.build_of(tb.version, tb.cuda or tb.cuda_from_deps)
    if build is None or not build.sass:
        return (
            [
                Finding(
                    Code.GPU_ARCH.value,
                    Severity.INFO,
                    f"compat does not know the arch list of torch {tb.version} "
                    f"(CUDA {tb.cuda or tb.cuda_from_deps}); GPU coverage not checked",
                    fix=("compat check --deep reads it from torch itself",),
                )
            ]
            if gpus
            else []
        )
    covered = ", ".join(f"sm_{a}{b}" for a, b in build.sass)
    out = []
    for g in gpus:
        f = _judge(g, build.sass, build.ptx, f"torch {tb.version}", covered, build.source)
        if f:
            out.append(f)
    return out


def _judge(
    g: GPU,
    sass: tuple[tuple[int, int], ...],
    ptx: tuple[tuple[int, int], ...],
    who: str,
    covered: str,
    source: str,
) -> Finding | None:
    cc = g.compute_capability
    if cc is None:
        return None
    how = coverage(sass, ptx, cc)
    if how == "sass":
        return None
    label = f"GPU {g.index} ({g.name}, sm_{cc[0]}{cc[1]})"
    jit = [p for p in ptx if p <= cc]
    if how == "ptx":
        return Finding(
            Code.GPU_ARCH.value,
            Severity.WARNING,
            f"{who} has no machine code for {label}; it runs from PTX (compute_{jit[-1][0]}{jit[-1][1]}) "
            "JIT-compiled at start-up: slow first launch, and it needs a driver at least as new as "
            "the build's CUDA",
            evidence=(f"{who} SASS: {covered}", f"PTX: {', '.join(cc_str(p) for p in ptx)}"),
            fix=("install a torch build whose arch list includes this GPU (newer CUDA tag)",),
            references=(source,),
        )
    older = all(b > cc for b in sass)
    why = "dropped" if older else "not built for"
    return Finding(
        Code.GPU_ARCH.value,
        Severity.ERROR,
        f"{who} has no kernels for {label}: its builds cover {covered} ({why} this GPU); "
        "expect 'no kernel image is available for execution on the device'",
        evidence=(
            f"{who} SASS: {covered}",
            f"PTX: {', '.join(cc_str(p) for p in ptx) or 'none'}",
            f"{label} from {g.source or 'input'}",
        ),
        fix=(
            "install a torch build that still covers this GPU (an older CUDA tag for old GPUs, "
            "a newer one for new GPUs): compat lock --gpu " + f"sm_{cc[0]}{cc[1]} ...",
        ),
        references=(source,),
    )
