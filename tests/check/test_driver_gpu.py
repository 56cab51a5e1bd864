"""driver-too-old: the driver against each GPU's architecture, and against CUDA 13 parts."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from compat.inputs import apply_overrides, load_from
from compat.matrix.load import Matrix
from compat.models import Finding, Severity
from compat.pipeline import Database, check

ASSETS = Path(__file__).parents[1] / "assets"
MATRIX = Matrix()
DB = Database(MATRIX, ())
CU130 = str(ASSETS / "envs" / "h100-torch2.11-cu130.json")
CU124 = str(ASSETS / "freeze" / "sglang-0.4.6-good.txt")
CU13_PARTS = str(ASSETS / "freeze" / "torch-2.9-cu128-with-cu13-runtime.txt")


def driver_findings(
    source: str, driver: Optional[str], *gpus: str, replace_gpus: bool = True
) -> list[Finding]:
    env = load_from(source, MATRIX)
    env = apply_overrides(env, MATRIX, driver, gpus if replace_gpus else ())
    return [f for f in check(env, DB) if f.code == "driver-too-old"]


def errors(fs: list[Finding]) -> list[str]:
    return [f.message for f in fs if f.severity is Severity.ERROR]


def test_blackwell_on_r535_is_an_error_whatever_the_cuda_build() -> None:
    fs = driver_findings(CU124, "535.104.05", "rtx5090")
    gpu = [m for m in errors(fs) if "GeForce RTX 5090" in m]
    assert len(gpu) == 1, [f.message for f in fs]
    assert "R570 or newer" in gpu[0] and "Blackwell" in gpu[0] and "sm_120" in gpu[0]
    # the same driver runs an H100 (Hopper needs R520) and the stack's CUDA 12.4 build
    assert not errors(driver_findings(CU124, "535.104.05", "h100"))


def test_the_floor_holds_for_every_gpu_of_a_count() -> None:
    fs = driver_findings(CU124, "550.54.15", "8xB200")
    (msg,) = errors(fs)
    assert "GPU 0 (B200) and 7 more" in msg and "R570" in msg


def test_a_branch_is_judged_at_its_floor() -> None:
    (msg,) = errors(driver_findings(CU124, "R565", "b200"))
    assert "driver 565.57.01 (R565)" in msg


def test_volta_after_its_last_branch() -> None:
    fs = driver_findings(CU124, "590.44.01", "v100")
    assert any("no longer supports" in m and "R580" in m for m in errors(fs))
    assert not any(
        "no longer supports" in m for m in errors(driver_findings(CU124, "580.95.05", "v100"))
    )


def test_jetson_is_not_judged() -> None:
    assert not errors(driver_findings(CU124, "535.104.05", "jetson agx orin"))


def test_cuda13_parts_on_a_driver_below_580_are_an_error() -> None:
    # torch's own build (12.8) runs on R570, the CUDA 13 runtime wheels beside it do not
    fs = driver_findings(CU13_PARTS, "570.86.10")
    (msg,) = errors(fs)
    assert "nvidia-cuda-runtime 13.0.96 (CUDA 13.x)" in msg and "nvidia-nccl-cu13" in msg
    assert "driver >= 580" in msg
    assert not errors(driver_findings(CU13_PARTS, "580.65.06"))


def test_cuda13_torch_on_a_driver_older_than_every_toolkit_is_an_error() -> None:
    fs = driver_findings(CU130, "418.87.00", replace_gpus=False)
    assert fs and all(f.severity is Severity.ERROR for f in fs), [f.message for f in fs]
    assert any("reports CUDA 10.1" in f.message for f in fs)


def test_versions_print_as_nvidia_writes_them() -> None:
    fs = driver_findings(CU130, "575.57.08", replace_gpus=False)
    text = " ".join(f.message + " ".join(f.fix) for f in fs)
    assert "580.65.06" in text and "580.65.6 " not in text and "575.57.08" in text


def test_r535_reports_cuda_12_2() -> None:
    env = apply_overrides(load_from(CU124, MATRIX), MATRIX, "535")
    assert env.driver.version == "535.54.03"  # type: ignore[union-attr]
    assert env.driver.cuda == "12.2"  # type: ignore[union-attr]
    assert "R535 branch" in env.driver.version_source  # type: ignore[union-attr]
