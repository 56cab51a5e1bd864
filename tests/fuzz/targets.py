"""In-process entry points the fuzz cases call: each mirrors what a CLI command does at its edge
(reads the file it is handed, probes, checks, renders) and returns the text the command would
write, encoded as stdout would encode it."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import msgspec.structs

from compat.models import Distribution, Environment, Unknown
from compat.pipeline import Database

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "tests" / "assets"


@functools.lru_cache(maxsize=1)
def db() -> Database:
    """The bundled database, loaded once in the parent so every forked input reuses it."""
    from compat.pipeline import load_database

    d = load_database()
    for name in d.matrix.projects():
        d.matrix.releases(name)
    d.matrix._load_curated()
    return d


@functools.lru_cache(maxsize=8)
def base_env(name: str) -> Environment:
    """Environments the launch, override and probe cases run against (real fixtures)."""
    from compat.inputs import load_from

    paths = {
        "sglang": ASSETS / "freeze" / "sglang-0.4.6-good.txt",
        "vllm": ASSETS / "freeze" / "vllm-0.10.1.1-good.txt",
        "h100": ASSETS / "envs" / "h100-torch2.11-cu130.json",
    }
    return load_from(str(paths[name]), db().matrix)


_PARENT_CACHE: list[Path] = []


def warm() -> None:
    """Everything the parent should hold before forking (imports, database, fixtures)."""
    import compat.advisories.explain
    import compat.commands.check
    import compat.commands.cluster
    import compat.commands.lint
    import compat.diff
    import compat.format.env_text
    import compat.format.json
    import compat.format.sarif
    import compat.format.text
    import compat.lint
    import compat.probe
    import compat.probe.deep
    import compat.snapshot  # noqa: F401
    from compat.matrix.tomlfile import cache_root

    db()
    for name in ("sglang", "vllm", "h100"):
        base_env(name)
    if not _PARENT_CACHE:
        _PARENT_CACHE.append(cache_root() / "index")


def fresh_process_state() -> None:
    """Forget what this process read of the database (the parent warmed it before forking): the
    package families, the launch data and rules are then read again, from $COMPAT_MATRICES and
    through the cache, as a new `compat` process reads them."""
    from compat import families
    from compat.launch import data, rules

    families.families.cache_clear()
    data._LOADED.clear()
    rules._CACHE.clear()


def seed_cache() -> None:
    """Link the parent's good cache entries into this input's cache folder ($COMPAT_CACHE_DIR)
    where it has none of its own: only the file a case changed (or the entry it tampered with)
    is then parsed afresh, as on a machine where the other files are cached."""
    from compat.matrix.tomlfile import cache_root

    if not _PARENT_CACHE or not _PARENT_CACHE[0].is_dir():
        return
    index = cache_root() / "index"
    if index == _PARENT_CACHE[0]:
        return
    index.mkdir(parents=True, exist_ok=True)
    for entry in _PARENT_CACHE[0].iterdir():
        dest = index / entry.name
        if not os.path.lexists(dest):
            os.symlink(entry, dest)


def emit(*texts: str) -> str:
    """What the command writes: stdout is UTF-8 and strict, as `write_report` writes it."""
    for t in texts:
        t.encode("utf-8")
    return "\n".join(texts)


def _render_all(findings: Sequence[Any], env: Environment, fail_on: str = "error") -> list[str]:
    from compat.format import Format, render

    return [render(f, findings, env, fail_on) for f in Format]


# --------------------------------------------------------------------------------------------
# compat check / run / diff
# --------------------------------------------------------------------------------------------


def check_request(
    from_file: Optional[str] = None,
    *,
    interpreter: Optional[str] = None,
    driver: Optional[str] = None,
    gpus: tuple[str, ...] = (),
    env_vars: tuple[str, ...] = (),
    python: Optional[str] = None,
    launch_file: Optional[str] = None,
    launch_argv: tuple[str, ...] = (),
    ignore: tuple[str, ...] = (),
    formats: bool = True,
) -> str:
    """`compat check` from its options: the command's own edge (`gather`), the pipeline, every
    output format."""
    from compat.commands.check import run_check
    from compat.commands.common import CheckRequest, exit_code, python_version_or_interpreter

    req = CheckRequest(
        from_file,
        interpreter,
        driver,
        gpus,
        env_vars,
        python_version_or_interpreter(python, "--python"),
        False,
        launch_file,
        "error",
        ignore,
        launch_argv,
    )
    env, findings = run_check(req, db())
    exit_code(findings, "error")
    if not formats:
        return emit(_render_all(findings, env)[0])
    return emit(*_render_all(findings, env))


def diff_files(a: str, b: str) -> str:
    """`compat diff A B` in both formats, with the checks on both sides."""
    from compat.diff import diff_environments, dumps
    from compat.inputs import load_from
    from compat.pipeline import LaunchInput, check, parse_launch_for

    d = db()
    env_a, env_b = load_from(a, d.matrix), load_from(b, d.matrix)
    fa = check(env_a, d, parse_launch_for(env_a, LaunchInput()))
    fb = check(env_b, d, parse_launch_for(env_b, LaunchInput()))
    result = diff_environments(env_a, env_b, fa, fb)
    return emit(dumps(result, a, b, "text"), dumps(result, a, b, "json"))


def snapshot_everything(path: str, original: str) -> str:
    """A snapshot through every command that reads one: check (three formats) and diff."""
    out = check_request(path)
    return out + diff_files(original, path)


def freeze_everything(path: str) -> str:
    return check_request(path)


# --------------------------------------------------------------------------------------------
# compat lint
# --------------------------------------------------------------------------------------------


def lint_paths(paths: Sequence[str], python: Optional[str] = None) -> str:
    """`compat lint PATHS` with the command's own readers, in every format."""
    from compat.commands.common import python_version_or_interpreter
    from compat.commands.lint import _read, _read_include
    from compat.lint import (
        Target,
        exit_code,
        format_json,
        format_sarif,
        format_text,
        lint_files,
        summary,
    )

    target = Target(python_version_or_interpreter(python, "--python"))
    pairs = [(p, _read(p)) for p in paths]
    result = lint_files(pairs, db(), target, _read_include)
    exit_code(result, "error")
    return emit(format_text(result), format_json(result), format_sarif(result), summary(result))


# --------------------------------------------------------------------------------------------
# Launch commands
# --------------------------------------------------------------------------------------------


def launch_argv(argv: Sequence[str], env_name: str) -> str:
    """`compat check --from ENV -- ARGV` past the environment read: parse, check, render."""
    from compat.pipeline import LaunchInput, check, parse_launch_for

    env = base_env(env_name)
    launch = parse_launch_for(env, LaunchInput(argv=tuple(argv)))
    findings = check(env, db(), launch)
    return emit(*_render_all(findings, env))


def launch_file(path: str, env_name: str) -> str:
    """`compat check --from ENV --launch-file PATH`."""
    freeze = {
        "sglang": ASSETS / "freeze" / "sglang-0.4.6-good.txt",
        "vllm": ASSETS / "freeze" / "vllm-0.10.1.1-good.txt",
        "h100": ASSETS / "envs" / "h100-torch2.11-cu130.json",
    }[env_name]
    return check_request(str(freeze), launch_file=path, formats=False)


def runtime_env(text: str) -> str:
    """`--runtime-env JSON` (parsed before Ray is contacted)."""
    from compat.commands.cluster import parse_runtime_env

    return repr(parse_runtime_env(text))


def host_overrides(
    driver: Optional[str], gpus: tuple[str, ...], env_vars: tuple[str, ...], python: Optional[str]
) -> str:
    """`--driver/--gpu/--env/--python` over a real snapshot, checked and rendered."""
    path = str(ASSETS / "envs" / "h100-torch2.11-cu130.json")
    return check_request(path, driver=driver, gpus=gpus, env_vars=env_vars, python=python)


# --------------------------------------------------------------------------------------------
# The database: advisories, generated and curated files, the JSON cache
# --------------------------------------------------------------------------------------------


def advisory_dict(data: Any, source: str) -> str:
    """An advisory as parsed TOML: its problems, or the advisory explained and matched."""
    from compat.advisories.explain import explain_advisory
    from compat.advisories.match import match_advisories
    from compat.advisories.schema import parse_advisory
    from compat.pipeline import LaunchInput, parse_launch_for

    adv, problems = parse_advisory(data, source)
    if adv is None:
        return emit("\n".join(problems))
    texts = [explain_advisory(adv)]
    for name, argv in (
        ("sglang", ("python", "-m", "sglang.launch_server", "--model-path", "m", "--tp", "2")),
        ("vllm", ("vllm", "serve", "m", "--tensor-parallel-size", "2")),
        ("h100", ("vllm", "serve", "m")),
    ):
        env = base_env(name)
        launch = parse_launch_for(env, LaunchInput(argv=argv))
        found = match_advisories(env, launch, [adv])
        texts.extend(_render_all(found, env))
    return emit(*texts)


def database_root(root: str, env_name: str = "h100", validate: bool = True) -> str:
    """A database folder (one file mutated): loaded, used by a check, validated."""
    from compat.matrix.load import Matrix, validate_all
    from compat.pipeline import LaunchInput, check, load_database, parse_launch_for

    seed_cache()
    fresh_process_state()
    d = load_database(Path(root))
    env = base_env(env_name)
    argv = ("vllm", "serve", "m", "--tensor-parallel-size", "2")
    findings = check(env, d, parse_launch_for(env, LaunchInput(argv=argv)))
    for name in Matrix(Path(root)).projects():
        d.matrix.releases(name)
    problems = validate_all(Path(root)) if validate else []
    return emit(*_render_all(findings, env), "\n".join(problems))


def _cached_report(root: str) -> str:
    from compat.pipeline import LaunchInput, check, load_database, parse_launch_for

    d = load_database(Path(root))
    for name in d.matrix.projects():
        d.matrix.releases(name)
    env = base_env("h100")
    argv = ("vllm", "serve", "m", "--tensor-parallel-size", "2")
    findings = check(env, d, parse_launch_for(env, LaunchInput(argv=argv)))
    return emit(_render_all(findings, env)[1])


def cache_baseline() -> str:
    """The JSON report the untouched bundled data gives (the cache oracle's answer)."""
    from compat import resources

    return _cached_report(str(resources.matrices_dir()))


def cached_database(root: str, expected: str) -> str:
    """The bundled data read through a cache that was tampered with: the answer must be the one
    the untouched data gives (`expected`), and the cache must not stop later runs."""
    from compat.errors import CompatError
    from tests.fuzz.harness import WrongAnswer

    seed_cache()
    outs = []
    for run in range(2):  # the second run reads what the first left in the cache
        fresh_process_state()
        try:
            outs.append(_cached_report(root))
        except CompatError:  # the data is the bundled, valid one: only the cache differs
            # One class whichever file's entry it was (the case name says which).
            raise WrongAnswer(
                f"run {run + 1}: a cache entry of the wrong shape makes the valid database fail"
            ) from None

    for out in outs:
        if _stable(out) != _stable(expected):
            raise WrongAnswer("a tampered cache entry changed the check's answer")
    return outs[0]


def _stable(report: str) -> str:
    """A JSON report without what changes from run to run (times)."""
    import json

    doc = json.loads(report)
    doc.pop("created", None)
    for k in list(doc):
        if "time" in k or "created" in k:
            doc.pop(k)
    return json.dumps(doc, sort_keys=True)


# --------------------------------------------------------------------------------------------
# Probes
# --------------------------------------------------------------------------------------------


def site_probe(site: str, deep: bool = False) -> str:
    """Distributions, torch build and (with `deep`) the compiled objects of a site-packages
    folder, checked and shown as `compat env` and `compat check` show them."""
    from compat.format.env_text import format_env
    from compat.pipeline import check
    from compat.probe import deep as deep_probe
    from compat.probe import distributions, torch
    from compat.snapshot import dumps

    dists = distributions.with_extension_needs(distributions.scan([site], everything=True))
    build = torch.probe_torch(distributions.find(dists, "torch"))
    if deep:
        dists = deep_probe.with_objects(dists)
    env = msgspec.structs.replace(base_env("h100"), distributions=dists, torch=build, deep=deep)
    findings = check(env, db())
    return emit(format_env(env), dumps(env), *_render_all(findings, env))


def elf_object(path: str) -> str:
    """One ELF file as every reader meets it (none of these may raise): try_needed (compat env),
    parse_file, the --deep object facts as a kernel's object, and torch's exports with it as one
    of torch's libraries."""
    from compat import elf
    from compat.probe import deep as deep_probe

    folder, name = os.path.split(path)
    out = [repr(elf.try_needed(path))]
    out.append(repr(elf.parse_file(path, deep_probe.TORCH_SYMBOL_PREFIXES)))
    torch_dist = Distribution("torch", None, "0", os.path.dirname(os.path.dirname(folder)))
    exports = deep_probe.TorchExports(torch_dist, deep_probe.default_cache())
    dist = Distribution("sgl-kernel", None, "0", folder)
    out.append(repr(deep_probe.object_facts(dist, name, exports)))
    out.append(repr(exports.names()))
    return emit(*out)


def smi_text(text: str) -> str:
    """nvidia-smi CSV as the driver probe parses it, then shown and checked."""
    from compat.probe.bounded import DEFAULT_LIMIT
    from compat.probe.driver import parse_smi_csv

    # What the probe parses is bounded: it kills nvidia-smi past this many bytes of output.
    drv, gpus, _ = parse_smi_csv(text[:DEFAULT_LIMIT])
    return _host_env(drv, tuple(gpus))


def _host_env(driver_version: Optional[str], gpus: Any) -> str:
    from compat.format.env_text import format_env
    from compat.models import Driver
    from compat.pipeline import check
    from compat.snapshot import dumps

    base = base_env("vllm")
    drv = Driver(driver_version, Unknown("from the probe"), "probe", "") if driver_version else None
    env = msgspec.structs.replace(base, gpus=gpus, driver=drv or Unknown("none"))
    findings = check(env, db())
    return emit(format_env(env), dumps(env), *_render_all(findings, env))


def probe_host(root: str, nvml_lib: Optional[str]) -> str:
    """The live driver probe (NVML child, nvidia-smi fallback) over a fake /proc and /dev."""
    from compat.probe.driver import probe_host as probe

    hp = probe(root, nvml_lib=nvml_lib)
    return _host_env(
        None if isinstance(hp.driver, Unknown) else str(hp.driver.version), hp.gpus
    ) + repr(hp)


def interpreter(exe: str) -> str:
    """`compat env --interpreter EXE` and `compat check --interpreter EXE` (no host probe)."""
    from compat.format.env_text import format_env
    from compat.pipeline import check
    from compat.probe import probe_environment
    from compat.snapshot import dumps

    env = probe_environment(exe, host=False, walk_caches=False)
    findings = check(env, db())
    return emit(format_env(env), dumps(env), *_render_all(findings, env))


def live_env(environ: dict[str, str]) -> str:
    """`compat env` and `compat check` of this interpreter with `environ` as its environment."""
    from compat.format.env_text import format_env
    from compat.pipeline import check
    from compat.probe import probe_environment
    from compat.snapshot import dumps

    env = probe_environment(None, host=False, environ=environ, walk_caches=False)
    findings = check(env, db())
    return emit(format_env(env), dumps(env), *_render_all(findings, env))


def site_findings(site: str) -> list[tuple[str, str]]:
    """(code, severity) of what `compat check` finds in a site-packages folder."""
    from compat.pipeline import check
    from compat.probe import distributions, torch

    dists = distributions.with_extension_needs(distributions.scan([site], everything=True))
    build = torch.probe_torch(distributions.find(dists, "torch"))
    env = msgspec.structs.replace(base_env("h100"), distributions=dists, torch=build)
    return [(f.code, f.severity.value) for f in check(env, db())]
