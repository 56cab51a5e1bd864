"""`--deep`: the compiled objects of torch-linked packages, read from their ELF dynamic sections.

For each object: the libraries it needs and the libtorch/c10/ATen symbols it imports that the
installed torch does not export (the `undefined symbol` an import dies of). The checks judge
these facts; only this module opens the files.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from collections.abc import Iterable
from typing import Optional

from compat import elf
from compat.families import families
from compat.fileio import is_regular
from compat.models import Distribution, ObjectFacts

TORCH_SYMBOL_PREFIXES = ("_ZN3c10", "_ZNK3c10", "_ZN2at", "_ZNK2at", "_ZN5torch", "_ZNK5torch")
TORCH_LIB_PREFIXES = ("libtorch", "libc10", "libshm")
# Bounds: a kernel package installs a few dozen objects; a snapshot keeps a few symbols each.
MAX_OBJECTS = 64
MAX_RECORD = 8 * 1024 * 1024
KEEP_SYMBOLS = 8


def torch_lib_dir(torch_dist: Distribution) -> str:
    return os.path.join(torch_dist.location, "torch", "lib")


def _record(dist: Distribution) -> Optional[str]:
    base = f"{dist.name.replace('-', '_')}-{dist.raw_version}.dist-info"
    record = os.path.join(dist.location, base, "RECORD")
    if is_regular(record):
        return record
    lower = dist.name.lower().replace("-", "_")
    try:
        hits = sorted(
            n
            for n in os.listdir(dist.location)
            if n.lower().startswith(lower + "-") and n.endswith(".dist-info")
        )
    except OSError:
        return None
    for hit in hits:
        path = os.path.join(dist.location, hit, "RECORD")
        if is_regular(path):
            return path
    return None


def package_objects(dist: Distribution, limit: int = MAX_OBJECTS) -> list[str]:
    """Shared objects a distribution installed, from its RECORD (bounded; vendored .libs skipped)."""
    record = _record(dist)
    if record is None:
        return []
    out: list[str] = []
    try:
        with open(record, encoding="utf-8", errors="replace") as fh:
            text = fh.read(MAX_RECORD)
    except OSError:
        return []
    for line in text.splitlines():
        path = line.split(",", 1)[0]
        base = os.path.basename(path)
        if not (path.endswith(".so") or ".so." in base):
            continue
        if "/.libs/" in path or path.startswith("../") or os.path.isabs(path):
            continue
        out.append(path)
        if len(out) >= limit:
            break
    return out


def torch_exports(torch_dist: Distribution) -> Optional[frozenset[str]]:
    """Every dynamic symbol torch's own libraries define (None when torch/lib cannot be read)."""
    folder = torch_lib_dir(torch_dist)
    try:
        libs = sorted(
            n for n in os.listdir(folder) if n.startswith(TORCH_LIB_PREFIXES) and ".so" in n
        )
    except OSError:
        return None
    names: set[str] = set()
    for lib in libs:
        path = os.path.join(folder, lib)
        if not is_regular(path):
            continue
        try:
            defined, _ = elf.dynamic_symbols(path)
        except (OSError, elf.ElfError, struct.error, ValueError):
            continue
        names.update(defined)
    return frozenset(names)


def object_facts(dist: Distribution, rel: str, exports: Optional[frozenset[str]]) -> ObjectFacts:
    path = os.path.join(dist.location, rel)
    if not is_regular(path):
        return ObjectFacts(rel, error="not a regular file")
    try:
        needed = elf.needed(path)
        _, undefined = elf.dynamic_symbols(path)
    except (OSError, elf.ElfError, struct.error, ValueError) as exc:
        return ObjectFacts(rel, error=f"not a readable ELF object ({exc})")
    wanted = sorted(s for s in undefined if s.startswith(TORCH_SYMBOL_PREFIXES))
    absent = [s for s in wanted if exports is not None and s not in exports]
    return ObjectFacts(
        rel,
        needed=needed,
        torch_imports=len(wanted),
        unresolved=tuple(absent[:KEEP_SYMBOLS]),
        unresolved_count=len(absent),
    )


def with_objects(dists: Iterable[Distribution]) -> tuple[Distribution, ...]:
    """The distributions, torch-linked ones with their compiled objects read."""
    dists = tuple(dists)
    torch_dist = next((d for d in dists if d.key == "torch" and d.broken is None), None)
    exports = torch_exports(torch_dist) if torch_dist is not None else None
    fam = families()
    out = []
    for d in dists:
        if d.broken is None and fam.links_torch(d.key):
            objects = tuple(object_facts(d, rel, exports) for rel in package_objects(d))
            out.append(dataclasses.replace(d, objects=objects))
        else:
            out.append(d)
    return tuple(out)
