"""The test command: formatter, linter, type checker, then the test suite (run by .ci/run).

Every gate runs even when an earlier one fails, so one run shows every problem; pytest runs
last so its summary line closes the output. Exit status: the worst of them.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PATHS = ["compat", "tests", "scripts"]

GATES: list[tuple[str, list[str]]] = [
    ("ruff format --check", [PY, "-m", "ruff", "format", "--check", *PATHS]),
    ("ruff check", [PY, "-m", "ruff", "check", *PATHS]),
    ("mypy --strict", [PY, "-m", "mypy"]),
]


def main(argv: list[str]) -> int:
    worst = 0
    for label, cmd in GATES:
        start = time.monotonic()
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        took = time.monotonic() - start
        status = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
        print(f"{label}: {status} in {took:.1f}s", flush=True)
        if done.returncode:
            sys.stdout.write(done.stdout[-6000:] + done.stderr[-3000:])
            worst = max(worst, 1)
    tests = subprocess.run([PY, "-m", "pytest", *argv], cwd=ROOT)
    return max(worst, tests.returncode)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
