"""`compat advisories`: list and filter the known-crash advisories; export them in OSV format."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import click

from compat.advisories import Advisory
from compat.commands.common import write_report
from compat.errors import OutputError, UsageError

SEVERITIES = ("crash", "hang", "wrong-output", "oom", "perf")


def _gpu_matches(adv: Advisory, gpu: str, cc: Optional[tuple[int, int]]) -> bool:
    a = adv.affected
    if not a.gpu_cc and not a.gpu_names:
        return True  # not tied to a GPU: it can happen on this one
    if cc is not None and cc in a.gpu_cc:
        return True
    return any(n.lower() in gpu.lower() for n in a.gpu_names)


def select(
    advisories: Sequence[Advisory],
    *,
    package: Sequence[str] = (),
    gpu: Optional[str] = None,
    gpu_cc: Optional[tuple[int, int]] = None,
    severity: Sequence[str] = (),
    project: Sequence[str] = (),
    text: Optional[str] = None,
    withdrawn: bool = False,
) -> list[Advisory]:
    """The advisories that meet every filter given (pure)."""
    from compat.models import canonicalize_name

    wanted = {canonicalize_name(p) for p in package}
    out = []
    for adv in advisories:
        if adv.is_withdrawn and not withdrawn:
            continue
        names = {n for r in adv.affected.packages for n in r.names} | {adv.affected.framework}
        if wanted and not wanted & names:
            continue
        if gpu is not None and not _gpu_matches(adv, gpu, gpu_cc):
            continue
        if severity and adv.severity.value not in severity:
            continue
        if project and adv.project not in project:
            continue
        if text:
            hay = " ".join((adv.id, adv.summary, adv.details, adv.source)).lower()
            if not all(word in hay for word in text.lower().split()):
                continue
        out.append(adv)
    return out


def format_list(advisories: Sequence[Advisory]) -> str:
    if not advisories:
        return "no advisory matches\n"
    lines = []
    for a in advisories:
        mark = " (withdrawn)" if a.is_withdrawn else ""
        where = a.project or "-"
        lines.append(f"{a.id}  {a.severity.value:<12} {where:<10} {a.summary}{mark}")
    lines.append(f"\n{len(advisories)} advisory(ies); `compat explain ID` shows one in full")
    return "\n".join(lines) + "\n"


@click.group("advisories", invoke_without_command=True)
@click.option("--package", multiple=True, metavar="NAME", help="Only those on this package.")
@click.option("--gpu", metavar="NAME|sm_XY", help="Only those that can happen on this GPU.")
@click.option(
    "--severity", multiple=True, type=click.Choice(SEVERITIES), help="Only this severity."
)
@click.option("--project", multiple=True, metavar="TRACKER", help="Only from this tracker.")
@click.option("--text", metavar="WORDS", help="Only those whose text holds all these words.")
@click.option("--withdrawn", is_flag=True, help="Include withdrawn advisories.")
@click.option("--json", "as_json", is_flag=True, help="The matching advisories as OSV JSON.")
@click.option("-o", "--output", metavar="FILE", help="Write to FILE.")
@click.pass_context
def advisories_cmd(
    ctx: click.Context,
    package: tuple[str, ...],
    gpu: Optional[str],
    severity: tuple[str, ...],
    project: tuple[str, ...],
    text: Optional[str],
    withdrawn: bool,
    as_json: bool,
    output: Optional[str],
) -> None:
    """The known-crash advisories, filtered; `compat advisories export` writes them as OSV.

    \b
    compat advisories --package vllm --gpu h100 --severity crash
    compat advisories --text "cuda graph" --project sglang
    """
    if ctx.invoked_subcommand is not None:
        return
    from compat.pipeline import load_database

    db = load_database()
    cc: Optional[tuple[int, int]] = None
    name = gpu
    if gpu is not None:
        from compat.hardware import parse_gpu

        spec = parse_gpu(gpu, db.matrix.gpu_catalog)
        cc, name = spec.compute_capability, spec.name
    found = select(
        db.advisories,
        package=package,
        gpu=name,
        gpu_cc=cc,
        severity=severity,
        project=project,
        text=text,
        withdrawn=withdrawn,
    )
    if as_json:
        from compat.advisories.osv import to_osv

        write_report(json.dumps([to_osv(a) for a in found], indent=2) + "\n", output)
    else:
        write_report(format_list(found), output)


@advisories_cmd.command("export")
@click.option("--format", "fmt", type=click.Choice(["osv"]), default="osv", show_default=True)
@click.option(
    "-o",
    "--output",
    "out_dir",
    metavar="DIR",
    required=True,
    help="Folder to write one JSON file per advisory into (created if missing).",
)
@click.option(
    "--withdrawn/--no-withdrawn", default=True, help="Include withdrawn ones (OSV marks them)."
)
def export_cmd(fmt: str, out_dir: str, withdrawn: bool) -> None:
    """Write every advisory as an OSV record, one JSON file each (x_COMPAT-NNNN.json)."""
    from compat.advisories.osv import to_osv
    from compat.fileio import atomic_write
    from compat.pipeline import load_database

    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"-o {out_dir}: not a folder")
    advisories = [a for a in load_database().advisories if withdrawn or not a.is_withdrawn]
    try:
        for adv in advisories:
            doc = to_osv(adv)
            atomic_write(folder / f"{doc['id']}.json", (json.dumps(doc, indent=2) + "\n").encode())
    except OSError as exc:
        raise OutputError(f"cannot write into {out_dir}: {exc.strerror or exc}") from exc
    click.echo(f"wrote {len(advisories)} OSV record(s) into {out_dir}", err=True)
