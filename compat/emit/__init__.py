"""Writers for a resolved tuple: requirements.lock, constraints.txt, pylock.toml, a uv snippet.

Each writer is a pure function `(Resolution, EmitOptions) -> str`; the command writes the text.
A new format is a module here plus one member of `LockFormat` and one entry in `WRITERS`.
"""

from __future__ import annotations

import enum
from typing import Callable, Optional

from msgspec import Struct

from compat.nvidia import fmt_driver
from compat.resolve import Pin, Resolution, wheel_fits


class LockFormat(enum.Enum):
    REQUIREMENTS = "requirements"
    CONSTRAINTS = "constraints"
    PYLOCK = "pylock"
    UV = "uv"

    @property
    def filename(self) -> str:
        return _FILENAMES[self]


_FILENAMES = {
    LockFormat.REQUIREMENTS: "requirements.lock",
    LockFormat.CONSTRAINTS: "constraints.txt",
    LockFormat.PYLOCK: "pylock.toml",
    LockFormat.UV: "uv-sources.toml",
}


class EmitOptions(Struct, frozen=True):
    command: str = "compat lock"  # the command line that reproduces the lock
    hashes: bool = False
    version: str = ""  # compat's version, for the header


def render(fmt: LockFormat, res: Resolution, opts: EmitOptions) -> str:
    return WRITERS[fmt](res, opts)


def recorded_wheel(pin: Pin, res: Resolution) -> Optional[tuple[str, str]]:
    """(file name, sha256) of the wheel the target installs for `pin`, when the database has it.

    The generated data records the sha256 of one wheel per release (the one whose METADATA it
    read). It covers the pin only when the pin comes from PyPI without a local tag, that wheel
    installs on the target, and it is the only wheel of the release that does (so pip and uv
    cannot pick another).
    """
    rel = pin.release
    if rel is None or rel.source is None or pin.index is not None or pin.version.local:
        return None
    src = rel.source
    if not src.sha256 or not src.file.endswith(".whl"):
        return None
    tags = _wheel_tags(src.file)
    t = res.target
    if tags is None or not wheel_fits(tags, t.python, t.platform):
        return None
    fitting = [w for w in rel.wheels if wheel_fits(w, t.python, t.platform)]
    if len(fitting) != 1:
        return None
    return src.file, src.sha256


def _wheel_tags(filename: str) -> Optional[str]:
    parts = filename[:-4].split("-")
    if len(parts) not in (5, 6):
        return None
    return "-".join(parts[-3:])


def header_lines(res: Resolution, opts: EmitOptions, what: str) -> list[str]:
    """The comment block every text output starts with: how to reproduce it, and for what."""
    t = res.target
    torch = res.pin("torch")
    fw = res.framework
    lines = [
        f"# {what}, written by compat{(' ' + opts.version) if opts.version else ''}.",
        f"# Reproduce: {opts.command}",
        f"# Target: {t.spec_text()}"
        + (f" (as {fw.requirement})" if fw is not None and fw.extras else "")
        + f"; Python {t.python}; {t.platform.label}",
    ]
    if t.has_host:
        host = []
        if t.driver is not None:
            host.append(f"driver {fmt_driver(t.driver)} ({t.driver_source or '--driver'})")
        host.extend(f"GPU {g.label} ({g.source})" for g in t.gpus)
        if t.cuda:
            host.append(f"CUDA {t.cuda} (--cuda)")
        if t.cuda_max is not None:
            host.append(f"CUDA <= {t.cuda_max} (--cuda auto)")
        lines.append("# Host: " + "; ".join(host))
    else:
        lines.append(
            "# Host: none declared. This lock is for the framework's requirements alone "
            "(PyPI's own torch build);"
        )
        lines.append(
            "#   no driver or GPU was checked: give --driver/--gpu (or auto) to lock for a machine."
        )
    if torch is not None:
        lines.append(
            f"# Tuple: torch {torch.version} (CUDA {res.cuda})"
            + "".join(f", {p.name} {p.version}" for p in res.pins if p.name in ("triton",))
        )
    for note in res.notes:
        lines.append(f"# Note: {note}")
    if res.pending:
        ids = ", ".join(p.split(":", 1)[0] for p in res.pending)
        lines.append(f"# Known crashes that depend on the launch command or env: {ids};")
        lines.append(
            "#   `compat check --from <this file> -- <launch command>` tells whether they apply."
        )
    return lines


WRITERS: dict[LockFormat, Callable[[Resolution, EmitOptions], str]] = {}


def _register() -> None:
    from compat.emit import pylock, requirements, uv

    WRITERS[LockFormat.REQUIREMENTS] = requirements.render_requirements
    WRITERS[LockFormat.CONSTRAINTS] = requirements.render_constraints
    WRITERS[LockFormat.PYLOCK] = pylock.render_pylock
    WRITERS[LockFormat.UV] = uv.render_uv


_register()
