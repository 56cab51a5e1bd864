"""Stat fields that tell a file or folder apart from what was there before (standard library
only: a replayed answer, compat.answers, compares them before anything else is imported)."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional


def stamp(path: str, follow: bool = True) -> Optional[list[int]]:
    """The stat fields a write or a replacement changes; None when there is nothing there."""
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except (OSError, ValueError):
        return None
    return [st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]
