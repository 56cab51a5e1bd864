"""Runs `compat ARGS` with a fault of the test's choosing: SIGKILL (or SIGINT) to itself at the
Nth os.replace/os.rename, or SIGINT at the first METADATA read. Used only by the kill tests:
python killsync.py MODE N -- compat args...  (MODE: kill-at-rename | int-at-read | none)."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, Callable


def main() -> None:
    mode, n = sys.argv[1], int(sys.argv[2])
    args = sys.argv[sys.argv.index("--") + 1 :]
    count = [0]

    def wrap(real: Callable[..., Any]) -> Callable[..., Any]:
        def step(*a: Any, **k: Any) -> Any:
            count[0] += 1
            if count[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*a, **k)

        return step

    if mode == "kill-at-rename":
        os.replace = wrap(os.replace)  # type: ignore[assignment]
        os.rename = wrap(os.rename)  # type: ignore[assignment]
    elif mode == "int-at-read":
        from compat.matrix import pypi

        real = pypi.PyPIClient.metadata

        def interrupted(self: Any, *a: Any, **k: Any) -> Any:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would, while reads are in flight
            return real(self, *a, **k)

        pypi.PyPIClient.metadata = interrupted  # type: ignore[method-assign]
    from compat.cli import main as compat_main

    compat_main(args)


if __name__ == "__main__":
    main()
