"""Parsing a launch command: argv or a launch file's text into a LaunchConfig."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Optional

from packaging.version import Version

from compat.errors import UsageError
from compat.launch.argv import ArgParser, Parsed, load_config_file, version_unknown_note
from compat.launch.data import Basis
from compat.launch.env import env_problems
from compat.launch.model import LaunchConfig
from compat.launch.settings import Normalizer
from compat.launch.text import (
    detect_entrypoint,
    env_says_ray,
    parse_launch_text_with,
    strip_wrappers,
)
from compat.models import GPU, Unknown
from compat.redact import redact_env


def parse_launch(
    argv: Sequence[str],
    framework_version: Optional[Version] = None,
    *,
    env: Optional[Mapping[str, str]] = None,
    config_dir: Optional[Path] = None,
    under_ray: bool = False,
    gpus: Optional[tuple[GPU, ...]] = None,
) -> LaunchConfig:
    """Parse a server command line (sglang or vLLM) into a LaunchConfig.

    The flags are those of `framework_version` as its own sources define them (generated launch
    data); without a version, those of every release. Problems the server's parser would have
    (an unknown or removed flag, a value outside the choices, an env var it does not read) are
    recorded on the result; a malformed value of a known flag (`--tp abc`, bad JSON) raises
    UsageError with what to fix.
    """
    args = [str(a) for a in argv]
    if not args:
        raise UsageError(
            "empty launch command",
            hint="pass the server command after `--`, e.g. "
            "`compat check -- python -m sglang.launch_server --model-path M`",
        )
    args, wrapper_ray, wrapper_env = strip_wrappers(args)
    merged_env = redact_env({**(env or {}), **wrapper_env})
    framework, start = detect_entrypoint(args)
    ray = under_ray or wrapper_ray or env_says_ray(merged_env)
    if framework == "unknown":
        return LaunchConfig(
            framework="unknown",
            argv=tuple(argv),
            settings=MappingProxyType({"under_ray": ray}),
            explicit=frozenset(),
            unknown_flags=(),
            env=MappingProxyType(merged_env),
            model=None,
            origins=MappingProxyType({}),
            notes=("not an sglang or vLLM server command; settings are not known",),
            framework_version=framework_version,
        )
    basis = Basis.for_version(framework, framework_version)
    parser = ArgParser(basis, framework)
    parsed = Parsed()
    parser.parse(args[start:], parsed)
    for cfg in parsed.config_files:
        load_config_file(cfg, parser, config_dir, parsed)
    if basis is not None:
        version_unknown_note(basis, parsed)
    if framework == "vllm" and parsed.positionals:
        if "model" not in parsed.values:
            parsed.set("model", parsed.positionals[0], "positional MODEL")
        extra = parsed.positionals[1:]
    else:
        extra = parsed.positionals
    shell_vars = [x for x in extra if x.startswith("$")]
    if shell_vars:
        parsed.notes.append(f"unexpanded {' '.join(shell_vars)} may add flags compat cannot see")
    extra = [x for x in extra if not x.startswith("$")]
    if extra:
        parsed.notes.append("positional arguments not understood: " + " ".join(extra))
    if basis is None:
        parsed.notes.append(f"no launch data for {framework}: flags are not checked")
    elif not basis.exact and basis.index is not None:
        parsed.notes.append(
            f"{framework} {framework_version} is not in the launch data; flags are "
            f"judged by {basis.release}"
        )
    norm = Normalizer(
        framework, basis, parsed, framework_version, merged_env, _visible_ccs(gpus, merged_env)
    )
    settings = norm.run()
    settings["under_ray"] = ray
    origins = {k: v for k, v in norm.origins.items() if k in settings}
    for k, why in norm.derived.items():
        origins.setdefault(k, why)
    # the release's own dests given on the command line (`all2all_backend`): their flag
    for k, why in parsed.origins.items():
        if k in parsed.values:
            origins.setdefault(k, why)
    explicit = frozenset(k for k in norm.given | set(norm.derived) if k in settings)
    problems = list(parsed.problems)
    if basis is not None:
        problems.extend(env_problems(basis, merged_env))
    model = settings.get("model")
    return LaunchConfig(
        framework=framework,
        argv=tuple(argv),
        settings=MappingProxyType(settings),
        explicit=explicit,
        unknown_flags=tuple(dict.fromkeys(parsed.unknown)),
        env=MappingProxyType(merged_env),
        model=model if isinstance(model, str) else None,
        origins=MappingProxyType(origins),
        notes=tuple(dict.fromkeys(parsed.notes)),
        framework_version=framework_version,
        values=MappingProxyType(dict(parsed.values)),
        problems=tuple(problems),
        basis=basis,
    )


def _visible_ccs(
    gpus: Optional[tuple[GPU, ...]], env: Mapping[str, str]
) -> Optional[tuple[tuple[int, int], ...]]:
    """The compute capabilities of the GPUs the server will see (CUDA_VISIBLE_DEVICES of its
    environment applied); None when any of that is not known."""
    if not gpus:
        return None
    from compat.devices import visible_gpus

    seen = visible_gpus(gpus, env.get("CUDA_VISIBLE_DEVICES"), env.get("CUDA_DEVICE_ORDER"))
    if isinstance(seen, Unknown) or not seen[0]:
        return None
    ccs = tuple(g.compute_capability for g in seen[0])
    return None if any(cc is None for cc in ccs) else tuple(cc for cc in ccs if cc is not None)


def parse_launch_text(
    text: str,
    framework_version: Optional[Version] = None,
    *,
    config_dir: Optional[Path] = None,
    gpus: Optional[tuple[GPU, ...]] = None,
) -> LaunchConfig:
    """Parse a launch file: shell-ish text with `export X=1`, `X=1 cmd`, continuations.

    The first sglang/vLLM server command found is parsed; exported variables before it and
    assignments in front of it become the launch env. Text with no server command gives a
    LaunchConfig with framework "unknown" (its env and Ray wrapper are still recorded).
    """
    parse = functools.partial(parse_launch, gpus=gpus) if gpus else parse_launch
    return parse_launch_text_with(parse, text, framework_version, config_dir=config_dir)


def describe_setting(launch: LaunchConfig, name: str) -> str:
    """`cuda_graph=True (default)` for evidence lines."""
    return f"{name}={launch.settings.get(name)} ({launch.origin(name)})"


def settings_for(
    framework: str, flags: Sequence[str], framework_version: Optional[Version] = None
) -> LaunchConfig:
    """Parse bare flags as if given to `framework`'s server (workarounds use this)."""
    entry: dict[str, list[str]] = {
        "sglang": ["python", "-m", "sglang.launch_server"],
        "vllm": ["vllm", "serve"],
    }
    return parse_launch(entry[framework] + list(flags), framework_version)
