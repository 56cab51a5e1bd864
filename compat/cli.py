"""Command line: `compat env | check | run | lock | dockerfile | lint | explain | matrix | data | diff`.

Each command lives in compat/commands/ and is imported when it runs, so `compat check` pays only
for its own path. Reports go to stdout, chatter to stderr; exit codes come from compat.errors,
and anything else that escapes a command is a crash (exit 70), never a verdict.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from typing import NoReturn, Optional

import click

from compat import __version__
from compat.errors import INTERNAL_ERROR_EXIT, CompatError

# Every command, imported only when invoked (keeps start-up fast).
COMMANDS = {
    "env": "compat.commands.env:env_cmd",
    "check": "compat.commands.check:check_cmd",
    "run": "compat.commands.run:run_cmd",
    "lock": "compat.commands.lock:lock_cmd",
    "dockerfile": "compat.commands.dockerfile:dockerfile_cmd",
    "lint": "compat.commands.lint:lint_cmd",
    "explain": "compat.commands.explain:explain_cmd",
    "advisories": "compat.commands.advisories:advisories_cmd",
    "matrix": "compat.commands.matrix:matrix_cmd",
    "data": "compat.commands.data:data_cmd",
    "diff": "compat.commands.diff:diff_cmd",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        # An ImportError here is a broken install or a bug: it propagates to main() and is
        # reported as an internal error, never as "No such command".
        cmd: click.Command = getattr(importlib.import_module(module), attr)
        return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="compat")
def cli() -> None:
    """Check that an LLM-serving stack (sglang/vLLM, torch, triton, CUDA kernels, driver, GPU)
    fits together, before a launch; lock a tuple that does."""


def _crash(exc: BaseException) -> NoReturn:
    """An unexpected exception: a one-line message, the traceback in a report file, exit 70."""
    import tempfile
    import traceback  # only on a crash: 5 ms of imports every run otherwise

    from compat.redact import redact_text

    report = ""
    try:
        fd, path = tempfile.mkstemp(prefix="compat-crash-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(f"compat {__version__} crashed at {time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
            fh.write(redact_text(f"argv: {sys.argv!r}\n\n"))
            fh.write(
                redact_text("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
            )
        report = path
    except OSError:
        pass
    from compat.redact import redact_text

    what = (
        redact_text(f"{type(exc).__name__}: {exc}")
        .encode("utf-8", "backslashreplace")
        .decode("utf-8")
    )
    sys.stderr.write(f"compat: internal error: {what[:300]}\n")
    if report:
        sys.stderr.write(
            f"hint: this is a bug in compat, not a finding; the details are in {report}\n"
        )
    sys.exit(INTERNAL_ERROR_EXIT)


def _usage_hint(exc: click.UsageError) -> Optional[str]:
    """A launch command given without `--`: say where it goes."""
    if (
        isinstance(exc, click.NoSuchOption)
        and exc.ctx is not None
        and exc.ctx.info_name in ("check", "run")
    ):
        return "put the server launch command after `--`: compat check -- vllm serve MODEL ..."
    return None


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: runs the CLI and turns every outcome into its exit code."""
    from compat.streams import escape_unencodable, reader_gone

    escape_unencodable()
    try:
        rv = cli.main(args=argv, prog_name="compat", standalone_mode=False)
        sys.stdout.flush()
        if isinstance(rv, int) and rv:
            sys.exit(rv)
    except CompatError as exc:
        from compat.redact import printable, redact_text

        click.echo(f"compat: error: {printable(redact_text(exc.message))}", err=True)
        if exc.hint:
            click.echo(f"hint: {printable(redact_text(exc.hint))}", err=True)
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        from compat.matrix.progress import Terminated

        # Ctrl-C: 130; SIGTERM during a sync or an update: 143 (128 + the signal), both after
        # every temporary file was removed on the way out. click turns both into Abort.
        cause = exc.__cause__ if isinstance(exc, click.exceptions.Abort) else exc
        if isinstance(cause, Terminated):
            click.echo("terminated", err=True)
            sys.exit(143)
        click.echo("interrupted" if isinstance(cause, KeyboardInterrupt) else "aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        if isinstance(exc, click.UsageError):
            hint = _usage_hint(exc)
            if hint:
                click.echo(f"hint: {hint}", err=True)
            sys.exit(2)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        reader_gone()
        sys.exit(0)
    except SystemExit:
        raise
    except Exception as exc:
        _crash(exc)
