"""The torch build, read from torch/version.py as text and torch/lib headers (importing torch takes seconds)."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Optional, Union

from msgspec import Struct

from compat import answers
from compat.cudareq import cuda_from_requirements
from compat.errors import InputError
from compat.fileio import read_text
from compat.models import Distribution, TorchBuild, Unknown, cuda_from_local, parse_version

if TYPE_CHECKING:  # the arch list is read only with --deep: its modules are imported there
    from compat import elf
    from compat.probe.deepcache import FactCache, FileKey

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
    if cuda is not None and not re.fullmatch(r"[0-9]{1,2}(\.[0-9]{1,2})?", cuda):
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


# The libraries that hold torch's own kernels: libtorch_cuda.so, or its two halves in builds
# before 1.13 (libtorch_cuda_cu.so holds the kernels, libtorch_cuda_cpp.so none).
ARCH_LIBS = ("libtorch_cuda.so", "libtorch_cuda_cu.so")
# Bounds on the header walk: libtorch_cuda.so has a few thousand fatbins of a few entries each
# (16 bytes a fatbin header, 32 an entry); the payloads, >1 GB, are skipped by their sizes.
ARCH_MAX_BYTES = 16 * 1024 * 1024
ARCH_DEADLINE_S = 10.0
ARCHS = "archs"  # cache entry kind


class ArchRead(Struct, frozen=True):
    """torch's arch list as read from its files: `source` says where from, or why it is empty.
    `final` False: the library could not be read at all, and asking torch itself may help."""

    archs: tuple[str, ...]
    source: str
    final: bool = True


def _fatbins(path: str, key: FileKey) -> tuple[Union[elf.FatbinArchs, Unknown], str]:
    """The fatbin headers of one library, walked under the bounds, and how the walk ended:
    "read" (worth caching), "bounded" (stopped by a bound) or "volatile" (an I/O error, or the
    file changed while read)."""
    import contextlib

    from compat import elf
    from compat.probe.deepcache import key_of_fd

    try:
        with open(path, "rb") as handle:
            fd = handle.fileno()
            if hasattr(os, "posix_fadvise"):
                # A header every few hundred KiB: read-ahead would pull in the payloads too.
                with contextlib.suppress(OSError):
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
            image = elf.BoundedImage(
                elf.FileImage(handle, os.fstat(fd).st_size), ARCH_MAX_BYTES, ARCH_DEADLINE_S
            )
            got = elf.fatbin_archs(image)
            after = key_of_fd(key.path, fd)
    except OSError as exc:
        answers.unrepeatable(f"cannot read {path}: {exc.strerror or exc}")
        return Unknown(f"cannot read {path}: {exc.strerror or exc}"), "volatile"
    if image.exceeded:  # a time bound among them: another run may get further
        answers.unrepeatable(f"fatbin headers not read: {image.exceeded}")
        return Unknown(f"fatbin headers not read: {image.exceeded}"), "bounded"
    if after != key:
        answers.unrepeatable(f"{path} changed while it was read")
        return got, "volatile"
    return got, "read"


def _lib_archs(
    path: str, key: FileKey, cache: FactCache
) -> tuple[Union[elf.FatbinArchs, Unknown], str]:
    from compat import elf
    from compat.probe.deepcache import ints

    hit = cache.get(ARCHS, key)
    if hit is not None:
        sass, ptx, count = ints(hit, "sass"), ints(hit, "ptx"), hit.get("fatbins")
        common_sass, common_ptx = ints(hit, "common_sass"), ints(hit, "common_ptx")
        if (
            sass is not None
            and ptx is not None
            and common_sass is not None
            and common_ptx is not None
            and isinstance(count, int)
            and count > 0
        ):
            return elf.FatbinArchs(sass, ptx, count, common_sass, common_ptx), "cache"
    got, how = _fatbins(path, key)
    if how == "read" and isinstance(got, elf.FatbinArchs) and got.fatbins:
        cache.put(
            ARCHS,
            key,
            {
                "sass": list(got.sass),
                "ptx": list(got.ptx),
                "fatbins": got.fatbins,
                "common_sass": list(got.common_sass),
                "common_ptx": list(got.common_ptx),
            },
        )
    return got, how


def fatbin_arch_list(lib_dir: str, cache: Optional[FactCache] = None) -> ArchRead:
    """torch's arch list from the fatbin headers of its CUDA library, without importing torch.

    Each cubin entry names its SASS target (sm_90), each PTX entry its virtual architecture
    (compute_90): the list torch.cuda.get_arch_list() reports, since both come from the
    TORCH_CUDA_ARCH_LIST torch was built with. Arch-specific targets (sm_90a) read as sm_90.
    Only the headers are read, at their offsets; the result is cached per library file.
    """
    from compat.probe.deepcache import default_cache, file_key

    cache = cache if cache is not None else default_cache()
    sass: set[int] = set()
    ptx: set[int] = set()
    read: list[str] = []
    why: list[str] = []
    for name in ARCH_LIBS:
        path = os.path.join(lib_dir, name)
        key = file_key(path)
        if key is None:
            continue
        got, how = _lib_archs(path, key, cache)
        if isinstance(got, Unknown):
            # A walk stopped by its bounds is an answer: importing torch would cost more still.
            return ArchRead((), f"{name}: {got.reason}", final=how == "bounded")
        if got.fatbins:
            # the archs most of its kernels are built for: torch's arch list (a few kernels
            # built for one GPU more are not in it)
            sass.update(got.common_sass or got.sass)
            ptx.update(got.common_ptx or got.ptx)
            read.append(name)
        else:
            why.append(f"{name} holds no fatbin")
    if not read:
        return ArchRead((), "; ".join(why) or f"torch/lib has no {' or '.join(ARCH_LIBS)}", False)
    archs = tuple(f"sm_{a}" for a in sorted(sass)) + tuple(f"compute_{a}" for a in sorted(ptx))
    return ArchRead(archs, f"fatbin headers of torch/lib/{', '.join(read)}")


_ARCH_CHILD = "import json, torch; print(json.dumps(torch.cuda.get_arch_list()))"


def arch_list(executable: str, timeout: float = 60.0) -> tuple[tuple[str, ...], str]:
    """torch.cuda.get_arch_list() of the target interpreter: imports torch, seconds; the
    fallback when torch's CUDA library cannot be read."""
    import json

    from compat.probe import bounded

    # what an imported torch says depends on all of its installation, which no record watches
    answers.unrepeatable("torch was imported for its arch list")
    got = bounded.run([executable, "-c", _ARCH_CHILD], timeout=timeout, limit=64 * 1024)
    if got.problem:
        return (), f"could not run torch: {got.problem}"
    if got.returncode != 0:
        last = (got.stderr.decode("utf-8", "replace").strip().splitlines() or [""])[-1]
        return (), f"importing torch failed: {last}"
    try:
        archs = json.loads(got.stdout.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return (), "torch printed no arch list"
    if not isinstance(archs, list):
        return (), "torch printed no arch list"
    return tuple(str(a) for a in archs), "torch.cuda.get_arch_list()"


def read_arch_list(
    torch_dist: Optional[Distribution], executable: str, cache: Optional[FactCache] = None
) -> ArchRead:
    """The arch list from torch's fatbin headers; torch.cuda.get_arch_list() only when the
    library cannot be read (a build without libtorch_cuda.so fatbins, an unreadable file)."""
    if torch_dist is None:
        return ArchRead((), "torch is not installed")
    got = fatbin_arch_list(os.path.join(torch_dist.location, "torch", "lib"), cache)
    if got.archs or got.final:
        return got
    archs, how = arch_list(executable)
    if archs:
        return ArchRead(archs, how)
    return ArchRead((), f"{got.source}; {how}")
