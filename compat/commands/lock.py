"""`compat lock TARGET...`: resolve a consistent tuple and write the files installers use."""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import click
from packaging.version import InvalidVersion, Version

from compat.errors import UsageError
from compat.families import families

if TYPE_CHECKING:
    from compat.matrix.load import Matrix
    from compat.probe.driver import HostProbe
    from compat.resolve import Resolution, Target

_FORMATS = ("requirements", "constraints", "pylock", "uv")


def _python(text: Optional[str]) -> str:
    if text is None:
        return f"{sys.version_info[0]}.{sys.version_info[1]}"
    if not re.fullmatch(r"3\.[0-9]{1,2}", text.strip()):
        raise UsageError(f"--python {text!r}: expected X.Y such as 3.11")
    return text.strip()


def _version(text: str, flag: str, example: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion as exc:
        raise UsageError(
            f"{flag} {text!r} is not a version", hint=f"e.g. {flag} {example}"
        ) from exc


def _probe() -> HostProbe:
    from compat.probe.driver import probe_host

    return probe_host()


def build_target(
    targets: Sequence[str],
    cuda: Optional[str],
    driver: Optional[str],
    gpus: Sequence[str],
    python: Optional[str],
    platform: Optional[str],
    allow: Sequence[str],
    matrix: Matrix,
    probe: Optional[Callable[[], HostProbe]] = None,
) -> Target:
    """The declared Target; `auto` values read this host through `probe` (probe_host())."""
    from compat.matrix.load import parse_gpu_arg
    from compat.models import Unknown
    from compat.resolve import Platform, Target, TargetGpu, parse_platform, parse_targets

    reqs = parse_targets(targets)
    host: Optional[HostProbe] = None

    def live() -> HostProbe:
        nonlocal host
        if host is None:
            host = probe() if probe is not None else _probe()
        return host

    drv: Optional[Version] = None
    drv_source = ""
    cuda_exact: Optional[str] = None
    cuda_max: Optional[Version] = None
    if driver == "auto":
        d = live().driver
        version = d if isinstance(d, Unknown) else d.version
        if isinstance(version, Unknown) or isinstance(d, Unknown):
            why = version.reason if isinstance(version, Unknown) else "no driver"
            raise UsageError(
                f"--driver auto: could not read the driver here: {why}",
                hint="give the target's driver: --driver 550.54.15",
            )
        drv, drv_source = (
            _version(version, "--driver", "550.54.15"),
            f"this host, {d.version_source}",
        )
    elif driver:
        from compat.hardware import parse_driver

        spec = parse_driver(driver, matrix.driver_catalog)
        drv = spec.version
        drv_source = spec.source
    if cuda == "auto":
        d = live().driver
        dcuda = d if isinstance(d, Unknown) else d.cuda
        if isinstance(dcuda, Unknown):
            raise UsageError(
                f"--cuda auto: could not read the driver's CUDA version here: {dcuda.reason}",
                hint="give --cuda 12.6, or --driver VERSION",
            )
        cuda_max = _version(dcuda, "--cuda", "12.6")
    elif cuda:
        if not re.fullmatch(r"[0-9]{2}(\.[0-9])?", cuda.strip()):
            raise UsageError(
                f"--cuda {cuda!r}: expected X.Y such as 12.6 (or a major: 12), or auto"
            )
        cuda_exact = cuda.strip()
    tgpus: list[TargetGpu] = []
    for g in gpus:
        if g == "auto":
            found = live().gpus
            if isinstance(found, Unknown) or not found:
                why = found.reason if isinstance(found, Unknown) else "no GPU visible"
                raise UsageError(
                    f"--gpu auto: {why}", hint="name the target GPU: --gpu h100 or --gpu sm_90"
                )
            for x in found:
                if x.compute_capability is None:
                    raise UsageError(
                        f"--gpu auto: the compute capability of {x.name} is unknown",
                        hint="name it: --gpu sm_90",
                    )
                mem = x.memory_total_mib / 1024 if x.memory_total_mib else None
                tgpus.append(TargetGpu(x.name, x.compute_capability, mem, "this host"))
        else:
            name, cc, mem = parse_gpu_arg(g, matrix)
            tgpus.append(TargetGpu(name, cc, mem, "--gpu"))
    # One entry per distinct GPU model: eight H100s are judged once.
    uniq = list({(g.name, g.cc): g for g in tgpus}.values())
    return Target(
        requirements=reqs,
        python=_python(python),
        platform=parse_platform(platform) if platform else Platform(),
        cuda=cuda_exact,
        cuda_max=cuda_max,
        driver=drv,
        driver_source=drv_source,
        gpus=tuple(uniq),
        allow=frozenset(a.strip().upper() for a in allow),
    )


def explain(res: Resolution) -> str:
    """--explain: the rule, the choice, and every candidate ranked above it with its reason."""
    out = [f"rule: {res.rule}"]
    torch = res.pin("torch")
    out.append(
        f"chosen: {', '.join(p.constraint for p in res.pins if p.name in families().frameworks)}"
        f"{', ' if res.framework else ''}torch {torch.version if torch else '?'} (CUDA {res.cuda})"
    )
    if res.rejected:
        out.append(f"rejected ({len(res.rejected)}), best first:")
        out.extend(f"  [{r.rule.value}] {r.line()}" for r in res.rejected)
    else:
        out.append("rejected: none (the first candidate passed every check)")
    for n in res.notes:
        out.append(f"note: {n}")
    for p in res.pending:
        out.append(f"depends on the launch: {p}")
    return "\n".join(out) + "\n"


def _command(argv: Sequence[str]) -> str:
    return "compat lock " + " ".join(shlex.quote(a) for a in argv)


@click.command("lock")
@click.argument("targets", nargs=-1, required=True, metavar="TARGET...")
@click.option(
    "--cuda",
    metavar="X.Y|auto",
    help="The CUDA build to lock (12.6, or a major: 12); "
    "auto: at most what this host's driver reports.",
)
@click.option(
    "--driver",
    metavar="VERSION|auto",
    help="The target's NVIDIA driver: 550.54.15, a branch (535 or R535: judged at its lowest "
    "known release), or auto (this host's).",
)
@click.option(
    "--gpu",
    "gpus",
    multiple=True,
    metavar="sm_XY|NAME|auto",
    help="Target GPUs (repeatable): a name (h100, 'RTX 4090', 8xH100), sm_90, or auto for "
    "this host's.",
)
@click.option(
    "--python",
    "python_version",
    metavar="X.Y",
    help="The target's Python (default: this interpreter's).",
)
@click.option(
    "--platform",
    metavar="PLATFORM",
    help="x86_64 (default), aarch64, or a tag such as manylinux_2_28_x86_64.",
)
@click.option(
    "--allow",
    multiple=True,
    metavar="ID",
    help="Accept a known-crash advisory that would otherwise rule a tuple out (repeatable).",
)
@click.option(
    "--explain",
    "show_explain",
    is_flag=True,
    help="Print the ranking rule and every rejected candidate with its reason (stderr).",
)
@click.option("--hashes", is_flag=True, help="Add --hash=sha256 lines where the database has them.")
@click.option(
    "-o",
    "--output",
    "out_dir",
    metavar="DIR",
    help="Write requirements.lock, constraints.txt, pylock.toml and uv-sources.toml to DIR.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_FORMATS),
    default=None,
    help="Write one format to stdout (default: requirements).",
)
def lock_cmd(
    targets: tuple[str, ...],
    cuda: Optional[str],
    driver: Optional[str],
    gpus: tuple[str, ...],
    python_version: Optional[str],
    platform: Optional[str],
    allow: tuple[str, ...],
    show_explain: bool,
    hashes: bool,
    out_dir: Optional[str],
    fmt: Optional[str],
) -> None:
    """Resolve a consistent tuple for TARGET (sglang==0.4.6.post1, 'sglang>=0.5', vllm,
    torch==2.7.1 ...) and write the files installers use. Host facts are declared (--driver,
    --gpu, --cuda, --python) or read from this host with `auto`; without them the lock is for the
    framework's requirements alone.

    \b
      compat lock sglang==0.4.6.post1 --driver 535.104.05 --gpu a100 -o lock/
    """
    from compat import __version__
    from compat.advisories import load_advisories
    from compat.emit import EmitOptions, LockFormat, render
    from compat.matrix.load import Matrix
    from compat.resolve import NoTupleError, resolve
    from compat.resources import advisories_dir

    if out_dir and fmt:
        raise UsageError("give either -o DIR (every file) or --format FORMAT (one, to stdout)")
    matrix = Matrix()
    target = build_target(targets, cuda, driver, gpus, python_version, platform, allow, matrix)
    advisories = load_advisories(advisories_dir())
    argv = sys.argv[sys.argv.index("lock") + 1 :] if "lock" in sys.argv else list(targets)
    argv = [a for a in argv if a != "--explain"]
    opts = EmitOptions(command=_command(argv), hashes=hashes, version=__version__)
    try:
        res = resolve(target, matrix, advisories)
    except NoTupleError as exc:
        if show_explain:
            click.echo("every candidate, best first:", err=True)
            for r in exc.rejected:
                click.echo(f"  [{r.rule.value}] {r.line()}", err=True)
        raise
    if show_explain:
        click.echo(explain(res), err=True, nl=False)
    if out_dir:
        folder = Path(out_dir)
        texts = {f: render(f, res, opts) for f in LockFormat}
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for f, text in texts.items():
                path = folder / f.filename
                tmp = path.with_suffix(path.suffix + ".tmp")
                tmp.write_text(text, encoding="utf-8")
                os.replace(tmp, path)
        except OSError as exc:
            raise UsageError(f"cannot write to {out_dir}: {exc.strerror}") from exc
        click.echo(f"wrote {', '.join(f.filename for f in LockFormat)} to {folder}", err=True)
        return
    click.echo(render(LockFormat(fmt or "requirements"), res, opts), nl=False)
