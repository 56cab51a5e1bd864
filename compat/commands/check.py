"""`compat check`: will this stack work here? The environment, its launch and model, gathered at
the edge, then the one pipeline (compat.pipeline.check)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

import click
from msgspec import Struct

from compat import answers
from compat.advisories import Model
from compat.commands.common import (
    CheckRequest,
    check_options,
    exit_code,
    keep_live,
    python_version_or_interpreter,
    ray_options,
    stale_note,
    write_report,
)
from compat.errors import UsageError
from compat.launch import LaunchConfig
from compat.models import Environment, Finding, Unknown

if TYPE_CHECKING:
    from compat.channel.source import DataSource
    from compat.inputs import Note

from compat.pipeline import (
    Database,
    LaunchInput,
    check,
    check_ignore,
    load_database,
    parse_launch_for,
)


class Inputs(Struct, frozen=True):
    """Everything the pipeline judges, read once."""

    env: Environment
    launch: Optional[LaunchConfig]
    model: Model
    ignore: tuple[str, ...]
    notes: tuple[Finding, ...] = ()  # the input file's own findings (a Dockerfile's unpinned pins)


def gather(req: CheckRequest, db: Database) -> Inputs:
    """Read the environment (live, another interpreter, or a file), apply host overrides, parse
    the launch command for the framework it starts, and read the served model's facts."""
    from compat.inputs import apply_overrides

    if req.deep and req.from_file:
        raise UsageError(
            "--deep reads the installed files: it needs a live interpreter, not --from",
            hint="run it where the stack is installed (or with --interpreter PATH)",
        )
    ignore = check_ignore(req.ignore, db)
    notes: tuple[Note, ...] = ()
    if req.from_file:
        from compat.inputs import ReadOptions, load_input

        loaded = load_input(
            req.from_file, db.matrix, ReadOptions(req.python_version, req.machine or "x86_64")
        )
        env, notes = loaded.env, loaded.notes
    else:
        from compat.probe import probe_environment

        # A check needs the caches' top level only (who built them, how old): no size walk
        # and no wheel tags on the path that runs before every launch.
        env = probe_environment(req.interpreter, deep=req.deep, walk_caches=False, tags=False)
    env = apply_overrides(env, db.matrix, req.driver, req.gpus, req.env_vars, req.python_version)
    drv = env.driver
    if req.driver and not isinstance(drv, Unknown) and drv.version_source != "--driver":
        click.echo(f"note: {drv.version_source}", err=True)  # a branch: say what was assumed
    given = LaunchInput(argv=req.launch_argv)
    if not req.launch_argv and req.launch_file:
        from compat.fileio import read_text

        given = LaunchInput(
            text=read_text(req.launch_file, what="launch file", stream=True),
            origin=req.launch_file,
        )
    launch = parse_launch_for(env, given)
    model: Model = None
    if launch is not None:
        from compat.probe.model import model_of_launch

        model = model_of_launch(launch, env.env)
    drv = env.driver
    driver_cuda = None if isinstance(drv, Unknown) or isinstance(drv.cuda, Unknown) else drv.cuda
    findings = tuple(
        n.finding for n in notes if n.applies(driver_cuda, not isinstance(drv, Unknown))
    )
    return Inputs(env, launch, model, ignore, findings)


def run_check(
    req: CheckRequest, db: Optional[Database] = None
) -> tuple[Environment, list[Finding]]:
    """The environment and its findings, for `compat check` and `compat run` (and tests, which
    pass the database they loaded once)."""
    got, found = judged(req, db)
    return got.env, found


def judged(req: CheckRequest, db: Optional[Database] = None) -> tuple[Inputs, list[Finding]]:
    """What was judged and the findings."""
    from compat.check import sort_findings

    db = db or load_database()
    got = gather(req, db)
    found = check(got.env, db, got.launch, got.model, ignore=got.ignore)
    drop = set(got.ignore)
    notes = [n for n in got.notes if n.code not in drop and (n.advisory or "") not in drop]
    return got, sort_findings([*found, *notes]) if notes else found


@click.command("check", context_settings={"ignore_unknown_options": False})
@check_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif"]),
    default="text",
    show_default=True,
)
@click.option("-o", "--output", metavar="FILE", help="Write the report to FILE.")
@ray_options
@click.argument("launch", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def check_cmd(
    ctx: click.Context,
    from_file: Optional[str],
    interpreter: Optional[str],
    driver: Optional[str],
    gpus: tuple[str, ...],
    env_vars: tuple[str, ...],
    python_version: Optional[str],
    deep: bool,
    launch_file: Optional[str],
    fail_on: str,
    ignore: tuple[str, ...],
    fmt: str,
    output: Optional[str],
    ray: Optional[str],
    runtime_env: Optional[str],
    ray_timeout: Optional[float],
    launch: tuple[str, ...],
    machine: Optional[str] = None,
) -> None:
    """Will this stack work here? Checks the environment (live, or --from FILE) against the
    version database and the known-crash advisories; the server launch command goes after `--`:

    \b
      compat check -- python -m sglang.launch_server --model-path M --attention-backend flashinfer

    With --ray, every node of the Ray cluster is checked where the server's workers run, and the
    nodes are compared (docs/cluster.md).
    """
    python_version = python_version_or_interpreter(python_version, "--python")
    if ray is not None or runtime_env is not None or ray_timeout is not None:
        from compat.commands.cluster import check_options as ray_check_options
        from compat.commands.cluster import cluster_check

        ray_check_options(
            ray,
            runtime_env,
            ray_timeout,
            {
                "--from": from_file,
                "--interpreter": interpreter,
                "--driver": driver,
                "--gpu": gpus,
                "--python": python_version,
                "--deep": deep,
            },
        )
        report, found = cluster_check(
            ray or "auto",
            runtime_env,
            ray_timeout,
            fmt=fmt,
            fail_on=fail_on,
            env_vars=env_vars,
            launch_file=launch_file,
            launch_argv=launch,
            ignore=ignore,
        )
        write_report(report, output)
        ctx.exit(exit_code(found, fail_on))
    from compat.format import Format, render

    req = CheckRequest(
        from_file,
        interpreter,
        driver,
        gpus,
        env_vars,
        python_version,
        deep,
        launch_file,
        fail_on,
        ignore,
        launch,
        machine,
    )
    got, findings = judged(req)
    env = got.env
    from compat.channel.source import locate

    src = locate()
    text = write_report(render(Format(fmt), findings, env, fail_on, data=src.to_dict()), output)
    err = stale_note(src)
    code = exit_code(findings, fail_on)
    if answers.recording():
        keep_answer(req, got, src, text if output in (None, "-") else None, err, code)
    ctx.exit(code)


def keep_answer(
    req: CheckRequest,
    got: Inputs,
    src: DataSource,
    text: Optional[str],
    err: str,
    code: int,
    then: Optional[Sequence[str]] = None,
) -> None:
    """Keep a live check's answer for its next identical run (compat.answers; `compat run`'s
    too, with the command it execs after: `then`) when everything it judged was read here: not
    from a file, another interpreter or a launch file, not with --driver (its note), and only a
    report to stdout (a --deep that had to import torch, or whose reading stopped at a time
    bound, says so itself: compat.answers.unrepeatable). A launch command's own inputs are
    watched too: the files the model's facts come from (and, by compat.answers, every argument
    taken as a path: a --config file, a model folder)."""
    env = got.env
    whole = not (req.from_file or req.interpreter or req.driver or req.launch_file or env.launch)
    extra: list[tuple[str, bool]] = []
    unused: tuple[str, ...] = ("memory_used_mib",)
    if whole and req.launch_argv:
        from compat.probe.model import watched as model_watched

        try:
            found = model_watched(got.launch, env.env)
        except Exception:  # what cannot be named cannot be watched: nothing is kept
            found = None
        if found is None:
            whole = False
        else:
            extra = found  # the arguments themselves are watched as paths by compat.answers
        unused = ()  # the memory fit counts what else runs on the GPU
    # Without a launch command no check weighs the memory in use (compat.check.fit sizes a
    # launch): a GPU serving something between two checks does not change the answer.
    keep_live(env, src, text if whole else None, err, code, unused=unused, extra=extra, then=then)
