"""The served model's facts (architecture, MoE, attention shape, dtype, quantization, size)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Optional

from msgspec import Struct

# Bytes per element of the dtypes checkpoints declare (config.json `torch_dtype` / `dtype`).
DTYPE_BYTES: dict[str, float] = {
    "float32": 4,
    "float": 4,
    "fp32": 4,
    "bfloat16": 2,
    "float16": 2,
    "half": 2,
    "fp16": 2,
    "bf16": 2,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
}

# Keys under which the families people serve give their routed-expert count and top-k.
# Mixtral, GPT-OSS, MiniMax, Llama 4: num_local_experts; Qwen2/3-MoE, Qwen3-Next, OLMoE:
# num_experts; DeepSeek V2/V3/R1, Kimi K2, GLM-4.5, Nemotron-H MoE: n_routed_experts;
# ERNIE 4.5: moe_num_experts.
_EXPERT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
_TOPK_KEYS = ("num_experts_per_tok", "experts_per_token", "moe_k", "num_experts_per_token")
_SHARED_KEYS = ("n_shared_experts", "num_shared_experts", "moe_num_shared_experts")


class ModelFacts(Struct, frozen=True):
    """What compat knows about the model a launch serves, and where each fact came from.

    `None` is "could not tell"; `guess` marks facts read from the model's name only.
    """

    source: str
    guess: bool = False
    architectures: tuple[str, ...] = ()
    model_type: Optional[str] = None
    moe: Optional[bool] = None
    num_experts: Optional[int] = None
    experts_per_token: Optional[int] = None
    num_shared_experts: Optional[int] = None
    num_layers: Optional[int] = None
    hidden_size: Optional[int] = None
    intermediate_size: Optional[int] = None
    moe_intermediate_size: Optional[int] = None
    vocab_size: Optional[int] = None
    num_attention_heads: Optional[int] = None
    num_kv_heads: Optional[int] = None
    head_dim: Optional[int] = None
    # MLA (DeepSeek V2/V3, Kimi K2): the cache holds kv_lora_rank + qk_rope_head_dim per layer.
    kv_lora_rank: Optional[int] = None
    qk_rope_head_dim: Optional[int] = None
    # Layers that keep a KV cache (full or sliding-window attention); None: every layer.
    # Linear-attention and Mamba layers (Qwen3-Next, Nemotron-H, MiniMax-M1) keep a fixed state.
    kv_layers: Optional[int] = None
    sliding_layers: int = 0
    sliding_window: Optional[int] = None
    # Per-layer KV heads where layers differ (Llama-Nemotron block_configs); else empty.
    layer_kv_heads: tuple[int, ...] = ()
    # Layers in the checkpoint that serve only speculative decoding (DeepSeek MTP).
    nextn_layers: int = 0
    dtype: Optional[str] = None
    quantization: Optional[str] = None
    # Finer than the method where the config says: nvfp4, mxfp4, fp8, int4, int8.
    quant_format: Optional[str] = None
    quant_bits: Optional[float] = None
    weight_bytes: Optional[int] = None
    weight_source: str = ""
    params: Optional[int] = None
    # Share of the parameters in routed experts (for expert parallelism), from the shapes.
    expert_share: Optional[float] = None
    max_position_embeddings: Optional[int] = None
    multimodal: bool = False
    tie_word_embeddings: bool = False
    notes: tuple[str, ...] = ()

    @property
    def mla(self) -> bool:
        return bool(self.kv_lora_rank)

    @property
    def dtype_bytes(self) -> Optional[float]:
        return DTYPE_BYTES.get(self.dtype or "")

    def describe(self) -> str:
        """`Qwen3MoeForCausalLM (qwen3_moe), MoE 128 experts top-8, bfloat16` for evidence."""
        arch = (
            self.architectures[0]
            if self.architectures
            else (self.model_type or "unknown architecture")
        )
        parts = [arch + (f" ({self.model_type})" if self.model_type and self.architectures else "")]
        if self.moe:
            e = f"MoE {self.num_experts} experts" if self.num_experts else "MoE"
            parts.append(e + (f" top-{self.experts_per_token}" if self.experts_per_token else ""))
        elif self.moe is False:
            parts.append("dense")
        if self.quantization:
            q = self.quantization
            parts.append(
                q
                + (f"/{self.quant_format}" if self.quant_format and self.quant_format != q else "")
            )
        elif self.dtype:
            parts.append(self.dtype)
        if self.multimodal:
            parts.append("multimodal")
        return ", ".join(parts)


# Every size, count and length in a real config fits in an int32 (vocabularies of 256k, context
# lengths of 10M); a larger or negative one is not a fact about a model. Layer counts are
# bounded far tighter: per-layer estimates loop over them.
MAX_CONFIG_INT = 2**31 - 1
MAX_LAYERS = 10_000


def _int(d: Mapping[str, Any], *keys: str, limit: int = MAX_CONFIG_INT) -> Optional[int]:
    for k in keys:
        v = d.get(k)
        if isinstance(v, bool):
            continue
        if isinstance(v, float) and v.is_integer() and abs(v) <= limit:
            v = int(v)
        if isinstance(v, int):
            return v if 0 <= v <= limit else None
    return None


def _str(d: Mapping[str, Any], *keys: str) -> Optional[str]:
    for k in keys:
        v = d.get(k)
        if isinstance(v, str) and v:
            return v
    return None


def text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The language model's part of a config: nested `text_config` / `llm_config` for multimodal
    models (Gemma 3/4, Llama 4, Qwen2.5-VL in newer transformers, InternVL), else the config."""
    for key in ("text_config", "llm_config", "language_config", "thinker_config"):
        sub = config.get(key)
        if isinstance(sub, dict):
            if key == "thinker_config":  # Qwen-Omni: thinker_config.text_config
                inner = sub.get("text_config")
                if isinstance(inner, dict):
                    return inner
                continue
            return sub
    return config


_MULTIMODAL_KEYS = (
    "vision_config",
    "audio_config",
    "vision_tower",
    "mm_vision_tower",
    "visual",
    "vision_encoder",
    "thinker_config",
)


def quantization_of(
    config: Mapping[str, Any], extra: Optional[Mapping[str, Any]] = None
) -> tuple[Optional[str], Optional[str], Optional[float]]:
    """(method, format, bits) from `quantization_config`, or ModelOpt's hf_quant_config.json."""
    q = config.get("quantization_config")
    if not isinstance(q, dict):
        tc = text_config(config)
        q = tc.get("quantization_config") if tc is not config else None
    if not isinstance(q, dict) and isinstance(extra, dict):
        inner = extra.get("quantization")
        if isinstance(inner, dict):
            q = {"quant_method": "modelopt", **inner}
    if not isinstance(q, dict):
        return None, None, None
    method = _str(q, "quant_method", "quantization_method")
    method = method.lower() if method else None
    if method == "compressed_tensors":
        method = "compressed-tensors"
    bits_raw = q.get("bits", q.get("w_bit", q.get("weight_bits")))
    bits: Optional[float] = (
        float(bits_raw)
        if isinstance(bits_raw, (int, float)) and not isinstance(bits_raw, bool)
        else None
    )
    fmt: Optional[str] = None
    algo = _str(q, "quant_algo")
    if algo:
        a = algo.lower()
        fmt = "nvfp4" if "nvfp4" in a or a == "fp4" else ("fp8" if "fp8" in a else a)
    if method == "compressed-tensors":
        f = (_str(q, "format") or "").lower()
        groups = q.get("config_groups")
        wbits = None
        wtype = None
        if isinstance(groups, dict):
            for g in groups.values():
                w = g.get("weights") if isinstance(g, dict) else None
                if isinstance(w, dict):
                    wbits = _int(w, "num_bits") or wbits
                    wtype = _str(w, "type") or wtype
        if "nvfp4" in f:
            fmt, bits = "nvfp4", 4.0
        elif "mxfp4" in f:
            fmt, bits = "mxfp4", 4.0
        elif "float" in f or (wtype == "float" and wbits == 8):
            fmt, bits = "fp8", 8.0
        elif wbits:
            fmt, bits = f"int{wbits}", float(wbits)
    elif method in ("fp8", "fbgemm_fp8", "fp8_pertensor"):
        fmt, bits = "fp8", 8.0
    elif method == "mxfp4":
        fmt, bits = "mxfp4", 4.0
    elif method in ("awq", "gptq", "awq_marlin", "gptq_marlin"):
        fmt = f"int{int(bits)}" if bits else "int4"
        bits = bits or 4.0
    elif method == "bitsandbytes":
        if q.get("load_in_4bit") is True:
            fmt, bits = "int4", 4.0
        elif q.get("load_in_8bit") is True:
            fmt, bits = "int8", 8.0
    elif method == "modelopt_fp4":
        fmt, bits = "nvfp4", 4.0
    elif method == "modelopt" and fmt in ("nvfp4", "fp8"):
        bits = 4.0 if fmt == "nvfp4" else 8.0
    return method, fmt, bits


def _layer_pattern(
    tc: Mapping[str, Any], layers: Optional[int]
) -> tuple[Optional[int], int, tuple[int, ...], list[str]]:
    """(layers with a KV cache, sliding-window layers among them, per-layer KV heads, notes)."""
    notes: list[str] = []
    lt = tc.get("layer_types")
    if isinstance(lt, list) and lt and all(isinstance(x, str) for x in lt):
        kinds = [x.lower() for x in lt]
        sliding = sum(1 for x in kinds if "sliding" in x or "chunked" in x)
        full = sum(1 for x in kinds if x in ("full_attention", "attention", "global_attention"))
        kv = full + sliding
        if kv < len(kinds):
            notes.append(
                f"{len(kinds) - kv} of {len(kinds)} layers keep no KV cache (linear attention "
                "or Mamba; their fixed per-request state is not counted)"
            )
        return kv, sliding, (), notes
    pattern = tc.get("hybrid_override_pattern")
    if isinstance(pattern, str) and pattern:
        kv = pattern.count("*")
        notes.append(
            f"hybrid model: {kv} of {len(pattern)} layers are attention layers; the Mamba "
            "state is not counted"
        )
        return kv, 0, (), notes
    interval = _int(tc, "full_attention_interval")
    if interval and layers:
        kv = layers // interval
        notes.append(
            f"{layers - kv} of {layers} layers use linear attention (no KV cache; their "
            "fixed state is not counted)"
        )
        return kv, 0, (), notes
    blocks = tc.get("block_configs")
    if isinstance(blocks, list) and blocks:
        heads = _int(tc, "num_attention_heads")
        per: list[int] = []
        for b in blocks:
            att = b.get("attention") if isinstance(b, dict) else None
            if not isinstance(att, dict) or att.get("no_op") or att.get("replace_with_linear"):
                per.append(0)
                continue
            group = _int(att, "n_heads_in_group")
            per.append(heads // group if heads and group else 0)
        return sum(1 for h in per if h), 0, tuple(per), notes
    pat = _int(tc, "sliding_window_pattern")
    window = _int(tc, "sliding_window")
    if pat and layers and window:
        # Gemma 3 (older configs): every pat-th layer is global, the rest slide.
        full = layers // pat
        return layers, layers - full, (), notes
    return None, 0, (), notes


def _estimate_params(
    tc: Mapping[str, Any], f: dict[str, Any]
) -> tuple[Optional[int], Optional[float]]:
    """Parameter count from the shapes (standard decoder blocks), and the routed experts' share."""
    h, layers, vocab = f["hidden_size"], f["num_layers"], f["vocab_size"]
    heads, kvh = f["num_attention_heads"], f["num_kv_heads"]
    if not (h and layers and vocab and heads):
        return None, None
    hd = f["head_dim"] or h // heads
    kvh = kvh or heads
    if f["kv_lora_rank"]:
        qr = _int(tc, "q_lora_rank")
        nope = _int(tc, "qk_nope_head_dim") or 128
        rope = f["qk_rope_head_dim"] or 64
        vd = _int(tc, "v_head_dim") or 128
        q = (h * qr + qr * heads * (nope + rope)) if qr else h * heads * (nope + rope)
        attn = (
            q
            + h * (f["kv_lora_rank"] + rope)
            + f["kv_lora_rank"] * heads * (nope + vd)
            + heads * vd * h
        )
    else:
        attn = h * heads * hd + 2 * h * kvh * hd + heads * hd * h
    inter = f["intermediate_size"] or 4 * h
    experts = f["num_experts"] or 0
    moe_inter = f["moe_intermediate_size"] or inter
    shared = f["num_shared_experts"] or 0
    shared_inter = _int(tc, "shared_expert_intermediate_size")
    dense_layers = _int(tc, "first_k_dense_replace") or 0
    step = _int(tc, "interleave_moe_layer_step", "decoder_sparse_step") or 1
    mlp_only = tc.get("mlp_only_layers")
    dense_only = (
        {i for i in mlp_only if isinstance(i, int)} if isinstance(mlp_only, list) else set()
    )
    dense_inter = _int(tc, "intermediate_size_mlp") or inter
    expert_params = 0
    total = 0
    for i in range(layers):
        if experts > 1 and i >= dense_layers and (i + 1) % step == 0 and i not in dense_only:
            routed = experts * 3 * h * moe_inter
            expert_params += routed
            shared_params = 3 * h * shared_inter if shared_inter else shared * 3 * h * moe_inter
            total += attn + routed + shared_params + h * experts
        else:
            total += attn + 3 * h * (dense_inter if experts > 1 else inter)
    emb = vocab * h * (1 if f["tie_word_embeddings"] else 2)
    total += emb + (2 * layers + 1) * h  # RMSNorm weights: two per layer and a final one
    return total, (expert_params / total if total else None)


def _vision_params(config: Mapping[str, Any]) -> int:
    """Parameters of a ViT-style vision tower (vision_config): layers x (4 h^2 + 2 h x inter)."""
    v = config.get("vision_config")
    if not isinstance(v, dict):
        return 0
    h = _int(v, "hidden_size", "embed_dim", "width")
    layers = _int(v, "num_hidden_layers", "depth", "layers", limit=MAX_LAYERS)
    inter = _int(v, "intermediate_size", "mlp_dim") or (4 * h if h else None)
    if not (h and layers and inter):
        return 0
    return layers * (4 * h * h + 2 * h * inter)


def facts_from_config(
    config: Mapping[str, Any],
    *,
    source: str,
    weight_bytes: Optional[int] = None,
    weight_source: str = "",
    quant_extra: Optional[Mapping[str, Any]] = None,
    notes: tuple[str, ...] = (),
) -> ModelFacts:
    """Derive the facts from a model's config.json (already parsed), across the config shapes of
    the dense, MoE, MLA, hybrid and multimodal families sglang and vLLM serve."""
    tc = text_config(config)
    archs_raw = config.get("architectures") or tc.get("architectures") or ()
    archs = tuple(a for a in archs_raw if isinstance(a, str)) if isinstance(archs_raw, list) else ()
    model_type = _str(config, "model_type") or _str(tc, "model_type")
    layers = _int(tc, "num_hidden_layers", "n_layer", "num_layers", "n_layers", limit=MAX_LAYERS)
    hidden = _int(tc, "hidden_size", "d_model", "n_embd")
    heads = _int(tc, "num_attention_heads", "n_head", "num_heads")
    kv_heads = _int(tc, "num_key_value_heads", "num_kv_heads", "n_head_kv", "multi_query_group_num")
    if kv_heads is None and tc.get("multi_query") is True:
        kv_heads = 1
    if kv_heads is None:
        kv_heads = heads
    head_dim = _int(tc, "head_dim", "attention_head_dim", "kv_channels")
    if head_dim is None and hidden and heads:
        head_dim = hidden // heads
    experts = _int(tc, *_EXPERT_KEYS)
    topk = _int(tc, *_TOPK_KEYS)
    shared = _int(tc, *_SHARED_KEYS)
    moe_arch = any(
        re.search(r"moe|mixtral|deepseekv[23]|kimi|gptoss|llama4|minimax", a, re.I) for a in archs
    )
    moe: Optional[bool]
    if experts is not None:
        moe = experts > 1
    elif moe_arch:
        moe = True
    elif archs or model_type:
        moe = False
    else:
        moe = None
    dtype = _str(tc, "torch_dtype", "dtype") or _str(config, "torch_dtype", "dtype")
    method, fmt, bits = quantization_of(config, quant_extra)
    kv_layers, sliding, per_layer, layer_notes = _layer_pattern(tc, layers)
    mm = (
        any(k in config for k in _MULTIMODAL_KEYS)
        or tc is not config
        or any(re.search(r"ConditionalGeneration|VL|Vision|Omni|Llava", a) for a in archs)
    )
    max_pos = _int(
        tc, "max_position_embeddings", "max_sequence_length", "seq_length", "n_positions"
    )
    f: dict[str, Any] = {
        "hidden_size": hidden,
        "num_layers": layers,
        "vocab_size": _int(tc, "vocab_size") or _int(config, "vocab_size"),
        "num_attention_heads": heads,
        "num_kv_heads": kv_heads,
        "head_dim": head_dim,
        "kv_lora_rank": _int(tc, "kv_lora_rank"),
        "qk_rope_head_dim": _int(tc, "qk_rope_head_dim"),
        "intermediate_size": _int(tc, "intermediate_size", "ffn_hidden_size", "n_inner"),
        "moe_intermediate_size": _int(tc, "moe_intermediate_size", "expert_intermediate_size"),
        "num_experts": experts,
        "num_shared_experts": shared,
        # transformers' PretrainedConfig ties the embeddings unless the config says otherwise.
        "tie_word_embeddings": bool(
            tc.get("tie_word_embeddings", config.get("tie_word_embeddings", True))
        ),
    }
    params, expert_share = _estimate_params(tc, f)
    vision = _vision_params(config)
    if params is not None and vision:
        share = (expert_share or 0.0) * params
        params += vision
        expert_share = share / params
    if f["kv_lora_rank"] and f["qk_rope_head_dim"] is None:
        f["qk_rope_head_dim"] = 64
    return ModelFacts(
        source=source,
        guess=False,
        architectures=archs,
        model_type=model_type,
        moe=moe,
        num_experts=experts,
        experts_per_token=topk,
        num_shared_experts=shared,
        num_layers=layers,
        hidden_size=hidden,
        intermediate_size=f["intermediate_size"],
        moe_intermediate_size=f["moe_intermediate_size"],
        vocab_size=f["vocab_size"],
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        kv_lora_rank=f["kv_lora_rank"],
        qk_rope_head_dim=f["qk_rope_head_dim"],
        kv_layers=kv_layers,
        sliding_layers=sliding,
        sliding_window=_int(tc, "sliding_window"),
        layer_kv_heads=per_layer,
        nextn_layers=_int(tc, "num_nextn_predict_layers", limit=MAX_LAYERS) or 0,
        dtype=dtype.lower() if dtype else None,
        quantization=method,
        quant_format=fmt,
        quant_bits=bits,
        weight_bytes=weight_bytes,
        weight_source=weight_source,
        params=params,
        expert_share=expert_share,
        max_position_embeddings=max_pos,
        multimodal=mm,
        tie_word_embeddings=f["tie_word_embeddings"],
        notes=tuple(notes) + tuple(layer_notes),
    )


_SIZE = re.compile(r"(?<![A-Za-z0-9.])([0-9]+(?:\.[0-9]+)?)\s*([BbMm])(?![A-Za-z0-9])")
_ACTIVE = re.compile(r"(?<![A-Za-z0-9])[Aa]([0-9]+(?:\.[0-9]+)?)[Bb](?![A-Za-z0-9])")
_EXPERT_GRID = re.compile(r"(?<![A-Za-z0-9])([0-9]+)x([0-9]+(?:\.[0-9]+)?)[Bb](?![A-Za-z0-9])")
_NAME_QUANT = (
    ("nvfp4", "nvfp4", 4.0),
    ("mxfp4", "mxfp4", 4.0),
    ("fp8", "fp8", 8.0),
    ("awq", "awq", 4.0),
    ("gptq", "gptq", 4.0),
    ("int4", "int4", 4.0),
    ("int8", "int8", 8.0),
    ("w4a16", "int4", 4.0),
    ("w8a8", "int8", 8.0),
    ("bnb-4bit", "bitsandbytes", 4.0),
)


def guess_from_name(name: str) -> Optional[ModelFacts]:
    """Parameter count (and MoE, quantization) from a name such as `Qwen2.5-72B-Instruct`,
    `Qwen3-30B-A3B-FP8` or `Mixtral-8x7B`; None when the name holds no size. A guess: the
    weights are taken as parameters x 2 bytes (x 1 for FP8/INT8 names, x 0.5 for 4-bit ones)."""
    base = name.rstrip("/").rsplit("/", 1)[-1]
    params: Optional[float] = None
    moe: Optional[bool] = None
    grid = _EXPERT_GRID.search(base)
    if grid:
        # Mixtral-8x7B: 8 experts of ~7B share attention; the total is about 6.7x, not 8x
        # (46.7B published). A name cannot tell that: take n x size as the upper bound.
        params = int(grid.group(1)) * float(grid.group(2)) * 1e9
        moe = True
    else:
        # "A3B" (active parameters) never matches _SIZE: a letter precedes its number.
        total = [(float(m.group(1)), m.group(2).upper()) for m in _SIZE.finditer(base)]
        if not total:
            return None
        moe = True if _ACTIVE.search(base) else None
        value, unit = total[0]
        params = value * (1e9 if unit == "B" else 1e6)
    low = base.lower()
    method = fmt = None
    bits = 16.0
    for key, m, b in _NAME_QUANT:
        if key in low:
            method, fmt, bits = m, m if m in ("nvfp4", "mxfp4", "fp8") else None, b
            break
    weight = int(params * bits / 8)
    return ModelFacts(
        source=f"guess from the name {name!r}",
        guess=True,
        moe=moe,
        quantization=method,
        quant_format=fmt,
        quant_bits=bits if method else None,
        weight_bytes=weight,
        weight_source=f"guess: {params / 1e9:g}B parameters x {bits / 8:g} bytes from the name",
        params=int(params),
        notes=(
            "no config.json could be read: the size is read from the name, the attention "
            "shape (KV cache) is unknown",
        ),
    )
