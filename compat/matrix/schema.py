"""Typed records of the database and their readers: dicts in, records out, key-path errors.

Readers collect every problem of a file (`Problems`) instead of stopping at the first, so
`compat matrix validate` reports them all at once, each as `file: key.path: what`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any, Callable, Optional, TypeVar

from msgspec import Struct
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from compat.matrix.extras import flatten
from compat.models import canonicalize_name, parse_requirement, requirement_name

T = TypeVar("T")


class Problems:
    """Accumulates `file: path: message` lines while a file is read."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{self.origin}: {path}: {message}")

    def get(
        self,
        d: dict[str, Any],
        key: str,
        kind: type[T],
        path: str,
        default: Optional[T] = None,
        required: bool = True,
    ) -> Optional[T]:
        if key not in d:
            if required:
                self.add(f"{path}.{key}".lstrip("."), "missing")
            return default
        value = d[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.add(
                f"{path}.{key}".lstrip("."), f"expected {kind.__name__}, got {type(value).__name__}"
            )
            return default
        return value

    def convert(
        self, value: Optional[str], conv: Callable[[str], T], path: str, what: str
    ) -> Optional[T]:
        if value is None:
            return None
        try:
            return conv(value)
        except (InvalidVersion, InvalidSpecifier, InvalidRequirement, ValueError) as exc:
            self.add(path, f"invalid {what} {value!r}: {str(exc).splitlines()[0]}")
            return None

    def strings(
        self, d: dict[str, Any], key: str, path: str, required: bool = False
    ) -> tuple[str, ...]:
        value = self.get(d, key, list, path, [], required) or []
        out = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                out.append(item)
            else:
                self.add(f"{path}.{key}[{i}]".lstrip("."), "expected a string")
        return tuple(out)


@functools.cache
def requirement(text: str) -> Requirement:
    """Parsed once per distinct string: the database repeats the same pins many times."""
    return parse_requirement(text)


def parse_cc(text: str) -> tuple[int, int]:
    """'9.0' -> (9, 0); '10.0' -> (10, 0); 'sm_90' and '9.0a' accepted."""
    t = text.strip().lower().removeprefix("sm_").removeprefix("compute_").rstrip("af")
    if "." in t:
        major, minor = t.split(".", 1)
    elif t.isascii() and t.isdigit() and len(t) >= 2:
        major, minor = t[:-1], t[-1]
    else:
        raise ValueError("expected a compute capability like '9.0' or 'sm_90'")
    return int(major), int(minor)


def cc_str(cc: tuple[int, int]) -> str:
    return f"{cc[0]}.{cc[1]}"


class Provenance(Struct, frozen=True):
    file: str
    sha256: str
    method: str
    read_at: str


class Release(Struct, frozen=True, dict=True):
    """One release of one project as the index's metadata says."""

    project: str
    version: Version
    requires_raw: tuple[str, ...]
    requires_python: SpecifierSet
    cuda: Optional[str]
    wheels: tuple[str, ...]
    sdist: bool
    upload_time: str
    yanked: bool
    source: Optional[Provenance]
    # False for a release with no wheel whose sdist does not state its requirements:
    # `requires_raw` is then empty because nothing is known, not because nothing is required.
    requires_known: bool = True
    # Provides-Extra, normalized (empty when the record predates it: not known, not none)
    extras: tuple[str, ...] = ()

    @functools.cached_property
    def _flat(self) -> tuple[tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...]]:
        # Lines on the project itself (`sglang[srt]; extra == "all"`) become the lines they
        # stand for; done for the releases a run looks at, not for every release loaded.
        return flatten(self.project, self.requires_raw)

    @property
    def includes(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """extra -> the extras it installs too (from the release's requirements on itself)."""
        return self._flat[1]

    def smallest_extras(self, extras: Iterable[str]) -> list[str]:
        """`extras` without those that only carry another one of them (sglang's `all` and
        `dev` install `srt`): the extras a requirement is really declared under."""
        given = {canonicalize_name(e): e for e in extras}
        inc = {k: set(v) for k, v in self.includes}
        return sorted(e for k, e in given.items() if not (inc.get(k, set()) & set(given)))

    @property
    def requires(self) -> tuple[Requirement, ...]:
        """Every requirement, extras that install other extras flattened."""
        return tuple(requirement(r) for r in self._flat[0])

    def pins(self, name: str) -> list[Requirement]:
        """The requirements of this release on `name` (all extras and markers); the others are
        not parsed (a check asks this of every release of a project)."""
        key = canonicalize_name(name)
        return [requirement(r) for r in self._flat[0] if requirement_name(r) == key]

    @property
    def cuda_major(self) -> Optional[int]:
        return int(self.cuda.split(".")[0]) if self.cuda else None


class Toolkit(Struct, frozen=True):
    cuda: Version
    driver_min: Version
    minor_compat_driver_min: Optional[Version]
    archs: tuple[tuple[int, int], ...]
    source: str
    verified: bool = True


class TorchBuildInfo(Struct, frozen=True):
    torch: Version
    cuda: str  # "12.6", "cpu", "rocm6.3"
    index: str
    local: str
    pypi_default: bool
    sass: tuple[tuple[int, int], ...]
    ptx: tuple[tuple[int, int], ...]
    source: str
    verified: bool = True
    note: str = ""

    @property
    def is_cuda(self) -> bool:
        return self.cuda[:1].isdigit()


class GpuModel(Struct, frozen=True):
    """One NVIDIA GPU name of curated/gpus.toml (derived from pci.ids by scripts/derive_gpus.py)."""

    name: str
    chip: str
    architecture: str
    compute_capability: tuple[int, int]
    memory_gib: Optional[float]
    source: str
    pci_ids: tuple[str, ...] = ()
    origin: str = "pci.ids"
    verified: bool = True
    memory_source: str = ""


class GpuFamily(Struct, frozen=True):
    """A GPU chip (GH100, AD102 ...) with its architecture and compute capability."""

    chip: str
    architecture: str
    compute_capability: tuple[int, int]
    evidence: tuple[str, ...]
    source: str
    pci: bool = True
    verified: bool = True
    note: str = ""


class GpuExtra(Struct, frozen=True):
    """A GPU name pci.ids lacks (an integrated Jetson GPU), with its chip."""

    name: str
    chip: str
    source: str


class GpuNameAlias(Struct, frozen=True):
    """A name NVML or people use that pci.ids spells differently, tied to a device id."""

    name: str
    pci_id: str
    source: str


class GpuMemory(Struct, frozen=True):
    pci_id: str
    memory_gib: float
    source: str


class OtherVendor(Struct, frozen=True):
    """Accelerators of another vendor: words and patterns that name them, and their stack."""

    vendor: str
    stack: str
    words: tuple[str, ...]
    patterns: tuple[str, ...]
    source: str


class GpuFamilies(Struct, frozen=True):
    families: tuple[GpuFamily, ...]
    extras: tuple[GpuExtra, ...]
    aliases: tuple[GpuNameAlias, ...]
    memory: tuple[GpuMemory, ...]
    vendors: tuple[OtherVendor, ...]


class DriverRelease(Struct, frozen=True):
    """A CUDA toolkit release and the Linux driver its runfile bundles (its name says so)."""

    cuda: Version
    driver: str
    source: str


class DriverBranch(Struct, frozen=True):
    """A driver branch (R535) and the CUDA version its drivers report."""

    branch: int
    cuda: str
    first: str
    source: str
    verified: bool = True
    note: str = ""


class ArchSupport(Struct, frozen=True):
    """The drivers that support a GPU architecture: from the driver branch of its first CUDA
    toolkit to the last branch that still supports it (last_branch, None: ongoing)."""

    architecture: str
    compute_capabilities: tuple[tuple[int, int], ...]
    first_cuda: Version
    last_branch: Optional[int]
    source: str
    verified: bool = True
    note: str = ""


class DriverTables(Struct, frozen=True):
    releases: tuple[DriverRelease, ...]
    branches: tuple[DriverBranch, ...]
    architectures: tuple[ArchSupport, ...]


class WheelIndex(Struct, frozen=True):
    name: str
    url: str
    projects: tuple[str, ...]
    cuda: Optional[str]
    when: Optional[Requirement]
    local: str
    source: str
    # false where the row comes from docs only and no listing confirmed the releases it serves
    verified: bool = True
    # an index of development builds (pre-release versions), never of a final release
    prereleases: bool = False


def read_release(
    p: Problems, project: str, key: str, d: Any, strict: bool = True
) -> Optional[Release]:
    """One release; `strict` also parses every requirement (validate does, a check need not:
    requirements are parsed when first used)."""
    path = f"releases.{key}"
    if not isinstance(d, dict):
        p.add(path, "expected a table")
        return None
    version = p.convert(key, Version, path, "version")
    requires = p.strings(d, "requires", path)
    if strict:
        for i, r in enumerate(requires):
            p.convert(r, requirement, f"{path}.requires[{i}]", "requirement")
    rp = p.convert(
        p.get(d, "requires_python", str, path, "", required=False) or "",
        SpecifierSet,
        f"{path}.requires_python",
        "specifier",
    )
    cuda = p.get(d, "cuda", str, path, None, required=False)
    src = d.get("source")
    source = None
    if isinstance(src, dict):
        source = Provenance(
            p.get(src, "file", str, f"{path}.source", "") or "",
            p.get(src, "sha256", str, f"{path}.source", "", required=False) or "",
            p.get(src, "method", str, f"{path}.source", "") or "",
            p.get(src, "read_at", str, f"{path}.source", "", required=False) or "",
        )
        if source.method not in ("pep658", "range", "sdist", "none"):
            p.add(
                f"{path}.source.method",
                f"expected pep658, range, sdist or none, got {source.method!r}",
            )
    else:
        p.add(f"{path}.source", "missing provenance")
    if version is None:
        return None
    return Release(
        project=project,
        version=version,
        requires_raw=requires,
        requires_python=rp or SpecifierSet(),
        cuda=cuda,
        wheels=p.strings(d, "wheels", path),
        sdist=bool(p.get(d, "sdist", bool, path, False, False)),
        upload_time=p.get(d, "upload_time", str, path, "", required=False) or "",
        yanked=bool(p.get(d, "yanked", bool, path, False, required=False)),
        source=source,
        requires_known=not p.get(d, "requires_unknown", bool, path, False, required=False),
        extras=p.strings(d, "extras", path) if "extras" in d else (),
    )


def read_generated(
    p: Problems, data: dict[str, Any], strict: bool = True
) -> tuple[str, dict[Version, Release]]:
    meta = p.get(data, "meta", dict, "", {}) or {}
    project = p.get(meta, "project", str, "meta", "") or ""
    releases: dict[Version, Release] = {}
    table = p.get(data, "releases", dict, "", {}) or {}
    for key, value in table.items():
        rel = read_release(p, project, key, value, strict)
        if rel is not None:
            releases[rel.version] = rel
    return project, releases


def _source(p: Problems, d: dict[str, Any], path: str) -> str:
    src = p.get(d, "source", str, path, "") or ""
    if src and not src.startswith(("https://", "http://")):
        p.add(f"{path}.source", "expected a URL")
    return src


def _rows(
    p: Problems, data: dict[str, Any], key: str, required: bool = True
) -> list[tuple[str, dict[str, Any]]]:
    rows = p.get(data, key, list, "", [], required) or []
    out = []
    for i, row in enumerate(rows):
        path = f"{key}[{i}]"
        if isinstance(row, dict):
            out.append((path, row))
        else:
            p.add(path, "expected a table")
    return out


def _ccs(p: Problems, d: dict[str, Any], key: str, path: str) -> tuple[tuple[int, int], ...]:
    out = []
    for i, s in enumerate(p.strings(d, key, path)):
        cc = p.convert(s, parse_cc, f"{path}.{key}[{i}]", "compute capability")
        if cc:
            out.append(cc)
    return tuple(sorted(set(out)))


def read_toolkits(p: Problems, data: dict[str, Any]) -> list[Toolkit]:
    out = []
    for path, row in _rows(p, data, "toolkit"):
        cuda = p.convert(p.get(row, "cuda", str, path), Version, f"{path}.cuda", "version")
        drv = p.convert(
            p.get(row, "driver_min", str, path), Version, f"{path}.driver_min", "version"
        )
        minor = p.convert(
            p.get(row, "minor_compat_driver_min", str, path, None, required=False),
            Version,
            f"{path}.minor_compat_driver_min",
            "version",
        )
        archs = _ccs(p, row, "archs", path)
        src = _source(p, row, path)
        if cuda and drv:
            out.append(
                Toolkit(
                    cuda,
                    drv,
                    minor,
                    archs,
                    src,
                    bool(p.get(row, "verified", bool, path, True, required=False)),
                )
            )
    return out


def read_torch_builds(p: Problems, data: dict[str, Any]) -> list[TorchBuildInfo]:
    out = []
    for path, row in _rows(p, data, "build"):
        torch = p.convert(p.get(row, "torch", str, path), Version, f"{path}.torch", "version")
        cuda = p.get(row, "cuda", str, path) or ""
        if cuda and not (cuda == "cpu" or cuda.startswith("rocm") or cuda[:1].isdigit()):
            p.add(f"{path}.cuda", f"expected '12.6', 'cpu' or 'rocmX.Y', got {cuda!r}")
        if torch is None:
            continue
        out.append(
            TorchBuildInfo(
                torch=torch,
                cuda=cuda,
                index=p.get(row, "index", str, path, "", required=False) or "",
                local=p.get(row, "local", str, path, "", required=False) or "",
                pypi_default=bool(p.get(row, "pypi_default", bool, path, False, required=False)),
                sass=_ccs(p, row, "sass", path),
                ptx=_ccs(p, row, "ptx", path),
                source=_source(p, row, path),
                verified=bool(p.get(row, "verified", bool, path, True, required=False)),
                note=p.get(row, "note", str, path, "", required=False) or "",
            )
        )
    return out


def _keys(p: Problems, row: dict[str, Any], path: str, allowed: tuple[str, ...]) -> None:
    for key in sorted(set(row) - set(allowed)):
        p.add(f"{path}.{key}", "unknown key")


_DRIVER_TEXT = re.compile(r"^[0-9]{3}\.[0-9]{1,3}(\.[0-9]{2,3})?$")
_PCI_ID = re.compile(r"^[0-9a-f]{4}$")


def _cc_field(p: Problems, row: dict[str, Any], path: str) -> Optional[tuple[int, int]]:
    return p.convert(
        p.get(row, "compute_capability", str, path),
        parse_cc,
        f"{path}.compute_capability",
        "compute capability",
    )


def _verified(p: Problems, row: dict[str, Any], path: str) -> tuple[bool, str]:
    verified = bool(p.get(row, "verified", bool, path, True, required=False))
    note = p.get(row, "note", str, path, "", required=False) or ""
    if not verified and not note:
        p.add(f"{path}.note", "missing: a row with verified = false says what is unverified")
    return verified, note


def read_gpus(p: Problems, data: dict[str, Any]) -> list[GpuModel]:
    """curated/gpus.toml: the derived GPU names."""
    meta = p.get(data, "meta", dict, "", {}) or {}
    for key in ("source", "pci_ids_version", "pci_ids_date", "families"):
        if not isinstance(meta.get(key), str) or not meta[key]:
            p.add(f"meta.{key}", "missing or empty")
    _keys(p, data, "", ("meta", "gpu"))
    out = []
    allowed = (
        "name", "chip", "architecture", "compute_capability", "pci_ids", "memory_gib",
        "memory_source", "origin", "source", "verified", "note",
    )  # fmt: skip
    for path, row in _rows(p, data, "gpu"):
        _keys(p, row, path, allowed)
        name = p.get(row, "name", str, path) or ""
        if not name.strip():
            p.add(f"{path}.name", "empty")
        cc = _cc_field(p, row, path)
        mem = row.get("memory_gib")
        if mem is not None and (
            not isinstance(mem, (int, float)) or isinstance(mem, bool) or mem <= 0
        ):
            p.add(f"{path}.memory_gib", "expected a positive number")
            mem = None
        if mem is not None and not row.get("memory_source"):
            p.add(f"{path}.memory_source", "missing: where the memory size comes from")
        ids = p.strings(row, "pci_ids", path)
        for i, pid in enumerate(ids):
            if not _PCI_ID.match(pid):
                p.add(f"{path}.pci_ids[{i}]", f"expected a 4-digit hex device id, got {pid!r}")
        origin = p.get(row, "origin", str, path, "pci.ids", required=False) or "pci.ids"
        if origin not in ("pci.ids", "pci.ids subsystem", "alias", "curated"):
            p.add(f"{path}.origin", f"unknown origin {origin!r}")
        src = _source(p, row, path)
        verified, _ = _verified(p, row, path)
        if cc:
            out.append(
                GpuModel(
                    name=name,
                    chip=p.get(row, "chip", str, path) or "",
                    architecture=p.get(row, "architecture", str, path) or "",
                    compute_capability=cc,
                    memory_gib=float(mem) if mem is not None else None,
                    source=src,
                    pci_ids=ids,
                    origin=origin,
                    verified=verified,
                    memory_source=p.get(row, "memory_source", str, path, "", required=False) or "",
                )
            )
    return out


def read_gpu_families(p: Problems, data: dict[str, Any]) -> GpuFamilies:
    """curated/gpu_families.toml: chip families and the curated rows around them."""
    _keys(p, data, "", ("meta", "family", "extra", "alias", "memory", "other_vendor"))
    families: list[GpuFamily] = []
    seen: set[str] = set()
    for path, row in _rows(p, data, "family"):
        _keys(p, row, path, ("chip", "architecture", "compute_capability", "evidence", "pci",
                             "source", "verified", "note"))  # fmt: skip
        chip = p.get(row, "chip", str, path) or ""
        if chip in seen:
            p.add(f"{path}.chip", f"duplicate chip {chip!r}")
        seen.add(chip)
        cc = _cc_field(p, row, path)
        verified, note = _verified(p, row, path)
        evidence = p.strings(row, "evidence", path)
        pci = bool(p.get(row, "pci", bool, path, True, required=False))
        src = _source(p, row, path)
        arch = p.get(row, "architecture", str, path) or ""
        if cc and chip:
            families.append(GpuFamily(chip, arch, cc, evidence, src, pci, verified, note))
    extras = []
    for path, row in _rows(p, data, "extra", required=False):
        _keys(p, row, path, ("name", "chip", "source"))
        chip = p.get(row, "chip", str, path) or ""
        if chip and chip not in seen:
            p.add(f"{path}.chip", f"{chip!r} is not a [[family]] chip")
        extras.append(GpuExtra(p.get(row, "name", str, path) or "", chip, _source(p, row, path)))
    aliases = []
    for path, row in _rows(p, data, "alias", required=False):
        _keys(p, row, path, ("name", "pci_id", "source"))
        pid = p.get(row, "pci_id", str, path) or ""
        if not _PCI_ID.match(pid):
            p.add(f"{path}.pci_id", f"expected a 4-digit hex device id, got {pid!r}")
        aliases.append(
            GpuNameAlias(p.get(row, "name", str, path) or "", pid, _source(p, row, path))
        )
    memory = []
    for path, row in _rows(p, data, "memory", required=False):
        _keys(p, row, path, ("pci_id", "memory_gib", "source"))
        pid = p.get(row, "pci_id", str, path) or ""
        if not _PCI_ID.match(pid):
            p.add(f"{path}.pci_id", f"expected a 4-digit hex device id, got {pid!r}")
        mem = row.get("memory_gib")
        if not isinstance(mem, (int, float)) or isinstance(mem, bool) or mem <= 0:
            p.add(f"{path}.memory_gib", "expected a positive number")
            continue
        memory.append(GpuMemory(pid, float(mem), _source(p, row, path)))
    vendors = []
    for path, row in _rows(p, data, "other_vendor", required=False):
        _keys(p, row, path, ("vendor", "stack", "words", "patterns", "source"))
        patterns = p.strings(row, "patterns", path, required=True)
        for i, pat in enumerate(patterns):
            try:
                re.compile(pat)
            except re.error as exc:
                p.add(f"{path}.patterns[{i}]", f"not a regular expression: {exc}")
        vendors.append(
            OtherVendor(
                p.get(row, "vendor", str, path) or "",
                p.get(row, "stack", str, path) or "",
                tuple(w.lower() for w in p.strings(row, "words", path, required=True)),
                patterns,
                _source(p, row, path),
            )
        )
    return GpuFamilies(
        tuple(families), tuple(extras), tuple(aliases), tuple(memory), tuple(vendors)
    )


def read_drivers(p: Problems, data: dict[str, Any]) -> DriverTables:
    """curated/drivers.toml: toolkit releases and their drivers, branches, architecture support."""
    _keys(p, data, "", ("meta", "release", "branch", "architecture"))
    releases = []
    for path, row in _rows(p, data, "release"):
        _keys(p, row, path, ("cuda", "driver", "source"))
        cuda = p.convert(p.get(row, "cuda", str, path), Version, f"{path}.cuda", "version")
        drv = p.get(row, "driver", str, path) or ""
        if not _DRIVER_TEXT.match(drv):
            p.add(f"{path}.driver", f"expected a driver version such as 535.104.05, got {drv!r}")
        src = _source(p, row, path)
        if cuda and _DRIVER_TEXT.match(drv):
            releases.append(DriverRelease(cuda, drv, src))
    branches = []
    for path, row in _rows(p, data, "branch", required=False):
        _keys(p, row, path, ("branch", "cuda", "first", "source", "verified", "note"))
        branch = p.get(row, "branch", int, path) or 0
        if not 100 <= branch <= 999:
            p.add(f"{path}.branch", f"expected a branch number such as 535, got {branch!r}")
        reported = p.get(row, "cuda", str, path) or ""
        p.convert(reported, Version, f"{path}.cuda", "version")
        lowest = p.get(row, "first", str, path) or ""
        if not _DRIVER_TEXT.match(lowest) or not lowest.startswith(f"{branch}."):
            p.add(f"{path}.first", f"expected a release of R{branch}, got {lowest!r}")
        verified, note = _verified(p, row, path)
        branches.append(
            DriverBranch(branch, reported, lowest, _source(p, row, path), verified, note)
        )
    archs = []
    for path, row in _rows(p, data, "architecture"):
        _keys(p, row, path, ("name", "compute_capabilities", "first_cuda", "last_branch",
                             "source", "verified", "note"))  # fmt: skip
        name = p.get(row, "name", str, path) or ""
        ccs = _ccs(p, row, "compute_capabilities", path)
        if not ccs:
            p.add(f"{path}.compute_capabilities", "missing or empty")
        first_cuda = p.convert(
            p.get(row, "first_cuda", str, path), Version, f"{path}.first_cuda", "version"
        )
        hi = p.get(row, "last_branch", int, path, None, required=False)
        verified, note = _verified(p, row, path)
        if first_cuda is not None:
            archs.append(
                ArchSupport(name, ccs, first_cuda, hi, _source(p, row, path), verified, note)
            )
    return DriverTables(tuple(releases), tuple(branches), tuple(archs))


def read_indexes(p: Problems, data: dict[str, Any]) -> list[WheelIndex]:
    out = []
    for path, row in _rows(p, data, "index"):
        when = p.convert(
            p.get(row, "when", str, path, None, required=False),
            requirement,
            f"{path}.when",
            "requirement",
        )
        out.append(
            WheelIndex(
                name=p.get(row, "name", str, path) or "",
                url=p.get(row, "url", str, path) or "",
                projects=p.strings(row, "projects", path),
                cuda=p.get(row, "cuda", str, path, None, required=False),
                when=when,
                local=p.get(row, "local", str, path, "", required=False) or "",
                source=_source(p, row, path),
                verified=p.get(row, "verified", bool, path, True, required=False) is not False,
                prereleases=p.get(row, "prereleases", bool, path, False, required=False) is True,
            )
        )
    return out


class CudaImage(Struct, frozen=True):
    """An nvidia/cuda base image tag for a CUDA minor and the OS releases it is published for."""

    cuda: str
    tag: str
    os: tuple[str, ...]
    source: str
    verified: bool = True
    # The image's NVIDIA_REQUIRE_CUDA as the container runtime reads it ("" when not recorded):
    # `cuda>=X.Y`, or one of the driver branches (and GPU brands) it exempts.
    require: str = ""


def read_images(p: Problems, data: dict[str, Any]) -> list[CudaImage]:
    out = []
    for path, row in _rows(p, data, "image"):
        cuda = p.get(row, "cuda", str, path) or ""
        tag = p.get(row, "tag", str, path) or ""
        if cuda and tag and not tag.startswith(cuda + "."):
            p.add(f"{path}.tag", f"{tag!r} is not a CUDA {cuda} tag")
        out.append(
            CudaImage(
                cuda,
                tag,
                p.strings(row, "os", path, required=True),
                _source(p, row, path),
                bool(p.get(row, "verified", bool, path, True, required=False)),
                _require(p, row, path, cuda),
            )
        )
    return out


def _require(p: Problems, row: dict[str, Any], path: str, cuda: str) -> str:
    """NVIDIA_REQUIRE_CUDA from `require_branches` and `require_brands`: `cuda>=X.Y`, or a driver
    of one of the branches on a GPU of one of the brands (the form NVIDIA's images write)."""
    if "require_branches" not in row:
        return ""
    branches = p.get(row, "require_branches", list, path, [], required=False) or []
    brands = p.strings(row, "require_brands", path, required=True)
    if not all(isinstance(b, int) and not isinstance(b, bool) for b in branches):
        p.add(f"{path}.require_branches", "expected driver branch numbers")
        return ""
    alternatives = [f"cuda>={cuda}"] + [
        f"brand={brand},driver>={b},driver<{b + 1}" for b in sorted(branches) for brand in brands
    ]
    return " ".join(alternatives)


class Figure(Struct, frozen=True):
    """A named number of the GPU memory model (memory.toml), with where it applies and its source."""

    name: str
    value: float
    unit: str
    framework: Optional[str]
    versions: Optional[SpecifierSet]
    cuda: Optional[SpecifierSet]
    source: str
    evidence: str = ""

    def applies(
        self, framework: Optional[str], version: Optional[Version], cuda: Optional[Version]
    ) -> bool:
        if self.framework is not None and self.framework != framework:
            return False
        if self.versions is not None and (
            version is None or not self.versions.contains(version, prereleases=True)
        ):
            return False
        return self.cuda is None or (
            cuda is not None and self.cuda.contains(cuda, prereleases=True)
        )


class QuantMethod(Struct, frozen=True):
    method: str
    bits: float
    vllm_min_cc: Optional[tuple[int, int]]
    source: str
    note: str = ""


class MemoryData(Struct, frozen=True):
    """memory.toml: figures, KV-cache element sizes and quantization methods."""

    figures: tuple[Figure, ...] = ()
    kv_dtypes: tuple[tuple[str, float, str], ...] = ()
    quantizations: tuple[QuantMethod, ...] = ()

    def figure(
        self,
        name: str,
        framework: Optional[str] = None,
        version: Optional[Version] = None,
        cuda: Optional[Version] = None,
    ) -> Optional[Figure]:
        """The first row of `name` that applies (narrower rows come first in the file)."""
        for f in self.figures:
            if f.name == name and f.applies(framework, version, cuda):
                return f
        return None

    def kv_bytes(self, dtype: str) -> Optional[float]:
        key = dtype.lower()
        for name, size, _ in self.kv_dtypes:
            if name == key:
                return size
        return None

    def quant(self, method: Optional[str]) -> Optional[QuantMethod]:
        for q in self.quantizations:
            if method is not None and q.method == method.lower():
                return q
        return None


#: Figures the fit check reads; `compat matrix validate` reports any that memory.toml lacks.
MEMORY_FIGURES: tuple[tuple[str, Optional[str]], ...] = (
    ("driver_reserve", None),
    ("cuda_context", None),
    ("cuda_context_eager", None),
    ("distributed", "sglang"),
    ("non_torch", "vllm"),
    ("non_torch_single", "vllm"),
    ("pre_capture", "sglang"),
    ("pre_capture_other", "sglang"),
    ("graph_per_batch", "sglang"),
    ("graph_per_batch_moe", "sglang"),
    ("sampler_copies", "vllm"),
    ("default_max_num_seqs", "vllm"),
    ("default_max_num_seqs_large", "vllm"),
    ("graph", "vllm"),
    ("graph_in_budget", "vllm"),
    ("v1_engine", "vllm"),
    ("capture_error", "sglang"),
    ("capture_error", "vllm"),
    ("kv_error", "sglang"),
    ("kv_error", "vllm"),
    ("fa3_default_hopper", "sglang"),
    ("vlm_fraction_factor", "sglang"),
)
_UNITS = ("GiB", "MiB", "count", "factor")


def _number(p: Problems, d: dict[str, Any], key: str, path: str) -> Optional[float]:
    v = d.get(key)
    if v is None:
        p.add(f"{path}.{key}", "missing")
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        p.add(f"{path}.{key}", f"expected a number, got {type(v).__name__}")
        return None
    if v < 0:
        p.add(f"{path}.{key}", "expected a number >= 0")
        return None
    return float(v)


def read_memory(p: Problems, data: dict[str, Any]) -> MemoryData:
    from compat.families import families

    figures = []
    for path, row in _rows(p, data, "figure"):
        name = p.get(row, "name", str, path) or ""
        value = _number(p, row, "value", path)
        unit = p.get(row, "unit", str, path) or ""
        if unit and unit not in _UNITS:
            p.add(f"{path}.unit", f"expected one of {', '.join(_UNITS)}, got {unit!r}")
        fw = p.get(row, "framework", str, path, None, required=False)
        if fw is not None and fw not in families().frameworks:
            p.add(f"{path}.framework", f"expected sglang or vllm, got {fw!r}")
        versions = p.convert(
            p.get(row, "versions", str, path, None, required=False),
            SpecifierSet,
            f"{path}.versions",
            "specifier",
        )
        cuda = p.convert(
            p.get(row, "cuda", str, path, None, required=False),
            SpecifierSet,
            f"{path}.cuda",
            "specifier",
        )
        src = _source(p, row, path)
        if value is not None and name:
            figures.append(
                Figure(
                    name,
                    value,
                    unit,
                    fw,
                    versions,
                    cuda,
                    src,
                    p.get(row, "evidence", str, path, "", required=False) or "",
                )
            )
    kv = []
    for path, row in _rows(p, data, "kv_cache_dtype"):
        size = _number(p, row, "bytes", path)
        src = _source(p, row, path)
        for n in p.strings(row, "names", path, required=True):
            if size is not None:
                kv.append((n.lower(), size, src))
    quants = []
    for path, row in _rows(p, data, "quantization"):
        method = p.get(row, "method", str, path) or ""
        bits = _number(p, row, "bits", path)
        cc = p.convert(
            p.get(row, "vllm_min_cc", str, path, None, required=False),
            parse_cc,
            f"{path}.vllm_min_cc",
            "compute capability",
        )
        src = _source(p, row, path)
        if method and bits is not None:
            quants.append(
                QuantMethod(
                    method.lower(),
                    bits,
                    cc,
                    src,
                    p.get(row, "note", str, path, "", required=False) or "",
                )
            )
    mem = MemoryData(tuple(figures), tuple(kv), tuple(quants))
    if figures or kv or quants:
        for name, fw in MEMORY_FIGURES:
            if not any(
                f.name == name and (fw is None or f.framework in (fw, None)) for f in figures
            ):
                p.add("figure", f"no row for {name!r}" + (f" ({fw})" if fw else ""))
    return mem


# Framework and PyTorch images (images.toml [[repository]]), conda packages (conda.toml) --------


class ImageTag(Struct, frozen=True):
    """A tag shape of a repository: `{version}`, `{cuda}` (12.4 or 12.4.1), `{cu}` (124) and
    `{any}` are read from the tag; `cuda_image`: built on nvidia/cuda (its CUDA toolkit and its
    NVIDIA_REQUIRE_CUDA are in the image)."""

    pattern: str
    cuda_image: bool


class ImageCuda(Struct, frozen=True):
    """The CUDA an image of a repository is built with, for the releases `when` admits."""

    when: Requirement
    cuda: str
    source: str
    verified: bool = True
    note: str = ""


class ImageRepository(Struct, frozen=True):
    """A published image repository: which stack package its tag names (`installs`), installed
    from the PyTorch index of the image's CUDA with what that release pins."""

    name: str
    installs: Optional[Requirement]
    python: Optional[str]
    tags: tuple[ImageTag, ...]
    cuda: tuple[ImageCuda, ...]
    source: str
    verified: bool = True
    note: str = ""


_TAG_FIELDS = re.compile(r"\{([a-z_]+)\}")


def read_repositories(p: Problems, data: dict[str, Any]) -> list[ImageRepository]:
    out = []
    for path, row in _rows(p, data, "repository", required=False):
        _keys(
            p,
            row,
            path,
            ("name", "installs", "python", "tag", "cuda", "source", "verified", "note"),
        )
        installs = p.convert(
            p.get(row, "installs", str, path, None, required=False),
            requirement,
            f"{path}.installs",
            "requirement",
        )
        tags = []
        for i, t in enumerate(p.get(row, "tag", list, path, [], required=True) or []):
            tp = f"{path}.tag[{i}]"
            if not isinstance(t, dict):
                p.add(tp, "expected a table")
                continue
            _keys(p, t, tp, ("pattern", "cuda_image"))
            pattern = p.get(t, "pattern", str, tp) or ""
            bad = set(_TAG_FIELDS.findall(pattern)) - {"version", "cuda", "cu", "any"}
            if bad:
                p.add(f"{tp}.pattern", f"unknown field(s) {sorted(bad)}")
            tags.append(ImageTag(pattern, bool(p.get(t, "cuda_image", bool, tp, False))))
        cudas = []
        for i, c in enumerate(p.get(row, "cuda", list, path, [], required=False) or []):
            cp = f"{path}.cuda[{i}]"
            if not isinstance(c, dict):
                p.add(cp, "expected a table")
                continue
            _keys(p, c, cp, ("when", "cuda", "source", "verified", "note"))
            when = p.convert(p.get(c, "when", str, cp), requirement, f"{cp}.when", "requirement")
            verified, note = _verified(p, c, cp)
            cuda = p.get(c, "cuda", str, cp) or ""
            if when is not None and cuda:
                cudas.append(ImageCuda(when, cuda, _source(p, c, cp), verified, note))
        verified, note = _verified(p, row, path)
        out.append(
            ImageRepository(
                p.get(row, "name", str, path) or "",
                installs,
                p.get(row, "python", str, path, None, required=False),
                tuple(tags),
                tuple(cudas),
                _source(p, row, path),
                verified,
                note,
            )
        )
    return out


class CondaPackage(Struct, frozen=True):
    """A conda package that is a package of the stack (`pypi`), or that states a CUDA (`cuda`:
    "build" or "limit")."""

    conda: str
    pypi: str
    cuda: str
    build_cuda: bool
    source: str
    verified: bool = True


def read_conda(p: Problems, data: dict[str, Any]) -> list[CondaPackage]:
    out = []
    seen: set[str] = set()
    for path, row in _rows(p, data, "package"):
        _keys(p, row, path, ("conda", "pypi", "cuda", "build_cuda", "source", "verified", "note"))
        name = p.get(row, "conda", str, path) or ""
        pypi = p.get(row, "pypi", str, path, "", required=False) or ""
        cuda = p.get(row, "cuda", str, path, "", required=False) or ""
        if cuda not in ("", "build", "limit"):
            p.add(f"{path}.cuda", f"expected build or limit, got {cuda!r}")
        if bool(pypi) == bool(cuda):
            p.add(path, "one of pypi and cuda is required")
        if name in seen:
            p.add(f"{path}.conda", f"{name!r} is listed twice")
        seen.add(name)
        verified, _ = _verified(p, row, path)
        out.append(
            CondaPackage(
                name,
                pypi,
                cuda,
                bool(p.get(row, "build_cuda", bool, path, False, required=False)),
                _source(p, row, path),
                verified,
            )
        )
    return out


# -- build facts (generated/builds/*.toml) ------------------------------------------------------


def encode_ranges(indices: Iterable[int]) -> str:
    """{0, 1, 2, 5} -> "0-2,5"."""
    out: list[str] = []
    run: list[int] = []
    for i in sorted(set(indices)):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


_RANGE = re.compile(r"^([0-9]{1,9})(?:-([0-9]{1,9}))?$")
_RANGES = re.compile(r"[0-9]{1,9}(?:-[0-9]{1,9})?(?:,[0-9]{1,9}(?:-[0-9]{1,9})?)*")
MAX_TRACKED = 1_000_000


def decode_ranges(text: str) -> frozenset[int]:
    """ "0-2,5" -> {0, 1, 2, 5}; ValueError on anything else (or more than MAX_TRACKED)."""
    if not text:
        return frozenset()
    if not _RANGES.fullmatch(text):
        _range_problem(text)
    # One match of the whole text, then plain splits: a check decodes a few hundred of these
    # (tens of thousands of parts) on a real stack.
    parts = text.split(",")
    if "-" not in text:
        out = set(map(int, parts))
        spans: list[str] = []
    else:
        out = set(map(int, [p for p in parts if "-" not in p]))
        spans = [p for p in parts if "-" in p]
    for part in spans:
        first_text, _, last_text = part.partition("-")
        first, last = int(first_text), int(last_text)
        if last < first or last >= MAX_TRACKED or len(out) + last - first > MAX_TRACKED:
            raise ValueError(f"bad index range: {part!r}")
        out.update(range(first, last + 1))
    if out and max(out) >= MAX_TRACKED:
        raise ValueError(f"bad index range: an index of {max(out)}")
    return frozenset(out)


def _range_problem(text: str) -> None:
    """Raise the ValueError that names the first part of `text` that is not an index range."""
    for part in text.split(","):
        if _RANGE.match(part) is None:
            raise ValueError(f"not an index range: {part!r}")
    raise ValueError(f"not an index range: {text[:80]!r}")


class BuildSignals(Struct, frozen=True):
    """What package metadata says a release was built for, each from where it was read."""

    requires_torch: tuple[str, ...] = ()  # the release's own torch requirements
    requires_cuda: Optional[str] = None  # the CUDA its nvidia-*/cuda-toolkit requirements pull
    local: str = ""  # its local version tag
    copins: tuple[str, ...] = ()  # "torch==2.8.0 (sglang 0.5.2)": pinned together by a framework


class BuildFacts(Struct, frozen=True):
    """What one release's compiled wheel links and imports, read from the wheel itself."""

    project: str
    version: Version
    file: str
    sha256: str
    read_at: str
    bytes_read: int
    members: tuple[str, ...]  # "name [how; symbol table from; needed libraries from]"
    libraries: tuple[str, ...]  # needed libraries (C/C++ runtimes left out)
    cuda: tuple[int, ...]  # CUDA majors its libraries name (libcudart.so.12 -> 12)
    cuda_from: tuple[str, ...]  # "libcudart.so.12 in sgl_kernel/common_ops.abi3.so", one per major
    imports: frozenset[int]  # tracked torch symbols it imports (indices, torch-exports.toml)
    import_count: int
    torch: tuple[Version, ...]  # torch releases whose exports cover every import
    sass: tuple[tuple[int, int], ...]
    ptx: tuple[tuple[int, int], ...]
    archs: str  # which members' fatbins were read
    signals: BuildSignals
    # Per member, when members import different torch symbols: (member, imports).
    member_imports: tuple[tuple[str, frozenset[int]], ...] = ()
    # Set when no torch release covers every member but each member is covered by one: the
    # wheel ships one extension per torch ("member: torch 2.9.0, 2.9.1"); `torch` is then the union.
    variants: tuple[str, ...] = ()

    @property
    def links_torch(self) -> bool:
        return self.import_count > 0 or any(
            lib.startswith(("libtorch", "libc10")) for lib in self.libraries
        )


class TorchExports(Struct, frozen=True):
    """One torch release's exports, as a fingerprint over the tracked symbols."""

    version: Version
    file: str
    sha256: str
    read_at: str
    bytes_read: int
    members: tuple[str, ...]
    exports: int  # torch symbols its libraries export (all, counted)
    checked: int  # tracked symbols known when it was read: indices below this are answered
    provides: frozenset[int]  # tracked symbols it exports
    complete: bool  # every library's symbol table was read

    def answers(self, imports: frozenset[int]) -> bool:
        return self.complete and all(i < self.checked for i in imports)


class ExportsTable(Struct, frozen=True):
    tracked: tuple[str, ...]
    releases: dict[Version, TorchExports]


def _ranges(p: Problems, d: dict[str, Any], key: str, path: str) -> frozenset[int]:
    text = p.get(d, key, str, path, "", required=False) or ""
    try:
        return decode_ranges(text)
    except ValueError as exc:
        p.add(f"{path}.{key}", str(exc))
        return frozenset()


def _versions(p: Problems, d: dict[str, Any], key: str, path: str) -> tuple[Version, ...]:
    out = []
    for i, text in enumerate(p.strings(d, key, path)):
        v = p.convert(text, Version, f"{path}.{key}[{i}]", "version")
        if v is not None:
            out.append(v)
    return tuple(sorted(out))


def _provenance(p: Problems, d: dict[str, Any], path: str) -> tuple[str, str, str, int]:
    file = p.get(d, "file", str, path, "") or ""
    sha = p.get(d, "sha256", str, path, "") or ""
    if sha and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        p.add(f"{path}.sha256", "expected 64 lowercase hex digits")
    read_at = p.get(d, "read_at", str, path, "") or ""
    count = p.get(d, "bytes_read", int, path, 0) or 0
    if count < 0:
        p.add(f"{path}.bytes_read", "negative")
    return file, sha, read_at, count


_BUILD_KEYS = frozenset(
    {
        "file",
        "sha256",
        "read_at",
        "bytes_read",
        "members",
        "copies",
        "libraries",
        "cuda",
        "cuda_from",
        "imports",
        "import_count",
        "torch",
        "sass",
        "ptx",
        "archs",
        "signals",
        "member_imports",
        "variants",
    }
)
_SIGNAL_KEYS = frozenset({"requires_torch", "requires_cuda", "local", "copins"})


def read_builds(p: Problems, data: dict[str, Any]) -> tuple[str, dict[Version, BuildFacts]]:
    """A builds/<project>.toml file."""
    meta = p.get(data, "meta", dict, "", {}) or {}
    project = p.get(meta, "project", str, "meta", "") or ""
    out: dict[Version, BuildFacts] = {}
    for key, d in (p.get(data, "releases", dict, "", {}) or {}).items():
        path = f"releases.{key}"
        if not isinstance(d, dict):
            p.add(path, "expected a table")
            continue
        for extra in sorted(set(d) - _BUILD_KEYS):
            p.add(f"{path}.{extra}", "unknown key")
        version = p.convert(key, Version, path, "version")
        file, sha, read_at, count = _provenance(p, d, path)
        cuda_text = p.get(d, "cuda", str, path, "") or ""
        cuda: list[int] = []
        for part in filter(None, cuda_text.split(",")):
            if part.isascii() and part.isdigit() and len(part) <= 3:
                cuda.append(int(part))
            else:
                p.add(
                    f"{path}.cuda",
                    f"expected CUDA majors such as '12' or '12,13', got {cuda_text!r}",
                )
        sig = p.get(d, "signals", dict, path, {}, required=False) or {}
        for extra in sorted(set(sig) - _SIGNAL_KEYS):
            p.add(f"{path}.signals.{extra}", "unknown key")
        signals = BuildSignals(
            requires_torch=p.strings(sig, "requires_torch", f"{path}.signals"),
            requires_cuda=p.get(sig, "requires_cuda", str, f"{path}.signals", None, required=False),
            local=p.get(sig, "local", str, f"{path}.signals", "", required=False) or "",
            copins=p.strings(sig, "copins", f"{path}.signals"),
        )
        member_imports = []
        for i, line in enumerate(p.strings(d, "member_imports", path)):
            member, sep, text = line.rpartition(": ")
            try:
                member_imports.append((member, decode_ranges(text)))
            except ValueError as exc:
                p.add(f"{path}.member_imports[{i}]", str(exc))
            if not sep:
                p.add(f"{path}.member_imports[{i}]", "expected 'member: ranges'")
        imports = _ranges(p, d, "imports", path)
        count_imports = p.get(d, "import_count", int, path, 0) or 0
        if count_imports != len(imports):
            p.add(f"{path}.import_count", f"{count_imports} but imports lists {len(imports)}")
        if version is None:
            continue
        out[version] = BuildFacts(
            project=project,
            version=version,
            file=file,
            sha256=sha,
            read_at=read_at,
            bytes_read=count,
            members=p.strings(d, "members", path, required=True),
            libraries=p.strings(d, "libraries", path),
            cuda=tuple(cuda),
            cuda_from=p.strings(d, "cuda_from", path),
            imports=imports,
            import_count=count_imports,
            torch=_versions(p, d, "torch", path),
            sass=_ccs(p, d, "sass", path),
            ptx=_ccs(p, d, "ptx", path),
            archs=p.get(d, "archs", str, path, "", required=False) or "",
            signals=signals,
            member_imports=tuple(member_imports),
            variants=p.strings(d, "variants", path),
        )
    return project, out


_FINGERPRINT = re.compile(r"[0-9a-f]{12}")
_FINGERPRINTS = re.compile(r"[0-9a-f]{12}(?:\n[0-9a-f]{12})*")


def read_exports(p: Problems, data: dict[str, Any]) -> ExportsTable:
    """builds/torch-exports.toml: the tracked symbols and each torch release's fingerprint."""
    tracked_table = p.get(data, "tracked", dict, "", {}) or {}
    tracked = p.strings(tracked_table, "symbols", "tracked", required=True)
    # a thousand fingerprints: one match over all of them, item by item only to name a problem
    joined = "\n".join(tracked)
    well_formed = not tracked or (
        _FINGERPRINTS.fullmatch(joined) is not None and len(joined) == 13 * len(tracked) - 1
    )
    if not (well_formed and len(set(tracked)) == len(tracked)):
        seen: set[str] = set()
        for i, h in enumerate(tracked):
            if not _FINGERPRINT.fullmatch(h):
                p.add(f"tracked.symbols[{i}]", f"expected 12 lowercase hex digits, got {h!r}")
            elif h in seen:
                p.add(f"tracked.symbols[{i}]", f"duplicate fingerprint {h}")
            seen.add(h)
    releases: dict[Version, TorchExports] = {}
    for key, d in (p.get(data, "releases", dict, "", {}) or {}).items():
        path = f"releases.{key}"
        if not isinstance(d, dict):
            p.add(path, "expected a table")
            continue
        version = p.convert(key, Version, path, "version")
        file, sha, read_at, count = _provenance(p, d, path)
        provides = _ranges(p, d, "provides", path)
        checked = p.get(d, "checked", int, path, 0) or 0
        if checked > len(tracked) or any(i >= checked for i in provides):
            p.add(f"{path}.checked", f"{checked} does not fit {len(tracked)} tracked symbols")
        if version is None:
            continue
        releases[version] = TorchExports(
            version=version,
            file=file,
            sha256=sha,
            read_at=read_at,
            bytes_read=count,
            members=p.strings(d, "members", path, required=True),
            exports=p.get(d, "exports", int, path, 0) or 0,
            checked=checked,
            provides=provides,
            complete=bool(p.get(d, "complete", bool, path, False)),
        )
    return ExportsTable(tracked, releases)
