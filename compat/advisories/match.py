"""Matching advisories against an environment, a launch and the model: pure, no I/O."""

from __future__ import annotations

import functools
import shlex
from collections.abc import Mapping, Sequence
from typing import Optional, Protocol, Union

from msgspec import Struct
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from compat.advisories.schema import (
    Advisory,
    EnvClause,
    LaunchClause,
    ModelClause,
    PackageRange,
    Workaround,
    show_value,
)
from compat.errors import UsageError
from compat.families import families
from compat.launch import RAY_MARKERS, LaunchConfig
from compat.models import GPU, Code, Environment, Finding, Severity, Unknown, parse_version


class ModelView(Protocol):
    """What the matcher reads of the served model (compat.model.ModelFacts provides it)."""

    @property
    def source(self) -> str: ...
    @property
    def guess(self) -> bool: ...
    @property
    def moe(self) -> Optional[bool]: ...
    @property
    def quantization(self) -> Optional[str]: ...
    @property
    def quant_format(self) -> Optional[str]: ...
    @property
    def architectures(self) -> tuple[str, ...]: ...
    @property
    def model_type(self) -> Optional[str]: ...


Model = Union[ModelView, Unknown, None]


_MATCH, _MISS, _UNKNOWN = "match", "miss", "unknown"


class _Outcome(Struct, frozen=True):
    state: str
    text: str
    hint: str = ""
    fact: str = ""  # for an unknown: the host fact it lacked (gpu, driver, launch, model, ...)


class _Facts:
    """Everything the clauses read, computed once per match_advisories call."""

    def __init__(
        self,
        env: Environment,
        launch: Optional[LaunchConfig],
        prior: Sequence[Finding],
        model: Model = None,
        implied: Optional[Mapping[str, tuple[str, Version, str]]] = None,
    ) -> None:
        self.env = env
        self.launch = launch
        self.model = model
        # Versions not installed as distributions but fixed by another's pin (the NCCL, cuDNN,
        # cuBLAS wheels torch pins, for a freeze file that does not list them).
        self.implied = dict(implied or {})
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
    for n in rng.names:
        if n in facts.implied:
            name, ver, why = facts.implied[n]
            inside = rng.specifier.contains(ver, prereleases=True)
            seen = f"{name} {ver} ({why}) {'in' if inside else 'not in'} {rng.specifier}"
            return _Outcome(_MATCH if inside else _MISS, seen)
    return _Outcome(_MISS, f"{rng.label} not installed")


def _gpu_label(g: GPU) -> str:
    return f"GPU {g.index} {g.name}"


def _check_gpu_cc(ccs: tuple[tuple[int, int], ...], facts: _Facts) -> _Outcome:
    gpus = facts.gpus
    if isinstance(gpus, Unknown):
        return _Outcome(_UNKNOWN, f"GPU: {gpus}", "give the GPU with --gpu NAME", "gpu")
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
            "gpu",
        )
    wanted = ", ".join(f"sm_{a}{b}" for a, b in ccs)
    return _Outcome(_MISS, f"no GPU is {wanted}")


def _check_gpu_names(names: tuple[str, ...], facts: _Facts) -> _Outcome:
    gpus = facts.gpus
    if isinstance(gpus, Unknown):
        return _Outcome(_UNKNOWN, f"GPU: {gpus}", "give the GPU with --gpu NAME", "gpu")
    for g in gpus:
        for n in names:
            if n.lower() in g.name.lower():
                return _Outcome(_MATCH, f"{_gpu_label(g)} matches {n!r}")
    return _Outcome(_MISS, "no GPU name matches " + ", ".join(names))


def _check_memory(limit: float, facts: _Facts) -> _Outcome:
    gpus = facts.gpus
    if isinstance(gpus, Unknown):
        return _Outcome(_UNKNOWN, f"GPU: {gpus}", "give the GPU with --gpu NAME", "gpu")
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
            _UNKNOWN,
            f"memory of {_gpu_label(unknown)} unknown",
            "give the GPU with --gpu NAME, with its size for a GPU made in several "
            "(--gpu 'a100 80gb')",
            "gpu",
        )
    return _Outcome(_MISS, f"every GPU has more than {limit:g} GiB")


def _check_driver(spec: SpecifierSet, facts: _Facts) -> _Outcome:
    drv = facts.env.driver
    if isinstance(drv, Unknown):
        return _Outcome(
            _UNKNOWN, f"driver: {drv}", "give the driver with --driver VERSION", "driver"
        )
    if isinstance(drv.version, Unknown):
        return _Outcome(
            _UNKNOWN,
            f"driver version: {drv.version}",
            "give the driver with --driver VERSION",
            "driver",
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
            "launch",
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
            "launch",
        )
    if launch.framework == "unknown":
        return _Outcome(_UNKNOWN, f"{clause.describe()}: the launch command is not sglang or vLLM")
    # A normalized setting, else the framework's own argparse dest with the release's default
    # (Unknown when the release's launch data does not describe it).
    actual = launch.get(clause.setting)
    if isinstance(actual, Unknown):
        return _Outcome(
            _UNKNOWN,
            f"launch: {clause.setting} {actual}",
            "give the framework version (install it here, or check a snapshot)",
        )
    shown = "unset" if actual is None else show_value(actual)
    seen = f"launch: {clause.setting}={shown} ({launch.origin(clause.setting)})"
    if _test(clause.op, actual, clause.value):
        return _Outcome(_MATCH, seen)
    return _Outcome(_MISS, seen)


def _check_model(clause: ModelClause, facts: _Facts) -> list[_Outcome]:
    """One outcome per part of the clause; a guessed fact can make a part only unknown."""
    model = facts.model
    hint = (
        "compat reads config.json of the --model / --model-path given in the launch command "
        "(a local folder or the Hugging Face cache)"
    )
    if model is None or isinstance(model, Unknown):
        why = "no launch command" if model is None and facts.launch is None else str(model or "")
        text = f"model facts: {why or 'the served model is not known'}"
        return [
            _Outcome(_UNKNOWN, f"{part} ({text})", hint, "launch" if model is None else "model")
            for part in clause.describe()
        ]
    out: list[_Outcome] = []
    label = f"{model.source}{' (a guess from the name)' if model.guess else ''}"

    def judge(part: str, ok: Optional[bool], seen: str) -> None:
        if ok is None:
            out.append(_Outcome(_UNKNOWN, f"{part}: {seen}", hint, "model"))
        elif model.guess:
            out.append(_Outcome(_UNKNOWN, f"{part}: {seen}, from {label}", hint, "model"))
        else:
            out.append(_Outcome(_MATCH if ok else _MISS, f"model: {seen} ({label})"))

    if clause.moe is not None:
        moe = model.moe
        seen = "MoE or dense not told" if moe is None else ("MoE" if moe else "dense")
        judge(
            "the model is MoE" if clause.moe else "the model is dense",
            None if moe is None else moe is clause.moe,
            seen,
        )
    if clause.quantization:
        # The method (fp8, awq, modelopt, compressed-tensors) or, for methods that carry several,
        # the format of the weights (nvfp4, mxfp4, int4); an explicit --quantization counts.
        launch_q = facts.launch.settings.get("quantization") if facts.launch else None
        quant = launch_q if isinstance(launch_q, str) and launch_q else model.quantization
        names = {str(quant).lower()} if quant else set()
        if model.quant_format and not (isinstance(launch_q, str) and launch_q):
            names.add(model.quant_format.lower())
        shown = "/".join(sorted(names))
        seen = f"quantization {shown}" if names else "not quantized"
        # "none" in the clause stands for an unquantized model (no quant_method, no --quantization).
        q_ok = bool(names & set(clause.quantization)) if names else "none" in clause.quantization
        judge("quantization", q_ok, seen)
    if clause.architectures:
        archs = model.architectures
        seen = "architecture " + ("/".join(archs) if archs else "not told")
        ok = any(a in clause.architectures for a in archs) if archs else None
        judge("architecture", ok, seen)
    if clause.model_types:
        mt = model.model_type
        judge("model type", None if mt is None else mt in clause.model_types, f"model_type {mt}")
    return out


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

    tokens: list[str] = []
    for f in flags:
        tokens.extend(shlex.split(f))
    try:
        from compat.launch import settings_for

        parsed = settings_for(framework, tokens)
    except UsageError:
        return None
    if parsed.unknown_flags:
        return None
    # Normalized settings the flags set, and the release's own dests they give (a workaround
    # flag with no normalized setting, `--fp4-gemm-backend X`, is compared as its dest).
    wanted = [("setting:" + k, parsed.settings[k]) for k in sorted(parsed.explicit)]
    wanted += [
        ("dest:" + k, v) for k, v in sorted(parsed.values.items()) if k not in parsed.settings
    ]
    return tuple(wanted) or None


def _workaround_applied(w: Workaround, facts: _Facts) -> bool:
    if not (w.flags or w.env):
        return False
    launch = facts.launch
    if w.flags:
        if launch is None or launch.framework not in families().frameworks:
            return False
        wanted = _workaround_settings(launch.framework, w.flags)
        if wanted is None:
            return False
        for key, v in wanted:
            kind, k = key.split(":", 1)
            if kind == "setting":
                if k not in launch.explicit or not _same(launch.settings.get(k), v):
                    return False
            elif k not in launch.values or not _same(launch.values[k], v):
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
    if a.model is not None:
        out.extend(_check_model(a.model, facts))
    return out


def _fix_lines(adv: Advisory) -> tuple[str, ...]:
    return tuple(f"{w.description}: {w.concrete()}" for w in adv.workarounds)


def match_advisories(
    env: Environment,
    launch: Optional[LaunchConfig],
    advisories: Sequence[Advisory],
    prior: Sequence[Finding] = (),
    model: Model = None,
    implied: Optional[Mapping[str, tuple[str, Version, str]]] = None,
) -> list[Finding]:
    """Findings for the advisories that apply (pure; no I/O).

    Every clause must match. A clause that needs a fact compat does not have (no GPU info, no
    launch command) keeps the advisory from firing; when every other clause matched it gives an
    INFO "could not tell" finding instead. An advisory whose workaround is already in the
    command or env, or that is withdrawn, never fires.
    """
    facts = _Facts(env, launch, prior, model, implied)
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
            # The fact to name when several advisories lack the same one: launch first (it
            # decides the most), then the GPU, the driver, the model.
            facts_missing = {o.fact for o in unknown if o.fact}
            missing = next(
                (f for f in ("launch", "gpu", "driver", "model") if f in facts_missing), ""
            )
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
                    missing=missing,
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
