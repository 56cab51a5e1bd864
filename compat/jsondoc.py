"""JSON documents from outside, read once at the edge: parsed with bounds, then walked with typed
getters that name the key path of every problem (as packaging's pylock reader does).

Past this module the values are what their type says: strings are valid Unicode of bounded
length, numbers finite and in range, lists bounded. A snapshot from another machine, a cluster
report or a cache file cannot smuggle a lone surrogate, a 10^5-deep nesting or NaN further in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Callable, Optional, TypeVar, Union

from compat.errors import InputError

T = TypeVar("T")
JSON = Union[None, bool, int, float, str, list["JSON"], dict[str, "JSON"]]

MAX_DEPTH = 64
MAX_STRING = 64 * 1024
MAX_ITEMS = 100_000
MAX_INT = 2**63


def depth_ok(text: str, limit: int) -> bool:
    """Whether no bracket nesting in `text` goes deeper than `limit` (strings skipped): checked
    before json.loads, whose recursion a 10^5-deep document would exhaust."""
    depth = 0
    in_string = False
    escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def parse(text: str, origin: str, hint: str = "", max_depth: int = MAX_DEPTH) -> JSON:
    """JSON text as values, or an InputError: invalid JSON, NaN/Infinity, nesting deeper than
    `max_depth`."""
    if not depth_ok(text, max_depth):
        raise InputError(f"{origin}: nested more than {max_depth} levels deep", hint=hint or None)
    try:
        value: JSON = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise InputError(f"{origin}: not valid JSON ({why})", hint=hint or None) from None
    return value


class Reader:
    """Typed getters over parsed JSON; every problem is an InputError naming its key path."""

    def __init__(self, origin: str, hint: str = "") -> None:
        self.origin = origin
        self.hint = hint

    def fail(self, path: str, what: str) -> InputError:
        return InputError(f"{self.origin}: {what} at '{path or '$'}'", hint=self.hint or None)

    @staticmethod
    def join(path: str, key: Union[str, int]) -> str:
        if isinstance(key, int):
            return f"{path}[{key}]"
        return f"{path}.{key}" if path else key

    def obj(self, value: object, path: str) -> Mapping[str, object]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected an object, got {_kind(value)}")
        return value

    def field(self, d: Mapping[str, object], key: str, path: str) -> object:
        return d.get(key)

    # scalars ----------------------------------------------------------------------------------
    def text(self, value: object, path: str, limit: int = MAX_STRING) -> str:
        if not isinstance(value, str):
            raise self.fail(path, f"expected a string, got {_kind(value)}")
        if len(value) > limit:
            raise self.fail(path, f"a string of {len(value)} characters (at most {limit})")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise self.fail(path, "not valid Unicode (a lone surrogate)") from None
        return value

    def integer(self, value: object, path: str, low: int = -MAX_INT, high: int = MAX_INT) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an integer, got {_kind(value)}")
        if not low <= value <= high:
            raise self.fail(path, f"{value} is out of range ({low}..{high})")
        return value

    def number(self, value: object, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(path, f"expected a number, got {_kind(value)}")
        if isinstance(value, int) and abs(value) > MAX_INT:
            raise self.fail(path, "number out of range")
        f = float(value)
        if not math.isfinite(f):
            raise self.fail(path, "expected a finite number")
        return f

    def boolean(self, value: object, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, got {_kind(value)}")
        return value

    # keyed getters: `default` when the key is absent or null ----------------------------------
    def get_text(
        self,
        d: Mapping[str, object],
        key: str,
        path: str,
        default: Optional[str] = None,
        limit: int = MAX_STRING,
    ) -> str:
        value = d.get(key)
        if value is None:
            if default is None:
                raise self.fail(self.join(path, key), "missing value")
            return default
        return self.text(value, self.join(path, key), limit)

    def opt_text(
        self, d: Mapping[str, object], key: str, path: str, limit: int = MAX_STRING
    ) -> Optional[str]:
        value = d.get(key)
        return None if value is None else self.text(value, self.join(path, key), limit)

    def opt_int(
        self, d: Mapping[str, object], key: str, path: str, low: int = -MAX_INT, high: int = MAX_INT
    ) -> Optional[int]:
        value = d.get(key)
        return None if value is None else self.integer(value, self.join(path, key), low, high)

    def get_int(
        self,
        d: Mapping[str, object],
        key: str,
        path: str,
        default: int,
        low: int = -MAX_INT,
        high: int = MAX_INT,
    ) -> int:
        got = self.opt_int(d, key, path, low, high)
        return default if got is None else got

    def opt_number(self, d: Mapping[str, object], key: str, path: str) -> Optional[float]:
        value = d.get(key)
        return None if value is None else self.number(value, self.join(path, key))

    def opt_bool(self, d: Mapping[str, object], key: str, path: str) -> Optional[bool]:
        value = d.get(key)
        return None if value is None else self.boolean(value, self.join(path, key))

    def get_bool(self, d: Mapping[str, object], key: str, path: str, default: bool) -> bool:
        got = self.opt_bool(d, key, path)
        return default if got is None else got

    # containers -------------------------------------------------------------------------------
    def items(
        self, d: Mapping[str, object], key: str, path: str, limit: int = MAX_ITEMS
    ) -> Sequence[object]:
        value = d.get(key)
        where = self.join(path, key)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list, got {_kind(value)}")
        if len(value) > limit:
            raise self.fail(where, f"{len(value)} entries (at most {limit})")
        return value

    def texts(
        self,
        d: Mapping[str, object],
        key: str,
        path: str,
        limit: int = MAX_ITEMS,
        each: int = MAX_STRING,
    ) -> tuple[str, ...]:
        where = self.join(path, key)
        return tuple(
            self.text(x, self.join(where, i), each)
            for i, x in enumerate(self.items(d, key, path, limit))
        )

    def mapping(
        self, d: Mapping[str, object], key: str, path: str, limit: int = MAX_ITEMS
    ) -> dict[str, str]:
        value = d.get(key)
        where = self.join(path, key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, got {_kind(value)}")
        if len(value) > limit:
            raise self.fail(where, f"{len(value)} entries (at most {limit})")
        return {self.text(k, where): self.text(v, self.join(where, k)) for k, v in value.items()}

    def each(
        self,
        d: Mapping[str, object],
        key: str,
        path: str,
        build: Callable[[object, str], T],
        limit: int = MAX_ITEMS,
    ) -> tuple[T, ...]:
        where = self.join(path, key)
        return tuple(
            build(x, self.join(where, i)) for i, x in enumerate(self.items(d, key, path, limit))
        )


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
