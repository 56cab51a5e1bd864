#!/usr/bin/env python3
"""Time matching 200 advisories against an environment and a launch command, in process.

    python scripts/bench_advisories.py [--runs N] [--count N]

The shipped advisories are repeated (with fresh ids) up to --count, then matched against three
cases: seed 000 (sglang, small GPU, a prior torch-triton finding), seed 004 (vLLM on H100) and
no launch command (every launch clause unknown). Prints median/min/max per case and the load
time of the advisory folder. Target: matching 200 advisories <= 20 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from packaging.version import Version  # noqa: E402

from compat.advisories import Advisory, load_advisories, match_advisories  # noqa: E402
from compat.launch import LaunchConfig, parse_launch_text  # noqa: E402
from compat.models import GPU, Distribution, Environment, Finding, Severity, Unknown  # noqa: E402

TARGET_MS = 20.0
LAUNCH = ROOT / "tests" / "assets" / "launch"


def env_of(packages: dict[str, str], gpu: GPU) -> Environment:
    dists = tuple(
        Distribution(name=n, version=Version(v), raw_version=v) for n, v in packages.items()
    )
    return Environment(
        python=Unknown("bench"),
        distributions=dists,
        torch=Unknown("bench"),
        driver=Unknown("bench"),
        gpus=(gpu,),
        context=Unknown("bench"),
        env={"CUDA_VISIBLE_DEVICES": "0", "NCCL_DEBUG": "WARN"},
        source="bench",
    )


def cases() -> list[tuple[str, Environment, Optional[LaunchConfig], list[Finding]]]:
    rtx = GPU(
        index=0, name="NVIDIA GeForce RTX 4070", compute_capability=(8, 9), memory_total_mib=12282
    )
    h100 = GPU(
        index=0, name="NVIDIA H100 80GB HBM3", compute_capability=(9, 0), memory_total_mib=81559
    )
    sgl_env = env_of(
        {
            "sglang": "0.4.6.post1",
            "flashinfer-python": "0.2.5",
            "torch": "2.6.0",
            "triton": "3.3.1",
        },
        rtx,
    )
    sgl_launch = parse_launch_text(
        (LAUNCH / "seed000-sglang-rtx4070.sh").read_text(), Version("0.4.6.post1")
    )
    prior = [Finding(code="torch-triton", severity=Severity.ERROR, message="triton 3.3.1 != 3.2.0")]
    vllm_env = env_of({"vllm": "0.18.2rc1.dev54", "torch": "2.9.0"}, h100)
    vllm_launch = parse_launch_text(
        (LAUNCH / "seed004-crash.sh").read_text(), Version("0.18.2rc1.dev54")
    )
    return [
        ("seed 000 (sglang, 12 GB GPU)", sgl_env, sgl_launch, prior),
        ("seed 004 (vLLM, H100)", vllm_env, vllm_launch, []),
        ("no launch command", vllm_env, None, []),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--count", type=int, default=200)
    args = ap.parse_args()

    t0 = time.perf_counter()
    shipped = load_advisories(ROOT / "matrices" / "advisories")
    load_ms = (time.perf_counter() - t0) * 1000
    pool: list[Advisory] = [
        replace(shipped[i % len(shipped)], id=f"COMPAT-{5000 + i:04d}") for i in range(args.count)
    ]
    print(
        f"loaded {len(shipped)} advisories in {load_ms:.1f} ms; matching {len(pool)} per run, "
        f"{args.runs} runs (Python {sys.version.split()[0]})"
    )
    worst = 0.0
    for name, env, launch, prior in cases():
        match_advisories(env, launch, pool, prior)  # warm-up
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            found = match_advisories(env, launch, pool, prior)
            times.append((time.perf_counter() - start) * 1000)
        med = statistics.median(times)
        worst = max(worst, med)
        print(
            f"  {name:30s} median {med:6.2f} ms  min {min(times):6.2f}  max {max(times):6.2f}  "
            f"({len(found)} findings)"
        )
    ok = worst <= TARGET_MS
    print(f"target <= {TARGET_MS:.0f} ms for {args.count} advisories: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
