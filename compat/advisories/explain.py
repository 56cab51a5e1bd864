"""Advisories in words: `compat explain ID` and the conditions of one advisory."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Optional

from compat.advisories.schema import Advisory, Affected


def describe_affected(a: Affected) -> list[str]:
    lines: list[str] = []
    if a.framework:
        lines.append(f"the server is {a.framework}")
    lines.extend(f"{r.label} {r.specifier}" for r in a.packages)
    if a.gpu_cc:
        lines.append(
            "a GPU with compute capability " + " or ".join(f"{x}.{y}" for x, y in a.gpu_cc)
        )
    if a.gpu_names:
        lines.append("a GPU whose name contains " + " or ".join(repr(n) for n in a.gpu_names))
    if a.memory_gib_max is not None:
        lines.append(f"a GPU with at most {a.memory_gib_max:g} GiB")
    if a.driver is not None:
        lines.append(f"NVIDIA driver {a.driver}")
    if a.ray is not None:
        lines.append("launched under Ray" if a.ray else "not launched under Ray")
    if a.findings:
        lines.append("compat also found: " + " or ".join(a.findings))
    lines.extend(c.describe() for c in a.launch)
    lines.extend(c.describe() for c in a.env)
    if a.model is not None:
        lines.extend(a.model.describe())
    return lines


def explain_advisory(adv: Advisory) -> str:
    """Text for `compat explain ID`."""
    out = [f"{adv.id}  [{adv.severity.value}]  {adv.summary}"]
    meta = [f"published {adv.published}"]
    if adv.withdrawn:
        meta.append(f"WITHDRAWN {adv.withdrawn}")
    if adv.fixed_in:
        meta.append("fixed in " + ", ".join(f"{n} {v}" for n, v in adv.fixed_in))
    if adv.aliases:
        meta.append("also known as " + ", ".join(adv.aliases))
    out.append("; ".join(meta))
    out.append(f"source: {adv.source}")
    for par in adv.details.strip().split("\n\n"):
        out.append("")
        out.append(textwrap.fill(" ".join(par.split()), width=96))
    if adv.evidence:
        out.append("")
        out.append("From the report:")
        out.extend(
            textwrap.wrap(
                adv.evidence.strip(), width=92, initial_indent="  > ", subsequent_indent="    "
            )
        )
    out.append("")
    out.append("Applies when all of these hold:")
    out.extend(f"  - {line}" for line in describe_affected(adv.affected))
    out.append("")
    out.append("Workarounds:")
    for w in adv.workarounds:
        out.append(f"  - {w.description}")
        out.append(f"      {w.concrete()}")
    out.append("")
    out.append("References:")
    out.extend(f"  - {r.type}: {r.url}" for r in adv.references)
    return "\n".join(out) + "\n"


def find_advisory(advisories: Sequence[Advisory], ident: str) -> Optional[Advisory]:
    key = ident.strip().upper()
    for adv in advisories:
        if adv.id == key or key in (a.upper() for a in adv.aliases):
            return adv
    return None
