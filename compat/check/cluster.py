"""cluster-mismatch: what differs between the nodes of a Ray cluster, and nodes that did not report.

Pure: the node reports (compat.probe.ray collects them) come in, findings go out. Differences in
packages marked `cluster` in matrices/curated/packages.toml break a distributed server outright:
ranks must run the same framework, triton, kernels and NCCL (NCCL's wire protocol is not stable
across versions).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Callable, Optional

from compat.families import families
from compat.models import (
    Code,
    Finding,
    Node,
    NodeReport,
    NodeStatus,
    Severity,
    Unknown,
)

CLUSTER_MISMATCH = Code.CLUSTER_MISMATCH.value
_MISMATCH = CLUSTER_MISMATCH
# Env vars that differ from node to node by design, or that only name local paths.
_ENV_SKIP_EXACT = frozenset(
    {
        "PATH",
        "VIRTUAL_ENV",
        "CONDA_PREFIX",
        "MASTER_ADDR",
        "MASTER_PORT",
        "RANK",
        "LOCAL_RANK",
        "WORLD_SIZE",
        "OMP_NUM_THREADS",
        "HF_HOME",
        "XDG_CACHE_HOME",
        "TORCHINDUCTOR_CACHE_DIR",
        "TRITON_CACHE_DIR",
        "CUDA_CACHE_PATH",
        "CUDA_MPS_PIPE_DIRECTORY",
    }
)
_ENV_SKIP_PREFIXES = ("RAY_", "COMPAT_")
_ENV_KEEP = frozenset({"RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"})
_SHOW = 4  # node names in a message before "+N more"


def compare(reports: Sequence[NodeReport]) -> list[Finding]:
    """Cluster findings: every node that did not report, and every way the reporting nodes differ.

    GPU-side facts (driver, GPUs, GPU numbering) are compared between GPU nodes; the stack and its
    env vars between the nodes that serve (the GPU nodes when there are any: a CPU-only head
    that runs no server need not carry torch); Python between all nodes (Ray requires one).
    """
    out = [_unreported(r) for r in reports if r.status is not NodeStatus.OK or r.env is None]
    ok = [r for r in reports if r.status is NodeStatus.OK and r.env is not None]
    if len(ok) < 2:
        return out
    gpu = [r for r in ok if _has_gpus(r)]
    peers = gpu or ok
    out.extend(_python(ok))
    out.extend(_torch(peers))
    out.extend(_packages(peers))
    out.extend(_driver(gpu))
    out.extend(_gpu_models(gpu))
    out.extend(_numbering(gpu))
    out.extend(_env_vars(peers))
    return out


def _has_gpus(r: NodeReport) -> bool:
    if r.node.gpus > 0:
        return True
    g = r.env.gpus if r.env is not None else None
    return g is not None and not isinstance(g, Unknown) and len(g) > 0


def _unreported(r: NodeReport) -> Finding:
    name = _describe(r.node)
    if r.status is NodeStatus.DIED:
        return Finding(
            _MISMATCH,
            Severity.ERROR,
            f"node {name} died during the check: not checked",
            evidence=(r.reason,) if r.reason else (),
            fix=(
                "ray status   # which nodes are alive; see the node's raylet.out for why it died",
            ),
        )
    if r.status is NodeStatus.TIMEOUT:
        return Finding(
            _MISMATCH,
            Severity.WARNING,
            f"node {name} did not report: not checked",
            evidence=(r.reason,) if r.reason else (),
            fix=("run again with a longer --ray-timeout, or when the node's GPUs are free",),
        )
    if r.facts.get("runtime_env_failed"):
        return Finding(
            _MISMATCH,
            Severity.ERROR,
            f"node {name}: the runtime env cannot be set up there, so neither can the "
            "server's actors",
            evidence=(r.reason,),
            fix=("fix the --runtime-env (pip/uv/conda/working_dir) for this node",),
        )
    return Finding(
        _MISMATCH,
        Severity.WARNING,
        f"node {name}: the probe failed: not checked",
        evidence=(r.reason,) if r.reason else (),
        fix=(
            f"compat env on the node itself ({r.node.address or r.node.hostname}) shows what fails",
        ),
    )


def _describe(n: Node) -> str:
    extra = [
        x
        for x in (n.address if n.address and n.address != n.label else "", "head" if n.head else "")
        if x
    ]
    return f"{n.label} ({', '.join(extra)})" if extra else n.label


def _groups(values: Mapping[str, str]) -> list[tuple[str, list[str]]]:
    """(value, node labels), largest group first: the majority is what the others should match."""
    by: dict[str, list[str]] = {}
    for label, v in values.items():
        by.setdefault(v, []).append(label)
    return sorted(((v, sorted(ls)) for v, ls in by.items()), key=lambda g: (-len(g[1]), g[0]))


def _names(labels: Sequence[str]) -> str:
    if len(labels) <= _SHOW:
        return ", ".join(labels)
    return f"{', '.join(labels[:_SHOW])} +{len(labels) - _SHOW} more"


def _differs(
    what: str,
    values: Mapping[str, str],
    severity: Severity,
    fix: Callable[[Optional[str], list[str]], str],
    packages: tuple[str, ...] = (),
) -> list[Finding]:
    """One finding when the nodes do not all have the same value; the fix names the odd nodes and
    the majority's value (no value when there is no majority: the user picks)."""
    groups = _groups(values)
    if len(groups) < 2:
        return []
    tie = len(groups[0][1]) == len(groups[1][1])
    majority = None if tie else groups[0][0]
    others = sorted(label for _, ls in (groups if tie else groups[1:]) for label in ls)
    summary = "; ".join(f"{v} on {_names(ls)}" for v, ls in groups)
    # The message names at most _SHOW nodes per value; the evidence then lists them all.
    evidence = (
        tuple(f"{v}: {', '.join(ls)}" for v, ls in groups)
        if any(len(ls) > _SHOW for _, ls in groups)
        else ()
    )
    return [
        Finding(
            _MISMATCH,
            severity,
            f"{what} differs across nodes: {summary}",
            evidence=evidence,
            fix=(fix(majority, others),),
            packages=packages,
        )
    ]


def _python(ok: Sequence[NodeReport]) -> list[Finding]:
    full = {}
    for r in ok:
        assert r.env is not None
        p = r.env.python
        if not isinstance(p, Unknown):
            full[r.node.label] = p.version
    minor = {k: ".".join(v.split(".")[:2]) for k, v in full.items()}

    def fix(v: Optional[str], others: list[str]) -> str:
        target = f"Python {v} on {_names(others)} too" if v else "one Python on every node"
        return f"use {target} (Ray requires the same Python on every node)"

    if len(set(minor.values())) > 1:
        return _differs("Python", full, Severity.ERROR, fix)
    return _differs("Python", full, Severity.INFO, fix)


def _torch(peers: Sequence[NodeReport]) -> list[Finding]:
    values = {}
    for r in peers:
        assert r.env is not None
        t = r.env.torch
        if isinstance(t, Unknown):
            values[r.node.label] = "not installed" if "not installed" in t.reason else "unknown"
            continue
        build = (
            f"CUDA {t.cuda or t.cuda_from_deps}"
            if (t.cuda or t.cuda_from_deps)
            else (f"ROCm {t.hip}" if t.hip else "CPU")
        )
        values[r.node.label] = f"{t.version} ({build})"
    if set(values.values()) <= {"unknown"}:
        return []
    return _differs(
        "torch build",
        values,
        Severity.ERROR,
        lambda v, others: (
            (
                f"install torch {v} on {_names(others)}"
                if v
                else "install one torch build on every node"
            )
            + ": every rank must run the same torch build"
        ),
        packages=("torch",),
    )


def _packages(peers: Sequence[NodeReport]) -> list[Finding]:
    names: dict[str, str] = {}
    for r in peers:
        assert r.env is not None
        for d in r.env.distributions:
            names.setdefault(d.key, d.name)
    out: list[Finding] = []
    rest: list[tuple[str, dict[str, str]]] = []
    for key in sorted(names):
        if key == "torch":
            continue  # its build is compared above
        values = {}
        for r in peers:
            assert r.env is not None
            found = next((x for x in r.env.distributions if x.key == key), None)
            values[r.node.label] = (
                "not installed"
                if found is None
                else f"broken ({found.broken})"
                if found.broken
                else found.raw_version
            )
        if len(set(values.values())) < 2:
            continue
        if families().cluster_critical(key):
            out.extend(
                _differs(
                    names[key],
                    values,
                    Severity.ERROR,
                    functools.partial(_pin, names[key]),
                    packages=(names[key],),
                )
            )
        else:
            rest.append((names[key], values))
    if rest:
        evidence: list[str] = []
        for name, values in rest:
            evidence.extend(f"{name} = {v}: {', '.join(ls)}" for v, ls in _groups(values))
        odd = sorted({label for _, values in rest for _, ls in _groups(values)[1:] for label in ls})
        listed = ", ".join(n for n, _ in rest[:8]) + (
            f" +{len(rest) - 8} more" if len(rest) > 8 else ""
        )
        out.append(
            Finding(
                _MISMATCH,
                Severity.WARNING,
                f"{len(rest)} other package(s) differ across nodes: {listed}",
                evidence=tuple(evidence),
                fix=(
                    f"install the same packages on {_names(odd)} as on the other nodes "
                    "(one image, or one lock file: compat lock)",
                ),
                packages=tuple(n for n, _ in rest),
            )
        )
    return out


def _pin(name: str, version: Optional[str], others: list[str]) -> str:
    if version is None:
        return f"install one version of {name} on every node (one image, or one lock: compat lock)"
    if version == "not installed":
        return f"pip uninstall {name}   # on {_names(others)}"
    if version.startswith("broken"):
        return f"reinstall {name} on the other nodes"
    return f"pip install '{name}=={version}'   # on {_names(others)}"


def _driver(gpu: Sequence[NodeReport]) -> list[Finding]:
    values = {}
    for r in gpu:
        assert r.env is not None
        d = r.env.driver
        if isinstance(d, Unknown) or isinstance(d.version, Unknown):
            continue  # the node's own findings say why it is unknown
        cuda = "" if isinstance(d.cuda, Unknown) else f" (CUDA {d.cuda})"
        values[r.node.label] = f"{d.version}{cuda}"
    return _differs(
        "NVIDIA driver",
        values,
        Severity.WARNING,
        lambda v, others: (
            (
                f"install driver {v.split(' ')[0]} on {_names(others)} too"
                if v
                else "install one driver version on every GPU node"
            )
            + ": NCCL and CUDA IPC between ranks assume like drivers"
        ),
    )


def _gpu_models(gpu: Sequence[NodeReport]) -> list[Finding]:
    values = {}
    for r in gpu:
        assert r.env is not None
        g = r.env.gpus
        if isinstance(g, Unknown) or not g:
            continue
        kinds: dict[str, int] = {}
        for x in g:
            key = f"{x.name} ({x.sm})" if x.sm else x.name
            kinds[key] = kinds.get(key, 0) + 1
        values[r.node.label] = " + ".join(f"{n}x {k}" for k, n in sorted(kinds.items()))
    return _differs(
        "GPUs",
        values,
        Severity.WARNING,
        lambda v, others: (
            "keep one GPU model per serving group: give like nodes a "
            "custom resource (ray start --resources='{\"h100\": 8}') and ask for it"
        ),
    )


def _numbering(gpu: Sequence[NodeReport]) -> list[Finding]:
    """How each node exposes its GPUs to Ray: the raylet's CUDA_VISIBLE_DEVICES (`ray start`'s
    environment). Ray numbers a node's GPUs by it and hands those numbers to workers."""
    values = {}
    for r in gpu:
        v = r.facts.get("node_cuda_visible_devices")
        if v is None:
            continue  # could not read the raylet's environment
        values[r.node.label] = v if v else "unset (all GPUs)"
    return _differs(
        "GPU numbering (CUDA_VISIBLE_DEVICES that `ray start` ran with)",
        values,
        Severity.WARNING,
        lambda v, others: (
            "start every node's raylet with the same CUDA_VISIBLE_DEVICES "
            "(or none) and let Ray assign GPUs to workers"
        ),
    )


def _env_vars(peers: Sequence[NodeReport]) -> list[Finding]:
    keys: set[str] = set()
    for r in peers:
        assert r.env is not None
        keys.update(k for k in r.env.env if _compared(k))
    # Ray sets CUDA_VISIBLE_DEVICES to the GPU ids it gave the task: those differ by chance (which
    # GPU was free), not by setup. Only a value Ray did not assign is compared.
    if all(
        r.env is not None
        and r.env.env.get("CUDA_VISIBLE_DEVICES", "") == r.facts.get("gpu_ids", "")
        for r in peers
        if "gpu_ids" in r.facts
    ):
        keys.discard("CUDA_VISIBLE_DEVICES")
    out: list[Finding] = []
    for key in sorted(keys):
        values = {}
        for r in peers:
            assert r.env is not None
            v = r.env.env.get(key)
            values[r.node.label] = "unset" if v is None else repr(v)
        out.extend(_differs(key, values, Severity.WARNING, functools.partial(_env_fix, key)))
    return out


def _compared(key: str) -> bool:
    if key in _ENV_KEEP:
        return True
    return key not in _ENV_SKIP_EXACT and not key.startswith(_ENV_SKIP_PREFIXES)


def _env_fix(key: str, value: Optional[str], others: list[str]) -> str:
    if value is None:
        return (
            f"give {key} one value (or none) on every node: in `ray start`'s environment, or "
            f'for the job with --runtime-env \'{{"env_vars": {{"{key}": "..."}}}}\''
        )
    if value == "unset":
        return (
            f"unset {key} on {_names(others)} (in the environment `ray start` ran with, or the "
            "runtime env)"
        )
    plain = value[1:-1] if value.startswith(("'", '"')) else value
    return (
        f"set {key}={plain} on {_names(others)} too: in `ray start`'s environment, or for the "
        f'job with --runtime-env \'{{"env_vars": {{"{key}": "{plain}"}}}}\''
    )
