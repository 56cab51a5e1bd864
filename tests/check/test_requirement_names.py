"""A check skips most of a stack's requirements by their name alone (compat.models
requirement_name) before parsing them: the name read that way must be the one packaging parses,
for every real Requires-Dist line and for any text, or a requirement would be judged wrongly."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from packaging.requirements import InvalidRequirement

from compat.check.base import Context, requires_of
from compat.matrix.load import Matrix
from compat.models import (
    Distribution,
    Environment,
    Unknown,
    canonicalize_name,
    parse_requirement,
    parse_version,
    requirement_name,
)

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "pypi"


def real_lines() -> list[str]:
    lines = []
    for path in sorted(ASSETS.glob("*.metadata")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("Requires-Dist:"):
                lines.append(line.split(":", 1)[1].strip())
    return lines


def test_the_name_read_first_is_the_parsed_name_on_every_real_line() -> None:
    lines = real_lines()
    assert len(lines) > 200  # torch, vllm and sglang releases' metadata
    for text in lines:
        assert requirement_name(text) == canonicalize_name(parse_requirement(text).name), text


@given(st.text(alphabet=" abcAB01._-[]<>=!~;,@'\"()\té", max_size=40))
def test_any_text_that_parses_has_the_name_read_first(text: str) -> None:
    try:
        req = parse_requirement(text)
    except InvalidRequirement:
        return
    assert requirement_name(text) == canonicalize_name(req.name)


def test_requires_of_with_a_name_filter_keeps_exactly_what_filtering_after_parsing_keeps() -> None:
    lines = real_lines()
    dist = Distribution("vllm", parse_version("0.10.1.1"), "0.10.1.1", "/x", tuple(lines))
    missing = Unknown("not probed")
    env = Environment(missing, (dist,), missing, missing, missing, missing)
    ctx = Context(env=env, matrix=Matrix())
    everything = requires_of(ctx, dist)
    for wanted in ("torch".__eq__, lambda n: n.startswith("nvidia-"), lambda n: "a" in n):
        assert requires_of(ctx, dist, wanted) == tuple(
            r for r in everything if wanted(canonicalize_name(r.name))
        )
