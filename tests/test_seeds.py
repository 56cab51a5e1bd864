"""The five reports compat was made from (shared/seeds/), each as a real `compat check` run:
the described environment and launch command give the finding; the workaround makes it quiet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest

ASSETS = Path(__file__).parent / "assets"
LAUNCH = ASSETS / "launch"


def check(
    tmp_path: Path, pins: str, *args: str, env: Optional[dict[str, str]] = None
) -> subprocess.CompletedProcess[str]:
    freeze = tmp_path / "freeze.txt"
    freeze.write_text(pins)
    return subprocess.run(
        [sys.executable, "-m", "compat", "check", "--from", str(freeze), "--python", "3.11", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def hf_cache(tmp_path: Path, name: str, config: dict[str, object]) -> dict[str, str]:
    """A Hugging Face cache holding one model's config.json, as the server host would have it."""
    org, model = name.split("/")
    snap = tmp_path / "hub" / f"models--{org}--{model}" / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps(config))
    refs = snap.parents[1] / "refs"
    refs.mkdir()
    (refs / "main").write_text("0" * 40)
    return {"HF_HUB_CACHE": str(tmp_path / "hub")}


# The keys of Qwen3-Next-80B-A3B-Instruct's published config.json that say what kind of model it
# is (https://huggingface.co/Qwen/Qwen3-Next-80B-A3B-Instruct): 512 experts, 10 per token.
QWEN3_NEXT = {
    "architectures": ["Qwen3NextForCausalLM"],
    "model_type": "qwen3_next",
    "num_experts": 512,
    "num_experts_per_tok": 10,
    "torch_dtype": "bfloat16",
}


def finished(p: subprocess.CompletedProcess[str]) -> str:
    """A run that reached its verdict (findings or none): what a negative assertion reads."""
    assert p.returncode in (0, 1), p.stderr
    assert p.stdout.startswith("compat check: "), p.stdout + p.stderr
    return p.stdout


SEED000_PINS = "sglang==0.4.6.post1\ntorch==2.6.0\ntriton==3.1.0\nflashinfer-python==0.2.3\n"


def test_seed000_triton_segfault_and_memory(tmp_path: Path) -> None:
    # RTX 4070 12 GB, FlashInfer backend by default, CUDA graphs on, triton off torch's pin.
    p = check(
        tmp_path,
        SEED000_PINS,
        "--gpu",
        "rtx4070 12gb",
        "--launch-file",
        str(LAUNCH / "seed000-sglang-rtx4070.sh"),
    )
    assert p.returncode == 1
    assert "[torch-triton] triton 3.1.0 does not match torch 2.6.0" in p.stdout
    # COMPAT-0001 is withdrawn (no public report); the version check names the mismatch.
    assert "COMPAT-0001" not in p.stdout
    assert "[memory-headroom]" in p.stdout and "--mem-fraction-static" in p.stdout


def test_seed000_quiet_with_the_workarounds(tmp_path: Path) -> None:
    pins = SEED000_PINS.replace("triton==3.1.0", "triton==3.2.0")
    p = check(
        tmp_path,
        pins,
        "--gpu",
        "rtx4070 12gb",
        "--",
        "python",
        "-m",
        "sglang.launch_server",
        "--model-path",
        "Qwen/Qwen2-1.5B-Instruct",
        "--mem-fraction-static",
        "0.80",
        "--cuda-graph-max-bs",
        "4",
    )
    out = finished(p)
    assert "COMPAT-0001" not in out and "memory-headroom" not in out, out


SEED001_PINS = "sglang==0.5.9\n"


def test_seed001_hicache_speculative_cuda_graph(tmp_path: Path) -> None:
    p = check(
        tmp_path,
        SEED001_PINS,
        "--gpu",
        "h200",
        "--launch-file",
        str(LAUNCH / "seed001-glm5-hicache-eagle.sh"),
    )
    assert "[known-crash COMPAT-0002]" in p.stdout, p.stdout
    quiet = check(
        tmp_path,
        SEED001_PINS,
        "--gpu",
        "h200",
        "--",
        "python3",
        "-m",
        "sglang.launch_server",
        "--model-path",
        "zai-org/GLM-5-FP8",
        "--enable-hierarchical-cache",
        "--speculative-algorithm",
        "EAGLE",
        "--disable-cuda-graph",
    )
    assert "COMPAT-0002" not in finished(quiet)


SEED002_PINS = "sglang==0.5.12\n"


def test_seed002_under_ray_only(tmp_path: Path) -> None:
    ray = check(
        tmp_path,
        SEED002_PINS,
        "--gpu",
        "h100",
        "--launch-file",
        str(LAUNCH / "seed002-under-ray.sh"),
    )
    assert "[known-crash COMPAT-0003]" in ray.stdout, ray.stdout
    assert "--disable-custom-all-reduce" in ray.stdout
    standalone = check(
        tmp_path,
        SEED002_PINS,
        "--gpu",
        "h100",
        "--launch-file",
        str(LAUNCH / "seed002-standalone.sh"),
    )
    assert "COMPAT-0003" not in finished(standalone)


def test_seed003_locked_tuple(tmp_path: Path) -> None:
    pins = (ASSETS / "freeze" / "sglang-0.4.6-torch-2.7.1.txt").read_text()
    p = check(tmp_path, pins)
    assert "sglang 0.4.6.post1 requires torch==2.6.0" in p.stdout
    assert "triton 3.1.0 does not match torch 2.7.1, which requires triton==3.3.1" in p.stdout


@pytest.mark.parametrize(
    ("script", "fires"), [("seed004-crash.sh", True), ("seed004-workaround.sh", False)]
)
def test_seed004_flashinfer_cutlass_moe_on_h100(tmp_path: Path, script: str, fires: bool) -> None:
    pins = "vllm==0.19.1rc1.dev45\n"
    cache = hf_cache(tmp_path, "Qwen/Qwen3-Next-80B-A3B-Instruct", QWEN3_NEXT)
    p = check(
        tmp_path, pins, "--gpu", "8xh100 80gb", "--launch-file", str(LAUNCH / script), env=cache
    )
    assert ("[known-crash COMPAT-0004]" in p.stdout) is fires, p.stdout
    if fires:
        assert "--moe-backend triton" in p.stdout
