"""A check's answer, replayed while everything it was computed from reads the same.

`compat check` runs before every launch, on a stack that rarely changes between two launches.
A live check's answer is a function of what it reads: the command line, the interpreter and its
import path, the dist-info folders on that path, torch's and the kernels' files, the JIT caches'
top level, the database in use, compat's own code, the environment variables, the day (the
database's age is counted in days) and the host's driver and GPUs.

After a full check those inputs are kept beside its output: files and folders by their stat
fields (mode, size, mtime, ctime, inode, device: a write, a replacement, a new entry in a folder
change them, and ctime cannot be set back), the environment by a digest (no value is written
down), the host as read (compat.probe.hostread). The next run of the same command reads them all
again, the host from the driver included, and prints the kept answer only when every one is
the same; anything else (a difference, a file written within two seconds of the run that kept
the answer, a record that cannot be read) runs the check in full. `COMPAT_NO_REPLAY=1` always
runs it in full. Standard library only: for a repeat check this module is the whole program.
"""

from __future__ import annotations

import json
import os
import sys
import time

from compat.stamps import stamp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any, Optional

FORMAT = 1
OFF = "COMPAT_NO_REPLAY"
# A file changed this close to the run that read it may change again within the same tick of a
# coarse clock, unseen by its stat fields (git's "racy" index entries): no answer is kept then.
RACY_NS = 2_000_000_000
MAX_RECORD = 16 * 1024 * 1024
MAX_WATCHED = 50_000
KEEP = 32  # records in the folder; past this the oldest go
# Variables a shell changes between two identical commands, which nothing compat does reads.
VOLATILE = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})


def cache_dir() -> str:
    """$COMPAT_CACHE_DIR, else $XDG_CACHE_HOME/compat, else ~/.cache/compat."""
    root = os.environ.get("COMPAT_CACHE_DIR")
    if root:
        return root
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "compat")


def _digest(data: bytes) -> str:
    try:
        from _blake2 import blake2b  # what hashlib.blake2b is, without loading OpenSSL
    except ImportError:  # pragma: no cover - another Python
        from hashlib import blake2b
    return blake2b(data, digest_size=32).hexdigest()


def environment_digest(environ: Mapping[str, str]) -> str:
    """One digest of every variable (but the shell's bookkeeping): a value is never kept."""
    parts = []
    for name in sorted(environ):
        if name not in VOLATILE:
            parts.append(f"{name}={environ[name]}")
    return _digest("\0".join(parts).encode("utf-8", "surrogateescape"))


def _key(argv: Sequence[str]) -> dict[str, Any]:
    from compat import __version__

    return {
        "format": FORMAT,
        "compat": __version__,
        "argv": list(argv),
        "cwd": os.getcwd(),
        "executable": sys.executable,
        "python": sys.version,
        "path": list(sys.path),
        "day": time.strftime("%Y-%m-%d"),  # local, as the database's age is counted
        # what may be read depends on who reads (permissions); markers on the machine
        "user": [os.geteuid(), os.getegid(), sorted(os.getgroups())],
        "uname": [os.uname().sysname, os.uname().release, os.uname().machine],
    }


def _record_path(key: Mapping[str, Any]) -> str:
    name = _digest(json.dumps([key["argv"], key["cwd"], key["executable"]]).encode())[:32]
    return os.path.join(cache_dir(), "answers", f"{name}.json")


class Recording:
    """A full check under way whose answer may be kept. What the command line names is stamped
    as the run starts: a file removed before the answer is kept has no times of its own that
    would show it was there when the run read it."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.started_ns = time.time_ns()
        self.key = _key(argv)
        self.arguments = {p: stamp(*p) for p in argument_paths(argv)}
        # why this run's answer may not be kept, once something said so (`unrepeatable`)
        self.doubt: Optional[str] = None
        if any(another_home(t) for a in argv for t in (a, a.partition("=")[2])):
            self.doubt = "an argument names another user's home"


def another_home(text: str) -> bool:
    """Whether a path names a user's home by name (`~name/...`), not by $HOME (`~`, `~/...`):
    where that is, the password database says, and no record watches it."""
    return text.startswith("~") and not (text == "~" or text.startswith("~/"))


def argument_paths(argv: Sequence[str]) -> list[tuple[str, bool]]:
    """Every argument (and every value after `=`) as a path, there or not, spelled as given, with
    `~` expanded and as pathlib spells it (no trailing `/` or `/.`), links followed and not: a
    --config file or a model folder given on the command line, whichever flag names it."""
    out: dict[tuple[str, bool], None] = {}
    for arg in argv:
        for text in (arg, arg.partition("=")[2]):
            if not text:
                continue
            home = os.path.expanduser(text)
            trimmed = home.rstrip("/")
            while trimmed.endswith("/."):
                trimmed = trimmed[:-2].rstrip("/")
            for path in (text, home, trimmed or home):
                out[(path, True)] = out[(path, False)] = None
    return list(out)


_current: Optional[Recording] = None


def begin(argv: Sequence[str]) -> None:
    """A full run of `argv` starts (the entry point calls this; library callers never do).
    Best effort: a run that cannot be recorded (its folder deleted, say) is still run."""
    global _current
    _current = None
    # Without $HOME the user's folders come from the password database, which is not watched.
    if not os.environ.get(OFF) and os.environ.get("HOME"):
        try:
            _current = Recording(argv)
        except Exception:  # nothing about recording may stop the check itself
            _current = None


def recording() -> bool:
    return _current is not None


def unrepeatable(why: str) -> None:
    """This run's answer depends on something no record can watch (the clock that bounded a
    read, an imported torch, a read that failed midway): it is not kept."""
    if _current is not None:
        _current.doubt = why


def discard() -> None:
    """The run read more than a record can hold (a file, another interpreter): nothing kept."""
    global _current
    _current = None


def keep(
    stdout: str,
    stderr: str,
    code: int,
    watched: Optional[Iterable[tuple[str, bool]]],
    unused: Sequence[str] = (),
    then: Optional[Sequence[str]] = None,
) -> None:
    """Keep the answer of the run `begin` started (and `then`, the command `compat run` execs
    after a clean check), with the stat fields of `watched` (path,
    follow links) and of every module it ran; `watched` None means the inputs could not all be
    named (a cache folder too large to watch, say) and nothing is kept. `unused` names the
    per-GPU fields of the host reading the answer does not depend on (the memory in use, for a
    check without a launch): they are left out of the comparison. Best effort: a cache folder
    that cannot be written loses the replay, never the check."""
    global _current
    rec, _current = _current, None
    if rec is None or watched is None or rec.doubt is not None:
        return
    try:
        _keep(rec, stdout, stderr, code, watched, unused, then)
    except Exception:  # nothing about keeping may fail the check that was just made
        return


def _keep(
    rec: Recording,
    stdout: str,
    stderr: str,
    code: int,
    watched: Iterable[tuple[str, bool]],
    unused: Sequence[str],
    then: Optional[Sequence[str]],
) -> None:
    from compat.probe import hostread

    if hostread.last is None or time.strftime("%Y-%m-%d") != rec.key["day"]:
        return  # the host was not read, or the day turned during the run
    paths: dict[tuple[str, bool], None] = dict.fromkeys(watched)
    paths.update(dict.fromkeys(rec.arguments))  # whatever an argument names is an input
    paths[(sys.executable, True)] = None
    for module in list(sys.modules.values()):
        origin = getattr(module, "__file__", None)
        if isinstance(origin, str):
            paths[(origin, True)] = None
    for lib in _mapped():
        paths[(lib, True)] = None
    if len(paths) > MAX_WATCHED:
        return
    files = []
    racy = rec.started_ns - RACY_NS
    for path, follow in paths:
        st = stamp(path, follow)
        if st is not None and (st[2] >= racy or st[3] >= racy):
            return
        if (path, follow) in rec.arguments and rec.arguments[(path, follow)] != st:
            return  # a file named on the command line came or went while the run read it
        files.append([path, follow, st])
    doc = {
        "key": rec.key,
        "env": environment_digest(os.environ),
        "host": masked(hostread.last, unused),
        "unused": list(unused),
        "files": files,
        "stdout": stdout,
        "stderr": stderr,
        "code": code,
        "then": list(then) if then is not None else None,
    }
    data = json.dumps(doc).encode()
    if len(data) <= MAX_RECORD:  # a larger one would never be read back
        _write(_record_path(rec.key), data)


def masked(host: Mapping[str, Any], unused: Sequence[str]) -> dict[str, Any]:
    """The host reading without the per-GPU fields in `unused`."""
    out = dict(host)
    nvml = out.get("nvml")
    if unused and isinstance(nvml, dict) and isinstance(nvml.get("devices"), list):
        devices = [
            {k: v for k, v in d.items() if k not in unused} if isinstance(d, dict) else d
            for d in nvml["devices"]
        ]
        out["nvml"] = {**nvml, "devices": devices}
    return out


def _mapped() -> list[str]:
    """The files this process has mapped (libc, libpython, extension modules): the answer's
    code besides the modules' sources (a new glibc changes the wheel tags `compat env` shows)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="surrogateescape") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    found: dict[str, None] = {}
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/") and not parts[5].endswith("(deleted)"):
            found[parts[5]] = None
    return list(found)


def _write(path: str, data: bytes) -> None:
    """Atomically, readable by this user alone; the folder keeps the newest KEEP records."""
    from pathlib import Path

    from compat.fileio import atomic_write, prune

    atomic_write(Path(path), data, mode=0o600)
    prune(Path(path).parent, KEEP, KEEP)


def replay(argv: Sequence[str]) -> Optional[tuple[str, str, int, Optional[list[str]]]]:
    """The kept answer of `argv` (stdout, stderr, exit status, and the command to exec then,
    for `compat run`) when every input it was computed from reads the same now; None
    otherwise, and then the check runs in full."""
    if os.environ.get(OFF):
        return None
    try:
        return _replay(argv)
    except Exception:  # any doubt about a record is a full run, never a crash and never an answer
        return None


def _replay(argv: Sequence[str]) -> Optional[tuple[str, str, int, Optional[list[str]]]]:
    import stat

    key = _key(argv)
    path = _record_path(key)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return None  # only a record this user wrote, and nobody else could have
        raw = fh.read(MAX_RECORD + 1)
    if len(raw) > MAX_RECORD:
        return None
    doc = json.loads(raw)
    if not isinstance(doc, dict) or doc.get("key") != key:
        return None
    out, err, code, files = doc.get("stdout"), doc.get("stderr"), doc.get("code"), doc.get("files")
    then = doc.get("then")
    if not (
        isinstance(out, str)
        and isinstance(err, str)
        and type(code) is int
        and 0 <= code <= 255
        and isinstance(files, list)
        and (
            then is None
            or (isinstance(then, list) and then and all(isinstance(a, str) for a in then))
        )
        and doc.get("env") == environment_digest(os.environ)
    ):
        return None
    for entry in files:
        if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)):
            return None
        if stamp(entry[0], entry[1] is True) != entry[2]:
            return None
    host, unused = doc.get("host"), doc.get("unused")
    if not (
        isinstance(host, dict)
        and isinstance(unused, list)
        and all(isinstance(u, str) for u in unused)
    ):
        return None
    from compat.probe import hostread

    if masked(hostread.read_host(), unused) != host:
        return None
    return out, err, code, then
