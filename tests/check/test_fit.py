"""parallelism, memory-fit, memory-headroom over the fake HF cache (tests/assets/models/hub)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional, Union

import msgspec.structs
import pytest
from packaging.version import Version

from compat.check import run_registry
from compat.check.base import Context
from compat.check.fit import check_memory, check_parallelism, check_quantization, gpus_needed
from compat.devices import visible_gpus
from compat.launch import LaunchConfig, parse_launch, parse_launch_text
from compat.matrix.load import Matrix
from compat.memory import kv_bytes_per_token, sglang_default_mem_fraction
from compat.model import ModelFacts
from compat.models import GPU, Environment, Finding, Severity, Unknown
from compat.probe.model import read_model

ASSETS = Path(__file__).resolve().parents[1] / "assets"
HUB = ASSETS / "models" / "hub"
MATRIX = Matrix()
RTX4070 = GPU(0, "NVIDIA GeForce RTX 4070", (8, 9), 12282)
H100 = GPU(0, "NVIDIA H100 80GB HBM3", (9, 0), 81559)
V100 = GPU(0, "Tesla V100-SXM2-32GB", (7, 0), 32768)


def gpus(gpu: GPU, n: int) -> tuple[GPU, ...]:
    return tuple(
        GPU(i, gpu.name, gpu.compute_capability, gpu.memory_total_mib, uuid=f"GPU-{i:08x}-aaaa")
        for i in range(n)
    )


def env_with(*gs: GPU, env: Optional[dict[str, str]] = None) -> Environment:
    g: Any = tuple(gs) if gs else Unknown("no GPU information")
    return Environment(
        source="live",
        python=Unknown("t"),
        distributions=(),
        torch=Unknown("t"),
        driver=Unknown("t"),
        gpus=g,
        context=Unknown("t"),
        env=env or {},
    )


def model(repo: str) -> Union[ModelFacts, Unknown]:
    return read_model(repo, {"HF_HUB_CACHE": str(HUB), "HOME": "/nonexistent"})


def sgl(*args: str, version: Optional[str] = "0.5.4") -> LaunchConfig:
    return parse_launch(
        ["python", "-m", "sglang.launch_server", *args], Version(version) if version else None
    )


def vllm(*args: str, version: Optional[str] = "0.10.1") -> LaunchConfig:
    return parse_launch(["vllm", "serve", *args], Version(version) if version else None)


def ctx(
    launch: LaunchConfig, *gs: GPU, facts: Any = None, env: Optional[dict[str, str]] = None
) -> Context:
    return Context(env=env_with(*gs, env=env), matrix=MATRIX, launch=launch, model=facts)


def only(fs: list[Finding], code: str) -> Finding:
    hits = [f for f in fs if f.code == code]
    assert len(hits) == 1, fs
    return hits[0]


# visible GPUs --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "count"),
    [
        (None, 8),
        ("", 0),
        ("0,1", 2),
        ("3", 1),
        ("0,1,-1,2", 2),
        ("0,9,1", 1),
        ("GPU-00000002", 1),
    ],
)
def test_visible_gpus(value: Optional[str], count: int) -> None:
    got = visible_gpus(gpus(H100, 8), value)
    assert not isinstance(got, Unknown) and len(got[0]) == count


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("MIG-1234", "MIG instances"),
        ("zero", "not a GPU index"),
        ("1,1", "twice"),
    ],
)
def test_visible_gpus_could_not_tell(value: str, why: str) -> None:
    got = visible_gpus(gpus(H100, 8), value)
    assert isinstance(got, Unknown) and why in got.reason
    no_uuid = visible_gpus((H100,), "GPU-00000000")
    assert isinstance(no_uuid, Unknown) and "UUID" in no_uuid.reason


# parallelism ---------------------------------------------------------------------------------
def test_tp_over_the_visible_gpus_is_an_error() -> None:
    f = only(
        check_parallelism(
            ctx(vllm("m", "-tp", "8"), *gpus(H100, 8), env={"CUDA_VISIBLE_DEVICES": "0,1"})
        ),
        "parallelism",
    )
    assert f.severity is Severity.ERROR
    assert "needs 8 GPUs (tp=8 x pp=1) but this process sees 2" in f.message
    assert any("CUDA_VISIBLE_DEVICES=0,1: 2 of 8" in e for e in f.evidence)
    assert f.fix[0].startswith("--tensor-parallel-size 2")
    assert check_parallelism(ctx(vllm("m", "-tp", "8"), *gpus(H100, 8))) == []


def test_parallelism_sizes() -> None:
    assert gpus_needed(sgl("--model-path", "m", "--tp", "4", "--dp", "2"))[0] == 8
    assert (
        gpus_needed(sgl("--model-path", "m", "--tp", "8", "--dp", "8", "--enable-dp-attention"))[0]
        == 8
    )
    assert gpus_needed(sgl("--model-path", "m", "--tp", "16", "--nnodes", "2"))[0] == 8
    assert gpus_needed(vllm("m", "-tp", "2", "-pp", "2", "-dp", "2"))[0] == 8


def test_ray_may_span_nodes_and_unknown_gpus_give_info() -> None:
    ray = vllm("m", "-tp", "4", "--distributed-executor-backend", "ray")
    assert only(check_parallelism(ctx(ray, H100)), "parallelism").severity is Severity.WARNING
    f = only(check_parallelism(ctx(vllm("m", "-tp", "2"))), "parallelism")
    assert f.severity is Severity.INFO and "could not tell" in f.message
    mig = only(
        check_parallelism(ctx(vllm("m", "-tp", "2"), H100, env={"CUDA_VISIBLE_DEVICES": "MIG-x"})),
        "parallelism",
    )
    assert f.severity is Severity.INFO and "MIG" in mig.message


def test_tp_must_split_the_heads() -> None:
    facts = model("Qwen/Qwen2-1.5B-Instruct")  # 12 query heads, 2 KV heads
    f = only(
        check_parallelism(
            ctx(
                sgl("--model-path", "Qwen/Qwen2-1.5B-Instruct", "--tp", "8"),
                *gpus(H100, 8),
                facts=facts,
            )
        ),
        "parallelism",
    )
    assert (
        f.severity is Severity.ERROR and "12 attention heads are not divisible by tp=8" in f.message
    )
    assert "--tp 1 or 2 or 4" in f.fix[0]
    assert (
        check_parallelism(ctx(sgl("--model-path", "m", "--tp", "4"), *gpus(H100, 4), facts=facts))
        == []
    )
    mla = model("deepseek-ai/DeepSeek-V3")  # 128 heads, MLA: no KV-head rule
    assert (
        check_parallelism(ctx(sgl("--model-path", "m", "--tp", "8"), *gpus(H100, 8), facts=mla))
        == []
    )


# quantization on the GPU's arch --------------------------------------------------------------
def test_awq_on_volta_is_refused_by_vllm() -> None:
    facts = model("Qwen/Qwen2.5-7B-Instruct-AWQ")
    f = only(
        check_quantization(ctx(vllm("Qwen/Qwen2.5-7B-Instruct-AWQ"), V100, facts=facts)), "gpu-arch"
    )
    assert f.severity is Severity.ERROR and "needs compute capability >= 7.5" in f.message
    assert f.references == (
        "https://github.com/vllm-project/vllm/blob/main/vllm/model_executor/layers/quantization/awq.py",
    )
    assert check_quantization(ctx(vllm("Qwen/Qwen2.5-7B-Instruct-AWQ"), H100, facts=facts)) == []
    fp8 = only(check_quantization(ctx(vllm("m", "--quantization", "fp8"), V100)), "gpu-arch")
    assert "fp8" in fp8.message
    # sglang: no sourced minimum in the data, so nothing is said.
    assert check_quantization(ctx(sgl("--model-path", "m", "--quantization", "awq"), V100)) == []


# memory-fit: weights --------------------------------------------------------------------------
def test_weights_over_memory() -> None:
    facts = model("meta-llama/Llama-3.1-70B-Instruct")
    fs = check_memory(ctx(vllm("meta-llama/Llama-3.1-70B-Instruct"), H100, facts=facts))
    f = only(fs, "memory-fit")
    assert f.severity is Severity.ERROR
    assert f.message.startswith("the weights do not fit: ~131.42 GiB per GPU against a")
    assert f.fix[0].startswith(
        "--tensor-parallel-size 4 (~32.85 GiB of weights per GPU; this process sees 1"
    )
    assert any(
        e.startswith(
            "weights per GPU: 131.42 GiB (model.safetensors.index.json total_size; / tp=1)"
        )
        for e in f.evidence
    )
    # Split over 4 GPUs it fits, and the KV cache left is reported in an info.
    ok = check_memory(
        ctx(
            vllm("meta-llama/Llama-3.1-70B-Instruct", "-tp", "4", "--max-model-len", "32768"),
            *gpus(H100, 4),
            facts=facts,
        )
    )
    info = only(ok, "memory-fit")
    assert info.severity is Severity.INFO and "weights 32.85 GiB per GPU" in info.message


def test_sglang_weights_over_the_static_pool() -> None:
    facts = model("Qwen/Qwen2.5-32B-Instruct")
    f = only(
        check_memory(
            ctx(
                sgl("--model-path", "Qwen/Qwen2.5-32B-Instruct"),
                GPU(0, "NVIDIA A100-SXM4-40GB", (8, 0), 40960),
                facts=facts,
            )
        ),
        "memory-fit",
    )
    assert f.severity is Severity.ERROR and "static pool" in f.message
    # Two GPUs hold the weights (30.5 GiB each) but not them and one 32768-token sequence (4 GiB).
    assert f.fix[0].startswith("--tp 4 (~15.26 GiB of weights per GPU")


# memory-fit: KV cache for one sequence of the maximum length ----------------------------------
def test_kv_cache_cannot_hold_max_len_vllm() -> None:
    facts = model("Qwen/Qwen3-30B-A3B")
    launch = vllm("Qwen/Qwen3-30B-A3B", "--max-model-len", "262144")
    f = only(check_memory(ctx(launch, H100, facts=facts)), "memory-fit")
    # vLLM's own message for this model and length: "24.0 GiB KV cache is needed".
    assert f.severity is Severity.ERROR and "262,144 tokens need ~24.00 GiB per GPU" in f.message
    assert "vLLM refuses to start" in f.message
    assert f.fix[0].startswith("--max-model-len ")
    assert "--kv-cache-dtype fp8 (half the bytes per token)" in f.fix
    assert any("maximum length 262,144 (--max-model-len)" in e for e in f.evidence)
    fits = int(f.fix[0].split()[1])
    quiet = check_memory(
        ctx(vllm("Qwen/Qwen3-30B-A3B", "--max-model-len", str(fits)), H100, facts=facts)
    )
    assert only(quiet, "memory-fit").severity is Severity.INFO


def test_kv_cache_too_small_is_a_warning_for_sglang() -> None:
    facts = model("Qwen/Qwen2.5-32B-Instruct")
    a6000 = GPU(0, "NVIDIA RTX A6000", (8, 6), 49140)
    f = only(
        check_memory(
            ctx(
                sgl(
                    "--model-path",
                    "Qwen/Qwen2.5-32B-Instruct",
                    "--tp",
                    "2",
                    "--context-length",
                    "131072",
                    "--mem-fraction-static",
                    "0.75",
                ),
                *gpus(a6000, 2),
                facts=facts,
            )
        ),
        "memory-fit",
    )
    assert (
        f.severity is Severity.WARNING and "sglang starts but rejects requests longer" in f.message
    )
    assert f.fix[0].startswith("--context-length ")


def test_kv_per_token_matches_the_logs() -> None:
    # sglang#11716: K size 53.31 GB for 2795207 tokens -> 20480 bytes of K per token (x2 with V).
    llama70 = model("meta-llama/Llama-3.1-70B-Instruct")
    assert isinstance(llama70, ModelFacts) and kv_bytes_per_token(llama70, 8, 1, 2) == 40960
    # DeepSeek MLA: (512 + 64) x 61 layers, not split by tp.
    ds = model("deepseek-ai/DeepSeek-V3")
    assert isinstance(ds, ModelFacts) and kv_bytes_per_token(ds, 8, 1, 1) == 576 * 61
    # more tp than KV heads: one head per GPU, replicated.
    assert kv_bytes_per_token(llama70, 16, 1, 2) == 40960


def test_vllm_startup_needs_the_requested_memory_free() -> None:
    busy = GPU(0, "NVIDIA GeForce RTX 4090", (8, 9), 24564, memory_used_mib=6000)
    f = only(check_memory(ctx(vllm("m"), busy)), "memory-fit")
    assert f.severity is Severity.ERROR and "only ~" in f.message and "when it starts" in f.message
    assert any(e.startswith("in use by other processes now: 5.41 GiB") for e in f.evidence)
    assert f.fix[0].startswith("--gpu-memory-utilization 0.")
    # From a snapshot, the memory in use when it was taken is not held against the launch.
    snap = msgspec.structs.replace(env_with(busy), source="h100.json")
    quiet = check_memory(Context(env=snap, matrix=MATRIX, launch=vllm("m")))
    assert quiet == []
    # V0 releases do not check at start.
    assert all(x.code != "memory-fit" for x in check_memory(ctx(vllm("m", version="0.7.3"), busy)))


# memory-headroom ------------------------------------------------------------------------------
def test_seed000_with_the_model_read_warns_with_numbers() -> None:
    facts = model("Qwen/Qwen2-1.5B-Instruct")
    text = (ASSETS / "launch" / "seed000-sglang-rtx4070.sh").read_text()
    launch = parse_launch_text(
        text.replace("/models/Qwen2-1.5B-Instruct", "Qwen/Qwen2-1.5B-Instruct"),
        Version("0.4.6.post1"),
    )
    f = only(check_memory(ctx(launch, RTX4070, facts=facts)), "memory-headroom")
    assert f.severity is Severity.WARNING
    # The seed's log: "Memory pool end. avail mem=0.97 GB", "Capture cuda graph begin ... 0.39 GB".
    assert (
        "leaves ~0.24 GiB of 11.99 GiB on GPU 0" in f.message
        and "at CUDA-graph capture" in f.message
    )
    # The table is the one sglang 0.4.6.post1's own server_args.py holds (launch data).
    assert (
        "mem_fraction_static=0.88 (sglang default for tp=1 (table at "
        "sglang/srt/server_args.py:226 of sglang 0.4.6.post1))" in f.evidence
    )
    assert any(e.startswith("KV cache: 6.84 GiB = 256,") for e in f.evidence)
    assert any("request-to-token table" in e for e in f.evidence)
    assert f.fix[0] == "--mem-fraction-static 0.82"
    fixed = check_memory(
        ctx(
            parse_launch_text(
                text.replace("/models/Qwen2-1.5B-Instruct", "Qwen/Qwen2-1.5B-Instruct").rstrip()
                + " --mem-fraction-static 0.80",
                Version("0.4.6.post1"),
            ),
            RTX4070,
            facts=facts,
        )
    )
    assert [f.code for f in fixed] == ["memory-fit"] and fixed[0].severity is Severity.INFO


def test_seed000_without_the_model_compares_with_sglangs_own_rule() -> None:
    launch = parse_launch_text(
        (ASSETS / "launch" / "seed000-sglang-rtx4070.sh").read_text(), Version("0.4.6.post1")
    )
    facts = read_model("/models/Qwen2-1.5B-Instruct", {"HOME": "/nonexistent"})
    fs = check_memory(ctx(launch, RTX4070, facts=facts))
    f = only(fs, "memory-headroom")
    assert "less than half of the ~2.76 GiB that sglang's own sizing rule leaves" in f.message
    assert f.fix[0] == "--mem-fraction-static 0.79"
    assert "the model could not be read" in f.message
    assert any("guess from the name" in e for e in f.evidence)
    (note,) = check_memory(
        ctx(
            sgl(
                "--model-path",
                "/models/Qwen2-1.5B-Instruct",
                "--mem-fraction-static",
                "0.80",
                version="0.4.6.post1",
            ),
            RTX4070,
            facts=facts,
        )
    )
    assert note.severity is Severity.INFO and "weights 2.79 GiB per GPU" in note.message
    assert any("guess: 1.5B parameters x 2 bytes from the name" in e for e in note.evidence)


def test_vllm_default_on_a_small_gpu_and_graph_memory_by_release() -> None:
    v0 = check_memory(ctx(vllm("m", version="0.6.3"), RTX4070))
    f = only(v0, "memory-headroom")
    assert "CUDA graphs (captured outside the budget): 2.50 GiB" in "\n".join(f.evidence)
    assert f.fix[0].startswith("--gpu-memory-utilization 0.")
    # From 0.21 vLLM takes graph memory out of its budget: outside it only the margin is needed.
    assert check_memory(ctx(vllm("m", version="0.21.0"), H100)) == []
    eager = check_memory(ctx(vllm("m", "--enforce-eager", version="0.6.3"), H100))
    assert eager == []


def test_could_not_estimate() -> None:
    (f,) = check_memory(ctx(sgl("--model-path", "m")))
    assert f.severity is Severity.INFO and "--gpu NAME" in f.fix[0]
    (g,) = check_memory(ctx(sgl("--model-path", "m", "--mem-fraction-static", "$FRAC"), RTX4070))
    assert g.severity is Severity.INFO and "shell variable" in g.message
    assert check_memory(ctx(parse_launch(["python", "train.py"]), RTX4070)) == []
    unread = check_memory(
        ctx(sgl("--model-path", "/nope"), H100, facts=Unknown("/nope does not exist"))
    )
    assert (
        unread[0].severity is Severity.INFO
        and "could not read the model '/nope'" in unread[0].message
    )


def test_smallest_visible_gpu_is_judged() -> None:
    small = GPU(1, "NVIDIA GeForce RTX 4060 Ti", (8, 9), 8188)
    big = GPU(0, "NVIDIA GeForce RTX 4090", (8, 9), 24564)
    f = only(
        check_memory(ctx(sgl("--model-path", "m", version="0.4.6"), big, small)), "memory-headroom"
    )
    assert "GPU 1" in f.message
    hidden = check_memory(
        ctx(
            sgl("--model-path", "m", "--mem-fraction-static", "0.8", version="0.4.6"),
            big,
            small,
            env={"CUDA_VISIBLE_DEVICES": "0"},
        )
    )
    assert hidden == []


def test_run_checks_includes_fit() -> None:
    facts = model("meta-llama/Llama-3.1-70B-Instruct")
    fs = run_registry(
        Context(
            env=env_with(H100),
            matrix=MATRIX,
            launch=vllm("meta-llama/Llama-3.1-70B-Instruct", "-tp", "2"),
            model=facts,
        )
    )
    assert {"parallelism", "memory-fit"} <= {f.code for f in fs}


# sglang's default fraction by release (kept from the fixed-threshold check) ---------------------
@pytest.mark.parametrize("tp,expected", [(1, 0.88), (2, 0.87), (4, 0.85), (8, 0.81), (16, 0.79)])
def test_sglang_tp_table_before_0_4_7(tp: int, expected: float) -> None:
    frac, origin = sglang_default_mem_fraction(
        12282, sgl("--model-path", "m", "--tp", str(tp)), Version("0.4.6")
    )
    assert frac == expected and f"tp={tp}" in origin


def test_sglang_tier_and_reserve_rules() -> None:
    frac, origin = sglang_default_mem_fraction(12282, sgl("--model-path", "m"), Version("0.4.9"))
    assert frac == round((12282 - 2.9 * 1024) / 12282, 3) and "2.90 GiB reserved" in origin
    # 512 + max(2048, 2048) * 1.5 + 8 * 2 + 1 * 1 / 8 * 1024 = 3728 MiB on a < 20 GiB GPU
    frac, _ = sglang_default_mem_fraction(12282, sgl("--model-path", "m"), Version("0.5.4"))
    assert frac == round((12282 - 3728) / 12282, 3)
    # H200, tp 8: 512 + 8192 * 1.5 + 512 * 2 + 1024 = 14848 MiB: the fraction of sglang#11716's log.
    frac, _ = sglang_default_mem_fraction(
        143771, sgl("--model-path", "m", "--tp", "8"), Version("0.5.4")
    )
    assert frac == round((143771 - 14848) / 143771, 3) == 0.897
    pcg = sgl("--model-path", "m", version="0.5.10")
    frac, _ = sglang_default_mem_fraction(81559, pcg, Version("0.5.10"))
    assert frac == round((81559 - 13440 - 58 * 8) / 81559, 3)


# the command line, over the fake cache -----------------------------------------------------------
def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    freeze = tmp_path / "freeze.txt"
    freeze.write_text("requests==2.32.3\n")  # no stack: only the fit findings can fail the run
    return subprocess.run(
        [sys.executable, "-m", "compat", "check", "--from", str(freeze), "--python", "3.11", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "HF_HUB_CACHE": str(HUB), **env},
    )


def test_cli_reads_the_cache_and_reports_the_fit(tmp_path: Path) -> None:
    p = _cli(
        tmp_path,
        "--gpu",
        "h100 80gb",
        "--",
        "vllm",
        "serve",
        "Qwen/Qwen3-30B-A3B",
        "--max-model-len",
        "262144",
    )
    assert p.returncode == 1, p.stdout + p.stderr
    assert (
        "[memory-fit] the KV cache cannot hold one sequence of the maximum length: 262,144 tokens"
        in p.stdout
    )
    assert "model: Qwen3MoeForCausalLM (qwen3_moe), MoE 128 experts top-8, bfloat16" in p.stdout
    tp = _cli(
        tmp_path,
        "--gpu",
        "h100",
        "--gpu",
        "h100",
        "--env",
        "CUDA_VISIBLE_DEVICES=1",
        "--",
        "python",
        "-m",
        "sglang.launch_server",
        "--model-path",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--tp",
        "2",
    )
    assert tp.returncode == 1 and "ERRORS (1)" in tp.stdout, tp.stdout
    assert (
        "[parallelism] the launch needs 2 GPUs (tp=2 x pp=1) but this process sees 1" in tp.stdout
    )


def test_cli_without_the_model_files_says_so(tmp_path: Path) -> None:
    p = _cli(
        tmp_path, "--gpu", "h100", "--format", "json", "--", "vllm", "serve", "org/private-model"
    )
    assert p.returncode == 0, p.stdout + p.stderr
    doc = json.loads(p.stdout)
    (f,) = [x for x in doc["findings"] if x["code"] == "memory-fit"]
    assert (
        f["severity"] == "info" and "could not read the model 'org/private-model'" in f["message"]
    )


def test_a_declared_gpu_says_its_memory_is_the_stated_size() -> None:
    """--gpu gives the size NVIDIA states (an L40S: 48 GiB), not what the machine reports."""
    facts = model("Qwen/Qwen2.5-32B-Instruct")
    stated = "its memory is the size NVIDIA states for it, not a reading"
    for gpu, said in (
        (GPU(0, "L40S", (8, 9), 49152, None, None, None, "--gpu"), True),
        (GPU(0, "NVIDIA L40S", (8, 9), 46068, None, None, None, "nvml"), False),
    ):
        f = only(
            check_memory(ctx(sgl("--model-path", "Qwen/Qwen2.5-32B-Instruct"), gpu, facts=facts)),
            "memory-fit",
        )
        assert any(e.startswith(stated) for e in f.evidence) is said, f.evidence
