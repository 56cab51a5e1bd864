"""What the GPU itself reports, to set beside compat's estimate: NVML totals and, through the CUDA
driver API (libcuda, no torch), the total CUDA sees and what creating a context costs.

    python measure.py            # JSON on stdout
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from typing import Any

MIB = 1 << 20


def smi() -> list[dict[str, Any]]:
    out = subprocess.run(
        [
            "nvidia-smi",
            "--query-gpu=index,name,memory.total,memory.used,memory.free",
            "--format=csv,noheader,nounits",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    rows = []
    for line in out.strip().splitlines():
        idx, name, total, used, free = (x.strip() for x in line.split(","))
        rows.append(
            {
                "index": int(idx),
                "name": name,
                "total_mib": int(total),
                "used_mib": int(used),
                "free_mib": int(free),
            }
        )
    return rows


def cuda_view(device: int = 0) -> dict[str, Any]:
    """cuMemGetInfo from a fresh primary context: CUDA's total, and the free memory once the
    context exists (nvidia-smi's used before and after gives the context's own size)."""
    cu = ctypes.CDLL("libcuda.so.1")

    def ok(rc: int, what: str) -> None:
        if rc != 0:
            raise RuntimeError(f"{what} failed with CUDA error {rc}")

    ok(cu.cuInit(0), "cuInit")
    dev = ctypes.c_int()
    ok(cu.cuDeviceGet(ctypes.byref(dev), device), "cuDeviceGet")
    before = smi()[device]["used_mib"]
    ctx = ctypes.c_void_p()
    ok(cu.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev), "cuDevicePrimaryCtxRetain")
    ok(cu.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
    free, total = ctypes.c_size_t(), ctypes.c_size_t()
    ok(cu.cuMemGetInfo_v2(ctypes.byref(free), ctypes.byref(total)), "cuMemGetInfo_v2")
    after = smi()[device]["used_mib"]
    return {
        "cuda_total_mib": total.value / MIB,
        "cuda_free_mib": free.value / MIB,
        "smi_used_before_context_mib": before,
        "smi_used_with_context_mib": after,
        "context_mib": after - before,
    }


def torch_view() -> dict[str, Any]:
    """With torch: the context as a server creates it (torch's CUDA init plus a cuBLAS matmul)."""
    try:
        import torch  # type: ignore[import-not-found]
    except ImportError:
        return {"torch": "not installed"}
    before = smi()[0]["used_mib"]
    a = torch.ones((1024, 1024), device="cuda", dtype=torch.bfloat16)
    (a @ a).sum().item()
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    return {
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "torch_total_mib": total / MIB,
        "torch_free_mib": free / MIB,
        "context_with_torch_and_cublas_mib": smi()[0]["used_mib"]
        - before
        - torch.cuda.memory_reserved() / MIB,
    }


if __name__ == "__main__":
    try:
        result: dict[str, Any] = {"nvidia_smi": smi()}
    except (OSError, subprocess.SubprocessError) as exc:
        json.dump({"error": f"nvidia-smi: {exc}"}, sys.stdout)
        sys.stdout.write("\n")
        sys.exit(1)
    try:
        result["cuda"] = cuda_view()
    except (OSError, RuntimeError) as exc:
        result["cuda"] = {"error": str(exc)}
    if "--torch" in sys.argv:
        result["torch"] = torch_view()
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
