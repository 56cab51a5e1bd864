"""The floor of what `compat check` must do on this machine, for scripts/bench.py to compare with:
start the interpreter, list the site-packages folders, read the METADATA headers of the stack's
distributions only, and ask NVML for the driver and the GPUs. Standard library only, nothing
judged. Run as `python scripts/floor.py`; prints how many distributions and GPUs it saw.
"""

from __future__ import annotations

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_NAME = re.compile(r'^name = "([^"]+)"', re.M)
_DIST = re.compile(r"^(?P<name>[A-Za-z0-9._]+)-[^-]+\.dist-info$")


def stack_names() -> tuple[set[str], tuple[str, ...]]:
    """The stack's names and name prefixes, from the package table (text, no TOML parser)."""
    with open(os.path.join(ROOT, "matrices", "curated", "packages.toml"), encoding="utf-8") as fh:
        text = fh.read()
    names: set[str] = set()
    prefixes: list[str] = []
    for block in text.split("[[package]]")[1:]:
        m = _NAME.search(block)
        if m is None:
            continue
        name = m.group(1).lower().replace("_", "-")
        if "\nprefix = true" in block:
            prefixes.append(name)
        else:
            names.add(name)
    return names, tuple(prefixes)


def metadata(names: set[str], prefixes: tuple[str, ...]) -> int:
    seen = 0
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as it:
                folders = [e.name for e in it if e.name.endswith(".dist-info")]
        except OSError:
            continue
        for folder in folders:
            m = _DIST.match(folder)
            if m is None:
                continue
            key = re.sub(r"[-_.]+", "-", m.group("name")).lower()
            if key not in names and not key.startswith(prefixes):
                continue
            try:
                with open(os.path.join(entry, folder, "METADATA"), "rb") as fh:
                    head = fh.read(65536)
            except OSError:
                continue
            seen += bool(head.split(b"\n\n", 1)[0])
    return seen


def nvml() -> int:
    import ctypes

    try:
        lib = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return 0
    if lib.nvmlInit_v2() != 0:
        return 0
    try:
        buf = ctypes.create_string_buffer(96)
        lib.nvmlSystemGetDriverVersion(buf, ctypes.c_uint(96))
        count = ctypes.c_uint(0)
        lib.nvmlDeviceGetCount_v2(ctypes.byref(count))
        for i in range(count.value):
            handle = ctypes.c_void_p()
            lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(i), ctypes.byref(handle))
            lib.nvmlDeviceGetName(handle, buf, ctypes.c_uint(96))
            major, minor = ctypes.c_int(0), ctypes.c_int(0)
            lib.nvmlDeviceGetCudaComputeCapability(handle, ctypes.byref(major), ctypes.byref(minor))
        return count.value
    finally:
        lib.nvmlShutdown()


if __name__ == "__main__":
    names, prefixes = stack_names()
    print(f"stack distributions {metadata(names, prefixes)}, GPUs {nvml()}")
