"""`compat run [check options] -- CMD ...`: check with CMD as the launch command, then exec CMD
(a container ENTRYPOINT guard: CMD replaces compat, so it gets the signals and sets the exit code)."""

from __future__ import annotations

import sys
from typing import Optional

import click

from compat import answers
from compat.channel.source import locate
from compat.commands.check import judged, keep_answer
from compat.commands.common import (
    CheckRequest,
    check_options,
    exit_code,
    python_version_or_interpreter,
)
from compat.entry import exec_command


@click.command("run", context_settings={"allow_interspersed_args": False})
@check_options
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="Print nothing when CMD starts (findings below --fail-on are not shown).",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True, metavar="-- CMD ...")
def run_cmd(
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
    quiet: bool,
    command: tuple[str, ...],
    machine: Optional[str] = None,
) -> None:
    """Check this environment with CMD as the server launch command, then run CMD in compat's
    place when nothing at or above --fail-on is found; otherwise print the findings on stderr
    and exit 1 without running it. CMD's signals and exit code are its own (exec), so this fits
    a container ENTRYPOINT:

    \b
      compat run -- python -m sglang.launch_server --model-path M --tp-size 4

    A command that is not an sglang/vLLM server is checked without launch settings.
    """
    from compat.format import Format, render
    from compat.models import Severity

    argv = list(command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise click.UsageError("no command to run after `--`")
    if not argv[0] or any("\0" in a for a in argv):
        # exec refuses both; a shell would say "command not found" for the empty name
        raise click.UsageError("CMD must be a program name, and no argument may hold a NUL byte")
    req = CheckRequest(
        from_file,
        interpreter,
        driver,
        gpus,
        env_vars,
        python_version_or_interpreter(python_version, "--python"),
        deep,
        launch_file,
        fail_on,
        ignore,
        tuple(argv),
        machine,
    )
    got, findings = judged(req)
    env = got.env
    code = exit_code(findings, fail_on)
    if code:
        err = render(Format.TEXT, findings, env, fail_on) + (
            f"compat run: not starting {argv[0]}: findings at or above {fail_on} "
            "(fix them, or pass --ignore CODE|ID / --fail-on)\n"
        )
    elif not quiet and any(f.severity >= Severity.WARNING for f in findings):
        shown = [f for f in findings if f.severity >= Severity.WARNING]
        err = render(Format.TEXT, shown, env, fail_on)
    else:
        err = ""
    click.echo(err, err=True, nl=False)
    if answers.recording():  # the next identical run answers from this record, and execs too
        keep_answer(req, got, locate(), "", err, code, then=None if code else argv)
    if code:
        sys.exit(code)
    exec_command(argv)
