"""The stack's package families (matrices/curated/packages.toml): every package list derives here."""

from __future__ import annotations

import enum
import functools
import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from msgspec import Struct

from compat import resources
from compat.errors import DataError
from compat.models import canonicalize_name


class Family(enum.Enum):
    FRAMEWORK = "framework"  # the server: sglang, vllm
    SERVING = "serving"  # parts of the server process that are not compiled against torch
    TORCH = "torch"
    TRITON = "triton"
    KERNEL = "kernel"  # compiled CUDA kernels for one torch and CUDA major
    TRANSFER = "transfer"  # KV-cache transfer and offload engines
    COMPANION = "companion"  # torchvision, torchaudio: built against one torch
    RUNTIME = "runtime"  # CUDA runtime wheels and bindings
    INFRA = "infra"  # the cluster runtime (Ray)


class Package(Struct, frozen=True):
    name: str
    family: Family
    sync: bool = False
    prefix: bool = False
    group: str = ""
    successor: str = ""
    links_torch: bool = False
    extension: str = ""
    sdist_ok: bool = False
    cluster: bool = False
    builds: bool = False
    # its import survives compiled ops that fail to load (it skips them with a warning)
    ops_optional: bool = False
    note: str = ""
    source: str = ""


_BOOLS = ("sync", "prefix", "links_torch", "sdist_ok", "cluster", "builds", "ops_optional")
_STRS = ("group", "successor", "extension", "note")
_KEYS = frozenset({"name", "family", "source", *_BOOLS, *_STRS})


def read_packages(data: Mapping[str, Any], origin: str) -> tuple[list[Package], list[str]]:
    """Rows of packages.toml and every problem with its key path."""
    problems: list[str] = []
    rows: list[Package] = []
    raw = data.get("package")
    if not isinstance(raw, list) or not raw:
        return [], [f"{origin}: package: at least one [[package]] row is required"]
    seen: set[str] = set()
    for i, row in enumerate(raw):
        path = f"{origin}: package[{i}]"
        if not isinstance(row, dict):
            problems.append(f"{path}: expected a table")
            continue
        problems.extend(f"{path}.{k}: unknown key" for k in sorted(set(row) - _KEYS))
        name, fam, source = row.get("name"), row.get("family"), row.get("source")
        if not isinstance(name, str) or not name:
            problems.append(f"{path}.name: a name is required")
            continue
        try:
            family = Family(fam)
        except ValueError:
            problems.append(
                f"{path}.family: expected one of {', '.join(f.value for f in Family)}, got {fam!r}"
            )
            continue
        if not isinstance(source, str) or not source.startswith("https://"):
            problems.append(f"{path}.source: an https:// URL is required")
        bad = [k for k in _BOOLS if k in row and not isinstance(row[k], bool)]
        bad += [k for k in _STRS if k in row and not isinstance(row[k], str)]
        problems.extend(f"{path}.{k}: wrong type" for k in bad)
        if bad:
            continue
        key = name if row.get("prefix") else canonicalize_name(name)
        if key in seen:
            problems.append(f"{path}.name: {name!r} is listed twice")
        seen.add(key)
        rows.append(
            Package(
                name=key,
                family=family,
                source=source if isinstance(source, str) else "",
                **{k: row[k] for k in _BOOLS if k in row},
                **{k: row[k] for k in _STRS if k in row},
            )
        )
    return rows, problems


class Families:
    """Lookups over the table: exact names first, then the longest matching prefix."""

    def __init__(self, rows: list[Package]) -> None:
        self.rows = tuple(rows)
        self._exact = {p.name: p for p in rows if not p.prefix}
        self._prefixes = sorted((p for p in rows if p.prefix), key=lambda p: -len(p.name))
        # Which names are the stack's: what was derived from the table (kept in a cache) is
        # valid for the same fingerprint only.
        names = "\n".join(sorted(f"{p.name}{'*' if p.prefix else ''}" for p in rows))
        self.fingerprint = hashlib.sha256(names.encode()).hexdigest()[:16]

    def get(self, name: str) -> Optional[Package]:
        key = canonicalize_name(name)
        hit = self._exact.get(key)
        if hit is not None:
            return hit
        return next((p for p in self._prefixes if key.startswith(p.name)), None)

    def is_stack(self, name: str) -> bool:
        return self.get(name) is not None

    def family(self, name: str) -> Optional[Family]:
        p = self.get(name)
        return p.family if p else None

    def names(self, *families: Family) -> tuple[str, ...]:
        """Exact names of these families, in table order (prefix rows are not names)."""
        return tuple(p.name for p in self.rows if not p.prefix and p.family in families)

    @property
    def frameworks(self) -> tuple[str, ...]:
        return self.names(Family.FRAMEWORK)

    @property
    def synced(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.rows if p.sync)

    @property
    def built(self) -> tuple[str, ...]:
        """Projects whose wheels' shared objects the sync reads (generated/builds/)."""
        return tuple(p.name for p in self.rows if p.builds and not p.prefix)

    @property
    def extensions(self) -> dict[str, str]:
        return {p.name: p.extension for p in self.rows if p.extension}

    def groups(self) -> dict[str, tuple[str, ...]]:
        out: dict[str, list[str]] = {}
        for p in self.rows:
            if p.group:
                out.setdefault(p.group, []).append(p.name)
        return {g: tuple(ns) for g, ns in out.items()}

    def links_torch(self, name: str) -> bool:
        p = self.get(name)
        return bool(p and p.links_torch)

    def ops_optional(self, name: str) -> bool:
        p = self.get(name)
        return bool(p and p.ops_optional)

    def cluster_critical(self, name: str) -> bool:
        p = self.get(name)
        return bool(p and p.cluster)


def load(path: Optional[Path] = None) -> Families:
    from compat.matrix.tomlfile import read_toml

    path = path or resources.curated_dir() / "packages.toml"
    rows, problems = read_packages(read_toml(path, cached=True), path.name)
    if problems:
        raise DataError(problems, hint="run `compat matrix validate`")
    return Families(rows)


# Extras that select another accelerator than NVIDIA's (sglang[srt-hip], [srt-xpu], [srt-npu],
# vllm's rocm/tpu variants, [cpu]): their requirements never apply to a CUDA stack.
_OTHER_PLATFORM = re.compile(r"hip|rocm|cpu|xpu|npu|hpu|musa|tpu|neuron|gaudi")


def other_platform_extra(extra: str) -> bool:
    return _OTHER_PLATFORM.search(extra.lower()) is not None


@functools.lru_cache(maxsize=1)
def families() -> Families:
    """The table of the database in use (read once per process)."""
    return load()
