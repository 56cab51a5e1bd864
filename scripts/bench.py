#!/usr/bin/env python3
"""Time compat's commands as whole processes beside the floor, `pip check` and `uv pip check`.

    python scripts/bench.py [--runs N] [--python PATH] [--markdown]
    python scripts/bench.py --update-readme     # the README's table, from the recorded runs

The floor (scripts/floor.py, measured in the same run) is what a check cannot avoid: starting
the interpreter, listing site-packages, reading the stack's METADATA, asking NVML. Each command
runs once to warm the page cache and compat's own caches, then N times; medians, minimum,
maximum, peak memory (the child's max RSS), and ratios to the floor and to `pip check`.
Targets (issue 18): check <= 1.5x the floor, env <= 1.3x, check --deep < 1 s and <= 1.5x check
on a repeat run, check --from a 300-line freeze <= 1.5x (interpreter + database load).
`compat check` and `compat env` repeat runs are answered from the kept answer while nothing they
read changed (compat.answers); the rows prefixed COMPAT_NO_REPLAY=1 time the full runs.
check --deep is also timed with its cache (~/.cache/compat/deep) removed before each run.
The package is byte-compiled first, as an installed wheel is.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
# The recorded runs the README's speed table is made from: (column title, file).
RECORDED = (
    (
        "H200 machine (16 cores, torch 2.11 stack, ~200 dists)",
        ROOT / "tests" / "assets" / "device" / "h200" / "bench.txt",
    ),
    ("here (2 cores, no GPU)", ROOT / "tests" / "assets" / "device" / "local-bench.txt"),
)
TABLE_START = "<!-- speed table: python scripts/bench.py --update-readme -->"
TABLE_END = "<!-- end of speed table -->"
_ROW = re.compile(
    r"^(?P<name>\S.*?)\s+(?P<median>[0-9]+)ms\s+[0-9]+ms\s+[0-9]+ms\s+[0-9]+MB"
    r"\s+(?P<floor>[0-9.]+)\s+[0-9.]+$"
)


def recorded(path: Path) -> dict[str, tuple[int, str]]:
    """A recorded run's rows: command -> (median ms, ratio to the floor as printed)."""
    out: dict[str, tuple[int, str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _ROW.match(line)
        if m:
            out[m.group("name")] = (int(m.group("median")), m.group("floor"))
    return out


def readme_table(machines: tuple[tuple[str, Path], ...] = RECORDED) -> str:
    """The README's speed table: each command's median and ratio to the floor per machine, in
    the first machine's order (a command another machine did not run shows -)."""
    runs = [(title, recorded(path)) for title, path in machines]
    head = "| command | " + " | ".join(f"{t} | / floor" for t, _ in runs) + " |"
    lines = [head, "|---" * (1 + 2 * len(runs)) + "|"]
    for name in runs[0][1]:
        cells = []
        for _, rows in runs:
            hit = rows.get(name)
            cells += [f"{hit[0]} ms", hit[1]] if hit else ["-", "-"]
        shown = name if name.startswith(("floor", "database")) else f"`{name}`"
        lines.append(f"| {shown} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def update_readme(readme: Path = ROOT / "README.md") -> bool:
    """Rewrite the table between the README's markers; whether it changed."""
    text = readme.read_text(encoding="utf-8")
    before, _, rest = text.partition(TABLE_START + "\n")
    _, _, after = rest.partition(TABLE_END)
    new = before + TABLE_START + "\n" + readme_table() + TABLE_END + after
    if new != text:
        readme.write_text(new, encoding="utf-8")
    return new != text


FREEZE = ROOT / "tests" / "assets" / "freeze" / "300-lines.txt"
LOCK_TARGET = "sglang==0.4.6.post1"
LAUNCH = ["vllm", "serve", "Qwen/Qwen3-8B", "--tensor-parallel-size", "2"]


def deep_cache() -> Path:
    """Where `check --deep` keeps the facts of the files it read (compat.probe.deepcache)."""
    sys.path.insert(0, str(ROOT))
    from compat.matrix.tomlfile import cache_root

    return cache_root() / "deep"


FULL = "COMPAT_NO_REPLAY=1 "  # a row's prefix: the command with replays off (compat.answers)


def timed(
    cmd: list[str], runs: int, forget: Optional[Path] = None, full: bool = False
) -> tuple[list[float], int]:
    """Wall times (ms) of `runs` runs after one warm-up, and the largest max RSS (KiB); with
    `forget`, that folder is removed before each run; with `full`, no answer is replayed."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if full:
        env["COMPAT_NO_REPLAY"] = "1"
    out, peak = [], 0
    for i in range(runs + 1):
        if forget is not None:
            shutil.rmtree(forget, ignore_errors=True)
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT
        )
        _, _, usage = os.wait4(proc.pid, 0)
        elapsed = (time.perf_counter() - start) * 1000
        if i:
            out.append(elapsed)
            peak = max(peak, usage.ru_maxrss)
    return out, peak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--python", default=sys.executable, help="interpreter with compat installed")
    ap.add_argument("--markdown", action="store_true", help="also print the README's table rows")
    ap.add_argument(
        "--update-readme",
        action="store_true",
        help="only rewrite the README's speed table from the recorded runs (RECORDED)",
    )
    ap.add_argument(
        "--pycache-prefix",
        metavar="DIR",
        help="keep every command's bytecode under DIR (PYTHONPYCACHEPREFIX): for an environment "
        "whose site-packages holds no bytecode and cannot be written, as an installed one has",
    )
    args = ap.parse_args()
    if args.update_readme:
        print("README.md " + ("updated" if update_readme() else "already up to date"))
        return 0
    py = args.python
    if args.pycache_prefix:
        os.environ["PYTHONPYCACHEPREFIX"] = args.pycache_prefix
    subprocess.run([py, "-m", "compileall", "-q", str(ROOT / "compat")], check=True)
    compat = [py, "-m", "compat"]
    db_load = [py, "-c", "from compat.pipeline import load_database; load_database()"]
    commands: dict[str, list[str]] = {
        "python -c pass": [py, "-c", "pass"],
        "floor (scripts/floor.py)": [py, str(ROOT / "scripts" / "floor.py")],
        "pip check": [py, "-m", "pip", "check"],
    }
    beside = Path(py).parent / "uv"
    uv = str(beside) if beside.is_file() else shutil.which("uv")
    if uv:
        commands["uv pip check"] = [uv, "pip", "check", "--python", py]
    commands.update(
        {
            "compat env": [*compat, "env"],
            f"{FULL}compat env": [*compat, "env"],
            "compat env --json": [*compat, "env", "--json"],
            "compat check": [*compat, "check"],
            f"{FULL}compat check": [*compat, "check"],
            "compat check --deep (repeat)": [*compat, "check", "--deep"],
            f"{FULL}compat check --deep (repeat)": [*compat, "check", "--deep"],
            "compat check --from 300-line freeze": [*compat, "check", "--from", str(FREEZE)],
            "database load (python + import + load)": db_load,
            "compat check -- <launch command>": [*compat, "check", "--", *LAUNCH],
            f"{FULL}compat check -- <launch command>": [*compat, "check", "--", *LAUNCH],
            f"compat lock {LOCK_TARGET}": [*compat, "lock", LOCK_TARGET],
        }
    )
    # The warm-up run of `compat check` and `compat env` keeps their answers: the timed runs
    # are the repeat runs a launch sees. The FULL rows run every check in full.
    time.sleep(2.1)  # what was just installed or compiled is older than the racy window
    results = {
        name: timed(cmd, args.runs, full=name.startswith(FULL)) for name, cmd in commands.items()
    }
    results[f"{FULL}compat check --deep (no deep cache)"] = timed(
        [*compat, "check", "--deep"], args.runs, forget=deep_cache(), full=True
    )
    med = {name: statistics.median(v) for name, (v, _) in results.items()}
    floor, pip = med["floor (scripts/floor.py)"], med["pip check"]
    width = max(len(name) for name in results) + 2
    print(
        f"{'command':<{width}}{'median':>9}{'min':>9}{'max':>9}{'peak':>9}{'/floor':>8}{'/pip':>7}"
    )
    for name, (vals, peak) in results.items():
        print(
            f"{name:<{width}}{med[name]:>7.0f}ms{min(vals):>7.0f}ms{max(vals):>7.0f}ms"
            f"{peak / 1024:>7.0f}MB{med[name] / floor:>8.2f}{med[name] / pip:>7.2f}"
        )
    targets = [
        ("check <= 1.5x floor", med["compat check"] <= 1.5 * floor),
        ("env <= 1.3x floor", med["compat env"] <= 1.3 * floor),
        ("check --deep < 1 s", med[f"{FULL}compat check --deep (repeat)"] < 1000),
        (
            "check --deep without its cache < 1 s",
            med[f"{FULL}compat check --deep (no deep cache)"] < 1000,
        ),
        (
            "check --deep <= 1.5x check",
            med["compat check --deep (repeat)"] <= 1.5 * med["compat check"],
        ),
        (
            "in full too",
            med[f"{FULL}compat check --deep (repeat)"] <= 1.5 * med[f"{FULL}compat check"],
        ),
        (
            "check --from <= 1.5x (python + database load)",
            med["compat check --from 300-line freeze"]
            <= 1.5 * med["database load (python + import + load)"],
        ),
    ]
    print("targets: " + ", ".join(f"{t} {'met' if ok else 'NOT met'}" for t, ok in targets))
    prefix = f" pycache-prefix={args.pycache_prefix}" if args.pycache_prefix else ""
    print(f"runs={args.runs} python={py} cpus={os.cpu_count()} byte-compiled=yes{prefix}")
    if args.markdown:
        print("\n| command | median | / floor | / pip check | peak memory |\n|---|---|---|---|---|")
        for name, (_, peak) in results.items():
            print(
                f"| `{name}` | {med[name]:.0f} ms | {med[name] / floor:.2f} | "
                f"{med[name] / pip:.2f} | {peak / 1024:.0f} MiB |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
