"""`compat lint FILES`: pins in the files users keep (requirements, constraints, pyproject.toml,
pylock.toml, uv.lock, conda files, Dockerfiles) that cannot live together, as
`file:line: code severity: message` (the pre-commit hook)."""

from __future__ import annotations

from typing import Optional

import click

from compat.commands.common import (
    FAIL_ON,
    MACHINES,
    python_version_or_interpreter,
    write_report,
)
from compat.errors import UsageError


def _read(path: str) -> str:
    from compat.snapshot import read_text

    return read_text(path)


def _read_include(path: str) -> str:
    from compat.fileio import read_text

    return read_text(path, what="requirements file")


@click.command("lint")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.option(
    "--python",
    "python_version",
    metavar="X.Y",
    help="The target's Python version (markers; default 3.11).",
)
@click.option(
    "--machine",
    type=click.Choice(MACHINES),
    default="x86_64",
    show_default=True,
    help="The target's CPU architecture (markers of locks and requirements).",
)
@click.option("--driver", metavar="VERSION", help="The target's NVIDIA driver: also check it.")
@click.option(
    "--gpu",
    "gpus",
    multiple=True,
    metavar="NAME|sm_XY",
    help="A target GPU (repeatable): also check the builds' arch lists.",
)
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_ON),
    default="error",
    show_default=True,
    help="Exit 1 when a finding at or above this severity is found.",
)
@click.option(
    "--ignore",
    multiple=True,
    metavar="CODE|ID",
    help="Drop findings with this code or advisory id (repeatable).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif"]),
    default="text",
    show_default=True,
)
@click.option("-q", "--quiet", is_flag=True, help="One line per finding, no fixes.")
@click.option("-o", "--output", metavar="FILE", help="Write the report to FILE.")
@click.pass_context
def lint_cmd(
    ctx: click.Context,
    files: tuple[str, ...],
    python_version: Optional[str],
    machine: str,
    driver: Optional[str],
    gpus: tuple[str, ...],
    fail_on: str,
    ignore: tuple[str, ...],
    fmt: str,
    quiet: bool,
    output: Optional[str],
) -> None:
    """Check pinned files offline against the database: requirements*.txt, constraints*.txt
    (pip-compile output too), pyproject.toml ([project] dependencies and extras, [tool.uv.sources]),
    pylock.toml, uv.lock, conda environment.yml and `conda list` files, and Dockerfiles (the
    stage that runs: base image, pip/uv/conda installs, ENV, CMD).

    Exact pins are checked together (torch==2.7.1 beside triton==3.1.0, sglang pinning another
    torch, a +cu124 torch beside +cu126 kernels, a CUDA 12 base image under a CUDA 13 torch); a
    range gives an info when none of the releases it admits fits them; a Dockerfile's unpinned
    stack package is a warning. Driver and GPU checks run when --driver/--gpu name the target.
    Exit 1 on findings at or above --fail-on, 3 on unreadable lines or a format compat does not
    read.

    \b
      compat lint requirements.txt pyproject.toml uv.lock environment.yml Dockerfile
    """
    from compat.lint import (
        Target,
        exit_code,
        format_json,
        format_sarif,
        format_text,
        lint_files,
        summary,
    )
    from compat.pipeline import check_ignore, load_database

    if not files:
        raise UsageError("no files to lint", hint="compat lint requirements.txt pyproject.toml")
    python_version = python_version_or_interpreter(python_version, "--python")
    db = load_database()
    target = Target(python_version, driver, gpus, check_ignore(ignore, db), machine)
    pairs = [(path, _read(path)) for path in files]
    result = lint_files(pairs, db, target, _read_include)
    if fmt == "json":
        write_report(format_json(result), output)
    elif fmt == "sarif":
        write_report(format_sarif(result), output)
    else:
        text = format_text(result, verbose=not quiet)
        if not text:
            text = f"compat lint: {len(result.files)} file(s) checked, no findings\n"
        write_report(text, output)
        if result.findings or result.problems:
            click.echo(summary(result), err=True)
    ctx.exit(exit_code(result, fail_on))
