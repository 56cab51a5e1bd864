"""Bounded file reads and atomic writes: the one place compat opens files it is handed.

A pre-launch gate reads files that users, CI jobs and other machines give it. A FIFO or a
character device would block or never end, a directory or a huge file is not what was meant:
each is refused by its type and size before any byte is read, with an error that says which.
"""

from __future__ import annotations

import errno
import os
import select
import stat
import time
from pathlib import Path
from typing import BinaryIO, Optional, Union

from compat.errors import InputError

PathLike = Union[str, "os.PathLike[str]"]

# Sizes that no legitimate input of each kind reaches (a 300-line freeze is ~10 KiB; the largest
# generated data file is ~200 KiB; a snapshot of a 500-package env ~300 KiB).
MAX_INPUT = 16 * 1024 * 1024
MAX_DATA = 32 * 1024 * 1024


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


# Pseudo-filesystems: their "files" are the kernel's tables (a process's environment, with its
# secrets, among them), never inputs.
_PSEUDO = ("/proc/", "/sys/")
# A pipe (`--from <(pip freeze)`, /dev/stdin) is read until it closes, but not forever: its
# first bytes must come within STREAM_FIRST_S (a FIFO nobody writes to is refused quickly;
# `pip freeze` prints within a second or two), all of it within STREAM_DEADLINE_S.
STREAM_FIRST_S = 5.0
STREAM_DEADLINE_S = 30.0


def read_bytes(
    path: PathLike, limit: int = MAX_INPUT, what: str = "file", stream: bool = False
) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, or an InputError saying why not.

    With `stream`, a pipe or character device (/dev/stdin, `<(cmd)`) is accepted too and read
    until it closes, up to `limit` bytes and STREAM_DEADLINE_S seconds (/dev/zero is refused by
    the limit, a FIFO nobody writes by the deadline). Directories, sockets, block devices and
    files under /proc and /sys are refused.
    """
    name = os.fspath(path)
    if "\0" in name:
        raise InputError(f"cannot read {name!r}: the path contains a NUL byte")
    real = os.path.realpath(name)
    if real.startswith(_PSEUDO) and stat.S_ISREG(_mode(name)):
        raise InputError(
            f"cannot read {name}: files under /proc and /sys are not a {what}",
            hint=f"pass the {what} itself",
        )
    try:
        # O_NONBLOCK: opening a FIFO does not wait for a writer; regular files are unaffected.
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc.strerror or exc}") from exc
    try:
        st = os.fstat(fd)
        piped = stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode)
        if not stat.S_ISREG(st.st_mode) and not (stream and piped):
            raise InputError(
                f"cannot read {name}: it is {_kind(st.st_mode)}, not a {what}",
                hint=f"pass a regular {what}",
            )
        if st.st_size > limit:
            raise InputError(
                f"{name}: {st.st_size} bytes is more than compat reads from a {what} "
                f"({limit // (1024 * 1024)} MiB)",
                hint=f"pass the {what} itself, not a larger file",
            )
        return _read_all(fd, name, limit, what, STREAM_DEADLINE_S if piped else None)
    finally:
        os.close(fd)


def open_regular(path: PathLike) -> BinaryIO:
    """A regular file opened for reading at offsets (an ELF object, a RECORD), or OSError: a
    FIFO or device where a file should be is refused without waiting for a writer."""
    handle = open(path, "rb", opener=_open_nonblocking)  # noqa: SIM115 - returned open
    try:
        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"it is {_kind(mode)}, not a regular file")
    except BaseException:
        handle.close()
        raise
    return handle


def _open_nonblocking(name: str, flags: int) -> int:
    # O_NONBLOCK: opening a FIFO does not wait for a writer; regular files are unaffected.
    return os.open(name, flags | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))


def _mode(name: str) -> int:
    try:
        return os.stat(name).st_mode
    except (OSError, ValueError):
        return 0


def _read_all(fd: int, name: str, limit: int, what: str, deadline_s: Optional[float]) -> bytes:
    chunks: list[bytes] = []
    total = 0
    start = time.monotonic()
    end = start + deadline_s if deadline_s is not None else None
    while True:
        if end is not None:
            now = time.monotonic()
            left = end - now if chunks else min(end, start + STREAM_FIRST_S) - now
            if left <= 0:
                waited = now - start
                raise InputError(
                    f"{name}: {'nothing came' if not chunks else 'it did not end'} "
                    f"within {waited:.0f} s",
                    hint=f"pass a {what} that ends (is the writer still running?)",
                )
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not ready:
                continue
        try:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
        except BlockingIOError:
            continue
        except OSError as exc:
            raise InputError(f"cannot read {name}: {exc.strerror or exc}") from exc
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:  # grew while read, or an endless device
            raise InputError(
                f"{name}: more than {limit} bytes, refused",
                hint=f"pass the {what} itself, not a larger file",
            )


def read_text(
    path: PathLike,
    limit: int = MAX_INPUT,
    what: str = "file",
    hint: str = "",
    stream: bool = False,
) -> str:
    """A UTF-8 text file (a BOM is dropped), bounded as read_bytes."""
    raw = read_bytes(path, limit, what, stream)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{os.fspath(path)}: not UTF-8 text (byte {exc.start})", hint=hint or None
        ) from exc


def is_regular(path: PathLike) -> bool:
    """Whether `path` is a regular file (following links), without opening it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def identity(path: PathLike) -> Optional[tuple[int, int, int, int, int]]:
    """What changes whenever a regular file is written or replaced: size, mtime, ctime (which no
    tool can set back), inode, device, the fields git's index trusts; None when it is not one."""
    from compat.stamps import stamp

    st = stamp(os.fspath(path))
    if st is None or not stat.S_ISREG(st[0]):
        return None
    return st[1], st[2], st[3], st[4], st[5]


def prune(folder: Path, most: int, keep: int, suffix: str = ".json") -> None:
    """Past `most` files ending in `suffix` in `folder`, the oldest go until `keep` are left.
    Best effort: a file another process removed first, or a folder that cannot be read, is
    skipped."""
    try:
        entries = [e for e in os.scandir(folder) if e.name.endswith(suffix)]
    except OSError:
        return
    if len(entries) <= most:
        return

    def age(e: os.DirEntry[str]) -> float:
        try:
            return e.stat(follow_symlinks=False).st_mtime
        except OSError:
            return 0.0

    for e in sorted(entries, key=age)[: len(entries) - keep]:
        try:
            os.unlink(e.path)
        except OSError:
            continue


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename.

    A killed writer leaves either the old file or the new one, never half of either, and no
    temporary file behind on an exception. The mode is set explicitly: mkstemp creates files
    0600, which other users (a shared data folder, a container user) could not read.
    """
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
