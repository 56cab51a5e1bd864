"""Advisory records and their TOML schema: parsed from dicts, every problem with its key path."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any, Optional

from msgspec import Struct
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from compat.errors import CompatError, DataError
from compat.families import families
from compat.launch import SETTINGS
from compat.matrix.schema import Problems
from compat.matrix.tomlfile import read_toml_folder
from compat.models import Code, Severity, canonicalize_name, parse_specifiers, parse_version


class AdvisorySeverity(enum.Enum):
    """What the advisory's failure does; each maps to a finding severity."""

    CRASH = "crash"
    HANG = "hang"
    WRONG_OUTPUT = "wrong-output"
    OOM = "oom"
    PERF = "perf"

    @property
    def finding_severity(self) -> Severity:
        return _FINDING_SEVERITY[self]


_FINDING_SEVERITY = {
    AdvisorySeverity.CRASH: Severity.ERROR,
    AdvisorySeverity.HANG: Severity.ERROR,
    AdvisorySeverity.WRONG_OUTPUT: Severity.WARNING,
    AdvisorySeverity.OOM: Severity.WARNING,
    AdvisorySeverity.PERF: Severity.INFO,
}

REFERENCE_TYPES = frozenset({"report", "fix", "discussion", "docs", "source"})
LAUNCH_OPS = ("equals", "in", "not_in", "present", "at_least", "at_most", "contains")
ENV_OPS = ("equals", "not_equals", "in", "present", "contains")
FRAMEWORKS = frozenset({*families().frameworks, ""})
# Trackers an advisory's primary report can come from (for counts and filtering).
PROJECTS = frozenset(
    {
        "vllm",
        "sglang",
        "flashinfer",
        "pytorch",
        "triton",
        "nccl",
        "ray",
        "deepep",
        "deepgemm",
        "nixl",
        "lmcache",
        "mooncake",
        "xformers",
        "flash-attn",
        "nvidia",
        "other",
        "compat",
    }
)
# What in the thread confirms the cause: a maintainer's word, a merged fix, a bisect, or
# independent reproductions that pin it.
CONFIRMATIONS = frozenset({"maintainer", "merged-fix", "bisect", "reproduced"})
_ID = re.compile(r"^COMPAT-[0-9]{4}$")
_CC = re.compile(r"^([0-9]{1,2})\.([0-9])$")
# A framework's own argparse dest (`enable_two_batch_overlap`): launch clauses may name one.
_DEST = re.compile(r"^[a-z][a-z0-9_]{0,80}$")


def op_text(op: str) -> str:
    return {
        "equals": "=",
        "not_equals": "!=",
        "in": "in",
        "not_in": "not in",
        "present": "present:",
        "at_least": ">=",
        "at_most": "<=",
        "contains": "contains",
    }.get(op, op)


def show_value(value: object, depth: int = 0) -> str:
    """A clause's value as a message shows it; lists nested past a few levels are elided (no
    clause holds one, and a message need not walk a hostile document's depth)."""
    if isinstance(value, list):
        if depth >= 8:
            return "[...]"
        return "[" + ", ".join(show_value(v, depth + 1) for v in value) + "]"
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, tuple, set)):
        return f"<{type(value).__name__}>"
    return str(value)


class Reference(Struct, frozen=True):
    type: str
    url: str


class PackageRange(Struct, frozen=True):
    """`names` are alternatives (the first installed one is checked): nvidia-nccl-cu12|-cu13."""

    names: tuple[str, ...]
    specifier: SpecifierSet

    @property
    def label(self) -> str:
        return "|".join(self.names)


class LaunchClause(Struct, frozen=True):
    setting: str
    op: str
    value: object

    def describe(self) -> str:
        return f"launch: {self.setting} {op_text(self.op)} {show_value(self.value)}"


class EnvClause(Struct, frozen=True):
    name: str
    op: str
    value: object

    def describe(self) -> str:
        return f"env: {self.name} {op_text(self.op)} {show_value(self.value)}"


class ModelClause(Struct, frozen=True):
    """Facts of the served model the failure needs; each part that is set must hold."""

    moe: Optional[bool] = None
    quantization: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ()
    model_types: tuple[str, ...] = ()

    def describe(self) -> list[str]:
        out = []
        if self.moe is not None:
            out.append("the model is " + ("MoE" if self.moe else "dense (not MoE)"))
        if self.quantization:
            kinds = [q for q in self.quantization if q != "none"]
            text = " or ".join(
                (["quantized with " + " or ".join(kinds)] if kinds else [])
                + (["not quantized"] if "none" in self.quantization else [])
            )
            out.append("the model is " + text)
        if self.architectures:
            out.append("the model architecture is " + " or ".join(self.architectures))
        if self.model_types:
            out.append("the model type is " + " or ".join(self.model_types))
        return out


class Affected(Struct, frozen=True):
    """A conjunction: every clause that is set must hold."""

    framework: str = ""
    packages: tuple[PackageRange, ...] = ()
    gpu_cc: tuple[tuple[int, int], ...] = ()
    gpu_names: tuple[str, ...] = ()
    driver: Optional[SpecifierSet] = None
    ray: Optional[bool] = None
    findings: tuple[str, ...] = ()
    memory_gib_max: Optional[float] = None
    launch: tuple[LaunchClause, ...] = ()
    env: tuple[EnvClause, ...] = ()
    model: Optional[ModelClause] = None


class Workaround(Struct, frozen=True):
    description: str
    flags: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    versions: tuple[tuple[str, SpecifierSet], ...] = ()
    commands: tuple[str, ...] = ()
    remove_flags: tuple[str, ...] = ()

    def concrete(self) -> str:
        parts: list[str] = []
        if self.flags:
            parts.append("add `" + " ".join(self.flags) + "` to the launch command")
        if self.remove_flags:
            parts.append("remove `" + " ".join(self.remove_flags) + "` from the launch command")
        if self.env:
            parts.append("set " + " ".join(f"{k}={v}" for k, v in self.env))
        if self.versions:
            parts.append("pip install " + " ".join(f"'{n}{s}'" for n, s in self.versions))
        parts.extend(f"run `{c}`" for c in self.commands)
        return "; ".join(parts)


class Advisory(Struct, frozen=True):
    id: str
    summary: str
    details: str
    severity: AdvisorySeverity
    published: str
    references: tuple[Reference, ...]
    affected: Affected
    workarounds: tuple[Workaround, ...] = ()
    withdrawn: str = ""
    fixed_in: tuple[tuple[str, str], ...] = ()
    evidence: str = ""
    aliases: tuple[str, ...] = ()
    # Where the advisory came from (a seed report, an issue thread), in words.
    source: str = ""
    file: str = ""
    # The tracker of the primary report, when it was filed, and what confirms the cause.
    project: str = ""
    reported: str = ""
    confirmed: str = ""

    @property
    def is_withdrawn(self) -> bool:
        return bool(self.withdrawn)


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------

_TOP_KEYS = frozenset(
    {
        "project",
        "reported",
        "confirmed",
        "id",
        "summary",
        "details",
        "severity",
        "published",
        "withdrawn",
        "fixed_in",
        "evidence",
        "references",
        "affected",
        "workarounds",
        "aliases",
        "source",
    }
)
_AFFECTED_KEYS = frozenset(
    {
        "framework",
        "packages",
        "gpu_cc",
        "gpu_names",
        "driver",
        "ray",
        "findings",
        "memory_gib_max",
        "launch",
        "env",
        "model",
    }
)
_MODEL_KEYS = frozenset({"moe", "quantization", "architectures", "model_types"})
_WORKAROUND_KEYS = frozenset(
    {"description", "flags", "env", "versions", "commands", "remove_flags"}
)
_CODES = frozenset(c.value for c in Code)


def _str(p: Problems, d: Mapping[str, Any], key: str, path: str, required: bool = True) -> str:
    v = d.get(key)
    if v is None:
        if required:
            p.add(f"{path}{key}", "missing (a string is required)")
        return ""
    if not isinstance(v, str):
        p.add(f"{path}{key}", f"expected a string, got {type(v).__name__}")
        return ""
    if required and not v.strip():
        p.add(f"{path}{key}", "must not be empty")
    return v


def _str_list(p: Problems, v: object, path: str) -> tuple[str, ...]:
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        p.add(path, "expected a list of strings")
        return ()
    return tuple(v)


def _date(p: Problems, text: str, path: str) -> None:
    if not text:
        return
    try:
        date.fromisoformat(text)
    except ValueError:
        p.add(path, f"expected a date YYYY-MM-DD, got {text!r}")


def _spec(p: Problems, text: object, path: str) -> Optional[SpecifierSet]:
    if not isinstance(text, str):
        p.add(path, "expected a PEP 440 specifier string such as '>=0.5.12'")
        return None
    try:
        return parse_specifiers(text, prereleases=True)
    except InvalidSpecifier:
        p.add(path, f"invalid PEP 440 specifier {text!r}")
        return None


def _unknown_keys(p: Problems, d: Mapping[str, Any], allowed: frozenset[str], path: str) -> None:
    for k in sorted(set(d) - allowed):
        p.add(f"{path}{k}", "unknown key")


def _clause_op(
    p: Problems, d: Mapping[str, Any], ops: tuple[str, ...], path: str
) -> tuple[str, object]:
    given = [op for op in ops if op in d]
    if len(given) != 1:
        p.add(
            path, f"exactly one of {', '.join(ops)} is required (got {', '.join(given) or 'none'})"
        )
        return "", None
    op = given[0]
    value = d[op]
    if op in ("in", "not_in") and not isinstance(value, list):
        p.add(f"{path}.{op}", "expected a list")
    if op == "present" and not isinstance(value, bool):
        p.add(f"{path}.{op}", "expected true or false")
    if op in ("at_least", "at_most") and (
        isinstance(value, bool) or not isinstance(value, (int, float))
    ):
        p.add(f"{path}.{op}", "expected a number")
    if op == "contains" and not isinstance(value, str):
        p.add(f"{path}.{op}", "expected a string")
    return op, value


def parse_advisory(data: Mapping[str, Any], source: str) -> tuple[Optional[Advisory], list[str]]:
    """Build an Advisory from a parsed TOML table; every problem is returned with its key path."""
    p = Problems(source)
    _unknown_keys(p, data, _TOP_KEYS, "")
    adv_id = _str(p, data, "id", "")
    if adv_id and not _ID.match(adv_id):
        p.add("id", f"expected COMPAT-NNNN, got {adv_id!r}")
    stem = Path(source).stem
    if adv_id and stem and stem != adv_id:
        p.add("id", f"{adv_id!r} does not match the file name {stem!r}")
    summary = _str(p, data, "summary", "")
    details = _str(p, data, "details", "")
    sev_text = _str(p, data, "severity", "")
    severity: Optional[AdvisorySeverity] = None
    if sev_text:
        try:
            severity = AdvisorySeverity(sev_text)
        except ValueError:
            p.add(
                "severity",
                f"expected one of {', '.join(s.value for s in AdvisorySeverity)}, got {sev_text!r}",
            )
    published = _str(p, data, "published", "")
    _date(p, published, "published")
    withdrawn = _str(p, data, "withdrawn", "", required=False)
    _date(p, withdrawn, "withdrawn")
    evidence = _str(p, data, "evidence", "")
    provenance = _str(p, data, "source", "")
    aliases = _str_list(p, data.get("aliases"), "aliases")
    project = _str(p, data, "project", "", required=False)
    if project and project not in PROJECTS:
        p.add("project", f"expected one of {', '.join(sorted(PROJECTS))}, got {project!r}")
    reported = _str(p, data, "reported", "", required=False)
    _date(p, reported, "reported")
    confirmed = _str(p, data, "confirmed", "", required=False)
    if confirmed and confirmed not in CONFIRMATIONS:
        p.add("confirmed", f"expected one of {', '.join(sorted(CONFIRMATIONS))}, got {confirmed!r}")
    if not withdrawn:
        # A live advisory says where its report is and what confirms the cause.
        if not project:
            p.add("project", "missing: the tracker of the primary report is required")
        if not confirmed:
            p.add(
                "confirmed",
                "missing: what confirms the cause (maintainer, merged-fix, bisect, reproduced)",
            )

    fixed: list[tuple[str, str]] = []
    fixed_raw = data.get("fixed_in", {})
    if not isinstance(fixed_raw, dict):
        p.add("fixed_in", "expected a table of package = version")
    else:
        for name, ver in sorted(fixed_raw.items()):
            if not isinstance(ver, str) or parse_version(ver) is None:
                p.add(f"fixed_in.{name}", f"expected a PEP 440 version, got {ver!r}")
            else:
                fixed.append((canonicalize_name(name), ver))

    refs: list[Reference] = []
    refs_raw = data.get("references")
    if not isinstance(refs_raw, list) or not refs_raw:
        p.add("references", "at least one [[references]] entry is required")
    else:
        for i, r in enumerate(refs_raw):
            path = f"references[{i}]."
            if not isinstance(r, dict):
                p.add(f"references[{i}]", "expected a table")
                continue
            _unknown_keys(p, r, frozenset({"type", "url"}), path)
            rtype = _str(p, r, "type", path)
            url = _str(p, r, "url", path)
            if rtype and rtype not in REFERENCE_TYPES:
                p.add(f"{path}type", f"expected one of {', '.join(sorted(REFERENCE_TYPES))}")
            if url and not url.startswith("https://"):
                p.add(f"{path}url", "expected an https:// URL")
            refs.append(Reference(rtype, url))

    affected = _parse_affected(p, data.get("affected"))

    works: list[Workaround] = []
    works_raw = data.get("workarounds", [])
    if not isinstance(works_raw, list):
        p.add("workarounds", "expected an array of tables")
        works_raw = []
    for i, w in enumerate(works_raw):
        path = f"workarounds[{i}]."
        if not isinstance(w, dict):
            p.add(f"workarounds[{i}]", "expected a table")
            continue
        _unknown_keys(p, w, _WORKAROUND_KEYS, path)
        desc = _str(p, w, "description", path)
        flags = _str_list(p, w.get("flags"), f"{path}flags")
        commands = _str_list(p, w.get("commands"), f"{path}commands")
        remove = _str_list(p, w.get("remove_flags"), f"{path}remove_flags")
        env_raw = w.get("env", {})
        env: list[tuple[str, str]] = []
        if not isinstance(env_raw, dict) or not all(isinstance(v, str) for v in env_raw.values()):
            p.add(f"{path}env", 'expected a table of NAME = "value"')
        else:
            env = sorted(env_raw.items())
        vers_raw = w.get("versions", {})
        vers: list[tuple[str, SpecifierSet]] = []
        if not isinstance(vers_raw, dict):
            p.add(f"{path}versions", "expected a table of package = specifier")
        else:
            for name, text in sorted(vers_raw.items()):
                spec = _spec(p, text, f"{path}versions.{name}")
                if spec is not None:
                    vers.append((canonicalize_name(name), spec))
        if not (flags or env or vers or commands or remove):
            p.add(
                f"workarounds[{i}]",
                "needs at least one of flags, remove_flags, env, versions, commands",
            )
        works.append(Workaround(desc, flags, tuple(env), tuple(vers), commands, remove))
    if not works_raw:
        p.add("workarounds", "at least one [[workarounds]] entry is required")

    if p.items or severity is None or affected is None:
        return None, p.items
    return Advisory(
        id=adv_id,
        summary=summary,
        details=details,
        severity=severity,
        published=published,
        references=tuple(refs),
        affected=affected,
        workarounds=tuple(works),
        withdrawn=withdrawn,
        fixed_in=tuple(fixed),
        evidence=evidence,
        aliases=aliases,
        source=provenance,
        file=source,
        project=project,
        reported=reported,
        confirmed=confirmed,
    ), []


def _parse_affected(p: Problems, raw: object) -> Optional[Affected]:
    if not isinstance(raw, dict):
        p.add("affected", "an [affected] table is required")
        return None
    _unknown_keys(p, raw, _AFFECTED_KEYS, "affected.")
    framework = _str(p, raw, "framework", "affected.", required=False)
    if framework not in FRAMEWORKS:
        p.add("affected.framework", 'expected sglang, vllm or ""')
    packages: list[PackageRange] = []
    pk = raw.get("packages", {})
    if not isinstance(pk, dict):
        p.add("affected.packages", "expected a table of package = specifier")
    else:
        for key, text in sorted(pk.items()):
            alts = tuple(
                str(canonicalize_name(n.strip())) for n in str(key).split("|") if n.strip()
            )
            spec = _spec(p, text, f"affected.packages.{key}")
            if not alts:
                p.add(f"affected.packages.{key}", "empty package name")
            elif spec is not None:
                packages.append(PackageRange(alts, spec))
    ccs: list[tuple[int, int]] = []
    for i, cc in enumerate(_str_list(p, raw.get("gpu_cc"), "affected.gpu_cc")):
        m = _CC.match(cc)
        if not m:
            p.add(f"affected.gpu_cc[{i}]", f'expected a compute capability like "9.0", got {cc!r}')
        else:
            ccs.append((int(m.group(1)), int(m.group(2))))
    names = _str_list(p, raw.get("gpu_names"), "affected.gpu_names")
    driver = None
    if "driver" in raw:
        driver = _spec(p, raw["driver"], "affected.driver")
    ray = raw.get("ray")
    if ray is not None and not isinstance(ray, bool):
        p.add("affected.ray", "expected true or false")
        ray = None
    findings = _str_list(p, raw.get("findings"), "affected.findings")
    for i, code in enumerate(findings):
        if code not in _CODES:
            p.add(f"affected.findings[{i}]", f"unknown finding code {code!r}")
    mem = raw.get("memory_gib_max")
    if mem is not None and (isinstance(mem, bool) or not isinstance(mem, (int, float))):
        p.add("affected.memory_gib_max", "expected a number")
        mem = None
    launch: list[LaunchClause] = []
    lraw = raw.get("launch", [])
    if not isinstance(lraw, list):
        p.add("affected.launch", "expected an array of tables ([[affected.launch]])")
        lraw = []
    for i, c in enumerate(lraw):
        path = f"affected.launch[{i}]"
        if not isinstance(c, dict):
            p.add(path, "expected a table")
            continue
        _unknown_keys(p, c, frozenset({"setting", *LAUNCH_OPS}), path + ".")
        setting = _str(p, c, "setting", path + ".")
        # Anything but a normalized setting must be the framework's own argparse dest.
        if (
            setting
            and setting not in SETTINGS
            and not (framework in FRAMEWORKS - {""} and _DEST.match(setting))
        ):
            p.add(
                f"{path}.setting",
                f"unknown launch setting {setting!r}: a normalized setting (docs/advisories.md) "
                "or, with `framework` set, that framework's argument dest",
            )
        op, value = _clause_op(p, c, LAUNCH_OPS, path)
        launch.append(LaunchClause(setting, op, value))
    envc: list[EnvClause] = []
    eraw = raw.get("env", [])
    if not isinstance(eraw, list):
        p.add("affected.env", "expected an array of tables ([[affected.env]])")
        eraw = []
    for i, c in enumerate(eraw):
        path = f"affected.env[{i}]"
        if not isinstance(c, dict):
            p.add(path, "expected a table")
            continue
        _unknown_keys(p, c, frozenset({"name", *ENV_OPS}), path + ".")
        name = _str(p, c, "name", path + ".")
        op, value = _clause_op(p, c, ENV_OPS, path)
        envc.append(EnvClause(name, op, value))
    affected = Affected(
        framework=framework,
        packages=tuple(packages),
        gpu_cc=tuple(ccs),
        gpu_names=names,
        driver=driver,
        ray=ray,
        findings=findings,
        memory_gib_max=float(mem) if mem is not None else None,
        launch=tuple(launch),
        env=tuple(envc),
        model=_parse_model(p, raw.get("model")),
    )
    if affected == Affected(framework=framework):
        p.add(
            "affected",
            "no testable condition: give package ranges, GPUs, a driver range, launch settings, "
            "env, model facts or prior findings (the framework alone is every server)",
        )
    return affected


def _parse_model(p: Problems, raw: object) -> Optional[ModelClause]:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        p.add("affected.model", "expected a table ([affected.model])")
        return None
    _unknown_keys(p, raw, _MODEL_KEYS, "affected.model.")
    moe = raw.get("moe")
    if moe is not None and not isinstance(moe, bool):
        p.add("affected.model.moe", "expected true or false")
        moe = None
    quant = tuple(
        q.lower() for q in _str_list(p, raw.get("quantization"), "affected.model.quantization")
    )
    archs = _str_list(p, raw.get("architectures"), "affected.model.architectures")
    types = _str_list(p, raw.get("model_types"), "affected.model.model_types")
    clause = ModelClause(moe, quant, archs, types)
    if clause == ModelClause():
        p.add(
            "affected.model",
            "an empty [affected.model] table: give moe, quantization, architectures or model_types",
        )
        return None
    return clause


def load_advisories(directory: Path, check_duplicates: bool = False) -> tuple[Advisory, ...]:
    """Every `*.toml` under `directory`, validated; raises DataError listing all problems.
    `check_duplicates` also refuses two advisories that say the same thing (validation does;
    a check need not pay for it on every run)."""
    problems: list[str] = []
    out: list[Advisory] = []
    seen: dict[str, str] = {}
    if not directory.is_dir():
        raise DataError(
            [f"{directory}: advisories folder not found"],
            hint="set COMPAT_MATRICES or reinstall compat",
        )
    for path, data in read_toml_folder(sorted(directory.glob("*.toml"))):
        if isinstance(data, DataError):
            problems.extend(
                f"{path.name}: invalid TOML ({p.split(': ', 2)[-1]})" for p in data.problems
            )
            continue
        if isinstance(data, CompatError):
            problems.append(f"{path.name}: cannot read ({data.message})")
            continue
        adv, errs = parse_advisory(data, path.name)
        problems.extend(errs)
        if adv is None:
            continue
        if adv.id in seen:
            problems.append(f"{path.name}: id: {adv.id} is also used by {seen[adv.id]}")
            continue
        seen[adv.id] = path.name
        out.append(adv)
    if check_duplicates:
        problems.extend(same_thing(out))
    if problems:
        raise DataError(
            problems,
            hint="fix the advisory files named above; `compat matrix validate` re-checks them",
        )
    return tuple(sorted(out, key=lambda a: a.id))


def same_thing(advisories: list[Advisory]) -> list[str]:
    """Two live advisories that say the same thing: the same primary report, or the same
    conditions. One root cause is one advisory; more reports of it are more references."""
    out: list[str] = []
    by_report: dict[str, str] = {}
    by_conditions: dict[str, str] = {}
    for adv in sorted(advisories, key=lambda a: a.id):
        if adv.is_withdrawn:
            continue
        primary = adv.references[0].url.rstrip("/")
        if primary in by_report:
            out.append(
                f"{adv.file}: references[0]: {adv.id} has the same primary report as "
                f"{by_report[primary]} ({primary}): one root cause, one advisory"
            )
        by_report.setdefault(primary, adv.id)
        key = repr(adv.affected)
        if key in by_conditions:
            out.append(
                f"{adv.file}: affected: {adv.id} has the same conditions as {by_conditions[key]}"
            )
        by_conditions.setdefault(key, adv.id)
    return out
