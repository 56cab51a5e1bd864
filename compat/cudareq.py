"""The CUDA version a requirement on NVIDIA's runtime wheels pulls (PyPI builds carry no +cuNNN).

CUDA 12 names its wheels `nvidia-cuda-runtime-cu12==12.6.77`; CUDA 13 uses `nvidia-cuda-runtime`
and `cuda-toolkit[...]==13.0.2` besides a few `-cu13` ones. Used by the sync (for the database)
and by the torch probe (for an installed PyPI build).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Optional

from packaging.version import InvalidVersion, Version

from compat.models import canonicalize_name, parse_requirement

if TYPE_CHECKING:
    from packaging.requirements import Requirement

_RUNTIME = re.compile(r"nvidia-cuda-runtime(?:-cu([0-9]+))?")
_CU_SUFFIX = re.compile(r"nvidia-.+-cu([0-9]+)")


def cuda_of(requirement: Requirement) -> Optional[tuple[int, str]]:
    """(priority, CUDA version) one requirement implies; lower priority wins."""
    name = canonicalize_name(requirement.name)
    runtime = _RUNTIME.fullmatch(name)
    suffix = _CU_SUFFIX.fullmatch(name)
    if runtime:
        priority = 0
    elif name == "cuda-toolkit":
        priority = 1
    elif suffix:
        # Another nvidia-*-cuNN wheel tells the major only.
        return 2, suffix.group(1)
    else:
        return None
    for spec in sorted(requirement.specifier, key=str):
        if spec.operator in ("==", "==="):
            text = spec.version[:-2] if spec.version.endswith(".*") else spec.version
            try:
                release = Version(text).release
            except InvalidVersion:
                continue
            if len(release) >= 2:
                return priority, f"{release[0]}.{release[1]}"
            return priority, str(release[0])
    if runtime and runtime.group(1):
        return priority, runtime.group(1)
    for spec in sorted(requirement.specifier, key=str):
        if spec.operator in (">=", "~=", ">"):
            try:
                return priority, str(Version(spec.version.rstrip(".*")).major)
            except InvalidVersion:
                continue
    return None


def cuda_from_requirements(requires: Iterable[str]) -> Optional[str]:
    """'12.6', '13.0', or a bare major ('12') from Requires-Dist lines; None when none names CUDA."""
    # packaging.requirements (with its tags, logging and subprocess) only when there is a line
    from packaging.requirements import InvalidRequirement

    best: Optional[tuple[int, str]] = None
    for line in requires:
        try:
            implied = cuda_of(parse_requirement(line))
        except InvalidRequirement:
            continue
        if implied is not None and (best is None or implied[0] < best[0]):
            best = implied
    return best[1] if best else None
