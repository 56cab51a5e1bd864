"""Cluster reports (`--ray`): each node's environment or findings, then the cluster's verdict."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import msgspec
import msgspec.structs

from compat import __version__
from compat.format.text import subject
from compat.models import (
    ClusterProbe,
    ClusterResult,
    Finding,
    NodeReport,
    NodeStatus,
    Severity,
)
from compat.redact import redacted
from compat.snapshot import node_dict

CLUSTER_FINDINGS_SCHEMA = "compat.cluster-findings/1"

_HEAD = {Severity.ERROR: "ERRORS", Severity.WARNING: "WARNINGS", Severity.INFO: "INFO"}


def _describe(r: NodeReport) -> str:
    n = r.node
    extra = [
        x
        for x in (n.address if n.address and n.address != n.label else "", "head" if n.head else "")
        if x
    ]
    return f"{n.label} ({', '.join(extra)})" if extra else n.label


def _header(probe: ClusterProbe, verb: str) -> list[str]:
    nodes = probe.nodes
    gpu = sum(1 for r in nodes if r.node.gpus > 0)
    ok = sum(1 for r in nodes if r.status is NodeStatus.OK)
    head = (
        f"compat {verb} --ray {probe.address}: {len(nodes)} node(s), {gpu} with GPUs; "
        f"{ok} reported"
        + (f", {len(nodes) - ok} did not" if ok < len(nodes) else "")
        + f"  [ray {probe.ray_version or '?'}, {probe.elapsed_s:.1f} s]"
    )
    lines = [head]
    if probe.runtime_env:
        lines.append(f"runtime env: {json.dumps(dict(probe.runtime_env), sort_keys=True)}")
    return lines


def _status_line(r: NodeReport) -> str:
    if r.status is NodeStatus.OK and r.env is not None:
        gpu = r.facts.get("gpu_ids")
        seen = (
            f"; CUDA_VISIBLE_DEVICES={r.env.env['CUDA_VISIBLE_DEVICES']}"
            if "CUDA_VISIBLE_DEVICES" in r.env.env
            else ""
        )
        given = f"; Ray GPU {gpu}" if gpu else ""
        return f"ok: {subject(r.env)}{given}{seen}"
    return f"{r.status.value.upper()}: {r.reason or 'no reason given'}"


@redacted
def format_cluster_env(probe: ClusterProbe) -> str:
    """`compat env --ray`: every node's environment, as `compat env` shows one."""
    from compat.format.env_text import format_env

    out = _header(probe, "env")
    for r in probe.nodes:
        out.append("")
        out.append(f"== {_describe(r)}  [{r.status.value}]")
        if r.env is None:
            out.append(f"   {r.reason or 'no report'}")
            continue
        facts = ", ".join(f"{k}={v}" for k, v in sorted(r.facts.items()) if v)
        if facts:
            out.append(f"Ray           {facts}")
        out.append(format_env(r.env).rstrip("\n"))
    return "\n".join(out) + "\n"


def _finding_lines(findings: Sequence[Finding], indent: str) -> list[str]:
    lines: list[str] = []
    for sev in (Severity.ERROR, Severity.WARNING, Severity.INFO):
        group = [f for f in findings if f.severity is sev]
        if not group:
            continue
        lines.append(f"{indent}{_HEAD[sev]} ({len(group)})")
        for f in group:
            tag = f.code + (f" {f.advisory}" if f.advisory else "")
            lines.append(f"{indent}  [{tag}] {f.message}")
            lines.extend(f"{indent}      - {e}" for e in f.evidence)
            lines.extend(f"{indent}      fix: {x}" for x in f.fix)
            lines.extend(f"{indent}      see: {ref}" for ref in f.references[:2])
    return lines


def _text(result: ClusterResult, fail_on: str) -> str:
    probe = result.probe
    lines = _header(probe, "check")
    lines.append("")
    lines.append("Nodes")
    width = max((len(_describe(r)) for r in probe.nodes), default=0)
    for r in probe.nodes:
        lines.append(f"  {_describe(r):<{width}}  {_status_line(r)}")
    if not probe.nodes:
        lines.append("  (none alive)")
    # Nodes with the same findings are shown once: a uniform cluster reads as one report.
    groups: dict[str, tuple[list[NodeReport], tuple[Finding, ...]]] = {}
    for r, fs in result.per_node:
        if r.status is not NodeStatus.OK:
            continue
        key = json.dumps([f.to_dict() for f in fs], sort_keys=True)
        groups.setdefault(key, ([], fs))[0].append(r)
    for members, fs in groups.values():
        names = ", ".join(m.node.label for m in members)
        lines.append("")
        count = f" ({len(members)} nodes)" if len(members) > 1 else ""
        if not fs:
            lines.append(f"On {names}{count}: no findings.")
            continue
        lines.append(f"On {names}{count}:")
        lines.extend(_finding_lines(fs, "  "))
    lines.append("")
    if result.cluster:
        lines.append("Across the cluster:")
        lines.extend(_finding_lines(result.cluster, "  "))
    else:
        ok = sum(1 for r in probe.nodes if r.status is NodeStatus.OK)
        lines.append(
            f"Across the cluster: no findings ({ok} nodes compared)."
            if ok > 1
            else "Across the cluster: fewer than two nodes reported; nothing to compare."
        )
    every = result.all_findings()
    counts = {s: sum(1 for f in every if f.severity is s) for s in Severity}
    lines.append("")
    lines.append(
        f"{counts[Severity.ERROR]} error(s), {counts[Severity.WARNING]} warning(s), "
        f"{counts[Severity.INFO]} info on {len(probe.nodes)} node(s); failing on {fail_on}"
    )
    return "\n".join(lines) + "\n"


def _summary(findings: Sequence[Finding]) -> dict[str, int]:
    return {s.value: sum(1 for f in findings if f.severity is s) for s in Severity}


def _json(result: ClusterResult, fail_on: str) -> str:
    probe = result.probe
    doc: dict[str, Any] = {
        "schema": CLUSTER_FINDINGS_SCHEMA,
        "compat": __version__,
        "address": probe.address,
        "ray": probe.ray_version,
        "runtime_env": dict(probe.runtime_env),
        "fail_on": fail_on,
        "summary": _summary(result.all_findings()),
        "nodes": [
            dict(
                node_dict(r),
                subject=subject(r.env) if r.env is not None else None,
                summary=_summary(fs),
                findings=[f.to_dict() for f in fs],
            )
            for r, fs in result.per_node
        ],
        "cluster": [f.to_dict() for f in result.cluster],
    }
    return json.dumps(doc, indent=2) + "\n"


def _sarif(result: ClusterResult) -> str:
    from compat.format.sarif import Located, sarif

    where = f"ray:{result.probe.address}"
    flat = [
        Located(msgspec.structs.replace(f, message=f"node {r.node.label}: {f.message}"), where)
        for r, fs in result.per_node
        for f in fs
    ]
    flat.extend(Located(f, where) for f in result.cluster)
    return sarif(flat)


@redacted
def format_cluster_findings(result: ClusterResult, fmt: str, fail_on: str) -> str:
    if fmt == "text":
        return _text(result, fail_on)
    if fmt == "json":
        return _json(result, fail_on)
    if fmt == "sarif":
        return _sarif(result)
    raise AssertionError(fmt)  # pragma: no cover - click restricts the choices
