from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging.version import Version

from compat.errors import InputError
from compat.models import Unknown
from compat.snapshot import dumps, load, loads

H100 = Path(__file__).parent / "assets" / "envs" / "h100-torch2.11-cu130.json"


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
