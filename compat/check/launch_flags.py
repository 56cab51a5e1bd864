"""launch-flag / env-var: flags and variables the installed release's own parser refuses or ignores."""

from __future__ import annotations

from compat.check.base import Context
from compat.families import families
from compat.models import Code, Finding, Severity


def check(ctx: Context) -> list[Finding]:
    """One finding per problem the launch parse recorded (unknown, removed or deprecated flag,
    value outside the choices, ambiguous abbreviation, env var the release does not read), plus
    the framework's variables in the probed environment that the release does not read."""
    launch = ctx.launch
    if launch is None or launch.framework not in families().frameworks:
        return []
    out: list[Finding] = []
    if ctx.env.dist(launch.framework) is None and not any(
        d.key == launch.framework for d in ctx.env.distributions
    ):
        out.append(
            Finding(
                Code.LAUNCH_FLAG.value,
                Severity.WARNING,
                f"the launch command starts {launch.framework}, which is not installed in the "
                "checked environment: its flags and defaults are judged without its release",
                evidence=(
                    f"environment: {ctx.env.source}",
                    f"launch: {' '.join(launch.argv[:3])} ...",
                ),
                fix=(
                    f"check the environment the server runs in (compat check --interpreter PATH, "
                    f"or --from its `compat env --json` snapshot), or install {launch.framework}",
                ),
                packages=(launch.framework,),
            )
        )
    # What the parse could not read (a --config file without PyYAML, with aliases, unreadable).
    out.extend(
        Finding(Code.LAUNCH_FLAG.value, Severity.INFO, note, evidence=("launch command",))
        for note in launch.notes
        if note.startswith("--config")
    )
    problems = list(launch.problems)
    basis = launch.basis
    if basis is not None:
        from compat.launch.env import env_problems

        seen = {p.subject for p in problems if p.kind == "env-ignored"}
        probed = {k: v for k, v in ctx.env.env.items() if k not in launch.env and k not in seen}
        problems.extend(env_problems(basis, probed))
    release = basis.label if basis is not None else launch.framework
    for p in problems:
        env = p.kind == "env-ignored"
        code = Code.ENV_VAR if env else Code.LAUNCH_FLAG
        evidence: tuple[str, ...] = (f"judged against {release}",)
        if basis is not None and basis.index is not None:
            info = basis.data.release(basis.index)
            evidence += (
                f"launch data: {info.source.file} ({', '.join(info.source.members[:3])}"
                f"{', ...' if len(info.source.members) > 3 else ''})",
            )
        fix = p.fix or (("remove the flag",) if p.kind in ("unknown-flag", "removed-flag") else ())
        out.append(Finding(code.value, p.severity, p.message, evidence=evidence, fix=fix))
    return out


__all__ = ["Severity", "check"]
