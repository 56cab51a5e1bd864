# --use-v2-block-manager went away with the V0 block manager (last in vLLM 0.9.2).
vllm serve Qwen/Qwen3-8B --tensor-parallel-size 2 --use-v2-block-manager
