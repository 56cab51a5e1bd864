"""The program's way out (compat.entry.run): exit handlers run, every byte is written, the exit
status is the command's, though the interpreter is not torn down."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from compat.cli import cli

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def program(*args: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    code = f"{prelude}\nimport sys\nsys.argv = ['compat', *{list(args)!r}]\n"
    code += "from compat.entry import run\nrun()\n"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120
    )


def test_a_long_report_through_a_pipe_arrives_whole() -> None:
    got = program("explain")
    want = CliRunner().invoke(cli, ["explain"])
    assert got.returncode == 0 == want.exit_code
    assert len(got.stdout) > 4096  # more than one pipe buffer's worth of writes
    assert got.stdout == want.output


def test_exit_handlers_run_before_the_process_ends() -> None:
    got = program("--version", prelude="import atexit; atexit.register(print, 'handler ran')")
    assert got.returncode == 0
    assert got.stdout.splitlines() == ["compat, version " + got.stdout.split()[2], "handler ran"]


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["--version"], 0),
        (["check", "--from", "/nonexistent/freeze.txt"], 3),
        (["check", "--no-such-flag"], 2),
        (["explain", "NO-SUCH-CODE"], 2),
    ],
)
def test_the_exit_status_is_the_commands(args: list[str], status: int) -> None:
    got = program(*args)
    assert got.returncode == status, got.stderr
    if status:
        assert got.stderr.strip()  # said why, and it was flushed


def test_findings_give_status_1_and_the_report(tmp_path: Path) -> None:
    freeze = tmp_path / "freeze.txt"
    freeze.write_text("vllm==0.10.1.1\ntorch==2.6.0\n")
    got = program("check", "--from", str(freeze))
    assert got.returncode == 1
    assert "framework-pin" in got.stdout


def test_a_closed_stdout_keeps_the_commands_status() -> None:
    """Started with stdout closed (`>&-`), sys.stdout is None: the way out gives the status
    main() gives (a usage error 2; a report that cannot be written is an internal error, 70),
    with no traceback of its own."""

    def status(entry: str, args: list[str]) -> tuple[int, str]:
        module, name = entry.split(":")
        code = f"import sys\nsys.argv = ['compat', *{args!r}]\n"
        code += f"from {module} import {name}\n{name}()\n"
        got = subprocess.run(
            [sys.executable, "-c", code],
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
            timeout=120,
            pass_fds=(),
            preexec_fn=lambda: os.close(1),
        )
        return got.returncode, got.stderr

    for args in (["check", "--no-such-flag"], ["--version"], ["explain"]):
        want, _ = status("compat.cli:main", args)
        got, err = status("compat.entry:run", args)
        assert got == want, (args, got, want, err)
        assert "Traceback" not in err
