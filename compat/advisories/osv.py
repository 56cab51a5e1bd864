"""Advisories in the OSV format (https://ossf.github.io/osv-schema/), for other tools and dashboards.

Package ranges become PyPI `ECOSYSTEM` events; what OSV has no field for (GPU, driver, launch
settings, environment variables, model facts, workarounds) goes under `database_specific.compat`
in the shape docs/advisories.md documents. Ids carry OSV's prefix for a local database:
COMPAT-0003 is exported as x_COMPAT-0003.
"""

from __future__ import annotations

from typing import Any, Optional

from packaging.specifiers import Specifier

from compat.advisories.schema import Advisory, Affected, PackageRange

OSV_SCHEMA_VERSION = "1.7.0"
ID_PREFIX = "x_"
_REFERENCE_TYPES = {
    "report": "REPORT",
    "fix": "FIX",
    "discussion": "DISCUSSION",
    "docs": "WEB",
    "source": "WEB",
}


def _timestamp(day: str) -> str:
    return f"{day}T00:00:00Z"


def events(spec_text: str) -> tuple[list[dict[str, str]], list[str]]:
    """OSV events for a PEP 440 specifier set, and the clauses events cannot express (`!=`,
    `~=`, `===`: kept under database_specific)."""
    introduced: Optional[str] = None
    fixed: Optional[str] = None
    last: Optional[str] = None
    left: list[str] = []
    for raw in sorted(spec_text.split(",")):
        raw = raw.strip()
        if not raw:
            continue
        s = Specifier(raw)
        if s.operator == ">=":
            introduced = s.version
        elif s.operator == "<":
            fixed = s.version
        elif s.operator == "<=":
            last = s.version
        elif s.operator == "==" and "*" not in s.version:
            introduced = introduced or s.version
            last = s.version
        else:
            left.append(raw)
    out = [{"introduced": introduced or "0"}]
    if fixed is not None:
        out.append({"fixed": fixed})
    elif last is not None:
        out.append({"last_affected": last})
    return out, left


def _affected_packages(a: Affected) -> list[dict[str, Any]]:
    out = []
    ranges: list[PackageRange] = list(a.packages)
    for rng in ranges:
        evs, left = events(str(rng.specifier))
        for name in rng.names:
            entry: dict[str, Any] = {
                "package": {"ecosystem": "PyPI", "name": name},
                "ranges": [{"type": "ECOSYSTEM", "events": evs}],
            }
            if left:
                entry["database_specific"] = {"also_requires": left}
            out.append(entry)
    named = {n for r in ranges for n in r.names}
    if a.framework and a.framework not in named:
        # A condition on the server alone (a GPU, a flag): every release of the framework.
        out.append(
            {
                "package": {"ecosystem": "PyPI", "name": a.framework},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
            }
        )
    return out


def _conditions(adv: Advisory) -> dict[str, Any]:
    a = adv.affected
    d: dict[str, Any] = {
        "id": adv.id,
        "severity": adv.severity.value,
        "packages": {r.label: str(r.specifier) for r in a.packages},
    }
    if a.framework:
        d["framework"] = a.framework
    if a.gpu_cc:
        d["gpu_compute_capabilities"] = [f"{x}.{y}" for x, y in a.gpu_cc]
    if a.gpu_names:
        d["gpu_names"] = list(a.gpu_names)
    if a.memory_gib_max is not None:
        d["gpu_memory_gib_max"] = a.memory_gib_max
    if a.driver is not None:
        d["driver"] = str(a.driver)
    if a.ray is not None:
        d["ray"] = a.ray
    if a.findings:
        d["with_findings"] = list(a.findings)
    if a.launch:
        d["launch"] = [{"setting": c.setting, c.op: c.value} for c in a.launch]
    if a.env:
        d["env"] = [{"name": c.name, c.op: c.value} for c in a.env]
    if a.model is not None:
        m = a.model
        model: dict[str, Any] = {}
        if m.moe is not None:
            model["moe"] = m.moe
        if m.quantization:
            model["quantization"] = list(m.quantization)
        if m.architectures:
            model["architectures"] = list(m.architectures)
        if m.model_types:
            model["model_types"] = list(m.model_types)
        d["model"] = model
    d["workarounds"] = [
        {
            k: v
            for k, v in (
                ("description", w.description),
                ("flags", list(w.flags)),
                ("remove_flags", list(w.remove_flags)),
                ("env", dict(w.env)),
                ("versions", {n: str(s) for n, s in w.versions}),
                ("commands", list(w.commands)),
            )
            if v
        }
        for w in adv.workarounds
    ]
    for key in ("project", "reported", "confirmed", "source", "evidence"):
        value = getattr(adv, key)
        if value:
            d[key] = value.strip()
    if adv.fixed_in:
        d["fixed_in"] = dict(adv.fixed_in)
    return d


def to_osv(adv: Advisory) -> dict[str, Any]:
    """One advisory as an OSV record (a dict ready for json.dumps)."""
    doc: dict[str, Any] = {
        "schema_version": OSV_SCHEMA_VERSION,
        "id": ID_PREFIX + adv.id,
        "modified": _timestamp(adv.withdrawn or adv.published),
        "published": _timestamp(adv.published),
        "aliases": [ID_PREFIX + a for a in adv.aliases],
        "summary": adv.summary,
        "details": adv.details.strip(),
        "affected": _affected_packages(adv.affected),
        "references": [
            {"type": _REFERENCE_TYPES.get(r.type, "WEB"), "url": r.url} for r in adv.references
        ],
        "database_specific": {"compat": _conditions(adv)},
    }
    if adv.withdrawn:
        doc["withdrawn"] = _timestamp(adv.withdrawn)
    return doc
