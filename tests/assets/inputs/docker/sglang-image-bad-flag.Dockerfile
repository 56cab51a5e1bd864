FROM lmsysorg/sglang:v0.4.6.post1-cu124
ENV SGLANG_ENABLE_TORCH_COMPILE=0
CMD ["python3", "-m", "sglang.launch_server", "--model-path", "Qwen/Qwen3-8B", "--attention-backend", "flashattention", "--tp-size", "1"]
