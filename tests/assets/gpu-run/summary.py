"""compat's numbers (from `compat check --format json`) beside the GPU's (measure.py), one launch a line."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

GIB_MIB = 1024.0


def number(lines: list[str], prefix: str) -> str:
    for line in lines:
        if line.strip().startswith(prefix):
            m = re.search(r"(-?\d+\.\d+) GiB", line)
            return m.group(1) if m else line
    return "-"


def main(out: Path) -> None:
    measured = (
        json.loads((out / "measure.json").read_text()) if (out / "measure.json").is_file() else {}
    )
    gpu = (measured.get("nvidia_smi") or [{}])[0]
    cuda = measured.get("cuda", {})
    print(
        f"GPU (nvidia-smi): {gpu.get('name')}, total {gpu.get('total_mib', 0) / GIB_MIB:.2f} GiB, "
        f"used {gpu.get('used_mib', 0) / GIB_MIB:.2f} GiB"
    )
    if "cuda_total_mib" in cuda:
        print(
            f"CUDA total {cuda['cuda_total_mib'] / GIB_MIB:.2f} GiB -> driver reserve "
            f"{(gpu['total_mib'] - cuda['cuda_total_mib']) / GIB_MIB:.2f} GiB (compat's figure 0.45); "
            f"bare CUDA context {cuda['context_mib'] / GIB_MIB:.2f} GiB (compat's figure 0.50)"
        )
    torch = measured.get("torch", {})
    if "context_with_torch_and_cublas_mib" in torch:
        print(
            f"context with torch {torch['torch']} and cuBLAS: "
            f"{torch['context_with_torch_and_cublas_mib'] / GIB_MIB:.2f} GiB"
        )
    print()
    for path in sorted(out.glob("*.json")):
        if path.name in ("measure.json", "env.json"):
            continue
        doc = json.loads(path.read_text())
        for f in doc.get("findings", []):
            if f["code"] not in ("memory-fit", "memory-headroom", "parallelism"):
                continue
            ev = f.get("evidence", [])
            print(f"{path.stem}: [{f['code']} {f['severity']}] {f['message']}")
            total = next((e for e in ev if e.startswith("GPU ")), "")
            print(f"    {total}")
            print(
                f"    weights/GPU {number(ev, 'weights per GPU')} GiB, KV {number(ev, 'KV cache')} GiB, "
                f"free at capture {number(ev, 'free at CUDA-graph capture')} GiB, "
                f"needed {number(ev, 'needed there')} GiB"
            )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "out")
