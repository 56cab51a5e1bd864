"""`compat env`: what compat sees here, read without importing any of the stack."""

from __future__ import annotations

from typing import Optional

import click

from compat.commands.common import keep_live, ray_options, stale_note, write_report


@click.command("env")
@click.option("--json", "as_json", is_flag=True, help="Write the versioned JSON snapshot.")
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout.")
@click.option(
    "--interpreter",
    metavar="PATH",
    help="Inspect another interpreter's environment (e.g. a server's venv).",
)
@click.option(
    "--python",
    "python_exe",
    metavar="PATH",
    hidden=True,
    help="Deprecated spelling of --interpreter.",
)
@click.option(
    "--all", "everything", is_flag=True, help="List every distribution, not just the stack."
)
@click.option("--no-host", is_flag=True, help="Skip driver/GPU probing.")
@ray_options
def env_cmd(
    as_json: bool,
    output: Optional[str],
    interpreter: Optional[str],
    python_exe: Optional[str],
    everything: bool,
    no_host: bool,
    ray: Optional[str],
    runtime_env: Optional[str],
    ray_timeout: Optional[float],
) -> None:
    """What compat sees here: Python, the stack's distributions, torch build, driver, GPUs,
    env vars and caches. Nothing is imported: torch's build is read from its files."""
    if python_exe is not None:
        # `--python` means a Python version everywhere else (check, lock, lint).
        click.echo("compat env: --python PATH is deprecated; use --interpreter PATH", err=True)
        interpreter = interpreter or python_exe
    if ray is not None or runtime_env is not None or ray_timeout is not None:
        from compat.commands.cluster import check_options, cluster_env

        check_options(ray, runtime_env, ray_timeout, {"--interpreter": interpreter})
        write_report(
            cluster_env(
                ray or "auto",
                runtime_env,
                ray_timeout,
                as_json=as_json,
                everything=everything,
                host=not no_host,
            ),
            output,
        )
        return
    from compat.probe import probe_environment

    env = probe_environment(interpreter, everything=everything, host=not no_host)
    if as_json:
        from compat.snapshot import dumps

        write_report(dumps(env), output)
    else:
        from compat.channel.source import locate
        from compat.format.env_text import format_env

        src = locate()
        text = format_env(env).rstrip("\n") + f"\nData          {src.line()}\n"
        text = write_report(text, output)
        err = stale_note(src)
        # Kept for a repeat run (compat.answers) when it read this machine alone, in full.
        whole = not (interpreter or no_host or python_exe or output not in (None, "-"))
        keep_live(env, src, text if whole else None, err, 0, walked=True)
