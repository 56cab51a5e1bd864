from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from packaging.version import Version

from compat.errors import InputError
from compat.models import Unknown
from compat.snapshot import dumps, from_dict, load, loads

ASSETS = Path(__file__).parent / "assets"
H100 = ASSETS / "envs" / "h100-torch2.11-cu130.json"


def test_h100_snapshot_reads_back() -> None:
    # Written by `compat env --json` on the lent H100 machine (torch 2.11.0+cu130, driver 580).
    env = load(str(H100))
    assert not isinstance(env.torch, Unknown)
    assert env.torch.version == Version("2.11.0+cu130") and env.torch.cuda == "13.0"
    assert env.version_of("torch") == Version("2.11.0")  # the dist version has no local tag
    assert env.version_of("triton") == Version("3.6.0")
    assert not isinstance(env.driver, Unknown)
    assert env.driver.version.startswith("580.") and env.driver.cuda == "13.0"
    assert not isinstance(env.gpus, Unknown)
    (gpu,) = env.gpus
    assert gpu.name == "NVIDIA H100 80GB HBM3" and gpu.compute_capability == (9, 0)
    assert gpu.memory_total_mib == 81559
    assert env.dist("nvidia-cuda-runtime") is not None and env.dist("cuda-toolkit") is not None


def test_round_trip_is_stable() -> None:
    text = H100.read_text()
    env = loads(text, "h100")
    again = dumps(env)

    def pairs(doc: str) -> list[tuple[str, str]]:
        return [(d["name"], d["version"]) for d in json.loads(doc)["distributions"]]

    assert pairs(again) == pairs(text)
    assert dumps(loads(again, "h100")) == again


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"schema": "pip-freeze"}', "not a compat environment snapshot"),
        ('{"schema": "compat.env/2"}', "compat.env/2 is not supported"),
        (
            '{"schema": "compat.env/1", "distributions": [{"version": "1.0"}]}',
            "'distributions[0].name'",
        ),
        (
            '{"schema": "compat.env/1", "gpus": [{"compute_capability": "nine"}]}',
            "'gpus[0].compute_capability'",
        ),
        (
            '{"schema": "compat.env/1", "gpus": [{"memory_total_mib": "lots"}]}',
            "'gpus[0].memory_total_mib'",
        ),
    ],
)
def test_bad_snapshots_are_input_errors(text: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        loads(text, "snap.json")
    assert message in str(err.value)
    assert err.value.exit_code == 3


def test_unknowns_survive_the_round_trip() -> None:
    env = loads('{"schema": "compat.env/1", "driver": {"unknown": "no driver"}}', "x")
    assert env.driver == Unknown("no driver")
    assert isinstance(env.gpus, Unknown) and "not in the snapshot" in env.gpus.reason
    assert json.loads(dumps(env))["driver"] == {"unknown": "no driver"}


def test_non_utf8_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match="not UTF-8"):
        load(str(bad))


# Hostile snapshots: every problem is an InputError with its key path, never another exception.
_VALUES: list[object] = [
    None,
    True,
    0,
    -1,
    2**70,
    1.5,
    "",
    "x" * 70_000,
    "\ud800",
    [],
    [None],
    {},
    {"unknown": 1},
]


def _paths(value: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*path, k))
    elif isinstance(value, list) and value:
        out += _paths(value[0], (*path, 0))
    return out


def _replace(doc: object, path: tuple[object, ...], new: object) -> object:
    if not path:
        return new
    clone = copy.deepcopy(doc)
    target = clone
    for key in path[:-1]:
        target = target[key]  # type: ignore[index]
    target[path[-1]] = new  # type: ignore[index]
    return clone


def test_every_field_given_every_json_type_reads_or_is_an_input_error() -> None:
    base = json.loads((ASSETS / "envs" / "h100-torch2.11-cu130.json").read_text())
    tried = 0
    for path in _paths(base):
        if path and path[0] == "schema":
            continue
        for value in _VALUES:
            doc = _replace(base, path, value)
            tried += 1
            try:
                env = from_dict(doc, "fuzz.json")
            except InputError as exc:
                assert "fuzz.json" in exc.message
                continue
            # What was read can be written back and printed (no surrogate slipped through).
            dumps(env).encode("utf-8")
    assert tried > 500  # every key path of the real snapshot, each with 13 values


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"schema": "compat.env/1", "gpus": [{"name": "H100\\ud800"}]}', "lone surrogate"),
        ('{"schema": "compat.env/1", "torch": {"version": "2.7", "cuda": "12.x"}}', "12.x"),
        (
            '{"schema": "compat.env/1", "env": ' + "[" * 100_000 + "]" * 100_000 + "}",
            "nested more than",
        ),
        (
            '{"schema": "compat.env/1", "caches": [{"kind": "t", "path": "p", "oldest_mtime": NaN}]}',
            "NaN",
        ),
    ],
)
def test_hostile_snapshot_shapes(text: str, needle: str) -> None:
    with pytest.raises(InputError) as info:
        loads(text, "x.json")
    assert needle in info.value.message


def test_a_five_thousand_digit_version_is_not_a_version() -> None:
    text = json.dumps(
        {"schema": "compat.env/1", "distributions": [{"name": "torch", "version": "9" * 5000}]}
    )
    with pytest.raises(InputError) as info:
        loads(text, "x.json")  # longer than any version string may be
    assert "distributions[0].version" in info.value.message
    ok = json.dumps(
        {"schema": "compat.env/1", "distributions": [{"name": "torch", "version": "9" * 200}]}
    )
    (d,) = loads(ok, "x.json").distributions
    assert d.version is None and d.broken is not None
