"""The standard streams as every way out of compat leaves them (compat.cli, a replayed answer)."""

from __future__ import annotations

import contextlib
import os
import sys


def escape_unencodable() -> None:
    """A terminal or pipe that cannot encode a report's characters (PYTHONIOENCODING=ascii, the
    C locale of an old image) gets them escaped rather than a UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")


def reader_gone() -> None:
    """The reader went away (`compat env | head`): not an error of ours; the flush at exit is
    silenced too."""
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), sys.stdout.fileno())
