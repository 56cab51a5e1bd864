"""stack-pin: compat is a superset of `pip check` for the stack."""

from __future__ import annotations

from pathlib import Path

from compat.inputs import env_from_freeze
from compat.matrix.load import Matrix
from compat.pipeline import Database, check
from compat.probe.distributions import scan
from tests.conftest import make_dist

DB = Database(Matrix(), ())


def _codes(env: object) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in check(env, DB):  # type: ignore[arg-type]
        out.setdefault(f.code, []).append(f.message)
    return out


def test_torch_runtime_pins_from_the_database_for_a_freeze() -> None:
    env = env_from_freeze(
        "torch==2.7.1\ntriton==3.3.1\nnvidia-cuda-runtime-cu12==12.4.127\n", "f.txt", DB.matrix
    )
    pins = _codes(env)["stack-pin"]
    assert (
        "torch 2.7.1 requires nvidia-cuda-runtime-cu12==12.6.77, but nvidia-cuda-runtime-cu12 12.4.127 is installed"
        in pins
    )
    # A build from another index: PyPI's CUDA pins are not its pins.
    other = env_from_freeze(
        "torch==2.7.1+cu118\ntriton==3.3.1\nnvidia-cuda-runtime-cu11==11.8.89\n", "f.txt", DB.matrix
    )
    assert "stack-pin" not in _codes(other)


def test_packages_outside_the_stack_that_pin_it_are_read_and_judged(tmp_path: Path) -> None:
    make_dist(tmp_path, "vllm", "0.10.1.1", ("torch==2.7.1",))
    make_dist(tmp_path, "torch", "2.7.1")
    make_dist(tmp_path, "openrlhf", "0.8.0", ("vllm==0.8.5", "ray[default]>=2.40", "requests"))
    make_dist(tmp_path, "requests", "2.32.3", ("urllib3<3",))
    make_dist(tmp_path, "accelerate", "1.0.0", ("torch>=2.0.0", "numpy<3"))
    dists = {d.key: d for d in scan([str(tmp_path)])}
    # A dependent is listed with its requirements on the stack only; others are not read in.
    assert dists["openrlhf"].requires == ("vllm==0.8.5", "ray[default]>=2.40")
    assert "requests" not in dists
    from packaging.version import Version

    from compat.models import Environment, PythonInfo, TorchBuild, Unknown

    env = Environment(
        PythonInfo("3.11.7", "cpython", "python", "linux", "x86_64"),
        tuple(dists.values()),
        TorchBuild(Version("2.7.1"), "12.6", None, "t"),
        Unknown("t"),
        Unknown("t"),
        Unknown("t"),
    )
    found = _codes(env)
    assert (
        "openrlhf 0.8.0 requires vllm==0.8.5, but vllm 0.10.1.1 is installed" in found["stack-pin"]
    )
    assert "openrlhf 0.8.0 requires ray>=2.40, which is not installed" in found["stack-pin"]
    assert not any("accelerate" in m for m in found["stack-pin"])  # torch>=2.0.0 holds


def test_other_platform_extras_never_apply_to_a_cuda_stack() -> None:
    """sglang 0.4.6.post1 pins vllm==0.6.7.dev2 only in its [srt-hip] extra: a CUDA stack with
    another vllm is not judged by it (in check, and in lint through the same pipeline)."""
    text = (
        "sglang==0.4.6.post1\ntorch==2.6.0\ntriton==3.2.0\ntorchvision==0.21.0\n"
        "vllm==0.8.4\nflashinfer-python==0.2.3\n"
    )
    env = env_from_freeze(text, "f.txt", DB.matrix)
    messages = [m for ms in _codes(env).values() for m in ms]
    assert not any("srt-hip" in m or "0.6.7.dev2" in m for m in messages), messages
