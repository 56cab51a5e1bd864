"""The examples in README.md and docs/*.md are run, so what they show is what compat prints.

An example is a fenced block whose first line is `$ compat ...`. Its other lines are the output,
compared line by line in order: a line `...` skips any number of lines, `[...]` inside a line
matches any text there, and trailing spaces do not count. The exit code is not part of the block;
the command runs from the repository root with this checkout's compat, offline.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```[a-z]*\n(\$ compat .*?)^```", re.M | re.S)


def examples() -> list[tuple[str, str, list[str]]]:
    out = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for m in FENCE.finditer(doc.read_text(encoding="utf-8")):
            first, *rest = m.group(1).rstrip("\n").split("\n")
            out.append((doc.name, first[2:], rest))
    return out


def _line_matches(pattern: str, line: str) -> bool:
    parts = [re.escape(p) for p in pattern.rstrip().split("[...]")]
    return re.fullmatch(".*".join(parts), line.rstrip()) is not None


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether `actual` is `expected` with each `...` line standing for any lines."""
    if not expected:
        return not actual
    head, rest = expected[0], expected[1:]
    if head.strip() == "...":
        return any(matches(rest, actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and _line_matches(head, actual[0]) and matches(rest, actual[1:])


EXAMPLES = examples()


def test_the_docs_have_examples() -> None:
    assert len(EXAMPLES) >= 5, [e[1] for e in EXAMPLES]


@pytest.mark.parametrize(
    ("doc", "command", "expected"),
    EXAMPLES,
    ids=[f"{d}:{c[:60]}" for d, c, _ in EXAMPLES],
)
def test_example_output_is_what_compat_prints(
    doc: str, command: str, expected: list[str], tmp_path: Path
) -> None:
    argv = shlex.split(command)
    assert argv[0] == "compat"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "100",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "compat", *argv[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode != 70, proc.stderr  # a crash is never an example
    actual = (proc.stdout + proc.stderr).rstrip("\n").split("\n")
    assert matches(expected, actual), (
        f"{doc}: `{command}` prints\n" + "\n".join(actual) + "\n\nexpected\n" + "\n".join(expected)
    )
