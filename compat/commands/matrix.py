"""`compat matrix sync | show | validate`: refresh, query and validate the version database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import click
from packaging.version import InvalidVersion, Version

from compat.errors import DataError, UsageError
from compat.models import canonicalize_name


@click.group("matrix")
def matrix_cmd() -> None:
    """The version database under matrices/: refresh it from PyPI, query it, validate it."""


@matrix_cmd.command("sync")
@click.argument("projects", nargs=-1)
@click.option("--write", is_flag=True, help="Write the changed files (default: only report).")
@click.option("--diff", "show_diff", is_flag=True, help="Print a unified diff of the changes.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the generated files (default: the bundled matrices/generated).",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="HTTP cache (default: $COMPAT_CACHE_DIR or ~/.cache/compat/http).",
)
@click.option("--index-url", default="https://pypi.org/pypi", show_default=True)
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 16))
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
def sync_cmd(
    projects: tuple[str, ...],
    write: bool,
    show_diff: bool,
    out_dir: Optional[Path],
    cache_dir: Optional[Path],
    index_url: str,
    concurrency: int,
    quiet: bool,
) -> None:
    """Read every release's metadata from PyPI (PEP 658 files, else HTTP range reads of the
    wheel) and rebuild matrices/generated/*.toml deterministically. Needs `compat[sync]` (httpx)."""
    try:
        import httpx  # noqa: F401
    except ImportError as exc:
        raise UsageError("the sync needs httpx", hint="pip install 'compat[sync]'") from exc
    from compat import resources
    from compat.matrix.sync import run_sync

    def progress(line: str) -> None:
        if not quiet:
            click.echo(line, err=True)

    report = run_sync(
        list(projects) or None,
        write,
        out_dir or resources.generated_dir(),
        cache_dir,
        concurrency,
        index_url,
        progress,
    )
    click.echo(report.summary(), nl=False)
    if show_diff:
        click.echo(report.unified_diff(), nl=False)
    if not report.ok:
        raise click.exceptions.Exit(1)


@matrix_cmd.command("validate")
@click.option(
    "--path",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    help="Database folder to validate (default: the bundled one).",
)
def validate_cmd(root: Optional[Path]) -> None:
    """Check every database file against its schema; all problems at once, exit 3 if any."""
    from compat.matrix.load import validate_all

    problems = validate_all(root)
    if problems:
        raise DataError(
            problems,
            hint="fix the files named above; generated files are rewritten "
            "by `compat matrix sync --write`",
        )
    click.echo("database OK", err=True)


@matrix_cmd.command("show")
@click.argument("spec")
@click.option("--json", "as_json", is_flag=True)
def show_cmd(spec: str, as_json: bool) -> None:
    """What the database knows of NAME (all releases) or NAME==VERSION (one release)."""
    from compat.matrix.load import Matrix

    name, _, version = spec.partition("==")
    matrix = Matrix()
    releases = matrix.releases(name)
    if not releases:
        known = ", ".join(matrix.projects())
        raise UsageError(f"no data for {name!r}", hint=f"projects in the database: {known}")
    if not version:
        rows = [_summary(r) for _, r in sorted(releases.items())]
        if as_json:
            click.echo(json.dumps({"project": canonicalize_name(name), "releases": rows}, indent=2))
        else:
            for row in rows:
                cuda = f"  CUDA {row['cuda']}" if row["cuda"] else ""
                py = f"  Python {row['requires_python']}" if row["requires_python"] else ""
                y = "  (yanked)" if row["yanked"] else ""
                click.echo(f"{row['version']:<16}{row['upload_time'][:10]}{cuda}{py}{y}")
        return
    try:
        rel = matrix.release(name, Version(version))
    except InvalidVersion as exc:
        raise UsageError(f"{version!r} is not a version") from exc
    if rel is None:
        near = ", ".join(str(v) for v in sorted(releases)[-5:])
        raise UsageError(
            f"{canonicalize_name(name)} {version} is not in the database",
            hint=f"newest known: {near}",
        )
    doc = _summary(rel) | {
        "requires": list(rel.requires_raw),
        "wheels": list(rel.wheels),
        "sdist": rel.sdist,
        "source": vars(rel.source) if rel.source else None,
    }
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    lines = [
        f"{rel.project} {rel.version}",
        f"  uploaded         {rel.upload_time}" + ("  (yanked)" if rel.yanked else ""),
        f"  requires-python  {rel.requires_python or '(any)'}",
        f"  CUDA             {rel.cuda or '(none pulled)'}",
    ]
    lines.append("  requires")
    lines += [f"    {r}" for r in rel.requires_raw] or ["    (none of the stack)"]
    lines.append(f"  wheels           {len(rel.wheels)}" + (" + sdist" if rel.sdist else ""))
    lines += [f"    {w}" for w in rel.wheels[:12]]
    if len(rel.wheels) > 12:
        lines.append(f"    ... {len(rel.wheels) - 12} more")
    if rel.source:
        s = rel.source
        lines.append(
            f"  source           {s.file} (sha256 {s.sha256[:16]}…, {s.method}, {s.read_at})"
        )
    click.echo("\n".join(lines))


def _summary(rel: Any) -> dict[str, Any]:
    return {
        "version": str(rel.version),
        "upload_time": rel.upload_time,
        "yanked": rel.yanked,
        "cuda": rel.cuda,
        "requires_python": str(rel.requires_python),
    }
