"""The resolver against the bundled database: the seeds' tuple, host constraints, failures."""

from __future__ import annotations

from typing import Any, Optional

import pytest
from packaging.version import Version

from compat.advisories import load_advisories, parse_advisory
from compat.matrix.load import Matrix, parse_gpu_arg
from compat.nvidia import coverage, driver_runs
from compat.resolve import (
    NoTupleError,
    Platform,
    Resolution,
    Rule,
    Target,
    TargetGpu,
    carrier_extras,
    parse_platform,
    parse_targets,
    resolve,
    wheel_fits,
)
from compat.resources import advisories_dir


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return Matrix()


@pytest.fixture(scope="module")
def advisories() -> Any:
    return load_advisories(advisories_dir())


def target(
    matrix: Matrix,
    *reqs: str,
    driver: Optional[str] = None,
    gpus: tuple[str, ...] = (),
    python: str = "3.11",
    **kw: Any,
) -> Target:
    tg = tuple(TargetGpu(*parse_gpu_arg(g, matrix)) for g in gpus)
    return Target(
        parse_targets(reqs),
        python=python,
        driver=Version(driver) if driver else None,
        gpus=tg,
        **kw,
    )


def versions(res: Resolution) -> dict[str, str]:
    return {p.name: str(p.version) for p in res.pins}


def test_seed_tuple_sglang_04_torch_251_triton_310_cu124(matrix: Matrix, advisories: Any) -> None:
    # Seed 003: sglang 0.4.x is one locked tuple with torch 2.5.1+cu124 and triton 3.1.0. Which
    # 0.4.x releases pin torch 2.5.1 is read from the data, not assumed.
    pinning = sorted(
        v
        for v, r in matrix.releases("sglang").items()
        if v.release[:2] == (0, 4) and any(str(p.specifier) == "==2.5.1" for p in r.pins("torch"))
    )
    assert pinning, "some sglang 0.4.x release pins torch==2.5.1"
    newest = pinning[-1]
    res = resolve(
        target(matrix, f"sglang=={newest}", driver="550.54.15", gpus=("h100",)), matrix, advisories
    )
    got = versions(res)
    assert got["torch"] == "2.5.1" and got["triton"] == "3.1.0"
    assert res.cuda == "12.4"
    assert res.pin("torch").index is None  # type: ignore[union-attr]  # PyPI's own build is cu124
    assert res.pin("sglang").extras == ("srt",)  # type: ignore[union-attr]
    # The same tuple for every 0.4.x release that pins torch 2.5.1 (a range target).
    ranged = resolve(
        target(matrix, f"sglang>={pinning[0]},<={newest}", driver="550.54.15"), matrix, advisories
    )
    assert versions(ranged)["sglang"] == str(newest)


def test_sample_sglang_0461_driver_535_a100(matrix: Matrix, advisories: Any) -> None:
    res = resolve(
        target(matrix, "sglang==0.4.6.post1", driver="535.104.05", gpus=("a100",)),
        matrix,
        advisories,
    )
    got = versions(res)
    # A 535 driver (CUDA 12.2) runs the CUDA 11.8 build natively, but sglang[srt] brings
    # torchao, whose PyPI wheel is a CUDA 12 build: beside CUDA 11.8 it would import without
    # its kernels, so the build where everything loads wins, under minor-version compatibility.
    assert got["torch"] == "2.6.0" and got["torchvision"] == "0.21.0"
    assert got["triton"] == "3.2.0" and got["torchao"] == "0.9.0"
    assert res.cuda == "12.4" and not res.degraded
    assert any(
        n.startswith("CUDA 11.8 not chosen while another build works fully: torchao")
        for n in res.notes
    )
    assert any("minor-version compatibility" in n for n in res.notes)
    # Without such a package the build the driver runs natively wins.
    plain = resolve(
        target(matrix, "torch==2.6.0", "torchvision", driver="535.104.05", gpus=("a100",)),
        matrix,
        advisories,
    )
    assert versions(plain)["torch"] == "2.6.0+cu118"
    assert plain.pin("torch").index.url == "https://download.pytorch.org/whl/cu118"  # type: ignore[union-attr]
    assert any(
        n.startswith("CUDA 11.8 chosen: driver 535.104.05 runs it natively") for n in plain.notes
    )
    # Asked for explicitly, the 12.6 build is given, with the minor-compatibility note.
    res = resolve(
        target(matrix, "sglang==0.4.6.post1", driver="535.104.05", gpus=("a100",), cuda="12.6"),
        matrix,
        advisories,
    )
    got = versions(res)
    assert got["torch"] == "2.6.0+cu126" and got["torchvision"] == "0.21.0+cu126"
    assert got["sgl-kernel"] == "0.1.0"
    assert any("minor-version compatibility" in n for n in res.notes)


def test_without_host_facts_the_framework_requirements_alone(
    matrix: Matrix, advisories: Any
) -> None:
    res = resolve(target(matrix, "sglang==0.4.6.post1"), matrix, advisories)
    assert versions(res)["torch"] == "2.6.0"
    assert res.indexes == () or all(i.url.startswith("https://flashinfer") for i in res.indexes)
    assert not res.target.has_host


def test_sglang_053_is_plain_and_vllm_newest(matrix: Matrix, advisories: Any) -> None:
    # sglang 0.5.3 pins torch plainly (no [srt]), and torchao==0.9.0, whose wheel imports torch
    # symbols torch 2.8.0 lacks. torchao skips ops it cannot load (packages.toml ops_optional),
    # so the framework's own pin stays, with a note; the lock is not refused.
    assert carrier_extras(matrix.releases("sglang")[Version("0.5.3")]) == ()
    assert carrier_extras(matrix.releases("sglang")[Version("0.5.2")]) == ("srt",)
    res = resolve(target(matrix, "sglang==0.5.3"), matrix, advisories)
    got = versions(res)
    assert got["torch"] == "2.8.0" and got["torchao"] == "0.9.0"
    assert any(
        n.startswith("torchao 0.9.0 is built for torch 2.6.0")
        and n.endswith("it imports without its custom kernels")
        for n in res.notes
    ), res.notes
    newest = max(matrix.releases("vllm"))
    assert versions(resolve(target(matrix, "vllm"), matrix, advisories))["vllm"] == str(newest)


def test_torch_alone_and_with_companion(matrix: Matrix, advisories: Any) -> None:
    res = resolve(target(matrix, "torch==2.7.1", "torchvision"), matrix, advisories)
    assert versions(res) == {"torch": "2.7.1", "torchvision": "0.22.1", "triton": "3.3.1"}
    assert res.cuda == "12.6"


def test_cuda_flag_and_gpu_that_needs_a_newer_build(matrix: Matrix, advisories: Any) -> None:
    res = resolve(target(matrix, "torch==2.7.1", cuda="12.8"), matrix, advisories)
    assert versions(res)["torch"] == "2.7.1+cu128"
    # sm_120 (RTX 5090) is only in the cu128 build's arch list: chosen without --cuda.
    res = resolve(target(matrix, "torch==2.7.1", gpus=("rtx5090",)), matrix, advisories)
    assert versions(res)["torch"] == "2.7.1+cu128"


def test_driver_too_old_for_every_candidate(matrix: Matrix, advisories: Any) -> None:
    with pytest.raises(NoTupleError) as info:
        resolve(target(matrix, "sglang>=0.5", driver="470.57.02"), matrix, advisories)
    msg = info.value.message
    assert "driver 470.57.02 runs CUDA 11.x only" in msg
    assert "every torch that sglang>=0.5 pins" in msg and "is built for CUDA 12.6 or newer" in msg
    assert {r.rule for r in info.value.rejected} == {Rule.DRIVER}
    alts = "\n".join(info.value.alternatives)
    # Newest that fits that driver: 0.4.10.x pins sgl-kernel 0.2.x, which needs R550 (COMPAT-0207).
    assert "sglang 0.4.9.post2" in alts and "CUDA 11.8" in alts
    assert "with a driver >= 580" in alts
    assert info.value.exit_code == 1


def test_gpu_arch_no_build_covers(matrix: Matrix, advisories: Any) -> None:
    # torch 2.6.0 (sglang 0.4.6.post1) has no cu128 build: nothing covers sm_120.
    with pytest.raises(NoTupleError) as info:
        resolve(target(matrix, "sglang==0.4.6.post1", gpus=("sm_120",)), matrix, advisories)
    assert "has kernels for sm_120" in info.value.message
    assert {r.rule for r in info.value.rejected} == {Rule.GPU}
    assert any("fits this host" in a for a in info.value.alternatives)


def test_python_with_no_wheels(matrix: Matrix, advisories: Any) -> None:
    # torch 2.5.1 ships no cp314 wheels.
    with pytest.raises(NoTupleError) as info:
        resolve(target(matrix, "torch==2.5.1", python="3.14"), matrix, advisories)
    assert "no wheel for Python 3.14" in info.value.message
    assert any(a.startswith("with Python 3.12") for a in info.value.alternatives)


def test_mixed_targets_conflict(matrix: Matrix, advisories: Any) -> None:
    with pytest.raises(NoTupleError) as info:
        resolve(target(matrix, "sglang==0.5.2", "torch==2.7.1"), matrix, advisories)
    assert Rule.TORCH in {r.rule for r in info.value.rejected}
    ok = resolve(target(matrix, "sglang==0.5.2", "torch==2.8.0"), matrix, advisories)
    assert versions(ok)["torch"] == "2.8.0"


def test_aarch64_uses_pytorch_index_build(matrix: Matrix, advisories: Any) -> None:
    # PyPI's torch 2.7.1 for aarch64 pulls no CUDA runtime (a CPU build): the index build it is.
    res = resolve(target(matrix, "torch==2.7.1", platform=Platform("aarch64")), matrix, advisories)
    assert versions(res)["torch"].startswith("2.7.1+cu")
    with pytest.raises(NoTupleError):  # sgl-kernel 0.1.0 has x86_64 wheels only
        resolve(
            target(matrix, "sglang==0.4.6.post1", platform=Platform("aarch64")), matrix, advisories
        )


def _crash(adv_id: str, packages: dict[str, str], gpu_cc: list[str], launch: bool = False) -> Any:
    data: dict[str, Any] = {
        "id": adv_id,
        "summary": "test crash",
        "details": "d",
        "severity": "crash",
        "published": "2026-01-01",
        "project": "pytorch",
        "confirmed": "maintainer",
        "evidence": "e",
        "source": "test",
        "references": [{"type": "report", "url": "https://example.com/x"}],
        "affected": {"packages": packages, "gpu_cc": gpu_cc},
        "workarounds": [{"description": "w", "versions": {"torch": "!=2.7.1"}}],
    }
    if launch:
        data["affected"]["launch"] = [{"setting": "cuda_graph", "equals": True}]
    adv, errs = parse_advisory(data, f"{adv_id}.toml")
    assert adv is not None, errs
    return adv


def test_known_crash_avoided_and_allowed(matrix: Matrix) -> None:
    adv = _crash("COMPAT-9001", {"torch": "==2.7.1"}, ["8.0"])
    t = target(matrix, "torch>=2.7,<2.8", gpus=("a100",))
    res = resolve(t, matrix, [adv])
    assert versions(res)["torch"] == "2.7.0"
    assert any(r.rule is Rule.ADVISORY and r.advisory == "COMPAT-9001" for r in res.rejected)
    allowed = resolve(
        Target(t.requirements, gpus=t.gpus, allow=frozenset({"COMPAT-9001"})), matrix, [adv]
    )
    assert versions(allowed)["torch"] == "2.7.1"
    assert any("--allow COMPAT-9001" in n for n in allowed.notes)
    # Another GPU: the advisory does not apply.
    assert (
        versions(resolve(target(matrix, "torch>=2.7,<2.8", gpus=("h100",)), matrix, [adv]))["torch"]
        == "2.7.1"
    )
    # Pinned exactly: nothing else fits; the failure says how to accept it.
    with pytest.raises(NoTupleError) as info:
        resolve(target(matrix, "torch==2.7.1", gpus=("a100",)), matrix, [adv])
    assert "known crash COMPAT-9001" in info.value.message
    assert "--allow COMPAT-9001" in info.value.message


def test_launch_only_advisory_is_pending_not_blocking(matrix: Matrix) -> None:
    adv = _crash("COMPAT-9002", {"torch": "==2.7.1"}, ["8.0"], launch=True)
    res = resolve(target(matrix, "torch==2.7.1", gpus=("a100",)), matrix, [adv])
    assert versions(res)["torch"] == "2.7.1"
    assert res.pending and res.pending[0].startswith("COMPAT-9002")


def test_resolution_is_deterministic(matrix: Matrix, advisories: Any) -> None:
    t = target(matrix, "sglang>=0.5", driver="550.54.15", gpus=("h100",))
    assert resolve(t, matrix, advisories) == resolve(t, matrix, advisories)


@pytest.mark.parametrize(
    ("tags", "python", "ok"),
    [
        ("cp311-cp311-manylinux_2_28_x86_64", "3.11", True),
        ("cp311-cp311-manylinux_2_28_x86_64", "3.12", False),
        ("cp39-abi3-manylinux2014_x86_64", "3.12", True),
        ("cp313-cp313t-manylinux_2_28_x86_64", "3.13", False),
        ("py3-none-any", "3.9", True),
        ("cp311-cp311-manylinux_2_28_aarch64", "3.11", False),
        ("cp311-cp311-win_amd64", "3.11", False),
        ("cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64", "3.10", True),
    ],
)
def test_wheel_fits(tags: str, python: str, ok: bool) -> None:
    assert wheel_fits(tags, python, Platform()) is ok


def test_platform_glibc_cap() -> None:
    old = parse_platform("manylinux2014_x86_64")
    assert not wheel_fits("cp311-cp311-manylinux_2_28_x86_64", "3.11", old)
    assert wheel_fits("cp311-cp311-manylinux_2_17_x86_64", "3.11", old)
    assert parse_platform("aarch64").arch == "aarch64"


def test_driver_rules(matrix: Matrix) -> None:
    assert driver_runs(matrix, Version("535.104.05"), "12.6")[0] == "minor"
    assert driver_runs(matrix, Version("560.35.03"), "12.6")[0] == "full"
    assert driver_runs(matrix, Version("470.57.02"), "12.1")[0] == "no"
    assert driver_runs(matrix, Version("570.86.10"), "13.0")[0] == "no"  # CUDA 13 has its own floor


def test_coverage_rules(matrix: Matrix) -> None:
    b = next(b for b in matrix.builds_of(Version("2.7.1")) if b.cuda == "12.8")
    assert coverage(b.sass, b.ptx, (9, 0)) == "sass"
    assert coverage(b.sass, b.ptx, (12, 1)) == "sass"  # sm_120 machine code runs on sm_121
    assert coverage(b.sass, b.ptx, (7, 0)) == "none"
    from msgspec.structs import replace

    ptx_only = replace(b, sass=((8, 0),), ptx=((8, 0),))
    assert coverage(ptx_only.sass, ptx_only.ptx, (9, 0)) == "ptx"


# Build facts: kernels built for the chosen torch -----------------------------------------------


def test_kernel_range_takes_the_newest_release_built_for_torch(
    matrix: Matrix, advisories: Any
) -> None:
    # sgl-kernel 0.3.18.post1 and later import symbols torch 2.8 does not export.
    res = resolve(target(matrix, "torch==2.8.0", "sgl-kernel"), matrix, advisories)
    assert versions(res)["sgl-kernel"] == "0.3.18"
    assert any("sgl-kernel 0.3.18 chosen: built for torch 2.8.0" in n for n in res.notes)


def test_exact_kernel_built_for_another_torch_is_refused(matrix: Matrix, advisories: Any) -> None:
    with pytest.raises(NoTupleError) as err:
        resolve(target(matrix, "torch==2.8.0", "sgl-kernel==0.3.21"), matrix, advisories)
    assert any(
        r.rule is Rule.KERNEL
        and "sgl-kernel 0.3.21 is built for torch 2.9.0, 2.9.1" in r.reason
        and "torch 2.8.0 lacks" in r.reason
        for r in err.value.rejected
    )
