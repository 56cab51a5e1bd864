# A vLLM 0.8-era recipe run on a newer vLLM: the backend selector variable is no longer read
# (vLLM 0.15 dropped VLLM_ATTENTION_BACKEND from vllm/envs.py; --attention-backend replaced it).
export VLLM_ATTENTION_BACKEND=FLASHINFER
vllm serve Qwen/Qwen3-8B --tensor-parallel-size 2 --gpu-memory-utilization 0.85
