"""`compat env` as readable text."""

from __future__ import annotations

from compat.models import Environment, Unknown
from compat.redact import redacted


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


@redacted
def format_env(env: Environment) -> str:
    out: list[str] = []
    p = env.python
    if isinstance(p, Unknown):
        out.append(f"Python        {p}")
    else:
        out.append(f"Python        {p.version} ({p.implementation}) {p.executable}")
        out.append(f"Platform      {p.platform} {p.machine}; tags {', '.join(p.tags[:3])}")

    t = env.torch
    if isinstance(t, Unknown):
        out.append(f"torch         {t}")
    else:
        if t.hip:
            build = f"ROCm/HIP {t.hip}"
        elif t.cuda:
            build = f"CUDA {t.cuda}"
        elif t.cuda_from_deps:
            build = f"CUDA {t.cuda_from_deps} (from its nvidia/cuda-toolkit requirements)"
        else:
            build = "CPU build"
        out.append(f"torch         {t.version} {build}  [{t.source}]")

    d = env.driver
    if isinstance(d, Unknown):
        out.append(f"Driver        {d}")
    else:
        vs = f"  [{d.version_source}]" if d.version_source else ""
        cs = f"  [{d.cuda_source}]" if d.cuda_source else ""
        out.append(f"Driver        {d.version}{vs}")
        out.append(f"Driver CUDA   {d.cuda}{cs}")

    g = env.gpus
    if isinstance(g, Unknown):
        out.append(f"GPUs          {g}")
    elif not g:
        out.append("GPUs          none visible")
    else:
        for gpu in g:
            cc = ".".join(map(str, gpu.compute_capability)) if gpu.compute_capability else "?"
            mem = (
                f"{gpu.memory_total_mib / 1024:.1f} GiB"
                if gpu.memory_total_mib is not None
                else "? GiB"
            )
            used = (
                f", {gpu.memory_used_mib / 1024:.1f} GiB used"
                if gpu.memory_used_mib is not None
                else ""
            )
            mig = " MIG on" if gpu.mig else ""
            out.append(f"GPU {gpu.index:<9} {gpu.name}  cc {cc}  {mem}{used}{mig}")

    c = env.context
    if isinstance(c, Unknown):
        out.append(f"Context       {c}")
    else:
        where = c.container or "bare metal or VM"
        if c.wsl:
            where += ", WSL"
        nodes = ", ".join(c.device_nodes) if c.device_nodes else "none"
        out.append(f"Context       {where}; device nodes: {nodes}")
        for note in c.notes:
            out.append(f"              {note}")

    out.append("")
    out.append("Distributions")
    if not env.distributions:
        out.append("  (none of the serving stack)")
    width = max((len(x.name) for x in env.distributions), default=0)
    for dist in env.distributions:
        if dist.broken:
            out.append(f"  {dist.name:<{width}}  BROKEN: {dist.broken}  [{dist.location}]")
        else:
            out.append(f"  {dist.name:<{width}}  {dist.raw_version}")

    out.append("")
    out.append("Environment variables")
    if not env.env:
        out.append("  (none that matter to the stack)")
    for key, value in env.env.items():
        out.append(f"  {key}={value}")

    out.append("")
    out.append("Caches")
    for cache in env.caches:
        if not cache.exists:
            out.append(f"  {cache.kind:<14} {cache.path} (absent)")
            continue
        more = "+" if cache.truncated else ""
        by = f"; built by {', '.join(cache.built_by)}" if cache.built_by else ""
        out.append(
            f"  {cache.kind:<14} {cache.path} {_size(cache.size_bytes)}{more}, "
            f"{cache.entries}{more} entries{by}"
        )
    return "\n".join(out) + "\n"
