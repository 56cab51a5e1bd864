"""Core records: what an environment holds and what a check finds, as frozen typed values."""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional, TypeVar, Union

from msgspec import Struct, field
from packaging.version import InvalidVersion, Version

if TYPE_CHECKING:
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

T = TypeVar("T")

ENV_SCHEMA = "compat.env/1"
FINDINGS_SCHEMA = "compat.findings/1"


class Unknown(Struct, frozen=True):
    """A fact compat could not tell, with the reason (a value, never an exception)."""

    reason: str

    def __str__(self) -> str:
        return f"unknown ({self.reason})"


Probed = Union[T, Unknown]


class Severity(enum.Enum):
    """How bad a finding is; ordered so that `a >= b` means at least as bad."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


_NAME_SEP = re.compile(r"[-_.]+")


def canonicalize_name(name: str) -> str:
    """PEP 503 name normalisation (as packaging.utils does, without importing packaging.tags,
    which costs ~10 ms of start-up)."""
    return _NAME_SEP.sub("-", name).lower()


# packaging's own identifier pattern (its tokenizer's IDENTIFIER), so both read the same name.
_REQUIREMENT_NAME = re.compile(r"\s*\b([A-Za-z0-9][A-Za-z0-9._-]*)\b")


def requirement_name(text: str) -> Optional[str]:
    """The normalised name a PEP 508 requirement starts with, without parsing the rest (a
    check skips most of a stack's requirements by name alone); None when it starts with none."""
    m = _REQUIREMENT_NAME.match(text)
    return canonicalize_name(m.group(1)) if m else None


# No real version is longer; a longer text (a 5,000-digit "999...") would also exceed Python's
# int-conversion limit inside packaging.
MAX_VERSION_LENGTH = 128


def parse_version(text: object) -> Optional[Version]:
    """`Version(text)`, or None when the text is not a PEP 440 version of sane length."""
    if not isinstance(text, str) or len(text) > MAX_VERSION_LENGTH:
        return None
    try:
        return Version(text)
    except (InvalidVersion, ValueError, TypeError, OverflowError):
        return None


MAX_REQUIREMENT_LENGTH = 64 * 1024


def parse_requirement(text: str) -> Requirement:
    """`Requirement(text)` for text from outside (files, METADATA, data, the command line), or
    InvalidRequirement: also for what packaging accepts and fails on later, a version in a
    specifier or a marker longer than any real one (its digits are converted to int lazily, past
    Python's int-digit limit), and for the ValueError/RecursionError hostile text raises in it."""
    from packaging.requirements import InvalidRequirement, Requirement

    if len(text) > MAX_REQUIREMENT_LENGTH:
        raise InvalidRequirement(f"a requirement of {len(text)} characters")
    try:
        req = Requirement(text)
    except InvalidRequirement:
        raise
    except (ValueError, RecursionError, OverflowError) as exc:
        raise InvalidRequirement(first_line(exc)) from exc
    # a text no longer than a version cannot hold a longer one: the usual line costs nothing
    if len(text) > MAX_VERSION_LENGTH:
        values = [s.version for s in req.specifier]
        if req.marker is not None:
            values += re.findall(r"[\"']([^\"']*)[\"']", str(req.marker))
        long = _longest(values)
        if long is not None:
            raise InvalidRequirement(f"a version of {len(long)} characters")
    return req


def parse_specifiers(text: str, prereleases: Optional[bool] = None) -> SpecifierSet:
    """`SpecifierSet(text)` for text from outside, or InvalidSpecifier (as `parse_requirement`)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    if len(text) > MAX_REQUIREMENT_LENGTH:
        raise InvalidSpecifier(f"a specifier of {len(text)} characters")
    try:
        spec = SpecifierSet(text, prereleases=prereleases)
    except InvalidSpecifier:
        raise
    except (ValueError, RecursionError, OverflowError) as exc:
        raise InvalidSpecifier(first_line(exc)) from exc
    long = _longest([s.version for s in spec]) if len(text) > MAX_VERSION_LENGTH else None
    if long is not None:
        raise InvalidSpecifier(f"a version of {len(long)} characters")
    return spec


def _longest(values: list[str]) -> Optional[str]:
    """The first value longer than any real version, if one is."""
    return next((v for v in values if len(v) > MAX_VERSION_LENGTH), None)


def first_line(exc: BaseException) -> str:
    """An exception's message for one line of a report (its type when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def marker_env(python: Optional[str], machine: str = "x86_64", extra: str = "") -> dict[str, str]:
    """PEP 508 marker values of the serving target: Linux, CPython (3.11 unless told)."""
    version = ".".join((python or "3.11").split(".")[:2])
    full = python if python and python.count(".") == 2 else f"{version}.0"
    return {
        "python_version": version,
        "python_full_version": full,
        "platform_system": "Linux",
        "sys_platform": "linux",
        "os_name": "posix",
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "implementation_name": "cpython",
        "platform_release": "",
        "platform_version": "",
        "implementation_version": full,
        "extra": extra,
    }


def small_int(text: str, digits: int = 9) -> Optional[int]:
    """An ASCII decimal of at most `digits` digits ("-1" allowed), else None: str.isdigit() is
    true for "²" and "٣", which int() refuses or reads as another number."""
    body = text[1:] if text.startswith("-") else text
    if not body or len(body) > digits or not (body.isascii() and body.isdigit()):
        return None
    return int(text)


_CU_TAG = re.compile(r"^cu([0-9]{2,3})$")


def cuda_from_local(local: Optional[str]) -> Optional[str]:
    """'cu124' -> '12.4', 'cu130' -> '13.0', 'cu118torch2.1' -> '11.8'; None otherwise."""
    if not local:
        return None
    m = re.match(r"^cu([0-9]{2,3})", local)
    if not m:
        return None
    digits = m.group(1)
    return f"{digits[:-1]}.{digits[-1]}"


def cuda_tag(cuda: str) -> str:
    """'12.4' -> 'cu124'."""
    major, _, minor = cuda.partition(".")
    return f"cu{major}{minor or '0'}"


class PythonInfo(Struct, frozen=True):
    version: str
    implementation: str
    executable: str
    platform: str
    machine: str
    # The interpreter's supported wheel tags, most specific first (truncated for display).
    tags: tuple[str, ...] = ()

    @property
    def major_minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


class ObjectFacts(Struct, frozen=True):
    """One compiled object of an installed distribution, read with `--deep` (ELF dynamic info).

    `unresolved` are the libtorch/c10/ATen symbols it imports that the installed torch does not
    export: the `undefined symbol` its import dies of (the first few; `unresolved_count` all).
    """

    path: str  # relative to the distribution's location
    needed: tuple[str, ...] = ()
    torch_imports: int = 0
    unresolved: tuple[str, ...] = ()
    unresolved_count: int = 0
    error: str = ""  # why it could not be read ("" when it was)


class Distribution(Struct, frozen=True, dict=True):
    """An installed distribution as its dist-info says; `broken` holds why it could not be read."""

    name: str
    version: Optional[Version]
    raw_version: str
    location: str = ""
    requires: tuple[str, ...] = ()
    broken: Optional[str] = None
    # mtime of the dist-info folder: when it was installed (to tell stale caches).
    installed_at: Optional[float] = None
    # Shared libraries its main extension module needs (ELF DT_NEEDED), for packages built
    # against torch (torchvision/_C.so ...): tells a CUDA build from a CPU one without import.
    needs: tuple[str, ...] = ()
    # Its compiled objects as read with --deep (empty without it).
    objects: tuple[ObjectFacts, ...] = ()
    # Installed from source (PEP 610 direct_url: a VCS URL, a local path, an archive URL), "" when
    # from an index: its version may be a development one and its pins those of that checkout.
    direct_url: str = ""

    @functools.cached_property
    def key(self) -> str:
        return canonicalize_name(self.name)


class TorchBuild(Struct, frozen=True):
    """torch as built: version with local tag, CUDA/HIP it targets, and where that came from."""

    version: Optional[Version]
    cuda: Optional[str]
    hip: Optional[str]
    source: str
    # CUDA major from nvidia-*/cuda-toolkit requirements when the version carries no local tag.
    cuda_from_deps: Optional[str] = None
    # libtorch*/libc10* files in torch/lib (a CPU build has no libtorch_cuda.so).
    libs: tuple[str, ...] = ()
    # The arch list torch.cuda.get_arch_list() reports ('sm_90', 'compute_90'), read only with
    # --deep: from the fatbin headers of torch/lib/libtorch_cuda.so, else by importing torch.
    arch_list: tuple[str, ...] = ()
    arch_source: str = ""  # where arch_list was read, or why it is empty

    @property
    def cuda_major(self) -> Optional[int]:
        c = self.cuda or self.cuda_from_deps
        if not c:
            return None
        try:
            return int(c.split(".")[0])
        except ValueError:
            return None

    @property
    def is_cpu(self) -> bool:
        return self.cuda is None and self.hip is None and self.cuda_from_deps is None


class Driver(Struct, frozen=True):
    """The NVIDIA driver: kernel-module version and the CUDA version its user-mode library runs."""

    version: Probed[str]
    cuda: Probed[str]
    version_source: str = ""
    cuda_source: str = ""


class GPU(Struct, frozen=True):
    index: int
    name: str
    compute_capability: Optional[tuple[int, int]]
    memory_total_mib: Optional[int] = None
    memory_used_mib: Optional[int] = None
    mig: Optional[bool] = None
    uuid: Optional[str] = None
    source: str = ""

    @property
    def sm(self) -> Optional[str]:
        cc = self.compute_capability
        return f"sm_{cc[0]}{cc[1]}" if cc else None


class HostContext(Struct, frozen=True):
    """Where compat runs: container, WSL, device nodes present."""

    container: Optional[str]
    wsl: bool
    device_nodes: tuple[str, ...]
    notes: tuple[str, ...] = ()


class CacheInfo(Struct, frozen=True):
    kind: str
    path: str
    exists: bool
    size_bytes: int = 0
    entries: int = 0
    truncated: bool = False
    # Versions that built the entries, where the cache layout tells (e.g. flashinfer/<version>/).
    built_by: tuple[str, ...] = ()
    # Modification time (epoch seconds) of the oldest top-level entry, to compare with installs.
    oldest_mtime: Optional[float] = None


class Environment(Struct, frozen=True, dict=True):
    """Everything the checks need about one machine, from a probe, a snapshot or a freeze file."""

    python: Probed[PythonInfo]
    distributions: tuple[Distribution, ...]
    torch: Probed[TorchBuild]
    driver: Probed[Driver]
    gpus: Probed[tuple[GPU, ...]]
    context: Probed[HostContext]
    env: dict[str, str] = field(default_factory=dict)
    caches: tuple[CacheInfo, ...] = ()
    source: str = "live"
    created: str = ""
    launch: tuple[str, ...] = ()
    # Whether the compiled objects were read (--deep): Distribution.objects, TorchBuild.arch_list.
    deep: bool = False
    # A list of pins that may leave packages out (a freeze excerpt, a requirements file): a
    # package missing from it is not known to be missing from the environment.
    partial: bool = False

    @functools.cached_property
    def _by_key(self) -> dict[str, Distribution]:
        out: dict[str, Distribution] = {}
        for d in self.distributions:
            if d.broken is None:
                out.setdefault(d.key, d)
        return out

    def dist(self, name: str) -> Optional[Distribution]:
        return self._by_key.get(canonicalize_name(name))

    def version_of(self, name: str) -> Optional[Version]:
        d = self.dist(name)
        return d.version if d else None


class Finding(Struct, frozen=True):
    code: str
    severity: Severity
    message: str
    evidence: tuple[str, ...] = ()
    fix: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    advisory: Optional[str] = None
    # For an info that could not tell: the host fact it lacked ("driver", "gpu", "launch",
    # "model"); findings lacking the same fact are reported together.
    missing: str = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "packages": list(self.packages),
            "evidence": list(self.evidence),
            "fix": list(self.fix),
            "references": list(self.references),
        }
        if self.advisory:
            d["advisory"] = self.advisory
        return d


class Code(str, enum.Enum):
    """Finding codes (DESIGN.md, Findings)."""

    FRAMEWORK_PIN = "framework-pin"
    TORCH_TRITON = "torch-triton"
    TORCH_COMPANION = "torch-companion"
    KERNEL_TORCH = "kernel-torch"
    SPLIT_PACKAGE = "split-package"
    CUDA_MIX = "cuda-mix"
    DRIVER_TOO_OLD = "driver-too-old"
    GPU_ARCH = "gpu-arch"
    STALE_CACHE = "stale-cache"
    ENV_VAR = "env-var"
    KNOWN_CRASH = "known-crash"
    MEMORY_HEADROOM = "memory-headroom"
    UNKNOWN_COMBINATION = "unknown-combination"
    LAUNCH_FLAG = "launch-flag"
    CLUSTER_MISMATCH = "cluster-mismatch"
    PARALLELISM = "parallelism"
    MEMORY_FIT = "memory-fit"
    BROKEN_DIST = "broken-dist"
    STACK_PIN = "stack-pin"
    MISSING_FACT = "missing-fact"
    UNPINNED = "unpinned"
    PIN_CONFLICT = "pin-conflict"


# Ray clusters (compat check --ray): one report per node -------------------------------------
class NodeStatus(enum.Enum):
    OK = "ok"
    TIMEOUT = "timeout"  # no answer before --ray-timeout (not scheduled, or the probe hung)
    DIED = "died"  # the node died while its probe ran
    FAILED = "failed"  # the task raised, or its runtime env could not be set up


class Node(Struct, frozen=True):
    """A node as the cluster lists it when the check starts."""

    node_id: str
    address: str
    hostname: str
    head: bool = False
    gpus: float = 0.0  # Ray's GPU resource on the node
    label: str = ""  # short unique name for reports (hostname, or hostname/id when shared)


class NodeReport(Struct, frozen=True):
    node: Node
    status: NodeStatus
    env: Optional[Environment] = None
    reason: str = ""
    # What the task saw of Ray: version, GPU ids it was given, the raylet's CUDA_VISIBLE_DEVICES.
    facts: Mapping[str, str] = field(default_factory=dict)


class ClusterProbe(Struct, frozen=True):
    """One probe per alive node, in a stable order (head first, then by label)."""

    address: str
    nodes: tuple[NodeReport, ...]
    runtime_env: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float = 60.0
    elapsed_s: float = 0.0
    ray_version: str = ""


class ClusterResult(Struct, frozen=True):
    probe: ClusterProbe
    per_node: tuple[tuple[NodeReport, tuple[Finding, ...]], ...]
    cluster: tuple[Finding, ...]

    def all_findings(self) -> list[Finding]:
        out = [f for _, fs in self.per_node for f in fs]
        return out + list(self.cluster)
