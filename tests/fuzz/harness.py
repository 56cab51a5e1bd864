"""Fuzz harness: one input through compat's CLI or an in-process entry point, classified."""

from __future__ import annotations

import contextlib
import enum
import json
import os
import re
import resource
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

# The promise under test: no input runs longer than this, grows memory past the budget, or
# comes near the hard cap that stands in for "eats the machine".
TIMEOUT_S = 10.0
MEM_CAP = 1 << 30  # RLIMIT_AS headroom for one input (1 GiB)
RSS_BUDGET_MIB = 200.0  # peak RSS of a CLI run; growth over the fork's start in-process
CAPTURE = 1 << 20  # bytes of stdout/stderr kept per run (the rest is counted, not kept)

# Exit codes of a clean error (compat.errors and cli.main): usage, input/data, network,
# report not written, interrupted.
CLEAN_EXITS = frozenset({2, 3, 4, 74, 130})
TRACEBACK = "Traceback (most recent call last)"


class Outcome(str, enum.Enum):
    OK = "ok"  # exit 0/1 with a report; in-process: returned
    CLEAN_ERROR = "clean-error"  # exit 2/3/4/74 with `compat: error:`; in-process: CompatError
    CRASH = "crash"  # a traceback, exit 70, a signal, any other exception in-process
    HANG = "hang"  # over TIMEOUT_S wall clock
    MEMORY = "memory"  # MemoryError, the cap hit, or peak RSS over the budget
    LEAK = "leak"  # a planted secret came back out
    WRONG = "wrong"  # a differential oracle disagreed (a silent wrong answer)


PASSING = frozenset({Outcome.OK, Outcome.CLEAN_ERROR})


class WrongAnswer(AssertionError):
    """Raised by a target whose oracle (the same question asked a trusted way) disagrees."""


@dataclass
class Result:
    outcome: Outcome
    detail: str = ""  # the crash class, the secret that leaked, why it counts as a hang...
    rc: Optional[int] = None
    elapsed_s: float = 0.0
    peak_mib: float = 0.0
    stdout: str = ""
    stderr: str = ""
    traceback: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome in PASSING

    @property
    def signature(self) -> str:
        """What groups results into one class: outcome and detail (no addresses, no numbers)."""
        return f"{self.outcome.value}: {self.detail}"

    def short(self) -> str:
        return (
            f"{self.outcome.value} rc={self.rc} {self.elapsed_s:.2f}s "
            f"{self.peak_mib:.0f}MiB {self.detail} | {self.stderr.strip()[-300:]}"
        )


# --------------------------------------------------------------------------------------------
# Crash classes
# --------------------------------------------------------------------------------------------

_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)', re.M)
_EXC_LINE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::|$)", re.M)


def _short_path(path: str) -> str:
    p = path.replace("\\", "/")
    i = p.rfind("/compat/")
    if i >= 0:
        return p[i + 1 :]
    i = p.rfind("/lib/python")
    if i >= 0:
        return p[p.find("/", i + 5) + 1 :]
    return p.rsplit("/", 1)[-1]


def crash_class(tb_text: str) -> str:
    """`ExcType in compat/file.py:func` (innermost frame in compat), from a traceback's text.

    The last traceback of a chain is the one that escaped; frames outside compat (json,
    packaging, tomllib) are named after the compat frame that called into them.
    """
    blocks = tb_text.split(TRACEBACK)
    last = blocks[-1] if len(blocks) > 1 else tb_text
    frames = list(_FRAME.finditer(last))
    frames = [
        f for f in frames if "/tests/fuzz/" not in f.group("file") or f.group("func") == "emit"
    ]
    exc_type = "?"
    tail = last[frames[-1].end() :] if frames else last
    for line in tail.splitlines():
        m = _EXC_LINE.match(line)
        if m and not line.startswith(" "):
            exc_type = m.group("type").rsplit(".", 1)[-1]
    own = [f for f in frames if "/compat/" in f.group("file").replace("\\", "/")]
    own = [f for f in own if "/tests/" not in f.group("file")]
    where = ""
    if own:
        f = own[-1]
        where = f"{_short_path(f.group('file'))}:{f.group('func')}"
    if frames and (not own or frames[-1] is not own[-1]):
        inner = frames[-1]
        if inner.group("func") == "emit" and inner.group("file").endswith("targets.py"):
            where += " -> writing the report to stdout (UTF-8, strict)"
        else:
            where += f" -> {_short_path(inner.group('file'))}:{inner.group('func')}"
    return f"{exc_type} in {where.strip() or '?'}"


_DUMP_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>\S+)', re.M)


def hang_class(dump: str) -> str:
    """Where a run was when its time ran out, from a faulthandler dump (innermost frame first):
    `in compat/file.py:func`, with the innermost frame outside compat after `->`."""
    block = dump.split("Current thread", 1)[-1] if "Current thread" in dump else dump
    frames = [f for f in _DUMP_FRAME.finditer(block) if "/tests/fuzz/" not in f.group("file")]
    if not frames:
        return ""
    own = [f for f in frames if "/compat/" in f.group("file").replace("\\", "/")]
    where = f"{_short_path(own[0].group('file'))}:{own[0].group('func')}" if own else ""
    if not own or frames[0] is not own[0]:
        where += f" -> {_short_path(frames[0].group('file'))}:{frames[0].group('func')}"
    return f"in {where.strip()}"


def find_leaks(texts: Sequence[str], secrets: Sequence[str]) -> list[str]:
    return [s for s in secrets if s and any(s in t for t in texts)]


# What each planted needle stands for (the leak's class names the kind of secret).
SECRET_KINDS: dict[str, str] = {}


def _leak_detail(leaked: Sequence[str]) -> str:
    kinds = sorted({SECRET_KINDS.get(s, "secret") for s in leaked})
    return "secret printed back: " + ", ".join(kinds)


# --------------------------------------------------------------------------------------------
# Subprocess runs of the real CLI
# --------------------------------------------------------------------------------------------


def _limits(mem: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


class _Drain(threading.Thread):
    """Reads a pipe to its end, keeping the first CAPTURE bytes."""

    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.kept = bytearray()
        self.total = 0

    def run(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while True:
                chunk = self.stream.read(65536)
                if not chunk:
                    break
                self.total += len(chunk)
                if len(self.kept) < CAPTURE:
                    self.kept += chunk[: CAPTURE - len(self.kept)]

    def text(self) -> str:
        return bytes(self.kept).decode("utf-8", "replace")


def _wait(pid: int, deadline: float) -> tuple[Optional[int], Optional[Any]]:
    """(wait status, rusage) of `pid`, or (None, None) at the deadline."""
    pause = 0.002
    while True:
        wpid, status, usage = os.wait4(pid, os.WNOHANG)
        if wpid == pid:
            return status, usage
        if time.monotonic() >= deadline:
            return None, None
        time.sleep(pause)
        pause = min(pause * 1.5, 0.02)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _rc(status: int) -> int:
    return os.waitstatus_to_exitcode(status)


Stdin = Union[bytes, str, None]  # bytes fed to stdin; str: a path opened as stdin


def run_cli(
    args: Sequence[str],
    *,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[Union[str, Path]] = None,
    stdin: Stdin = b"",
    stdout_path: Optional[str] = None,
    secrets: Sequence[str] = (),
    outputs: Sequence[Union[str, Path]] = (),
    timeout: float = TIMEOUT_S,
    mem: int = MEM_CAP,
    rss_budget: float = RSS_BUDGET_MIB,
    allow_exit: Sequence[int] = (),
) -> Result:
    """`python -m compat ARGS` in its own session, bounded in time and address space.

    `stdout_path` sends stdout to that file (e.g. /dev/full) instead of a pipe; `outputs` are
    files the run may write, searched for `secrets` along with stdout and stderr. `allow_exit`
    are further exit codes that are not a crash (those of a command `compat run` execs).
    """
    crash_dir = tempfile.mkdtemp(prefix="fuzz-crash-")
    full_env = dict(os.environ if env is None else env)
    full_env["TMPDIR"] = crash_dir  # compat writes its crash report here: the crash class
    full_env.setdefault("PYTHONHASHSEED", "0")
    full_env["PYTHONFAULTHANDLER"] = "1"  # SIGABRT at the deadline prints where it hung
    stdin_arg: Any = subprocess.PIPE if isinstance(stdin, bytes) else subprocess.DEVNULL
    opened: list[Any] = []
    if isinstance(stdin, str):
        stdin_arg = os.open(stdin, os.O_RDONLY | os.O_NONBLOCK)
        opened.append(stdin_arg)
    out_arg: Any = subprocess.PIPE
    if stdout_path is not None:
        out_arg = os.open(stdout_path, os.O_WRONLY)
        opened.append(out_arg)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "compat", *args],
        stdin=stdin_arg,
        stdout=out_arg,
        stderr=subprocess.PIPE,
        env=full_env,
        cwd=None if cwd is None else str(cwd),
        preexec_fn=_limits(mem),
        start_new_session=True,
    )
    for fd in opened:
        os.close(fd)
    drains = [_Drain(proc.stderr)]
    if proc.stdout is not None:
        drains.append(_Drain(proc.stdout))
    for d in drains:
        d.start()
    if isinstance(stdin, bytes) and proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.write(stdin)
        with contextlib.suppress(OSError):
            proc.stdin.close()
    status, usage = _wait(proc.pid, started + timeout)
    hung = status is None
    if hung:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGABRT)
        status, usage = _wait(proc.pid, time.monotonic() + 2)
    _kill_group(proc.pid)  # the run, or anything it left behind (a hung fake nvidia-smi)
    if hung and status is None:
        status, usage = _wait(proc.pid, time.monotonic() + 30)
    elapsed = time.monotonic() - started
    proc.returncode = _rc(status) if status is not None else -9
    for d in drains:
        d.join(5)
    for stream in (proc.stdout, proc.stderr, proc.stdin):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    peak = (usage.ru_maxrss / 1024.0) if usage is not None else 0.0
    stderr = drains[0].text()
    stdout = drains[1].text() if len(drains) > 1 else ""
    reports = sorted(Path(crash_dir).glob("compat-crash-*.txt"))
    tb = ""
    for rep in reports:
        with contextlib.suppress(OSError):
            tb = rep.read_text(encoding="utf-8", errors="replace")
    if not tb and TRACEBACK in stderr:
        tb = stderr[stderr.find(TRACEBACK) :]
    with contextlib.suppress(OSError):
        for rep in Path(crash_dir).iterdir():
            rep.unlink()
        os.rmdir(crash_dir)
    out_texts = [stdout, stderr, tb]
    for path in outputs:
        with contextlib.suppress(OSError), open(path, "rb") as fh:
            out_texts.append(fh.read(CAPTURE * 4).decode("utf-8", "replace"))
    res = Result(Outcome.OK, "", proc.returncode, elapsed, peak, stdout, stderr, tb)
    rc = proc.returncode
    if hung:
        where = hang_class(stderr)
        res.outcome = Outcome.HANG
        res.detail = f"no answer within {timeout:g} s" + (f" ({where})" if where else "")
    elif "MemoryError" in stderr or "MemoryError" in tb:
        res.outcome, res.detail = Outcome.MEMORY, "MemoryError at the address-space cap"
        if tb:
            res.detail += f" ({crash_class(tb)})"
    elif TRACEBACK in stderr:
        res.outcome, res.detail = Outcome.CRASH, "traceback on stderr: " + crash_class(stderr)
    elif rc == 70:
        res.outcome = Outcome.CRASH
        res.detail = crash_class(tb) if tb else "exit 70: " + _last_words(stderr)
    elif rc < 0:
        res.outcome, res.detail = Outcome.CRASH, f"killed by signal {-rc}"
    elif peak > rss_budget:
        res.outcome, res.detail = Outcome.MEMORY, f"peak RSS over {rss_budget:g} MiB"
    elif rc in (0, 1) or rc in allow_exit:
        res.outcome = Outcome.OK
    elif rc in CLEAN_EXITS or rc in (126, 127):
        # `compat: error: ...` (and its hint), click's `Error: ...` for usage, `compat run: ...`
        # from exec, `compat lint: ...` after its `file:line: unreadable:` lines.
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        clean = any(
            ln.startswith(("compat: error:", "Error:", "Usage:", "compat run:", "compat lint:"))
            or ln in ("aborted", "interrupted")
            for ln in lines
        )
        if clean:
            res.outcome = Outcome.CLEAN_ERROR
        else:
            res.outcome, res.detail = Outcome.CRASH, f"exit {rc} without an error message"
    else:
        res.outcome, res.detail = Outcome.CRASH, f"unexpected exit {rc}"
    if res.outcome in PASSING:
        leaked = find_leaks(out_texts, secrets)
        if leaked:
            res.outcome, res.detail = Outcome.LEAK, _leak_detail(leaked)
    return res


def _last_words(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    return lines[-1][:160] if lines else ""


# --------------------------------------------------------------------------------------------
# In-process runs: fork per input
# --------------------------------------------------------------------------------------------


def _status_kib(key: str) -> int:
    with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    try:
        return repr(value)
    except Exception:  # a repr that fails is the target's problem, not a leak
        return ""


def _child(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    wfd: int,
    secrets: Sequence[str],
    env: Optional[Mapping[str, Optional[str]]],
    cwd: Optional[str],
    mem: int,
    dump: tuple[int, float],
) -> None:
    code = 0
    try:
        import faulthandler

        # Where the run is when its time is nearly out: the parent reads it if it hangs.
        faulthandler.dump_traceback_later(dump[1], exit=False, file=dump[0])
        os.setpgid(0, 0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        if env:
            for k, v in env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        if cwd:
            os.chdir(cwd)
        vm = _status_kib("VmSize") * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + mem, resource.RLIM_INFINITY))
        with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # the peak RSS (VmHWM) restarts from here
        base = _status_kib("VmRSS")
        out: dict[str, Any] = {"outcome": Outcome.OK.value, "detail": "", "tb": ""}
        texts: list[str] = []
        try:
            value = fn(*args)
            texts.append(_text_of(value))
        except MemoryError:
            out["outcome"] = Outcome.MEMORY.value
            out["detail"] = "MemoryError at the address-space cap"
            out["tb"] = traceback.format_exc()[-4000:]
            out["detail"] += f" ({crash_class(out['tb'])})"
        except WrongAnswer as exc:
            out["outcome"], out["detail"] = Outcome.WRONG.value, str(exc)[:300]
        except BaseException as exc:
            from compat.errors import CompatError

            if isinstance(exc, CompatError):
                out["outcome"] = Outcome.CLEAN_ERROR.value
                texts.append(f"{exc.message}\n{exc.hint or ''}")
            else:
                out["outcome"] = Outcome.CRASH.value
                try:
                    tb = traceback.format_exc()
                    # Head and tail: a RecursionError's thousand frames would hide where the
                    # recursion started.
                    out["tb"] = tb if len(tb) < 12000 else f"{tb[:6000]}\n...\n{tb[-6000:]}"
                except BaseException:
                    out["tb"] = f"{type(exc).__name__} (traceback unavailable)"
                out["detail"] = crash_class(out["tb"])
                try:
                    out["message"] = f"{type(exc).__name__}: {exc}"[:300]
                except BaseException:
                    out["message"] = type(exc).__name__
        peak = _status_kib("VmHWM")
        out["grown_mib"] = max(0, peak - base) / 1024.0
        if out["outcome"] in (Outcome.OK.value, Outcome.CLEAN_ERROR.value):
            leaked = find_leaks(texts, secrets)
            if leaked:
                out["outcome"] = Outcome.LEAK.value
                out["detail"] = _leak_detail(leaked)
        out["text"] = "\n".join(texts)[:2000]
        data = json.dumps(out, ensure_ascii=True).encode("ascii")
        view = memoryview(data)
        while view:
            n = os.write(wfd, view)
            view = view[n:]
    except BaseException:
        code = 3
    finally:
        os._exit(code)


def run_inproc(
    fn: Callable[..., Any],
    *args: Any,
    secrets: Sequence[str] = (),
    env: Optional[Mapping[str, Optional[str]]] = None,
    cwd: Optional[str] = None,
    timeout: float = TIMEOUT_S,
    mem: int = MEM_CAP,
    rss_budget: float = RSS_BUDGET_MIB,
) -> Result:
    """fn(*args) in a forked child: its own address-space cap, a wall-clock bound, its own
    environment and working directory; whatever it does cannot touch this process.

    A CompatError is a clean error; any other exception a crash; a return value (and a clean
    error's message) is searched for the planted `secrets`.
    """
    with tempfile.TemporaryFile() as dump_file:
        return _fork_and_wait(fn, args, secrets, env, cwd, timeout, mem, rss_budget, dump_file)


def _fork_and_wait(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    secrets: Sequence[str],
    env: Optional[Mapping[str, Optional[str]]],
    cwd: Optional[str],
    timeout: float,
    mem: int,
    rss_budget: float,
    dump_file: Any,
) -> Result:
    rfd, wfd = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        os.close(rfd)
        _child(fn, args, wfd, secrets, env, cwd, mem, (dump_file.fileno(), max(0.1, timeout - 0.5)))
    os.close(wfd)
    chunks: list[bytes] = []
    deadline = started + timeout
    hung = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                hung = True
                break
            ready, _, _ = select.select([rfd], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(rfd, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(rfd)
    if hung:
        _kill_group(pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    status, _usage = _wait(pid, time.monotonic() + 30)
    _kill_group(pid)  # whatever it started and left running
    elapsed = time.monotonic() - started
    rc = _rc(status) if status is not None else None
    if hung:
        dump_file.seek(0)
        where = hang_class(dump_file.read(1 << 20).decode("utf-8", "replace"))
        detail = f"no answer within {timeout:g} s" + (f" ({where})" if where else "")
        return Result(Outcome.HANG, detail, rc, elapsed)
    try:
        out = json.loads(b"".join(chunks).decode("ascii"))
    except ValueError:
        what = f"killed by signal {-rc}" if rc is not None and rc < 0 else f"child exited {rc}"
        return Result(Outcome.CRASH, f"died without a result ({what})", rc, elapsed)
    res = Result(
        Outcome(out["outcome"]),
        out.get("detail", ""),
        rc,
        elapsed,
        float(out.get("grown_mib", 0.0)),
        out.get("text", ""),
        out.get("message", ""),
        out.get("tb", ""),
    )
    if res.passed and res.peak_mib > rss_budget:
        res.outcome, res.detail = Outcome.MEMORY, f"grew by more than {rss_budget:g} MiB"
    return res


@dataclass
class Tally:
    """Counts per surface and outcome, the distinct classes with an example input each."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    classes: dict[str, dict[str, Any]] = field(default_factory=dict)
    peak_mib: float = 0.0
    peak_case: str = ""
    slowest_s: float = 0.0
    slowest_case: str = ""
    inputs: int = 0

    def add(self, surface: str, name: str, res: Result, example: Any = None) -> None:
        self.inputs += 1
        per = self.counts.setdefault(surface, {})
        per[res.outcome.value] = per.get(res.outcome.value, 0) + 1
        if res.peak_mib > self.peak_mib:
            self.peak_mib, self.peak_case = res.peak_mib, f"{surface} {name}"
        if res.passed and res.elapsed_s > self.slowest_s:
            self.slowest_s, self.slowest_case = res.elapsed_s, f"{surface} {name}"
        if res.passed:
            return
        key = f"{surface} | {res.signature}"
        cls = self.classes.setdefault(
            key,
            {
                "surface": surface,
                "outcome": res.outcome.value,
                "detail": res.detail,
                "count": 0,
                "example": name,
                "example_size": None,
                "message": (res.stderr or "")[-300:],
                "traceback": res.traceback[-3000:],
            },
        )
        cls["count"] += 1
        size = _size_of(example)
        if size is not None and (cls["example_size"] is None or size < cls["example_size"]):
            cls["example"], cls["example_size"] = name, size
            cls["input"] = example

    def failures(self) -> int:
        return sum(
            n for per in self.counts.values() for o, n in per.items() if o not in _PASSING_VALUES
        )


_PASSING_VALUES = frozenset(o.value for o in PASSING)


def _size_of(example: Any) -> Optional[int]:
    if example is None:
        return None
    if isinstance(example, (bytes, str)):
        return len(example)
    try:
        return len(json.dumps(example, default=repr))
    except (TypeError, ValueError, RecursionError):
        return None
