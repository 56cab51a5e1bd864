"""Which release a launch is judged against, from the generated launch data (loaded lazily)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional

from msgspec import Struct
from packaging.version import Version

from compat import resources
from compat.errors import DataError
from compat.matrix.launchdata import FlagState, LaunchData, ReleaseView
from compat.models import Unknown

_LOADED: dict[tuple[str, str], Optional[LaunchData]] = {}


def launch_data(framework: str, root: Optional[Path] = None) -> Optional[LaunchData]:
    """The framework's launch data (one file, read once per process), or None without one."""
    base = root or resources.generated_dir()
    path = base / "launch" / f"{framework}.toml"
    key = (framework, str(path))
    if key not in _LOADED:
        if not path.is_file():
            _LOADED[key] = None
        else:
            from compat.matrix.tomlfile import read_toml

            raw = read_toml(path, cached=True)
            try:
                _LOADED[key] = LaunchData(raw)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise DataError(
                    [f"{path}: unreadable launch data ({type(exc).__name__}: {exc})"],
                    hint="run `compat matrix validate`; refresh with `compat matrix sync --write`",
                ) from None
    return _LOADED[key]


class Basis(Struct):
    """The flags a launch is parsed with: one release (exact or nearest), or every release."""

    framework: str
    data: LaunchData
    requested: Optional[Version]
    index: Optional[int]  # None: the version is unknown, every release counts
    exact: bool
    _view: Optional[ReleaseView] = None
    _union: Optional[dict[str, list[FlagState]]] = None

    def __eq__(self, other: object) -> bool:
        # The same release's flags, whatever views were cached so far.
        if not isinstance(other, Basis):
            return NotImplemented
        return self.data is other.data and (
            self.framework,
            self.requested,
            self.index,
            self.exact,
        ) == (other.framework, other.requested, other.index, other.exact)

    __hash__ = None  # type: ignore[assignment]  # mutable (its views are cached on it)

    @classmethod
    def for_version(cls, framework: str, version: Optional[Version]) -> Optional[Basis]:
        data = launch_data(framework)
        if data is None or not len(data):
            return None
        if version is None:
            return cls(framework, data, None, None, False)
        index = data.index_of(version)
        if index is not None:
            return cls(framework, data, version, index, True)
        return cls(framework, data, version, data.nearest(version), False)

    # what the basis is ------------------------------------------------------------------------

    @property
    def view(self) -> Optional[ReleaseView]:
        if self.index is None:
            return None
        if self._view is None:
            self._view = self.data.view(self.index)
        return self._view

    @property
    def union(self) -> dict[str, list[FlagState]]:
        if self._union is None:
            self._union = self.data.all_options()
        return self._union

    @property
    def release(self) -> str:
        """'vllm 0.19.0'; for a version not in the data, the release it was judged by."""
        if self.index is None:
            return f"every {self.framework} release compat knows"
        return f"{self.framework} {self.data.keys[self.index]}"

    @property
    def label(self) -> str:
        if self.index is None:
            return f"every {self.framework} release compat knows (version unknown)"
        if self.exact:
            return self.release
        return f"{self.release} (the nearest release compat knows to {self.requested})"

    @property
    def features(self) -> frozenset[str]:
        if self.index is None:
            out: set[str] = set()
            for i in range(len(self.data)):
                out |= self.data.release(i).features
            return frozenset(out)
        return self.data.release(self.index).features

    # flags --------------------------------------------------------------------------------

    def lookup(self, option: str) -> Optional[FlagState]:
        """The flag `option` names exactly (the newest release with it when the version is unknown)."""
        view = self.view
        if view is not None:
            return view.options.get(option)
        states = self.union.get(option)
        return max(states, key=lambda s: s.last) if states else None

    def names(self) -> Iterable[str]:
        view = self.view
        return view.options if view is not None else self.union

    def prefix_matches(self, prefix: str) -> list[str]:
        """Option strings argparse would take `prefix` for (abbreviations)."""
        return [n for n in self.names() if n.startswith(prefix)]

    def history(self, option: str) -> list[FlagState]:
        return sorted(self.union.get(option, []), key=lambda s: s.first)

    def suggest(self, option: str, pool: Optional[Iterable[str]] = None) -> list[str]:
        import difflib

        names = [n for n in (pool if pool is not None else self.names()) if n.startswith("-")]
        return difflib.get_close_matches(option, names, n=3, cutoff=0.75)

    def version_at(self, index: int) -> str:
        return self.data.keys[index]

    def by_dest(self, dest: str) -> list[FlagState]:
        """Every state (of every release) storing `dest`."""
        return [s for states in self.union.values() for s in states if s.dest == dest]

    def state_for_dest(self, dest: str) -> Optional[FlagState]:
        view = self.view
        if view is not None:
            return view.dests.get(dest)
        states = [s for s in self.by_dest(dest) if not s.deprecated]
        return max(states, key=lambda s: s.last) if states else None

    def has_dest(self, dest: str) -> bool:
        view = self.view
        if view is not None:
            return dest in view.dests
        return bool(self.by_dest(dest))

    def placeholder(self, dest: str) -> bool:
        """Whether the release (every release, version unknown) declares no value for `dest`:
        None, or decided at startup."""
        view = self.view
        states = (
            [view.dests[dest]]
            if view is not None and dest in view.dests
            else ([s for s in self.by_dest(dest) if not s.deprecated] if view is None else [])
        )
        return bool(states) and all(
            s.computed or (s.default is None and not s.default_unknown) for s in states
        )

    def default(self, dest: str) -> Any:
        """The release's default for `dest`; Unknown when computed at startup or not knowable."""
        view = self.view
        if view is not None:
            state = view.dests.get(dest)
            if state is None:
                return Unknown(f"{dest} is not a setting of {self.release}")
            return _default_of(state, self.release)
        states = {id(s): s for s in self.by_dest(dest) if not s.deprecated}.values()
        if not states:
            return Unknown(f"{dest} is not a setting of any {self.framework} release compat knows")
        values = {repr(_default_of(s, "")) for s in states}
        if len(values) == 1:
            return _default_of(next(iter(states)), f"{self.framework}")
        spans = ", ".join(
            f"{_default_text(s)} in {self.version_at(s.first)}..{self.version_at(s.last)}"
            for s in sorted(states, key=lambda s: s.first)
        )
        return Unknown(
            f"{self.framework} version unknown: the default of {dest} depends on the "
            f"release ({spans})"
        )


def _default_of(state: FlagState, where: str) -> Any:
    if state.default_unknown:
        return Unknown(
            f"{where}: the default of {state.dest} is computed ({state.default_unknown})"
        )
    if state.computed:
        return Unknown(
            f"{where}: {state.dest} is decided at startup when not given "
            f"(from the GPU, the model or other flags)"
        )
    return state.default


def _default_text(state: FlagState) -> str:
    if state.default_unknown or state.computed:
        return "computed"
    return repr(state.default)
