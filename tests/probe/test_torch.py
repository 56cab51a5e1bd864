from __future__ import annotations

from pathlib import Path

from packaging.version import Version

from compat.cudareq import cuda_from_requirements
from compat.models import Unknown
from compat.probe.distributions import scan
from compat.probe.torch import parse_version_py, probe_torch
from tests.conftest import make_dist

# As torch 2.11.0+cu130 writes it (read on the H100 machine).
VERSION_PY_CU130 = """from typing import Optional

__all__ = ['__version__', 'debug', 'cuda', 'git_version', 'hip', 'rocm', 'xpu']
__version__ = '2.11.0+cu130'
debug = False
cuda: Optional[str] = '13.0'
git_version = '70d99e998b4955e0049d13a98d77ae1b14db1f45'
hip: Optional[str] = None
"""

VERSION_PY_OLD_CPU = """__version__ = '2.5.1+cpu'
debug = False
cuda = None
git_version = 'a8d6afb511a69687bbb2b7e88a3cf67917e1697e'
hip = None
"""


def test_parse_version_py_annotated_and_plain() -> None:
    assert parse_version_py(VERSION_PY_CU130) == {
        "__version__": "2.11.0+cu130",
        "cuda": "13.0",
        "git_version": "70d99e998b4955e0049d13a98d77ae1b14db1f45",
        "hip": None,
    }
    assert parse_version_py(VERSION_PY_OLD_CPU)["cuda"] is None


def test_cuda_from_requirements_cuda12_names() -> None:
    reqs = [
        'nvidia-cuda-runtime-cu12==12.6.77; platform_system == "Linux" and platform_machine == "x86_64"',
        'nvidia-cublas-cu12==12.6.4.1; platform_system == "Linux"',
    ]
    assert cuda_from_requirements(reqs) == "12.6"


def test_cuda_from_requirements_cuda13_toolkit() -> None:
    reqs = [
        'cuda-toolkit[cublas,cudart]==13.0.2; platform_system == "Linux"',
        'nvidia-cudnn-cu13==9.19.0.56; platform_system == "Linux"',
    ]
    assert cuda_from_requirements(reqs) == "13.0"


def test_cuda_from_requirements_major_only_and_none() -> None:
    assert cuda_from_requirements(["nvidia-nccl-cu12>=2.21"]) == "12"
    assert cuda_from_requirements(["filelock", "not a requirement ((("]) is None


def test_pypi_default_build_without_local_tag(tmp_path: Path) -> None:
    make_dist(
        tmp_path, "torch", "2.11.0", ('cuda-toolkit[cublas]==13.0.2; platform_system == "Linux"',)
    )
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "version.py").write_text(VERSION_PY_CU130)
    build = probe_torch(scan([str(tmp_path)])[0])
    assert not isinstance(build, Unknown)
    assert build.version == Version("2.11.0+cu130")
    assert (build.cuda, build.hip, build.cuda_from_deps, build.cuda_major) == (
        "13.0",
        None,
        "13.0",
        13,
    )


def test_missing_version_py_falls_back_to_local_tag(tmp_path: Path) -> None:
    make_dist(tmp_path, "torch", "2.5.1+cu124")
    build = probe_torch(scan([str(tmp_path)])[0])
    assert not isinstance(build, Unknown)
    assert build.cuda == "12.4"
    assert "no " in build.source


def test_cpu_build_and_absent_torch(tmp_path: Path) -> None:
    make_dist(tmp_path, "torch", "2.5.1+cpu")
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "version.py").write_text(VERSION_PY_OLD_CPU)
    build = probe_torch(scan([str(tmp_path)])[0])
    assert not isinstance(build, Unknown) and build.is_cpu
    assert probe_torch(None) == Unknown("torch is not installed")


def test_torch_with_no_metadata_but_its_files_is_judged_and_reported(tmp_path: Path) -> None:
    """torch's METADATA gone, torch/version.py intact: torch is not dropped; the framework's pin
    is judged on the version torch's files give, and the broken dist-info is an error."""
    from compat.matrix.load import Matrix
    from compat.models import Environment, PythonInfo
    from compat.pipeline import Database, check
    from compat.probe.distributions import scan
    from compat.probe.torch import probe_torch

    make_dist(tmp_path, "torch", "2.7.1", metadata="")  # the folder, no METADATA
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "version.py").write_text("__version__ = '2.7.1+cu126'\ncuda = '12.6'\n")
    make_dist(tmp_path, "sglang", "0.4.6.post1", ("torch==2.6.0; extra == 'srt'",))
    dists = scan([str(tmp_path)])
    tb = probe_torch(next(d for d in dists if d.key == "torch"))
    assert not isinstance(tb, Unknown) and str(tb.version) == "2.7.1+cu126"
    env = Environment(
        PythonInfo("3.11.7", "cpython", "python", "linux", "x86_64"),
        dists,
        tb,
        Unknown("t"),
        Unknown("t"),
        Unknown("t"),
    )
    found = check(env, Database(Matrix(), ()))
    codes = {(f.code, f.severity.value) for f in found}
    assert ("broken-dist", "error") in codes
    pin = next(f for f in found if f.code == "framework-pin" and "torch" in f.packages)
    assert "but torch 2.7.1+cu126 is installed" in pin.message
