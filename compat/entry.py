"""The program: the `compat` script and `python -m compat`.

A repeat `compat check`, `compat env` or `compat run` whose every input reads as it did is
answered from its record (compat.answers) before the command line is even parsed; everything
else goes to compat.cli. Either way the process ends without tearing the interpreter down
(`leave`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn, Union


def run() -> NoReturn:
    argv = sys.argv[1:]
    code: Union[str, int, None]
    if argv[:1] in (["check"], ["env"], ["run"]) and None not in (sys.stdout, sys.stderr):
        from compat import answers

        kept = answers.replay(argv)
        if kept is not None:
            out, err, status, then = kept
            status = _write(out, err, status)
            if then is not None and status == 0:
                exec_command(then)  # `compat run` after a clean check, as its full run does
            leave(status)
        answers.begin(argv)
    from compat.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code
    leave(code)


def _write(out: str, err: str, code: int) -> int:
    """A kept answer written as the full run writes it: the report, then the notes."""
    from compat.streams import escape_unencodable, reader_gone

    escape_unencodable()
    try:
        sys.stdout.write(out)
        sys.stdout.flush()
    except BrokenPipeError:
        reader_gone()
        return 0
    except OSError as exc:  # as the full run says it (compat.commands.common.write_report)
        from compat.errors import OutputError

        why = exc.strerror or exc
        sys.stderr.write(f"compat: error: cannot write the report to stdout: {why}\n")
        return OutputError.exit_code
    if err:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(err)
    return code


def exec_command(argv: list[str]) -> NoReturn:
    """Replace this process with argv (PATH lookup); 127 when not found, 126 when not runnable,
    as a shell says."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(argv[0], argv)
    except FileNotFoundError:
        sys.stderr.write(f"compat run: {argv[0]}: command not found\n")
        sys.exit(127)
    except OSError as exc:
        sys.stderr.write(f"compat run: {argv[0]}: {exc.strerror}\n")
        sys.exit(126)


def leave(code: Union[str, int, None]) -> NoReturn:
    """Out without tearing the interpreter down. Freeing every module and record one by one at
    exit costs more than a check's own judging (~20 ms of ~120 here); the kernel frees a
    process's memory at once. The exit handlers still run first (a Ray client's shutdown among
    them) and the streams are flushed; anything unusual (another thread alive, a stream that
    cannot be flushed, an exit status that is not a number) takes Python's normal way out,
    which reports it."""
    threading = sys.modules.get("threading")  # never imported: no other thread was started
    streams = (sys.stdout, sys.stderr)  # None when the process was started with one closed
    if (
        not isinstance(code, int)
        or (threading is not None and threading.active_count() != 1)
        or None in streams
    ):
        sys.exit(code)
    try:
        for stream in streams:
            stream.flush()
    except (OSError, ValueError):
        sys.exit(code)
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is None:  # another Python: its normal exit
        sys.exit(code)
    run_exit_handlers()
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code & 0xFF)
