"""Names a package re-exports from its modules, each module imported when a name is first used
(PEP 562): `compat check` pays only for the parts of a package its path needs."""

from __future__ import annotations

import importlib
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # nothing at run time: compat.probe loads this before a replayed answer
    from collections.abc import Mapping
    from typing import Any, Callable


def exports(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """The package's module `__getattr__`: `name` from the module `where[name]` (relative to
    the package), kept on the package so it is looked up once."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
