"""The user data folder: whole database generations and one pointer switched atomically.

Layout (under $XDG_DATA_HOME/compat/data, else ~/.local/share/compat/data):

    current                    the name of the generation in use (one line, atomic_write)
    generations/<name>/        a whole database: DATA.toml, generated/, curated/, advisories/
    .stage-<random>/           a generation being written (never read; removed when stale)
    .lock                      held by a writer (update, sync) while it stages and switches

A writer fills a stage folder, renames it into generations/ and then replaces `current`: a
writer killed at any point leaves `current` naming a complete generation (the old one or the new
one) and, at worst, a stage folder that the next writer removes. The generation that was in use
is kept until the next switch, so a process still reading it is not cut off.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

from compat.errors import CompatError, OutputError
from compat.fileio import atomic_write

POINTER = "current"
GENERATIONS = "generations"
STAGE_PREFIX = ".stage-"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
FILE_MODE = 0o644
DIR_MODE = 0o755


def data_home() -> Path:
    """$XDG_DATA_HOME/compat/data, else ~/.local/share/compat/data."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "compat" / "data"


class Store:
    """A user data folder (default: data_home())."""

    def __init__(self, root: Optional[Path] = None) -> None:
        self.root = root if root is not None else data_home()

    @property
    def pointer(self) -> Path:
        return self.root / POINTER

    def current_name(self) -> Optional[str]:
        """The generation `current` names, when it is a well-formed name of an existing folder."""
        try:
            with open(self.pointer, "rb") as handle:
                raw = handle.read(256)
        except OSError:
            return None
        name = raw.decode("utf-8", "replace").strip()
        if not _NAME.fullmatch(name) or not (self.root / GENERATIONS / name).is_dir():
            return None
        return name

    def current(self) -> Optional[Path]:
        name = self.current_name()
        return None if name is None else self.root / GENERATIONS / name

    def generations(self) -> list[str]:
        folder = self.root / GENERATIONS
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir())

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One writer at a time (an advisory lock on .lock, released when the process ends)."""
        make_dirs(self.root)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on Linux
            yield
            return
        try:
            fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as exc:
            raise OutputError(f"cannot write the data folder {self.root}: {exc.strerror}") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CompatError(
                    f"another compat is updating {self.root}",
                    hint="wait for it to finish and run the command again",
                ) from None
            yield
        finally:
            os.close(fd)

    def stage(self) -> Path:
        """A new, empty stage folder (call under lock())."""
        self.clean_stages()
        path = self.root / f"{STAGE_PREFIX}{_token_hex(6)}"
        make_dirs(path)
        return path

    def clean_stages(self) -> None:
        """Remove what killed writers left (call under lock(): no live writer owns them)."""
        import shutil

        if not self.root.is_dir():
            return
        for entry in self.root.iterdir():
            if entry.name.startswith(STAGE_PREFIX):
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.startswith(f".{POINTER}.") and entry.name.endswith(".tmp"):
                entry.unlink(missing_ok=True)  # atomic_write's temp file of a killed switch

    def publish(self, tree: Path, version: str) -> str:
        """Move the complete database `tree` (inside a stage folder) into generations/ and switch
        `current` to it; then drop every generation but the new one and the one it replaces."""
        import shutil

        name = f"{version}-{_token_hex(4)}"
        if not _NAME.fullmatch(name):
            raise CompatError(f"{version!r} cannot name a data generation")
        folder = self.root / GENERATIONS
        make_dirs(folder)
        previous = self.current_name()
        target = folder / name
        os.rename(tree, target)
        fsync_dir(folder)
        atomic_write(self.pointer, (name + "\n").encode(), FILE_MODE)
        fsync_dir(self.root)
        for other in self.generations():
            if other not in (name, previous):
                shutil.rmtree(folder / other, ignore_errors=True)
        return name


def make_dirs(path: Path) -> None:
    """mkdir -p with 0755 on every folder made, whatever the umask: another user (a service
    account, a container user) reads what root wrote."""
    missing = []
    at = path
    while not at.exists():
        missing.append(at)
        at = at.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir()
        os.chmod(folder, DIR_MODE)


def copy_tree(src: Path, dst: Path, skip: frozenset[str] = frozenset()) -> None:
    """The database files under `src` into `dst` (0644 files, 0755 folders): dotfiles, caches
    and the names in `skip` (relative paths) left out."""
    import shutil

    make_dirs(dst)
    for dirpath, dirnames, filenames in os.walk(src):
        here = Path(dirpath)
        rel = here.relative_to(src)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        for d in dirnames:
            make_dirs(dst / rel / d)
        for f in sorted(filenames):
            if f.startswith(".") or (rel / f).as_posix() in skip:
                continue
            source = here / f
            if not stat.S_ISREG(os.stat(source).st_mode):
                continue
            target = dst / rel / f
            shutil.copyfile(source, target)
            os.chmod(target, FILE_MODE)


def fsync_dir(path: Path) -> None:
    """Make a folder's renames durable (best effort: some filesystems refuse it)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _token_hex(n: int) -> str:
    import secrets  # a write's random suffix; a read needs none of it (3 ms of imports)

    return secrets.token_hex(n)
