"""Known-crash advisories: loaded and validated from TOML, matched against an environment."""

from __future__ import annotations

import enum
import functools
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Optional, Union

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from compat.errors import DataError, InputError, UsageError
from compat.launch import RAY_MARKERS, SETTINGS, LaunchConfig, settings_for
from compat.matrix.load import read_toml
from compat.matrix.schema import Problems
from compat.models import (
    GPU,
    Code,
    Environment,
    Finding,
    Severity,
    Unknown,
    canonicalize_name,
    parse_version,
)


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
FRAMEWORKS = frozenset({"sglang", "vllm", ""})
_ID = re.compile(r"^COMPAT-\d{4}$")
_CC = re.compile(r"^(\d{1,2})\.(\d)$")


@dataclass(frozen=True)
class Reference:
    type: str
    url: str


@dataclass(frozen=True)
class PackageRange:
    """`names` are alternatives (the first installed one is checked): nvidia-nccl-cu12|-cu13."""

    names: tuple[str, ...]
    specifier: SpecifierSet

    @property
    def label(self) -> str:
        return "|".join(self.names)


@dataclass(frozen=True)
class LaunchClause:
    setting: str
    op: str
    value: object

    def describe(self) -> str:
        return f"launch: {self.setting} {_op_text(self.op)} {_show(self.value)}"


@dataclass(frozen=True)
class EnvClause:
    name: str
    op: str
    value: object

    def describe(self) -> str:
        return f"env: {self.name} {_op_text(self.op)} {_show(self.value)}"


@dataclass(frozen=True)
class Affected:
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


@dataclass(frozen=True)
class Workaround:
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


@dataclass(frozen=True)
class Advisory:
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

    @property
    def is_withdrawn(self) -> bool:
        return bool(self.withdrawn)


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------

_TOP_KEYS = frozenset(
    {
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
    }
)
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
        return SpecifierSet(text, prereleases=True)
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
        if setting and setting not in SETTINGS:
            p.add(
                f"{path}.setting",
                f"unknown launch setting {setting!r} (see compat/launch.py SETTINGS)",
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
    return Affected(
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
    )


def load_advisories(directory: Path) -> tuple[Advisory, ...]:
    """Every `*.toml` under `directory`, validated; raises DataError listing all problems."""
    problems: list[str] = []
    out: list[Advisory] = []
    seen: dict[str, str] = {}
    if not directory.is_dir():
        raise DataError(
            [f"{directory}: advisories folder not found"],
            hint="set COMPAT_MATRICES or reinstall compat",
        )
    for path in sorted(directory.glob("*.toml")):
        try:
            data = read_toml(path, cached=True)
        except DataError as exc:
            problems.extend(
                f"{path.name}: invalid TOML ({p.split(': ', 2)[-1]})" for p in exc.problems
            )
            continue
        except InputError as exc:
            problems.append(f"{path.name}: cannot read ({exc.message})")
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
    if problems:
        raise DataError(
            problems,
            hint="fix the advisory files named above; `compat matrix validate` re-checks them",
        )
    return tuple(sorted(out, key=lambda a: a.id))


# --------------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------------

_MATCH, _MISS, _UNKNOWN = "match", "miss", "unknown"


@dataclass(frozen=True)
class _Outcome:
    state: str
    text: str
    hint: str = ""


class _Facts:
    """Everything the clauses read, computed once per match_advisories call."""

    def __init__(
        self, env: Environment, launch: Optional[LaunchConfig], prior: Sequence[Finding]
    ) -> None:
        self.env = env
        self.launch = launch
        self.versions: dict[str, tuple[str, Optional[Version]]] = {}
        for d in env.distributions:
            if d.broken is None and d.key not in self.versions:
                self.versions[d.key] = (d.name, d.version)
        merged = dict(env.env)
        if launch is not None:
            merged.update(launch.env)
        self.environ = merged
        self.prior: dict[str, Finding] = {}
        for f in prior:
            self.prior.setdefault(f.code, f)
        gpus = env.gpus
        self.gpus: Union[tuple[GPU, ...], Unknown] = gpus
        if not isinstance(gpus, Unknown) and not gpus:
            self.gpus = Unknown("no GPU visible to compat; give --gpu NAME")


def _op_text(op: str) -> str:
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


def _show(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, str):
        return value
    return str(value)


def _norm(value: object) -> object:
    if isinstance(value, str):
        return value.lower()
    return value


def _same(a: object, b: object) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return _norm(a) == _norm(b)


def _test(op: str, actual: object, expected: object) -> bool:
    if op == "equals":
        return _same(actual, expected)
    if op == "not_equals":
        return not _same(actual, expected)
    if op == "in":
        return isinstance(expected, list) and any(_same(actual, e) for e in expected)
    if op == "not_in":
        return isinstance(expected, list) and not any(_same(actual, e) for e in expected)
    if op == "present":
        return (actual is not None and actual is not False) is expected
    if op in ("at_least", "at_most"):
        if isinstance(actual, bool) or not isinstance(actual, (int, float)):
            return False
        if not isinstance(expected, (int, float)):
            return False
        return actual >= expected if op == "at_least" else actual <= expected
    if op == "contains":
        return (
            isinstance(actual, str)
            and isinstance(expected, str)
            and expected.lower() in actual.lower()
        )
    return False


def _check_framework(fw: str, facts: _Facts) -> _Outcome:
    launch = facts.launch
    if launch is not None and launch.framework != "unknown":
        if launch.framework == fw:
            return _Outcome(_MATCH, f"launch command runs {fw}")
        return _Outcome(_MISS, f"launch command runs {launch.framework}")
    if fw in facts.versions:
        name, ver = facts.versions[fw]
        return _Outcome(_MATCH, f"{name} {ver} installed")
    return _Outcome(_MISS, f"{fw} not installed")


def _check_package(rng: PackageRange, facts: _Facts) -> _Outcome:
    for n in rng.names:
        if n in facts.versions:
            name, ver = facts.versions[n]
            if ver is None:
                return _Outcome(
                    _UNKNOWN,
                    f"{name} version is not PEP 440",
                    "reinstall the package so its version can be read",
                )
            if rng.specifier.contains(ver, prereleases=True):
                return _Outcome(_MATCH, f"{name} {ver} in {rng.specifier}")
            return _Outcome(_MISS, f"{name} {ver} not in {rng.specifier}")
    return _Outcome(_MISS, f"{rng.label} not installed")


def _gpu_label(g: GPU) -> str:
    return f"GPU {g.index} {g.name}"


def _check_gpu_cc(ccs: tuple[tuple[int, int], ...], facts: _Facts) -> _Outcome:
    gpus = facts.gpus
    if isinstance(gpus, Unknown):
        return _Outcome(_UNKNOWN, f"GPU: {gpus}", "give the GPU with --gpu NAME")
    unknown = []
    for g in gpus:
        if g.compute_capability is None:
            unknown.append(g)
        elif g.compute_capability in ccs:
            return _Outcome(_MATCH, f"{_gpu_label(g)} is {g.sm}")
    if unknown:
        return _Outcome(
            _UNKNOWN,
            f"compute capability of {_gpu_label(unknown[0])} unknown",
            "give the GPU with --gpu NAME",
        )
    wanted = ", ".join(f"sm_{a}{b}" for a, b in ccs)
    return _Outcome(_MISS, f"no GPU is {wanted}")


def _check_gpu_names(names: tuple[str, ...], facts: _Facts) -> _Outcome:
    gpus = facts.gpus
    if isinstance(gpus, Unknown):
        return _Outcome(_UNKNOWN, f"GPU: {gpus}", "give the GPU with --gpu NAME")
    for g in gpus:
        for n in names:
            if n.lower() in g.name.lower():
                return _Outcome(_MATCH, f"{_gpu_label(g)} matches {n!r}")
    return _Outcome(_MISS, "no GPU name matches " + ", ".join(names))


def _check_memory(limit: float, facts: _Facts) -> _Outcome:
    gpus = facts.gpus
    if isinstance(gpus, Unknown):
        return _Outcome(_UNKNOWN, f"GPU: {gpus}", "give the GPU with --gpu NAME")
    unknown = None
    for g in gpus:
        if g.memory_total_mib is None:
            unknown = g
            continue
        gib = g.memory_total_mib / 1024
        if gib <= limit:
            return _Outcome(_MATCH, f"{_gpu_label(g)} has {gib:.2f} GiB (<= {limit:g} GiB)")
    if unknown is not None:
        return _Outcome(
            _UNKNOWN, f"memory of {_gpu_label(unknown)} unknown", "give the GPU with --gpu NAME"
        )
    return _Outcome(_MISS, f"every GPU has more than {limit:g} GiB")


def _check_driver(spec: SpecifierSet, facts: _Facts) -> _Outcome:
    drv = facts.env.driver
    if isinstance(drv, Unknown):
        return _Outcome(_UNKNOWN, f"driver: {drv}", "give the driver with --driver VERSION")
    if isinstance(drv.version, Unknown):
        return _Outcome(
            _UNKNOWN, f"driver version: {drv.version}", "give the driver with --driver VERSION"
        )
    ver = parse_version(drv.version)
    if ver is None:
        return _Outcome(_UNKNOWN, f"driver version {drv.version!r} not understood")
    if spec.contains(ver, prereleases=True):
        return _Outcome(_MATCH, f"driver {drv.version} in {spec}")
    return _Outcome(_MISS, f"driver {drv.version} not in {spec}")


def _check_ray(want: bool, facts: _Facts) -> _Outcome:
    launch = facts.launch
    markers = sorted(k for k in facts.environ if k in RAY_MARKERS)
    if launch is not None and launch.settings.get("under_ray") is True and not markers:
        state = _MATCH if want else _MISS
        return _Outcome(state, "launched through `ray job submit`")
    if markers:
        state = _MATCH if want else _MISS
        return _Outcome(state, f"under Ray ({', '.join(markers)} set)")
    if launch is None and not facts.environ:
        return _Outcome(
            _UNKNOWN,
            "cannot tell whether the server runs under Ray",
            "give the launch file, or the env of the Ray actor (--env RAY_ADDRESS=...)",
        )
    state = _MISS if want else _MATCH
    return _Outcome(state, "not under Ray (no " + "/".join(sorted(RAY_MARKERS)) + " set)")


def _check_findings(codes: tuple[str, ...], facts: _Facts) -> _Outcome:
    for c in codes:
        f = facts.prior.get(c)
        if f is not None:
            return _Outcome(_MATCH, f"finding {c}: {f.message}")
    return _Outcome(_MISS, "none of the findings " + ", ".join(codes))


def _check_launch(clause: LaunchClause, facts: _Facts) -> _Outcome:
    launch = facts.launch
    if launch is None:
        return _Outcome(
            _UNKNOWN,
            f"{clause.describe()}: no launch command given",
            "pass the server command after `--` (or a launch file)",
        )
    if launch.framework == "unknown":
        return _Outcome(_UNKNOWN, f"{clause.describe()}: the launch command is not sglang or vLLM")
    actual = launch.settings.get(clause.setting)
    if isinstance(actual, Unknown):
        return _Outcome(
            _UNKNOWN,
            f"launch: {clause.setting} {actual}",
            "give the framework version (install it here, or check a snapshot)",
        )
    shown = "unset" if actual is None else _show(actual)
    seen = f"launch: {clause.setting}={shown} ({launch.origin(clause.setting)})"
    if _test(clause.op, actual, clause.value):
        return _Outcome(_MATCH, seen)
    return _Outcome(_MISS, seen)


def _check_env(clause: EnvClause, facts: _Facts) -> _Outcome:
    value = facts.environ.get(clause.name)
    seen = f"env: {clause.name}={value}" if value is not None else f"env: {clause.name} not set"
    ok = _test(clause.op, value, clause.value)
    return _Outcome(_MATCH if ok else _MISS, seen)


@functools.lru_cache(maxsize=512)
def _workaround_settings(
    framework: str, flags: tuple[str, ...]
) -> Optional[tuple[tuple[str, object], ...]]:
    """The settings a workaround's flags set explicitly, as the framework's parser sees them."""
    import shlex

    tokens: list[str] = []
    for f in flags:
        tokens.extend(shlex.split(f))
    try:
        parsed = settings_for(framework, tokens)
    except UsageError:
        return None
    if parsed.unknown_flags or not parsed.explicit:
        return None
    return tuple(sorted((k, parsed.settings[k]) for k in parsed.explicit))


def _workaround_applied(w: Workaround, facts: _Facts) -> bool:
    if not (w.flags or w.env):
        return False
    launch = facts.launch
    if w.flags:
        if launch is None or launch.framework not in ("sglang", "vllm"):
            return False
        wanted = _workaround_settings(launch.framework, w.flags)
        if wanted is None:
            return False
        for k, v in wanted:
            if k not in launch.explicit or not _same(launch.settings.get(k), v):
                return False
    return all(facts.environ.get(k) == v for k, v in w.env)


def _evaluate(adv: Advisory, facts: _Facts) -> list[_Outcome]:
    a = adv.affected
    out: list[_Outcome] = []
    if a.framework:
        out.append(_check_framework(a.framework, facts))
    out.extend(_check_package(r, facts) for r in a.packages)
    if a.gpu_cc:
        out.append(_check_gpu_cc(a.gpu_cc, facts))
    if a.gpu_names:
        out.append(_check_gpu_names(a.gpu_names, facts))
    if a.memory_gib_max is not None:
        out.append(_check_memory(a.memory_gib_max, facts))
    if a.driver is not None:
        out.append(_check_driver(a.driver, facts))
    if a.ray is not None:
        out.append(_check_ray(a.ray, facts))
    if a.findings:
        out.append(_check_findings(a.findings, facts))
    out.extend(_check_launch(c, facts) for c in a.launch)
    out.extend(_check_env(c, facts) for c in a.env)
    return out


def _fix_lines(adv: Advisory) -> tuple[str, ...]:
    return tuple(f"{w.description}: {w.concrete()}" for w in adv.workarounds)


def match_advisories(
    env: Environment,
    launch: Optional[LaunchConfig],
    advisories: Sequence[Advisory],
    prior: Sequence[Finding] = (),
) -> list[Finding]:
    """Findings for the advisories that apply (pure; no I/O).

    Every clause must match. A clause that needs a fact compat does not have (no GPU info, no
    launch command) keeps the advisory from firing; when every other clause matched it gives an
    INFO "could not tell" finding instead. An advisory whose workaround is already in the
    command or env, or that is withdrawn, never fires.
    """
    facts = _Facts(env, launch, prior)
    findings: list[Finding] = []
    for adv in advisories:
        if adv.is_withdrawn:
            continue
        outcomes = _evaluate(adv, facts)
        if any(o.state == _MISS for o in outcomes):
            continue
        if any(_workaround_applied(w, facts) for w in adv.workarounds):
            continue
        refs = tuple(r.url for r in adv.references)
        pkgs = tuple(r.label for r in adv.affected.packages)
        unknown = [o for o in outcomes if o.state == _UNKNOWN]
        if unknown:
            hints = tuple(dict.fromkeys(o.hint for o in unknown if o.hint))
            findings.append(
                Finding(
                    code=Code.KNOWN_CRASH.value,
                    severity=Severity.INFO,
                    message=f"may apply, but compat could not tell: {adv.summary}",
                    evidence=tuple(o.text for o in outcomes if o.state == _MATCH)
                    + tuple(f"could not tell: {o.text}" for o in unknown),
                    fix=hints + _fix_lines(adv),
                    references=refs,
                    packages=pkgs,
                    advisory=adv.id,
                )
            )
            continue
        findings.append(
            Finding(
                code=Code.KNOWN_CRASH.value,
                severity=adv.severity.finding_severity,
                message=adv.summary,
                evidence=tuple(o.text for o in outcomes),
                fix=_fix_lines(adv),
                references=refs,
                packages=pkgs,
                advisory=adv.id,
            )
        )
    findings.sort(key=lambda f: (-f.severity.rank, f.advisory or ""))
    return findings


# --------------------------------------------------------------------------------------------
# Explaining
# --------------------------------------------------------------------------------------------


def describe_affected(a: Affected) -> list[str]:
    lines: list[str] = []
    if a.framework:
        lines.append(f"the server is {a.framework}")
    lines.extend(f"{r.label} {r.specifier}" for r in a.packages)
    if a.gpu_cc:
        lines.append(
            "a GPU with compute capability " + " or ".join(f"{x}.{y}" for x, y in a.gpu_cc)
        )
    if a.gpu_names:
        lines.append("a GPU whose name contains " + " or ".join(repr(n) for n in a.gpu_names))
    if a.memory_gib_max is not None:
        lines.append(f"a GPU with at most {a.memory_gib_max:g} GiB")
    if a.driver is not None:
        lines.append(f"NVIDIA driver {a.driver}")
    if a.ray is not None:
        lines.append("launched under Ray" if a.ray else "not launched under Ray")
    if a.findings:
        lines.append("compat also found: " + " or ".join(a.findings))
    lines.extend(c.describe() for c in a.launch)
    lines.extend(c.describe() for c in a.env)
    return lines


def explain_advisory(adv: Advisory) -> str:
    """Text for `compat explain ID`."""
    out = [f"{adv.id}  [{adv.severity.value}]  {adv.summary}"]
    meta = [f"published {adv.published}"]
    if adv.withdrawn:
        meta.append(f"WITHDRAWN {adv.withdrawn}")
    if adv.fixed_in:
        meta.append("fixed in " + ", ".join(f"{n} {v}" for n, v in adv.fixed_in))
    if adv.aliases:
        meta.append("also known as " + ", ".join(adv.aliases))
    out.append("; ".join(meta))
    out.append(f"source: {adv.source}")
    for par in adv.details.strip().split("\n\n"):
        out.append("")
        out.append(textwrap.fill(" ".join(par.split()), width=96))
    if adv.evidence:
        out.append("")
        out.append("From the report:")
        out.extend(
            textwrap.wrap(
                adv.evidence.strip(), width=92, initial_indent="  > ", subsequent_indent="    "
            )
        )
    out.append("")
    out.append("Applies when all of these hold:")
    out.extend(f"  - {line}" for line in describe_affected(adv.affected))
    out.append("")
    out.append("Workarounds:")
    for w in adv.workarounds:
        out.append(f"  - {w.description}")
        out.append(f"      {w.concrete()}")
    out.append("")
    out.append("References:")
    out.extend(f"  - {r.type}: {r.url}" for r in adv.references)
    return "\n".join(out) + "\n"


def find_advisory(advisories: Sequence[Advisory], ident: str) -> Optional[Advisory]:
    key = ident.strip().upper()
    for adv in advisories:
        if adv.id == key or key in (a.upper() for a in adv.aliases):
            return adv
    return None
