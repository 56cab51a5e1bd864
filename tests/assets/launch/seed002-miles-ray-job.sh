# seed 002: the Miles training job (not a server command; it starts sglang inside Ray)
cd /root/miles
ray stop --force || true
ray job submit --address="http://127.0.0.1:8265" \
  --runtime-env-json='{"env_vars":{"PYTHONPATH":"/root/Megatron-LM","CUDA_DEVICE_MAX_CONNECTIONS":"1","NCCL_NVLS_ENABLE":"1","no_proxy":"127.0.0.1,127.0.0.1","MASTER_ADDR":"127.0.0.1","MILES_EXPERIMENTAL_ROLLOUT_REFACTOR":"1"}}' \
  -- python3 /root/miles/train.py \
  --hf-checkpoint /root/models/Qwen3-30B-A3B \
  --rollout-num-gpus-per-engine 4 \
  --sglang-mem-fraction-static 0.7 \
  --colocate
