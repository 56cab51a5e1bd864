"""The interpreter whose packages are inspected: this one, or another (a server's venv) by path."""

from __future__ import annotations

import itertools
import platform
import re
import sys
from typing import Optional

from msgspec import Struct

from compat.errors import CompatError, UsageError
from compat.models import PythonInfo

# Runs inside the other interpreter with -S: no `site`, so none of its .pth import lines,
# sitecustomize or usercustomize run. The site folders `site` would add are computed here instead
# (venv by pyvenv.cfg, system site-packages when the venv includes them, the user's site outside
# a venv), with the plain path lines of their .pth files. Stdlib only; imports none of its packages.
_CHILD = r"""
import json, os, platform, sys, sysconfig
exe = os.path.abspath(sys.executable)
here = os.path.dirname(exe)
cfg = next((c for c in (os.path.join(here, "pyvenv.cfg"),
                        os.path.join(os.path.dirname(here), "pyvenv.cfg")) if os.path.isfile(c)), None)
prefixes, system = [], True
if cfg:
    vals = {}
    with open(cfg, encoding="utf-8", errors="replace") as fh:
        for line in fh.read(65536).splitlines():
            k, sep, v = line.partition("=")
            if sep:
                vals[k.strip().lower()] = v.strip()
    prefixes.append(os.path.dirname(cfg))
    system = vals.get("include-system-site-packages", "false").lower() == "true"
if system:
    prefixes.append(sys.base_prefix)
sites = []
for prefix in prefixes:
    for key in ("purelib", "platlib"):
        d = sysconfig.get_path(key, vars={"base": prefix, "platbase": prefix})
        if d and d not in sites and os.path.isdir(d):
            sites.append(d)
if not cfg and not os.environ.get("PYTHONNOUSERSITE"):
    try:
        user = sysconfig.get_path("purelib", os.name + "_user")
    except KeyError:
        user = None
    if user and os.path.isdir(user):
        sites.insert(0, user)
extra = []
for d in sites:
    try:
        names = sorted(n for n in os.listdir(d) if n.endswith(".pth"))
    except OSError:
        continue
    for n in names[:256]:
        try:
            with open(os.path.join(d, n), encoding="utf-8", errors="replace") as fh:
                lines = fh.read(65536).splitlines()
        except OSError:
            continue
        for line in lines[:1024]:
            line = line.rstrip()
            if not line or line.startswith("#") or line.startswith(("import ", "import	")):
                continue
            p = os.path.join(d, line)
            if os.path.isdir(p) and p not in extra:
                extra.append(p)
path = [p for p in sys.path if p] + sites + extra
print(json.dumps({
    "version": platform.python_version(),
    "implementation": sys.implementation.name,
    "executable": sys.executable,
    "platform": sysconfig.get_platform(),
    "machine": platform.machine(),
    "path": path,
    "soabi": sysconfig.get_config_var("SOABI") or "",
}))
"""


class Interpreter(Struct, frozen=True):
    info: PythonInfo
    path: tuple[str, ...]


def _tags(limit: int = 4) -> tuple[str, ...]:
    from packaging import tags

    return tuple(str(t) for t in itertools.islice(tags.sys_tags(), limit))


def current(tags: bool = True) -> Interpreter:
    """This interpreter; its wheel tags only with `tags` (packaging.tags costs an import and a
    libc probe, and a check never reads them)."""
    info = PythonInfo(
        version=platform.python_version(),
        implementation=sys.implementation.name,
        executable=sys.executable,
        platform=sys.platform,
        machine=platform.machine(),
        tags=_tags() if tags else (),
    )
    return Interpreter(info, tuple(p for p in sys.path if p))


def other(executable: str, timeout: float = 5.0, tags: bool = True) -> Interpreter:
    """Ask another interpreter for its version and import path without running its site hooks
    (python -S, from an empty folder so nothing in the current one shadows the stdlib); its
    answer is bounded in time and size and checked before use."""
    import tempfile

    from compat.jsondoc import Reader, parse
    from compat.probe import bounded

    hint = "pass the path of a python executable, e.g. /srv/venv/bin/python"
    with tempfile.TemporaryDirectory(prefix="compat-") as empty:
        proc = bounded.run([executable, "-S", "-c", _CHILD], timeout, 4 * 1024 * 1024, cwd=empty)
    if proc.returncode is None:
        raise UsageError(f"cannot run the interpreter {executable}: it {proc.problem}", hint=hint)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise UsageError(f"{executable} exited {proc.returncode}: {err[0][:300]}", hint=hint)
    what = f"{executable} did not answer like a Python interpreter"
    try:
        data = parse(proc.stdout.decode("utf-8", "replace"), what, hint)
        r = Reader(what, hint)
        doc = r.obj(data, "$")
        version = r.get_text(doc, "version", "", limit=32)
        if not re.fullmatch(r"[0-9]{1,2}\.[0-9]{1,3}(\.[0-9]{1,4})?\S{0,16}", version, re.ASCII):
            raise r.fail("version", f"not a Python version: {version!r}")
        info = PythonInfo(
            version=version,
            implementation=r.get_text(doc, "implementation", "", "", 64),
            executable=r.get_text(doc, "executable", "", executable, 4096),
            platform=r.get_text(doc, "platform", "", "", 256),
            machine=r.get_text(doc, "machine", "", "", 64),
            tags=_other_tags(version, r.get_text(doc, "soabi", "", "", 256)) if tags else (),
        )
        path = r.texts(doc, "path", "", 10_000, 4096)
    except CompatError as exc:
        raise UsageError(f"{what}: {exc.message}", hint=hint) from None
    return Interpreter(info, path)


def _other_tags(version: str, soabi: str, limit: int = 4) -> tuple[str, ...]:
    from packaging import tags

    # the version was checked to start with X.Y (a suffix such as "rc1" may follow)
    m = re.match(r"([0-9]{1,2})\.([0-9]{1,3})", version)
    major_minor = (int(m.group(1)), int(m.group(2))) if m else (3, 0)
    abi = "cp" + "".join(map(str, major_minor)) if soabi.startswith("cpython") else None
    gen = tags.cpython_tags(major_minor, [abi] if abi else None)
    return tuple(str(t) for t in itertools.islice(gen, limit))


def resolve(executable: Optional[str], tags: bool = True) -> Interpreter:
    return other(executable, tags=tags) if executable else current(tags)
