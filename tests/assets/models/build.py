"""Writes the fake Hugging Face cache under hub/ and the GPU-run folder (run it to refresh them).

Each config.json keeps the keys compat reads, with the values of the model's published
config.json (https://huggingface.co/ORG/NAME). No weights: the index files' total_size is
computed from the config's shapes (parameters x bytes per parameter, 4-bit layers with their
group-128 scales), so it is close to, not equal to, the published files' size. tiny-local/ holds
a real (tiny) safetensors file for the header reader.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from compat.model import facts_from_config  # noqa: E402

FP8_BLOCK = {
    "quant_method": "fp8",
    "fmt": "e4m3",
    "activation_scheme": "dynamic",
    "weight_block_size": [128, 128],
}

LLAMA3_8B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 8192,
    "rope_theta": 500000.0,
    "torch_dtype": "bfloat16",
    "tie_word_embeddings": False,
}

MODELS: dict[str, tuple[dict[str, object], str]] = {
    # dense
    "meta-llama/Llama-3.1-8B-Instruct": (
        {
            **LLAMA3_8B,
            "max_position_embeddings": 131072,
            "rope_scaling": {"factor": 8.0, "rope_type": "llama3"},
        },
        "index",
    ),
    "meta-llama/Meta-Llama-3-8B": (LLAMA3_8B, "index"),
    "meta-llama/Llama-3.1-70B-Instruct": (
        {
            **LLAMA3_8B,
            "hidden_size": 8192,
            "intermediate_size": 28672,
            "num_hidden_layers": 80,
            "num_attention_heads": 64,
            "max_position_embeddings": 131072,
        },
        "index",
    ),
    "Qwen/Qwen2-1.5B-Instruct": (
        {
            "architectures": ["Qwen2ForCausalLM"],
            "model_type": "qwen2",
            "hidden_size": 1536,
            "intermediate_size": 8960,
            "num_hidden_layers": 28,
            "num_attention_heads": 12,
            "num_key_value_heads": 2,
            "vocab_size": 151936,
            "max_position_embeddings": 32768,
            "torch_dtype": "bfloat16",
            "tie_word_embeddings": True,
        },
        "index",
    ),
    "Qwen/Qwen2.5-32B-Instruct": (
        {
            "architectures": ["Qwen2ForCausalLM"],
            "model_type": "qwen2",
            "hidden_size": 5120,
            "intermediate_size": 27648,
            "num_hidden_layers": 64,
            "num_attention_heads": 40,
            "num_key_value_heads": 8,
            "vocab_size": 152064,
            "max_position_embeddings": 32768,
            "torch_dtype": "bfloat16",
            "tie_word_embeddings": False,
        },
        "index",
    ),
    "Qwen/Qwen3-8B": (
        {
            "architectures": ["Qwen3ForCausalLM"],
            "model_type": "qwen3",
            "hidden_size": 4096,
            "intermediate_size": 12288,
            "num_hidden_layers": 36,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "vocab_size": 151936,
            "max_position_embeddings": 40960,
            "torch_dtype": "bfloat16",
            "tie_word_embeddings": False,
        },
        "index",
    ),
    # quantized
    "Qwen/Qwen2.5-7B-Instruct-AWQ": (
        {
            "architectures": ["Qwen2ForCausalLM"],
            "model_type": "qwen2",
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "vocab_size": 152064,
            "max_position_embeddings": 32768,
            "torch_dtype": "float16",
            "tie_word_embeddings": False,
            "quantization_config": {
                "bits": 4,
                "group_size": 128,
                "quant_method": "awq",
                "version": "gemm",
                "zero_point": True,
            },
        },
        "index",
    ),
    # MoE
    "Qwen/Qwen3-30B-A3B": (
        {
            "architectures": ["Qwen3MoeForCausalLM"],
            "model_type": "qwen3_moe",
            "hidden_size": 2048,
            "intermediate_size": 6144,
            "moe_intermediate_size": 768,
            "num_hidden_layers": 48,
            "num_attention_heads": 32,
            "num_key_value_heads": 4,
            "head_dim": 128,
            "num_experts": 128,
            "num_experts_per_tok": 8,
            "decoder_sparse_step": 1,
            "mlp_only_layers": [],
            "vocab_size": 151936,
            "max_position_embeddings": 40960,
            "torch_dtype": "bfloat16",
            "tie_word_embeddings": False,
        },
        "index",
    ),
    "Qwen/Qwen3-235B-A22B-FP8": (
        {
            "architectures": ["Qwen3MoeForCausalLM"],
            "model_type": "qwen3_moe",
            "hidden_size": 4096,
            "intermediate_size": 12288,
            "moe_intermediate_size": 1536,
            "num_hidden_layers": 94,
            "num_attention_heads": 64,
            "num_key_value_heads": 4,
            "head_dim": 128,
            "num_experts": 128,
            "num_experts_per_tok": 8,
            "decoder_sparse_step": 1,
            "mlp_only_layers": [],
            "vocab_size": 151936,
            "max_position_embeddings": 40960,
            "torch_dtype": "bfloat16",
            "tie_word_embeddings": False,
            "quantization_config": FP8_BLOCK,
        },
        "index",
    ),
    "Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8": (
        {
            "architectures": ["Qwen3MoeForCausalLM"],
            "model_type": "qwen3_moe",
            "hidden_size": 6144,
            "intermediate_size": 8192,
            "moe_intermediate_size": 2560,
            "num_hidden_layers": 62,
            "num_attention_heads": 96,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "num_experts": 160,
            "num_experts_per_tok": 8,
            "decoder_sparse_step": 1,
            "mlp_only_layers": [],
            "vocab_size": 151936,
            "max_position_embeddings": 262144,
            "torch_dtype": "bfloat16",
            "tie_word_embeddings": False,
            "quantization_config": FP8_BLOCK,
        },
        "index",
    ),
    # MLA + MoE + FP8, config only: the weight size is estimated from the shapes
    "deepseek-ai/DeepSeek-V3": (
        {
            "architectures": ["DeepseekV3ForCausalLM"],
            "model_type": "deepseek_v3",
            "hidden_size": 7168,
            "intermediate_size": 18432,
            "moe_intermediate_size": 2048,
            "num_hidden_layers": 61,
            "num_attention_heads": 128,
            "num_key_value_heads": 128,
            "n_routed_experts": 256,
            "n_shared_experts": 1,
            "num_experts_per_tok": 8,
            "first_k_dense_replace": 3,
            "kv_lora_rank": 512,
            "q_lora_rank": 1536,
            "qk_rope_head_dim": 64,
            "qk_nope_head_dim": 128,
            "v_head_dim": 128,
            "num_nextn_predict_layers": 1,
            "vocab_size": 129280,
            "max_position_embeddings": 163840,
            "torch_dtype": "bfloat16",
            "tie_word_embeddings": False,
            "quantization_config": FP8_BLOCK,
        },
        "config-only",
    ),
    "openai/gpt-oss-20b": (
        {
            "architectures": ["GptOssForCausalLM"],
            "model_type": "gpt_oss",
            "hidden_size": 2880,
            "intermediate_size": 2880,
            "num_hidden_layers": 24,
            "num_attention_heads": 64,
            "num_key_value_heads": 8,
            "head_dim": 64,
            "num_local_experts": 32,
            "num_experts_per_tok": 4,
            "experts_per_token": 4,
            "sliding_window": 128,
            "layer_types": ["sliding_attention", "full_attention"] * 12,
            "vocab_size": 201088,
            "max_position_embeddings": 131072,
            "torch_dtype": "bfloat16",
            "tie_word_embeddings": False,
            "quantization_config": {
                "quant_method": "mxfp4",
                "modules_to_not_convert": [
                    "model.layers.*.self_attn",
                    "model.layers.*.mlp.router",
                    "model.embed_tokens",
                    "lm_head",
                ],
            },
        },
        "index",
    ),
    # multimodal: the language model's config is nested under text_config
    "google/gemma-3-4b-it": (
        {
            "architectures": ["Gemma3ForConditionalGeneration"],
            "model_type": "gemma3",
            "text_config": {
                "model_type": "gemma3_text",
                "hidden_size": 2560,
                "intermediate_size": 10240,
                "num_hidden_layers": 34,
                "num_attention_heads": 8,
                "num_key_value_heads": 4,
                "head_dim": 256,
                "sliding_window": 1024,
                "sliding_window_pattern": 6,
                "vocab_size": 262208,
                "max_position_embeddings": 131072,
            },
            "vision_config": {
                "model_type": "siglip_vision_model",
                "hidden_size": 1152,
                "intermediate_size": 4304,
                "num_hidden_layers": 27,
                "image_size": 896,
                "patch_size": 14,
            },
            "torch_dtype": "bfloat16",
        },
        "index",
    ),
}

# The lead's GPU run: a Qwen2.5-72B-like folder (bf16: does not fit one H200) and a 32B one.
GPU_RUN = {
    "Qwen2.5-72B-Instruct": {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": 8192,
        "intermediate_size": 29568,
        "num_hidden_layers": 80,
        "num_attention_heads": 64,
        "num_key_value_heads": 8,
        "vocab_size": 152064,
        "max_position_embeddings": 32768,
        "torch_dtype": "bfloat16",
        "tie_word_embeddings": False,
    },
    "Qwen2.5-32B-Instruct": MODELS["Qwen/Qwen2.5-32B-Instruct"][0],
}

REVISION = "0123456789abcdef0123456789abcdef01234567"


def total_size(config: dict[str, object]) -> int:
    facts = facts_from_config(config, source="build")
    assert facts.params is not None, config
    emb = (
        (facts.vocab_size or 0) * (facts.hidden_size or 0) * (1 if facts.tie_word_embeddings else 2)
    )
    rest = facts.params - emb
    q = facts.quantization
    if q == "fp8":
        # FP8 linear layers plus one float32 scale per 128x128 block; 16-bit embeddings.
        return int(emb * 2 + rest * (1 + 4 / (128 * 128)))
    if q in ("awq", "gptq"):
        return int(emb * 2 + rest * (0.5 + (2 + 0.5) / 128))
    if q == "mxfp4":
        share = facts.expert_share or 0.0
        experts = facts.params * share
        return int(experts * (0.5 + 1 / 32) + (facts.params - experts) * 2)
    return int(facts.params * 2)


def write_model(folder: Path, config: dict[str, object], kind: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if kind == "index":
        index = {
            "metadata": {"total_size": total_size(config)},
            "weight_map": {
                "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
                "lm_head.weight": "model-00002-of-00002.safetensors",
            },
        }
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


def write_tiny(folder: Path) -> None:
    """A real safetensors file: two float16 tensors (4x4 and 4), 40 bytes of data."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        **LLAMA3_8B,
        "hidden_size": 4,
        "intermediate_size": 8,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "vocab_size": 4,
        "max_position_embeddings": 64,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    header = {
        "__metadata__": {"format": "pt"},
        "a": {"dtype": "F16", "shape": [4, 4], "data_offsets": [0, 32]},
        "b": {"dtype": "F16", "shape": [4], "data_offsets": [32, 40]},
    }
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(40))


def main() -> None:
    hub = HERE / "hub"
    for repo, (config, kind) in MODELS.items():
        base = hub / ("models--" + repo.replace("/", "--"))
        (base / "refs").mkdir(parents=True, exist_ok=True)
        (base / "refs" / "main").write_text(REVISION)
        write_model(base / "snapshots" / REVISION, config, kind)
    write_tiny(HERE / "tiny-local")
    run = HERE.parent / "gpu-run"
    for name, config in GPU_RUN.items():
        write_model(run / name, config, "index")


if __name__ == "__main__":
    main()
