"""pylock.toml (PEP 751) for the tuple, validated with packaging's reader when it is installed.

PEP 751 wants every package to name a file with its hash. compat's database records the sha256
of one wheel per release, so a package is written only when that wheel is the one the target
installs (see compat.emit.recorded_wheel); the others are listed under [tool.compat] as missing,
and the header says how to complete the file.
"""

from __future__ import annotations

from typing import Any

from compat.emit import EmitOptions, header_lines, recorded_wheel
from compat.matrix.toml_write import quote
from compat.resolve import Pin, Resolution

PYPI_SIMPLE = "https://pypi.org/simple"
# Warehouse's predictable file URLs: /packages/{python tag}/{first letter}/{project}/{file}.
FILES = "https://files.pythonhosted.org/packages"


def wheel_url(pin: Pin, filename: str) -> str:
    project = filename.split("-", 1)[0]
    python_tag = filename[:-4].split("-")[-3].split(".")[0]
    return f"{FILES}/{python_tag}/{project[0]}/{project}/{filename}"


def pylock_dict(res: Resolution, opts: EmitOptions) -> tuple[dict[str, Any], list[str]]:
    """The PEP 751 document as a dict, and the pins it could not include."""
    t = res.target
    packages: list[dict[str, Any]] = []
    missing: list[str] = []
    for pin in res.pins:
        rec = recorded_wheel(pin, res)
        if rec is None:
            missing.append(pin.constraint)
            continue
        filename, sha = rec
        pkg: dict[str, Any] = {"name": pin.name, "version": str(pin.version)}
        if pin.release is not None and str(pin.release.requires_python):
            pkg["requires-python"] = str(pin.release.requires_python)
        pkg["index"] = PYPI_SIMPLE
        pkg["wheels"] = [
            {"name": filename, "url": wheel_url(pin, filename), "hashes": {"sha256": sha}}
        ]
        packages.append(pkg)
    env = (
        f"sys_platform == 'linux' and platform_machine == '{t.platform.arch}' "
        f"and python_version == '{t.python}'"
    )
    doc: dict[str, Any] = {
        "lock-version": "1.0",
        "environments": [env],
        "requires-python": f"=={t.python}.*",
        "created-by": "compat",
        "packages": packages,
        "tool": {"compat": {"command": opts.command, "cuda": res.cuda, "missing": missing}},
    }
    return doc, missing


def validate(doc: dict[str, Any]) -> None:
    """Round-trip through packaging.pylock (packaging >= 25.1) when it is there."""
    try:
        from packaging.pylock import Pylock
    except ImportError:  # pragma: no cover - older packaging
        return
    Pylock.from_dict(doc).validate()


def render_pylock(res: Resolution, opts: EmitOptions) -> str:
    doc, missing = pylock_dict(res, opts)
    validate(doc)
    lines = header_lines(res, opts, "pylock.toml (PEP 751)")
    if missing:
        lines.append(
            f"# Incomplete: {len(missing)} of {len(res.pins)} pins have no recorded hash "
            "for the wheel this target installs"
        )
        lines.append(f"#   ({', '.join(missing)}); they are listed under [tool.compat].missing.")
        lines.append(
            "#   A complete file: uv pip compile -c constraints.txt --format pylock.toml "
            "<requirements> (or pip lock)."
        )
    lines.append("")
    lines.append(f"lock-version = {quote(doc['lock-version'])}")
    lines.append(f"environments = [{quote(doc['environments'][0])}]")
    lines.append(f"requires-python = {quote(doc['requires-python'])}")
    lines.append(f"created-by = {quote(doc['created-by'])}")
    for pkg in doc["packages"]:
        lines.append("")
        lines.append("[[packages]]")
        for key in ("name", "version", "requires-python", "index"):
            if key in pkg:
                lines.append(f"{key} = {quote(pkg[key])}")
        for w in pkg["wheels"]:
            lines.append("")
            lines.append("[[packages.wheels]]")
            lines.append(f"name = {quote(w['name'])}")
            lines.append(f"url = {quote(w['url'])}")
            lines.append(f"hashes = {{ sha256 = {quote(w['hashes']['sha256'])} }}")
    tool = doc["tool"]["compat"]
    lines.append("")
    lines.append("[tool.compat]")
    lines.append(f"command = {quote(tool['command'])}")
    lines.append(f"cuda = {quote(tool['cuda'])}")
    lines.append("missing = [" + ", ".join(quote(m) for m in tool["missing"]) + "]")
    return "\n".join(lines) + "\n"
