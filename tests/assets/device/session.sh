#!/bin/sh
# What only a GPU machine proves, in one run (from the repository root, compat importable):
#   detection and the check on the machine's own stack (env, check, --deep, timed);
#   the gpu-marked tests, among them kernels built for another torch (wheels in .whl/) whose
#   loader errors must be what compat predicted offline and found with --deep;
#   the memory fit of real launch commands against the real GPU (tests/assets/gpu-run);
#   a pinned framework release installed beside the machine's torch, with a launch command.
# Usage: sh tests/assets/device/session.sh OUTDIR
set -u
O=${1:?OUTDIR}
mkdir -p "$O"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

{ nvidia-smi; "$PY" -c 'import sys, torch, triton; print(sys.version); print(torch.__version__, torch.version.cuda, triton.__version__, torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0))'; } > "$O/machine.txt" 2>&1

"$PY" -m compat env > "$O/env.txt" 2>&1
"$PY" -m compat env --json -o "$O/env.json" 2> "$O/env.err"
"$PY" -m compat check > "$O/check.txt" 2>&1; echo "check: exit $?" > "$O/exit-codes.txt"
"$PY" -m compat check --format json -o "$O/check.json"
"$PY" -m compat check --deep > "$O/check-deep.txt" 2>&1; echo "check --deep: exit $?" >> "$O/exit-codes.txt"
"$PY" - > "$O/timing.txt" 2>&1 <<'PYEOF'
import statistics, subprocess, sys, time
for args in (["env"], ["check"], ["check", "--deep"]):
    subprocess.run([sys.executable, "-m", "compat", *args], capture_output=True)  # warm
    ms = []
    for _ in range(7):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "compat", *args], capture_output=True)
        ms.append((time.perf_counter() - t) * 1000)
    print(f"compat {' '.join(args):<14} median {statistics.median(ms):6.0f} ms  min {min(ms):6.0f}  max {max(ms):6.0f}")
t = time.perf_counter()
subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True)
print(f"pip check      once   {(time.perf_counter() - t) * 1000:6.0f} ms")
PYEOF

"$PY" -m pytest -m gpu -p no:cacheprovider -q -rA tests/test_gpu.py > "$O/pytest-gpu.txt" 2>&1
echo "pytest -m gpu: exit $?" >> "$O/exit-codes.txt"

# Each carried kernel beside this torch: compat offline and --deep, and the loader itself.
for w in .whl/torchaudio-*.whl .whl/lmcache-*.whl .whl/sgl_deep_gemm-*.whl .whl/torchao-*.whl; do
    [ -f "$w" ] || continue
    n=$(basename "$w" | cut -d- -f1); site=/tmp/site-$n
    "$PY" -m zipfile -e "$w" "$site"
    PYTHONPATH="$PWD:$site" "$PY" -m compat check > "$O/kernel-$n.txt" 2>&1
    PYTHONPATH="$PWD:$site" "$PY" -m compat check --deep > "$O/kernel-$n-deep.txt" 2>&1
    PYTHONPATH="$site" "$PY" -c "import torch, importlib; importlib.import_module('$n'.replace('sgl_deep_gemm', 'deep_gemm'))" > "$O/kernel-$n-import.txt" 2>&1
    echo "import $n: exit $?" >> "$O/exit-codes.txt"
done

sh tests/assets/gpu-run/run.sh "$O/fit" > /dev/null 2>&1

# sglang 0.5.12 pins this torch (2.11.0); its kernels are not carried, so their pins show.
for w in .whl/sglang-*.whl; do
    [ -f "$w" ] || continue
    "$PY" -m zipfile -e "$w" /tmp/site-sglang
    M=tests/assets/gpu-run/Qwen2.5-32B-Instruct
    PYTHONPATH="$PWD:/tmp/site-sglang" "$PY" -m compat check -- python3 -m sglang.launch_server --model-path "$M" --tp-size 1 --mem-fraction-static 0.95 --attention-backend fa3 > "$O/sglang-launch.txt" 2>&1
    PYTHONPATH="$PWD:/tmp/site-sglang" "$PY" -m compat check -- python3 -m sglang.launch_server --model-path "$M" --tp-szie 2 > "$O/sglang-typo.txt" 2>&1
    CUDA_VISIBLE_DEVICES=1 PYTHONPATH="$PWD:/tmp/site-sglang" "$PY" -m compat check -- python3 -m sglang.launch_server --model-path "$M" > "$O/sglang-cvd.txt" 2>&1
done
