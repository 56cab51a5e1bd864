"""Progress of long reads (sync, data update): one updating line on a terminal, lines in CI logs;
and SIGTERM turned into the same clean stop as Ctrl-C."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable, Optional, TextIO

Counter = Callable[[], tuple[int, int]]  # (requests, bytes received) so far


class Terminated(KeyboardInterrupt):
    """SIGTERM: stops the work as Ctrl-C does (temporary files removed on the way out)."""


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """While the block runs, SIGTERM raises Terminated in the main thread, so every `finally`
    and cleanup on the way out runs; the previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Progress:
    """Milestone lines, items planned and done, and the client's requests and bytes.

    On a terminal: one line rewritten a few times a second (`[12/35 projects] 340/1200 reads,
    45.2 MiB, 0:42  vllm`), milestones printed above it. Elsewhere (CI logs): the milestone
    lines only, one per project, with nothing rewritten.
    """

    def __init__(
        self,
        stream: Optional[TextIO] = None,
        tty: Optional[bool] = None,
        quiet: bool = False,
        interval: float = 0.2,
    ) -> None:
        self.stream = stream or sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.tty = (bool(isatty()) if callable(isatty) else False) if tty is None else tty
        self.quiet = quiet
        self.interval = interval
        self.planned = 0
        self.done = 0
        self.projects = (0, 0)
        self.label = ""
        self.counters: list[Counter] = []
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._width = 0

    # -- what the work reports -------------------------------------------------------------
    def __call__(self, line: str) -> None:
        """A milestone line."""
        if self.quiet:
            return
        with self._lock:
            self._clear()
            self.stream.write(line + "\n")
            self.stream.flush()

    def watch(self, counter: Counter) -> None:
        self.counters.append(counter)

    def add(self, n: int) -> None:
        with self._lock:
            self.planned += n

    def step(self, _: object = None) -> None:
        """One planned item finished (usable as a future's done-callback)."""
        with self._lock:
            self.done += 1

    def stage(self, label: str, done: int = 0, total: int = 0) -> None:
        with self._lock:
            self.label = label
            if total:
                self.projects = (done, total)

    # -- the terminal line -----------------------------------------------------------------
    def line(self) -> str:
        requests = sum(c()[0] for c in self.counters)
        received = sum(c()[1] for c in self.counters)
        elapsed = int(time.monotonic() - self._started)
        parts = []
        if self.projects[1]:
            parts.append(f"[{self.projects[0]}/{self.projects[1]}]")
        if self.planned:
            parts.append(f"{self.done}/{self.planned} reads")
        parts.append(
            f"{requests} requests, {received / 2**20:.1f} MiB, {elapsed // 60}:{elapsed % 60:02d}"
        )
        if self.label:
            parts.append(self.label)
        return " ".join(parts)

    def _clear(self) -> None:
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0

    def _draw(self) -> None:
        with self._lock:
            text = self.line()[:200]
            self.stream.write("\r" + text + " " * max(0, self._width - len(text)))
            self.stream.flush()
            self._width = len(text)

    def __enter__(self) -> Progress:
        if self.tty and not self.quiet:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._draw()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            with self._lock:
                self._clear()
                self.stream.flush()


def tracked(progress: Optional[Callable[[str], None]]) -> Optional[Progress]:
    """The Progress behind a progress callback, when it is one (plain callables take lines)."""
    return progress if isinstance(progress, Progress) else None
