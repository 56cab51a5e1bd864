# seed 000: sglang on a 12 GB RTX 4070, FlashInfer backend (default), CUDA graphs on (default)
python -m sglang.launch_server --model /models/Qwen2-1.5B-Instruct \
  --host 0.0.0.0 --port 30000
