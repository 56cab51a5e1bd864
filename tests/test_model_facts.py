"""compat.model: facts from config.json across the families people serve, and name guesses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from compat.model import facts_from_config, guess_from_name, quantization_of

HUB = Path(__file__).parent / "assets" / "models" / "hub"
REV = "0123456789abcdef0123456789abcdef01234567"


def config(repo: str) -> dict[str, Any]:
    path = HUB / ("models--" + repo.replace("/", "--")) / "snapshots" / REV / "config.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_dense_llama() -> None:
    f = facts_from_config(config("meta-llama/Llama-3.1-8B-Instruct"), source="c")
    assert (f.moe, f.num_layers, f.num_attention_heads, f.num_kv_heads, f.head_dim) == (
        False,
        32,
        32,
        8,
        128,
    )
    assert f.dtype == "bfloat16" and f.quantization is None and not f.multimodal
    assert f.params == 8_030_261_248  # Llama 3.1 8B's published count
    assert f.max_position_embeddings == 131072
    assert f.describe() == "LlamaForCausalLM (llama), dense, bfloat16"


def test_qwen3_moe() -> None:
    f = facts_from_config(config("Qwen/Qwen3-30B-A3B"), source="c")
    assert (f.moe, f.num_experts, f.experts_per_token, f.moe_intermediate_size) == (
        True,
        128,
        8,
        768,
    )
    assert f.params is not None and 30.4e9 < f.params < 30.6e9  # 30.5B published
    assert f.expert_share is not None and f.expert_share > 0.9
    assert f.describe() == "Qwen3MoeForCausalLM (qwen3_moe), MoE 128 experts top-8, bfloat16"


def test_deepseek_v3_mla_moe_fp8() -> None:
    f = facts_from_config(config("deepseek-ai/DeepSeek-V3"), source="c")
    assert f.moe and f.num_experts == 256 and f.num_shared_experts == 1 and f.experts_per_token == 8
    assert f.mla and f.kv_lora_rank == 512 and f.qk_rope_head_dim == 64
    assert f.nextn_layers == 1
    assert (f.quantization, f.quant_format, f.quant_bits) == ("fp8", "fp8", 8.0)
    assert f.params is not None and 670e9 < f.params < 672e9  # 671B without the MTP layer


def test_gpt_oss_sliding_layers_and_mxfp4() -> None:
    f = facts_from_config(config("openai/gpt-oss-20b"), source="c")
    assert f.moe and f.num_experts == 32 and f.experts_per_token == 4
    assert (f.kv_layers, f.sliding_layers, f.sliding_window) == (24, 12, 128)
    assert (f.quantization, f.quant_format) == ("mxfp4", "mxfp4")


def test_gemma3_multimodal_nested_text_config() -> None:
    f = facts_from_config(config("google/gemma-3-4b-it"), source="c")
    assert f.multimodal and f.model_type == "gemma3" and f.moe is False
    assert (f.num_layers, f.num_kv_heads, f.head_dim) == (34, 4, 256)
    assert (f.kv_layers, f.sliding_layers) == (34, 29)  # every 6th layer global
    assert f.params is not None and 4.2e9 < f.params < 4.4e9  # 3.9B language model + 0.4B vision


def test_awq() -> None:
    f = facts_from_config(config("Qwen/Qwen2.5-7B-Instruct-AWQ"), source="c")
    assert (f.quantization, f.quant_format, f.quant_bits, f.dtype) == (
        "awq",
        "int4",
        4.0,
        "float16",
    )


@pytest.mark.parametrize(
    ("cfg", "moe", "experts", "topk"),
    [
        # Mixtral
        (
            {
                "architectures": ["MixtralForCausalLM"],
                "num_local_experts": 8,
                "num_experts_per_tok": 2,
            },
            True,
            8,
            2,
        ),
        # GLM-4.5
        (
            {
                "architectures": ["Glm4MoeForCausalLM"],
                "n_routed_experts": 160,
                "num_experts_per_tok": 8,
                "n_shared_experts": 1,
            },
            True,
            160,
            8,
        ),
        # MiniMax-M2
        (
            {
                "architectures": ["MiniMaxM2ForCausalLM"],
                "num_local_experts": 256,
                "num_experts_per_tok": 8,
            },
            True,
            256,
            8,
        ),
        # Kimi K2 (a DeepSeek-V3 shape)
        (
            {
                "architectures": ["DeepseekV3ForCausalLM"],
                "model_type": "kimi_k2",
                "n_routed_experts": 384,
                "num_experts_per_tok": 8,
            },
            True,
            384,
            8,
        ),
        # Llama 4: the language model under text_config
        (
            {
                "architectures": ["Llama4ForConditionalGeneration"],
                "vision_config": {},
                "text_config": {
                    "num_local_experts": 16,
                    "num_experts_per_tok": 1,
                    "interleave_moe_layer_step": 1,
                },
            },
            True,
            16,
            1,
        ),
        # ERNIE 4.5 MoE
        (
            {"architectures": ["Ernie4_5_MoeForCausalLM"], "moe_num_experts": 64, "moe_k": 6},
            True,
            64,
            6,
        ),
        # a MoE architecture whose config names its experts in a way compat does not read
        ({"architectures": ["SomethingMoeForCausalLM"]}, True, None, None),
        # dense, and a config that says nothing
        ({"architectures": ["Qwen2ForCausalLM"]}, False, None, None),
        ({}, None, None, None),
    ],
)
def test_moe_detection(cfg: dict[str, Any], moe: Any, experts: Any, topk: Any) -> None:
    f = facts_from_config(cfg, source="c")
    assert (f.moe, f.num_experts, f.experts_per_token) == (moe, experts, topk)


def test_linear_attention_and_hybrid_layers() -> None:
    nxt = facts_from_config(
        {
            "architectures": ["Qwen3NextForCausalLM"],
            "num_hidden_layers": 48,
            "full_attention_interval": 4,
            "num_experts": 512,
        },
        source="c",
    )
    assert nxt.kv_layers == 12 and nxt.moe and any("linear attention" in n for n in nxt.notes)
    nem = facts_from_config(
        {
            "architectures": ["NemotronHForCausalLM"],
            "num_hidden_layers": 8,
            "hybrid_override_pattern": "M-M*-M-*",
        },
        source="c",
    )
    assert nem.kv_layers == 2
    decilm = facts_from_config(
        {
            "architectures": ["DeciLMForCausalLM"],
            "num_attention_heads": 64,
            "num_hidden_layers": 3,
            "hidden_size": 8192,
            "block_configs": [
                {"attention": {"n_heads_in_group": 8}},
                {"attention": {"no_op": True}},
                {"attention": {"n_heads_in_group": 16}},
            ],
        },
        source="c",
    )
    assert decilm.layer_kv_heads == (8, 0, 4) and decilm.kv_layers == 2


@pytest.mark.parametrize(
    ("q", "extra", "expect"),
    [
        (
            {"quant_method": "compressed-tensors", "format": "nvfp4-pack-quantized"},
            None,
            ("compressed-tensors", "nvfp4", 4.0),
        ),
        (
            {
                "quant_method": "compressed-tensors",
                "format": "float-quantized",
                "config_groups": {"g": {"weights": {"num_bits": 8, "type": "float"}}},
            },
            None,
            ("compressed-tensors", "fp8", 8.0),
        ),
        (
            {
                "quant_method": "compressed-tensors",
                "format": "pack-quantized",
                "config_groups": {"g": {"weights": {"num_bits": 4, "type": "int"}}},
            },
            None,
            ("compressed-tensors", "int4", 4.0),
        ),
        ({"quant_method": "gptq", "bits": 8}, None, ("gptq", "int8", 8.0)),
        (
            {"quant_method": "bitsandbytes", "load_in_4bit": True},
            None,
            ("bitsandbytes", "int4", 4.0),
        ),
        ({"quant_method": "modelopt", "quant_algo": "NVFP4"}, None, ("modelopt", "nvfp4", 4.0)),
        (None, {"quantization": {"quant_algo": "FP8"}}, ("modelopt", "fp8", 8.0)),
    ],
)
def test_quantization_shapes(q: Any, extra: Any, expect: tuple[Any, ...]) -> None:
    cfg = {"quantization_config": q} if q else {}
    assert quantization_of(cfg, extra) == expect


@pytest.mark.parametrize(
    ("name", "params", "moe", "quant", "weight"),
    [
        ("Qwen/Qwen2.5-72B-Instruct", 72e9, None, None, 144e9),
        ("Qwen/Qwen3-30B-A3B-FP8", 30e9, True, "fp8", 30e9),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", 56e9, True, None, 112e9),
        ("TheBloke/Llama-2-13B-chat-AWQ", 13e9, None, "awq", 6.5e9),
        ("Qwen/Qwen3-0.6B", 0.6e9, None, None, 1.2e9),
    ],
)
def test_guess_from_name(name: str, params: float, moe: Any, quant: Any, weight: float) -> None:
    g = guess_from_name(name)
    assert g is not None and g.guess and g.source.startswith("guess from the name")
    assert g.params == int(params) and g.moe == moe and g.quantization == quant
    assert g.weight_bytes == int(weight)
    assert g.num_kv_heads is None and "guess" in g.weight_source


def test_no_size_in_the_name_is_no_guess() -> None:
    assert guess_from_name("deepseek-ai/DeepSeek-V3") is None
    assert guess_from_name("/models/my-finetune") is None
