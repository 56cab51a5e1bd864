"""Environment <-> JSON (`compat env --json`), schema `compat.env/1`, documented in docs/env-schema.md."""

from __future__ import annotations

import json
from typing import Any, Callable, TypeVar, Union

from compat.errors import InputError
from compat.models import (
    ENV_SCHEMA,
    GPU,
    CacheInfo,
    Distribution,
    Driver,
    Environment,
    HostContext,
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
