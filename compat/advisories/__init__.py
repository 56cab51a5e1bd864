"""Known-crash advisories: records and schema, matching, and their text."""

from __future__ import annotations

from compat.advisories.explain import describe_affected, explain_advisory, find_advisory
from compat.advisories.match import Model, ModelView, match_advisories
from compat.advisories.schema import (
    Advisory,
    AdvisorySeverity,
    Affected,
    ModelClause,
    load_advisories,
    parse_advisory,
)

__all__ = [
    "Advisory",
    "AdvisorySeverity",
    "Affected",
    "Model",
    "ModelClause",
    "ModelView",
    "describe_affected",
    "explain_advisory",
    "find_advisory",
    "load_advisories",
    "match_advisories",
    "parse_advisory",
]
