"""Command line: `compat env | check | run | lock | dockerfile | lint | explain | matrix | diff`.

Each command imports what it needs when it runs, so `compat check` pays only for its own path.
Reports go to stdout, chatter to stderr; exit codes come from compat.errors.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

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


# Commands that live in their own modules, imported only when invoked (keeps start-up fast).
LAZY_COMMANDS = {
    "run": "compat.commands.run:run_cmd",
    "lock": "compat.commands.lock:lock_cmd",
    "dockerfile": "compat.commands.dockerfile:dockerfile_cmd",
    "lint": "compat.commands.lint:lint_cmd",
    "explain": "compat.commands.explain:explain_cmd",
    "matrix": "compat.commands.matrix:matrix_cmd",
    "diff": "compat.commands.diff:diff_cmd",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        if name in LAZY_COMMANDS:
            import importlib

            module, _, attr = LAZY_COMMANDS[name].partition(":")
            try:
                cmd: click.Command = getattr(importlib.import_module(module), attr)
            except ImportError:
                return None
            return cmd
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="compat")
def cli() -> None:
    """Check that an LLM-serving stack (sglang/vLLM, torch, triton, CUDA kernels, driver, GPU)
    fits together, before a launch; lock a tuple that does."""


def _ray_options(fn: Any) -> Any:
    """`--ray [ADDRESS]` and its companions (compat.cluster; Ray is imported only when given)."""
    opts = [
        click.option(
            "--ray",
            metavar="[ADDRESS]",
            is_flag=False,
            flag_value="auto",
            default=None,
            help="Probe every node of a running Ray cluster in a Ray task, as its workers "
            "see it: auto (default), HOST:PORT or ray://HOST:10001. Needs compat[ray].",
        ),
        click.option(
            "--runtime-env",
            metavar="JSON",
            help="With --ray: the job's runtime env (as for ray job submit --runtime-env-json).",
        ),
        click.option(
            "--ray-timeout",
            type=float,
            metavar="SECONDS",
            help="With --ray: report nodes that have not answered by then (default 60).",
        ),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


@cli.command("env")
@click.option("--json", "as_json", is_flag=True, help="Write the versioned JSON snapshot.")
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout.")
@click.option(
    "--python",
    "python_exe",
    metavar="PATH",
    help="Inspect another interpreter's environment (e.g. a server's venv).",
)
@click.option(
    "--all", "everything", is_flag=True, help="List every distribution, not just the stack."
)
@click.option("--no-host", is_flag=True, help="Skip driver/GPU probing.")
@_ray_options
def env_cmd(
    as_json: bool,
    output: Optional[str],
    python_exe: Optional[str],
    everything: bool,
    no_host: bool,
    ray: Optional[str],
    runtime_env: Optional[str],
    ray_timeout: Optional[float],
) -> None:
    """What compat sees here: Python, the stack's distributions, torch build, driver, GPUs,
    env vars and caches. Nothing is imported: torch's build is read from its files."""
    if ray is not None or runtime_env is not None or ray_timeout is not None:
        from compat.cluster import check_options, cluster_env

        check_options(ray, runtime_env, ray_timeout, {"--python": python_exe})
        _write(
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

    env = probe_environment(python_exe, everything=everything, host=not no_host)
    if as_json:
        from compat.snapshot import dumps

        _write(dumps(env), output)
    else:
        from compat.format.env_text import format_env

        _write(format_env(env), output)


_FAIL_ON = ("error", "warning", "info", "never")


def _check_options(fn: Any) -> Any:
    """Options shared by `compat check` and `compat run`."""
    opts = [
        click.option(
            "--from",
            "from_file",
            metavar="FILE",
            help="Check a snapshot (compat env --json) or a pip freeze file instead of this host.",
        ),
        click.option(
            "--interpreter",
            metavar="PATH",
            help="Inspect another interpreter's environment (a server's venv).",
        ),
        click.option("--driver", metavar="VERSION", help="The target's NVIDIA driver version."),
        click.option(
            "--gpu",
            "gpus",
            multiple=True,
            metavar="NAME|sm_XY",
            help="A target GPU (repeatable): a name such as h100, or sm_90.",
        ),
        click.option(
            "--env",
            "env_vars",
            multiple=True,
            metavar="KEY=VALUE",
            help="An environment variable of the target (repeatable).",
        ),
        click.option(
            "--python", "python_version", metavar="X.Y", help="The target's Python version."
        ),
        click.option(
            "--deep",
            is_flag=True,
            help="Also read the compiled extensions (ELF needs and symbols).",
        ),
        click.option(
            "--launch-file", metavar="FILE", help="Read the server launch command from FILE."
        ),
        click.option(
            "--fail-on",
            type=click.Choice(_FAIL_ON),
            default="error",
            show_default=True,
            help="Exit 1 when a finding at or above this severity is found.",
        ),
        click.option(
            "--ignore",
            multiple=True,
            metavar="CODE|ID",
            help="Drop findings with this code or advisory id (repeatable).",
        ),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _run_check(
    from_file: Optional[str],
    interpreter: Optional[str],
    driver: Optional[str],
    gpus: tuple[str, ...],
    env_vars: tuple[str, ...],
    python_version: Optional[str],
    deep: bool,
    launch_file: Optional[str],
    ignore: tuple[str, ...],
    launch_argv: tuple[str, ...],
) -> tuple[Any, list[Any]]:
    from compat.advisories import load_advisories
    from compat.check import Context, run_checks
    from compat.inputs import apply_overrides, load_from
    from compat.matrix.load import Matrix
    from compat.resources import advisories_dir

    matrix = Matrix()
    if from_file:
        env = load_from(from_file, matrix)
    else:
        from compat.probe import probe_environment

        # A check needs the caches' top level only (who built them, how old): no size walk
        # on the path that runs before every launch.
        env = probe_environment(interpreter, deep=deep, walk_caches=False)
    env = apply_overrides(env, matrix, driver, gpus, env_vars, python_version)
    launch = _launch(env, launch_file, launch_argv)
    ctx = Context(env=env, matrix=matrix, launch=launch, deep=deep)
    findings = run_checks(ctx, load_advisories(advisories_dir()), ignore)
    return env, findings


def _launch(env: Any, launch_file: Optional[str], argv: tuple[str, ...]) -> Any:
    """The launch command (after `--`, from a file, or recorded in a snapshot), parsed with the
    installed version of the framework it starts."""
    from compat.launch import detect_entrypoint, parse_launch, parse_launch_text

    if argv:
        fw, _ = detect_entrypoint(list(argv))
        return parse_launch(list(argv), env.version_of(fw) if fw in ("sglang", "vllm") else None)
    if launch_file:
        from compat.snapshot import read_text

        text = read_text(launch_file)
        first = parse_launch_text(text)
        version = env.version_of(first.framework) if first.framework in ("sglang", "vllm") else None
        return parse_launch_text(text, version) if version else first
    if env.launch:
        return _launch(env, None, tuple(env.launch))
    return None


def _exit_code(findings: list[Any], fail_on: str) -> int:
    if fail_on == "never":
        return 0
    from compat.models import Severity

    threshold = Severity(fail_on)
    return 1 if any(f.severity >= threshold for f in findings) else 0


@cli.command("check", context_settings={"ignore_unknown_options": False})
@_check_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif"]),
    default="text",
    show_default=True,
)
@click.option("-o", "--output", metavar="FILE", help="Write the report to FILE.")
@_ray_options
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
) -> None:
    """Will this stack work here? Checks the environment (live, or --from FILE) against the
    version database and the known-crash advisories; the server launch command goes after `--`:

      compat check -- python -m sglang.launch_server --model-path M --attention-backend flashinfer

    With --ray, every node of the Ray cluster is checked where the server's workers run, and the
    nodes are compared (docs/cluster.md).
    """
    if ray is not None or runtime_env is not None or ray_timeout is not None:
        from compat.cluster import check_options, cluster_check

        check_options(
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
        _write(report, output)
        ctx.exit(_exit_code(found, fail_on))
    from compat.format import Format, render

    env, findings = _run_check(
        from_file,
        interpreter,
        driver,
        gpus,
        env_vars,
        python_version,
        deep,
        launch_file,
        ignore,
        launch,
    )
    _write(render(Format(fmt), findings, env, fail_on), output)
    ctx.exit(_exit_code(findings, fail_on))


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: runs the CLI and turns CompatError into its exit code and hint."""
    try:
        rv = cli.main(args=argv, prog_name="compat", standalone_mode=False)
        if isinstance(rv, int) and rv:
            sys.exit(rv)
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
