"""Findings as stable, versioned JSON (`compat.findings/1`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Optional

from compat import __version__
from compat.models import FINDINGS_SCHEMA, Environment, Finding, Severity


def format_findings(
    findings: Sequence[Finding],
    env: Environment,
    fail_on: str,
    data: Optional[dict[str, Any]] = None,
) -> str:
    doc: dict[str, Any] = {
        "schema": FINDINGS_SCHEMA,
        "compat": __version__,
        "source": env.source,
        "fail_on": fail_on,
        **({"data": data} if data is not None else {}),
        "summary": {s.value: sum(1 for f in findings if f.severity is s) for s in Severity},
        "findings": [f.to_dict() for f in findings],
    }
    return json.dumps(doc, indent=2) + "\n"
