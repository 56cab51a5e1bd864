"""Command line: `compat env | check | run | lock | dockerfile | lint | explain | matrix | diff`.

Each command imports what it needs when it runs, so `compat check` pays only for its own path.
Reports go to stdout, chatter to stderr; exit codes come from compat.errors.
"""

from __future__ import annotations

import sys
from typing import Optional

import click

from compat import __version__
from compat.errors import CompatError, UsageError


def _write(text: str, output: Optional[str]) -> None:
    """The report to stdout, or to FILE (opened only now, so a failed run leaves no empty file)."""
    if output and output != "-":
        try:
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror}") from exc
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="compat")
def cli() -> None:
    """Check that an LLM-serving stack (sglang/vLLM, torch, triton, CUDA kernels, driver, GPU)
    fits together, before a launch; lock a tuple that does."""


@cli.command("env")
@click.option("--json", "as_json", is_flag=True, help="Write the versioned JSON snapshot.")
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout.")
@click.option("--python", "python_exe", metavar="PATH",
              help="Inspect another interpreter's environment (e.g. a server's venv).")
@click.option("--all", "everything", is_flag=True, help="List every distribution, not just the stack.")
@click.option("--no-host", is_flag=True, help="Skip driver/GPU probing.")
def env_cmd(as_json: bool, output: Optional[str], python_exe: Optional[str], everything: bool,
            no_host: bool) -> None:
    """What compat sees here: Python, the stack's distributions, torch build, driver, GPUs,
    env vars and caches. Nothing is imported: torch's build is read from its files."""
    from compat.probe import probe_environment

    env = probe_environment(python_exe, everything=everything, host=not no_host)
    if as_json:
        from compat.snapshot import dumps

        _write(dumps(env), output)
    else:
        from compat.format.env_text import format_env

        _write(format_env(env), output)


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: runs the CLI and turns CompatError into its exit code and hint."""
    try:
        cli.main(args=argv, prog_name="compat", standalone_mode=False)
    except CompatError as exc:
        click.echo(f"compat: error: {exc.message}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(0)
