"""kernel-torch and cuda-mix from build facts: kernels that declare no torch pin, on a small database."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from packaging.version import Version

from compat.matrix.builtfor import built_for
from compat.matrix.load import Matrix
from compat.models import (
    Distribution,
    Driver,
    Environment,
    Finding,
    PythonInfo,
    Severity,
    TorchBuild,
    Unknown,
)
from compat.pipeline import Database, check

ROOT = Path(__file__).resolve().parents[2]
SHA = "ab" * 32


def _release(version: str) -> str:
    return (
        f'[releases."{version}"]\nrequires_python = ""\nupload_time = "2026-01-01T00:00:00Z"\n'
        f'yanked = false\nwheels = []\nsdist = false\n[releases."{version}".source]\n'
        f'file = "x-{version}.whl"\nsha256 = "{SHA}"\nmethod = "pep658"\nread_at = ""\n'
    )


def _facts(version: str, imports: str, torch: str, cuda: str) -> str:
    count = len(
        {
            i
            for part in imports.split(",")
            for i in range(int(part.split("-")[0]), int(part.split("-")[-1]) + 1)
        }
    )
    return (
        f'[releases."{version}"]\nfile = "sgl_kernel-{version}-cp39-abi3-manylinux2014_x86_64.whl"\n'
        f'sha256 = "{SHA}"\nread_at = "2026-01-01T00:00:00Z"\nbytes_read = 1000\n'
        f'members = ["sgl_kernel/common_ops.abi3.so [whole; sections; dynamic]"]\n'
        f'libraries = ["libcudart.so.{cuda}", "libtorch.so"]\ncuda = "{cuda}"\n'
        f'cuda_from = ["libcudart.so.{cuda} in sgl_kernel/common_ops.abi3.so"]\n'
        f'imports = "{imports}"\nimport_count = {count}\ntorch = ["{torch}"]\nsass = []\nptx = []\n'
        f'archs = "0 of 1 members read whole"\n'
    )


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    root = tmp_path_factory.mktemp("db")
    shutil.copytree(ROOT / "matrices" / "curated", root / "curated")
    gen = root / "generated"
    (gen / "builds").mkdir(parents=True)
    (gen / "torch.toml").write_text(
        '[meta]\nproject = "torch"\n' + _release("2.7.1") + _release("2.8.0"), encoding="utf-8"
    )
    (gen / "sgl-kernel.toml").write_text(
        '[meta]\nproject = "sgl-kernel"\n' + _release("1.0") + _release("1.1"), encoding="utf-8"
    )
    (gen / "builds" / "torch-exports.toml").write_text(
        '[tracked]\nsymbols = ["aaaaaaaaaaa0", "aaaaaaaaaaa1", "aaaaaaaaaaa2"]\n'
        + "".join(
            f'[releases."{v}"]\nfile = "torch-{v}.whl"\nsha256 = "{SHA}"\nread_at = ""\n'
            f'bytes_read = 1\nmembers = []\nexports = 2\nchecked = 3\nprovides = "{p}"\n'
            "complete = true\n"
            for v, p in (("2.7.1", "0-1"), ("2.8.0", "1-2"))
        ),
        encoding="utf-8",
    )
    (gen / "builds" / "sgl-kernel.toml").write_text(
        '[meta]\nproject = "sgl-kernel"\n'
        + _facts("1.0", "0-1", "2.7.1", "12")
        + _facts("1.1", "1-2", "2.8.0", "13"),
        encoding="utf-8",
    )
    return Database(Matrix(root), ())


def env_of(torch: str, cuda: str, *pins: str) -> Environment:
    dists = [Distribution("torch", Version(torch), torch, "/site")]
    for p in pins:
        name, _, version = p.partition("==")
        dists.append(Distribution(name, Version(version), version, "/site"))
    return Environment(
        PythonInfo("3.11.7", "cpython", "python", "linux", "x86_64"),
        tuple(dists),
        TorchBuild(Version(torch), cuda, None, "test"),
        Driver("580.65.06", "13.0"),
        Unknown("test"),
        Unknown("test"),
        {},
        (),
    )


def by_code(fs: list[Finding], code: str) -> list[Finding]:
    return [f for f in fs if f.code == code]


def test_kernel_built_for_another_torch_names_the_fix(db: Database) -> None:
    fs = check(env_of("2.8.0+cu128", "12.8", "sgl-kernel==1.0"), db)
    [f] = by_code(fs, "kernel-torch")
    assert f.severity is Severity.ERROR
    assert f.message.startswith("sgl-kernel 1.0 was built for torch 2.7.1, but torch 2.8.0+cu128")
    assert "undefined symbol" in f.message
    assert "torch 2.8.0's libraries lack 1 of them" in " ".join(f.evidence)
    assert f.fix[0].startswith("pip install 'sgl-kernel==1.1'")


def test_kernel_built_for_the_installed_torch_is_quiet(db: Database) -> None:
    fs = check(env_of("2.7.1+cu126", "12.6", "sgl-kernel==1.0"), db)
    assert by_code(fs, "kernel-torch") == [] and by_code(fs, "cuda-mix") == []
    # Quiet because the facts say yes, not because they were not found.
    facts = db.matrix.build_facts("sgl-kernel", Version("1.0"))
    assert facts is not None
    verdict = built_for(facts, Version("2.7.1+cu126"), db.matrix.torch_exports())
    assert (verdict.answer, verdict.method) == (True, "exports")


def test_kernel_linking_another_cuda_major(db: Database) -> None:
    fs = check(env_of("2.8.0+cu128", "12.8", "sgl-kernel==1.1"), db)
    [f] = by_code(fs, "cuda-mix")
    assert f.severity is Severity.ERROR
    assert "sgl-kernel 1.1: links libcudart.so.13 in sgl_kernel/common_ops.abi3.so" in " ".join(
        f.evidence
    )
    assert by_code(fs, "kernel-torch") == []


def test_local_tagged_build_is_not_judged_by_the_pypi_wheel(db: Database) -> None:
    # +cu126 came from another index: its wheel was not read, so the PyPI wheel says nothing.
    fs = check(env_of("2.8.0+cu128", "12.8", "sgl-kernel==1.0+cu126"), db)
    assert by_code(fs, "kernel-torch") == []


@pytest.mark.parametrize(
    ("driver", "move"),
    [("580.65.06", "or move torch"), ("570.124.06", "or, with a driver for CUDA 13.0, move torch")],
)
def test_framework_wheel_of_another_cuda_major_is_the_odd_one(driver: str, move: str) -> None:
    """vLLM's PyPI wheel links CUDA 13 from 0.20.0 (its build facts): beside a +cu128 torch the
    framework is what differs. The fixes name its variant for torch's CUDA only as sure as the
    index row is, never a nightly index for a final release, and torch's CUDA 13 build, which
    needs a driver for CUDA 13."""
    from compat.inputs import apply_overrides, env_from_freeze
    from compat.pipeline import LaunchInput, load_database, parse_launch_for

    db = load_database()
    env = env_from_freeze("vllm==0.20.0\ntorch==2.11.0+cu128\ntriton==3.6.0\n", "f", db.matrix)
    env = apply_overrides(env, db.matrix, driver=driver, gpus=("h100",))
    (mix,) = [
        f for f in check(env, db, parse_launch_for(env, LaunchInput())) if f.code == "cuda-mix"
    ]
    assert mix.severity is Severity.ERROR and mix.packages == ("vllm",)
    assert any("vllm 0.20.0: links libcudart.so.13" in e for e in mix.evidence)
    assert any(
        "(vllm-release-cu128); compat has not confirmed one for vllm 0.20.0" in f for f in mix.fix
    )
    assert not any("nightly" in f for f in mix.fix)
    assert any(
        f.startswith(move) and "'torch==2.11.0+cu130' --extra-index-url" in f for f in mix.fix
    )


def test_a_package_that_skips_ops_it_cannot_load_is_a_warning() -> None:
    """torchao imports without compiled ops that fail to load (ops_optional; seen on an H200:
    tests/assets/device/h200/kernel-torchao-import.txt); sgl-deep-gemm's import fails."""
    from compat.inputs import apply_overrides, env_from_freeze
    from compat.pipeline import LaunchInput, load_database, parse_launch_for

    db = load_database()
    for kernel, severity in (
        ("torchao==0.15.0", Severity.WARNING),
        ("sgl-deep-gemm==0.2.5", Severity.ERROR),
    ):
        env = env_from_freeze(f"torch==2.11.0+cu130\ntriton==3.6.0\n{kernel}\n", "f", db.matrix)
        env = apply_overrides(env, db.matrix, driver="580.65.06", gpus=("h200",))
        fs = check(env, db, parse_launch_for(env, LaunchInput()))
        (kt,) = [f for f in fs if f.code == "kernel-torch"]
        assert kt.severity is severity, kt.message
        if severity is Severity.WARNING:
            assert "it skips them and imports without its custom kernels" in kt.message
            assert all(f.severity is not Severity.ERROR for f in fs), [f.message for f in fs]
