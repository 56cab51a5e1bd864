"""What differs between two environments (compat.env/1 snapshots), the differences that matter
most to the stack first.

Ranking (lower first; alphabetical within a rank):

  1 stack      framework, torch build, triton, kernels, companions, nvidia-*/cuda-* runtime
               wheels, Python version: the tuple that must fit together
  2 host       driver (kernel module, CUDA), GPUs (count, name, compute capability, memory, MIG)
  3 device env what CUDA, NCCL and the loader see: CUDA_VISIBLE_DEVICES, CUDA_*, NCCL_*,
               NVSHMEM_*, LD_LIBRARY_PATH, LD_PRELOAD, PYTORCH_CUDA_ALLOC_CONF, TORCH_CUDA_ARCH_LIST
  4 import env what Python imports and framework switches: PYTHONPATH, VIRTUAL_ENV, SGLANG_*,
               VLLM_*, FLASHINFER_*, TRITON_*, TORCH_*
  5 context    under Ray or not, RAY_*, torch.distributed rendezvous (MASTER_*, RANK...),
               container, WSL
  6 launch     the server's normalized launch settings (defaults applied)
  7 packages   other distributions
  8 the rest   caches, PATH, Python executable, GPU UUIDs, device nodes, other variables

Volatile facts (snapshot time, GPU memory in use, install times) are not compared. Path lists
(LD_LIBRARY_PATH, PYTHONPATH, PATH) are compared entry by entry. Pure: both environments, and
optionally what `compat check` found on each, arrive as arguments.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from msgspec import Struct
from msgspec.structs import replace

from compat.families import families
from compat.launch import LaunchConfig
from compat.models import Environment, Finding, Unknown
from compat.redact import redacted

DIFF_SCHEMA = "compat.diff/1"

RANKS: dict[int, str] = {
    1: "stack: versions and builds that must fit together",
    2: "host: driver and GPUs",
    3: "device environment: what CUDA, NCCL and the loader see",
    4: "import path and framework switches",
    5: "process context: Ray, torch.distributed, container",
    6: "server launch settings",
    7: "other packages",
    8: "the rest",
}

_DEVICE_ENV_PREFIXES = ("CUDA_", "NCCL_", "NVSHMEM_", "NVIDIA_", "UCX_", "GLOO_")
_DEVICE_ENV = frozenset(
    {
        "LD_LIBRARY_PATH",
        "LD_PRELOAD",
        "PYTORCH_CUDA_ALLOC_CONF",
        "PYTORCH_ALLOC_CONF",
        "TORCH_CUDA_ARCH_LIST",
        "TORCH_SYMM_MEM_DISABLE_MULTICAST",
        "PYTORCH_NVML_BASED_CUDA_CHECK",
        "CUBLAS_WORKSPACE_CONFIG",
    }
)
_IMPORT_ENV_PREFIXES = (
    "SGLANG_",
    "SGL_",
    "VLLM_",
    "FLASHINFER_",
    "TRITON_",
    "TORCH_",
    "TORCHINDUCTOR_",
    "XFORMERS_",
)
_IMPORT_ENV = frozenset({"PYTHONPATH", "VIRTUAL_ENV", "CONDA_PREFIX"})
_CONTEXT_ENV = frozenset({"MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK"})
# Variables with no bearing on the stack, however they differ.
_LATE_ENV = frozenset({"PATH", "CUDA_CACHE_PATH", "CUDA_MPS_PIPE_DIRECTORY"})
PATH_LISTS = frozenset({"LD_LIBRARY_PATH", "PYTHONPATH", "PATH", "LD_PRELOAD"})
# Launch settings whose change says nothing about compatibility.
_LAUNCH_MINOR = frozenset({"model"})


class Change(Struct, frozen=True):
    """One difference: `a`/`b` are None where the fact is absent on that side."""

    rank: int
    area: str
    key: str
    a: Optional[str]
    b: Optional[str]
    detail: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        if self.a is None:
            return "added"
        if self.b is None:
            return "removed"
        return "changed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "area": self.area,
            "key": self.key,
            "kind": self.kind,
            "a": self.a,
            "b": self.b,
            "detail": list(self.detail),
        }


class EnvDiff(Struct, frozen=True):
    changes: tuple[Change, ...]
    only_a: tuple[Finding, ...] = ()  # found by `compat check` on A only
    only_b: tuple[Finding, ...] = ()

    @property
    def same(self) -> bool:
        return not (self.changes or self.only_a or self.only_b)


def env_rank(name: str) -> int:
    if name in _LATE_ENV:
        return 8
    if name in _DEVICE_ENV or name.startswith(_DEVICE_ENV_PREFIXES):
        return 3
    if name in _IMPORT_ENV or name.startswith(_IMPORT_ENV_PREFIXES):
        return 4
    if name in _CONTEXT_ENV or name.startswith("RAY_"):
        return 5
    return 8


def _s(value: object) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, Unknown):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _list_detail(a: Sequence[str], b: Sequence[str], what: str = "entries") -> tuple[str, ...]:
    """Entries only in A (-), only in B (+), and a note when the shared ones moved."""
    out = [f"- {e}" for e in a if e not in b] + [f"+ {e}" for e in b if e not in a]
    shared_a = [e for e in a if e in b]
    shared_b = [e for e in b if e in a]
    if shared_a != shared_b:
        out.append(
            f"the same {what} in another order: {', '.join(shared_a)} -> {', '.join(shared_b)}"
        )
    return tuple(out)


def _env_changes(a: Mapping[str, str], b: Mapping[str, str]) -> list[Change]:
    out = []
    for name in sorted(set(a) | set(b)):
        va, vb = a.get(name), b.get(name)
        if va == vb:
            continue
        detail: tuple[str, ...] = ()
        if name in PATH_LISTS and va is not None and vb is not None:
            detail = _list_detail([e for e in va.split(":") if e], [e for e in vb.split(":") if e])
        elif name == "CUDA_VISIBLE_DEVICES" and va is not None and vb is not None:
            la, lb = [x.strip() for x in va.split(",")], [x.strip() for x in vb.split(",")]
            if sorted(la) == sorted(lb):
                detail = (
                    "the same devices in another order: device numbers inside the process "
                    "map to other GPUs",
                )
        out.append(Change(env_rank(name), "env", name, va, vb, detail))
    return out


def _dist_changes(a: Environment, b: Environment) -> list[Change]:
    da = {d.key: d for d in a.distributions}
    db = {d.key: d for d in b.distributions}
    out = []
    for key in sorted(set(da) | set(db)):
        x, y = da.get(key), db.get(key)
        stack = families().is_stack(key)
        rank = 1 if stack else 7
        if x is None or y is None:
            out.append(
                Change(
                    rank, "package", key, x.raw_version if x else None, y.raw_version if y else None
                )
            )
            continue
        detail = []
        if x.location != y.location:
            detail.append(f"location: {x.location} -> {y.location}")
        if (x.broken or y.broken) and x.broken != y.broken:
            detail.append(f"broken: {x.broken or 'no'} -> {y.broken or 'no'}")
        if x.needs != y.needs:
            detail.extend(_list_detail(list(x.needs), list(y.needs), "libraries"))
        if x.raw_version != y.raw_version or detail:
            out.append(Change(rank, "package", key, x.raw_version, y.raw_version, tuple(detail)))
    return out


def _probed_changes(
    a: object, b: object, area: str, label: str, fields: Sequence[tuple[str, int]]
) -> list[Change]:
    """A change per differing field, at the field's rank; one change at the first field's rank
    when either side is Unknown (compared as its text)."""
    if isinstance(a, Unknown) or isinstance(b, Unknown):
        sa, sb = _whole(a, fields), _whole(b, fields)
        return [Change(fields[0][1], area, label, sa, sb)] if sa != sb else []
    out = []
    for f, rank in fields:
        va, vb = _s(getattr(a, f)), _s(getattr(b, f))
        if va != vb:
            out.append(Change(rank, area, f"{label} {f.replace('_', ' ')}", va, vb))
    return out


def _whole(value: object, fields: Sequence[tuple[str, int]]) -> Optional[str]:
    """A probed record in one line: its fields that matter most (rank < 8), or the Unknown."""
    if isinstance(value, Unknown):
        return str(value)
    parts = [
        f"{f.replace('_', ' ')} {_s(getattr(value, f))}"
        for f, rank in fields
        if rank < 8 and getattr(value, f) not in (None, (), "")
    ]
    return ", ".join(parts)


def _host_changes(a: Environment, b: Environment) -> list[Change]:
    return (
        _probed_changes(
            a.python,
            b.python,
            "python",
            "python",
            (("version", 1), ("implementation", 1), ("machine", 1), ("executable", 8)),
        )
        + _probed_changes(
            a.torch,
            b.torch,
            "torch",
            "torch build",
            (("version", 1), ("cuda", 1), ("hip", 1), ("cuda_from_deps", 1), ("libs", 1)),
        )
        + _probed_changes(a.driver, b.driver, "driver", "driver", (("version", 2), ("cuda", 2)))
        + _gpu_changes(a, b)
        + _probed_changes(
            a.context,
            b.context,
            "context",
            "context",
            (("container", 5), ("wsl", 5), ("device_nodes", 8)),
        )
    )


def _gpu_changes(a: Environment, b: Environment) -> list[Change]:
    ga, gb = a.gpus, b.gpus
    if isinstance(ga, Unknown) or isinstance(gb, Unknown):
        sa, sb = _s(ga), _s(gb)
        if isinstance(ga, tuple):
            sa = f"{len(ga)} GPU(s)"
        if isinstance(gb, tuple):
            sb = f"{len(gb)} GPU(s)"
        return [Change(2, "gpu", "GPUs", sa, sb)] if sa != sb else []
    out = []
    if len(ga) != len(gb):
        out.append(Change(2, "gpu", "GPU count", str(len(ga)), str(len(gb))))
    by_a = {g.index: g for g in ga}
    by_b = {g.index: g for g in gb}
    for i in sorted(set(by_a) | set(by_b)):
        x, y = by_a.get(i), by_b.get(i)
        if x is None or y is None:
            out.append(Change(2, "gpu", f"GPU {i}", x.name if x else None, y.name if y else None))
            continue
        for f in ("name", "sm", "memory_total_mib", "mig"):
            va, vb = _s(getattr(x, f)), _s(getattr(y, f))
            if va != vb:
                out.append(Change(2, "gpu", f"GPU {i} {f}", va, vb))
        if x.uuid != y.uuid:
            out.append(Change(8, "gpu", f"GPU {i} uuid", x.uuid, y.uuid))
    return out


def _launch_of(env: Environment) -> Optional[LaunchConfig]:
    """The launch a snapshot recorded, parsed as `compat check` parses it (None if unreadable)."""
    from compat.errors import CompatError
    from compat.pipeline import LaunchInput, parse_launch_for

    try:
        return parse_launch_for(env, LaunchInput())
    except CompatError:
        return None


def _launch_changes(a: Environment, b: Environment) -> list[Change]:
    la, lb = _launch_of(a), _launch_of(b)
    out: list[Change] = []
    ray_a = bool(la.settings.get("under_ray")) if la else _ray_env(a)
    ray_b = bool(lb.settings.get("under_ray")) if lb else _ray_env(b)
    if ray_a != ray_b:
        out.append(
            Change(
                5,
                "context",
                "under Ray",
                _s(ray_a),
                _s(ray_b),
                ("RAY_* in the environment or a `ray job submit` wrapper",),
            )
        )
    if la is None and lb is None:
        if a.launch != b.launch:
            out.append(
                Change(
                    6,
                    "launch",
                    "launch command",
                    " ".join(a.launch) or None,
                    " ".join(b.launch) or None,
                )
            )
        return out
    if la is None or lb is None or la.framework != lb.framework:
        out.append(
            Change(
                6,
                "launch",
                "launch command",
                " ".join(a.launch) or None,
                " ".join(b.launch) or None,
            )
        )
        return out
    for name in sorted(set(la.settings) | set(lb.settings)):
        if name == "under_ray":
            continue
        va, vb = _s(la.settings.get(name)), _s(lb.settings.get(name))
        if va != vb:
            rank = 8 if name in _LAUNCH_MINOR else 6
            oa, ob = la.origin(name), lb.origin(name)
            detail = (f"from {oa} -> {ob}",) if oa != ob else ()
            out.append(Change(rank, "launch", f"launch {name}", va, vb, detail))
    fa = [t.split("=", 1)[0] for t in la.argv if t.startswith("--")]
    fb = [t.split("=", 1)[0] for t in lb.argv if t.startswith("--")]
    only = _list_detail(sorted(set(fa)), sorted(set(fb)), "flags")
    if only:
        out.append(
            Change(
                8,
                "launch",
                "launch flags",
                None if not fa else f"{len(fa)} flags",
                None if not fb else f"{len(fb)} flags",
                only,
            )
        )
    return out


def _ray_env(env: Environment) -> bool:
    from compat.launch import RAY_MARKERS

    return any(k in env.env for k in RAY_MARKERS)


def _cache_changes(a: Environment, b: Environment) -> list[Change]:
    ca = {c.kind: c for c in a.caches}
    cb = {c.kind: c for c in b.caches}
    out = []
    for kind in sorted(set(ca) | set(cb)):
        x, y = ca.get(kind), cb.get(kind)
        if x is None or y is None:
            out.append(
                Change(8, "cache", f"{kind} cache", x.path if x else None, y.path if y else None)
            )
            continue
        for f in ("path", "exists", "entries", "size_bytes", "built_by"):
            va, vb = _s(getattr(x, f)), _s(getattr(y, f))
            if va != vb:
                out.append(Change(8, "cache", f"{kind} cache {f}", va, vb))
    return out


# Where a fact came from is provenance, not a difference: a freeze file's own path shows in its
# Unknown reasons, dist locations and finding texts, and two copies of one file must not differ.
_INPUT = "the input"


def _unsourced(text: str, source: str) -> str:
    return text.replace(source, _INPUT) if source and source != "live" else text


def _neutral(env: Environment) -> Environment:
    """The environment with its own source path replaced by a neutral word (see _INPUT)."""
    src = env.source
    if not src or src == "live":
        return env

    def fact(v: Any) -> Any:
        return Unknown(_unsourced(v.reason, src)) if isinstance(v, Unknown) else v

    dists = tuple(
        replace(d, location=_INPUT) if d.location == src else d for d in env.distributions
    )
    torch = env.torch
    if not isinstance(torch, Unknown):
        torch = replace(torch, source=_unsourced(torch.source, src))
    return replace(
        env,
        python=fact(env.python),
        distributions=dists,
        torch=fact(torch),
        driver=fact(env.driver),
        gpus=fact(env.gpus),
        context=fact(env.context),
    )


def _finding_key(f: Finding, source: str) -> tuple[str, str, str]:
    # "Could not tell" on both sides for want of the same fact is not a difference, whatever
    # version it was asked about: the fact is missing on both.
    if f.missing:
        return (f.code, f.advisory or "", f"missing {f.missing}")
    return (f.code, f.advisory or "", _unsourced(f.message, source))


def diff_environments(
    a: Environment,
    b: Environment,
    findings_a: Sequence[Finding] = (),
    findings_b: Sequence[Finding] = (),
) -> EnvDiff:
    """Every difference between A and B, ranked; findings on one side only, when given."""
    src_a, src_b = a.source, b.source
    a, b = _neutral(a), _neutral(b)
    changes = (
        _dist_changes(a, b)
        + _host_changes(a, b)
        + _env_changes(a.env, b.env)
        + _launch_changes(a, b)
        + _cache_changes(a, b)
    )
    changes.sort(key=lambda c: (c.rank, c.area != "context" or c.key != "under Ray", c.key))
    ka = {_finding_key(f, src_a) for f in findings_a}
    kb = {_finding_key(f, src_b) for f in findings_b}
    return EnvDiff(
        tuple(changes),
        tuple(f for f in findings_a if _finding_key(f, src_a) not in kb),
        tuple(f for f in findings_b if _finding_key(f, src_b) not in ka),
    )


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _show(v: Optional[str]) -> str:
    return "(absent)" if v is None else (v if v != "" else '""')


def format_text(d: EnvDiff, a_label: str, b_label: str) -> str:
    lines = [f"compat diff: A = {a_label}", f"             B = {b_label}"]
    if d.same:
        lines.append("No differences compat looks at.")
        return "\n".join(lines) + "\n"
    if d.only_a or d.only_b:
        lines.append("")
        lines.append("compat check differs:")
        for side, fs in (("A", d.only_a), ("B", d.only_b)):
            for f in fs:
                tag = f.code + (f" {f.advisory}" if f.advisory else "")
                lines.append(f"  only {side}: {f.severity.value} [{tag}] {f.message}")
    rank = 0
    width = max((len(c.key) for c in d.changes), default=0)
    width = min(width, 34)
    for c in d.changes:
        if c.rank != rank:
            rank = c.rank
            lines.append("")
            lines.append(f"{rank} {RANKS[rank]}")
        lines.append(f"  {c.key:<{width}}  {_show(c.a)} -> {_show(c.b)}")
        for detail in c.detail:
            lines.append(f"  {'':<{width}}    {detail}")
    lines.append("")
    lines.append(
        f"{len(d.changes)} difference(s)"
        + (
            f"; compat check: {len(d.only_a)} finding(s) only in A, {len(d.only_b)} only in B"
            if d.only_a or d.only_b
            else ""
        )
    )
    return "\n".join(lines) + "\n"


def format_json(d: EnvDiff, a_label: str, b_label: str) -> str:
    doc = {
        "schema": DIFF_SCHEMA,
        "a": a_label,
        "b": b_label,
        "same": d.same,
        "ranks": {str(k): v for k, v in RANKS.items()},
        "changes": [c.to_dict() for c in d.changes],
        "findings": {
            "only_a": [f.to_dict() for f in d.only_a],
            "only_b": [f.to_dict() for f in d.only_b],
        },
    }
    return json.dumps(doc, indent=2) + "\n"


@redacted
def dumps(d: EnvDiff, a_label: str, b_label: str, fmt: str) -> str:
    """The diff in `fmt`, secrets scrubbed."""
    return format_json(d, a_label, b_label) if fmt == "json" else format_text(d, a_label, b_label)
