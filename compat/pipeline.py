"""The one check pipeline: an Environment, its launch and model, and the database -> findings.

`compat check`, `run`, `diff`, `lint` and `--ray` all call `check()` here; the launch command is
parsed by `parse_launch_for()` alone, with the framework taken from the command itself. Nothing
here reads the machine: the environment, the launch text and the model facts come in as values,
and the database is loaded by the caller (`load_database`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import msgspec
import msgspec.structs
from msgspec import Struct
from packaging.version import Version

from compat.advisories import Advisory, Model, load_advisories, match_advisories
from compat.check import Context, run_registry, sort_findings
from compat.codes import CODES
from compat.errors import UsageError
from compat.families import families
from compat.launch import LaunchConfig
from compat.matrix.load import Matrix
from compat.models import (
    ClusterProbe,
    ClusterResult,
    Code,
    Environment,
    Finding,
    NodeReport,
    Severity,
    Unknown,
    canonicalize_name,
    parse_version,
    requirement_name,
)


class Database(Struct, frozen=True):
    """What the checks read besides the environment: versions, curated facts, advisories."""

    matrix: Matrix
    advisories: tuple[Advisory, ...]

    @property
    def root(self) -> Path:
        return self.matrix.root


def load_database(root: Optional[Path] = None) -> Database:
    """The database under `root` (default: the one in use); DataError when it is invalid."""
    matrix = Matrix(root)
    return Database(matrix, load_advisories(matrix.root / "advisories"))


class LaunchInput(Struct, frozen=True):
    """The server command as the user gave it: argv after `--`, or a launch file's text."""

    argv: tuple[str, ...] = ()
    text: Optional[str] = None
    origin: str = ""  # the file the text came from (for messages and `--config` paths)
    under_ray: bool = False  # the server runs in Ray workers (compat check --ray)

    @property
    def given(self) -> bool:
        return bool(self.argv) or self.text is not None


def framework_version(env: Environment, framework: str) -> Optional[Version]:
    """The installed release of the framework a command starts (None when not installed)."""
    return env.version_of(framework) if framework in families().frameworks else None


def parse_launch_for(env: Environment, given: LaunchInput) -> Optional[LaunchConfig]:
    """The launch command parsed once, by the framework it starts and that framework's installed
    release; without one, the command a snapshot recorded; None when there is none at all.

    The server inherits the environment compat sees (the probed or recorded variables), so they
    are the base of the launch's environment; a launch file's exports come on top. It runs on
    the environment's GPUs: defaults a release picks by the GPU are read for them.
    """
    if not given.given and not env.launch:
        return None  # nothing to parse (and the parser is not even loaded)
    from compat.launch import detect_entrypoint, parse_launch, parse_launch_text

    base = dict(env.env)
    gpus = None if isinstance(env.gpus, Unknown) else env.gpus
    if given.argv:
        framework, _ = detect_entrypoint(list(given.argv))
        return parse_launch(
            list(given.argv),
            framework_version(env, framework),
            env=base,
            under_ray=given.under_ray,
            gpus=gpus,
        )
    if given.text is not None:
        config_dir = Path(given.origin).parent if given.origin else None
        first = parse_launch_text(given.text, config_dir=config_dir, gpus=gpus)
        version = framework_version(env, first.framework)
        if not version:
            return first
        return parse_launch_text(given.text, version, config_dir=config_dir, gpus=gpus)
    if env.launch:
        return parse_launch_for(env, LaunchInput(argv=env.launch, under_ray=given.under_ray))
    return None


def torch_pinned_runtime(env: Environment, matrix: Matrix) -> dict[str, tuple[str, Version, str]]:
    """The CUDA runtime wheels (nvidia-nccl, -cudnn, -cublas, ...) the installed torch pins, for
    those not installed as distributions: a freeze file often lists torch alone, and its NCCL is
    still the one torch pulls. From torch's own metadata, else the database's record of that
    release when the torch build is the one PyPI serves."""
    from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName

    from compat.matrix.schema import requirement
    from compat.models import TorchBuild, cuda_from_local

    tb = env.torch
    if not isinstance(tb, TorchBuild) or tb.version is None:
        return {}
    dist = env.dist("torch")
    reqs = []
    if dist is not None and dist.requires:
        for text in dist.requires:
            if not (requirement_name(text) or "").startswith("nvidia-"):
                continue  # only the CUDA runtime wheels count here: the rest is not parsed
            try:
                reqs.append(requirement(text))
            except ValueError:
                continue
    else:
        rel = matrix.release("torch", tb.version)
        local = cuda_from_local(tb.version.local)
        if rel is None or (tb.version.local and local != rel.cuda):
            return {}  # another CUDA build than PyPI's: its pins are not in the database
        reqs = list(rel.requires)
    py = env.python
    version = py.major_minor if not isinstance(py, Unknown) else "3.11"
    marker_env = {
        "platform_system": "Linux",
        "sys_platform": "linux",
        "os_name": "posix",
        "platform_machine": "x86_64",
        "python_version": version,
        "python_full_version": f"{version}.0",
        "platform_python_implementation": "CPython",
        "implementation_name": "cpython",
        "extra": "",
    }
    installed = {d.key for d in env.distributions}
    out: dict[str, tuple[str, Version, str]] = {}
    for r in reqs:
        name = canonicalize_name(r.name)
        if not name.startswith("nvidia-") or name in installed:
            continue
        try:
            if r.marker is not None and not r.marker.evaluate(marker_env):
                continue
        except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
            continue
        pins = [s for s in r.specifier if s.operator == "=="]
        v = parse_version(pins[0].version) if len(pins) == 1 else None
        if v is not None:
            out[name] = (r.name, v, f"pinned by torch {tb.version}; not listed")
    return out


def check_ignore(ignore: Sequence[str], db: Database) -> tuple[str, ...]:
    """`--ignore` values: finding codes or advisory ids; anything else is a usage error."""
    known = {c.code for c in CODES} | {a.id for a in db.advisories}
    known |= {alias.upper() for a in db.advisories for alias in a.aliases}
    out = []
    for item in ignore:
        key = item.strip()
        norm = key.upper() if key.upper().startswith("COMPAT-") else key.lower()
        if norm not in known:
            import difflib

            close = difflib.get_close_matches(norm, sorted(known), n=3, cutoff=0.6)
            raise UsageError(
                f"--ignore {item!r}: not a finding code or advisory id",
                hint=(f"did you mean {' or '.join(close)}? " if close else "")
                + "`compat explain` lists the codes and advisories",
            )
        out.append(norm)
    return tuple(out)


def check(
    env: Environment,
    db: Database,
    launch: Optional[LaunchConfig] = None,
    model: Model = None,
    *,
    ignore: Sequence[str] = (),
) -> list[Finding]:
    """Every check, then the advisories (which may build on the findings), minus ignored ones,
    worst first. Pure: everything it judges comes in as arguments."""
    from compat.check.target import compose

    ctx = Context(env=env, matrix=db.matrix, launch=launch, model=model)
    ctx = msgspec.structs.replace(ctx, target=compose(ctx))
    findings = run_registry(ctx)
    if db.advisories:
        implied = torch_pinned_runtime(env, db.matrix)
        matched = match_advisories(env, launch, db.advisories, findings, model, implied)
        findings.extend(matched)
    drop = set(ignore)
    findings = [f for f in findings if f.code not in drop and (f.advisory or "") not in drop]
    return sort_findings(collapse_unknowns(findings))


def check_cluster(
    probe: ClusterProbe,
    db: Database,
    given: Optional[LaunchInput] = None,
    *,
    env_vars: Sequence[str] = (),
    ignore: Sequence[str] = (),
) -> ClusterResult:
    """Each node's findings (this module's `check` on its Environment, the launch parsed for the
    framework and release installed on that node), then the cluster's: nodes that did not report,
    and what differs between the nodes."""
    from compat.check.cluster import compare
    from compat.inputs import apply_overrides

    given = given or LaunchInput()
    launch_input = LaunchInput(given.argv, given.text, given.origin, under_ray=True)
    per_node: list[tuple[NodeReport, tuple[Finding, ...]]] = []
    for r in probe.nodes:
        if r.env is None:
            per_node.append((r, ()))
            continue
        env = apply_overrides(r.env, db.matrix, env_vars=env_vars)
        launch = parse_launch_for(env, launch_input)
        per_node.append((r, tuple(check(env, db, launch, ignore=ignore))))
    drop = set(ignore)
    cluster = [f for f in compare(probe.nodes) if f.code not in drop]
    # Worst first; within a severity, compare()'s order: missing nodes, then stack, host, env.
    cluster.sort(key=lambda f: -f.severity.rank)
    return ClusterResult(probe, tuple(per_node), tuple(cluster))


# The host facts a check can lack, the option that gives each, and how to name it.
_FACTS: dict[str, tuple[str, str]] = {
    "launch": ("the launch command", "pass the server command after `--` (or --launch-file FILE)"),
    "gpu": (
        "the GPUs",
        "give them: --gpu NAME (with the size for a GPU made in several), or --gpu 8xH100",
    ),
    "driver": ("the driver", "give it: --driver 550.54.15 (or a branch: --driver 550)"),
    "model": (
        "the model's config.json",
        "run compat where the model's files are (the HF cache or the --model-path folder)",
    ),
}


def collapse_unknowns(found: list[Finding]) -> list[Finding]:
    """Infos that could only say "could not tell" for want of one host fact become one line per
    fact, naming what each would have judged: a report, not a page of "could not tell"."""
    groups: dict[str, list[Finding]] = {}
    for f in found:
        if f.severity is Severity.INFO and f.missing in _FACTS:
            groups.setdefault(f.missing, []).append(f)
    merged = {fact for fact, items in groups.items() if len(items) > 1}
    out = [f for f in found if not (f.severity is Severity.INFO and f.missing in merged)]
    for fact in sorted(merged):
        items = groups[fact]
        what, how = _FACTS[fact]
        names = sorted({f.advisory or f.code for f in items})
        advisories = [n for n in names if n.startswith("COMPAT-")]
        codes = [n for n in names if not n.startswith("COMPAT-")]
        listed = codes + ([f"{len(advisories)} known-crash advisories"] if advisories else [])
        out.append(
            Finding(
                Code.MISSING_FACT.value,
                Severity.INFO,
                f"without {what} compat could not tell: {', '.join(listed)}",
                evidence=tuple(
                    f"{f.advisory or f.code}: {f.message.split(': ', 1)[-1]}" for f in items
                ),
                fix=(how, "`compat explain ID` describes each advisory"),
                missing=fact,
            )
        )
    return out
