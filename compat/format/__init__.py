"""Output formats of findings: each returns a string; the CLI writes it."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, Optional

from compat.models import Environment, Finding


class Format(enum.Enum):
    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"


def render(
    fmt: Format,
    findings: Sequence[Finding],
    env: Environment,
    fail_on: str,
    data: Optional[dict[str, Any]] = None,
) -> str:
    """The report in `fmt`, secrets scrubbed (whatever a finding quoted); `data` (the database
    in use: version, date, source) goes into JSON."""
    from compat.redact import redact_text

    if fmt is Format.TEXT:
        from compat.format.text import format_findings

        return redact_text(format_findings(findings, env, fail_on))
    if fmt is Format.JSON:
        from compat.format.json import format_findings as as_json

        return redact_text(as_json(findings, env, fail_on, data))
    if fmt is Format.SARIF:
        from compat.format.sarif import format_findings as as_sarif

        return redact_text(as_sarif(findings, env))
    raise AssertionError(fmt)  # pragma: no cover - exhaustive
