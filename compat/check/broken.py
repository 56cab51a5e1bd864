"""broken-dist: a stack package whose dist-info cannot be read.

pip, importlib.metadata and the frameworks' own import-time version checks read the dist-info;
without a readable METADATA (or Version) they see the package as missing or fail outright, even
when its files are all there. A stack package in that state is reported, never silently dropped.
"""

from __future__ import annotations

from compat.check.base import Context
from compat.families import Family, families
from compat.models import Code, Finding, Severity

# Families the server cannot start without: a broken one is an error; the rest a warning.
_CORE = frozenset({Family.FRAMEWORK, Family.TORCH, Family.TRITON, Family.KERNEL, Family.COMPANION})


def check(ctx: Context) -> list[Finding]:
    out = []
    fam = families()
    for d in ctx.env.distributions:
        if d.broken is None or not fam.is_stack(d.key):
            continue
        family = fam.family(d.key)
        severity = Severity.ERROR if family in _CORE else Severity.WARNING
        pin = f"{d.key}=={d.version.public}" if d.version is not None else d.key
        out.append(
            Finding(
                Code.BROKEN_DIST.value,
                severity,
                f"{d.key}{f' {d.version}' if d.version else ''}: its dist-info is broken "
                f"({d.broken}); pip and the framework's version checks cannot read it",
                evidence=(f"{d.location or 'the environment'}: {d.key}: {d.broken}",),
                fix=(f"pip install --force-reinstall --no-deps '{pin}'",),
                packages=(d.key,),
            )
        )
    return out
