"""`compat data show | update`: which database is in use, and fresh data from the package index."""

from __future__ import annotations

import json
from typing import Optional

import click


@click.group("data")
def data_cmd() -> None:
    """The database in use (version, date, source) and its updates: new data arrives as the
    compat-data distribution, fetched into the user folder without a compat release."""


@data_cmd.command("show")
@click.option("--json", "as_json", is_flag=True)
def show_cmd(as_json: bool) -> None:
    """Which data is in use and why: COMPAT_MATRICES, the user folder, or the installed data."""
    from compat.channel.source import baseline, locate, user_source
    from compat.channel.store import Store

    src = locate()
    base = baseline()
    user = user_source()
    doc = {
        "in_use": src.to_dict(),
        "installed": base.to_dict(),
        "user_folder": {
            "path": str(Store().root),
            "current": user.to_dict() if user else None,
            "generations": Store().generations(),
        },
    }
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    lines = [f"in use      {src.line()}"]
    if base.root != src.root:
        lines.append(f"installed   {base.line()}")
    if user is not None and user.root != src.root:
        lines.append(f"user folder {user.line()} (not newer than the installed data)")
    elif user is None:
        lines.append(f"user folder {Store().root} (empty)")
    note = src.stale_note()
    if note:
        lines.append(f"note: {note}")
    click.echo("\n".join(lines))


@data_cmd.command("update")
@click.option(
    "--index-url",
    metavar="URL",
    help="Simple index to look in (default: PIP_INDEX_URL, pip.conf's index-url, else PyPI; "
    "PIP_EXTRA_INDEX_URL is searched too).",
)
@click.option("--offline", is_flag=True, help="Touch no network: say which data is in use.")
@click.option("-q", "--quiet", is_flag=True, help="No progress.")
def update_cmd(index_url: Optional[str], offline: bool, quiet: bool) -> None:
    """Fetch the newest compat-data from the package index into the user folder
    ($XDG_DATA_HOME/compat/data), verify its sha256 against the index's, validate it, and use it
    from now on when it is newer than the installed data. Works without pip and with a read-only
    site-packages; an interrupted update leaves the previous data in use."""
    from compat.channel.netconf import net_config
    from compat.channel.update import update
    from compat.matrix.progress import Progress, interruptible

    net = net_config(index_url)
    with interruptible(), Progress(quiet=quiet) as progress:
        result = update(net, progress, offline=offline)
    if result.status == "offline":
        click.echo(f"offline: not looking for new data; in use: {result.before.line()}")
        return
    cand = result.candidate
    if result.status == "current":
        newest = f" (newest on the index: {cand.version})" if cand else ""
        click.echo(f"up to date: {result.before.line()}{newest}")
        return
    assert cand is not None
    click.echo(
        f"updated: {result.before.info.version or 'unversioned'} -> {cand.version} "
        f"({cand.filename}, sha256 {cand.sha256[:16]}..., verified; "
        f"{result.bytes_received / 1024:.0f} KiB, {result.elapsed_s:.1f} s)"
    )
    click.echo(f"in use: {result.after.line()}")
    if result.after.kind.value == "COMPAT_MATRICES":
        click.echo("note: COMPAT_MATRICES is set, so the data it names stays in use", err=True)
