"""JIT and compile caches of the stack: where they are, how big, and who built them."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from typing import Optional

from compat.models import CacheInfo, parse_version

# Bounds that keep the walk cheap on huge caches; the result then says "at least".
MAX_ENTRIES = 20_000
MAX_SECONDS = 0.05


def cache_locations(
    environ: Mapping[str, str], home: Optional[str] = None
) -> list[tuple[str, str]]:
    """(kind, path) of each cache, honouring the variables each project documents."""
    home = home or environ.get("HOME") or os.path.expanduser("~")
    xdg = environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    user = environ.get("USER") or environ.get("LOGNAME") or _user()
    triton_home = environ.get("TRITON_HOME") or home
    triton = environ.get("TRITON_CACHE_DIR") or os.path.join(triton_home, ".triton", "cache")
    flashinfer = os.path.join(
        environ.get("FLASHINFER_WORKSPACE_BASE") or home, ".cache", "flashinfer"
    )
    inductor = environ.get("TORCHINDUCTOR_CACHE_DIR") or os.path.join(
        "/tmp", f"torchinductor_{user}"
    )
    vllm = environ.get("VLLM_CACHE_ROOT") or os.path.join(xdg, "vllm")
    return [
        ("triton", triton),
        ("flashinfer", flashinfer),
        ("torchinductor", inductor),
        ("vllm", vllm),
    ]


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, OSError):
        return "unknown"


def measure(kind: str, path: str, walk: bool = True) -> CacheInfo:
    """Size and entry count (bounded walk), oldest top-level entry, versions named in the layout.

    Without `walk` only the top level is read (what the stale-cache check needs): the entry
    count is then the top level's and marked `truncated`, the size left at 0.
    """
    try:
        with os.scandir(path) as it:
            top = list(it)
    except OSError:
        return CacheInfo(kind, path, exists=False)
    built_by = tuple(
        sorted(
            e.name
            for e in top
            if e.is_dir() and parse_version(e.name) is not None and "." in e.name
        )
    )
    oldest: Optional[float] = None
    for e in top:
        try:
            m = e.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        oldest = m if oldest is None else min(oldest, m)
    if not walk:
        return CacheInfo(kind, path, True, 0, len(top), bool(top), built_by, oldest)
    size = entries = 0
    truncated = False
    deadline = time.monotonic() + MAX_SECONDS
    found = entries_under(path)
    for e in found:
        entries += 1
        try:
            if not e.is_dir(follow_symlinks=False):
                size += e.stat(follow_symlinks=False).st_size
        except OSError:
            pass
        if entries >= MAX_ENTRIES or (entries % 256 == 0 and time.monotonic() > deadline):
            truncated = next(found, None) is not None
            break
    return CacheInfo(kind, path, True, size, entries, truncated, built_by, oldest)


def entries_under(path: str) -> Iterator[os.DirEntry[str]]:
    """Every entry under `path`, a folder's before those it holds; symbolic links are not
    followed, and a folder that cannot be read is skipped."""
    stack = [path]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                for e in it:
                    with contextlib.suppress(OSError):
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
                    yield e
        except OSError:
            continue


def probe_caches(
    environ: Mapping[str, str], home: Optional[str] = None, walk: bool = True
) -> tuple[CacheInfo, ...]:
    return tuple(measure(kind, path, walk) for kind, path in cache_locations(environ, home))
