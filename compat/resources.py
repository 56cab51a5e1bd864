"""Where the bundled database lives: inside the wheel, or at the repository root when editable."""

from __future__ import annotations

import os
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def matrices_dir() -> Path:
    """The database folder: $COMPAT_MATRICES, the wheel's copy, or the source tree's."""
    override = os.environ.get("COMPAT_MATRICES")
    if override:
        return Path(override)
    bundled = _HERE / "matrices"
    if bundled.is_dir():
        return bundled
    return _HERE.parent / "matrices"


def generated_dir() -> Path:
    return matrices_dir() / "generated"


def curated_dir() -> Path:
    return matrices_dir() / "curated"


def advisories_dir() -> Path:
    return matrices_dir() / "advisories"
