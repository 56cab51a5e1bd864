"""The torch build, read from torch/version.py as text (importing torch takes seconds)."""

from __future__ import annotations

import os
import re
from typing import Optional, Union

from compat.cudareq import cuda_from_requirements
from compat.errors import InputError
from compat.fileio import read_text
from compat.models import Distribution, TorchBuild, Unknown, cuda_from_local, parse_version

_ASSIGN = re.compile(r"^(__version__|cuda|hip|git_version)\s*(?::\s*[^=]+)?=\s*(.+?)\s*$", re.M)


def parse_version_py(text: str) -> dict[str, Optional[str]]:
    """`__version__`, `cuda`, `hip` from torch/version.py; None for `None` or missing."""
    out: dict[str, Optional[str]] = {}
    for key, value in _ASSIGN.findall(text):
        value = value.strip()
        if value == "None":
            out[key] = None
        elif len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            out[key] = value[1:-1]
    return out


def probe_torch(dist: Optional[Distribution]) -> Union[TorchBuild, Unknown]:
    """torch's build from its version.py, falling back to the distribution's metadata."""
    if dist is None:
        return Unknown("torch is not installed")
    deps_cuda = cuda_from_requirements(dist.requires)
    path = os.path.join(dist.location, "torch", "version.py")
    try:
        # version.py is a few hundred bytes; a FIFO or a huge file is not torch's.
        text = read_text(path, limit=64 * 1024, what="torch/version.py")
        fields = parse_version_py(text)
    except InputError:
        if dist.broken:
            return Unknown(f"torch's dist-info is broken ({dist.broken}) and {path} unreadable")
        local = dist.version.local if dist.version else None
        return TorchBuild(
            dist.version, cuda_from_local(local), None, f"dist-info of torch (no {path})", deps_cuda
        )
    version = parse_version(fields.get("__version__") or "") or dist.version
    if dist.broken and version is None:
        return Unknown(f"torch's dist-info is broken: {dist.broken}")
    cuda = fields.get("cuda")
    if cuda is not None and not re.fullmatch(r"\d{1,2}(\.\d{1,2})?", cuda):
        cuda = None  # not a CUDA version torch writes: unknown rather than wrong
    try:
        libs = tuple(
            sorted(
                n
                for n in os.listdir(os.path.join(dist.location, "torch", "lib"))
                if n.startswith(("libtorch", "libc10"))
            )
        )
    except OSError:
        libs = ()
    source = path if not dist.broken else f"{path} (torch's dist-info is broken: {dist.broken})"
    return TorchBuild(version, cuda, fields.get("hip"), source, deps_cuda, libs)


_ARCH_CHILD = "import json, torch; print(json.dumps(torch.cuda.get_arch_list()))"


def arch_list(executable: str, timeout: float = 60.0) -> tuple[tuple[str, ...], str]:
    """torch.cuda.get_arch_list() of the target interpreter (imports torch: --deep only)."""
    import json
    import subprocess

    try:
        proc = subprocess.run(
            [executable, "-c", _ARCH_CHILD],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return (), f"could not run torch: {exc}"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [""])[-1]
        return (), f"importing torch failed: {last}"
    try:
        archs = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return (), "torch printed no arch list"
    return tuple(str(a) for a in archs), "torch.cuda.get_arch_list()"
