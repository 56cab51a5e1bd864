"""A small deterministic TOML writer for the shapes the generated database uses."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# TOML basic strings: these need a short escape; other control characters take \uXXXX.
_SHORT_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def quote(text: str) -> str:
    """A TOML basic string for `text`, escaped so that any str round-trips."""
    out = ['"']
    for ch in text:
        short = _SHORT_ESCAPES.get(ch)
        if short is not None:
            out.append(short)
        elif ch < " " or ch == "\x7f":
            out.append(f"\\u{ord(ch):04X}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            # A lone surrogate cannot be encoded in UTF-8 nor written as a TOML escape.
            raise ValueError(f"lone surrogate in string {text!r}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def key(name: str) -> str:
    """A key as written: bare when TOML allows it, quoted otherwise."""
    return name if _BARE_KEY.fullmatch(name) else quote(name)


def _value(value: Any, where: str) -> str:
    # bool before int: bool is a subclass of int.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, Sequence):
        items = list(value)
        if not items:
            return "[]"
        if not all(isinstance(item, str) for item in items):
            raise TypeError(f"{where}: only lists of strings are written")
        return "[\n" + "".join(f"  {quote(item)},\n" for item in items) + "]"
    raise TypeError(f"{where}: cannot write a value of type {type(value).__name__}")


def dumps(data: Mapping[str, Any], header: str = "") -> str:
    """TOML text for `data`: keys in insertion order, scalars before sub-tables.

    Values may be str, bool, int, lists of str, or mappings of those (tables). `header`
    lines are written first as comments. The caller decides the order, so equal input gives
    equal bytes.
    """
    lines: list[str] = [f"# {line}" if line else "#" for line in header.splitlines()]
    _table(lines, [], data, root=True)
    text = "\n".join(lines).strip("\n")
    return text + "\n" if text else ""


def _table(lines: list[str], path: list[str], table: Mapping[str, Any], root: bool) -> None:
    scalars = [(k, v) for k, v in table.items() if not isinstance(v, Mapping)]
    tables = [(k, v) for k, v in table.items() if isinstance(v, Mapping)]
    # A table with only sub-tables is defined by their headers; an empty one needs its own.
    if not root and (scalars or not tables):
        if lines and not lines[-1].startswith("#"):
            lines.append("")
        lines.append("[" + ".".join(key(part) for part in path) + "]")
    for name, value in scalars:
        where = ".".join([*path, name])
        lines.append(f"{key(name)} = {_value(value, where)}")
    for name, sub in tables:
        _table(lines, [*path, name], sub, root=False)
