"""`compat run -- CMD`: the launch guard, with real processes (exec, exit codes, signals)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ASSETS = Path(__file__).parent / "assets"
GOOD = str(ASSETS / "freeze" / "sglang-0.4.6-good.txt")
BAD = str(ASSETS / "freeze" / "sglang-0.4.6-torch-2.7.1.txt")
UNDER_RAY = str(ASSETS / "diff" / "seed002-under-ray.json")


def compat(
    *args: str, env: dict[str, str] | None = None, **kw: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "compat", "run", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        **kw,
    )  # type: ignore[call-overload]


def test_cmd_exit_code_passes_through() -> None:
    proc = compat(
        "--from", GOOD, "--", sys.executable, "-c", "import sys; print('up'); sys.exit(7)"
    )
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout == "up\n"  # the report never goes to CMD's stdout


def test_a_failing_check_never_runs_cmd(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    proc = compat("--from", BAD, "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')")
    assert proc.returncode == 1
    assert not marker.exists()
    assert proc.stdout == ""
    assert "[torch-triton] triton 3.1.0 does not match torch 2.7.1" in proc.stderr
    assert "compat run: not starting" in proc.stderr


def test_fail_on_and_ignore_let_it_start(tmp_path: Path) -> None:
    code = "import sys; sys.exit(3)"
    assert (
        compat("--from", BAD, "--fail-on", "never", "--", sys.executable, "-c", code).returncode
        == 3
    )
    ignored = compat(
        "--from",
        BAD,
        "--ignore",
        "framework-pin",
        "--ignore",
        "torch-triton",
        "--ignore",
        "torch-companion",
        # sgl-kernel 0.1.0 in this freeze is built for torch 2.4-2.6 (build facts).
        "--ignore",
        "kernel-torch",
        "--",
        sys.executable,
        "-c",
        code,
    )
    assert ignored.returncode == 3, ignored.stderr


def test_exec_keeps_the_pid_and_cmd_gets_sigterm() -> None:
    child = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(42))\n"
        "print(os.getpid(), flush=True)\n"
        "time.sleep(30)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-m", "compat", "run", "--from", GOOD, "--", sys.executable, "-c", child],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert int(line) == proc.pid  # compat exec'd CMD: same process, no wrapper between
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 42
        finally:
            if proc.poll() is None:
                proc.kill()


def test_sigterm_default_disposition_kills_cmd() -> None:
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "compat",
            "run",
            "--from",
            GOOD,
            "--",
            sys.executable,
            "-c",
            "import time; print('up', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "up\n"
            os.kill(proc.pid, signal.SIGTERM)
            assert proc.wait(timeout=20) == -signal.SIGTERM
        finally:
            if proc.poll() is None:
                proc.kill()


def test_command_not_found_is_127() -> None:
    proc = compat("--from", GOOD, "--", "compat-test-no-such-command")
    assert proc.returncode == 127
    assert "command not found" in proc.stderr


def test_usage_errors() -> None:
    assert compat().returncode == 2
    assert compat("--from", str(ASSETS / "missing.json"), "--", "true").returncode == 3


@pytest.fixture
def fake_python(tmp_path: Path) -> dict[str, str]:
    """A `python3` first on PATH that says what it was started with (stands in for a server)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "python3"
    script.write_text('#!/bin/sh\necho "started: $*"\nexit 0\n')
    script.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_the_launch_command_is_checked(fake_python: dict[str, str]) -> None:
    # seed 002: sglang 0.5.12 under Ray, TP 4, memory saver, custom all-reduce on -> COMPAT-0003
    server = [
        "python3",
        "-m",
        "sglang.launch_server",
        "--model-path",
        "M",
        "--tp-size",
        "4",
        "--enable-memory-saver",
    ]
    blocked = compat("--from", UNDER_RAY, "--", *server, env=fake_python)
    assert blocked.returncode == 1
    assert "COMPAT-0003" in blocked.stderr and "started" not in blocked.stdout
    # with the advisory's workaround in the command, the server starts (the snapshot was taken
    # before torchao and sgl-deep-gemm were in the stack table, so it does not list the ones
    # sglang 0.5.12 pins: those framework-pin errors are not this test's subject)
    ok = compat(
        "--from",
        UNDER_RAY,
        "--ignore",
        "framework-pin",
        "--",
        *server,
        "--disable-custom-all-reduce",
        env=fake_python,
    )
    assert ok.returncode == 0, ok.stderr
    assert (
        ok.stdout == "started: -m sglang.launch_server --model-path M --tp-size 4 "
        "--enable-memory-saver --disable-custom-all-reduce\n"
    )
