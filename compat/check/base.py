"""What every check receives, and helpers they share (markers, requirement evaluation, fixes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Optional

from msgspec import Struct, field
from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import Requirement
from packaging.version import Version

from compat.models import (
    Distribution,
    Environment,
    TorchBuild,
    Unknown,
    canonicalize_name,
    cuda_from_local,
    marker_env,
    requirement_name,
)

if TYPE_CHECKING:
    from compat.advisories import Model
    from compat.launch import LaunchConfig
    from compat.matrix.load import Matrix


class TargetTuple(Struct, frozen=True):
    """Exact versions by package (public versions: the build's index comes with the fix)."""

    pins: dict[str, Version] = field(default_factory=dict)
    # Where each pin comes from, in words ("sglang 0.4.6.post1 pins it").
    why: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> Optional[Version]:
        return self.pins.get(canonicalize_name(name))

    def spec(self, name: str) -> Optional[str]:
        v = self.get(name)
        return f"{canonicalize_name(name)}=={v}" if v is not None else None


class Context(Struct, frozen=True):
    """The inputs of a check run: all arrive as values, none is read from the machine here."""

    env: Environment
    matrix: Matrix
    launch: Optional[LaunchConfig] = None  # when a launch command was given
    model: Model = None  # the served model's facts, when the launch names one
    target: Optional[TargetTuple] = None  # the tuple every fix aims at (compat.check.target)

    @property
    def torch(self) -> Optional[TorchBuild]:
        t = self.env.torch
        return None if isinstance(t, Unknown) else t

    def marker_env(self, extra: str = "") -> dict[str, str]:
        """PEP 508 marker values for the checked environment (Linux x86_64 unless told)."""
        py = self.env.python
        if isinstance(py, Unknown):
            return marker_env(None, extra=extra)
        return marker_env(py.version, py.machine or "x86_64", extra)


def applies(req: Requirement, ctx: Context, extra: str = "") -> Optional[bool]:
    """Whether a requirement's marker holds here; None when it cannot be evaluated."""
    if req.marker is None:
        return True
    try:
        return bool(req.marker.evaluate(ctx.marker_env(extra)))
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
        return None


def extras_of(req: Requirement) -> set[str]:
    """The extras a requirement's marker names (`extra == "srt"`)."""
    if req.marker is None:
        return set()
    text = str(req.marker)
    out = set()
    for part in text.split("extra ==")[1:]:
        value = part.strip().split()[0].strip("'\"()")
        out.add(canonicalize_name(value))
    return out


def installed_version(ctx: Context, name: str) -> Optional[Version]:
    """The version as installed; for torch the build's version (with local tag) when known."""
    if canonicalize_name(name) == "torch" and ctx.torch and ctx.torch.version is not None:
        return ctx.torch.version
    got = ctx.env.version_of(name)
    if got is None:
        # A broken dist-info with a version that can still be told (its folder name): judge
        # it (broken-dist reports the breakage itself).
        key = canonicalize_name(name)
        got = next((d.version for d in ctx.env.distributions if d.key == key and d.version), None)
    return got


def requires_of(
    ctx: Context, dist: Distribution, wanted: Optional[Callable[[str], bool]] = None
) -> tuple[Requirement, ...]:
    """Requirements of an installed distribution: its own metadata, else the database's record.
    With `wanted`, only those on the (normalised) names it accepts: the others are not parsed."""
    from compat.matrix.schema import requirement

    if dist.requires:
        out = []
        for r in dist.requires:
            if wanted is not None:
                name = requirement_name(r)
                if name is None or not wanted(name):
                    continue
            try:
                out.append(requirement(r))
            except ValueError:
                continue
        return tuple(out)
    return tuple(
        r
        for r in _recorded_requires(ctx, dist)
        if wanted is None or wanted(canonicalize_name(r.name))
    )


def _recorded_requires(ctx: Context, dist: Distribution) -> tuple[Requirement, ...]:
    """The database's record of a release's requirements, for a distribution that lists none."""
    if dist.version is None:
        return ()
    rel = ctx.matrix.release(dist.name, dist.version)
    if rel is None:
        return ()
    tag = (dist.version.local or "").lower()
    if tag.startswith("cpu"):
        # PyTorch's CPU builds declare no CUDA runtime wheels and no triton.
        return tuple(
            r
            for r in rel.requires
            if not canonicalize_name(r.name).startswith(
                ("nvidia-", "cuda-", "triton", "pytorch-triton")
            )
        )
    local = cuda_from_local(tag)
    if local and rel.cuda and local != rel.cuda:
        # A build from another index (torch 2.7.1+cu118): the database records PyPI's build,
        # whose CUDA runtime pins are not this build's.
        return tuple(r for r in rel.requires if not canonicalize_name(r.name).startswith("nvidia-"))
    return rel.requires


def satisfied(req: Requirement, version: Version) -> bool:
    return req.specifier.contains(version, prereleases=True)


def pip_install(*pins: str, index: Optional[str] = None) -> str:
    quoted = " ".join(f"'{p}'" if any(c in p for c in "<>=!~;") else p for p in pins)
    suffix = f" --extra-index-url {index}" if index else ""
    return f"pip install {quoted}{suffix}"


def public(v: Version) -> Version:
    return Version(v.public)


def torch_index(ctx: Context, torch: Version, cuda: Optional[str]) -> Optional[str]:
    """PyTorch's index URL for a torch release and CUDA version, from the curated builds."""
    if not cuda:
        return None
    b = ctx.matrix.build_of(torch, cuda)
    if b and b.index and not b.pypi_default:
        return b.index
    return None


def reinstall_matching_torch(ctx: Context, name: str, version: Version) -> str:
    """The command that puts the build of `name` matching the installed torch's CUDA/CPU flavour."""
    tb = ctx.torch
    pin = f"{name}=={public(version)}"
    if tb is not None and tb.version is not None:
        if tb.is_cpu:
            return (
                f"pip install --no-deps --force-reinstall '{pin}+cpu' "
                "--index-url https://download.pytorch.org/whl/cpu"
            )
        build = ctx.matrix.build_of(tb.version, tb.cuda)
        if build and build.local and build.index and not build.pypi_default:
            return (
                f"pip install --no-deps --force-reinstall '{pin}+{build.local}' "
                f"--index-url {build.index}"
            )
    return f"pip install --no-deps --force-reinstall '{pin}'"
