"""Which database is in use: the one decision every reader of matrices/ goes through.

In order: $COMPAT_MATRICES (explicit); the user folder's current generation when it is newer
than the installed data; the installed data (a source checkout's matrices/ when compat runs from
one, else the newer of the compat-data distribution and compat's own bundled copy).
"""

from __future__ import annotations

import enum
import importlib.util
import os
from datetime import date
from pathlib import Path
from typing import Any, Optional

from msgspec import Struct

from compat.channel.info import DATA_FILE, DATA_FORMAT, DataInfo, describe, read_info
from compat.channel.store import GENERATIONS, Store
from compat.errors import CompatError, DataError

STALE_DAYS = 14
UPDATE_COMMAND = "compat data update"
_HERE = Path(__file__).resolve().parent.parent  # the compat package
JOURNAL = ".sync-journal.json"


class Kind(enum.Enum):
    OVERRIDE = "COMPAT_MATRICES"
    USER = "user folder"
    INSTALLED = "compat-data"
    BUNDLED = "bundled with compat"
    SOURCE = "source tree"


class DataSource(Struct, frozen=True):
    """The database folder in use, what it is, and why it was chosen."""

    root: Path
    kind: Kind
    info: DataInfo

    def age_days(self, today: Optional[date] = None) -> Optional[int]:
        if self.info.synced is None:
            return None
        return ((today or date.today()) - self.info.synced).days

    def stale(self, today: Optional[date] = None) -> bool:
        age = self.age_days(today)
        return age is not None and age > STALE_DAYS

    def line(self) -> str:
        """One line: version, date, source and folder."""
        version = str(self.info.version) if self.info.version else "unversioned"
        when = f", synced {self.info.synced.isoformat()}" if self.info.synced else ""
        return f"{version}{when} ({self.kind.value}: {self.root})"

    def stale_note(self, today: Optional[date] = None) -> Optional[str]:
        if not self.stale(today):
            return None
        return (
            f"the database was synced {self.age_days(today)} days ago ({self.info.synced}); "
            f"`{UPDATE_COMMAND}` fetches the newest"
        )

    def to_dict(self, today: Optional[date] = None) -> dict[str, Any]:
        return {
            **describe(self.info),
            "source": self.kind.value,
            "path": str(self.root),
            "age_days": self.age_days(today),
            "stale": self.stale(today),
        }


def checkout_tree() -> Optional[Path]:
    """matrices/ of the source checkout compat runs from (an editable install), if any."""
    root = _HERE.parent
    tree = root / "matrices"
    if tree.is_dir() and (root / "pyproject.toml").is_file():
        return tree
    return None


def installed_tree() -> Optional[Path]:
    """compat_data/matrices of the installed compat-data distribution, through importlib.resources
    (a real folder: a zipped install cannot be read as files and is skipped)."""
    if importlib.util.find_spec("compat_data") is None:
        return None
    from importlib import resources as ir

    folder = ir.files("compat_data") / "matrices"
    return folder if isinstance(folder, Path) and folder.is_dir() else None


def bundled_tree() -> Optional[Path]:
    """compat's own copy (compat/matrices in the wheel), kept until compat-data is a dependency."""
    folder = _HERE / "matrices"
    return folder if folder.is_dir() else None


def baseline() -> DataSource:
    """The installed data, before the user folder is considered."""
    tree = checkout_tree()
    if tree is not None:
        return DataSource(tree, Kind.SOURCE, _info(tree))
    found = [
        DataSource(p, kind, _info(p))
        for p, kind in ((installed_tree(), Kind.INSTALLED), (bundled_tree(), Kind.BUNDLED))
        if p is not None
    ]
    if not found:
        return DataSource(_HERE.parent / "matrices", Kind.SOURCE, DataInfo())
    # The newer of the two; on a tie (or neither versioned) the compat-data distribution.
    return max(
        found,
        key=lambda s: (s.info.version is not None, s.info.version or 0, s.kind is Kind.INSTALLED),
    )


def _info(root: Path) -> DataInfo:
    try:
        return read_info(root)
    except CompatError:
        return DataInfo()  # `compat matrix validate` names the problem; the data still loads


def user_source(store: Optional[Store] = None) -> Optional[DataSource]:
    """The user folder's current generation, when it holds data of this compat's format."""
    folder = (store or Store()).current()
    if folder is None:
        return None
    info = _info(folder)
    if info.version is None or info.format != DATA_FORMAT:
        return None
    return DataSource(folder, Kind.USER, info)


_memo: dict[tuple[Any, ...], DataSource] = {}


def locate() -> DataSource:
    """The database in use (see the module docstring). Cheap: two small files read, once per
    process for each state of $COMPAT_MATRICES, the data home and the user folder's pointer."""
    override = os.environ.get("COMPAT_MATRICES")
    store = Store()
    try:
        st = os.stat(store.pointer)
        stamp: tuple[int, ...] = (st.st_ino, st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = ()
    key = (override, str(store.root), stamp)
    hit = _memo.get(key)
    if hit is not None:
        return hit
    if override:
        root = Path(override)
        found = DataSource(root, Kind.OVERRIDE, _info(root))
    else:
        base = baseline()
        user = user_source(store)
        newer = user is not None and (
            base.info.version is None
            or (user.info.version is not None and user.info.version > base.info.version)
        )
        found = user if newer and user is not None else base
    _memo.clear()
    _memo[key] = found
    return found


def check_complete(root: Path) -> None:
    """A folder a killed `compat matrix sync --repo/--out` left half-switched is refused until
    the next sync finishes the switch (every file or none)."""
    if (root / JOURNAL).exists():
        raise DataError(
            [f"{root}: a sync was interrupted while replacing its files ({JOURNAL} is there)"],
            hint="run the same `compat matrix sync` (--repo or --out) again: it completes the "
            "switch first",
        )


# More files than any database holds (matrices/ has a few hundred): past it nothing is watched.
MAX_WATCHED_FILES = 20_000


def watched(src: DataSource) -> Optional[list[tuple[str, bool]]]:
    """What `locate()` and the database's readers read to make `src` (path, follow links), for
    a kept answer (compat.answers): every folder and file under its root, links followed as the
    readers follow them; each candidate's folder and DATA.toml, chosen or not (a newer one
    would be chosen); and the user folder's pointer and generations. None when the root holds
    more than can be watched."""
    store = Store()
    out: list[tuple[str, bool]] = [
        (str(store.pointer), True),
        (str(store.root), True),
        (str(store.root / GENERATIONS), True),
        (str(_HERE.parent / "pyproject.toml"), True),
    ]
    candidates = (
        _HERE.parent / "matrices",
        installed_tree(),
        _HERE / "matrices",
        store.current(),
    )
    for candidate in candidates:
        if candidate is not None:
            out += [(str(candidate), True), (str(candidate / DATA_FILE), True)]
    seen: set[str] = set()
    for folder, dirs, files in os.walk(src.root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree: walked once
            dirs[:] = []
            continue
        seen.add(real)
        out.append((folder, True))
        out += [(os.path.join(folder, name), True) for name in files]
        out += [(os.path.join(folder, name), False) for name in dirs]
        if len(out) > MAX_WATCHED_FILES:
            return None
    return out
