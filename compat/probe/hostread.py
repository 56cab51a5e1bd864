"""What the host says about its NVIDIA driver and GPUs, as read: the kernel module's files, the
container markers, the device nodes, and NVML's answer (else nvidia-smi's CSV), as plain data.

Standard library only, and every step bounded in time: a replayed check (compat.answers) reads
the host again through this module before anything else is imported, and compat.probe.driver
turns the same reading into records. Nothing here raises.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

NVML_TIMEOUT_S = 2.0
_NVML_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nvml.py")
_PROC_VERSION = re.compile(r"Kernel Module(?:\s+for\s+\S+)?\s+([0-9]+\.[0-9]+(?:\.[0-9]+)?)")
SMI_FIELDS = "index,name,compute_cap,memory.total,memory.used,mig.mode.current,uuid,driver_version"

# The last reading of this process, for the record a check keeps beside its answer: the answer
# was computed from exactly this reading, not from one taken a moment later.
last: Optional[dict[str, Any]] = None


def _read(root: str, path: str) -> Optional[str]:
    try:
        with open(os.path.join(root, path.lstrip("/")), encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def module_version(root: str = "/") -> tuple[Optional[str], str]:
    """The kernel module's version and the file it came from, or (None, what was tried)."""
    text = _read(root, "/sys/module/nvidia/version")
    if text and text.strip():
        return text.strip(), "/sys/module/nvidia/version"
    text = _read(root, "/proc/driver/nvidia/version")
    if text:
        m = _PROC_VERSION.search(text)
        if m:
            return m.group(1), "/proc/driver/nvidia/version"
    return None, "no /sys/module/nvidia/version or /proc/driver/nvidia/version"


def context(root: str = "/") -> dict[str, Any]:
    """Container, WSL and the NVIDIA device nodes: a docker build sees no device, which is not
    'CPU'."""
    container: Optional[str] = None
    if os.path.exists(os.path.join(root, ".dockerenv")):
        container = "docker"
    elif os.path.exists(os.path.join(root, "run/.containerenv")):
        container = "podman"
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        container = "kubernetes"
    else:
        cgroup = _read(root, "/proc/1/cgroup") or ""
        for marker in ("kubepods", "docker", "containerd", "lxc"):
            if marker in cgroup:
                container = marker
                break
    osrelease = (_read(root, "/proc/sys/kernel/osrelease") or "").lower()
    try:
        dev = sorted(
            n for n in os.listdir(os.path.join(root, "dev")) if n.startswith("nvidia") or n == "dxg"
        )
    except OSError:
        dev = []
    return {
        "container": container,
        "wsl": "microsoft" in osrelease or "wsl" in osrelease,
        "dev": dev,
    }


def _nvml_in_child(lib: Optional[str]) -> bytes:
    """What the NVML child prints, run in a forked copy of compat (no interpreter start)."""
    import ctypes

    from compat.probe import nvml

    try:
        handle = ctypes.CDLL(lib or "libnvidia-ml.so.1")
    except OSError as exc:
        return json.dumps({"load_error": str(exc)}).encode()
    # the child exits as soon as this is written (os._exit): no NVML teardown to wait for
    return json.dumps(nvml.query(handle, shutdown=False)).encode()


def nvml(lib: Optional[str], timeout: float) -> dict[str, Any]:
    """NVML's answer as the child printed it, or {"error": why}."""
    from compat.probe import bounded

    # A fork of this process when that is safe (single-threaded), else a fresh interpreter:
    # either way a hung or crashing driver library costs the timeout, not compat.
    if bounded.can_fork():
        proc = bounded.forked(lambda: _nvml_in_child(lib), timeout)
    else:
        cmd = [sys.executable, "-I", "-S", _NVML_SCRIPT]
        if lib:
            cmd.append(lib)
        proc = bounded.run(cmd, timeout)
    if proc.returncode is None:
        if "within" in proc.problem:
            return {"error": f"NVML did not answer within {timeout:g} s"}
        return {"error": f"the NVML probe {proc.problem}"}
    if proc.returncode < 0:
        return {"error": f"NVML crashed (signal {-proc.returncode})"}
    if proc.returncode != 0:
        return {"error": f"NVML probe exited {proc.returncode}"}
    try:
        data = json.loads(proc.stdout.decode("utf-8", "replace"))
    except ValueError:
        return {"error": "NVML probe printed no JSON"}
    return data if isinstance(data, dict) else {"error": "NVML probe printed no JSON object"}


def smi(timeout: float) -> dict[str, Any]:
    """nvidia-smi's CSV of the GPUs ({"csv": text}), or {"why": what went wrong}."""
    import shutil

    from compat.probe import bounded

    exe = shutil.which("nvidia-smi")
    if not exe:
        return {"why": "nvidia-smi not on PATH"}
    proc = bounded.run([exe, f"--query-gpu={SMI_FIELDS}", "--format=csv,noheader,nounits"], timeout)
    if proc.returncode is None:
        return {"why": f"nvidia-smi {proc.problem}"}
    if proc.returncode != 0:
        return {"why": f"nvidia-smi exited {proc.returncode}"}
    return {"csv": proc.stdout.decode("utf-8", "replace")}


def read_host(
    root: str = "/", nvml_lib: Optional[str] = None, timeout: float = NVML_TIMEOUT_S
) -> dict[str, Any]:
    """Everything the host probe reads, cheapest source first: the module's version, the
    context, then (when a driver may be there) NVML, and nvidia-smi only when NVML failed
    other than by hanging (a driver that hangs NVML hangs nvidia-smi too)."""
    global last
    kmod, kmod_source = module_version(root)
    lib = nvml_lib or os.environ.get("COMPAT_NVML_LIB") or None
    got: dict[str, Any] = {
        "kmod": kmod,
        "kmod_source": kmod_source,
        "context": context(root),
        "nvml_lib": lib,
    }
    if kmod is not None or got["context"]["dev"] or lib:
        started = time.monotonic()
        data = nvml(lib, timeout)
        got["nvml"] = data
        problem = data.get("error") or data.get("load_error")
        if problem and "within" not in str(problem):
            got["smi"] = smi(max(0.2, timeout - (time.monotonic() - started)))
    last = got
    return got
