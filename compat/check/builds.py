"""What a compiled package was built for: local version tags and the libraries its .so files need."""

from __future__ import annotations

import re
from typing import Optional

from msgspec import Struct
from packaging.version import Version

from compat.models import cuda_from_local

_LOCAL = re.compile(
    r"cu(?P<cu>[0-9]{2,3})|torch(?P<torch>[0-9]+\.[0-9]+)|cxx11abi(?P<abi>true|false)", re.I
)


class LocalTag(Struct, frozen=True):
    cuda: Optional[str]  # "12.4", or a major "12" for "+cu12torch2.5"
    torch: Optional[str]  # "2.5"
    cxx11abi: Optional[bool]
    cpu: bool


def parse_local(version: Optional[Version]) -> LocalTag:
    """`+cu124torch2.5cxx11abiFALSE`, `+cu128`, `+cpu` -> what they say."""
    local = version.local if version else None
    if not local:
        return LocalTag(None, None, None, False)
    cuda = torch = None
    abi: Optional[bool] = None
    for m in _LOCAL.finditer(local.lower()):
        if m.group("cu"):
            digits = m.group("cu")
            # "cu124" is CUDA 12.4; flash-attn's "cu12" names only the major.
            cuda = cuda_from_local("cu" + digits) if len(digits) == 3 else digits
        elif m.group("torch"):
            torch = m.group("torch")
        elif m.group("abi"):
            abi = m.group("abi") == "true"
    return LocalTag(cuda, torch, abi, local.lower().startswith("cpu"))


TORCH_CUDA_LIBS = ("libtorch_cuda.so", "libc10_cuda.so")


def cudart_major(needed: tuple[str, ...]) -> Optional[int]:
    for lib in needed:
        m = re.match(r"^libcudart\.so\.([0-9]+)", lib)
        if m:
            return int(m.group(1))
    return None
