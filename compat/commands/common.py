"""What the commands share: writing a report, the exit code by --fail-on, shared options."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Callable, Optional, TypeVar

import click
from msgspec import Struct

from compat.errors import OutputError, UsageError
from compat.models import Environment, Finding, Severity
from compat.redact import redact_text

if TYPE_CHECKING:
    from compat.channel.source import DataSource

FAIL_ON = ("error", "warning", "info", "never")
F = TypeVar("F", bound=Callable[..., object])


def write_report(text: str, output: Optional[str]) -> str:
    """The report to stdout, or to FILE (opened only now, so a failed run leaves no empty file).
    Every report goes out through here, with the secrets in it scrubbed; returns what it wrote."""
    text = redact_text(text)
    if output and output != "-":
        try:
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise OutputError(f"cannot write {output}: {exc.strerror}") from exc
        except UnicodeEncodeError as exc:  # a lone surrogate that slipped through
            raise OutputError(f"cannot write {output}: {exc.reason}") from exc
        click.echo(f"wrote {output}", err=True)
        return text
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write the report to stdout: {exc.strerror or exc}") from exc
    return text


def stale_note(src: DataSource) -> str:
    """The database's age note on stderr when it is stale; what was written ("" if nothing)."""
    note = src.stale_note()
    text = f"note: {note}\n" if note else ""
    if text:
        click.echo(text, err=True, nl=False)
    return text


def keep_live(
    env: Environment,
    src: DataSource,
    text: Optional[str],
    err: str,
    code: int,
    walked: bool = False,
    unused: tuple[str, ...] = (),
    extra: Sequence[tuple[str, bool]] = (),
    then: Optional[Sequence[str]] = None,
) -> None:
    """Keep the answer of a command that read the live machine alone (`text`, its stdout, None:
    it read more, and nothing is kept; `err` its stderr; `then` the command it execs after)
    with everything that answer was made from (compat.answers): the files the probe read
    (every entry of the JIT caches when it `walked` them), the database's, the command's own
    (`extra`), and the host as read (but its per-GPU fields in `unused`)."""
    from compat import answers

    if not answers.recording():
        return
    if text is None or env.source != "live":
        answers.discard()
        return
    from compat.channel.source import watched as data_watched
    from compat.probe import watched as probe_watched

    found = probe_watched(env, walked=walked)
    data = data_watched(src)
    files = None if found is None or data is None else [*found, *data, *extra]
    answers.keep(text, err, code, files, unused, then)


def exit_code(findings: Sequence[Finding], fail_on: str) -> int:
    """1 when a finding is at or above --fail-on ("never": 0 whatever was found)."""
    if fail_on == "never":
        return 0
    threshold = Severity(fail_on)
    return 1 if any(f.severity >= threshold for f in findings) else 0


def _apply(fn: F, opts: list[Callable[[F], F]]) -> F:
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def ray_options(fn: F) -> F:
    """`--ray [ADDRESS]` and its companions (Ray is imported only when given)."""
    return _apply(
        fn,
        [
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
        ],
    )


class CheckRequest(Struct, frozen=True):
    """What `compat check` / `compat run` were asked, as typed values."""

    from_file: Optional[str] = None
    interpreter: Optional[str] = None
    driver: Optional[str] = None
    gpus: tuple[str, ...] = ()
    env_vars: tuple[str, ...] = ()
    python_version: Optional[str] = None
    deep: bool = False
    launch_file: Optional[str] = None
    fail_on: str = "error"
    ignore: tuple[str, ...] = ()
    launch_argv: tuple[str, ...] = ()
    machine: Optional[str] = None


#: The Linux machines a lock or Dockerfile is read for (platform_machine).
MACHINES = ("x86_64", "aarch64")


def check_options(fn: F) -> F:
    """Options shared by `compat check` and `compat run`."""
    return _apply(
        fn,
        [
            click.option(
                "--from",
                "from_file",
                metavar="FILE",
                help="Check a file instead of this host: a snapshot (compat env --json), pip freeze "
                "or requirements output, pylock.toml, uv.lock, a conda environment.yml or "
                "`conda list` file, or a Dockerfile.",
            ),
            click.option(
                "--interpreter",
                metavar="PATH",
                help="Inspect another interpreter's environment (a server's venv).",
            ),
            click.option(
                "--driver",
                metavar="VERSION",
                help="The target's NVIDIA driver (550.54.15, or a branch: 535).",
            ),
            click.option(
                "--gpu",
                "gpus",
                multiple=True,
                metavar="NAME|sm_XY",
                help="A target GPU (repeatable): h100, 'RTX 4090', 8xH100, h100:8, or sm_90.",
            ),
            click.option(
                "--env",
                "env_vars",
                multiple=True,
                metavar="KEY=VALUE",
                help="An environment variable of the target (repeatable).",
            ),
            click.option(
                "--python",
                "python_version",
                metavar="X.Y",
                help="The target's Python version (an interpreter goes to --interpreter).",
            ),
            click.option(
                "--machine",
                type=click.Choice(MACHINES),
                help="The target's CPU architecture, for the markers of a --from file "
                "(default x86_64).",
            ),
            click.option(
                "--deep",
                is_flag=True,
                help="Also read the compiled extensions (ELF needs and symbols); live only.",
            ),
            click.option(
                "--launch-file", metavar="FILE", help="Read the server launch command from FILE."
            ),
            click.option(
                "--fail-on",
                type=click.Choice(FAIL_ON),
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
        ],
    )


def python_version_or_interpreter(value: Optional[str], option: str) -> Optional[str]:
    """`--python` takes X.Y; a path there is an interpreter, spelled `--interpreter` now."""
    if value is None:
        return None
    text = value.strip()
    parts = text.split(".")
    if 2 <= len(parts) <= 3 and all(p.isascii() and p.isdigit() and len(p) <= 3 for p in parts):
        return text
    raise UsageError(
        f"{option} {value!r}: expected a Python version such as 3.11",
        hint="to inspect another interpreter's environment, use --interpreter PATH",
    )
