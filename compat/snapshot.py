"""Environment <-> JSON (`compat env --json`), schema `compat.env/1`, documented in docs/env-schema.md."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional, TypeVar, Union

import msgspec
import msgspec.structs

from compat.errors import InputError
from compat.jsondoc import Reader, parse
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
from compat.redact import printable, redact_env, redacted

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
            "arch_source": t.arch_source,
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
                **({"direct_url": d.direct_url} if d.direct_url else {}),
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


@redacted
def dumps(env: Environment) -> str:
    return json.dumps(to_dict(env), indent=2, sort_keys=False) + "\n"


_HINT = "write the snapshot with `compat env --json -o FILE`"
_CUDA = re.compile(r"^[0-9]{1,2}(\.[0-9]{1,2})?$")
_CC = re.compile(r"^([0-9]{1,2})\.([0-9]{1,2})$")
_PYTHON = re.compile(r"[0-9]{1,2}\.[0-9]{1,3}(\.[0-9]{1,4})?[a-z0-9+.]*", re.ASCII)
# Bounds no real environment reaches (a big venv has ~500 distributions, a node 8-72 GPUs).
_MAX_DISTS = 20_000
_MAX_GPUS = 1024
_MAX_SMALL = 4096


def _probed_in(
    r: Reader,
    d: Mapping[str, object],
    key: str,
    build: Callable[[Mapping[str, object], str], T],
) -> Union[T, Unknown]:
    """A probed fact: absent or null -> unknown; {"unknown": reason} -> Unknown; else built."""
    value = d.get(key)
    if value is None:
        return Unknown(f"not in the snapshot ({r.origin})")
    obj = r.obj(value, key)
    if set(obj) == {"unknown"}:
        return Unknown(r.text(obj["unknown"], f"{key}.unknown", 4096))
    return build(obj, key)


def _text_or_unknown(
    r: Reader, d: Mapping[str, object], key: str, path: str
) -> Union[str, Unknown]:
    value = d.get(key)
    where = r.join(path, key)
    if value is None:
        return Unknown(f"no {key} in the snapshot")
    if isinstance(value, dict):
        return Unknown(r.text(r.obj(value, where).get("unknown", ""), f"{where}.unknown", 4096))
    return r.text(value, where, 256)


def _cuda(r: Reader, d: Mapping[str, object], key: str, path: str) -> Optional[str]:
    """A CUDA version as torch writes it ("12.6"; "12" for a major only), or None."""
    text = r.opt_text(d, key, path, 32)
    if text is not None and not _CUDA.match(text):
        raise r.fail(r.join(path, key), f"expected a CUDA version such as 12.6, got {text!r}")
    return text


def from_dict(data: object, origin: str = "snapshot") -> Environment:
    """Read a snapshot; any problem is an InputError naming the key path (exit 3). Every field
    is checked for its type and bounds here, once."""
    r = Reader(origin, _HINT)
    if not isinstance(data, dict):
        raise r.fail("$", "expected a JSON object")
    doc = r.obj(data, "$")
    schema = doc.get("schema")
    if not isinstance(schema, str) or not schema.startswith("compat.env/"):
        shown = schema if isinstance(schema, str) else _type_name(schema)
        raise r.fail("schema", f"not a compat environment snapshot (schema {shown[:80]!r})")
    major = schema.split("/", 1)[1]
    if major != ENV_SCHEMA.split("/", 1)[1]:
        raise InputError(
            f"{origin}: snapshot schema {printable(schema[:80])} is not supported "
            f"(this compat reads {ENV_SCHEMA})",
            hint="upgrade compat, or write the snapshot with this version",
        )

    def python(v: Mapping[str, object], p: str) -> PythonInfo:
        version = r.get_text(v, "version", p, limit=64)
        if not _PYTHON.fullmatch(version):
            raise r.fail(
                r.join(p, "version"), f"expected a Python version such as 3.11.7, got {version!r}"
            )
        return PythonInfo(
            version,
            r.get_text(v, "implementation", p, "", 64),
            r.get_text(v, "executable", p, "", 4096),
            r.get_text(v, "platform", p, "", 256),
            r.get_text(v, "machine", p, "", 64),
            r.texts(v, "tags", p, _MAX_SMALL, 256),
        )

    def torch(v: Mapping[str, object], p: str) -> TorchBuild:
        raw = r.get_text(v, "version", p, "", 256)
        return TorchBuild(
            parse_version(raw),
            _cuda(r, v, "cuda", p),
            r.opt_text(v, "hip", p, 64),
            r.get_text(v, "source", p, origin, 4096),
            _cuda(r, v, "cuda_from_deps", p),
            r.texts(v, "libs", p, _MAX_SMALL, 256),
            r.texts(v, "arch_list", p, 256, 32),
            r.get_text(v, "arch_source", p, "", 4096),
        )

    def driver(v: Mapping[str, object], p: str) -> Driver:
        cuda = _text_or_unknown(r, v, "cuda", p)
        if isinstance(cuda, str) and not _CUDA.match(cuda):
            raise r.fail(r.join(p, "cuda"), f"expected a CUDA version such as 12.6, got {cuda!r}")
        return Driver(
            _text_or_unknown(r, v, "version", p),
            cuda,
            r.get_text(v, "version_source", p, "", 4096),
            r.get_text(v, "cuda_source", p, "", 4096),
        )

    def gpu(g: object, gp: str) -> GPU:
        o = r.obj(g, gp)
        cc_text = r.opt_text(o, "compute_capability", gp, 16)
        cc = None
        if cc_text:
            m = _CC.match(cc_text)
            if not m:
                raise r.fail(r.join(gp, "compute_capability"), f"expected 'X.Y', got {cc_text!r}")
            cc = (int(m.group(1)), int(m.group(2)))
        return GPU(
            r.get_int(o, "index", gp, 0, 0, _MAX_GPUS),
            r.get_text(o, "name", gp, "unknown", 256),
            cc,
            r.opt_int(o, "memory_total_mib", gp, 0, 2**40),
            r.opt_int(o, "memory_used_mib", gp, 0, 2**40),
            r.opt_bool(o, "mig", gp),
            r.opt_text(o, "uuid", gp, 256),
            r.get_text(o, "source", gp, origin, 4096),
        )

    def context(v: Mapping[str, object], p: str) -> HostContext:
        return HostContext(
            r.opt_text(v, "container", p, 256),
            r.get_bool(v, "wsl", p, False),
            r.texts(v, "device_nodes", p, _MAX_SMALL, 4096),
            r.texts(v, "notes", p, _MAX_SMALL, 4096),
        )

    def obj_facts(o: object, op: str) -> ObjectFacts:
        d = r.obj(o, op)
        return ObjectFacts(
            r.get_text(d, "path", op, limit=4096),
            r.texts(d, "needed", op, _MAX_SMALL, 4096),
            r.get_int(d, "torch_imports", op, 0, 0, 2**31),
            r.texts(d, "unresolved", op, _MAX_SMALL, 4096),
            r.get_int(d, "unresolved_count", op, 0, 0, 2**31),
            r.get_text(d, "error", op, "", 4096),
        )

    def dist(value: object, p: str) -> Distribution:
        d = r.obj(value, p)
        raw = r.get_text(d, "version", p, "", 256)
        version = parse_version(raw)
        broken = r.opt_text(d, "broken", p, 4096)
        if broken is None and version is None:
            broken = f"invalid version {raw[:80]!r}"
        return Distribution(
            r.get_text(d, "name", p, limit=256),
            version,
            raw,
            r.get_text(d, "location", p, "", 4096),
            r.texts(d, "requires", p, _MAX_SMALL, 4096),
            broken,
            r.opt_number(d, "installed_at", p),
            r.texts(d, "needs", p, _MAX_SMALL, 4096),
            r.each(d, "objects", p, obj_facts, 256),
            r.get_text(d, "direct_url", p, "", 4096),
        )

    def cache(value: object, p: str) -> CacheInfo:
        c = r.obj(value, p)
        return CacheInfo(
            r.get_text(c, "kind", p, limit=64),
            r.get_text(c, "path", p, limit=4096),
            r.get_bool(c, "exists", p, False),
            r.get_int(c, "size_bytes", p, 0, 0, 2**62),
            r.get_int(c, "entries", p, 0, 0, 2**62),
            r.get_bool(c, "truncated", p, False),
            r.texts(c, "built_by", p, _MAX_SMALL, 256),
            r.opt_number(c, "oldest_mtime", p),
        )

    gpu_list: Union[tuple[GPU, ...], Unknown]
    raw_gpus = doc.get("gpus")
    if raw_gpus is None:
        gpu_list = Unknown(f"not in the snapshot ({origin})")
    elif isinstance(raw_gpus, dict) and set(raw_gpus) == {"unknown"}:
        gpu_list = Unknown(r.text(raw_gpus["unknown"], "gpus.unknown", 4096))
    else:
        gpu_list = r.each(doc, "gpus", "", gpu, _MAX_GPUS)
    dists = r.each(doc, "distributions", "", dist, _MAX_DISTS)
    return Environment(
        python=_probed_in(r, doc, "python", python),
        distributions=tuple(sorted(dists, key=lambda d: d.key)),
        torch=_probed_in(r, doc, "torch", torch),
        driver=_probed_in(r, doc, "driver", driver),
        gpus=gpu_list,
        context=_probed_in(r, doc, "context", context),
        env=redact_env(r.mapping(doc, "env", "", _MAX_SMALL * 4)),
        caches=r.each(doc, "caches", "", cache, 256),
        source=origin,
        created=r.get_text(doc, "created", "", "", 64),
        launch=r.texts(doc, "launch", "", _MAX_SMALL, 64 * 1024),
        deep=r.get_bool(doc, "deep", "", False),
    )


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def loads(text: str, origin: str = "snapshot") -> Environment:
    return from_dict(parse(text, origin, _HINT), origin)


def load(path: str) -> Environment:
    return loads(read_text(path), path)


def read_text(path: str) -> str:
    """A UTF-8 text file of bounded size, or an InputError (exit 3) that says what is wrong."""
    from compat.fileio import read_text as bounded

    return bounded(
        path,
        what="file",
        hint="pass a `compat env --json` snapshot or a pip freeze file",
        stream=True,
    )


# Ray clusters: `compat env --ray --json` (schema compat.cluster/1) -------------------------------
CLUSTER_SCHEMA = "compat.cluster/1"


def node_report_from_task(node: Node, data: object) -> NodeReport:
    """A node's report from what its task returned (a snapshot that does not read is a failure)."""
    if not isinstance(data, dict):
        return NodeReport(node, NodeStatus.FAILED, reason="the probe returned no snapshot")
    where = f"ray node {node.label or node.node_id[:8]}"
    r = Reader(where, _HINT)
    try:
        hostname = r.opt_text(data, "hostname", "", 256)
        if hostname and not node.hostname:
            node = msgspec.structs.replace(node, hostname=hostname)
        env = from_dict(data.get("env"), origin=where)
        facts = r.mapping(data, "facts", "", 256)
    except InputError as exc:
        return NodeReport(node, NodeStatus.FAILED, reason=exc.message)
    env = msgspec.structs.replace(env, source=where)
    return NodeReport(node, NodeStatus.OK, env=env, facts=facts)


def label_nodes(nodes: Sequence[Node]) -> list[Node]:
    """Short names: the hostname where it is unique, hostname/<node id prefix> where it is not."""
    base = {n.node_id: n.hostname or n.address or n.node_id[:8] for n in nodes}
    counts: dict[str, int] = {}
    for b in base.values():
        counts[b] = counts.get(b, 0) + 1
    return [
        msgspec.structs.replace(
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


def probe_from_dict(data: object, origin: str = "cluster snapshot") -> ClusterProbe:
    """Read `compat env --ray --json` back (InputError naming the key on anything malformed)."""
    r = Reader(origin, "write it with `compat env --ray --json -o FILE`")
    doc = r.obj(data, "$")
    if doc.get("schema") != CLUSTER_SCHEMA:
        raise r.fail("schema", f"not a {CLUSTER_SCHEMA} document")
    statuses = {s.value: s for s in NodeStatus}

    def report(value: object, p: str) -> NodeReport:
        nd = r.obj(value, p)
        status_text = r.get_text(nd, "status", p, limit=32)
        status = statuses.get(status_text)
        if status is None:
            raise r.fail(r.join(p, "status"), f"unknown status {status_text!r}")
        gpus = r.opt_number(nd, "gpus", p) or 0.0
        node = Node(
            node_id=r.get_text(nd, "node_id", p, limit=256),
            address=r.get_text(nd, "address", p, "", 256),
            hostname=r.get_text(nd, "hostname", p, "", 256),
            head=r.get_bool(nd, "head", p, False),
            gpus=gpus,
            label=r.get_text(nd, "label", p, "", 256),
        )
        if status is NodeStatus.OK:
            got = node_report_from_task(node, {"env": nd.get("env"), "facts": nd.get("facts")})
            if got.status is not NodeStatus.OK:
                raise r.fail(r.join(p, "env"), got.reason)
            return got
        return NodeReport(
            node,
            status,
            reason=r.get_text(nd, "reason", p, "", 4096),
            facts=r.mapping(nd, "facts", p, 256),
        )

    reports = r.each(doc, "nodes", "", report, 100_000)
    runtime_env = doc.get("runtime_env")
    return ClusterProbe(
        address=r.get_text(doc, "address", "", "", 4096),
        nodes=tuple(order(reports)),
        runtime_env=dict(r.obj(runtime_env, "runtime_env")) if runtime_env is not None else {},
        timeout_s=r.opt_number(doc, "timeout_s", "") or 60.0,
        elapsed_s=r.opt_number(doc, "elapsed_s", "") or 0.0,
        ray_version=r.get_text(doc, "ray", "", "", 64),
    )
