"""GPU memory of a launch, per GPU: weights, KV cache and what is left for CUDA-graph capture."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Optional

from msgspec import Struct
from packaging.version import InvalidVersion, Version

from compat.launch import LaunchConfig
from compat.launch.rules import rules_for
from compat.matrix.schema import MemoryData
from compat.model import ModelFacts
from compat.models import GPU

GIB = float(1 << 30)

# sglang's default mem_fraction_static is computed at startup; which computation a release uses
# (and the source line it follows) is in matrices/curated/launch_rules.toml, and the table by
# parallel size of the releases up to 0.4.7 is in generated/launch/sglang.toml (read from each
# release's server_args.py). The formulas below follow the cited lines.


class Term(Struct, frozen=True):
    """One line of the accounting: a quantity in GiB and what it rests on."""

    label: str
    gib: float
    basis: str

    def line(self) -> str:
        return f"{self.label}: {self.gib:.2f} GiB ({self.basis})"


class Estimate(Struct, frozen=True):
    """Where one GPU's memory goes under a launch, as compat estimates it (GiB)."""

    framework: str
    gpu: GPU
    total_gib: float
    knob: str
    fraction: float
    fraction_origin: str
    budget_gib: float
    before: tuple[Term, ...]
    weights: Optional[Term]
    inside: tuple[Term, ...]
    kv_gib: Optional[float]
    kv_token_bytes: Optional[float]
    kv_tokens: Optional[int]
    max_len: Optional[int]
    max_len_origin: str
    kv_max_len_gib: Optional[float]
    start_free_gib: float
    free_at_capture: float
    free_terms: tuple[Term, ...]
    need: tuple[Term, ...]
    startup_short_gib: Optional[float]
    default_free: Optional[float]
    default_origin: str
    kv_elem_basis: str
    unknown: tuple[str, ...]

    @property
    def need_gib(self) -> float:
        return sum(t.gib for t in self.need)


def _int_setting(launch: LaunchConfig, name: str, default: int = 1) -> int:
    v = launch.settings.get(name)
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else default


def _opt_int(launch: LaunchConfig, name: str) -> Optional[int]:
    v = launch.settings.get(name)
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def sglang_tier_defaults(gpu_mem_mib: float, tp: int) -> tuple[int, int]:
    """(chunked_prefill_size, cuda_graph_max_bs) by GPU memory, as in `_handle_gpu_memory_settings`
    (rule sglang-gpu-memory-tiers in launch_rules.toml: server_args.py:567 of sglang 0.5.3)."""
    if gpu_mem_mib < 20 * 1024:  # T4, 4080
        return 2048, 8
    if gpu_mem_mib < 35 * 1024:  # A10, 4090, 5090
        return 2048, 24 if tp < 4 else 80
    if gpu_mem_mib < 60 * 1024:  # A100 40GB, L40
        return 4096, 32 if tp < 4 else 160
    if gpu_mem_mib < 160 * 1024:  # H100, A100 80GB, H20, H200
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


def _formula(version: Optional[Version]) -> tuple[str, str]:
    """(formula, rule description) sglang `version` computes its default fraction with."""
    if version is None:
        return "gpu-memory-settings", "current sglang; version unknown"
    hits = rules_for("sglang", "mem_fraction_static", version)
    if not hits:
        return "gpu-memory-settings", f"no curated rule for sglang {version}; the current rule"
    rule = hits[0]
    return rule.formula, f"rule {rule.id}, {rule.where.split(' (')[0]}"


def _tp_table(version: Optional[Version]) -> Optional[tuple[list[tuple[int, float]], str, str]]:
    """The table by parallel size sglang `version`'s own server_args.py holds (launch data)."""
    from compat.launch.data import launch_data

    data = launch_data("sglang") if version is not None else None
    index = data.index_of(version) if data is not None and version is not None else None
    if data is None or index is None:
        return None
    info = data.release(index)
    if not info.mem_fraction_tp:
        return None
    rows = []
    for row in info.mem_fraction_tp:
        size, _, frac = row.partition(":")
        rows.append((int(size), float(frac)))
    return sorted(rows, reverse=True), info.mem_fraction_tp_by, info.mem_fraction_tp_source


def sglang_default_mem_fraction(
    gpu_mem_mib: float, launch: LaunchConfig, version: Optional[Version]
) -> tuple[float, str]:
    """sglang's default --mem-fraction-static for this GPU and launch, and which rule gave it.

    The rule per release range is curated (launch_rules.toml, with its source line); not
    modeled: multimodal adjustments (adjust_mem_fraction_for_vlm), the H200/B200 special cases
    of 0.4.6.post2-0.4.7, NPU/ROCm branches, and disaggregation-aware reserves (PR #29615).
    """
    tp = _int_setting(launch, "tp_size")
    pp = _int_setting(launch, "pp_size")
    s = launch.settings
    spec = s.get("speculative_algorithm")
    formula, which = _formula(version)
    if formula == "tp-table":
        table = _tp_table(version)
        if table is not None:
            rows, by, where = table
            size = tp * pp if by == "tp_size*pp_size" else tp
            frac = next((f for n, f in rows if size >= n), rows[-1][1])
            label = by.replace("_size", "")
            return frac, f"sglang default for {label}={size} (table at {where} of sglang {version})"
        formula, which = (
            "gpu-memory-settings",
            f"no table read for sglang {version}; the current rule",
        )
    if formula == "gpu-tier-reserve":
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
        return (
            frac,
            f"sglang default: {reserved / 1024:.2f} GiB reserved for this GPU tier ({which})",
        )
    chunk_default, bs_default = sglang_tier_defaults(gpu_mem_mib, tp)
    chunk = _opt_int(launch, "chunked_prefill_size") or chunk_default
    bs = _opt_int(launch, "cuda_graph_max_bs") or bs_default
    reserved = 512.0
    reserved += max(chunk, 2048) * 1.5
    reserved += bs * 2
    reserved += tp * pp / 8 * 1024
    dp = _int_setting(launch, "dp_size")
    if s.get("enable_dp_attention") is True:
        reserved += bs * dp * 3
        if bs > 300:
            reserved += bs * dp * 1.5
    if s.get("piecewise_cuda_graph") is True:
        # piecewise max tokens default to chunked_prefill_size (non-MLA models; 2048 for MLA).
        reserved += _piecewise_token_count(chunk) * 8
    if gpu_mem_mib > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    if spec == "STANDALONE":
        reserved += 6 * 1024
    elif spec is not None and spec != "NGRAM":
        reserved += 2 * 1024
    frac = round((gpu_mem_mib - reserved) / gpu_mem_mib, 3)
    return frac, f"sglang default: {reserved / 1024:.2f} GiB reserved ({which})"


def _fig(
    data: MemoryData,
    name: str,
    framework: Optional[str] = None,
    version: Optional[Version] = None,
    cuda: Optional[Version] = None,
) -> tuple[float, str]:
    f = data.figure(name, framework, version, cuda)
    if f is None:  # memory.toml is validated for these names; an empty database has none
        return 0.0, f"no {name} figure in the database"
    value = f.value / 1024 if f.unit == "MiB" else f.value
    return value, f.source


def kv_element_bytes(
    launch: LaunchConfig, facts: ModelFacts, data: MemoryData
) -> tuple[Optional[float], str]:
    """Bytes per KV-cache element: --kv-cache-dtype, or the model's dtype for `auto`."""
    kv = launch.settings.get("kv_cache_dtype")
    if isinstance(kv, str) and kv not in ("auto", ""):
        size = data.kv_bytes(kv)
        return size, f"--kv-cache-dtype {kv}"
    dtype = launch.settings.get("dtype")
    if isinstance(dtype, str) and dtype not in ("auto", ""):
        size = data.kv_bytes(dtype)
        return size, f"--dtype {dtype}"
    if facts.dtype in ("float32", "float"):
        return 2.0, "auto: a float32 checkpoint is served in 16 bits"
    b = facts.dtype_bytes
    if b is None or b < 2:
        return 2.0, "auto: 16-bit (the model's dtype is not stated)"
    return b, f"auto: the model's {facts.dtype}"


def _kv_layer_width(facts: ModelFacts, tp: int) -> Optional[float]:
    """KV elements per token of one full-attention layer on one GPU (K and V together)."""
    if facts.mla:
        return float((facts.kv_lora_rank or 0) + (facts.qk_rope_head_dim or 0))
    heads, hd = facts.num_kv_heads, facts.head_dim
    if not heads or not hd:
        return None
    return 2.0 * max(1, heads // tp) * hd


def kv_bytes_per_token(facts: ModelFacts, tp: int, pp: int, elem: float) -> Optional[float]:
    """KV-cache bytes per token on one GPU (all cached layers of the largest pipeline stage)."""
    if facts.layer_kv_heads and facts.head_dim:
        total = sum(2.0 * max(1, h // tp) * facts.head_dim for h in facts.layer_kv_heads if h)
        return total * elem / pp
    width = _kv_layer_width(facts, tp)
    layers = facts.kv_layers if facts.kv_layers is not None else facts.num_layers
    if width is None or not layers:
        return None
    return width * math.ceil(layers / pp) * elem


def kv_for_sequence(
    facts: ModelFacts, tp: int, pp: int, elem: float, length: int
) -> Optional[float]:
    """KV-cache bytes one sequence of `length` tokens needs on one GPU; sliding-window layers
    hold at most their window."""
    per = kv_bytes_per_token(facts, tp, pp, elem)
    if per is None:
        return None
    layers = facts.kv_layers if facts.kv_layers is not None else (facts.num_layers or 0)
    if facts.sliding_layers and facts.sliding_window and layers and not facts.layer_kv_heads:
        full = layers - facts.sliding_layers
        share = (full * length + facts.sliding_layers * min(length, facts.sliding_window)) / layers
        return per * share
    return per * length


def estimated_weight_bytes(facts: ModelFacts, data: MemoryData) -> tuple[Optional[int], str]:
    """The checkpoint's bytes: read from its files, else parameters (from the shapes) x bytes."""
    if facts.weight_bytes:
        return facts.weight_bytes, facts.weight_source or "model files"
    if facts.params is None:
        return None, ""
    dtype_b = facts.dtype_bytes or 2.0
    if facts.quantization:
        q = data.quant(facts.quant_format) or data.quant(facts.quantization)
        bits = facts.quant_bits or (q.bits if q else None)
        if bits is None:
            return None, ""
        emb = (
            (facts.vocab_size or 0)
            * (facts.hidden_size or 0)
            * (1 if facts.tie_word_embeddings else 2)
        )
        size = emb * dtype_b + (facts.params - emb) * bits / 8
        return int(size), (
            f"estimated from config.json: {facts.params / 1e9:.2f}B parameters, "
            f"{bits:g}-bit {facts.quantization} layers, 16-bit embeddings"
        )
    return int(facts.params * dtype_b), (
        f"estimated from config.json: {facts.params / 1e9:.2f}B parameters x {dtype_b:g} bytes"
    )


def weights_per_gpu(facts: ModelFacts, launch: LaunchConfig, data: MemoryData) -> Optional[Term]:
    """Weight bytes one GPU holds: the checkpoint split over tp x pp (experts over the expert-
    parallel ranks), without speculative-only layers unless speculative decoding is on."""
    total, basis = estimated_weight_bytes(facts, data)
    if total is None:
        return None
    tp = _int_setting(launch, "tp_size")
    pp = _int_setting(launch, "pp_size")
    ep = _int_setting(launch, "ep_size")
    notes = [basis]
    size = float(total)
    dtype = launch.settings.get("dtype")
    if facts.dtype in ("float32", "float") and not facts.quantization and dtype in (None, "auto"):
        size /= 2
        notes.append("float32 checkpoint loaded in 16 bits")
    if (
        facts.nextn_layers
        and facts.num_layers
        and launch.settings.get("speculative_algorithm") is None
    ):
        size *= facts.num_layers / (facts.num_layers + facts.nextn_layers)
        notes.append(
            f"without the {facts.nextn_layers} MTP layer(s), loaded only for speculative decoding"
        )
    share = facts.expert_share or 0.0
    if facts.moe and ep > tp and share:
        per = size * (1 - share) / (tp * pp) + size * share / (ep * pp)
        notes.append(
            f"experts ({share:.0%} of the parameters) over {ep} expert-parallel ranks, the "
            f"rest over tp={tp}" + (f" x pp={pp}" if pp > 1 else "")
        )
    else:
        per = size / (tp * pp)
        notes.append(f"/ (tp={tp} x pp={pp})" if pp > 1 else f"/ tp={tp}")
    return Term("weights per GPU", per / GIB, "; ".join(notes))


def _intermediate_per_token(facts: ModelFacts) -> Optional[float]:
    if facts.moe and facts.experts_per_token and facts.moe_intermediate_size:
        shared = (facts.num_shared_experts or 0) * facts.moe_intermediate_size
        return float(facts.experts_per_token * facts.moe_intermediate_size + shared)
    if facts.moe and facts.experts_per_token and facts.intermediate_size:
        return float(facts.experts_per_token * facts.intermediate_size)
    return float(facts.intermediate_size) if facts.intermediate_size else None


def forward_activation(facts: ModelFacts, tokens: int, tp: int) -> Optional[float]:
    """Peak activation bytes of one forward pass over `tokens` tokens on one GPU: the MLP's
    gate/up output and its activation (3 x intermediate), plus a few hidden-size buffers."""
    inter = _intermediate_per_token(facts)
    if inter is None or not facts.hidden_size:
        return None
    elem = 2.0
    per_token = elem * (3 * inter / tp + 4 * facts.hidden_size)
    return tokens * per_token


def _cuda_of(torch_cuda: Optional[str]) -> Optional[Version]:
    if not torch_cuda:
        return None
    try:
        return Version(torch_cuda)
    except InvalidVersion:
        return None


def _before(
    framework: str,
    gpu: GPU,
    launch: LaunchConfig,
    data: MemoryData,
    torch_cuda: Optional[str],
    environ: Mapping[str, str],
) -> tuple[float, list[Term]]:
    """GiB gone before the framework sizes its budget (sglang) or outside it (vLLM)."""
    total = (gpu.memory_total_mib or 0) / 1024
    terms: list[Term] = []
    value, src = _fig(data, "driver_reserve")
    terms.append(Term("reserved by the driver (NVML total vs CUDA total)", value, src))
    # NVML's v1 `used` (what the probe reads) counts the driver's reserve too (nvmlMemory_t:
    # "Sum of Reserved and Allocated device memory"): only what is above it belongs to others.
    others = (gpu.memory_used_mib or 0) / 1024 - value
    if others > 0.05:
        terms.append(
            Term(
                "in use by other processes now",
                others,
                f"GPU {gpu.index} as probed: NVML used minus the driver's reserve",
            )
        )
    if environ.get("CUDA_MODULE_LOADING", "").upper() == "EAGER":
        value, src = _fig(data, "cuda_context_eager")
        terms.append(Term("CUDA context (CUDA_MODULE_LOADING=EAGER)", value, src))
    else:
        cuda = _cuda_of(torch_cuda)
        value, src = _fig(data, "cuda_context", cuda=cuda)
        label = f"CUDA context (torch built for CUDA {torch_cuda})" if cuda else "CUDA context"
        terms.append(Term(label, value, src))
    tp = _int_setting(launch, "tp_size")
    pp = _int_setting(launch, "pp_size")
    if framework == "sglang" and tp * pp > 1:
        value, src = _fig(data, "distributed", "sglang")
        terms.append(Term(f"NCCL and custom all-reduce buffers (tp x pp = {tp * pp})", value, src))
    return total, terms


def _max_len(launch: LaunchConfig, facts: Optional[ModelFacts]) -> tuple[Optional[int], str]:
    given = _opt_int(launch, "max_model_len")
    if given:
        return given, launch.origin("max_model_len")
    if facts is not None and facts.max_position_embeddings and not facts.guess:
        return facts.max_position_embeddings, "max_position_embeddings of config.json"
    return None, ""


def estimate(
    framework: str,
    gpu: GPU,
    launch: LaunchConfig,
    facts: Optional[ModelFacts],
    data: MemoryData,
    torch_cuda: Optional[str] = None,
    environ: Optional[Mapping[str, str]] = None,
    fraction: Optional[tuple[float, str]] = None,
) -> Estimate:
    """The memory accounting of one GPU (the smallest visible one) under `launch`.

    `fraction` is (--mem-fraction-static or --gpu-memory-utilization, where it came from); the
    caller resolves defaults. Unknown pieces are left out of the sums and named in `unknown`.
    """
    environ = environ or {}
    version = launch.framework_version
    total, before = _before(framework, gpu, launch, data, torch_cuda, environ)
    tp = _int_setting(launch, "tp_size")
    pp = _int_setting(launch, "pp_size")
    unknown: list[str] = []
    known = facts is not None and not facts.guess
    if facts is None:
        unknown.append("the model (weights, KV cache per token, activations)")
    elif facts.guess:
        unknown.append(
            "the model's attention shape (the KV cache per token): only its name was read"
        )
    weights = weights_per_gpu(facts, launch, data) if facts is not None else None
    if facts is not None and weights is None:
        unknown.append("the weight size")
    elem, elem_basis = (
        kv_element_bytes(launch, facts, data) if known and facts is not None else (None, "")
    )
    per_tok = (
        kv_bytes_per_token(facts, tp, pp, elem) if known and facts is not None and elem else None
    )
    if known and per_tok is None:
        unknown.append("the KV cache per token (the config lacks the attention shape)")
    max_len, max_len_origin = _max_len(launch, facts)
    kv_max = (
        kv_for_sequence(facts, tp, pp, elem, max_len)
        if known and facts is not None and elem and max_len
        else None
    )
    cuda_graph = launch.settings.get("cuda_graph") is not False
    if framework == "sglang":
        return _sglang(
            gpu,
            launch,
            facts,
            data,
            fraction,
            total,
            before,
            weights,
            per_tok,
            elem_basis,
            max_len,
            max_len_origin,
            kv_max,
            unknown,
            cuda_graph,
            tp,
        )
    return _vllm(
        gpu,
        launch,
        facts,
        data,
        fraction,
        total,
        before,
        weights,
        per_tok,
        elem_basis,
        max_len,
        max_len_origin,
        kv_max,
        unknown,
        cuda_graph,
        tp,
        version,
        environ,
    )


def _sglang(
    gpu: GPU,
    launch: LaunchConfig,
    facts: Optional[ModelFacts],
    data: MemoryData,
    fraction: Optional[tuple[float, str]],
    total: float,
    before: list[Term],
    weights: Optional[Term],
    per_tok: Optional[float],
    elem_basis: str,
    max_len: Optional[int],
    max_len_origin: str,
    kv_max: Optional[float],
    unknown: list[str],
    cuda_graph: bool,
    tp: int,
) -> Estimate:
    version = launch.framework_version
    mem_mib = float(gpu.memory_total_mib or 0)
    if fraction is not None:
        frac, origin = fraction
    else:
        frac, origin = sglang_default_mem_fraction(mem_mib, launch, version)
        vlm = data.figure("vlm_fraction_factor", "sglang", version)
        if facts is not None and facts.multimodal and vlm is not None:
            frac = round(frac * vlm.value, 3)
            origin += f", x {vlm.value:g} for a multimodal model"
    # sglang sizes the pool from the free memory measured before loading (model_runner's
    # total_gpu_memory): rest = free_after_load - total_gpu_memory x (1 - fraction)
    # (model_runner_kv_cache_mixin.py, profile_max_num_token).
    t0 = total - sum(t.gib for t in before)
    static = t0 * frac
    kv = static - weights.gib if weights is not None else None
    tokens = int(kv * GIB / per_tok) if kv is not None and per_tok and kv > 0 else None
    free_terms = [
        Term(
            f"outside the static pool: {t0:.2f} GiB free at start x (1 - {frac:g})",
            t0 * (1 - frac),
            "model_runner_kv_cache_mixin.py, profile_max_num_token",
        )
    ]
    free = t0 * (1 - frac)
    chunk_default, bs_default = sglang_tier_defaults(mem_mib, tp)
    if max_len and tokens is not None:
        ctx = max_len
        reqs = _opt_int(launch, "max_running_requests")
        basis = (
            "--max-running-requests"
            if reqs
            else "sglang's default: tokens / context x 512 in [2048, 4096]"
        )
        reqs = reqs or min(max(int(tokens / ctx * 512), 2048), 4096)
        table = reqs * (ctx + 4) * 4 / GIB
        free_terms.append(
            Term(
                f"request-to-token table ({reqs} requests x {ctx} positions x 4 bytes)",
                -table,
                basis + "; model_runner_kv_cache_mixin.py",
            )
        )
        free -= table
    else:
        unknown.append("the request-to-token table (needs the model's context length)")
    backend = launch.settings.get("attention_backend")
    cc = gpu.compute_capability
    if (
        backend in ("auto", None)
        and cc is not None
        and cc[0] == 9
        and version is not None
        and data.figure("fa3_default_hopper", "sglang", version) is not None
    ):
        backend = "fa3 (sglang's default on Hopper)"
    if backend in ("flashinfer", "auto", None):
        value, src = _fig(data, "pre_capture", "sglang")
        label = "attention workspace and buffers before capture (FlashInfer)"
    else:
        value, src = _fig(data, "pre_capture_other", "sglang")
        label = f"attention buffers before capture ({backend})"
    free_terms.append(Term(label, -value, src))
    free -= value
    need: list[Term] = []
    if cuda_graph:
        bs = _opt_int(launch, "cuda_graph_max_bs") or bs_default
        moe = bool(facts and facts.moe)
        per_bs, src = _fig(data, "graph_per_batch_moe" if moe else "graph_per_batch", "sglang")
        need.append(
            Term(
                f"CUDA graphs up to batch size {bs} ({'MoE' if moe else 'dense'})", per_bs * bs, src
            )
        )
    chunk = _opt_int(launch, "chunked_prefill_size") or chunk_default
    act = forward_activation(facts, chunk, tp) if facts is not None and not facts.guess else None
    if act is not None:
        need.append(
            Term(
                f"prefill activations for a {chunk}-token chunk",
                act / GIB,
                "3 x intermediate + 4 x hidden per token, 16-bit",
            )
        )
    err, src = _fig(data, "capture_error", "sglang")
    need.append(Term("margin for compat's own estimate error", err, src))
    # What the newest sglang's own sizing rule would leave here: the yardstick when the model
    # cannot be read and its activations cannot be estimated.
    dfrac, _ = sglang_default_mem_fraction(mem_mib, launch, None)
    default_origin = (
        f"{(1 - dfrac) * 100:.1f}% of the starting free memory, the default of sglang >= "
        "0.5.3 for this GPU (rule sglang-mem-fraction-gpu-memory-settings)"
    )
    default_free = t0 * (1 - dfrac) - value
    return Estimate(
        framework="sglang",
        gpu=gpu,
        total_gib=total,
        knob="mem_fraction_static",
        fraction=frac,
        fraction_origin=origin,
        budget_gib=static,
        before=tuple(before),
        weights=weights,
        inside=(),
        kv_gib=kv,
        kv_token_bytes=per_tok,
        kv_tokens=tokens,
        max_len=max_len,
        max_len_origin=max_len_origin,
        kv_max_len_gib=kv_max / GIB if kv_max is not None else None,
        start_free_gib=t0,
        free_at_capture=free,
        free_terms=tuple(free_terms),
        need=tuple(need),
        startup_short_gib=None,
        default_free=default_free,
        default_origin=default_origin,
        kv_elem_basis=elem_basis,
        unknown=tuple(unknown),
    )


def _vllm(
    gpu: GPU,
    launch: LaunchConfig,
    facts: Optional[ModelFacts],
    data: MemoryData,
    fraction: Optional[tuple[float, str]],
    total: float,
    before: list[Term],
    weights: Optional[Term],
    per_tok: Optional[float],
    elem_basis: str,
    max_len: Optional[int],
    max_len_origin: str,
    kv_max: Optional[float],
    unknown: list[str],
    cuda_graph: bool,
    tp: int,
    version: Optional[Version],
    environ: Mapping[str, str],
) -> Estimate:
    frac, origin = fraction or (0.9, "vLLM default")
    reserve = before[0].gib
    cuda_total = total - reserve
    # vLLM V1 takes a snapshot after creating its CUDA context: requested = total x utilization
    # must fit in what is free then; the KV cache gets requested - (weights + activation peak +
    # non-torch memory [+ CUDA graphs from 0.21]) (gpu_worker.determine_available_memory).
    requested = cuda_total * frac
    outside_before = sum(t.gib for t in before[1:])
    free_start = cuda_total - outside_before
    v1 = version is not None and data.figure("v1_engine", "vllm", version) is not None
    short = requested - free_start if v1 and requested > free_start else None
    inside: list[Term] = []
    pp = _int_setting(launch, "pp_size")
    name = "non_torch" if tp * pp > 1 else "non_torch_single"
    value, src = _fig(data, name, "vllm", version)
    inside.append(Term("non-torch memory (NCCL, cuBLAS)", value, src))
    act: Optional[float] = None
    if facts is not None and not facts.guess:
        seqs = _opt_int(launch, "max_running_requests")
        large = (
            (gpu.memory_total_mib or 0) >= 70 * 1024
            and "a100" not in gpu.name.lower()
            and data.figure("default_max_num_seqs_large", "vllm", version) is not None
        )
        default_seqs, _ = _fig(
            data, "default_max_num_seqs_large" if large else "default_max_num_seqs", "vllm", version
        )
        seqs = seqs or int(default_seqs)
        copies, csrc = _fig(data, "sampler_copies", "vllm")
        sampler = seqs * (facts.vocab_size or 0) * 4 * copies
        tokens = _opt_int(launch, "chunked_prefill_size") or (8192 if large else 2048)
        fwd = forward_activation(facts, tokens, tp) or 0.0
        if sampler >= fwd:
            act = sampler
            inside.append(
                Term(
                    f"activation peak (sampler: {seqs} sequences x vocab {facts.vocab_size} "
                    f"x 4 bytes x {copies:g})",
                    act / GIB,
                    csrc,
                )
            )
        else:
            act = fwd
            inside.append(
                Term(
                    f"activation peak (forward over {tokens} tokens)",
                    act / GIB,
                    "3 x intermediate + 4 x hidden per token, 16-bit",
                )
            )
    else:
        unknown.append("the activation peak (needs the model's shapes)")
    graph_gib = 0.0
    graph_src = ""
    graph_in_budget = False
    if cuda_graph:
        graph_gib, graph_src = _fig(data, "graph", "vllm", version)
        graph_in_budget = (
            version is not None
            and data.figure("graph_in_budget", "vllm", version) is not None
            and environ.get("VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS") != "0"
        )
        if graph_in_budget:
            inside.append(
                Term(
                    "CUDA graphs (profiled inside the budget from vLLM 0.21)", graph_gib, graph_src
                )
            )
    kv = None
    if weights is not None and act is not None:
        kv = requested - weights.gib - sum(t.gib for t in inside)
    tokens_kv = int(kv * GIB / per_tok) if kv is not None and per_tok and kv > 0 else None
    free_terms = [
        Term(
            f"CUDA total ({total:.2f} GiB minus the driver's reserve)", cuda_total, before[0].basis
        ),
        Term(f"requested by vLLM (x {frac:g})", -requested, origin),
    ]
    free_terms += [Term(t.label, -t.gib, t.basis) for t in before[1:]]
    free = cuda_total - requested - outside_before
    need: list[Term] = []
    if cuda_graph and not graph_in_budget:
        need.append(Term("CUDA graphs (captured outside the budget)", graph_gib, graph_src))
    err, esrc = _fig(data, "capture_error", "vllm")
    need.append(Term("margin for compat's own estimate error", err, esrc))
    return Estimate(
        framework="vllm",
        gpu=gpu,
        total_gib=total,
        knob="gpu_memory_utilization",
        fraction=frac,
        fraction_origin=origin,
        budget_gib=requested,
        before=tuple(before),
        weights=weights,
        inside=tuple(inside),
        kv_gib=kv,
        kv_token_bytes=per_tok,
        kv_tokens=tokens_kv,
        max_len=max_len,
        max_len_origin=max_len_origin,
        kv_max_len_gib=kv_max / GIB if kv_max is not None else None,
        start_free_gib=free_start,
        free_at_capture=free,
        free_terms=tuple(free_terms),
        need=tuple(need),
        startup_short_gib=short,
        default_free=None,
        default_origin="",
        kv_elem_basis=elem_basis,
        unknown=tuple(unknown),
    )
