"""Where the database in use lives (compat.channel.source decides); every reader asks here."""

from __future__ import annotations

from pathlib import Path


def matrices_dir() -> Path:
    """The database folder in use: $COMPAT_MATRICES, the user folder when newer, the installed
    data (compat-data, compat's bundled copy, or the source checkout's matrices/)."""
    from compat.channel.source import check_complete, locate

    root = locate().root
    check_complete(root)
    return root


def generated_dir() -> Path:
    return matrices_dir() / "generated"


def curated_dir() -> Path:
    return matrices_dir() / "curated"


def advisories_dir() -> Path:
    return matrices_dir() / "advisories"
