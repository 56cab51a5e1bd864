"""Environment variables that matter to the stack, with secrets redacted."""

from __future__ import annotations

import re
from collections.abc import Mapping

EXACT = frozenset(
    {
        "LD_LIBRARY_PATH",
        "LD_PRELOAD",
        "PATH",
        "CUDA_HOME",
        "CUDA_PATH",
        "CUDA_ROOT",
        "CUDA_VISIBLE_DEVICES",
        "NVIDIA_VISIBLE_DEVICES",
        "NVIDIA_DRIVER_CAPABILITIES",
        "CUDA_DEVICE_ORDER",
        "CUDA_DEVICE_MAX_CONNECTIONS",
        "CUDA_LAUNCH_BLOCKING",
        "CUDA_MODULE_LOADING",
        "CUDA_CACHE_PATH",
        "CUDA_CACHE_DISABLE",
        "CUDA_FORCE_PTX_JIT",
        "TORCH_CUDA_ARCH_LIST",
        "PYTORCH_CUDA_ALLOC_CONF",
        "PYTORCH_ALLOC_CONF",
        "PYTORCH_NVML_BASED_CUDA_CHECK",
        "PYTHONPATH",
        "VIRTUAL_ENV",
        "CONDA_PREFIX",
        "OMP_NUM_THREADS",
        "MASTER_ADDR",
        "MASTER_PORT",
        "WORLD_SIZE",
        "RANK",
        "LOCAL_RANK",
        "HF_HOME",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "TORCHINDUCTOR_CACHE_DIR",
        "XDG_CACHE_HOME",
        "CUBLAS_WORKSPACE_CONFIG",
        "NVSHMEM_DISABLE_NVLS",
        "TORCH_SYMM_MEM_DISABLE_MULTICAST",
        "CUDA_MPS_PIPE_DIRECTORY",
        "CUDA_VERSION",
        "NVIDIA_REQUIRE_CUDA",
        "CUDA_DRIVER_VERSION",
        "NV_CUDA_COMPAT_PACKAGE",
    }
)
PREFIXES = (
    "NCCL_",
    "TRITON_",
    "SGLANG_",
    "SGL_",
    "VLLM_",
    "FLASHINFER_",
    "TORCH_",
    "TORCHINDUCTOR_",
    "RAY_",
    "NVSHMEM_",
    "COMPAT_",
    "XFORMERS_",
    "UCX_",
    "GLOO_",
)

_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|CREDENTIAL|PRIVATE|AUTH)", re.I)
_SECRET_VALUE = re.compile(
    r"^(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|"
    r"xox[baprs]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|eyJ[A-Za-z0-9_-]{20,}\..*)$"
)
_URL_CREDS = re.compile(r"(://[^/\s:@]+):[^@/\s]+@")
REDACTED = "<redacted>"


def matters(name: str) -> bool:
    return name in EXACT or name.startswith(PREFIXES)


def redact(name: str, value: str) -> str:
    """Hide values that look like credentials: by name, by value shape, or inside URLs."""
    if _SECRET_NAME.search(name) or _SECRET_VALUE.match(value):
        return REDACTED
    return _URL_CREDS.sub(r"\1:" + REDACTED + "@", value)


def probe_env(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: redact(k, v) for k, v in sorted(environ.items()) if matters(k)}
