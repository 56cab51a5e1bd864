"""Findings as SARIF 2.1.0 for code-scanning upload (one rule per finding code or advisory)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Optional

from msgspec import Struct

from compat import __version__
from compat.codes import title
from compat.models import Environment, Finding, Severity

_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


class Located(Struct, frozen=True):
    """A finding and where it points: a file (and line) or the environment it was found in."""

    finding: Finding
    uri: str
    line: Optional[int] = None


def sarif(results: Sequence[Located], tool: str = "compat") -> str:
    """The one SARIF 2.1.0 writer: a rule per finding code or advisory, a result per finding."""
    rules: dict[str, dict[str, Any]] = {}
    out = []
    for item in results:
        f = item.finding
        rule_id = f.advisory or f.code
        rule: dict[str, Any] = {
            "id": rule_id,
            "name": f.code,
            "shortDescription": {"text": f.message if f.advisory else title(f.code)},
            "defaultConfiguration": {"level": _LEVEL[f.severity]},
        }
        if f.references:
            rule["helpUri"] = f.references[0]
        rules.setdefault(rule_id, rule)
        text = f.message
        if f.fix:
            text += "\nFix: " + "; ".join(f.fix)
        location: dict[str, Any] = {"artifactLocation": {"uri": item.uri}}
        if item.line is not None:
            location["region"] = {"startLine": item.line}
        out.append(
            {
                "ruleId": rule_id,
                "level": _LEVEL[f.severity],
                "message": {"text": text},
                "locations": [{"physicalLocation": location}],
                "properties": {"evidence": list(f.evidence), "packages": list(f.packages)},
            }
        )
    doc = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": tool,
                        "version": __version__,
                        "informationUri": "https://pypi.org/project/compat/",
                        "rules": sorted(rules.values(), key=lambda r: str(r["id"])),
                    }
                },
                "results": out,
            }
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def format_findings(findings: Sequence[Finding], env: Environment) -> str:
    return sarif([Located(f, _uri(env)) for f in findings])


def _uri(env: Environment) -> str:
    return env.source if env.source not in ("live", "") else "environment"
