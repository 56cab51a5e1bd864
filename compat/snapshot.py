"""Environment <-> JSON (`compat env --json`), schema `compat.env/1`, documented in docs/env-schema.md."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any, Callable, TypeVar, Union

from compat.errors import InputError
from compat.models import (
    ENV_SCHEMA,
    GPU,
    CacheInfo,
    ClusterProbe,
    Distribution,
    Driver,
    Environment,
    HostContext,
    Node,
    NodeReport,
    NodeStatus,
    ObjectFacts,
    PythonInfo,
    TorchBuild,
    Unknown,
    parse_version,
)

T = TypeVar("T")


def _probed(value: Any, dump: Callable[[Any], Any]) -> Any:
    return {"unknown": value.reason} if isinstance(value, Unknown) else dump(value)


def to_dict(env: Environment) -> dict[str, Any]:
    def python(p: PythonInfo) -> dict[str, Any]:
        return {
            "version": p.version,
            "implementation": p.implementation,
            "executable": p.executable,
            "platform": p.platform,
            "machine": p.machine,
            "tags": list(p.tags),
        }

    def torch(t: TorchBuild) -> dict[str, Any]:
        return {
            "version": str(t.version) if t.version else None,
            "cuda": t.cuda,
            "hip": t.hip,
            "cuda_from_deps": t.cuda_from_deps,
            "source": t.source,
            "libs": list(t.libs),
            "arch_list": list(t.arch_list),
        }

    def driver(d: Driver) -> dict[str, Any]:
        return {
            "version": _probed(d.version, str),
            "version_source": d.version_source,
            "cuda": _probed(d.cuda, str),
            "cuda_source": d.cuda_source,
        }

    def gpu(g: GPU) -> dict[str, Any]:
        return {
            "index": g.index,
            "name": g.name,
            "compute_capability": f"{g.compute_capability[0]}.{g.compute_capability[1]}"
            if g.compute_capability
            else None,
            "memory_total_mib": g.memory_total_mib,
            "memory_used_mib": g.memory_used_mib,
            "mig": g.mig,
            "uuid": g.uuid,
            "source": g.source,
        }

    def context(c: HostContext) -> dict[str, Any]:
        return {
            "container": c.container,
            "wsl": c.wsl,
            "device_nodes": list(c.device_nodes),
            "notes": list(c.notes),
        }

    return {
        "schema": ENV_SCHEMA,
        "created": env.created,
        "source": env.source,
        "python": _probed(env.python, python),
        "torch": _probed(env.torch, torch),
        "driver": _probed(env.driver, driver),
        "gpus": _probed(env.gpus, lambda gs: [gpu(g) for g in gs]),
        "context": _probed(env.context, context),
        "distributions": [
            {
                "name": d.name,
                "version": d.raw_version,
                "location": d.location,
                "requires": list(d.requires),
                "broken": d.broken,
                "installed_at": d.installed_at,
                "needs": list(d.needs),
                **({"objects": [_object(o) for o in d.objects]} if d.objects else {}),
            }
            for d in env.distributions
        ],
        "env": dict(sorted(env.env.items())),
        "caches": [
            {
                "kind": c.kind,
                "path": c.path,
                "exists": c.exists,
                "size_bytes": c.size_bytes,
                "entries": c.entries,
                "truncated": c.truncated,
                "built_by": list(c.built_by),
                "oldest_mtime": c.oldest_mtime,
            }
            for c in env.caches
        ],
        "launch": list(env.launch),
        "deep": env.deep,
    }


def _object(o: ObjectFacts) -> dict[str, Any]:
    return {
        "path": o.path,
        "needed": list(o.needed),
        "torch_imports": o.torch_imports,
        "unresolved": list(o.unresolved),
        "unresolved_count": o.unresolved_count,
        "error": o.error,
    }


def dumps(env: Environment) -> str:
    return json.dumps(to_dict(env), indent=2, sort_keys=False) + "\n"


class _Reader:
    """Typed getters over a JSON dict; problems name their key path."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, path: str, what: str) -> InputError:
        return InputError(
            f"{self.origin}: {what} at '{path}'",
            hint="write the snapshot with `compat env --json -o FILE`",
        )

    def get(
        self, d: Any, key: str, kind: Union[type, tuple[type, ...]], path: str, default: Any = ...
    ) -> Any:
        if not isinstance(d, dict):
            raise self.fail(path, "expected an object")
        if key not in d or d[key] is None:
            if default is ...:
                raise self.fail(f"{path}.{key}".lstrip("."), "missing value")
            return default
        value = d[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(f"{path}.{key}".lstrip("."), f"expected {_kind_name(kind)}")
        return value

    def probed(
        self, d: dict[str, Any], key: str, build: Callable[[Any, str], T]
    ) -> Union[T, Unknown]:
        value = d.get(key)
        if value is None:
            return Unknown(f"not in the snapshot ({self.origin})")
        if isinstance(value, dict) and set(value) == {"unknown"}:
            return Unknown(str(value["unknown"]))
        return build(value, key)


def _kind_name(kind: Union[type, tuple[type, ...]]) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return kind.__name__


def from_dict(data: Any, origin: str = "snapshot") -> Environment:
    """Read a snapshot; any problem is an InputError naming the key path (exit 3)."""
    r = _Reader(origin)
    if not isinstance(data, dict):
        raise r.fail("$", "expected a JSON object")
    schema = data.get("schema")
    if not isinstance(schema, str) or not schema.startswith("compat.env/"):
        raise r.fail("schema", f"not a compat environment snapshot (schema {schema!r})")
    major = schema.split("/", 1)[1]
    if major != ENV_SCHEMA.split("/", 1)[1]:
        raise InputError(
            f"{origin}: snapshot schema {schema} is not supported (this compat reads {ENV_SCHEMA})",
            hint="upgrade compat, or write the snapshot with this version",
        )

    def python(v: Any, p: str) -> PythonInfo:
        return PythonInfo(
            r.get(v, "version", str, p),
            r.get(v, "implementation", str, p, ""),
            r.get(v, "executable", str, p, ""),
            r.get(v, "platform", str, p, ""),
            r.get(v, "machine", str, p, ""),
            tuple(str(t) for t in r.get(v, "tags", list, p, [])),
        )

    def torch(v: Any, p: str) -> TorchBuild:
        raw = r.get(v, "version", str, p, "")
        return TorchBuild(
            parse_version(raw),
            r.get(v, "cuda", str, p, None),
            r.get(v, "hip", str, p, None),
            r.get(v, "source", str, p, origin),
            r.get(v, "cuda_from_deps", str, p, None),
            tuple(str(x) for x in r.get(v, "libs", list, p, [])),
            tuple(str(x) for x in r.get(v, "arch_list", list, p, [])),
        )

    def text_or_unknown(v: Any, key: str, p: str) -> Union[str, Unknown]:
        value = v.get(key) if isinstance(v, dict) else None
        if isinstance(value, dict) and "unknown" in value:
            return Unknown(str(value["unknown"]))
        if isinstance(value, str):
            return value
        return Unknown(f"no {key} in the snapshot")

    def driver(v: Any, p: str) -> Driver:
        if not isinstance(v, dict):
            raise r.fail(p, "expected an object")
        return Driver(
            text_or_unknown(v, "version", p),
            text_or_unknown(v, "cuda", p),
            r.get(v, "version_source", str, p, ""),
            r.get(v, "cuda_source", str, p, ""),
        )

    def gpus(v: Any, p: str) -> tuple[GPU, ...]:
        if not isinstance(v, list):
            raise r.fail(p, "expected a list")
        out = []
        for i, g in enumerate(v):
            gp = f"{p}[{i}]"
            cc_text = r.get(g, "compute_capability", str, gp, None)
            cc = None
            if cc_text:
                major, _, minor = cc_text.partition(".")
                if not (major.isdigit() and minor.isdigit()):
                    raise r.fail(f"{gp}.compute_capability", f"expected 'X.Y', got {cc_text!r}")
                cc = (int(major), int(minor))
            out.append(
                GPU(
                    r.get(g, "index", int, gp, i),
                    r.get(g, "name", str, gp, "unknown"),
                    cc,
                    r.get(g, "memory_total_mib", int, gp, None),
                    r.get(g, "memory_used_mib", int, gp, None),
                    r.get(g, "mig", bool, gp, None),
                    r.get(g, "uuid", str, gp, None),
                    r.get(g, "source", str, gp, origin),
                )
            )
        return tuple(out)

    def context(v: Any, p: str) -> HostContext:
        return HostContext(
            r.get(v, "container", str, p, None),
            r.get(v, "wsl", bool, p, False),
            tuple(str(x) for x in r.get(v, "device_nodes", list, p, [])),
            tuple(str(x) for x in r.get(v, "notes", list, p, [])),
        )

    dists = []
    for i, d in enumerate(r.get(data, "distributions", list, "", [])):
        p = f"distributions[{i}]"
        raw = r.get(d, "version", str, p, "")
        version = parse_version(raw)
        broken = r.get(d, "broken", str, p, None)
        if broken is None and version is None:
            broken = f"invalid version {raw!r}"
        dists.append(
            Distribution(
                r.get(d, "name", str, p),
                version,
                raw,
                r.get(d, "location", str, p, ""),
                tuple(str(x) for x in r.get(d, "requires", list, p, [])),
                broken,
                r.get(d, "installed_at", (int, float), p, None),
                tuple(str(x) for x in r.get(d, "needs", list, p, [])),
                tuple(
                    ObjectFacts(
                        r.get(o, "path", str, f"{p}.objects[{j}]"),
                        tuple(str(x) for x in r.get(o, "needed", list, f"{p}.objects[{j}]", [])),
                        r.get(o, "torch_imports", int, f"{p}.objects[{j}]", 0),
                        tuple(
                            str(x) for x in r.get(o, "unresolved", list, f"{p}.objects[{j}]", [])
                        ),
                        r.get(o, "unresolved_count", int, f"{p}.objects[{j}]", 0),
                        r.get(o, "error", str, f"{p}.objects[{j}]", ""),
                    )
                    for j, o in enumerate(r.get(d, "objects", list, p, []))
                ),
            )
        )
    caches = []
    for i, c in enumerate(r.get(data, "caches", list, "", [])):
        p = f"caches[{i}]"
        caches.append(
            CacheInfo(
                r.get(c, "kind", str, p),
                r.get(c, "path", str, p),
                r.get(c, "exists", bool, p, False),
                r.get(c, "size_bytes", int, p, 0),
                r.get(c, "entries", int, p, 0),
                r.get(c, "truncated", bool, p, False),
                tuple(str(x) for x in r.get(c, "built_by", list, p, [])),
                r.get(c, "oldest_mtime", (int, float), p, None),
            )
        )
    env_vars = r.get(data, "env", dict, "", {})
    return Environment(
        python=r.probed(data, "python", python),
        distributions=tuple(sorted(dists, key=lambda d: d.key)),
        torch=r.probed(data, "torch", torch),
        driver=r.probed(data, "driver", driver),
        gpus=r.probed(data, "gpus", gpus),
        context=r.probed(data, "context", context),
        env={str(k): str(v) for k, v in env_vars.items()},
        caches=tuple(caches),
        source=origin,
        created=r.get(data, "created", str, "", ""),
        launch=tuple(str(x) for x in r.get(data, "launch", list, "", [])),
        deep=r.get(data, "deep", bool, "", False),
    )


def loads(text: str, origin: str = "snapshot") -> Environment:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InputError(
            f"{origin}: not valid JSON ({exc})",
            hint="write the snapshot with `compat env --json -o FILE`",
        ) from exc
    return from_dict(data, origin)


def load(path: str) -> Environment:
    return loads(read_text(path), path)


def read_text(path: str) -> str:
    """A UTF-8 text file, or an InputError (exit 3) that says what is wrong with it."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not UTF-8 text (byte {exc.start})",
            hint="pass a `compat env --json` snapshot or a pip freeze file",
        ) from exc


# Ray clusters: `compat env --ray --json` (schema compat.cluster/1) -------------------------------
CLUSTER_SCHEMA = "compat.cluster/1"


def node_report_from_task(node: Node, data: Any) -> NodeReport:
    """A node's report from what its task returned (a snapshot that does not read is a failure)."""
    if not isinstance(data, dict):
        return NodeReport(node, NodeStatus.FAILED, reason="the probe returned no snapshot")
    if data.get("hostname") and not node.hostname:
        node = dataclasses.replace(node, hostname=str(data["hostname"]))
    try:
        env = from_dict(data.get("env"), origin=f"ray node {node.label or node.node_id[:8]}")
    except InputError as exc:
        return NodeReport(node, NodeStatus.FAILED, reason=exc.message)
    env = dataclasses.replace(env, source=f"ray node {node.label or node.node_id[:8]}")
    facts = {str(k): str(v) for k, v in (data.get("facts") or {}).items()}
    return NodeReport(node, NodeStatus.OK, env=env, facts=facts)


def label_nodes(nodes: Sequence[Node]) -> list[Node]:
    """Short names: the hostname where it is unique, hostname/<node id prefix> where it is not."""
    base = {n.node_id: n.hostname or n.address or n.node_id[:8] for n in nodes}
    counts: dict[str, int] = {}
    for b in base.values():
        counts[b] = counts.get(b, 0) + 1
    return [
        dataclasses.replace(
            n,
            label=base[n.node_id]
            if counts[base[n.node_id]] == 1
            else f"{base[n.node_id]}/{n.node_id[:6]}",
        )
        for n in nodes
    ]


def order(reports: Sequence[NodeReport]) -> list[NodeReport]:
    return sorted(reports, key=lambda r: (not r.node.head, r.node.label, r.node.node_id))


def probe_to_dict(probe: ClusterProbe) -> dict[str, Any]:
    return {
        "schema": CLUSTER_SCHEMA,
        "address": probe.address,
        "ray": probe.ray_version,
        "runtime_env": dict(probe.runtime_env),
        "timeout_s": probe.timeout_s,
        "elapsed_s": probe.elapsed_s,
        "nodes": [
            dict(node_dict(r), env=to_dict(r.env) if r.env is not None else None)
            for r in probe.nodes
        ],
    }


def node_dict(r: NodeReport) -> dict[str, Any]:
    n = r.node
    return {
        "node_id": n.node_id,
        "label": n.label,
        "hostname": n.hostname,
        "address": n.address,
        "head": n.head,
        "gpus": n.gpus,
        "status": r.status.value,
        "reason": r.reason,
        "facts": dict(sorted(r.facts.items())),
    }


def probe_from_dict(data: Any, origin: str = "cluster snapshot") -> ClusterProbe:
    """Read `compat env --ray --json` back (InputError naming the key on anything malformed)."""

    def fail(path: str, what: str) -> InputError:
        return InputError(
            f"{origin}: {what} at '{path}'", hint="write it with `compat env --ray --json -o FILE`"
        )

    if not isinstance(data, dict) or data.get("schema") != CLUSTER_SCHEMA:
        raise fail("schema", f"not a {CLUSTER_SCHEMA} document")
    nodes = data.get("nodes")
    if not isinstance(nodes, list):
        raise fail("nodes", "expected a list")
    reports = []
    for i, nd in enumerate(nodes):
        if not isinstance(nd, dict) or not isinstance(nd.get("node_id"), str):
            raise fail(f"nodes[{i}].node_id", "missing value")
        try:
            status = NodeStatus(nd.get("status"))
        except ValueError as exc:
            raise fail(f"nodes[{i}].status", f"unknown status {nd.get('status')!r}") from exc
        node = Node(
            node_id=nd["node_id"],
            address=str(nd.get("address", "")),
            hostname=str(nd.get("hostname", "")),
            head=bool(nd.get("head", False)),
            gpus=float(nd.get("gpus") or 0.0),
            label=str(nd.get("label") or ""),
        )
        if status is NodeStatus.OK:
            r = node_report_from_task(node, {"env": nd.get("env"), "facts": nd.get("facts")})
            if r.status is not NodeStatus.OK:
                raise fail(f"nodes[{i}].env", r.reason)
        else:
            r = NodeReport(
                node,
                status,
                reason=str(nd.get("reason", "")),
                facts={str(k): str(v) for k, v in (nd.get("facts") or {}).items()},
            )
        reports.append(r)
    return ClusterProbe(
        address=str(data.get("address", "")),
        nodes=tuple(order(reports)),
        runtime_env=dict(data.get("runtime_env") or {}),
        timeout_s=float(data.get("timeout_s") or 60.0),
        elapsed_s=float(data.get("elapsed_s") or 0.0),
        ray_version=str(data.get("ray", "")),
    )
