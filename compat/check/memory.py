"""memory-headroom: what a launch leaves of GPU memory for activations and CUDA-graph capture."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

from packaging.version import Version

from compat.check.base import Context
from compat.launch import LaunchConfig
from compat.models import GPU, Code, Environment, Finding, Severity, Unknown

GIB = 1024.0  # MiB per GiB

# What is outside the static pool but not available to activations: the CUDA context, cuBLAS
# workspaces, the NCCL and attention-backend buffers. 0.5 GiB is an assumption (a CUDA context
# alone is ~0.3-0.5 GiB); the seed-000 log fits it: 11.99 GiB x (1 - 0.88) - 0.5 = 0.94 GiB,
# where sglang logged "Memory pool end. avail mem=0.97 GB".
CONTEXT_OVERHEAD_MIB = 512.0

# Below these, compat warns. sglang: activations (chunked prefill) and CUDA-graph buffers live
# outside mem_fraction_static; seed 000 had 0.97 GiB after the pool and 0.39 GiB at capture, and
# the report's fix (--mem-fraction-static 0.80) leaves ~1.9 GiB. vLLM counts activations (and in
# recent releases CUDA-graph memory) inside --gpu-memory-utilization, so less must stay outside.
THRESHOLD_MIB = {"sglang": 1.5 * GIB, "vllm": 0.75 * GIB}

# When compat suggests a smaller fraction it aims this far above the threshold.
MARGIN_MIB = 0.5 * GIB

# sglang's default mem_fraction_static changed twice; which heuristic a version uses:
# - up to 0.4.6: by tensor parallel size only (0.88 TP1 ... 0.79 TP16);
# - PR #7054 (merged 2025-06-10, assumed first in 0.4.7): a reserve per GPU-memory tier;
# - PR #10975 (merged 2025-09-27, assumed first in 0.5.3): `_handle_gpu_memory_settings`,
#   512 MiB + chunked-prefill and CUDA-graph terms.
# The release boundaries are inferred from merge dates, not read from the release tags.
SGLANG_TIER_HEURISTIC_FROM = Version("0.4.7")
SGLANG_RESERVE_HEURISTIC_FROM = Version("0.5.3")


@dataclass(frozen=True)
class MemoryEstimate:
    """The numbers behind a memory-headroom finding (MiB unless named otherwise)."""

    framework: str
    gpu: GPU
    total_mib: float
    fraction: float
    fraction_origin: str
    static_mib: float
    headroom_mib: float
    threshold_mib: float
    weights_mib: Optional[float] = None


def _tp_pp(launch: LaunchConfig) -> tuple[int, int]:
    tp = launch.settings.get("tp_size")
    pp = launch.settings.get("pp_size")
    return (
        tp if isinstance(tp, int) and tp > 0 else 1,
        pp if isinstance(pp, int) and pp > 0 else 1,
    )


def _sglang_tier_defaults(gpu_mem: float, tp: int) -> tuple[int, int]:
    """(chunked_prefill_size, cuda_graph_max_bs) by GPU memory, as in `_handle_gpu_memory_settings`."""
    if gpu_mem < 20 * 1024:  # T4, 4080
        return 2048, 8
    if gpu_mem < 35 * 1024:  # A10, 4090, 5090
        return 2048, 24 if tp < 4 else 80
    if gpu_mem < 60 * 1024:  # A100 40GB, L40
        return 4096, 32 if tp < 4 else 160
    if gpu_mem < 160 * 1024:  # H100, A100 80GB, H20, H200
        return 8192, 256 if tp < 4 else 512
    return 16384, 512  # B200, MI300


def _piecewise_token_count(max_tokens: int) -> int:
    """len(_generate_piecewise_cuda_graph_tokens()) for a given piecewise max."""
    sizes = (
        list(range(4, 33, 4))
        + list(range(48, 257, 16))
        + list(range(288, 513, 32))
        + list(range(576, 1025, 64))
        + list(range(1280, 4097, 256))
        + list(range(4608, max_tokens + 1, 512))
    )
    return len([s for s in sizes if s <= max_tokens])


def sglang_default_mem_fraction(
    gpu_mem_mib: float, launch: LaunchConfig, version: Optional[Version]
) -> tuple[float, str]:
    """sglang's default --mem-fraction-static for this GPU and launch, and which rule gave it.

    Follows python/sglang/srt/server_args.py; not modeled: multimodal adjustments
    (adjust_mem_fraction_for_vlm), the H200/B200 special cases of 0.4.x (PRs #5893, #6718),
    NPU/ROCm branches, and disaggregation-aware reserves (PR #29615).
    """
    tp, pp = _tp_pp(launch)
    s = launch.settings
    spec = s.get("speculative_algorithm")
    if version is not None and version < SGLANG_TIER_HEURISTIC_FROM:
        table = ((16, 0.79), (8, 0.81), (4, 0.85), (2, 0.87), (1, 0.88))
        frac = next(f for n, f in table if tp >= n)
        return frac, f"sglang default for tp={tp} (rule of sglang < {SGLANG_TIER_HEURISTIC_FROM})"
    if version is not None and version < SGLANG_RESERVE_HEURISTIC_FROM:
        ps = tp * pp
        if gpu_mem_mib < 35 * 1024:
            reserved = (2.8 + ps / 10) * 1024
        elif gpu_mem_mib < 90 * 1024:
            reserved = (9.5 + ps / 2) * 1024
        elif gpu_mem_mib < 160 * 1024:
            reserved = (12 + ps / 2) * 1024
        else:
            reserved = 32 * 1024
        if spec is not None:
            reserved += 2 * 1024
        if s.get("enable_dp_attention") is True:
            reserved += 4 * 1024
        frac = round((gpu_mem_mib - reserved) / gpu_mem_mib, 3)
        return frac, (
            f"sglang default: {reserved / GIB:.2f} GiB reserved for this GPU tier "
            f"(rule of sglang {SGLANG_TIER_HEURISTIC_FROM}..{SGLANG_RESERVE_HEURISTIC_FROM})"
        )
    chunk_default, bs_default = _sglang_tier_defaults(gpu_mem_mib, tp)
    chunk = s.get("chunked_prefill_size")
    chunk = chunk if isinstance(chunk, int) else chunk_default
    bs = s.get("cuda_graph_max_bs")
    bs = bs if isinstance(bs, int) else bs_default
    reserved = 512.0
    reserved += max(chunk, 2048) * 1.5 if chunk > 0 else max(16384, 2048) * 1.5
    reserved += bs * 2
    reserved += tp * pp / 8 * 1024
    dp = s.get("dp_size")
    dp = dp if isinstance(dp, int) and dp > 0 else 1
    if s.get("enable_dp_attention") is True:
        reserved += bs * dp * 3
        if bs > 300:
            reserved += bs * dp * 1.5
    if s.get("piecewise_cuda_graph") is True:
        # piecewise max tokens default to chunked_prefill_size (non-MLA models; 2048 for MLA).
        reserved += _piecewise_token_count(chunk if chunk > 0 else 2048) * 8
    if gpu_mem_mib > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    if spec == "STANDALONE":
        reserved += 6 * 1024
    elif spec is not None and spec != "NGRAM":
        reserved += 2 * 1024
    frac = round((gpu_mem_mib - reserved) / gpu_mem_mib, 3)
    which = (
        f"sglang >= {SGLANG_RESERVE_HEURISTIC_FROM}"
        if version is not None
        else "current sglang; version unknown"
    )
    return frac, f"sglang default: {reserved / GIB:.2f} GiB reserved (rule of {which})"


def _bytes_per_param(launch: LaunchConfig) -> float:
    q = launch.settings.get("quantization")
    d = launch.settings.get("dtype")
    q = q.lower() if isinstance(q, str) else ""
    if any(
        k in q
        for k in ("awq", "gptq", "int4", "w4", "fp4", "mxfp4", "nvfp4", "bitsandbytes", "marlin")
    ):
        return 0.5
    if any(k in q for k in ("fp8", "int8", "w8a8", "mxfp8")):
        return 1.0
    if isinstance(d, str) and d in ("float", "float32"):
        return 4.0
    return 2.0  # bf16 / fp16


def _smallest_gpu(gpus: tuple[GPU, ...]) -> Optional[GPU]:
    known = [g for g in gpus if g.memory_total_mib]
    return min(known, key=lambda g: (g.memory_total_mib or 0, g.index)) if known else None


def estimate(
    env: Environment, launch: LaunchConfig, model_params_b: Optional[float] = None
) -> Union[MemoryEstimate, Unknown]:
    """The headroom estimate for the smallest visible GPU, or why it cannot be made."""
    fw = launch.framework
    if fw not in THRESHOLD_MIB:
        return Unknown("the launch command is not sglang or vLLM")
    gpus = env.gpus
    if isinstance(gpus, Unknown):
        return Unknown(f"GPU memory: {gpus}")
    gpu = _smallest_gpu(gpus)
    if gpu is None or gpu.memory_total_mib is None:
        return Unknown("no GPU with known memory; give --gpu NAME")
    total = float(gpu.memory_total_mib)
    if fw == "sglang":
        given = launch.settings.get("mem_fraction_static")
        if isinstance(given, Unknown):
            return given
        if isinstance(given, (int, float)) and not isinstance(given, bool):
            frac, origin = float(given), launch.origin("mem_fraction_static")
        else:
            frac, origin = sglang_default_mem_fraction(total, launch, launch.framework_version)
    else:
        util = launch.settings.get("gpu_memory_utilization")
        if isinstance(util, Unknown):
            return util
        frac = float(util) if isinstance(util, (int, float)) and not isinstance(util, bool) else 0.9
        origin = launch.origin("gpu_memory_utilization")
    static = total * frac
    headroom = total - static - CONTEXT_OVERHEAD_MIB
    weights = None
    if model_params_b is not None and model_params_b > 0:
        tp, pp = _tp_pp(launch)
        weights = model_params_b * 1e9 * _bytes_per_param(launch) / (1 << 20) / (tp * pp)
    return MemoryEstimate(
        fw, gpu, total, frac, origin, static, headroom, THRESHOLD_MIB[fw], weights
    )


def _gib(mib: float) -> str:
    return f"{mib / GIB:.2f} GiB"


def check_memory(
    env: Environment, launch: Optional[LaunchConfig], model_params_b: Optional[float] = None
) -> list[Finding]:
    """Warn (memory-headroom) when the static pool leaves too little for activations and graphs.

    Needs GPU memory (probe, --gpu NAME or a snapshot) and a launch command. The estimate is
    total x (1 - fraction) minus an assumed 0.5 GiB for the CUDA context and library buffers;
    it cannot see the model's activation size, so it is a guard against obviously tight
    settings, not a prediction.
    """
    if launch is None or launch.framework not in THRESHOLD_MIB:
        return []
    est = estimate(env, launch, model_params_b)
    if isinstance(est, Unknown):
        return [
            Finding(
                code=Code.MEMORY_HEADROOM.value,
                severity=Severity.INFO,
                message=f"could not estimate GPU memory headroom: {est.reason}",
                fix=("give the GPU with --gpu NAME (or check a snapshot taken on the machine)",),
            )
        ]
    findings: list[Finding] = []
    g = est.gpu
    knob = "mem_fraction_static" if est.framework == "sglang" else "gpu_memory_utilization"
    evidence = (
        f"GPU {g.index} {g.name}: {_gib(est.total_mib)} total (smallest visible GPU)",
        f"{knob}={est.fraction:g} ({est.fraction_origin})",
        f"static pool (weights + KV cache) = {_gib(est.static_mib)}",
        f"assumed for the CUDA context and library buffers: {_gib(CONTEXT_OVERHEAD_MIB)}",
        f"left for activations and CUDA-graph capture: ~{_gib(est.headroom_mib)} "
        f"(compat warns below {_gib(est.threshold_mib)})",
    )
    if est.headroom_mib < est.threshold_mib:
        target = est.total_mib - CONTEXT_OVERHEAD_MIB - est.threshold_mib - MARGIN_MIB
        suggested = math.floor(target / est.total_mib * 100) / 100
        fix: list[str] = []
        graphs = launch.settings.get("cuda_graph") is True
        if est.framework == "sglang":
            fix.append(
                f"--mem-fraction-static {suggested:.2f} (leaves ~"
                f"{_gib(est.total_mib * (1 - suggested) - CONTEXT_OVERHEAD_MIB)})"
            )
            if graphs:
                fix.append("--cuda-graph-max-bs 4 (fewer captured batch sizes, smaller graph pool)")
            fix.append(
                "--max-running-requests 8 and --chunked-prefill-size 1024 (smaller activations)"
            )
        else:
            fix.append(f"--gpu-memory-utilization {suggested:.2f}")
            fix.append("--max-num-seqs 8 (fewer concurrent sequences, smaller graphs)")
            if graphs:
                fix.append("--enforce-eager (no CUDA graphs; slower decode) as a last resort")
        when = "at CUDA-graph capture" if graphs else "for activations"
        findings.append(
            Finding(
                code=Code.MEMORY_HEADROOM.value,
                severity=Severity.WARNING,
                message=(
                    f"{est.framework} leaves ~{_gib(est.headroom_mib)} of {_gib(est.total_mib)} "
                    f"on GPU {g.index} ({g.name}) {when}; likely out of memory"
                ),
                evidence=evidence,
                fix=tuple(fix),
                references=("https://docs.sglang.io/advanced_features/hyperparameter_tuning.html",)
                if est.framework == "sglang"
                else ("https://docs.vllm.ai/en/latest/configuration/conserving_memory.html",),
            )
        )
    if est.weights_mib is not None and est.weights_mib > est.static_mib * 0.9:
        findings.append(
            Finding(
                code=Code.MEMORY_HEADROOM.value,
                severity=Severity.WARNING,
                message=(
                    f"model weights (~{_gib(est.weights_mib)} per GPU) leave little or no room "
                    f"for the KV cache in the {_gib(est.static_mib)} static pool"
                ),
                evidence=(
                    *evidence,
                    f"weights: {model_params_b:g}B parameters x "
                    f"{_bytes_per_param(launch):g} bytes / (tp x pp)",
                ),
                fix=(
                    "more GPUs (--tp), a quantized checkpoint, or a larger "
                    f"--{knob.replace('_', '-')}",
                ),
            )
        )
    return findings


def check(ctx: Context) -> list[Finding]:
    return check_memory(ctx.env, ctx.launch)
