"""Environment variables a framework release does not read (so setting them changes nothing)."""

from __future__ import annotations

from collections.abc import Mapping

from compat.launch.data import Basis
from compat.launch.model import LaunchProblem
from compat.models import Severity

# The prefixes each framework's own variables carry. sglang also rewrites a legacy SGL_ prefix
# to SGLANG_ in some releases, so only SGLANG_ names are judged there.
PREFIXES: Mapping[str, tuple[str, ...]] = {"sglang": ("SGLANG_",), "vllm": ("VLLM_",)}
# vLLM keeps every variable it reads in vllm/envs.py (`environment_variables`); sglang's
# environ.py holds most but not all of them, so for sglang only a variable that a release
# stopped reading is reported, never one that is merely absent from its registry.
_COMPLETE_REGISTRY = frozenset({"vllm"})


def env_problems(basis: Basis, env: Mapping[str, str]) -> list[LaunchProblem]:
    """An `env-ignored` problem for each of the framework's variables the release does not read."""
    fw = basis.framework
    names = sorted(k for k in env if k.startswith(PREFIXES.get(fw, ())))
    if not names:
        return []
    out: list[LaunchProblem] = []
    view = basis.view
    complete = fw in _COMPLETE_REGISTRY
    for name in names:
        spans = basis.data.env_spans(name)
        if view is None:
            if not spans and complete:
                out.append(
                    _problem(
                        name,
                        Severity.WARNING,
                        f"{name} is not read by any {fw} release compat knows: it is ignored",
                        *_close(name, basis),
                    )
                )
            continue
        if not view.info.env_registry:
            continue  # this release keeps no registry compat can read
        if name in view.env:
            continue
        here = basis.index
        assert here is not None
        severity = Severity.WARNING if basis.exact else Severity.INFO
        before = [b for a, b in spans if b < here]
        after = [a for a, b in spans if a > here]
        flag = _flag_for(name, basis)
        fix = (f"use {flag} instead",) if flag else ()
        if before:
            last = basis.version_at(max(before))
            out.append(
                _problem(
                    name,
                    severity,
                    f"{name}={env[name]} is ignored: {basis.release} no longer reads it "
                    f"(last read by {fw} {last})",
                    *fix,
                )
            )
        elif after and complete:
            first = basis.version_at(min(after))
            out.append(
                _problem(
                    name,
                    severity,
                    f"{name}={env[name]} is ignored: {basis.release} does not read it yet "
                    f"(first read by {fw} {first})",
                    *fix,
                )
            )
        elif not spans and complete:
            out.append(
                _problem(
                    name,
                    severity,
                    f"{name}={env[name]} is ignored: no {fw} release compat knows reads it",
                    *(fix or _close(name, basis)),
                )
            )
    return out


def _problem(name: str, severity: Severity, message: str, *fix: str) -> LaunchProblem:
    return LaunchProblem("env-ignored", severity, name, message, tuple(fix))


def _flag_for(name: str, basis: Basis) -> str:
    """The flag of this release that took over a variable: VLLM_ATTENTION_BACKEND -> --attention-backend."""
    for prefix in PREFIXES.get(basis.framework, ()):
        if name.startswith(prefix):
            dest = name[len(prefix) :].lower()
            state = basis.state_for_dest(dest)
            if state is not None:
                return state.options[0]
    return ""


def _close(name: str, basis: Basis) -> tuple[str, ...]:
    import difflib

    pool = basis.view.env if basis.view is not None else basis.data.env.keys()
    return tuple(
        f"did you mean {n}?" for n in difflib.get_close_matches(name, list(pool), n=2, cutoff=0.8)
    )
