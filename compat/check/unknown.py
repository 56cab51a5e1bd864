"""unknown-combination: parts of the tuple the database cannot vouch for (info)."""

from __future__ import annotations

from compat.check.base import Context, public
from compat.families import families
from compat.models import Code, Finding, Severity


def check(ctx: Context) -> list[Finding]:
    out = []
    for name in families().synced:
        v = ctx.env.version_of(name)
        if v is None:
            continue
        if not ctx.matrix.knows(name):
            continue  # no data for the project at all: nothing to say per release
        if ctx.matrix.release(name, v) is None:
            out.append(
                Finding(
                    Code.UNKNOWN_COMBINATION.value,
                    Severity.INFO,
                    f"{name} {v} is not in compat's database (a local, nightly or newer "
                    "build): its pins were not checked",
                    evidence=(f"{name} {v}",),
                    fix=("refresh the database: compat matrix sync --write",),
                    packages=(name,),
                )
            )
    tb = ctx.torch
    if tb is not None and tb.version is not None and not tb.hip:
        cuda = tb.cuda or tb.cuda_from_deps
        rows = ctx.matrix.builds_of(tb.version)
        if rows and cuda and not any(b.cuda == cuda for b in rows):
            out.append(
                Finding(
                    Code.UNKNOWN_COMBINATION.value,
                    Severity.INFO,
                    f"PyTorch publishes no torch {public(tb.version)} build for CUDA {cuda} "
                    "that compat knows of (a source or third-party build?)",
                    evidence=(f"known builds: {', '.join(b.cuda for b in rows)}",),
                    packages=("torch",),
                )
            )
    return out
