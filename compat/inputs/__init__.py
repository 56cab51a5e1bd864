"""The files users hand over, read as the stack they describe: snapshots, pip freeze and
requirements files, pyproject.toml, pylock.toml, uv.lock, conda files and Dockerfiles.

Each name loads with its module when first used: a live check needs `apply_overrides` alone,
not the format detection and readers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from compat.lazy import exports

if TYPE_CHECKING:
    from compat.inputs.base import Note, Pin, PinFile, ReadOptions, Setting
    from compat.inputs.freeze import FreezeEntry, env_from_freeze, parse_freeze
    from compat.inputs.kinds import READS, Kind, detect, kind_by_name
    from compat.inputs.load import Loaded, load_from, load_input, read_pins
    from compat.inputs.overrides import apply_overrides

__all__ = [
    "READS",
    "FreezeEntry",
    "Kind",
    "Loaded",
    "Note",
    "Pin",
    "PinFile",
    "ReadOptions",
    "Setting",
    "apply_overrides",
    "detect",
    "env_from_freeze",
    "kind_by_name",
    "load_from",
    "load_input",
    "parse_freeze",
    "read_pins",
]

_WHERE = {
    "Note": "base",
    "Pin": "base",
    "PinFile": "base",
    "ReadOptions": "base",
    "Setting": "base",
    "READS": "kinds",
    "Kind": "kinds",
    "detect": "kinds",
    "kind_by_name": "kinds",
    "FreezeEntry": "freeze",
    "env_from_freeze": "freeze",
    "parse_freeze": "freeze",
    "Loaded": "load",
    "load_from": "load",
    "load_input": "load",
    "read_pins": "load",
    "apply_overrides": "overrides",
}


__getattr__ = exports(__name__, _WHERE)
