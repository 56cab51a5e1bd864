#!/bin/sh
# compat's fit estimate for real launch commands against this machine's real GPU, beside what the
# GPU reports. No weights: the two model folders here hold config.json and an index whose
# total_size is the checkpoint's size (computed from the shapes, see ../models/build.py).
#   Qwen2.5-72B-Instruct  bf16, ~135 GiB: does not fit one H200 (141 GiB) at vLLM's 0.9
#   Qwen2.5-32B-Instruct  bf16, ~61 GiB: fits; compat reports the KV cache left
# Usage (from the repository root, with compat installed): sh tests/assets/gpu-run/run.sh [OUTDIR]
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-${OUT:-$HERE/out}}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
M72="$HERE/Qwen2.5-72B-Instruct"
M32="$HERE/Qwen2.5-32B-Instruct"

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
"$PY" "$HERE/measure.py" --torch > "$OUT/measure.json" 2> "$OUT/measure.err"
"$PY" -m compat env --json -o "$OUT/env.json" 2> "$OUT/env.err"

run() {  # name, then the launch command
    name=$1; shift
    "$PY" -m compat check --format json -o "$OUT/$name.json" -- "$@" 2> "$OUT/$name.err"
    echo "$name: exit $?" >> "$OUT/exit-codes.txt"
    "$PY" -m compat check -- "$@" > "$OUT/$name.txt" 2>&1
}
: > "$OUT/exit-codes.txt"
run vllm-72b-tp1          vllm serve "$M72"
run vllm-72b-tp2          vllm serve "$M72" --tensor-parallel-size 2
run vllm-32b              vllm serve "$M32" --max-model-len 32768
run vllm-32b-131k         vllm serve "$M32" --max-model-len 131072 --gpu-memory-utilization 0.5
run sglang-32b            python3 -m sglang.launch_server --model-path "$M32"
run sglang-32b-frac099    python3 -m sglang.launch_server --model-path "$M32" --mem-fraction-static 0.99

"$PY" "$HERE/summary.py" "$OUT" | tee "$OUT/summary.txt"

# With vLLM installed here, a real start with dummy weights gives the numbers to compare with
# (vLLM's own "Model loading took", "Available KV cache memory", "Graph capturing ... took").
if "$PY" -c "import vllm" 2>/dev/null; then
    timeout 900 "$PY" -m vllm.entrypoints.openai.api_server --model "$M32" --load-format dummy \
        --skip-tokenizer-init --max-model-len 32768 --port 18123 > "$OUT/vllm-32b-dummy.log" 2>&1 &
    pid=$!
    sleep 600; kill "$pid" 2>/dev/null
    grep -E "Model loading took|Available KV cache memory|GPU KV cache size|Graph capturing|CUDA graph" \
        "$OUT/vllm-32b-dummy.log" > "$OUT/vllm-32b-dummy.memory.txt"
fi
