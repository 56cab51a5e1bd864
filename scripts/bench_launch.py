#!/usr/bin/env python3
"""Time parsing a launch command with the installed release's flag data, in fresh processes.

    python scripts/bench_launch.py [--runs N]

Each run is a new interpreter (as `compat check` is): it loads one framework's launch data
(through the JSON cache keyed by the file's content, as the check does) and parses one sglang
and one vLLM command. Prints median/min/max of: the data load, the parse (data loaded), and the
whole `compat check --from FREEZE -- LAUNCH` against the same check without a launch command.
Targets: the parse under ~10 ms; the launch adds little to `compat check`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_PROBE = r"""
import json, sys, time
import compat.matrix.load  # the check has read the database through it already
t0 = time.perf_counter()
from packaging.version import Version
from compat.launch import parse_launch
from compat.launch.data import launch_data
t1 = time.perf_counter()
fw, version, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
launch_data(fw)
t2 = time.perf_counter()
lc = parse_launch(argv, Version(version))
t3 = time.perf_counter()
lc = parse_launch(argv, Version(version))
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "first_parse": t3 - t2, "parse": t4 - t3,
                  "problems": len(lc.problems)}))
"""

CASES = {
    "sglang": (
        "0.5.12",
        [
            "python",
            "-m",
            "sglang.launch_server",
            "--model-path",
            "m",
            "--tp",
            "8",
            "--attention-backend",
            "fa3",
            "--mem-fraction-static",
            "0.8",
            "--enable-hierarchical-cache",
            "--speculative-algorithm",
            "EAGLE",
        ],
    ),
    "vllm": (
        "0.19.0",
        [
            "vllm",
            "serve",
            "m",
            "-tp",
            "8",
            "--gpu-memory-utilization",
            "0.85",
            "--compilation-config",
            '{"cudagraph_mode": "PIECEWISE"}',
            "--max-model-len",
            "32k",
        ],
    ),
}


def _ms(values: list[float]) -> str:
    return (
        f"median {statistics.median(values) * 1000:6.1f} ms  min {min(values) * 1000:6.1f}  "
        f"max {max(values) * 1000:6.1f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    runs = ap.parse_args().runs
    for fw, (version, argv) in CASES.items():
        rows: dict[str, list[float]] = {}
        for _ in range(runs):
            out = subprocess.run(
                [sys.executable, "-c", _PROBE, fw, version, *argv],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            for k, v in json.loads(out).items():
                rows.setdefault(k, []).append(float(v))
        print(f"{fw} {version}:")
        for k in ("load", "first_parse", "parse"):
            print(f"  {k:<12} {_ms(rows[k])}")
    freeze = ROOT / "tests" / "assets" / "freeze" / "vllm-0.10.1.1-good.txt"
    base = [sys.executable, "-m", "compat", "check", "--from", str(freeze), "--fail-on", "never"]
    for label, extra in (("check", []), ("check -- vllm serve", ["--", *CASES["vllm"][1]])):
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run([*base, *extra], cwd=ROOT, capture_output=True, check=True)
            times.append(time.perf_counter() - started)
        print(f"{label:<22} {_ms(times)}")


if __name__ == "__main__":
    main()
