"""`compat diff A.json B.json`: what differs between two environments, what matters first."""

from __future__ import annotations

from typing import Any, Optional

import click

from compat.cli import _write


def _findings(env: Any, matrix: Any, advisories: Any) -> list[Any]:
    from compat.check import Context, run_checks
    from compat.cli import _launch

    ctx = Context(env=env, matrix=matrix, launch=_launch(env, None, ()))
    return run_checks(ctx, advisories)


@click.command("diff")
@click.argument("a", metavar="A.json")
@click.argument("b", metavar="B.json")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option(
    "--no-check",
    is_flag=True,
    help="Compare the facts only; do not run `compat check` on both sides.",
)
@click.option("-o", "--output", metavar="FILE", help="Write the report to FILE.")
@click.pass_context
def diff_cmd(
    ctx: click.Context, a: str, b: str, fmt: str, no_check: bool, output: Optional[str]
) -> None:
    """What differs between two environments (snapshots from `compat env --json`, or pip freeze
    files): packages and their builds, CUDA, driver, GPUs, environment variables (path lists
    entry by entry), Ray context, launch settings, caches; the differences that matter most to
    the stack first, and the findings `compat check` makes on one side only. Exit 0 when they
    do not differ, 1 when they do.

      compat diff works.json fails.json
    """
    from compat.diff import diff_environments, dumps
    from compat.inputs import load_from
    from compat.matrix.load import Matrix

    matrix = Matrix()
    env_a, env_b = load_from(a, matrix), load_from(b, matrix)
    fa: list[Any] = []
    fb: list[Any] = []
    if not no_check:
        from compat.advisories import load_advisories
        from compat.resources import advisories_dir

        advisories = load_advisories(advisories_dir())
        fa, fb = _findings(env_a, matrix, advisories), _findings(env_b, matrix, advisories)
    d = diff_environments(env_a, env_b, fa, fb)
    _write(dumps(d, a, b, fmt), output)
    ctx.exit(0 if d.same else 1)
