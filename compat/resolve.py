"""Resolve a declared target to one consistent tuple: filter candidates from the database, rank them.

The tuple space is small and shaped: a framework release pins torch exactly, a torch release has a
handful of CUDA builds, and torch pins triton; companions and kernels follow from the framework's
pins. So this is a filter-and-rank over the database, not a general resolver (docs/lock.md says
why): candidates are walked best first, every hard constraint either passes or records a
`Rejection` with its reason, and the first candidate that passes everything is the answer. Pure:
the matrix, the advisories and the target come in as values; nothing is read from the machine.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterator, Sequence
from typing import Any, Optional

from msgspec import Struct, field
from msgspec.structs import replace
from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import parse_tag
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from compat.advisories import Advisory
from compat.errors import ResolutionError, UsageError
from compat.families import Family, families, other_platform_extra
from compat.matrix.builtfor import Verdict, built_for
from compat.matrix.load import Matrix
from compat.matrix.schema import Release, TorchBuildInfo, WheelIndex, cc_str
from compat.models import (
    GPU,
    Distribution,
    Driver,
    Environment,
    TorchBuild,
    Unknown,
    cuda_tag,
    parse_requirement,
)
from compat.nvidia import coverage, driver_floor, driver_runs, driver_span, fmt_driver

_FAM = families()
FRAMEWORKS = _FAM.frameworks
LEADS = (*FRAMEWORKS, "torch")
COMPANIONS = _FAM.names(Family.COMPANION)
# Compiled against one torch and one CUDA major, with releases in the database; their pins come
# from the framework.
KERNELS = tuple(p.name for p in _FAM.rows if p.family is Family.KERNEL and p.sync)
FLASHINFER_PARTS = _FAM.groups()["flashinfer"]
# Projects whose sdist is an installable package (flashinfer-python compiles its kernels at run
# time); for the others an sdist means compiling CUDA code at install, which a lock must not ask.
SDIST_OK = frozenset(p.name for p in _FAM.rows if p.sdist_ok)
# Advisory severities that make a tuple unacceptable (a hung server is as dead as a crashed one).
BLOCKING = frozenset({"crash", "hang"})
_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def _key(name: str) -> str:
    return str(canonicalize_name(name))


class Rule(str, enum.Enum):
    """Why a candidate was rejected; the order is the order of the failure report."""

    TARGET = "target"
    YANKED = "yanked"
    PYTHON = "python"
    PLATFORM = "platform"
    CUDA = "cuda"
    DRIVER = "driver"
    GPU = "gpu-arch"
    TORCH = "torch-pin"
    TRITON = "triton"
    COMPANION = "companion"
    KERNEL = "kernel"
    INDEX = "index"
    ADVISORY = "advisory"


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


class Platform(Struct, frozen=True):
    """Linux on one machine type; `glibc` caps the manylinux tags accepted (None: any)."""

    arch: str = "x86_64"
    glibc: Optional[tuple[int, int]] = None

    @property
    def label(self) -> str:
        if self.glibc:
            return f"manylinux_{self.glibc[0]}_{self.glibc[1]}_{self.arch}"
        return f"manylinux {self.arch}"

    @property
    def tag(self) -> str:
        """A concrete platform tag for file names (glibc 2.28 unless capped)."""
        g = self.glibc or (2, 28)
        return f"manylinux_{g[0]}_{g[1]}_{self.arch}"


def parse_platform(text: str) -> Platform:
    """`--platform`: 'x86_64', 'aarch64', 'linux_aarch64', 'manylinux_2_28_x86_64', 'manylinux2014_x86_64'."""
    t = text.strip().lower().replace("-", "_")
    for arch in ("x86_64", "aarch64"):
        if t in (arch, f"linux_{arch}", f"manylinux_{arch}"):
            return Platform(arch)
        m = re.fullmatch(rf"manylinux_([0-9]+)_([0-9]+)_{arch}", t)
        if m:
            return Platform(arch, (int(m.group(1)), int(m.group(2))))
        for legacy, glibc in _LEGACY_MANYLINUX.items():
            if t == f"{legacy}_{arch}":
                return Platform(arch, glibc)
    raise UsageError(
        f"--platform {text!r}: not a Linux platform compat locks for",
        hint="use x86_64 (default), aarch64, or a tag such as manylinux_2_28_x86_64",
    )


class TargetGpu(Struct, frozen=True):
    name: str
    cc: tuple[int, int]
    memory_gib: Optional[float] = None
    source: str = "--gpu"

    @property
    def sm(self) -> str:
        return f"sm_{self.cc[0]}{self.cc[1]}"

    @property
    def label(self) -> str:
        return (
            self.sm
            if self.name.lower() in (self.sm, cc_str(self.cc))
            else f"{self.name} ({self.sm})"
        )


class Target(Struct, frozen=True):
    """What to lock for. Host facts are None/empty when not declared: then they do not constrain."""

    requirements: tuple[Requirement, ...]
    python: str = "3.11"
    platform: Platform = field(default_factory=Platform)
    cuda: Optional[str] = None  # "12.6" (exact tag) or "12" (a major)
    cuda_max: Optional[Version] = None  # --cuda auto: at most what the host's driver reports
    driver: Optional[Version] = None
    driver_source: str = ""
    gpus: tuple[TargetGpu, ...] = ()
    allow: frozenset[str] = frozenset()

    @property
    def has_host(self) -> bool:
        return (
            self.driver is not None
            or bool(self.gpus)
            or self.cuda is not None
            or self.cuda_max is not None
        )

    @property
    def python_version(self) -> Version:
        return Version(self.python)

    def spec_text(self) -> str:
        return " ".join(str(r) for r in self.requirements)


def parse_targets(texts: Sequence[str]) -> tuple[Requirement, ...]:
    """TARGET arguments as PEP 508 requirements (markers and URLs refused)."""
    out: list[Requirement] = []
    for text in texts:
        try:
            req = parse_requirement(text)
        except InvalidRequirement as exc:
            raise UsageError(
                f"target {text!r} is not a requirement: {exc}",
                hint="e.g. sglang==0.4.6.post1, 'sglang>=0.5', vllm, torch==2.7.1",
            ) from exc
        if req.url or req.marker:
            raise UsageError(
                f"target {text!r}: URLs and markers are not targets",
                hint="give name and version range only",
            )
        out.append(req)
    names = {_key(r.name) for r in out}
    if not names & set(LEADS):
        raise UsageError(
            "name a framework (sglang, vllm) or torch among the targets",
            hint="e.g. compat lock 'sglang>=0.5' or compat lock torch==2.7.1 torchvision",
        )
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------


class Index(Struct, frozen=True):
    """A wheel index a pin needs (None on a Pin means PyPI)."""

    name: str
    url: str
    source: str = ""


class Pin(Struct, frozen=True):
    name: str  # canonical
    version: Version  # with the local tag its index serves (2.7.1+cu128)
    extras: tuple[str, ...] = ()
    index: Optional[Index] = None  # None: PyPI
    via: tuple[str, ...] = ()
    release: Optional[Release] = None
    sdist_only: bool = False

    @property
    def requirement(self) -> str:
        extras = f"[{','.join(self.extras)}]" if self.extras else ""
        return f"{self.name}{extras}=={self.version}"

    @property
    def constraint(self) -> str:
        return f"{self.name}=={self.version}"


class Rejection(Struct, frozen=True):
    rule: Rule
    candidate: str
    reason: str
    framework: str = ""  # "sglang 0.5.2"
    torch: Optional[Version] = None
    cuda: Optional[str] = None
    advisory: str = ""

    def line(self) -> str:
        return f"{self.candidate}: {self.reason}"


class Resolution(Struct, frozen=True):
    target: Target
    pins: tuple[Pin, ...]
    build: TorchBuildInfo
    notes: tuple[str, ...] = ()
    rejected: tuple[Rejection, ...] = ()
    rule: str = ""
    pending: tuple[str, ...] = ()  # advisories that depend on the launch or env
    # what works less well in this tuple (an ops_optional kernel without its ops): a tuple
    # without any is preferred
    degraded: tuple[str, ...] = ()

    @property
    def cuda(self) -> str:
        return self.build.cuda

    def pin(self, name: str) -> Optional[Pin]:
        key = _key(name)
        return next((p for p in self.pins if p.name == key), None)

    @property
    def indexes(self) -> tuple[Index, ...]:
        seen: dict[str, Index] = {}
        for p in self.pins:
            if p.index is not None and p.index.url not in seen:
                seen[p.index.url] = p.index
        return tuple(sorted(seen.values(), key=lambda i: i.name))

    @property
    def framework(self) -> Optional[Pin]:
        for name in FRAMEWORKS:
            p = self.pin(name)
            if p is not None and "target" in p.via:
                return p
        return next((p for p in (self.pin(n) for n in FRAMEWORKS) if p is not None), None)


class NoTupleError(ResolutionError):
    """Nothing fits: the rejections grouped by rule, and the nearest alternatives."""

    def __init__(
        self,
        message: str,
        rejected: tuple[Rejection, ...],
        alternatives: tuple[str, ...] = (),
        hint: Optional[str] = None,
    ) -> None:
        super().__init__(message, hint)
        self.rejected = rejected
        self.alternatives = alternatives


# --------------------------------------------------------------------------------------------
# Facts: markers, wheel tags, driver, GPU coverage
# --------------------------------------------------------------------------------------------


def marker_env(target: Target, extra: str = "") -> dict[str, str]:
    py = target.python
    return {
        "python_version": py,
        "python_full_version": f"{py}.0",
        "platform_system": "Linux",
        "sys_platform": "linux",
        "os_name": "posix",
        "platform_machine": target.platform.arch,
        "platform_python_implementation": "CPython",
        "implementation_name": "cpython",
        "platform_release": "",
        "platform_version": "",
        "implementation_version": f"{py}.0",
        "extra": extra,
    }


def applies(req: Requirement, target: Target, extras: Sequence[str] = ()) -> bool:
    if req.marker is None:
        return True
    for e in ("", *extras):
        try:
            if req.marker.evaluate(marker_env(target, e)):
                return True
        except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
            return False
    return False


def _interp(text: str) -> Optional[tuple[str, int, int]]:
    m = re.fullmatch(r"(cp|py)([0-9])([0-9]*)", text)
    if not m:
        return None
    return m.group(1), int(m.group(2)), int(m.group(3) or -1)


def _platform_ok(plat: str, target: Platform) -> bool:
    if plat == "any":
        return True
    if plat == f"linux_{target.arch}":
        return True
    for legacy, glibc in _LEGACY_MANYLINUX.items():
        if plat == f"{legacy}_{target.arch}":
            return target.glibc is None or glibc <= target.glibc
    m = re.fullmatch(r"manylinux_([0-9]+)_([0-9]+)_(\w+)", plat)
    if m and m.group(3) == target.arch:
        return target.glibc is None or (int(m.group(1)), int(m.group(2))) <= target.glibc
    return False


def wheel_fits(tags: str, python: str, platform: Platform) -> bool:
    """Whether a wheel's tag triple (compressed sets allowed) installs on CPython `python`."""
    major, minor = (int(x) for x in python.split(".")[:2])
    try:
        parsed = parse_tag(tags)
    except ValueError:
        return False
    for t in parsed:
        it = _interp(t.interpreter)
        if it is None or it[1] != major or not _platform_ok(t.platform, platform):
            continue
        kind, _, m = it
        if t.abi == "abi3":
            if kind == "cp" and m <= minor:
                return True
        elif t.abi == "none":
            if kind == "py" and (m == -1 or m <= minor):
                return True
            if kind == "cp" and m == minor:
                return True
        elif t.abi in (f"cp{major}{minor}", f"cp{major}{minor}m") and kind == "cp" and m == minor:
            return True
    return False


def installable(rel: Release, target: Target) -> Optional[str]:
    """None when `rel` installs for the target's Python and platform, else why not."""
    if not rel.requires_python.contains(target.python_version, prereleases=True):
        return f"{rel.project} {rel.version} requires Python {rel.requires_python}"
    if any(wheel_fits(w, target.python, target.platform) for w in rel.wheels):
        return None
    if rel.sdist and _key(rel.project) in SDIST_OK:
        return None
    if not rel.wheels:
        return f"{rel.project} {rel.version} has no wheel on PyPI"
    return (
        f"{rel.project} {rel.version} has no wheel for Python {target.python} on "
        f"{target.platform.label}"
    )


def compiled(rel: Release) -> bool:
    """Whether a release ships platform wheels (compiled code) rather than pure Python."""
    return any(not w.endswith("-none-any") for w in rel.wheels)


def has_fitting_wheel(rel: Release, target: Target) -> bool:
    return any(wheel_fits(w, target.python, target.platform) for w in rel.wheels)


def _archs(build: TorchBuildInfo) -> str:
    sass = ", ".join(f"sm_{a}{b}" for a, b in build.sass) or "?"
    ptx = f" + PTX {', '.join(cc_str(p) for p in build.ptx)}" if build.ptx else ""
    return sass + ptx


# --------------------------------------------------------------------------------------------
# The database seen as candidates
# --------------------------------------------------------------------------------------------


def _newest_first(rels: dict[Version, Release], specs: Sequence[SpecifierSet]) -> list[Release]:
    key = (id(rels), tuple(str(s) for s in specs))
    hit = _CANDIDATES.get(key)
    if hit is not None and hit[0] is rels:
        return hit[1]
    pre = [_pre(s) for s in specs]
    out = [
        rels[v]
        for v in sorted(rels, reverse=True)
        if all(s.contains(v, prereleases=p) for s, p in zip(specs, pre))
    ]
    _CANDIDATES[key] = (rels, out)
    return out


# (releases dict, specifiers) -> candidates; the dicts live as long as their Matrix.
_CANDIDATES: dict[tuple[int, tuple[str, ...]], tuple[dict[Version, Release], list[Release]]] = {}


@functools.cache
def _pre(spec: SpecifierSet) -> bool:
    """Pre-releases only when a specifier names one (PEP 440)."""
    for s in spec:
        text = s.version.replace(".*", "")
        if text[:1].isdigit() and _valid(text) and Version(text).is_prerelease:
            return True
    return False


def _valid(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


def carrier_extras(rel: Release) -> tuple[str, ...]:
    """The extra that carries a framework's CUDA pins: sglang[srt] up to 0.5.2; none from 0.5.3."""
    on_torch: set[str] = set()
    for r in rel.requires:
        key = _key(r.name)
        if key not in ("torch", "vllm") or r.marker is None:
            continue
        if key == "torch" and not str(r.marker).count("extra"):
            return ()
        on_torch |= {e for e in _extras_of(r) if not other_platform_extra(e)}
    if any(_key(r.name) == "torch" and r.marker is None for r in rel.requires):
        return ()
    if "srt" in on_torch:
        return ("srt",)
    return (sorted(on_torch)[0],) if on_torch else ()


def _extras_of(req: Requirement) -> set[str]:
    text = str(req.marker) if req.marker else ""
    return {_key(m) for m in re.findall(r"extra\s*==\s*['\"]([^'\"]+)['\"]", text)}


class _Need(Struct, frozen=True):
    """One requirement on a stack package, with who asks for it."""

    req: Requirement
    who: str

    @property
    def spec(self) -> SpecifierSet:
        return self.req.specifier


def stack_needs(
    rel: Release, extras: tuple[str, ...], target: Target, who: str
) -> dict[str, list[_Need]]:
    """The requirements of `rel` on stack packages that apply to the target (ROCm/CPU extras out)."""
    out: dict[str, list[_Need]] = {}
    for r in rel.requires:
        key = _key(r.name)
        if key not in (*LEADS, "triton", *COMPANIONS, *KERNELS):
            continue
        ex = _extras_of(r)
        if ex and not ex & set(extras):
            continue
        if not applies(r, target, extras):
            continue
        out.setdefault(key, []).append(_Need(r, who))
    for key, needs in out.items():
        pinned = [n for n in needs if str(n.spec)]
        out[key] = pinned or needs[:1]
    return out


# --------------------------------------------------------------------------------------------
# Resolution
# --------------------------------------------------------------------------------------------


class _Chain(Struct):
    """A choice of framework releases (lead first) and what they require together."""

    releases: list[tuple[Release, tuple[str, ...]]] = field(default_factory=list)
    needs: dict[str, list[_Need]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return ", ".join(f"{r.project} {r.version}" for r, _ in self.releases)

    def add(self, rel: Release, extras: tuple[str, ...], target: Target) -> _Chain:
        who = f"{rel.project}{'[' + ','.join(extras) + ']' if extras else ''}=={rel.version}"
        merged = {k: list(v) for k, v in self.needs.items()}
        for k, v in stack_needs(rel, extras, target, who).items():
            merged.setdefault(k, []).extend(v)
        return _Chain([*self.releases, (rel, extras)], merged)


class _Resolver:
    def __init__(self, target: Target, matrix: Matrix, advisories: Sequence[Advisory]) -> None:
        self.t = target
        self.m = matrix
        self.advisories = advisories
        self.rejected: list[Rejection] = []
        self.notes: list[str] = []
        self.user: dict[str, list[_Need]] = {}
        for r in target.requirements:
            self.user.setdefault(_key(r.name), []).append(_Need(r, "target"))
        self.user_extras = {
            _key(r.name): tuple(sorted(r.extras)) for r in target.requirements if r.extras
        }

    def reject(self, rule: Rule, candidate: str, reason: str, **kw: Any) -> None:
        self.rejected.append(Rejection(rule, candidate, reason, **kw))

    # -- frameworks ------------------------------------------------------------------------
    def chains(self) -> Iterator[_Chain]:
        fws = [n for n in FRAMEWORKS if n in self.user]
        yield from self._extend(_Chain(), fws, first=True)

    def _extend(self, chain: _Chain, todo: list[str], first: bool = False) -> Iterator[_Chain]:
        # A framework the chosen ones require (old sglang -> vllm) joins the chain.
        pending = [
            n
            for n in FRAMEWORKS
            if n in chain.needs and n not in {_key(r.project) for r, _ in chain.releases}
        ]
        names = todo or pending
        if not names:
            yield chain
            return
        name, rest = names[0], [n for n in names[1:] if n != names[0]]
        specs = [n.spec for n in self.user.get(name, []) + chain.needs.get(name, [])]
        rels = self.m.releases(name)
        if not rels:
            self.reject(Rule.TARGET, name, f"{name} is not in compat's database")
            return
        cands = _newest_first(rels, specs)
        if not cands:
            shown = " and ".join(sorted({str(s) for s in specs if str(s)})) or "any version"
            who = "; ".join(sorted({n.who for n in chain.needs.get(name, [])})) or "the target"
            self.reject(
                Rule.TARGET,
                f"{name}{shown if shown != 'any version' else ''}",
                f"no {name} release in the database matches {shown} (asked by {who})",
                framework=chain.label,
            )
            return
        torch_specs = [n.spec for n in chain.needs.get("torch", []) + self.user.get("torch", [])]
        for rel in cands:
            label = f"{name} {rel.version}"
            if rel.yanked:
                self.reject(Rule.YANKED, label, "yanked on PyPI", framework=label)
                continue
            why = installable(rel, self.t)
            if why:
                self.reject(Rule.PYTHON, label, why, framework=label)
                continue
            extras = self.user_extras.get(name) or carrier_extras(rel)
            nxt = chain.add(rel, extras, self.t)
            if first and not torch_specs and not nxt.needs.get("torch") and "vllm" not in nxt.needs:
                self.reject(
                    Rule.TORCH,
                    label,
                    f"{name} {rel.version} does not require torch "
                    "(a client-only release); nothing to lock",
                    framework=label,
                )
                continue
            if not first and torch_specs and not self._torch_compatible(nxt, torch_specs):
                continue  # a nested framework release for another torch: not a candidate at all
            yield from self._extend(nxt, rest)

    def _torch_compatible(self, chain: _Chain, specs: list[SpecifierSet]) -> bool:
        mine = [n.spec for n in chain.needs.get("torch", [])]
        return any(
            all(s.contains(v, prereleases=True) for s in [*specs, *mine])
            for v in self.m.releases("torch")
        )

    # -- torch and its builds -------------------------------------------------------------
    def builds(self, rel_t: Release) -> list[TorchBuildInfo]:
        rows = [b for b in self.m.builds_of(rel_t.version) if b.is_cuda]
        if rel_t.cuda and not any(b.pypi_default for b in rows):
            # No curated row for PyPI's own build: its CUDA comes from the generated record.
            rows.append(
                TorchBuildInfo(
                    torch=rel_t.version,
                    cuda=rel_t.cuda,
                    index="",
                    local="",
                    pypi_default=True,
                    sass=(),
                    ptx=(),
                    source="",
                    verified=False,
                    note="arch list not recorded",
                )
            )
        if self.t.platform.arch != "x86_64" and not self._pypi_cuda_on(rel_t):
            # PyPI's wheel for this machine type pulls no CUDA runtime: a CPU build.
            rows = [b for b in rows if not b.pypi_default or b.index]
            rows = [replace(b, pypi_default=False) if b.pypi_default else b for b in rows]
        return rows

    def _pypi_cuda_on(self, rel_t: Release) -> bool:
        for r in rel_t.requires:
            key = _key(r.name)
            if key.startswith(("nvidia-cuda-runtime", "cuda-toolkit")) and applies(r, self.t):
                return True
        return False

    def order_builds(self, builds: list[TorchBuildInfo], label: str) -> list[TorchBuildInfo]:
        t = self.t
        out = []
        for b in builds:
            v = Version(b.cuda)
            if t.cuda is not None:
                want = Version(t.cuda)
                same = v.release[:2] == want.release[:2] if "." in t.cuda else v.major == want.major
                if not same:
                    self.reject(
                        Rule.CUDA,
                        f"{label}+{cuda_tag(b.cuda)}",
                        f"--cuda {t.cuda} asked",
                        torch=Version(label.split()[-1]),
                        cuda=b.cuda,
                    )
                    continue
            if t.cuda_max is not None and v.release[:2] > t.cuda_max.release[:2]:
                self.reject(
                    Rule.CUDA,
                    f"{label}+{cuda_tag(b.cuda)}",
                    f"above CUDA {t.cuda_max}, the most this host's driver reports",
                    torch=Version(label.split()[-1]),
                    cuda=b.cuda,
                )
                continue
            out.append(b)
        if t.driver is not None:
            # Rank: a build the driver runs natively before one that needs minor-version
            # compatibility (under which PTX from the newer toolkit cannot be JIT-compiled), a
            # build compat verified at its source before an unverified one, then the highest
            # CUDA (builds the driver cannot run are rejected later).
            driver = t.driver

            def rank(b: TorchBuildInfo) -> tuple[bool, bool, Version]:
                mode, _ = driver_runs(self.m, driver, b.cuda)
                return (mode == "full", b.verified, Version(b.cuda))

            return sorted(out, key=rank, reverse=True)
        if t.cuda_max is not None:
            return sorted(out, key=lambda b: Version(b.cuda), reverse=True)
        # No driver named: the framework's requirements alone, i.e. PyPI's own build first.
        return sorted(out, key=lambda b: (b.pypi_default, Version(b.cuda)), reverse=True)

    def resolve(self) -> Resolution:
        for chain in self.chains():
            got = self._with_chain(chain)
            if got is not None:
                return got
        raise self.failure()

    def _with_chain(self, chain: _Chain) -> Optional[Resolution]:
        torch_needs = chain.needs.get("torch", []) + self.user.get("torch", [])
        specs = [n.spec for n in torch_needs]
        rels = self.m.releases("torch")
        cands = _newest_first(rels, specs)
        if not cands:
            shown = ", ".join(f"{n.who} requires {n.req}" for n in torch_needs)
            self.reject(
                Rule.TORCH,
                chain.label or "torch",
                f"no torch release matches: {shown}",
                framework=chain.label,
            )
            return None
        for rel_t in cands:
            label = f"{chain.label + ', ' if chain.label else ''}torch {rel_t.version}"
            if rel_t.yanked:
                self.reject(
                    Rule.YANKED,
                    label,
                    "torch release yanked",
                    framework=chain.label,
                    torch=rel_t.version,
                )
                continue
            why = installable(rel_t, self.t)
            if why:
                self.reject(Rule.PYTHON, label, why, framework=chain.label, torch=rel_t.version)
                continue
            builds = self.builds(rel_t)
            if not builds:
                self.reject(
                    Rule.CUDA,
                    label,
                    f"compat knows no CUDA build of torch {rel_t.version} "
                    f"for {self.t.platform.label}",
                    framework=chain.label,
                    torch=rel_t.version,
                )
                continue
            passed_over: list[str] = []
            fallback: Optional[Resolution] = None
            for b in self.order_builds(builds, label):
                before = len(self.rejected)
                got = self._evaluate(chain, rel_t, b, label)
                if got is not None and got.degraded:
                    fallback = fallback or got
                    passed_over.append(
                        f"CUDA {b.cuda} not chosen while another build works fully: "
                        + "; ".join(got.degraded)
                    )
                    continue
                if got is not None:
                    if passed_over:
                        # Builds ranked first (the driver runs them natively): why they lost.
                        got = replace(got, notes=(*passed_over, *got.notes))
                    return got
                if (
                    self.t.driver is not None
                    and driver_runs(self.m, self.t.driver, b.cuda)[0] == "full"
                ):
                    why = "; ".join(r.reason for r in self.rejected[before:][:1])
                    passed_over.append(
                        f"CUDA {b.cuda} (which driver {fmt_driver(self.t.driver)} runs natively) "
                        f"not chosen: {why or 'rejected'}"
                    )
            if fallback is not None:
                return fallback
        return None

    # -- one candidate ---------------------------------------------------------------------
    def _evaluate(
        self, chain: _Chain, rel_t: Release, b: TorchBuildInfo, label: str
    ) -> Optional[Resolution]:
        cand = f"{label}+{cuda_tag(b.cuda)}"
        ctx = {"framework": chain.label, "torch": rel_t.version, "cuda": b.cuda}
        notes: list[str] = []
        t = self.t
        # Driver.
        mode = "unknown"
        if t.driver is not None:
            mode, why = driver_runs(self.m, t.driver, b.cuda)
            if mode == "no":
                self.reject(
                    Rule.DRIVER, cand, f"driver {fmt_driver(t.driver)} cannot run it: {why}", **ctx
                )
                return None
            if mode == "minor":
                notes.append(why + "; PTX built by a newer toolkit cannot be JIT-compiled by it")
            if mode == "unknown":
                notes.append(why + ": driver not checked")
            if mode == "full":
                newer = [
                    o.cuda
                    for o in self.builds(rel_t)
                    if Version(o.cuda) > Version(b.cuda)
                    and driver_runs(self.m, t.driver, o.cuda)[0] == "minor"
                ]
                if newer:
                    notes.append(
                        f"CUDA {b.cuda} chosen: driver {fmt_driver(t.driver)} runs it natively; "
                        f"the CUDA {', '.join(sorted(newer))} build(s) would need minor-version "
                        "compatibility (no JIT of newer PTX)"
                    )
        elif t.gpus:
            floor = self.m.toolkit(b.cuda)
            notes.append(
                f"the driver was not judged (no --driver): CUDA {b.cuda} needs driver >= "
                f"{fmt_driver(floor.driver_min)}"
                + (
                    f", or >= {fmt_driver(floor.minor_compat_driver_min)} under minor-version "
                    "compatibility"
                    if floor
                    and floor.minor_compat_driver_min
                    and floor.minor_compat_driver_min != floor.driver_min
                    else ""
                )
                if floor is not None
                else f"the driver was not judged (no --driver); compat has no floor for CUDA {b.cuda}"
            )
        # GPUs.
        for g in t.gpus:
            cov = coverage(b.sass, b.ptx, g.cc)
            if cov == "none":
                self.reject(Rule.GPU, cand, f"covers {_archs(b)}, not {g.label}", **ctx)
                return None
            if cov == "ptx":
                if mode == "minor" and t.driver is not None:
                    tk = self.m.toolkit(b.cuda)
                    need = f" >= {fmt_driver(tk.driver_min)}" if tk else f" for CUDA {b.cuda}"
                    self.reject(
                        Rule.GPU,
                        cand,
                        f"{g.label} is covered only by PTX, which needs a "
                        f"driver{need}; {fmt_driver(t.driver)} runs CUDA {b.cuda} only "
                        "under minor-version compatibility",
                        **ctx,
                    )
                    return None
                notes.append(
                    f"{g.label} runs torch {rel_t.version}+{cuda_tag(b.cuda)} from PTX "
                    "(JIT at start-up; slow first launch"
                    + (
                        "; needs a driver at least as new as the build's CUDA)"
                        if mode == "unknown"
                        else ")"
                    )
                )
            if cov == "unknown":
                notes.append(
                    f"the arch list of torch {rel_t.version}+{cuda_tag(b.cuda)} is not "
                    f"in the database: {g.label} coverage not checked"
                )
        versions: dict[str, Version] = {"torch": rel_t.version}
        for rel, _ in chain.releases:
            versions[_key(rel.project)] = rel.version
        pins: dict[str, Pin] = {}
        torch_index = self._torch_index(b)
        torch_version = (
            Version(f"{rel_t.version.public}+{b.local}")
            if torch_index and b.local
            else rel_t.version
        )
        # Frameworks.
        for rel, extras in chain.releases:
            key = _key(rel.project)
            via = tuple(
                sorted(
                    {n.who for n in chain.needs.get(key, [])}
                    | ({"target"} if key in self.user else set())
                )
            )
            pins[key] = Pin(key, rel.version, extras, None, via, rel, not has_fitting_wheel(rel, t))
        torch_via = sorted(
            {n.who for n in chain.needs.get("torch", [])}
            | ({"target"} if "torch" in self.user else set())
        )
        pins["torch"] = Pin("torch", torch_version, (), torch_index, tuple(torch_via), rel_t)
        # triton, as torch pins it for this Python and platform.
        got = self._triton(rel_t, cand, ctx, versions)
        if got is None:
            return None
        if isinstance(got, Pin):
            pins["triton"] = got
            versions["triton"] = got.version
        # Companions, then kernels.
        for group, rule in ((COMPANIONS, Rule.COMPANION), (KERNELS, Rule.KERNEL)):
            for name in group:
                needs = chain.needs.get(name, []) + self.user.get(name, [])
                if not needs:
                    continue
                pin = self._pick(
                    name, needs, rel_t, b, torch_index, cand, ctx, rule, versions, chain, notes
                )
                if pin is None:
                    return None
                pins[name] = pin
                versions[name] = pin.version
        # The kernels' CUDA major: PyPI wheels carry no tag; they are built like the torch they
        # pin (the PyPI build's CUDA).
        pypi_major = Version(rel_t.cuda).major if rel_t.cuda else None
        degraded: list[str] = []
        for p in pins.values():
            if (
                p.name in (*KERNELS, *FRAMEWORKS)
                and p.index is None
                and p.release is not None
                and compiled(p.release)
                and not p.sdist_only
            ):
                built = p.release.cuda_major or pypi_major
                if (
                    built is not None
                    and built != Version(b.cuda).major
                    and _FAM.ops_optional(p.name)
                ):
                    # It imports without the ops it cannot load (packages.toml ops_optional): a
                    # tuple to fall back on, after every one where its ops load.
                    degraded.append(
                        f"{p.name} {p.version} on PyPI is a CUDA {built} build beside CUDA "
                        f"{b.cuda}: it imports without its custom kernels"
                    )
                elif built is not None and built != Version(b.cuda).major:
                    self.reject(
                        Rule.INDEX,
                        cand,
                        f"{p.name} {p.version} on PyPI is a CUDA {built} "
                        f"build and no index in curated/indexes.toml serves it for CUDA "
                        f"{b.cuda}: that would mix CUDA majors",
                        **ctx,
                    )
                    return None
        # flashinfer's parts travel together.
        fi = [pins[n] for n in FLASHINFER_PARTS if n in pins]
        if len({p.version.public for p in fi}) > 1:
            self.reject(
                Rule.KERNEL,
                cand,
                "flashinfer parts at different versions: "
                + ", ".join(f"{p.name} {p.version}" for p in fi),
                **ctx,
            )
            return None
        # Known crashes.
        pending: list[str] = []
        for adv_id, summary, state in self._advisories(pins, b):
            if state == "match" and adv_id not in t.allow:
                self.reject(
                    Rule.ADVISORY,
                    cand,
                    f"known crash {adv_id}: {summary} (accept with --allow {adv_id})",
                    advisory=adv_id,
                    **ctx,
                )
                return None
            if state == "match":
                notes.append(f"{adv_id} ({summary}) applies and is accepted by --allow {adv_id}")
            else:
                pending.append(f"{adv_id}: {summary}")
        for p in pins.values():
            if p.sdist_only:
                notes.append(
                    f"{p.name} {p.version} has no wheel for this target on its index: "
                    "it installs from the sdist"
                )
        return Resolution(
            target=t,
            pins=tuple(sorted(pins.values(), key=lambda p: p.name)),
            build=b,
            notes=tuple(dict.fromkeys(self.notes + notes + degraded)),
            rejected=tuple(self.rejected),
            rule=self.rule_text(),
            pending=tuple(pending),
            degraded=tuple(degraded),
        )

    def rule_text(self) -> str:
        fws = [n for n in FRAMEWORKS if n in self.user]
        lead = fws[0] if fws else "torch"
        t = self.t
        if t.cuda:
            cuda = f"the CUDA {t.cuda} build (--cuda)"
        elif t.driver is not None:
            cuda = f"the highest CUDA build driver {fmt_driver(t.driver)} runs"
        elif t.cuda_max is not None:
            cuda = f"the highest CUDA build up to {t.cuda_max} (--cuda auto)"
        else:
            cuda = "PyPI's own build (no driver named), then the highest CUDA build"
        return (
            f"newest {lead} release first, then {cuda}; the first candidate that passes every "
            "hard constraint wins"
        )

    def _torch_index(self, b: TorchBuildInfo) -> Optional[Index]:
        if b.pypi_default or not b.index:
            return None
        return self._index_named(b.index, f"pytorch-{b.local or cuda_tag(b.cuda)}", b.source)

    def _index_named(self, url: str, fallback: str, source: str = "") -> Index:
        for row in self.m.indexes:
            if row.url.rstrip("/") == url.rstrip("/"):
                return Index(row.name, row.url, row.source)
        return Index(fallback, url, source)

    def _triton(
        self, rel_t: Release, cand: str, ctx: dict[str, Any], versions: dict[str, Version]
    ) -> Optional[Pin | str]:
        reqs = [r for r in rel_t.requires if _key(r.name) == "triton" and applies(r, self.t)]
        user = [n.spec for n in self.user.get("triton", [])]
        if not reqs:
            if user:
                self.reject(
                    Rule.TRITON,
                    cand,
                    f"torch {rel_t.version} installs no triton on "
                    f"{self.t.platform.label} with Python {self.t.python}",
                    **ctx,
                )
                return None
            return "none"
        req = reqs[0]
        rels = self.m.releases("triton")
        cands = _newest_first(rels, [req.specifier, *user])
        if not cands:
            if not rels:
                return Pin(
                    "triton",
                    _exact(req.specifier) or Version("0"),
                    (),
                    None,
                    (f"torch=={rel_t.version}",),
                    None,
                )
            self.reject(
                Rule.TRITON,
                cand,
                f"torch {rel_t.version} requires {req.name}"
                f"{req.specifier}, which no triton release in the database matches"
                + (" together with the target" if user else ""),
                **ctx,
            )
            return None
        for rel in cands:
            why = installable(rel, self.t)
            if why is None:
                return Pin("triton", rel.version, (), None, (f"torch=={rel_t.version}",), rel)
        self.reject(Rule.PYTHON, cand, installable(cands[0], self.t) or "", **ctx)
        return None

    def _pick(
        self,
        name: str,
        needs: list[_Need],
        rel_t: Release,
        b: TorchBuildInfo,
        torch_index: Optional[Index],
        cand: str,
        ctx: dict[str, Any],
        rule: Rule,
        versions: dict[str, Version],
        chain: _Chain,
        notes: list[str],
    ) -> Optional[Pin]:
        rels = self.m.releases(name)
        specs = [n.spec for n in needs]
        via = tuple(sorted({n.who for n in needs}))
        asked = " and ".join(sorted({f"{n.req.name}{n.req.specifier}" for n in needs}))
        if not rels:
            exact = _exact_all(specs)
            if exact is None:
                self.reject(rule, cand, f"{asked}: {name} is not in compat's database", **ctx)
                return None
            notes.append(f"{name} {exact} is not in compat's database: its torch build not checked")
            return Pin(name, exact, (), None, via, None)
        cands = _newest_first(rels, specs)
        exact = _exact_all(specs)
        if (
            not cands
            and exact is not None
            and all(s.contains(exact, prereleases=True) for s in specs)
        ):
            # Pinned exactly, but older than what the database keeps: pip will fetch it; compat
            # cannot vouch for its wheels or its torch build.
            notes.append(
                f"{name} {exact} is not in compat's database: its wheels and torch build "
                "were not checked"
            )
            return Pin(name, exact, (), None, via, None)
        if not cands:
            self.reject(rule, cand, f"no {name} release in the database matches {asked}", **ctx)
            return None
        # A range (old sglang: sgl-kernel>=0.0.3) leaves a kernel open; take what was current
        # when the framework release was: nothing uploaded after the framework's next release.
        newest = cands[0]
        if rule is Rule.KERNEL and exact is None and chain.releases:
            cutoff = self._next_upload(chain.releases[0][0])
            dated = [r for r in cands if not r.upload_time or r.upload_time <= cutoff]
            if cutoff and not dated:
                self.reject(
                    rule,
                    cand,
                    f"{asked}: every {name} release in the database came out "
                    f"after {chain.releases[0][0].project}'s next release; the one "
                    f"{chain.label} was built with is older than the database",
                    **ctx,
                )
                return None
            cands = dated if cutoff else cands
        reasons: list[str] = []
        other_torch: list[str] = []
        fallback: Optional[tuple[Release, str, list[str]]] = None
        for rel in cands:
            torch_pins = [r for r in rel.requires if _key(r.name) == "torch" and applies(r, self.t)]
            bad = [
                r for r in torch_pins if not r.specifier.contains(rel_t.version, prereleases=True)
            ]
            if bad:
                reasons.append(f"{name} {rel.version} is built for torch{bad[0].specifier}")
                continue
            why = installable(rel, self.t)
            if why:
                reasons.append(why)
                continue
            # said only of the release that is pinned (a later test may still skip this one)
            dated_note = (
                [
                    f"{name} {rel.version} chosen for {asked}: the newest release "
                    f"uploaded before {chain.releases[0][0].project}'s next release"
                ]
                if rel is not newest and rule is Rule.KERNEL and exact is None and chain.releases
                else []
            )
            index = self._kernel_index(name, rel, b, torch_index, versions)
            if index is not None:
                version = Version(f"{rel.version.public}+{index[1]}") if index[1] else rel.version
                notes.extend(dated_note)
                return Pin(name, version, (), index[0], via, rel)
            if name in COMPANIONS and torch_index is not None:
                reasons.append(f"{name} {rel.version}: no {b.cuda} build on {torch_index.url}")
                continue
            # PyPI's wheel: its build facts say which torch it was built against.
            verdict = self._built_for(name, rel, rel_t)
            if verdict is not None and verdict.answer is False and verdict.method == "exports":
                skipped = (
                    f"{name} {rel.version} is built for {verdict.built_for or 'another torch'} "
                    f"(its wheel imports torch symbols torch {rel_t.version} lacks)"
                )
                if families().ops_optional(name):
                    # It imports without the ops it cannot load (packages.toml): the release
                    # the framework pins stays; otherwise one built for this torch is preferred.
                    optional = f"{skipped}: it imports without its custom kernels"
                    if exact is not None:
                        notes.append(optional)
                        notes.extend(dated_note)
                        return Pin(
                            name,
                            rel.version,
                            (),
                            None,
                            via,
                            rel,
                            not has_fitting_wheel(rel, self.t),
                        )
                    fallback = fallback or (rel, optional, dated_note)
                reasons.append(skipped)
                other_torch.append(str(rel.version))
                continue
            notes.extend(dated_note)
            if other_torch:
                notes.append(
                    f"{name} {rel.version} chosen: built for torch {rel_t.version} (its wheel's "
                    f"torch symbols); {', '.join(other_torch)} are built for another torch"
                )
            return Pin(name, rel.version, (), None, via, rel, not has_fitting_wheel(rel, self.t))
        if fallback is not None:
            rel, why, dated_notes = fallback
            notes.append(why)
            notes.extend(dated_notes)
            return Pin(name, rel.version, (), None, via, rel, not has_fitting_wheel(rel, self.t))
        shown = reasons[0] if len(reasons) == 1 else f"{reasons[0]} (and {len(reasons) - 1} more)"
        self.reject(rule, cand, f"{asked}: {shown}", **ctx)
        return None

    def _built_for(self, name: str, rel: Release, rel_t: Release) -> Optional[Verdict]:
        facts = self.m.build_facts(name, rel.version)
        if facts is None or not facts.import_count:
            return None
        return built_for(facts, rel_t.version, self.m.torch_exports())

    def _kernel_index(
        self,
        name: str,
        rel: Release,
        b: TorchBuildInfo,
        torch_index: Optional[Index],
        versions: dict[str, Version],
    ) -> Optional[tuple[Index, str]]:
        """The index serving `name` for this build's CUDA, with its local tag; None: PyPI."""
        if name in COMPANIONS:
            if torch_index is None:
                return None
            row = self._row_for(name, b.cuda, {**versions, name: rel.version}, url=torch_index.url)
            if row is not None:
                return Index(row.name, row.url, row.source), row.local
            if not any(r.url.rstrip("/") == torch_index.url.rstrip("/") for r in self.m.indexes):
                return torch_index, b.local  # PyTorch's index serves torch's companions too
            return None
        row = self._row_for(name, b.cuda, {**versions, name: rel.version})
        if row is None:
            return None
        # PyPI's wheel is fine when there is one and its CUDA major agrees; else the index.
        if has_fitting_wheel(rel, self.t) and (
            not compiled(rel) or self._pypi_major(rel, versions) == Version(b.cuda).major
        ):
            return None
        return Index(row.name, row.url, row.source), row.local

    def _pypi_major(self, rel: Release, versions: dict[str, Version]) -> Optional[int]:
        if rel.cuda_major is not None:
            return rel.cuda_major
        t = self.m.release("torch", versions["torch"])
        return Version(t.cuda).major if t is not None and t.cuda else None

    def _row_for(
        self, name: str, cuda: str, versions: dict[str, Version], url: Optional[str] = None
    ) -> Optional[WheelIndex]:
        for row in self.m.indexes:
            if name not in (_key(p) for p in row.projects):
                continue
            if row.cuda and row.cuda != cuda:
                continue
            if url is not None and row.url.rstrip("/") != url.rstrip("/"):
                continue
            bound = _torch_of_local(row.local)
            if (
                bound is not None
                and "torch" in versions
                and Version(versions["torch"].public).release[:2] != bound
            ):
                continue  # flashinfer's per-torch indexes: cu124torch2.6
            if row.when is not None:
                have = versions.get(_key(row.when.name))
                if have is None and _key(row.when.name) in {_key(p) for p in row.projects}:
                    have = versions.get(name)  # a renamed project on the same index (sglang-kernel)
                if have is None or not row.when.specifier.contains(
                    Version(have.public), prereleases=True
                ):
                    continue
            return row
        return None

    def _next_upload(self, rel: Release) -> str:
        later = [
            r
            for v, r in self.m.releases(rel.project).items()
            if v > rel.version and not v.is_prerelease and r.upload_time
        ]
        return min((r.upload_time for r in later), default="")

    def _advisories(self, pins: dict[str, Pin], b: TorchBuildInfo) -> list[tuple[str, str, str]]:
        """(id, summary, 'match' | 'pending') for blocking advisories the tuple meets."""
        blocking = [a for a in self.advisories if a.severity.value in BLOCKING]
        if not blocking:
            return []
        from compat.advisories import match_advisories

        env = tuple_environment(self.t, pins, b)
        by_id = {a.id: a for a in blocking}
        out = []
        for f in match_advisories(env, None, blocking):
            adv = by_id.get(f.advisory or "")
            if adv is None:
                continue
            state = "pending" if f.severity.rank == 0 else "match"
            out.append((adv.id, adv.summary, state))
        return out

    # -- when nothing fits -----------------------------------------------------------------
    def failure(self) -> NoTupleError:
        rejected = tuple(self.rejected)
        lines = group_rejections(rejected, self.t, self.m)
        head = f"no tuple fits {self.t.spec_text()}"
        host = describe_host(self.t)
        if host:
            head += f" for {host}"
        return NoTupleError(
            head + ":\n  " + "\n  ".join(lines),
            rejected,
            hint="compat lock ... --explain lists every candidate and its reason",
        )


def _torch_of_local(local: str) -> Optional[tuple[int, ...]]:
    m = re.search(r"torch([0-9]+)\.([0-9]+)", local)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _exact(spec: SpecifierSet) -> Optional[Version]:
    pins = [s for s in spec if s.operator in ("==", "===") and "*" not in s.version]
    if len(pins) == 1 and _valid(pins[0].version):
        return Version(pins[0].version)
    return None


def _exact_all(specs: Sequence[SpecifierSet]) -> Optional[Version]:
    for s in specs:
        v = _exact(s)
        if v is not None:
            return v
    return None


def tuple_environment(target: Target, pins: dict[str, Pin], b: TorchBuildInfo) -> Environment:
    """The environment the tuple would make, for the advisory matcher compat check also uses."""
    dists = tuple(Distribution(p.name, p.version, str(p.version), "lock") for p in pins.values())
    torch = pins.get("torch")
    tb: TorchBuild | Unknown = Unknown("no torch in the lock")
    if torch is not None:
        tb = TorchBuild(
            torch.version,
            b.cuda if torch.version.local else None,
            None,
            "lock",
            None if torch.version.local else b.cuda,
        )
    reason = "not declared: give --driver / --gpu"
    driver: Driver | Unknown = (
        Driver(
            fmt_driver(target.driver),
            Unknown("declared driver"),
            target.driver_source or "--driver",
            "",
        )
        if target.driver is not None
        else Unknown(reason)
    )
    gpus: tuple[GPU, ...] | Unknown = (
        tuple(
            GPU(
                i, g.name, g.cc, int(g.memory_gib * 1024) if g.memory_gib else None, source=g.source
            )
            for i, g in enumerate(target.gpus)
        )
        if target.gpus
        else Unknown(reason)
    )
    return Environment(
        python=Unknown("declared"),
        distributions=dists,
        torch=tb,
        driver=driver,
        gpus=gpus,
        context=Unknown(reason),
        source="lock",
    )


def describe_host(target: Target) -> str:
    parts = []
    if target.driver is not None:
        parts.append(f"driver {fmt_driver(target.driver)}")
    if target.gpus:
        parts.append("GPU " + ", ".join(g.label for g in target.gpus))
    if target.cuda:
        parts.append(f"CUDA {target.cuda}")
    if target.cuda_max is not None:
        parts.append(f"CUDA <= {target.cuda_max}")
    parts.append(f"Python {target.python}")
    parts.append(target.platform.label)
    return ", ".join(parts)


def _versions(vs: set[Version], limit: int = 6) -> str:
    s = [str(v) for v in sorted(vs)]
    return ", ".join(s) if len(s) <= limit else ", ".join(s[:3]) + ", ..., " + ", ".join(s[-2:])


def group_rejections(rejected: Sequence[Rejection], target: Target, matrix: Matrix) -> list[str]:
    """One line per rule, in words, e.g. 'driver 470.57 runs CUDA 11.x only; every torch ...'."""
    by: dict[Rule, list[Rejection]] = {}
    for r in rejected:
        by.setdefault(r.rule, []).append(r)
    scope = target.spec_text()
    lines = []
    for rule in Rule:
        rs = by.get(rule)
        if not rs:
            continue
        if rule is Rule.DRIVER and target.driver is not None:
            cudas = {Version(r.cuda) for r in rs if r.cuda}
            torches = {r.torch for r in rs if r.torch is not None}
            lines.append(
                f"driver {fmt_driver(target.driver)} runs "
                f"{driver_span(matrix, target.driver)}; every "
                f"torch that {scope} pins ({_versions(torches)}) is built for CUDA "
                f"{min(cudas)} or newer"
                if cudas
                else rs[0].reason
            )
        elif rule is Rule.GPU:
            torches = {r.torch for r in rs if r.torch is not None}
            gpus = ", ".join(g.label for g in target.gpus)
            builds = list(
                dict.fromkeys(f"{r.torch}+{cuda_tag(r.cuda or '')} {r.reason}" for r in rs)
            )
            more = f"; and {len(builds) - 4} more" if len(builds) > 4 else ""
            lines.append(
                f"no CUDA build of the torch that {scope} pins ({_versions(torches)}) "
                f"has kernels for {gpus}: " + "; ".join(builds[:4]) + more
            )
        elif rule is Rule.ADVISORY:
            ids = dict.fromkeys(r.reason for r in rs)
            lines.extend(ids)
        else:
            reasons = list(dict.fromkeys(r.reason for r in rs))
            more = f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else ""
            lines.append(f"{rule.value}: " + "; ".join(reasons[:3]) + more)
    return lines or ["no candidate in the database"]


def _check_extras(target: Target, matrix: Matrix) -> None:
    """An extra that no matching release declares (Provides-Extra) is a usage error naming
    the extras there are: pip would only warn and install the project without it."""
    from compat.errors import UsageError

    for req in target.requirements:
        if not req.extras:
            continue
        rels = [
            r
            for v, r in matrix.releases(req.name).items()
            if req.specifier.contains(v, prereleases=True) and r.extras
        ]
        if not rels:
            continue  # not in the database, or records that predate Provides-Extra
        wanted = {canonicalize_name(e) for e in req.extras}
        if any(wanted <= set(r.extras) for r in rels):
            continue
        newest = max(rels, key=lambda r: r.version)
        missing = ", ".join(sorted(wanted - set(newest.extras)))
        raise UsageError(
            f"{req.name} {newest.version} has no extra {missing!r}"
            + (" (nor has any release that matches)" if len(rels) > 1 else ""),
            hint=f"its extras: {', '.join(newest.extras)}",
        )


def resolve(
    target: Target, matrix: Matrix, advisories: Sequence[Advisory] = (), alternatives: bool = True
) -> Resolution:
    """The best tuple for `target`, or NoTupleError (a ResolutionError) saying why, grouped."""
    _check_extras(target, matrix)
    try:
        return _Resolver(target, matrix, advisories).resolve()
    except NoTupleError as exc:
        if not alternatives:
            raise
        alts = nearest_alternatives(target, matrix, advisories, exc.rejected)
        if alts:
            msg = exc.message + "\nnearest alternatives:\n  " + "\n  ".join(alts)
            raise NoTupleError(msg, exc.rejected, alts, exc.hint) from None
        raise


def _summary(res: Resolution) -> str:
    fw = res.framework
    torch = res.pin("torch")
    head = f"{fw.name} {fw.version} with " if fw is not None else ""
    return f"{head}torch {torch.version if torch else '?'} (CUDA {res.cuda})"


def nearest_alternatives(
    target: Target, matrix: Matrix, advisories: Sequence[Advisory], rejected: Sequence[Rejection]
) -> tuple[str, ...]:
    """What would fit if one thing changed: the framework's version, the driver, or Python."""
    out: list[str] = []
    rules = {r.rule for r in rejected}
    leads = [r for r in target.requirements if _key(r.name) in LEADS]

    def attempt(t: Target) -> Optional[Resolution]:
        try:
            return _Resolver(t, matrix, advisories).resolve()
        except ResolutionError:
            return None

    if leads and any(str(r.specifier) for r in leads):
        loose = tuple(Requirement(r.name) if r in leads else r for r in target.requirements)
        got = attempt(replace(target, requirements=loose))
        lead = (got.framework or got.pin("torch")) if got is not None else None
        if got is not None and lead is not None:
            out.append(
                f"the newest release that fits this host: {_summary(got)}  "
                f"(compat lock {lead.name}=={lead.version.public}{_host_flags(target)})"
            )
    if Rule.DRIVER in rules and target.driver is not None:
        got = attempt(replace(target, driver=None, cuda_max=None))
        if got is not None:
            floor = driver_floor(matrix, got.cuda)
            out.append(
                f"with a driver >= {fmt_driver(floor)}: {_summary(got)}"
                if floor
                else f"with a newer driver: {_summary(got)}"
            )
    if Rule.PYTHON in rules:
        for py in ("3.12", "3.11", "3.10", "3.13", "3.9"):
            if py == target.python:
                continue
            got = attempt(replace(target, python=py))
            if got is not None:
                out.append(f"with Python {py}: {_summary(got)}")
                break
    if Rule.ADVISORY in rules:
        ids = sorted({r.advisory for r in rejected if r.advisory})
        out.append("accept the known crash(es) knowingly: " + " ".join(f"--allow {i}" for i in ids))
    return tuple(out)


def _host_flags(t: Target) -> str:
    parts = []
    if t.driver is not None:
        parts.append(f"--driver {fmt_driver(t.driver)}")
    parts.extend(f"--gpu {g.sm}" for g in t.gpus)
    if t.cuda:
        parts.append(f"--cuda {t.cuda}")
    return (" " + " ".join(parts)) if parts else ""
