#!/usr/bin/env python3
"""Time compat's commands as whole processes beside `pip check`, several runs each, medians.

    python scripts/bench.py [--runs N] [--python PATH]

Prints one line per command (median, min, max in ms) and each one's ratio to `pip check`, plus
the in-process cost of loading what a check needs from the database. Targets (README, Speed):
env <= 150 ms and <= 0.25 of pip check; check (live and --from a 300-line freeze) <= 200 ms;
check --deep under 1 s, and a repeat (facts of unchanged files cached) under 1.5x check.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
FREEZE = ROOT / "tests" / "assets" / "freeze" / "300-lines.txt"
LOCK_TARGET = "sglang==0.4.6.post1"


def deep_cache() -> Path:
    """Where `check --deep` keeps the facts of the files it read (compat.probe.deepcache)."""
    sys.path.insert(0, str(ROOT))
    from compat.matrix.tomlfile import cache_root

    return cache_root() / "deep"


def timed(cmd: list[str], runs: int, forget: Optional[Path] = None) -> list[float]:
    """Wall times of `cmd`; with `forget`, that folder is removed before each run."""
    out = []
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(cmd, capture_output=True, check=False, env=env)  # warm the page cache
    for _ in range(runs):
        if forget is not None:
            shutil.rmtree(forget, ignore_errors=True)
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=False, env=env)
        out.append((time.perf_counter() - start) * 1000)
    return out


def load_cost(runs: int) -> list[float]:
    """In-process, modules already imported: reading what `compat check` needs from the
    database for a typical stack (generated releases, curated tables, advisories)."""
    code = (
        "import time\n"
        "from compat.matrix.load import Matrix\n"
        "from compat.advisories import load_advisories\n"
        "from compat.resources import advisories_dir\n"
        "t=time.perf_counter(); m=Matrix()\n"
        "[m.releases(n) for n in ('torch','triton','sglang','torchvision','flashinfer-python')]\n"
        "m.toolkits; load_advisories(advisories_dir())\n"
        "print((time.perf_counter()-t)*1000)\n"
    )
    vals = []
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        vals.append(float(proc.stdout.strip()))
    return vals


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument(
        "--python", default=sys.executable, help="interpreter that has compat installed"
    )
    args = ap.parse_args()
    py = args.python
    # As an install does: byte-compile the package, so runs measure compat, not the compiler.
    subprocess.run([py, "-m", "compileall", "-q", str(ROOT / "compat")], check=True)
    compat = [py, "-m", "compat"]
    commands = {
        "pip check": [py, "-m", "pip", "check"],
        "compat env": [*compat, "env"],
        "compat env --json": [*compat, "env", "--json"],
        "compat check (live)": [*compat, "check"],
        "compat check --deep (repeat)": [*compat, "check", "--deep"],
        "compat check --from 300-line freeze": [*compat, "check", "--from", str(FREEZE)],
        f"compat lock {LOCK_TARGET}": [*compat, "lock", LOCK_TARGET, "--format", "requirements"],
    }
    results = {name: timed(cmd, args.runs) for name, cmd in commands.items()}
    results["compat check --deep (no deep cache)"] = timed(
        [*compat, "check", "--deep"], args.runs, forget=deep_cache()
    )
    base = statistics.median(results["pip check"])
    print(f"{'command':<40}{'median':>9}{'min':>9}{'max':>9}{'/pip check':>12}")
    for name, vals in results.items():
        med = statistics.median(vals)
        print(f"{name:<40}{med:>8.0f}ms{min(vals):>7.0f}ms{max(vals):>7.0f}ms{med / base:>12.2f}")
    load = load_cost(args.runs)
    print(f"{'database load for a check (in-process)':<40}{statistics.median(load):>8.1f}ms")
    print(f"runs={args.runs} python={py} cpus={os.cpu_count()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
