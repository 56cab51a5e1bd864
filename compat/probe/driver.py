"""NVIDIA driver, GPUs and host context, cheapest source first, each step bounded in time.

Order: kernel module files (/sys, /proc) -> NVML in a child process (timeout) -> nvidia-smi CSV
(timeout). Every failure becomes an `Unknown` with its reason; nothing here raises.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from typing import Any, Optional, Union

from msgspec import Struct

from compat.models import GPU, Driver, HostContext, Unknown, small_int
from compat.probe import bounded

NVML_TIMEOUT_S = 2.0
_NVML_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nvml.py")
_PROC_VERSION = re.compile(r"Kernel Module(?:\s+for\s+\S+)?\s+([0-9]+\.[0-9]+(?:\.[0-9]+)?)")


class HostProbe(Struct, frozen=True):
    driver: Union[Driver, Unknown]
    gpus: Union[tuple[GPU, ...], Unknown]
    context: HostContext


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


def host_context(root: str = "/") -> HostContext:
    """Container, WSL and NVIDIA device nodes: a docker build sees no device, which is not 'CPU'."""
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
    wsl = "microsoft" in osrelease or "wsl" in osrelease
    try:
        dev = sorted(
            n for n in os.listdir(os.path.join(root, "dev")) if n.startswith("nvidia") or n == "dxg"
        )
    except OSError:
        dev = []
    notes: list[str] = []
    if not dev:
        notes.append(
            "no /dev/nvidia* device nodes"
            + (" (container without GPU access, or a docker build)" if container else "")
        )
    return HostContext(container, wsl, tuple(dev), tuple(notes))


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


def _nvml(lib: Optional[str], timeout: float) -> dict[str, Any]:
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


def _smi(timeout: float) -> tuple[Optional[str], list[GPU], str]:
    import shutil

    exe = shutil.which("nvidia-smi")
    if not exe:
        return None, [], "nvidia-smi not on PATH"
    fields = "index,name,compute_cap,memory.total,memory.used,mig.mode.current,uuid,driver_version"
    proc = bounded.run([exe, f"--query-gpu={fields}", "--format=csv,noheader,nounits"], timeout)
    if proc.returncode is None:
        return None, [], f"nvidia-smi {proc.problem}"
    if proc.returncode != 0:
        return None, [], f"nvidia-smi exited {proc.returncode}"
    return parse_smi_csv(proc.stdout.decode("utf-8", "replace"))


def parse_smi_csv(text: str) -> tuple[Optional[str], list[GPU], str]:
    driver: Optional[str] = None
    gpus: list[GPU] = []
    for line in text.splitlines():
        cols = [c.strip() for c in line.split(",")]
        if len(cols) < 8:
            continue
        index = small_int(cols[0], 4)
        if index is None or index < 0:
            continue
        cc = _cc(cols[2])
        gpus.append(
            GPU(
                index,
                cols[1],
                cc,
                _int(cols[3]),
                _int(cols[4]),
                cols[5].lower() == "enabled" if cols[5] not in ("[N/A]", "N/A") else None,
                cols[6] or None,
                "nvidia-smi",
            )
        )
        driver = driver or cols[7]
    return driver, gpus, "nvidia-smi"


def _cc(text: str) -> Optional[tuple[int, int]]:
    m = re.match(r"^([0-9]{1,2})\.([0-9]{1,2})$", text.strip(), re.ASCII)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _int(text: str) -> Optional[int]:
    """A MiB figure nvidia-smi printed; "[N/A]", "inf", "nan" or absurd values are unknown."""
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or not 0 <= value < 2**40:
        return None
    return int(value)


def probe_host(
    root: str = "/", nvml_lib: Optional[str] = None, timeout: float = NVML_TIMEOUT_S
) -> HostProbe:
    """Driver, GPUs and context. `root` and `nvml_lib` exist for tests (fake /proc, fake NVML)."""
    context = host_context(root)
    kmod, kmod_source = module_version(root)
    nvml_lib = nvml_lib or os.environ.get("COMPAT_NVML_LIB") or None
    if kmod is None and not context.device_nodes and not nvml_lib:
        why = "no NVIDIA kernel module and no /dev/nvidia* device nodes: no usable NVIDIA GPU here"
        return HostProbe(Unknown(why), Unknown(why), context)

    started = time.monotonic()
    data = _nvml(nvml_lib, timeout)
    nvml_problem = data.get("error") or data.get("load_error")
    version: Union[str, Unknown] = kmod if kmod else Unknown(kmod_source)
    version_source = kmod_source if kmod else ""
    cuda: Union[str, Unknown] = Unknown(
        f"NVML: {nvml_problem}" if nvml_problem else "NVML gave none"
    )
    cuda_source = ""
    gpus: Union[tuple[GPU, ...], Unknown]
    if not nvml_problem:
        if kmod is None and isinstance(data.get("driver"), str) and data["driver"]:
            version, version_source = data["driver"][:64], "NVML nvmlSystemGetDriverVersion"
        if isinstance(data.get("cuda"), str) and re.fullmatch(
            r"[0-9]{1,2}\.[0-9]{1,2}", data["cuda"]
        ):
            cuda, cuda_source = data["cuda"], "NVML nvmlSystemGetCudaDriverVersion_v2"
        if isinstance(data.get("devices"), list):
            gpus = tuple(_gpu_from_nvml(d, i) for i, d in enumerate(data["devices"][:1024]))
        else:
            gpus = Unknown(f"NVML: {data.get('devices_error', 'no device list')}")
    elif "within" in str(nvml_problem):
        # A driver that hangs NVML hangs nvidia-smi too: stay inside the time bound.
        gpus = Unknown(f"NVML: {nvml_problem}")
    else:
        left = max(0.2, timeout - (time.monotonic() - started))
        smi_driver, smi_gpus, smi_why = _smi(left)
        if smi_driver is not None or smi_gpus:
            if kmod is None and smi_driver:
                version, version_source = smi_driver, "nvidia-smi"
            gpus = tuple(smi_gpus)
        else:
            gpus = Unknown(f"NVML: {nvml_problem}; {smi_why}")
    return HostProbe(Driver(version, cuda, version_source, cuda_source), gpus, context)


def _gpu_from_nvml(d: object, i: int) -> GPU:
    """One device of the NVML child's JSON; values of the wrong type are unknown, not errors."""
    d = d if isinstance(d, dict) else {}
    cc = d.get("cc")
    cc_ok = (
        isinstance(cc, list) and len(cc) == 2 and all(type(x) is int and 0 <= x < 100 for x in cc)
    )

    def mib(key: str) -> Optional[int]:
        v = d.get(key)
        return v if type(v) is int and 0 <= v < 2**40 else None

    index = d.get("index")
    name = d.get("name")
    uuid = d.get("uuid")
    mig = d.get("mig")
    return GPU(
        index=index if type(index) is int and 0 <= index < 1024 else i,
        name=name[:256] if isinstance(name, str) and name else "unknown",
        compute_capability=(cc[0], cc[1]) if cc_ok else None,  # type: ignore[index]
        memory_total_mib=mib("memory_total_mib"),
        memory_used_mib=mib("memory_used_mib"),
        mig=mig if isinstance(mig, bool) else None,
        uuid=uuid[:128] if isinstance(uuid, str) else None,
        source="NVML",
    )
