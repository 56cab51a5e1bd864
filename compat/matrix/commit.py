"""Every file or none, in a plain database folder (a repository's matrices/, a --out folder).

The new files are staged beside their targets (`.NAME.compat-new`, flushed to disk), then a
journal naming every (staged, target) pair is written atomically: that is the commit point. The
renames follow and the journal is removed. A writer killed before the journal leaves the old
files and some staged ones (removed by the next commit or recover()); killed after it, the next
recover() finishes the renames. Readers refuse a folder with a journal (compat.channel.source.
check_complete), so no reader ever takes a mixed set of old and new files for the database.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

from compat.channel.source import JOURNAL
from compat.channel.store import FILE_MODE, fsync_dir, make_dirs
from compat.errors import DataError
from compat.fileio import MAX_DATA, atomic_write, read_bytes

STAGED = ".compat-new"


def _staged(path: Path) -> Path:
    return path.parent / f".{path.name}{STAGED}"


def commit(root: Path, files: Iterable[tuple[Path, str]]) -> list[Path]:
    """Replace the files (absolute paths under `root`) with the given texts, all or none."""
    recover(root)
    pairs: list[tuple[Path, Path]] = []
    try:
        for path, text in files:
            path.relative_to(root)  # a file outside the folder is a bug, not a target
            make_dirs(path.parent)
            tmp = _staged(path)
            # named before it exists: a signal right after the open still finds it to remove
            pairs.append((tmp, path))
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, FILE_MODE)  # whatever the umask
        if not pairs:
            return []
        doc = {"files": [[str(t.relative_to(root)), str(p.relative_to(root))] for t, p in pairs]}
        atomic_write(root / JOURNAL, json.dumps(doc, indent=1).encode("utf-8"))
    except BaseException:
        for tmp, _ in pairs:
            tmp.unlink(missing_ok=True)
        raise
    _finish(root, pairs)
    return [p for _, p in pairs]


def recover(root: Path) -> Optional[str]:
    """Finish a commit whose journal exists, or drop what an uncommitted one staged. Returns
    what was done ("completed" / "rolled back") or None when there was nothing to do."""
    journal = root / JOURNAL
    if journal.exists():
        try:
            doc = json.loads(read_bytes(journal, MAX_DATA, "sync journal"))
            pairs = [(root / t, root / p) for t, p in doc["files"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(
                [f"{journal}: not a journal this compat wrote ({exc})"],
                hint="restore the folder (git checkout matrices/) and remove the journal",
            ) from None
        for tmp, path in pairs:
            path.relative_to(root)
            tmp.relative_to(root)
        _finish(root, pairs)
        return "completed"
    stray = [p for p in _walk(root) if p.name.endswith(STAGED)]
    # atomic_write's temporary file of a journal never committed.
    stray += [p for p in root.glob(f".{JOURNAL}.*.tmp") if p.is_file()]
    for path in stray:
        path.unlink(missing_ok=True)
    return "rolled back" if stray else None


def _finish(root: Path, pairs: list[tuple[Path, Path]]) -> None:
    for tmp, path in pairs:
        if tmp.exists():  # a recovery after a kill mid-way: the renamed ones are gone
            os.replace(tmp, path)
    for folder in {p.parent for _, p in pairs}:
        fsync_dir(folder)
    (root / JOURNAL).unlink(missing_ok=True)
    fsync_dir(root)


def _walk(root: Path) -> list[Path]:
    out: list[Path] = []
    if not root.is_dir():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        out += [Path(dirpath) / f for f in filenames if f.startswith(".")]
    return out


def database_root(generated: Path) -> Path:
    """The database folder a generated/ folder belongs to (the folder itself otherwise)."""
    return generated.parent if generated.name == "generated" else generated
