"""The lock writers: every format renders; pins, indexes, hashes and PEP 751 validity."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from packaging.version import Version

from compat.advisories import load_advisories
from compat.emit import EmitOptions, LockFormat, recorded_wheel, render
from compat.emit.pylock import pylock_dict
from compat.matrix.load import Matrix, parse_gpu_arg
from compat.resolve import Resolution, Target, TargetGpu, parse_targets, resolve
from compat.resources import advisories_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return Matrix()


def lock(
    matrix: Matrix,
    *reqs: str,
    driver: str = "",
    gpus: tuple[str, ...] = (),
    python: str = "3.11",
    cuda: str | None = None,
) -> Resolution:
    t = Target(
        parse_targets(reqs),
        python=python,
        driver=Version(driver) if driver else None,
        gpus=tuple(TargetGpu(*parse_gpu_arg(g, matrix)) for g in gpus),
        cuda=cuda,
    )
    return resolve(t, matrix, load_advisories(advisories_dir()))


OPTS = EmitOptions(
    command="compat lock sglang==0.4.6.post1 --driver 535.104.05 --gpu a100 --cuda 12.6"
)


@pytest.mark.parametrize("fmt", list(LockFormat))
def test_every_format_renders(matrix: Matrix, fmt: LockFormat) -> None:
    res = lock(matrix, "sglang==0.4.6.post1", driver="535.104.05", gpus=("a100",), cuda="12.6")
    text = render(fmt, res, OPTS)
    assert OPTS.command and f"# Reproduce: {OPTS.command}" in text
    assert fmt.filename
    if fmt in (LockFormat.PYLOCK, LockFormat.UV):
        tomllib.loads(text)  # valid TOML


def test_requirements_lock(matrix: Matrix) -> None:
    # --cuda 12.6 asks for the build a 535 driver runs only under minor-version compatibility.
    res = lock(matrix, "sglang==0.4.6.post1", driver="535.104.05", gpus=("a100",), cuda="12.6")
    text = render(LockFormat.REQUIREMENTS, res, OPTS)
    lines = text.splitlines()
    assert "--extra-index-url https://download.pytorch.org/whl/cu126" in lines
    assert "torch==2.6.0+cu126" in lines and "torchvision==0.21.0+cu126" in lines
    assert "sglang[srt]==0.4.6.post1" in lines and "triton==3.2.0" in lines
    assert "    # via sglang[srt]==0.4.6.post1" in lines
    assert (
        "# Host: driver 535.104.05 (--driver); GPU A100 (sm_80) (--gpu); CUDA 12.6 (--cuda)"
        in lines
    )
    assert any(
        line.startswith("# Note: driver 535.104.05 runs CUDA 12.6 under minor-version")
        for line in lines
    )


def test_header_without_host(matrix: Matrix) -> None:
    text = render(LockFormat.REQUIREMENTS, lock(matrix, "torch==2.7.1"), OPTS)
    assert "# Host: none declared. This lock is for the framework's requirements alone" in text
    assert "--extra-index-url" not in text


def test_constraints_have_no_extras_and_no_options(matrix: Matrix) -> None:
    res = lock(matrix, "sglang==0.4.6.post1", driver="535.104.05")
    body = [
        ln
        for ln in render(LockFormat.CONSTRAINTS, res, OPTS).splitlines()
        if not ln.startswith("#")
    ]
    assert "sglang==0.4.6.post1" in body
    assert all("[" not in ln and not ln.startswith("-") for ln in body)


def test_hashes_only_where_the_recorded_wheel_is_the_one_installed(matrix: Matrix) -> None:
    # Python 3.12 on x86_64: the database recorded the cp312 manylinux wheels.
    res = lock(matrix, "torch==2.7.1", python="3.12")
    text = render(LockFormat.REQUIREMENTS, res, EmitOptions(hashes=True))
    torch_sha = matrix.releases("torch")[Version("2.7.1")].source.sha256  # type: ignore[union-attr]
    assert f"--hash=sha256:{torch_sha}" in text
    assert "# Hashes: 2 of 2 pins" in text
    # Python 3.11: the recorded cp312 wheel is not the one installed; nothing is claimed.
    res = lock(matrix, "torch==2.7.1", python="3.11")
    assert all(recorded_wheel(p, res) is None for p in res.pins)
    text = render(LockFormat.REQUIREMENTS, res, EmitOptions(hashes=True))
    assert "--hash" not in text and "Not covered: torch, triton" in text
    # An index build (+cu126) never has a recorded hash.
    res = lock(matrix, "sglang==0.4.6.post1", driver="535.104.05", python="3.12", cuda="12.6")
    assert recorded_wheel(res.pin("torch"), res) is None  # type: ignore[arg-type]


def test_pylock_round_trips_through_packaging(matrix: Matrix) -> None:
    pylock = pytest.importorskip("packaging.pylock")
    res = lock(matrix, "torch==2.7.1", "torchvision", python="3.12")
    text = render(LockFormat.PYLOCK, res, OPTS)
    parsed = pylock.Pylock.from_dict(tomllib.loads(text))
    parsed.validate()
    names = {p.name for p in parsed.packages}
    assert names == {"torch", "torchvision", "triton"}
    torch = next(p for p in parsed.packages if p.name == "torch")
    assert str(torch.version) == "2.7.1"
    assert torch.wheels[0].url.startswith("https://files.pythonhosted.org/packages/cp312/t/torch/")


def test_pylock_lists_what_it_could_not_hash(matrix: Matrix) -> None:
    res = lock(matrix, "sglang==0.4.6.post1", driver="535.104.05", python="3.11", cuda="12.6")
    _, missing = pylock_dict(res, OPTS)
    assert "torch==2.6.0+cu126" in missing
    text = render(LockFormat.PYLOCK, res, OPTS)
    assert tomllib.loads(text)["tool"]["compat"]["missing"] == missing
    assert "# Incomplete:" in text


def test_uv_snippet(matrix: Matrix) -> None:
    res = lock(matrix, "sglang==0.4.6.post1", driver="535.104.05", cuda="12.6")
    doc: dict[str, Any] = tomllib.loads(render(LockFormat.UV, res, OPTS))
    uv = doc["tool"]["uv"]
    assert uv["index"] == [
        {"name": "pytorch-cu126", "url": "https://download.pytorch.org/whl/cu126", "explicit": True}
    ]
    assert uv["sources"]["torch"] == {"index": "pytorch-cu126"}
    assert "torch==2.6.0+cu126" in uv["constraint-dependencies"]
