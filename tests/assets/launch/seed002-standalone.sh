# seed 002: the standalone sglang launch that works (radixark/miles#1176)
export CUDA_VISIBLE_DEVICES=1,2,3,4
export LD_LIBRARY_PATH=/usr/local/lib/python3.12/dist-packages/nvidia/cu13/lib:/usr/local/lib/python3.12/dist-packages/tvm_ffi/lib:$LD_LIBRARY_PATH

python -m sglang.launch_server \
  --model-path /cluster_public/models/Qwen3-30B-A3B \
  --tokenizer-path /cluster_public/models/Qwen3-30B-A3B \
  --host 127.0.0.1 \
  --port 15300 \
  --nccl-port 15301 \
  --dist-init-addr 127.0.0.1:15306 \
  --tp-size 4 \
  --dp-size 1 \
  --pp-size 1 \
  --ep-size 1 \
  --mem-fraction-static 0.7 \
  --max-running-requests 512 \
  --cuda-graph-max-bs 512 \
  --chunked-prefill-size 8192 \
  --max-prefill-tokens 16384 \
  --attention-backend fa3 \
  --sampling-backend flashinfer \
  --grammar-backend xgrammar \
  --enable-metrics \
  --enable-memory-saver \
  --enable-draft-weights-cpu-backup \
  --enable-return-routed-experts \
  --skip-server-warmup \
  --disable-piecewise-cuda-graph
