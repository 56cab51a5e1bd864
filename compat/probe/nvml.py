"""NVML query run in a child process (stdlib only): prints one JSON object and exits.

A hung or crashing driver library then costs a timeout, not compat itself. Run as
`python -I -S nvml.py [LIBRARY]`; the parent (compat.probe.driver) bounds it in time.
"""

from __future__ import annotations

import ctypes
import json
import sys
from typing import Any

NVML_SUCCESS = 0
NVML_ERROR_NOT_SUPPORTED = 3
# More than any host holds (NVML counts the GPUs one driver sees): a larger count is not real.
MAX_DEVICES = 1024


class _Memory(ctypes.Structure):
    _fields_ = [
        ("total", ctypes.c_ulonglong),
        ("free", ctypes.c_ulonglong),
        ("used", ctypes.c_ulonglong),
    ]


def _text(fn: Any, *args: Any, size: int = 96) -> str | None:
    buf = ctypes.create_string_buffer(size)
    if fn(*args, buf, ctypes.c_uint(size)) != NVML_SUCCESS:
        return None
    return buf.value.decode("utf-8", "replace")


def query(lib: Any, shutdown: bool = True) -> dict[str, Any]:
    """Driver, CUDA driver version and every device from an NVML library object (ctypes.CDLL).
    Without `shutdown`, NVML is left initialised: for a process that exits right after (a
    forked child), whose resources the kernel frees at once; nvmlShutdown costs ~10 ms."""
    rc = lib.nvmlInit_v2()
    if rc != NVML_SUCCESS:
        return {"error": f"nvmlInit_v2 returned {rc}"}
    try:
        out: dict[str, Any] = {"driver": _text(lib.nvmlSystemGetDriverVersion, size=80)}
        cuda = ctypes.c_int(0)
        if lib.nvmlSystemGetCudaDriverVersion_v2(ctypes.byref(cuda)) == NVML_SUCCESS and cuda.value:
            out["cuda"] = f"{cuda.value // 1000}.{(cuda.value % 1000) // 10}"
        count = ctypes.c_uint(0)
        rc = lib.nvmlDeviceGetCount_v2(ctypes.byref(count))
        if rc != NVML_SUCCESS:
            out["devices_error"] = f"nvmlDeviceGetCount_v2 returned {rc}"
            return out
        if count.value > MAX_DEVICES:
            out["devices_error"] = f"nvmlDeviceGetCount_v2 said {count.value} GPUs"
            return out
        devices = []
        for i in range(count.value):
            handle = ctypes.c_void_p()
            if (
                lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(i), ctypes.byref(handle))
                != NVML_SUCCESS
            ):
                devices.append({"index": i, "error": "no handle"})
                continue
            dev: dict[str, Any] = {"index": i, "name": _text(lib.nvmlDeviceGetName, handle)}
            dev["uuid"] = _text(lib.nvmlDeviceGetUUID, handle)
            major, minor = ctypes.c_int(0), ctypes.c_int(0)
            if (
                lib.nvmlDeviceGetCudaComputeCapability(
                    handle, ctypes.byref(major), ctypes.byref(minor)
                )
                == NVML_SUCCESS
            ):
                dev["cc"] = [major.value, minor.value]
            mem = _Memory()
            if lib.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(mem)) == NVML_SUCCESS:
                dev["memory_total_mib"] = mem.total // (1 << 20)
                dev["memory_used_mib"] = mem.used // (1 << 20)
            cur, pending = ctypes.c_uint(0), ctypes.c_uint(0)
            rc = lib.nvmlDeviceGetMigMode(handle, ctypes.byref(cur), ctypes.byref(pending))
            if rc == NVML_SUCCESS:
                dev["mig"] = bool(cur.value)
            elif rc == NVML_ERROR_NOT_SUPPORTED:
                dev["mig"] = False
            devices.append(dev)
        out["devices"] = devices
        return out
    finally:
        if shutdown:
            lib.nvmlShutdown()


def main(argv: list[str]) -> int:
    name = argv[1] if len(argv) > 1 else "libnvidia-ml.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        print(json.dumps({"load_error": str(exc)}))
        return 0
    print(json.dumps(query(lib)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
