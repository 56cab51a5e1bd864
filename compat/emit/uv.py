"""A pyproject.toml snippet for uv: explicit indexes for the pins that need one, sources, constraints."""

from __future__ import annotations

from compat.emit import EmitOptions, header_lines
from compat.matrix.toml_write import quote
from compat.resolve import Resolution


def render_uv(res: Resolution, opts: EmitOptions) -> str:
    lines = header_lines(res, opts, "uv snippet: paste into pyproject.toml")
    lines.append(
        "# uv honours [tool.uv.sources] for the project's direct dependencies: list the "
        "packages named"
    )
    lines.append("# there in [project].dependencies too (the constraints below pin them).")
    t = res.target
    lines.append("")
    lines.append("[tool.uv]")
    env = (
        f"sys_platform == 'linux' and platform_machine == '{t.platform.arch}' "
        f"and python_version == '{t.python}'"
    )
    lines.append(f"environments = [{quote(env)}]")
    lines.append("constraint-dependencies = [")
    lines.extend(f"  {quote(p.constraint)}," for p in res.pins)
    lines.append("]")
    for index in res.indexes:
        lines.append("")
        lines.append("[[tool.uv.index]]")
        lines.append(f"name = {quote(index.name)}")
        lines.append(f"url = {quote(index.url)}")
        lines.append("explicit = true")
    sourced = [p for p in res.pins if p.index is not None]
    if sourced:
        lines.append("")
        lines.append("[tool.uv.sources]")
        for p in sourced:
            assert p.index is not None
            lines.append(f"{p.name} = {{ index = {quote(p.index.name)} }}")
    return "\n".join(lines) + "\n"
