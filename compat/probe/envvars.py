"""Environment variables that matter to the stack, with secrets redacted."""

from __future__ import annotations

from collections.abc import Mapping

from compat.redact import redact_value

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


def matters(name: str) -> bool:
    return name in EXACT or name.startswith(PREFIXES)


def probe_env(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: redact_value(k, v) for k, v in sorted(environ.items()) if matters(k)}
