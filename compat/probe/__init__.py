"""Probes: read the live machine into an `Environment`. I/O lives here and nowhere else.

The package loads its parts when a name is first used: a replayed check (compat.answers) reads
the host through compat.probe.hostread and must not pay for the records the rest builds.
"""

from __future__ import annotations

from compat.lazy import exports

TYPE_CHECKING = False
if TYPE_CHECKING:
    from compat.probe.live import probe_environment, watched

__all__ = ["probe_environment", "watched"]
__getattr__ = exports(__name__, dict.fromkeys(__all__, "live"))
