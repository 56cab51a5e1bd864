"""Extras that install other extras of the same project, flattened on load; unknown extras."""

from __future__ import annotations

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from compat.errors import UsageError
from compat.matrix.extras import flatten
from compat.matrix.load import Matrix
from compat.resolve import Target, parse_targets, resolve

# As sglang 0.4.6.post1's METADATA has them (the sync keeps the lines on sglang itself).
LINES = [
    'torch==2.6.0; extra == "srt"',
    'transformers==4.51.1; extra == "runtime-common"',
    'sglang[runtime_common]; extra == "srt"',
    'sglang[srt,openai]; extra == "all"',
    'sglang[all]; extra == "dev"',
    'openai>=1.0; extra == "openai"',
    'sglang[srt]; extra == "test" and python_version >= "3.10"',
    "sglang[srt]",  # under no extra: installs nothing a pin could name
]


def test_self_references_become_the_lines_they_stand_for() -> None:
    lines, includes = flatten("sglang", LINES)
    reqs = {str(Requirement(r)) for r in lines}
    assert 'transformers==4.51.1; extra == "srt"' in reqs  # srt -> runtime_common
    assert 'torch==2.6.0; extra == "all"' in reqs and 'openai>=1.0; extra == "all"' in reqs
    assert 'torch==2.6.0; extra == "dev"' in reqs  # dev -> all -> srt, transitively
    assert 'torch==2.6.0; extra == "test" and python_version >= "3.10"' in reqs
    assert not any(Requirement(r).name == "sglang" for r in lines)
    assert dict(includes)["dev"] == ("all", "openai", "runtime-common", "srt")


def test_a_cycle_of_extras_ends() -> None:
    lines, _ = flatten("p", ['p[b]; extra == "a"', 'p[a]; extra == "b"', 'x==1; extra == "a"'])
    assert set(lines) == {'x==1; extra == "a"', 'x==1; extra == "b"'}


def test_the_database_flattens_and_names_the_smallest_extra() -> None:
    rel = Matrix().releases("sglang")[Version("0.4.6.post1")]
    torch_under = {
        e
        for r in rel.pins("torch")
        if r.specifier == Requirement("torch==2.6.0").specifier
        for e in ("srt", "all", "dev")
        if r.marker is not None and r.marker.evaluate({"extra": e})
    }
    assert torch_under == {"srt", "all", "dev"}
    assert rel.smallest_extras(["all", "dev", "srt"]) == ["srt"]
    assert "srt" in rel.extras and "all" in rel.extras


def test_all_resolves_like_srt_and_an_unknown_extra_is_a_usage_error() -> None:
    m = Matrix()
    res = resolve(Target(parse_targets(["sglang[all]==0.4.6.post1"]), python="3.11"), m)
    assert {p.name: str(p.version) for p in res.pins}["torch"] == "2.6.0"
    with pytest.raises(UsageError) as err:
        resolve(Target(parse_targets(["sglang[nope]==0.4.6.post1"]), python="3.11"), m)
    assert "has no extra 'nope'" in err.value.message and "srt" in (err.value.hint or "")
