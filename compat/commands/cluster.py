"""`compat env --ray` and `compat check --ray`: probe every node of a Ray cluster, check each,
compare them (docs/cluster.md)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Optional, TextIO

from compat.errors import InputError, UsageError
from compat.jsondoc import parse as parse_json
from compat.models import ClusterProbe, Finding


def parse_runtime_env(text: Optional[str]) -> dict[str, Any]:
    """`--runtime-env JSON`: a JSON object, as `ray job submit --runtime-env-json` takes it."""
    if not text:
        return {}
    try:
        value = parse_json(text, "--runtime-env")
    except InputError as exc:
        raise UsageError(
            exc.message, hint='e.g. --runtime-env \'{"env_vars": {"NCCL_NVLS_ENABLE": "1"}}\''
        ) from None
    if not isinstance(value, dict):
        raise UsageError(
            "--runtime-env must be a JSON object",
            hint='e.g. --runtime-env \'{"env_vars": {"NCCL_NVLS_ENABLE": "1"}}\'',
        )
    return value


def check_options(
    ray: Optional[str],
    runtime_env: Optional[str],
    timeout: Optional[float],
    conflicts: Mapping[str, object],
) -> None:
    """Usage errors for `--ray` and its companions; `conflicts` are options that describe one host."""
    if ray is None:
        given = [
            n
            for n, v in (("--runtime-env", runtime_env), ("--ray-timeout", timeout))
            if v is not None
        ]
        if given:
            raise UsageError(
                f"{' and '.join(given)} {'apply' if len(given) > 1 else 'applies'} only with --ray",
                hint="add --ray (or --ray ADDRESS) to check a Ray cluster",
            )
        return
    bad = sorted(name for name, value in conflicts.items() if value)
    if bad:
        raise UsageError(
            f"{', '.join(bad)} cannot be combined with --ray: each node is probed "
            "where the server's workers run",
            hint="drop them, or check one host without --ray",
        )
    if timeout is not None and not timeout > 0:
        raise UsageError(f"--ray-timeout {timeout:g}: expected a number of seconds above 0")


def cluster_env(
    address: str,
    runtime_env: Optional[str],
    timeout: Optional[float],
    *,
    as_json: bool,
    everything: bool = False,
    host: bool = True,
) -> str:
    """`compat env --ray`: the report text (or JSON)."""
    from compat.probe.ray import DEFAULT_TIMEOUT, collect

    env = parse_runtime_env(runtime_env)
    probe = collect(address, env, timeout or DEFAULT_TIMEOUT, everything=everything, host=host)
    _summary(probe, sys.stderr)
    if as_json:
        from compat.snapshot import probe_to_dict

        return json.dumps(probe_to_dict(probe), indent=2) + "\n"
    from compat.format.cluster import format_cluster_env

    return format_cluster_env(probe)


def cluster_check(
    address: str,
    runtime_env: Optional[str],
    timeout: Optional[float],
    *,
    fmt: str,
    fail_on: str,
    env_vars: Sequence[str] = (),
    launch_file: Optional[str] = None,
    launch_argv: Sequence[str] = (),
    ignore: Sequence[str] = (),
) -> tuple[str, list[Finding]]:
    """`compat check --ray`: the report, and every finding (for the exit code)."""
    from compat.format.cluster import format_cluster_findings
    from compat.pipeline import LaunchInput, check_cluster, check_ignore, load_database
    from compat.probe.ray import DEFAULT_TIMEOUT, collect, import_ray

    env = parse_runtime_env(runtime_env)
    import_ray()  # before loading the database: say at once when Ray is missing
    given = LaunchInput(argv=tuple(launch_argv))
    if launch_file and not launch_argv:
        from compat.fileio import read_text

        given = LaunchInput(
            text=read_text(launch_file, what="launch file", stream=True), origin=launch_file
        )
    db = load_database()
    ignore = check_ignore(ignore, db)
    probe = collect(address, env, timeout or DEFAULT_TIMEOUT)
    _summary(probe, sys.stderr)
    result = check_cluster(probe, db, given, env_vars=env_vars, ignore=ignore)
    return format_cluster_findings(result, fmt, fail_on), result.all_findings()


def _summary(probe: ClusterProbe, stream: TextIO) -> None:
    counts: dict[str, int] = {}
    for r in probe.nodes:
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
    parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    print(
        f"ray {probe.ray_version}: {len(probe.nodes)} node(s) probed in {probe.elapsed_s:.1f} s "
        f"({parts or 'none'})",
        file=stream,
    )
