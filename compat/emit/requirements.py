"""requirements.lock (pins, the index lines they need, `# via`, optional hashes) and constraints.txt."""

from __future__ import annotations

from compat.emit import EmitOptions, header_lines, recorded_wheel
from compat.resolve import Resolution


def _index_lines(res: Resolution) -> list[str]:
    # --extra-index-url keeps PyPI for everything else; each pin below names its index.
    return [f"--extra-index-url {i.url}" for i in res.indexes]


def render_requirements(res: Resolution, opts: EmitOptions) -> str:
    lines = header_lines(res, opts, "requirements.lock: the stack, pinned")
    install_at = len(lines)
    covered: list[str] = []
    uncovered: list[str] = []
    body: list[str] = []
    for pin in res.pins:
        line = pin.requirement
        if opts.hashes:
            rec = recorded_wheel(pin, res)
            if rec is not None:
                line += f" \\\n    --hash=sha256:{rec[1]}"
                covered.append(pin.name)
            else:
                uncovered.append(pin.name)
        body.append(line)
        via = ", ".join(pin.via)
        body.append(f"    # via {via}")
        if pin.index is not None:
            body.append(f"    # from {pin.index.name}: {pin.index.url}")
        if pin.sdist_only:
            body.append("    # no wheel for this target: installs from the sdist")
    if opts.hashes:
        lines.append(
            f"# Hashes: {len(covered)} of {len(res.pins)} pins carry the sha256 of the one wheel "
            "they install here"
        )
        lines.append(
            "#   (compat's database records one wheel's hash per release; none for other indexes)."
        )
        if uncovered:
            lines.append(
                f"#   Not covered: {', '.join(uncovered)}. pip's hash-checking mode wants "
                "a hash on every"
            )
            lines.append(
                "#   requirement (and the framework's other dependencies), so complete "
                "this file with"
            )
            lines.append(
                "#   `pip-compile --generate-hashes` or `uv pip compile --generate-hashes` "
                "before --require-hashes."
            )
    if not opts.hashes:
        install = "# Install: pip install -r requirements.lock   (or: uv pip install -r requirements.lock)"
    elif not uncovered:
        install = "# Install: pip install --require-hashes -r requirements.lock   (every pin has its hash)"
    else:
        # One --hash puts pip in hash-checking mode for the whole file: as written it would
        # refuse the pins without one. Say so where the install line is read.
        install = (
            "# Install: as written pip refuses this file (a hash on some pins turns hash-checking "
            "on for all);\n#   complete the hashes first (below), then: pip install "
            "--require-hashes -r requirements.lock"
        )
    lines.insert(install_at, install)
    lines.extend(_index_lines(res))
    lines.extend(body)
    return "\n".join(lines) + "\n"


def render_constraints(res: Resolution, opts: EmitOptions) -> str:
    lines = header_lines(res, opts, "constraints.txt: the stack's versions, for pip/uv -c")
    extra = " ".join(f"--extra-index-url {i.url}" for i in res.indexes)
    cmd = f"pip install -c constraints.txt {extra} <your requirements>".replace("  ", " ")
    lines.append(f"# Use: {cmd}")
    lines.append(
        "#   (uv pip install -c constraints.txt ... the same; constraints carry no "
        "extras and no index lines)"
    )
    for pin in res.pins:
        lines.append(pin.constraint)
    return "\n".join(lines) + "\n"
