"""Each check on fixture environments (freeze files, snapshots, built records): fires and stays quiet.

The pins come from the bundled database (generated from PyPI metadata), so these also pin down
facts of the data: sglang 0.4.6.post1 pins torch==2.6.0, torch 2.7.1 pins triton==3.3.1, ...
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import msgspec.structs
import pytest
from packaging.version import Version

from compat.inputs import apply_overrides, load_from
from compat.matrix.load import Matrix
from compat.model import ModelFacts
from compat.models import (
    GPU,
    CacheInfo,
    Distribution,
    Driver,
    Environment,
    Finding,
    PythonInfo,
    Severity,
    TorchBuild,
    Unknown,
)
from compat.pipeline import Database, check, load_database

ASSETS = Path(__file__).parents[1] / "assets"
MATRIX = Matrix()
NO_ADVISORIES = Database(MATRIX, ())
H100 = str(ASSETS / "envs" / "h100-torch2.11-cu130.json")
CPU_TV = str(ASSETS / "envs" / "cpu-torch2.13-pypi-torchvision0.28.json")


def findings_for(
    source: str,
    *,
    driver: Optional[str] = None,
    gpus: tuple[str, ...] = (),
    env: tuple[str, ...] = (),
    python: Optional[str] = None,
) -> list[Finding]:
    e = load_from(source if "/" in source else str(ASSETS / "freeze" / source), MATRIX)
    e = apply_overrides(e, MATRIX, driver, gpus, env, python)
    return check(e, NO_ADVISORIES)


def codes(fs: list[Finding], at_least: Severity = Severity.WARNING) -> set[str]:
    return {f.code for f in fs if f.severity >= at_least}


def one(fs: list[Finding], code: str) -> Finding:
    hits = [f for f in fs if f.code == code]
    assert len(hits) == 1, [f.message for f in fs]
    return hits[0]


def env_of(
    *pins: str,
    torch_cuda: Optional[str] = None,
    gpus: tuple[GPU, ...] = (),
    env: Optional[dict[str, str]] = None,
    caches: tuple[CacheInfo, ...] = (),
    installed_at: Optional[float] = None,
) -> Environment:
    dists = []
    for p in pins:
        name, _, version = p.partition("==")
        dists.append(
            Distribution(name, Version(version), version, "/site", installed_at=installed_at)
        )
    tv = next((d.version for d in dists if d.name == "torch"), None)
    torch = TorchBuild(tv, torch_cuda, None, "test") if tv else Unknown("no torch")
    return Environment(
        PythonInfo("3.11.7", "cpython", "python", "linux", "x86_64"),
        tuple(dists),
        torch,
        Driver("580.65.06", "13.0"),
        gpus,
        Unknown("test"),
        env or {},
        caches,
    )


# framework-pin -------------------------------------------------------------------------------
def test_framework_pin_seed_003_tuple() -> None:
    # Seed 003: sglang 0.4.x with torch 2.7.1 and triton 3.1.0 segfaulted; sglang pins torch 2.6.0.
    fs = findings_for("sglang-0.4.6-torch-2.7.1.txt")
    f = one(fs, "framework-pin")
    assert f.severity is Severity.ERROR
    assert "requires torch==2.6.0 ([srt])" in f.message and "torch 2.7.1 is installed" in f.message
    # The fix moves the whole torch side to the framework's tuple: torch 2.6.0 with its triton.
    assert "pip install 'torch==2.6.0' 'triton==3.2.0'" in f.fix


def test_every_fix_of_a_report_aims_at_one_tuple() -> None:
    """Seed 003's report: framework-pin, torch-triton, torch-companion and kernel-torch each fix
    by moving to sglang's tuple (torch 2.6.0), never one of them toward the torch about to be
    replaced (an sgl-kernel built for torch 2.7.1)."""
    fs = findings_for("sglang-0.4.6-torch-2.7.1.txt")
    installs = [fx for f in fs for fx in f.fix if fx.startswith("pip install")]
    assert {one(fs, c).code for c in ("kernel-torch", "torch-companion", "torch-triton")}
    assert installs and all("'torch==2.6.0' 'triton==3.2.0'" in fx for fx in installs), installs
    assert not any("sgl-kernel==" in fx for fx in installs)


def test_framework_pin_quiet_on_the_pinned_tuple() -> None:
    fs = findings_for("sglang-0.4.6-good.txt", python="3.11")
    assert codes(fs) == set(), [f.message for f in fs if f.severity >= Severity.WARNING]


def test_vllm_pins_torch_2_7_1() -> None:
    assert codes(findings_for("vllm-0.10.1.1-good.txt", python="3.11")) == set()
    e = env_of("vllm==0.10.1.1", "torch==2.8.0", "triton==3.4.0")
    fs = check(e, NO_ADVISORIES)
    (f,) = [f for f in fs if f.code == "framework-pin" and f.packages == ("vllm", "torch")]
    assert "requires torch==2.7.1" in f.message and "torch 2.8.0 is installed" in f.message


def test_framework_requirement_missing() -> None:
    e = env_of("vllm==0.10.1.1", "torch==2.7.1", "triton==3.3.1")
    missing = [f for f in check(e, NO_ADVISORIES) if "not installed" in f.message]
    assert {m.packages[1] for m in missing} >= {"torchvision", "torchaudio"}


# torch-triton --------------------------------------------------------------------------------
def test_torch_triton_mismatch() -> None:
    f = one(findings_for("sglang-0.4.6-torch-2.7.1.txt"), "torch-triton")
    assert f.message == "triton 3.1.0 does not match torch 2.7.1, which requires triton==3.3.1"


def test_torch_triton_marker_no_triton_on_python_313() -> None:
    # torch 2.5.1 pins triton only for python_version < "3.13": none on 3.13 is fine.
    e = env_of("torch==2.5.1")
    e313 = msgspec.structs.replace(
        e, python=PythonInfo("3.13.1", "cpython", "python", "linux", "x86_64")
    )
    assert "torch-triton" not in codes(check(e313, NO_ADVISORIES))
    assert "torch-triton" in codes(check(e, NO_ADVISORIES))  # 3.11: missing


# torch-companion -----------------------------------------------------------------------------
def test_companion_pinned_to_other_torch() -> None:
    f = one(findings_for("sglang-0.4.6-torch-2.7.1.txt"), "torch-companion")
    assert "torchvision 0.21.0 is built for torch==2.6.0" in f.message


def test_companion_cuda_torchvision_beside_cpu_torch_real_snapshot() -> None:
    # Recorded from a real venv: pip install torch==2.13.0 (CPU) + PyPI torchvision 0.28.0.
    f = one(findings_for(CPU_TV), "torch-companion")
    assert f.severity is Severity.ERROR
    assert "libc10_cuda.so, libtorch_cuda.so" in f.message
    assert "operator torchvision::nms does not exist" in f.message
    assert any("whl/cpu" in x and "torchvision==0.28.0+cpu" in x for x in f.fix)


def test_companion_local_tag_cuda_vs_cpu() -> None:
    e = env_of("torch==2.5.1+cpu", "torchvision==0.20.1+cu124")
    f = one(check(e, NO_ADVISORIES), "torch-companion")
    assert "CUDA 12.4 build, but torch 2.5.1+cpu is a CPU build" in f.message


# kernel-torch / split-package ----------------------------------------------------------------
def test_kernel_built_for_other_torch_and_split_flashinfer() -> None:
    fs = findings_for("flashinfer-torch-mismatch.txt")
    assert "built for torch 2.4, but torch 2.5.1+cu124" in one(fs, "kernel-torch").message
    split = one(fs, "split-package")
    assert "flashinfer-python 0.2.0.post2+cu124torch2.4" in split.message
    assert "flashinfer-cubin 0.2.0" in split.message


def test_both_kernel_package_names() -> None:
    e = env_of("torch==2.9.1", "sgl-kernel==0.3.20", "sglang-kernel==0.4.0")
    f = one(check(e, NO_ADVISORIES), "split-package")
    assert f.severity is Severity.WARNING and "sglang-kernel" in f.message


# cuda-mix ------------------------------------------------------------------------------------
def test_cuda_mix_seed_002_library_path() -> None:
    # Seed 002 put .../nvidia/cu13/lib on LD_LIBRARY_PATH; beside a cu12 torch that shadows it.
    e = env_of(
        "torch==2.9.1+cu128",
        torch_cuda="12.8",
        env={"LD_LIBRARY_PATH": "/usr/local/lib/python3.12/dist-packages/nvidia/cu13/lib:/x"},
    )
    f = one(check(e, NO_ADVISORIES), "cuda-mix")
    assert f.severity is Severity.ERROR and "CUDA 13 parts beside a CUDA 12 torch" in f.message


def test_cuda_mix_quiet_on_real_h100_image() -> None:
    # cuFFT 12.0 etc. are library versions of CUDA 13 wheels, not CUDA 12.
    assert "cuda-mix" not in codes(findings_for(H100), Severity.INFO)


def test_cuda_mix_stray_cu12_wheels_warn() -> None:
    e = env_of("torch==2.11.0+cu130", "nvidia-cublas-cu12==12.6.4.1", torch_cuda="13.0")
    f = one(check(e, NO_ADVISORIES), "cuda-mix")
    assert f.severity is Severity.WARNING and "pip uninstall -y nvidia-cublas-cu12" in f.fix[0]


# driver-too-old ------------------------------------------------------------------------------
def test_driver_too_old_for_cuda12() -> None:
    f = one(findings_for("flashinfer-torch-mismatch.txt", driver="470.57.02"), "driver-too-old")
    assert f.severity is Severity.ERROR
    assert "525.60.13" in f.message


def test_driver_minor_version_compatibility() -> None:
    # A 535 driver (CUDA 12.2) runs cu124 wheels under minor-version compatibility.
    fs = findings_for("flashinfer-torch-mismatch.txt", driver="535.104.05")
    f = one(fs, "driver-too-old")
    assert f.severity is Severity.INFO and "minor-version compatibility" in f.message


def test_driver_new_enough_and_unknown() -> None:
    assert "driver-too-old" not in codes(findings_for(H100), Severity.INFO)
    f = one(findings_for("flashinfer-torch-mismatch.txt"), "driver-too-old")
    assert f.severity is Severity.INFO and "could not tell" in f.message


# gpu-arch ------------------------------------------------------------------------------------
def test_gpu_arch_pascal_on_cuda13_torch() -> None:
    f = one(findings_for(H100, gpus=("sm_61",)), "gpu-arch")
    assert f.severity is Severity.ERROR and "sm_61" in f.message


def test_gpu_arch_h100_covered() -> None:
    assert "gpu-arch" not in codes(findings_for(H100), Severity.INFO)


def test_gpu_arch_unknown_without_gpus() -> None:
    f = one(findings_for("sglang-0.4.6-good.txt"), "gpu-arch")
    assert f.severity is Severity.INFO and "could not tell" in f.message


# stale-cache ---------------------------------------------------------------------------------
def test_stale_caches() -> None:
    caches = (
        CacheInfo("flashinfer", "/root/.cache/flashinfer", True, 10, 3, False, ("0.2.3", "0.2.5")),
        CacheInfo("triton", "/root/.triton/cache", True, 10, 3, False, (), oldest_mtime=1000.0),
    )
    e = env_of(
        "torch==2.6.0",
        "triton==3.2.0",
        "flashinfer-python==0.2.5",
        caches=caches,
        installed_at=5000.0,
    )
    fs = [f for f in check(e, NO_ADVISORIES) if f.code == "stale-cache"]
    assert len(fs) == 2
    assert any(
        "flashinfer-python 0.2.3" in f.message
        and f.fix == ("rm -rf /root/.cache/flashinfer/0.2.3",)
        for f in fs
    )
    assert any("triton cache" in f.message and f.severity is Severity.WARNING for f in fs)


def test_fresh_cache_is_quiet() -> None:
    caches = (CacheInfo("triton", "/t", True, 10, 3, False, (), oldest_mtime=9000.0),)
    e = env_of("torch==2.6.0", "triton==3.2.0", caches=caches, installed_at=5000.0)
    assert "stale-cache" not in codes(check(e, NO_ADVISORIES), Severity.INFO)


# env-var -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expect"),
    [
        ("3", "only 1 GPU(s)"),
        ("", "hides every GPU"),
        ("0,0", "listed twice"),
        ("GPU-deadbeef", "no GPU has this UUID"),
    ],
)
def test_visible_devices(value: str, expect: str) -> None:
    fs = findings_for(H100, env=(f"CUDA_VISIBLE_DEVICES={value}",))
    assert expect in one(fs, "env-var").message


def test_visible_devices_ok_and_arch_list() -> None:
    assert "env-var" not in codes(
        findings_for(H100, env=("CUDA_VISIBLE_DEVICES=0",)), Severity.INFO
    )
    f = one(findings_for(H100, env=("TORCH_CUDA_ARCH_LIST=8.0;8.6",)), "env-var")
    assert "leaves out GPU 0 (sm_90)" in f.message


def test_cuda_home_other_major() -> None:
    f = one(findings_for(H100, env=("CUDA_HOME=/usr/local/cuda-12.4",)), "env-var")
    assert "CUDA_HOME points to CUDA 12.4" in f.message


# unknown-combination -------------------------------------------------------------------------
def test_unknown_release() -> None:
    e = env_of("torch==2.99.0", "triton==3.6.0")
    f = one(check(e, NO_ADVISORIES), "unknown-combination")
    assert f.severity is Severity.INFO and "torch 2.99.0 is not in compat's database" in f.message


# clean real stack ----------------------------------------------------------------------------
def test_real_h100_stack_is_clean() -> None:
    fs = findings_for(H100)
    assert [f for f in fs if f.severity >= Severity.WARNING] == []


def test_ignore_drops_codes() -> None:
    e = load_from(str(ASSETS / "freeze" / "sglang-0.4.6-torch-2.7.1.txt"), MATRIX)
    fs = check(e, NO_ADVISORIES, ignore=("framework-pin", "torch-triton"))
    assert not {"framework-pin", "torch-triton"} & {f.code for f in fs}


def test_every_design_code_is_produced_by_some_fixture() -> None:
    from compat.models import Code

    documented = {c.value for c in Code}
    doc = (Path(__file__).parents[2] / "docs" / "findings.md").read_text()
    assert documented == set(re.findall(r"^\| `([a-z-]+)` \|", doc, re.M))
    produced: set[str] = set()
    for name in ("sglang-0.4.6-torch-2.7.1.txt", "flashinfer-torch-mismatch.txt"):
        produced |= {f.code for f in findings_for(name, driver="470.57.02")}
    produced |= {
        f.code for f in findings_for(H100, gpus=("sm_61",), env=("CUDA_VISIBLE_DEVICES=3",))
    }
    produced |= {f.code for f in findings_for(CPU_TV)}
    produced |= codes(check(env_of("torch==2.99.0"), NO_ADVISORIES), Severity.INFO)
    produced |= {
        f.code
        for f in check(
            env_of(
                "torch==2.9.1+cu128",
                "triton==3.5.1",
                torch_cuda="12.8",
                env={"LD_LIBRARY_PATH": "/opt/nvidia/cu13/lib"},
                caches=(CacheInfo("triton", "/t", True, 1, 1, False, (), 1.0),),
                installed_at=100.0,
            ),
            NO_ADVISORIES,
        )
    }
    from compat.launch import parse_launch

    # DeepEP normal mode with CUDA graphs on sglang 0.4.6.post1: COMPAT-0204 (known-crash).
    deepep = ["--enable-deepep-moe", "--deepep-mode", "normal"]
    launch = parse_launch(
        ["python", "-m", "sglang.launch_server", "--model-path", "m", *deepep],
        Version("0.4.6.post1"),
    )
    e = apply_overrides(
        env_of("sglang==0.4.6.post1", "torch==2.6.0", "triton==3.1.0", "flashinfer-python==0.2.3"),
        MATRIX,
        gpus=("rtx4070",),
    )
    # The model's facts are given: with them unknown, every MoE advisory of this release that
    # could not tell would be folded into one missing-fact line instead of a known-crash.
    moe = ModelFacts(source="test", moe=True, architectures=("DeepseekV3ForCausalLM",))
    produced |= {f.code for f in check(e, load_database(), launch, moe)}
    mistyped = parse_launch(
        ["python", "-m", "sglang.launch_server", "--model-path", "m", "--tp-szie", "2"],
        Version("0.4.6.post1"),
    )
    produced |= {f.code for f in check(e, NO_ADVISORIES, mistyped)}
    fit_env = apply_overrides(env_of(), MATRIX, gpus=("h100",))
    fit_launch = parse_launch(["vllm", "serve", "m", "-tp", "2"])
    produced |= {
        f.code
        for f in check(fit_env, load_database(), fit_launch, Unknown("m is not in the HF cache"))
    }
    from compat.check.cluster import compare
    from tests.test_cluster import report

    produced |= {f.code for f in compare([report("a"), report("b", NCCL_IB_DISABLE="1")])}
    # Two infos that lack the GPU: reported together.
    produced |= {
        f.code
        for f in check(env_of("torch==2.7.1", "triton==3.3.1", "vllm==0.19.0"), load_database())
    }
    broken = env_of("torch==2.7.1")
    broken = msgspec.structs.replace(
        broken,
        distributions=(msgspec.structs.replace(broken.distributions[0], broken="no METADATA"),),
    )
    produced |= {f.code for f in check(broken, NO_ADVISORIES)}
    # Codes about an input file itself come from its reader.
    from compat.inputs import read_pins

    docker = "FROM python:3.11\nRUN pip install vllm torch==2.6.0 torch==2.7.1\n"
    produced |= {n.finding.code for n in read_pins("Dockerfile", docker, MATRIX).notes}
    assert documented and documented <= produced, documented - produced


def test_gpu_arch_from_torch_arch_list() -> None:
    # --deep records torch.cuda.get_arch_list(); it wins over the curated table.
    def judge(archs: tuple[str, ...], cc: tuple[int, int]) -> list[Finding]:
        e = env_of(
            "torch==2.7.1+cu126",
            torch_cuda="12.6",
            gpus=(GPU(0, "test GPU", cc, 1000, 0, False, "GPU-x", "test"),),
        )
        assert not isinstance(e.torch, Unknown)
        e = msgspec.structs.replace(e, torch=msgspec.structs.replace(e.torch, arch_list=archs))
        return [f for f in check(e, NO_ADVISORIES) if f.code == "gpu-arch"]

    assert judge(("sm_80", "sm_90"), (8, 6)) == []  # sm_80 SASS runs on sm_86
    (err,) = judge(("sm_80", "sm_90"), (12, 0))
    assert err.severity is Severity.ERROR and "torch.cuda.get_arch_list()" in err.references
    (warn,) = judge(("sm_80", "sm_90", "compute_90"), (12, 0))
    assert warn.severity is Severity.WARNING and "PTX" in warn.message


def test_cuda_minor_of_kernels() -> None:
    newer = env_of(
        "torch==2.5.1+cu124", "flashinfer-python==0.2.0.post2+cu126torch2.5", torch_cuda="12.4"
    )
    (f,) = [f for f in check(newer, NO_ADVISORIES) if f.code == "cuda-mix"]
    assert f.severity is Severity.ERROR and "built for CUDA 12.6, torch 2.5.1+cu124" in f.message
    older = env_of(
        "torch==2.5.1+cu124", "flashinfer-python==0.2.0.post2+cu121torch2.5", torch_cuda="12.4"
    )
    (w,) = [f for f in check(older, NO_ADVISORIES) if f.code == "cuda-mix"]
    assert w.severity is Severity.WARNING
