"""`compat explain CODE|ADVISORY-ID`: what a finding code means, how compat decides it, fixes and
sources; or one known-crash advisory in full.

The text per code lives in compat/codes.py, in the package, so an installed compat can print it;
docs/findings.md carries the same table and paragraphs, and a test keeps the two equal.
"""

from __future__ import annotations

import difflib
import re
import textwrap
from collections.abc import Sequence
from typing import Optional

import click

from compat.advisories import Advisory
from compat.codes import FINDINGS
from compat.commands.common import write_report
from compat.errors import UsageError


def explain_code(code: str) -> str:
    t = FINDINGS[code]
    out = [f"{code}: {t.meaning}", "", "How compat decides:"]
    out.extend(textwrap.wrap(t.decided, width=96, initial_indent="  ", subsequent_indent="  "))
    out.append("")
    out.append("Fixes:")
    for fix in t.fix:
        out.extend(textwrap.wrap(fix, width=96, initial_indent="  - ", subsequent_indent="    "))
    if t.sources:
        out.append("")
        out.append("Sources:")
        out.extend(f"  - {s}" for s in t.sources)
    return "\n".join(out) + "\n"


def _advisories() -> tuple[Advisory, ...]:
    from compat.pipeline import load_database

    return load_database().advisories


def _known_crash_list(advisories: Sequence[Advisory]) -> str:
    lines = ["", "Advisories (compat explain ID for one):"]
    for adv in advisories:
        mark = " (withdrawn)" if adv.is_withdrawn else ""
        lines.append(f"  {adv.id}{mark}  {adv.summary}")
    return "\n".join(lines) + "\n"


def explain(ident: str) -> str:
    """The text for a code or an advisory id; UsageError (exit 2) with close matches otherwise."""
    from compat.advisories import explain_advisory, find_advisory

    key = ident.strip()
    if key.lower() in FINDINGS:
        text = explain_code(key.lower())
        if key.lower() == "known-crash":
            text += _known_crash_list(_advisories())
        return text
    advisories = _advisories()
    adv = find_advisory(advisories, key)
    if adv is not None:
        full: str = explain_advisory(adv)
        return full
    names = list(FINDINGS) + [a.id for a in advisories] + [x for a in advisories for x in a.aliases]
    close = difflib.get_close_matches(key.lower(), [n.lower() for n in names], n=5, cutoff=0.6)
    by_lower = {n.lower(): n for n in names}
    m = re.match(r"(?i)^compat-?0*([0-9]{1,4})$", key)
    if m and f"compat-{int(m.group(1)):04d}" in by_lower:  # COMPAT-3, compat-003 ...
        close = [f"compat-{int(m.group(1)):04d}", *close]
        close = list(dict.fromkeys(close))[:5]
    hint = (
        "did you mean: " + ", ".join(by_lower[c] for c in close)
        if close
        else "finding codes: " + ", ".join(FINDINGS) + "; advisories: COMPAT-0001 ..."
    )
    raise UsageError(f"{ident!r} is not a finding code or advisory id compat knows", hint=hint)


def overview() -> str:
    width = max(len(c) for c in FINDINGS)
    lines = ["Finding codes (compat explain CODE):"]
    lines.extend(f"  {c:<{width}}  {t.meaning}" for c, t in FINDINGS.items())
    return "\n".join(lines) + "\n" + _known_crash_list(_advisories())


@click.command("explain")
@click.argument("ident", required=False, metavar="CODE|ADVISORY-ID")
@click.option("-o", "--output", metavar="FILE", help="Write to FILE.")
def explain_cmd(ident: Optional[str], output: Optional[str]) -> None:
    """What a finding code means, how compat decides it, how to fix it and where the facts come
    from; or a known-crash advisory in full. Without an argument, lists both.

    \b
      compat explain torch-triton
      compat explain COMPAT-0003
    """
    write_report(explain(ident) if ident else overview(), output)
