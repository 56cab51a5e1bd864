vllm serve Qwen/Qwen3-30B-A3B --config vllm-config.yaml --tensor-parallel-size 2
