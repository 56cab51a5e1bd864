"""What every input reader returns: pins at their lines, variables the file sets, notes."""

from __future__ import annotations

from typing import Callable, Optional

from msgspec import Struct
from packaging.markers import Marker
from packaging.specifiers import SpecifierSet

from compat.models import Finding, canonicalize_name

# Bounds every reader keeps, whatever the format: no real file of pins comes near them.
MAX_LINE = 64 * 1024
MAX_LINES = 100_000
MAX_ENTRIES = 20_000
# `-r`/`-c` includes (and a Dockerfile's `-r` files): pip itself nests a few levels; a loop or a
# fan-out is refused.
MAX_INCLUDE_DEPTH = 16
MAX_INCLUDED_FILES = 256

#: The index strategies installers use when a project is on more than one index: pip takes the
#: best version of all (a +cu126 local version outranks the plain one), uv the first index that
#: has the project at all.
BEST, FIRST = "best", "first"


class Pin(Struct, frozen=True):
    """One requirement of a file: exact (`version` set) or a range, at the line that states it."""

    name: str
    specifier: SpecifierSet
    version: Optional[str]
    marker: Optional[Marker]
    path: str
    line: int
    text: str
    # Index URLs the installer may take it from, in the file's order ("" entries never appear);
    # empty when the file names none (the default index).
    indexes: tuple[str, ...] = ()
    strategy: str = BEST
    # A CUDA build the file states other than by a local version tag (a conda build string, a
    # `pytorch-cuda=12.4`, an image tag): "12.4", or a major alone ("12").
    cuda: Optional[str] = None
    # Why the pin is there when the file does not name it ("vllm/vllm-openai:v0.10.1.1", "pulled
    # in by vllm==0.10.1.1"); "" for a pin the file states.
    via: str = ""
    extras: frozenset[str] = frozenset()

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


class Setting(Struct, frozen=True):
    """An environment variable the file sets for the process that serves (a Dockerfile's ENV, or
    what its base image sets), at the line that sets it."""

    key: str
    value: str
    path: str
    line: int


class Note(Struct, frozen=True):
    """A finding about the file itself rather than the stack it describes (a stack package left
    unpinned, a package pinned twice), at its line."""

    path: str
    line: int
    finding: Finding
    # A note about the driver an image needs (its NVIDIA_REQUIRE_CUDA is not recorded): it says
    # something only for a declared driver that reports an older CUDA than this.
    below_cuda: Optional[str] = None

    def applies(self, driver_cuda: Optional[str], driver_given: bool) -> bool:
        if self.below_cuda is None:
            return True
        if not driver_given:
            return False
        from compat.models import parse_version

        have, need = parse_version(driver_cuda or ""), parse_version(self.below_cuda)
        return have is None or need is None or have < need


class PinFile(Struct, frozen=True):
    """The pins of a file grouped in scopes: sets of pins installed together (a pyproject's base
    dependencies, and the base plus each extra)."""

    path: str
    scopes: tuple[tuple[str, tuple[Pin, ...]], ...]
    problems: tuple[tuple[str, int, str], ...] = ()  # (path, line, what cannot be read)
    env: tuple[Setting, ...] = ()
    notes: tuple[Note, ...] = ()
    python: Optional[str] = None  # the Python the file names (a conda `python=3.11`, an image's)
    machine: Optional[str] = None  # the platform the file names (`FROM --platform=linux/arm64`)
    launch: tuple[str, ...] = ()  # the server command it runs (a Dockerfile's ENTRYPOINT + CMD)
    kind: str = ""
    launch_line: int = 0  # the line that states the server command


class ReadOptions(Struct, frozen=True):
    """The declared target of a read (markers are evaluated for it) and how includes are read."""

    python: Optional[str] = None
    machine: str = "x86_64"
    # Reads an included file (`-r`, `-c`, a Dockerfile's build-context file) by path; None: do
    # not follow includes.
    read: Optional[Callable[[str], str]] = None


def holds(marker: Optional[Marker], env: dict[str, str]) -> bool:
    """Whether a marker holds for the target; a marker that cannot be evaluated counts as true
    (the pin is kept rather than silently dropped)."""
    if marker is None:
        return True
    from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName

    try:
        return bool(marker.evaluate(env))
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName, ValueError, TypeError):
        return True
