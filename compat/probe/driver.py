"""NVIDIA driver, GPUs and host context, cheapest source first, each step bounded in time.

Order: kernel module files (/sys, /proc) -> NVML in a child process (timeout) -> nvidia-smi CSV
(timeout), read by compat.probe.hostread and made records here. Every failure becomes an
`Unknown` with its reason; nothing here raises.
"""

from __future__ import annotations

import math
import re
from typing import Any, Optional, Union

from msgspec import Struct

from compat.models import GPU, Driver, HostContext, Unknown, small_int
from compat.probe import hostread

NVML_TIMEOUT_S = hostread.NVML_TIMEOUT_S
module_version = hostread.module_version


class HostProbe(Struct, frozen=True):
    driver: Union[Driver, Unknown]
    gpus: Union[tuple[GPU, ...], Unknown]
    context: HostContext


def host_context(root: str = "/") -> HostContext:
    """Container, WSL and NVIDIA device nodes (compat.probe.hostread.context) as a record."""
    return _context(hostread.context(root))


def _context(raw: dict[str, Any]) -> HostContext:
    container, dev = raw["container"], tuple(raw["dev"])
    notes: list[str] = []
    if not dev:
        notes.append(
            "no /dev/nvidia* device nodes"
            + (" (container without GPU access, or a docker build)" if container else "")
        )
    return HostContext(container, raw["wsl"], dev, tuple(notes))


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
    return host_from(hostread.read_host(root, nvml_lib, timeout))


def host_from(raw: dict[str, Any]) -> HostProbe:
    """The records of one reading of the host (compat.probe.hostread.read_host)."""
    context = _context(raw["context"])
    kmod, kmod_source = raw["kmod"], raw["kmod_source"]
    data = raw.get("nvml")
    if data is None:
        why = "no NVIDIA kernel module and no /dev/nvidia* device nodes: no usable NVIDIA GPU here"
        return HostProbe(Unknown(why), Unknown(why), context)
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
        # A driver that hangs NVML hangs nvidia-smi too: hostread stayed inside the time bound.
        gpus = Unknown(f"NVML: {nvml_problem}")
    else:
        smi = raw.get("smi") or {"why": "nvidia-smi not asked"}
        smi_driver, smi_gpus, smi_why = (
            parse_smi_csv(smi["csv"]) if "csv" in smi else (None, [], smi["why"])
        )
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
