"""Curated launch rules: defaults a release computes in code, with the source line followed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from msgspec import Struct, field
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from compat import resources
from compat.errors import DataError

if TYPE_CHECKING:
    from compat.matrix.schema import Problems

FORMULAS = frozenset({"tp-table", "gpu-tier-reserve", "gpu-memory-settings", "gpu-memory-tiers"})
_KEYS = frozenset(
    {
        "id",
        "framework",
        "setting",
        "versions",
        "when",
        "value",
        "formula",
        "where",
        "source",
        "note",
        "verified",
        "gpu_cc",
        "unknown",
    }
)
# A compute capability ("9.0") or a family ("10.*": 10.0, 10.3), as vLLM's
# is_device_capability / is_device_capability_family test them.
_CC_PATTERN = re.compile(r"[0-9]{1,2}\.(?:[0-9]|\*)")


class LaunchRule(Struct, frozen=True):
    """One computed default: for `framework` releases in `versions`, `setting` is `value`."""

    id: str
    framework: str
    setting: str
    versions: SpecifierSet
    where: str
    source: str
    value: Any = None
    formula: str = ""
    when: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""
    verified: bool = True
    # The GPUs the rule is for: every GPU the server sees must match one pattern ("9.0", "10.*").
    # Empty: any GPU.
    gpu_cc: tuple[str, ...] = ()
    # Set instead of `value` where the release decides from what compat does not model (the
    # model's routing method, say): why the value cannot be told.
    unknown: str = ""

    def holds_for(self, version: Version) -> bool:
        return self.versions.contains(version, prereleases=True)

    def fits_gpus(self, ccs: tuple[tuple[int, int], ...]) -> bool:
        """Whether every one of `ccs` (at least one) matches a pattern of `gpu_cc`."""
        return bool(ccs) and all(
            any(p == f"{major}.{minor}" or p == f"{major}.*" for p in self.gpu_cc)
            for major, minor in ccs
        )

    def describe(self) -> str:
        return f"rule {self.id} ({self.where})"


def read_rules(p: Problems, data: Mapping[str, Any], settings: tuple[str, ...]) -> list[LaunchRule]:
    """The rows of launch_rules.toml, every problem reported with its key path."""
    out: list[LaunchRule] = []
    rows = data.get("rule", [])
    if not isinstance(rows, list):
        p.add("rule", "expected an array of tables ([[rule]])")
        return out
    seen: set[str] = set()
    for i, row in enumerate(rows):
        path = f"rule[{i}]"
        if not isinstance(row, dict):
            p.add(path, "expected a table")
            continue
        for k in sorted(set(row) - _KEYS):
            p.add(f"{path}.{k}", "unknown key")
        rid = p.get(row, "id", str, path, "") or ""
        if rid in seen:
            p.add(f"{path}.id", f"duplicate id {rid!r}")
        seen.add(rid)
        fw = p.get(row, "framework", str, path, "") or ""
        if fw not in ("sglang", "vllm"):
            p.add(f"{path}.framework", f"expected sglang or vllm, got {fw!r}")
        setting = p.get(row, "setting", str, path, "") or ""
        if setting not in settings:
            p.add(f"{path}.setting", f"unknown launch setting {setting!r}")
        versions = p.convert(
            p.get(row, "versions", str, path, "") or "",
            SpecifierSet,
            f"{path}.versions",
            "specifier",
        )
        source = p.get(row, "source", str, path, "") or ""
        if not source.startswith("https://"):
            p.add(f"{path}.source", "expected an https URL")
        where = p.get(row, "where", str, path, "") or ""
        formula = p.get(row, "formula", str, path, "", required=False) or ""
        if formula and formula not in FORMULAS:
            p.add(
                f"{path}.formula",
                f"unknown formula {formula!r} (known: {', '.join(sorted(FORMULAS))})",
            )
        unknown = p.get(row, "unknown", str, path, "", required=False) or ""
        if [("value" in row), bool(formula), bool(unknown)].count(True) != 1:
            p.add(path, "exactly one of value, formula and unknown")
        gpu_cc = p.strings(row, "gpu_cc", path)
        for i, cc in enumerate(gpu_cc):
            if not _CC_PATTERN.fullmatch(cc):
                p.add(
                    f"{path}.gpu_cc[{i}]",
                    f"expected a compute capability such as 9.0 or 10.*, got {cc!r}",
                )
        when = p.get(row, "when", dict, path, {}, required=False) or {}
        for k in when:
            if k not in settings:
                p.add(f"{path}.when.{k}", f"unknown launch setting {k!r}")
        if versions is None:
            continue
        out.append(
            LaunchRule(
                id=rid,
                framework=fw,
                setting=setting,
                versions=versions,
                where=where,
                source=source,
                value=row.get("value"),
                formula=formula,
                when=dict(when),
                note=p.get(row, "note", str, path, "", required=False) or "",
                verified=bool(p.get(row, "verified", bool, path, True, required=False)),
                gpu_cc=gpu_cc,
                unknown=unknown,
            )
        )
    return out


_CACHE: dict[str, list[LaunchRule]] = {}


def launch_rules(root: Optional[Path] = None) -> list[LaunchRule]:
    """The curated rules (read once per process)."""
    path = (root or resources.curated_dir()) / "launch_rules.toml"
    key = str(path)
    if key not in _CACHE:
        if not path.is_file():
            _CACHE[key] = []
        else:
            from compat.launch.model import SETTINGS
            from compat.matrix.schema import Problems
            from compat.matrix.tomlfile import read_toml

            p = Problems(str(path))
            rows = read_rules(p, read_toml(path, cached=True), SETTINGS)
            if p.items:
                raise DataError(p.items, hint="run `compat matrix validate`")
            _CACHE[key] = rows
    return _CACHE[key]


def rules_for(framework: str, setting: str, version: Optional[Version]) -> list[LaunchRule]:
    """The rules for `setting` that hold for `version` (all of them when it is unknown)."""
    return [
        r
        for r in launch_rules()
        if r.framework == framework
        and r.setting == setting
        and (version is None or r.holds_for(version))
    ]


def applies(rule: LaunchRule, settings: Mapping[str, Any]) -> bool:
    return all(settings.get(k) == v for k, v in rule.when.items())
