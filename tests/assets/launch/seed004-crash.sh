# seed 004: vllm-project/vllm#39288, crashes with the default MoE backend
python3 -m vllm.entrypoints.openai.api_server \
  --model Qwen/Qwen3-Next-80B-A3B-Instruct \
  --tensor-parallel-size 8 \
  --dtype bfloat16 \
  --trust-remote-code \
  --max-model-len 33020 \
  --host 0.0.0.0 \
  --kv-cache-dtype auto
