"""memory-headroom: sglang/vLLM static pool vs GPU memory, with sglang's defaults by version."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pytest
from packaging.version import Version

from compat.check.memory import (
    CONTEXT_OVERHEAD_MIB,
    THRESHOLD_MIB,
    check_memory,
    estimate,
    sglang_default_mem_fraction,
)
from compat.launch import LaunchConfig, parse_launch, parse_launch_text
from compat.models import GPU, Environment, Severity, Unknown

LAUNCH = Path(__file__).resolve().parent.parent / "assets" / "launch"
RTX4070 = GPU(
    index=0, name="NVIDIA GeForce RTX 4070", compute_capability=(8, 9), memory_total_mib=12282
)
H100 = GPU(index=0, name="NVIDIA H100 80GB HBM3", compute_capability=(9, 0), memory_total_mib=81559)


def env_with(*gpus: GPU) -> Environment:
    g: Any = tuple(gpus) if gpus else Unknown("no GPU information")
    return Environment(
        python=Unknown("t"),
        distributions=(),
        torch=Unknown("t"),
        driver=Unknown("t"),
        gpus=g,
        context=Unknown("t"),
    )


def sgl(*args: str, version: Optional[str] = "0.4.6.post1") -> LaunchConfig:
    return parse_launch(
        ["python", "-m", "sglang.launch_server", "--model-path", "m", *args],
        Version(version) if version else None,
    )


def test_seed000_small_gpu_default_fraction_warns_with_numbers() -> None:
    text = (LAUNCH / "seed000-sglang-rtx4070.sh").read_text()
    launch = parse_launch_text(text, Version("0.4.6.post1"))
    (f,) = check_memory(env_with(RTX4070), launch, model_params_b=1.5)
    assert f.code == "memory-headroom" and f.severity == Severity.WARNING
    assert "~0.94 GiB of 11.99 GiB" in f.message and "CUDA-graph capture" in f.message
    assert (
        "mem_fraction_static=0.88 (sglang default for tp=1 (rule of sglang < 0.4.7))" in f.evidence
    )
    assert any("left for activations and CUDA-graph capture: ~0.94 GiB" in e for e in f.evidence)
    assert f.fix[0].startswith("--mem-fraction-static 0.79")
    assert any("--cuda-graph-max-bs" in x for x in f.fix)


def test_seed000_with_the_reports_fix_is_quiet() -> None:
    assert check_memory(env_with(RTX4070), sgl("--mem-fraction-static", "0.80")) == []


@pytest.mark.parametrize("tp,expected", [(1, 0.88), (2, 0.87), (4, 0.85), (8, 0.81), (16, 0.79)])
def test_sglang_tp_table_before_0_4_7(tp: int, expected: float) -> None:
    frac, origin = sglang_default_mem_fraction(12282, sgl("--tp", str(tp)), Version("0.4.6"))
    assert frac == expected and f"tp={tp}" in origin


def test_sglang_tier_rule_between_0_4_7_and_0_5_3() -> None:
    launch = sgl(version="0.4.9")
    frac, origin = sglang_default_mem_fraction(12282, launch, Version("0.4.9"))
    assert frac == round((12282 - 2.9 * 1024) / 12282, 3)  # (2.8 + tp*pp/10) GiB reserved
    assert "2.90 GiB reserved" in origin
    assert check_memory(env_with(RTX4070), launch) == []


def test_sglang_reserve_rule_from_0_5_3() -> None:
    # 512 + max(2048, 2048) * 1.5 + 8 * 2 + 1 * 1 / 8 * 1024 = 3728 MiB on a < 20 GiB GPU
    frac, _ = sglang_default_mem_fraction(12282, sgl(version="0.5.4"), Version("0.5.4"))
    assert frac == round((12282 - 3728) / 12282, 3)
    # H100, TP1: 512 + 8192 * 1.5 + 256 * 2 + 128 = 13440 MiB (above the 10 GiB floor for > 60 GiB).
    frac, _ = sglang_default_mem_fraction(81559, sgl(version="0.5.4"), Version("0.5.4"))
    assert frac == round((81559 - 13440) / 81559, 3)
    # EAGLE adds 2 GiB; --chunked-prefill-size 1024 and --cuda-graph-max-bs 8 hit the 10 GiB floor.
    spec = sgl("--speculative-algorithm", "EAGLE", version="0.5.4")
    frac, _ = sglang_default_mem_fraction(81559, spec, Version("0.5.4"))
    assert frac == round((81559 - 15488) / 81559, 3)
    small = sgl("--chunked-prefill-size", "1024", "--cuda-graph-max-bs", "8", version="0.5.4")
    frac, _ = sglang_default_mem_fraction(81559, small, Version("0.5.4"))
    assert frac == round((81559 - 10240) / 81559, 3)
    # From 0.5.10 piecewise graphs are on and add 8 MiB per captured token size (8192 max: 58 sizes).
    pcg = sgl(version="0.5.10")
    frac, _ = sglang_default_mem_fraction(81559, pcg, Version("0.5.10"))
    assert frac == round((81559 - 13440 - 58 * 8) / 81559, 3)


def test_sglang_unknown_version_uses_the_current_rule() -> None:
    launch = sgl(version=None)
    est = estimate(env_with(RTX4070), launch)
    assert not isinstance(est, Unknown)
    assert "version unknown" in est.fraction_origin


def test_vllm_default_utilization_on_small_and_large_gpus() -> None:
    v = parse_launch(["vllm", "serve", "m"], Version("0.10.0"))
    (f,) = check_memory(env_with(RTX4070), v)
    assert "gpu_memory_utilization=0.9 (default)" in f.evidence
    assert f.fix[0].startswith("--gpu-memory-utilization 0.")
    assert check_memory(env_with(H100), v) == []
    tight = parse_launch(["vllm", "serve", "m", "--gpu-memory-utilization", "0.995"])
    assert check_memory(env_with(H100), tight)[0].severity == Severity.WARNING


def test_smallest_gpu_is_judged() -> None:
    small = GPU(
        index=1, name="NVIDIA GeForce RTX 4060 Ti", compute_capability=(8, 9), memory_total_mib=8188
    )
    big = GPU(
        index=0, name="NVIDIA GeForce RTX 4090", compute_capability=(8, 9), memory_total_mib=24564
    )
    (f,) = check_memory(env_with(big, small), sgl())
    assert "GPU 1" in f.message


def test_weights_that_do_not_fit_the_pool() -> None:
    launch = sgl("--mem-fraction-static", "0.80")
    findings = check_memory(env_with(RTX4070), launch, model_params_b=7.0)
    assert [f.severity for f in findings] == [Severity.WARNING]
    assert "model weights (~13.04 GiB per GPU)" in findings[0].message
    quantized = sgl("--mem-fraction-static", "0.80", "--quantization", "awq")
    assert check_memory(env_with(RTX4070), quantized, model_params_b=7.0) == []


def test_unknown_gpu_or_values_give_info_and_no_launch_gives_nothing() -> None:
    (f,) = check_memory(env_with(), sgl())
    assert f.severity == Severity.INFO and "--gpu NAME" in f.fix[0]
    (g,) = check_memory(env_with(RTX4070), sgl("--mem-fraction-static", "$FRAC"))
    assert g.severity == Severity.INFO and "shell variable" in g.message
    assert check_memory(env_with(RTX4070), None) == []
    assert check_memory(env_with(RTX4070), parse_launch(["python", "train.py"])) == []


def test_thresholds_are_documented_constants() -> None:
    assert THRESHOLD_MIB["sglang"] > THRESHOLD_MIB["vllm"] > 0
    assert CONTEXT_OVERHEAD_MIB == 512.0
