"""On a real NVIDIA machine (opt-in: pytest -m gpu): what compat probes matches the driver and torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.gpu


def compat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "compat", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def snapshot() -> dict[str, object]:
    p = compat("env", "--json")
    assert p.returncode == 0, p.stderr
    data: dict[str, object] = json.loads(p.stdout)
    return data


def test_driver_and_gpus_match_nvidia_smi(snapshot: dict[str, object]) -> None:
    smi = shutil.which("nvidia-smi")
    if not smi:
        pytest.skip("nvidia-smi not on PATH")
    out = subprocess.run(
        [smi, "--query-gpu=index,name,compute_cap,driver_version", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [[c.strip() for c in line.split(",")] for line in out.strip().splitlines()]
    gpus = snapshot["gpus"]
    assert isinstance(gpus, list) and len(gpus) == len(rows)
    for g, row in zip(gpus, rows):
        assert (str(g["index"]), g["name"], g["compute_capability"]) == (row[0], row[1], row[2])
    driver = snapshot["driver"]
    assert isinstance(driver, dict) and driver["version"] == rows[0][3]
    assert isinstance(driver["cuda"], str)


def test_torch_build_matches_import(snapshot: dict[str, object]) -> None:
    torch = pytest.importorskip("torch")
    t = snapshot["torch"]
    assert isinstance(t, dict)
    assert t["version"] == torch.__version__ and t["cuda"] == torch.version.cuda
    cc = torch.cuda.get_device_capability(0)
    gpus = snapshot["gpus"]
    assert isinstance(gpus, list) and gpus[0]["compute_capability"] == f"{cc[0]}.{cc[1]}"


def test_live_stack_check_is_clean() -> None:
    p = compat("check", "--deep")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "ERRORS" not in p.stdout and "WARNINGS" not in p.stdout, p.stdout
