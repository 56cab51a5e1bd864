"""Child processes the probes run (nvidia-smi, the NVML child, another interpreter), bounded in
time and in what they may print: a hung driver costs the timeout, a flooding one the limit, and
neither can hang compat or fill its memory."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # standard library only at run time: a replayed check forks NVML from here
    import subprocess
    from collections.abc import Callable, Sequence
    from typing import Optional

# What a probe child legitimately prints is a few KiB (nvidia-smi's CSV for 72 GPUs ~10 KiB).
DEFAULT_LIMIT = 1024 * 1024


class Outcome:
    """How a bounded child ended. A plain class (not a record type): this module is imported
    before anything else when a check's answer is replayed (compat.answers)."""

    __slots__ = ("problem", "returncode", "stderr", "stdout")

    def __init__(
        self, returncode: Optional[int], stdout: bytes, stderr: bytes, problem: str = ""
    ) -> None:
        self.returncode = returncode  # None when killed (timeout or flood)
        self.stdout = stdout
        self.stderr = stderr
        self.problem = problem  # why it was killed or could not run ("" when it exited itself)

    def __setattr__(self, name: str, value: object) -> None:
        if hasattr(self, name):
            raise AttributeError(f"Outcome.{name} is read-only")
        object.__setattr__(self, name, value)


def run(
    argv: Sequence[str],
    timeout: float,
    limit: int = DEFAULT_LIMIT,
    env: Optional[dict[str, str]] = None,
    cwd: Optional[str] = None,
) -> Outcome:
    """Run `argv` with no stdin; kill it (and its process group) past `timeout` seconds or once
    its output passes `limit` bytes."""
    import subprocess

    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,  # its children go with it when it is killed
        )
    except OSError as exc:
        return Outcome(None, b"", b"", f"could not run: {exc.strerror or exc}")
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    out: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    open_fds = list(out)
    total = 0
    end = time.monotonic() + timeout
    problem = ""
    try:
        while open_fds:
            left = end - time.monotonic()
            if left <= 0:
                problem = f"did not answer within {timeout:g} s"
                break
            ready, _, _ = select.select(open_fds, [], [], left)
            for fd in ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    open_fds.remove(fd)
                    continue
                out[fd].append(chunk)
                total += len(chunk)
            if total > limit:
                problem = f"printed more than {limit} bytes"
                break
        if not problem:
            try:
                proc.wait(max(0.0, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                problem = f"did not exit within {timeout:g} s"
    finally:
        if problem or proc.poll() is None:
            _kill(proc)
        proc.stdout.close()
        proc.stderr.close()
    stdout, stderr = b"".join(out[out_fd]), b"".join(out[err_fd])
    return Outcome(None if problem else proc.returncode, stdout[:limit], stderr[:limit], problem)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    import subprocess

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        with contextlib.suppress(OSError):
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def can_fork() -> bool:
    """Whether a forked child is safe here: a POSIX fork of a single-threaded process (a child
    of a threaded one could inherit a lock another thread held, in a Ray worker say)."""
    import threading

    return hasattr(os, "fork") and threading.active_count() == 1


def forked(work: Callable[[], bytes], timeout: float, limit: int = DEFAULT_LIMIT) -> Outcome:
    """`work()` in a forked copy of this process: what it returns is its stdout. The same
    bounds as `run` (killed past `timeout` or `limit`, a crash is a signal, never compat's),
    without starting a second interpreter. Callers check `can_fork()` first."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 0
        try:
            os.close(read_fd)
            os.setsid()  # its own group, killed with everything it starts
            # quiet as the subprocess path is: a driver's messages or a crash handler's dump
            # must not reach compat's own stderr
            import faulthandler

            faulthandler.disable()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            data = work()[: limit + 1]
            view = memoryview(data)
            while view:
                view = view[os.write(write_fd, view) :]
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks: list[bytes] = []
    total = 0
    end = time.monotonic() + timeout
    problem = ""
    try:
        while True:
            left = end - time.monotonic()
            if left <= 0:
                problem = f"did not answer within {timeout:g} s"
                break
            ready, _, _ = select.select([read_fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                problem = f"printed more than {limit} bytes"
                break
        status = _reap(pid, end, problem)
    finally:
        os.close(read_fd)
    if status is None:
        return Outcome(None, b"", b"", problem or f"did not exit within {timeout:g} s")
    code = os.waitstatus_to_exitcode(status)
    return Outcome(code, b"".join(chunks)[:limit], b"", "")


def _reap(pid: int, end: float, problem: str) -> Optional[int]:
    """The child's wait status, or None once it was killed (a problem, or past `end`)."""
    while not problem:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() >= end:
            break
        time.sleep(0.001)
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0)
    return None
