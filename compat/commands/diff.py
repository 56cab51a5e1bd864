"""`compat diff A.json B.json`: what differs between two environments, what matters first."""

from __future__ import annotations

from typing import Optional

import click

from compat.commands.common import write_report
from compat.models import Finding


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

    \b
      compat diff works.json fails.json
    """
    from compat.diff import diff_environments, dumps
    from compat.inputs import load_from
    from compat.pipeline import LaunchInput, check, load_database, parse_launch_for

    db = load_database()
    env_a, env_b = load_from(a, db.matrix), load_from(b, db.matrix)
    fa: list[Finding] = []
    fb: list[Finding] = []
    if not no_check:
        # Each side with the launch its snapshot recorded, parsed for the framework it starts.
        fa = check(env_a, db, parse_launch_for(env_a, LaunchInput()))
        fb = check(env_b, db, parse_launch_for(env_b, LaunchInput()))
    d = diff_environments(env_a, env_b, fa, fb)
    write_report(dumps(d, a, b, fmt), output)
    ctx.exit(0 if d.same else 1)
