"""Time `compat lock` as a whole process, offline: several runs, the median in milliseconds.

    python scripts/bench_lock.py [--runs 9] [--budget-ms 300] [-- LOCK ARGS...]

Exit 1 when the median is over the budget.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import time

DEFAULT = ["sglang==0.4.6.post1", "--driver", "535.104.05", "--gpu", "a100", "--python", "3.11"]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--budget-ms", type=float, default=300.0)
    ap.add_argument("args", nargs="*", help="compat lock arguments (after --)")
    ns = ap.parse_args(argv)
    args = ns.args or DEFAULT
    cmd = [sys.executable, "-m", "compat", "lock", *args]
    # Offline: any network use would fail fast against a dead proxy.
    env = dict(
        os.environ, NO_PROXY="", HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9"
    )
    # Byte-compile the package as an install does (this machine may set PYTHONDONTWRITEBYTECODE).
    import compat

    compileall.compile_dir(os.path.dirname(compat.__file__), quiet=1)
    subprocess.run(cmd, env=env, capture_output=True, check=False)  # warm the page cache
    times = []
    for _ in range(ns.runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        times.append((time.perf_counter() - start) * 1000)
        if proc.returncode not in (0, 1):
            print(proc.stderr, file=sys.stderr)
            return 2
    median = statistics.median(times)
    print(f"compat lock {' '.join(args)}")
    print(
        f"runs: {ns.runs}  median: {median:.0f} ms  min: {min(times):.0f} ms  "
        f"max: {max(times):.0f} ms  budget: {ns.budget_ms:.0f} ms"
    )
    return 0 if median <= ns.budget_ms else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
