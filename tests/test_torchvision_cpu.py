"""The real case behind the torch-companion link check, built for real (opt-in: pytest -m online).

In a fresh venv, torch 2.13.0 (the CPU build) and then PyPI's torchvision 0.28.0 without deps:
`import torchvision` fails with "operator torchvision::nms does not exist" while `pip check` sees
nothing wrong, and compat names the cause. The default run replays the snapshot recorded from such
a venv (tests/assets/envs/cpu-torch2.13-pypi-torchvision0.28.json, see test_checks.py).
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.online


def test_cpu_torch_with_pypi_torchvision(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = str(env_dir / "bin" / "python")
    pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "torch==2.13.0"], check=True, timeout=900)
    subprocess.run([*pip, "--no-deps", "torchvision==0.28.0"], check=True, timeout=900)
    probe = subprocess.run(
        [py, "-c", "import torch; print(torch.version.cuda)"],
        capture_output=True,
        text=True,
        check=True,
    )
    if probe.stdout.strip() != "None":
        pytest.skip(
            "torch==2.13.0 resolved to a CUDA build here, not the CPU build this case needs"
        )
    imp = subprocess.run(
        [py, "-c", "import torchvision"], capture_output=True, text=True, check=False
    )
    assert imp.returncode != 0 and "operator torchvision::nms does not exist" in imp.stderr
    check = subprocess.run(
        [sys.executable, "-m", "compat", "check", "--interpreter", py],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 1
    assert "[torch-companion] torchvision 0.28.0 is a CUDA build" in check.stdout
    assert "libtorch_cuda.so" in check.stdout and "torchvision==0.28.0+cpu" in check.stdout
