"""`compat matrix sync | show | validate`: refresh, query and validate the version database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import click
import msgspec.structs

from compat.errors import DataError, UsageError
from compat.models import canonicalize_name, parse_version


@click.group("matrix")
def matrix_cmd() -> None:
    """The version database under matrices/: refresh it from PyPI, query it, validate it."""


@matrix_cmd.command("sync")
@click.argument("projects", nargs=-1)
@click.option("--write", is_flag=True, help="Write the changed files (default: only report).")
@click.option(
    "--check",
    "check_only",
    is_flag=True,
    help="Exit 1 when the data would change, 0 when it is current (for CI); writes nothing.",
)
@click.option("--diff", "show_diff", is_flag=True, help="Print a unified diff of the changes.")
@click.option(
    "--repo",
    is_flag=True,
    help="Sync the source checkout's matrices/ (for a data release) instead of the user folder.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Sync a whole database in DIR (seeded from the data in use when empty); read it back "
    "with COMPAT_MATRICES=DIR.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="HTTP cache (default: $COMPAT_CACHE_DIR or ~/.cache/compat/http).",
)
@click.option("--index-url", default="https://pypi.org/pypi", show_default=True)
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 16))
@click.option(
    "--no-builds",
    is_flag=True,
    help="Skip the build facts (libraries, CUDA, torch symbols of the compiled wheels).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
def sync_cmd(
    projects: tuple[str, ...],
    write: bool,
    check_only: bool,
    show_diff: bool,
    repo: bool,
    out_dir: Optional[Path],
    cache_dir: Optional[Path],
    index_url: str,
    concurrency: int,
    no_builds: bool,
    quiet: bool,
) -> None:
    """Read every release's metadata from PyPI (PEP 658 files, else HTTP range reads of the
    wheel) and rebuild the generated data deterministically: pins (generated/*.toml), the build
    facts of the compiled wheels (generated/builds/) and each framework release's launch flags
    (generated/launch/). With --write it goes to the user folder ($XDG_DATA_HOME/compat/data, a
    new generation switched in at once), or to --repo / --out DIR (every file or none)."""
    from compat.matrix.launchsync import FRAMEWORKS, run_launch_sync
    from compat.matrix.progress import Progress, interruptible
    from compat.matrix.sync import run_sync
    from compat.matrix.target import resolve_target
    from compat.matrix.target import write as write_target

    if check_only and write:
        raise UsageError("--check only reports; drop --write")
    target, recovered = resolve_target(repo, out_dir)
    if recovered == "completed":
        click.echo(f"completed an interrupted sync of {target.root}", err=True)
    generated = target.base / "generated"
    with interruptible(), Progress(quiet=quiet) as progress:
        report = run_sync(
            list(projects) or None,
            False,
            generated,
            cache_dir,
            concurrency,
            index_url,
            progress,
            builds=not no_builds,
        )
        # Then each framework release's flags and env vars (only releases not read yet).
        wanted = [p.project for p in report.projects if p.project in FRAMEWORKS and p.found]
        launch = (
            run_launch_sync(
                generated,
                cache_dir,
                False,
                wanted,
                {
                    p.project: _release_keys(p.new_text)
                    for p in report.projects
                    if p.project in wanted
                },
                concurrency,
                index_url,
                progress,
            )
            if wanted
            else None
        )
    click.echo(report.summary(final=False))
    if launch is not None:
        click.echo(launch.summary(final=False), nl=False)
    changed = [(p.path, p.new_text) for p in report.projects if p.changes_file]
    changed += [
        (p, new) for p, old, new in (report.builds.files if report.builds else ()) if old != new
    ]
    if launch is not None:
        changed += [(r.path, r.new_text) for r in launch.frameworks if r.changes_file]
    if show_diff:
        click.echo(report.unified_diff(), nl=False)
        if launch is not None:
            click.echo(launch.unified_diff(), nl=False)
    names = ", ".join(str(p.relative_to(target.base)) for p, _ in changed)
    ok = report.ok and (launch is None or launch.ok)
    if not changed:
        click.echo(f"nothing to change in {target.describe()}")
    elif check_only:
        click.echo(f"the data would change: {names}")
        raise click.exceptions.Exit(1)
    elif not write:
        click.echo(f"would write {names} to {target.describe()} (run with --write)")
    else:
        with interruptible():
            where, info = write_target(target, changed, index_url)
        click.echo(f"wrote {names} to {where} (data {info.version}, synced {info.synced})")
        if target.kind == "out":
            click.echo(f"use it with: COMPAT_MATRICES={target.root} compat check ...", err=True)
    if not ok:
        raise click.exceptions.Exit(1)


def _release_keys(text: str) -> list[str]:
    """The releases a generated project file (as the pins sync renders it) lists."""
    from compat.matrix.tomlfile import parse_toml

    releases = parse_toml(text.encode("utf-8"), "generated file").get("releases", {})
    return list(releases) if isinstance(releases, dict) else []


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
    parsed = parse_version(version)
    if parsed is None:
        raise UsageError(f"{version[:64]!r} is not a version")
    rel = matrix.release(name, parsed)
    if rel is None:
        near = ", ".join(str(v) for v in sorted(releases)[-5:])
        raise UsageError(
            f"{canonicalize_name(name)} {version} is not in the database",
            hint=f"newest known: {near}",
        )
    facts = matrix.build_facts(name, rel.version)
    doc = _summary(rel) | {
        "requires": list(rel.requires_raw),
        "wheels": list(rel.wheels),
        "sdist": rel.sdist,
        "requires_known": rel.requires_known,
        "source": msgspec.structs.asdict(rel.source) if rel.source else None,
        "build_facts": _facts_doc(facts, matrix) if facts else None,
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
    none = (
        "    (none of the stack)"
        if rel.requires_known
        else "    (unknown: no wheel, and its sdist does not state its requirements)"
    )
    lines += [f"    {r}" for r in rel.requires_raw] or [none]
    lines.append(f"  wheels           {len(rel.wheels)}" + (" + sdist" if rel.sdist else ""))
    lines += [f"    {w}" for w in rel.wheels[:12]]
    if len(rel.wheels) > 12:
        lines.append(f"    ... {len(rel.wheels) - 12} more")
    if rel.source:
        s = rel.source
        lines.append(
            f"  source           {s.file} (sha256 {s.sha256[:16]}…, {s.method}, {s.read_at})"
        )
    if facts is not None:
        lines += _facts_lines(_facts_doc(facts, matrix))
    click.echo("\n".join(lines))


def _facts_doc(facts: Any, matrix: Any) -> dict[str, Any]:
    """The build facts of one release, each with the method that derived it."""
    from compat.matrix.builtfor import span

    exports = matrix.torch_exports()
    checked = sorted(v for v, row in exports.releases.items() if row.answers(facts.imports))
    sig = facts.signals
    return {
        "file": facts.file,
        "sha256": facts.sha256,
        "read_at": facts.read_at,
        "bytes_read": facts.bytes_read,
        "cuda": {
            "majors": list(facts.cuda),
            "from": list(facts.cuda_from),
            "method": "DT_NEEDED (or .dynstr library names) of the wheel's shared objects",
        },
        "libraries": list(facts.libraries),
        "torch": {
            "imports": facts.import_count,
            "built_against": [str(v) for v in facts.torch],
            "in_words": span(facts.torch),
            "checked": [str(v) for v in checked],
            "method": "the torch symbols its .dynsym imports against each torch release's "
            "exports (builds/torch-exports.toml)",
        },
        "archs": {
            "sass": [f"{a}.{b}" for a, b in facts.sass],
            "ptx": [f"{a}.{b}" for a, b in facts.ptx],
            "read": facts.archs,
            "method": "fatbin headers of members read whole",
        },
        "signals": {
            "requires_torch": list(sig.requires_torch),
            "requires_cuda": sig.requires_cuda,
            "local": sig.local,
            "copins": list(sig.copins),
        },
        "members": list(facts.members),
    }


def _facts_lines(doc: dict[str, Any]) -> list[str]:
    t, c, a, sig = doc["torch"], doc["cuda"], doc["archs"], doc["signals"]
    mib = doc["bytes_read"] / 2**20
    lines = [
        f"  build facts      {doc['file']} (sha256 {doc['sha256'][:16]}…, "
        f"{mib:.1f} MiB of ranges, {doc['read_at']})",
        "    CUDA           "
        + (", ".join(c["from"]) if c["from"] else "no CUDA runtime library needed")
        + f"  [{c['method']}]",
        "    libraries      " + (", ".join(doc["libraries"]) or "(none beyond the C/C++ runtime)"),
    ]
    if t["imports"]:
        built = t["in_words"] or (
            f"no torch release of the {len(t['checked'])} checked exports them all"
        )
        lines.append(
            f"    torch ABI      imports {t['imports']} torch symbols; built against {built}"
        )
        lines.append(f"                   [{t['method']}]")
    else:
        lines.append("    torch ABI      imports no torch symbol")
    sass = ", ".join(a["sass"]) or "none read"
    ptx = ", ".join(a["ptx"]) or "none"
    lines.append(f"    GPU archs      SASS {sass}; PTX {ptx}  [{a['method']}: {a['read']}]")
    signals = [f"co-pin {p}" for p in sig["copins"]]
    signals += [f"requires {r}" for r in sig["requires_torch"]]
    if sig["requires_cuda"]:
        signals.append(f"its nvidia-*/cuda-toolkit requirements pull CUDA {sig['requires_cuda']}")
    if sig["local"]:
        signals.append(f"local tag +{sig['local']}")
    lines.append("    signals        " + ("; ".join(signals) or "(none in the metadata)"))
    lines.append("    members        [how read; symbol table from; needed libraries from]")
    lines += [f"      {m}" for m in doc["members"]]
    return lines


def _summary(rel: Any) -> dict[str, Any]:
    return {
        "version": str(rel.version),
        "upload_time": rel.upload_time,
        "yanked": rel.yanked,
        "cuda": rel.cuda,
        "requires_python": str(rel.requires_python),
    }
