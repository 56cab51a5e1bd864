"""Output formats of findings: each returns a string; the CLI writes it."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, Optional

from compat.models import Environment, Finding
from compat.redact import redacted


class Format(enum.Enum):
    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"


@redacted
def render(
    fmt: Format,
    findings: Sequence[Finding],
    env: Environment,
    fail_on: str,
    data: Optional[dict[str, Any]] = None,
) -> str:
    """The report in `fmt`, secrets scrubbed (whatever a finding quoted); `data` (the database
    in use: version, date, source) goes into JSON."""
    if fmt is Format.TEXT:
        from compat.format.text import format_findings

        return format_findings(findings, env, fail_on)
    if fmt is Format.JSON:
        from compat.format.json import format_findings as as_json

        return as_json(findings, env, fail_on, data)
    if fmt is Format.SARIF:
        from compat.format.sarif import format_findings as as_sarif

        return as_sarif(findings, env)
    raise AssertionError(fmt)  # pragma: no cover - exhaustive
