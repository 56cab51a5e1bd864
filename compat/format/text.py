"""Findings as short text grouped by severity, each with evidence and the fix as commands."""

from __future__ import annotations

from collections.abc import Sequence

from compat.families import families
from compat.models import Environment, Finding, Severity, Unknown

_HEAD = {Severity.ERROR: "ERRORS", Severity.WARNING: "WARNINGS", Severity.INFO: "INFO"}


def subject(env: Environment) -> str:
    """One line naming the stack: framework, torch, triton, driver, GPUs."""
    parts = []
    for name in families().frameworks:
        v = env.version_of(name)
        if v is not None:
            parts.append(f"{name} {v}")
    t = env.torch
    if not isinstance(t, Unknown):
        parts.append(f"torch {t.version}")
    tr = env.version_of("triton")
    if tr is not None:
        parts.append(f"triton {tr}")
    d = env.driver
    if not isinstance(d, Unknown) and not isinstance(d.version, Unknown):
        parts.append(f"driver {d.version}")
    g = env.gpus
    if not isinstance(g, Unknown) and g:
        names = sorted({x.name for x in g})
        parts.append(f"{len(g)}x {'/'.join(names)}")
    return ", ".join(parts) or "no serving stack found"


def format_findings(findings: Sequence[Finding], env: Environment, fail_on: str) -> str:
    subject_line = subject(env)
    lines = [f"compat check: {subject_line}  [{env.source}]"]
    if not findings:
        lines.append("OK: no findings.")
        if env.dist("torch") is None and env.dist("sglang") is None and env.dist("vllm") is None:
            lines.append(
                "(nothing of the serving stack is installed in this interpreter: check a "
                "server's venv with --interpreter PATH, or a file with --from FILE)"
            )
        return "\n".join(lines) + "\n"
    for sev in (Severity.ERROR, Severity.WARNING, Severity.INFO):
        group = [f for f in findings if f.severity is sev]
        if not group:
            continue
        lines.append("")
        lines.append(f"{_HEAD[sev]} ({len(group)})")
        for f in group:
            tag = f"{f.code}" + (f" {f.advisory}" if f.advisory else "")
            lines.append(f"  [{tag}] {f.message}")
            for e in f.evidence:
                lines.append(f"      - {e}")
            for fix in f.fix:
                lines.append(f"      fix: {fix}")
            for ref in f.references[:2]:
                lines.append(f"      see: {ref}")
    counts = {s: sum(1 for f in findings if f.severity is s) for s in Severity}
    lines.append("")
    lines.append(
        f"{counts[Severity.ERROR]} error(s), {counts[Severity.WARNING]} warning(s), "
        f"{counts[Severity.INFO]} info; failing on {fail_on}"
    )
    return "\n".join(lines) + "\n"
