"""`--deep`: the compiled objects of torch-linked packages, read from their ELF dynamic sections.

For each object: the libraries it needs and the libtorch/c10/ATen symbols it imports that the
installed torch does not export (the `undefined symbol` an import dies of). The checks judge
these facts; only this module opens the files.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from typing import Any, Optional, Union

import msgspec
import msgspec.structs

from compat import answers, elf
from compat.families import families
from compat.fileio import is_regular, open_regular
from compat.models import Distribution, ObjectFacts, Unknown
from compat.probe.deepcache import (
    FactCache,
    FileKey,
    default_cache,
    file_key,
    fingerprint,
    key_of_fd,
    texts,
)

TORCH_SYMBOL_PREFIXES = ("_ZN3c10", "_ZNK3c10", "_ZN2at", "_ZNK2at", "_ZN5torch", "_ZNK5torch")
TORCH_LIB_PREFIXES = ("libtorch", "libc10", "libshm")
# Bounds: a kernel package installs a few dozen objects; a snapshot keeps a few symbols each.
MAX_OBJECTS = 64
MAX_RECORD = 8 * 1024 * 1024
KEEP_SYMBOLS = 8
MAX_EXPORTS = 2_000_000  # names in one cached exports entry (elf.MAX_SYMBOLS)
# Cache entry kinds; the names kept depend on the prefixes, so another list reads files again.
_PREFIXES = hashlib.sha256("\0".join(TORCH_SYMBOL_PREFIXES).encode()).hexdigest()[:8]
OBJECT = f"object-{_PREFIXES}"
EXPORTS = f"exports-{_PREFIXES}"


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
        with open_regular(record) as fh:
            text = fh.read(MAX_RECORD).decode("utf-8", "replace")
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


def _read_elf(
    path: str, key: Optional[FileKey], kinds: str
) -> tuple[Union[elf.ElfInfo, Unknown], bool]:
    """One read of an object's needed libraries and torch-prefixed symbols; the flag says the
    result may be cached (the file was not replaced while read, and the failure, if any, is the
    file's content, not a permission or I/O error)."""
    try:
        with open_regular(path) as handle:
            fd = handle.fileno()
            got = elf.parse(
                elf.FileImage(handle, os.fstat(fd).st_size), TORCH_SYMBOL_PREFIXES, kinds
            )
            after = key_of_fd(key.path, fd) if key is not None else None
    except OSError as exc:
        return Unknown(f"cannot read {path}: {exc.strerror or exc}"), False
    return got, key is not None and after == key


class TorchExports:
    """The torch-prefixed names torch's own libraries export, read (or taken from the cache) on
    first use: while every object's judgment is cached against the same libraries, never."""

    def __init__(self, torch_dist: Optional[Distribution], cache: FactCache) -> None:
        self.cache = cache
        self.keys: Optional[tuple[FileKey, ...]] = None  # None: torch/lib cannot be listed
        if torch_dist is not None:
            folder = torch_lib_dir(torch_dist)
            try:
                libs = sorted(
                    n for n in os.listdir(folder) if n.startswith(TORCH_LIB_PREFIXES) and ".so" in n
                )
            except OSError:
                libs = None
            if libs is not None:
                found = (file_key(os.path.join(folder, n)) for n in libs)
                self.keys = tuple(k for k in found if k is not None)
        self.fingerprint = fingerprint(self.keys) if self.keys is not None else "none"
        self._names: Optional[frozenset[str]] = None
        self._read = False

    def names(self) -> Optional[frozenset[str]]:
        if not self._read:
            self._read = True
            if self.keys is not None:
                out: set[str] = set()
                for key in self.keys:
                    out.update(self._lib(key))
                self._names = frozenset(out)
        return self._names

    def _lib(self, key: FileKey) -> tuple[str, ...]:
        hit = self.cache.get(EXPORTS, key)
        names = texts(hit, "names", MAX_EXPORTS) if hit is not None else None
        if names is not None:
            return names
        got, cacheable = _read_elf(key.path, key, "defined")
        if not cacheable:
            answers.unrepeatable(f"{key.path} could not be read whole")
        # A library that is not a readable ELF exports nothing compat can see.
        names = tuple(got.defined) if isinstance(got, elf.ElfInfo) else ()
        if cacheable:
            self.cache.put(EXPORTS, key, {"names": list(names)})
        return names


def torch_exports(
    torch_dist: Distribution, cache: Optional[FactCache] = None
) -> Optional[frozenset[str]]:
    """The libtorch/c10/ATen names torch's own libraries define (None when torch/lib cannot be
    read): what an extension's torch imports resolve against."""
    return TorchExports(torch_dist, cache if cache is not None else default_cache()).names()


def _object_record(
    path: str, key: Optional[FileKey], cache: FactCache
) -> tuple[dict[str, Any], str]:
    """{"needed", "imports"} or {"error"} of one object, and where it came from: "cache" (the
    file is unchanged), "read" (read now from a file that held still: worth keeping) or
    "volatile" (read now, not to be kept: replaced while read, or an I/O error)."""
    if key is not None:
        hit = cache.get(OBJECT, key)
        if hit is not None and (
            isinstance(hit.get("error"), str)
            or (texts(hit, "needed") is not None and texts(hit, "imports") is not None)
        ):
            return hit, "cache"
    got, cacheable = _read_elf(path, key, "undefined")
    record: dict[str, Any]
    if isinstance(got, Unknown):
        record = {"error": f"not a readable ELF object ({got.reason})"}
    else:
        imports = sorted(got.undefined | got.weak_undefined)
        record = {"needed": list(got.needed), "imports": imports}
    if not cacheable:  # replaced while read, or an I/O error: another run may read it whole
        answers.unrepeatable(f"{path} could not be read whole")
    return record, "read" if cacheable else "volatile"


def object_facts(
    dist: Distribution, rel: str, exports: TorchExports, cache: Optional[FactCache] = None
) -> ObjectFacts:
    cache = cache if cache is not None else exports.cache
    path = os.path.join(dist.location, rel)
    if not is_regular(path):
        return ObjectFacts(rel, error="not a regular file")
    key = file_key(path)
    record, origin = _object_record(path, key, cache)
    changed = origin == "read"
    if isinstance(record.get("error"), str):
        absent: Optional[tuple[str, ...]] = None
    else:
        # Which imports torch lacks depends on torch's libraries too: kept with their fingerprint.
        imports = texts(record, "imports") or ()
        judged = record.get("judged")
        absent = None
        if isinstance(judged, dict) and judged.get("torch") == exports.fingerprint:
            absent = texts(judged, "absent")
        if absent is None:
            names = exports.names()
            absent = tuple(s for s in imports if names is not None and s not in names)
            record["judged"] = {"torch": exports.fingerprint, "absent": list(absent)}
            changed = True
    if changed and origin != "volatile" and key is not None:
        cache.put(OBJECT, key, record)
    if absent is None:
        return ObjectFacts(rel, error=record["error"])
    return ObjectFacts(
        rel,
        needed=texts(record, "needed") or (),
        torch_imports=len(texts(record, "imports") or ()),
        unresolved=absent[:KEEP_SYMBOLS],
        unresolved_count=len(absent),
    )


def with_objects(
    dists: Iterable[Distribution], cache: Optional[FactCache] = None
) -> tuple[Distribution, ...]:
    """The distributions, torch-linked ones with their compiled objects read (or taken from the
    cache while each file is unchanged)."""
    cache = cache if cache is not None else default_cache()
    dists = tuple(dists)
    torch_dist = next((d for d in dists if d.key == "torch" and d.broken is None), None)
    exports = TorchExports(torch_dist, cache)
    fam = families()
    out = []
    for d in dists:
        if d.broken is None and fam.links_torch(d.key):
            objects = tuple(object_facts(d, rel, exports, cache) for rel in package_objects(d))
            out.append(msgspec.structs.replace(d, objects=objects))
        else:
            out.append(d)
    return tuple(out)
