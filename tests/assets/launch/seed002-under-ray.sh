# seed 002: the same server as the Miles Ray actor starts it (colocate); Ray put RAY_* in its env
export CUDA_VISIBLE_DEVICES=1,2,3,4
export CUDA_DEVICE_MAX_CONNECTIONS=1
export NCCL_NVLS_ENABLE=1
export RAY_ADDRESS=http://127.0.0.1:8265
export RAY_JOB_ID=02000000
export SGLANG_MEMORY_SAVER_CUDA_GRAPH=true
python -m sglang.launch_server --model-path /root/models/Qwen3-30B-A3B \
  --tp-size 4 --mem-fraction-static 0.7 --max-running-requests 512 \
  --cuda-graph-max-bs 512 --attention-backend fa3 --sampling-backend flashinfer \
  --grammar-backend xgrammar --enable-memory-saver --enable-return-routed-experts \
  --disable-piecewise-cuda-graph
