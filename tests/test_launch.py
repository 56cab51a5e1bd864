"""Launch parsing: entry points, aliases, values, defaults by version, launch files, bad input."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import Version

from compat.errors import CompatError, InputError, UsageError
from compat.launch import (
    SETTINGS,
    LaunchConfig,
    detect_entrypoint,
    parse_launch,
    parse_launch_text,
    vllm_default_cudagraph_mode,
    vllm_default_unquantized_moe_backend,
)
from compat.models import GPU, Severity, Unknown

LAUNCH = Path(__file__).parent / "assets" / "launch"
SGL = ["python", "-m", "sglang.launch_server"]
VLLM = ["vllm", "serve"]


def sgl(*args: str, version: str = "0.5.12") -> LaunchConfig:
    return parse_launch([*SGL, *args], Version(version))


def vllm(*args: str, version: str = "0.19.0") -> LaunchConfig:
    return parse_launch([*VLLM, *args], Version(version))


@pytest.mark.parametrize(
    "argv,framework",
    [
        (["python", "-m", "sglang.launch_server", "--model-path", "m"], "sglang"),
        (["python3", "-m", "sglang.launch_server", "--model-path", "m"], "sglang"),
        (["sglang", "serve", "--model-path", "m"], "sglang"),
        (["/opt/venv/bin/sglang", "serve", "--model-path", "m"], "sglang"),
        (["vllm", "serve", "m"], "vllm"),
        (["python", "-m", "vllm.entrypoints.openai.api_server", "--model", "m"], "vllm"),
        (["torchrun", "train.py"], "unknown"),
    ],
)
def test_entry_points(argv: list[str], framework: str) -> None:
    assert detect_entrypoint(argv)[0] == framework
    lc = parse_launch(argv)
    assert lc.framework == framework
    assert lc.argv == tuple(argv)
    if framework != "unknown":
        assert lc.model == "m"
        assert set(SETTINGS) == set(lc.settings)


# `--tp` works in sglang through argparse's abbreviations (the only flag starting with it is
# --tp-size); `-tp` is no sglang flag. vLLM has -tp as an alias and no flag starting with --tp.
@pytest.mark.parametrize("flag", ["--tp", "--tp-size", "--tensor-parallel-size", "--tp-s"])
def test_tp_aliases_sglang(flag: str) -> None:
    lc = sgl(flag, "4")
    assert lc.settings["tp_size"] == 4
    assert "tp_size" in lc.explicit
    assert lc.origin("tp_size") == flag
    assert lc.problems == ()


@pytest.mark.parametrize("flag", ["--tensor-parallel-size", "-tp", "--tensor-parallel"])
def test_tp_aliases_vllm(flag: str) -> None:
    lc = vllm("m", flag, "8")
    assert lc.settings["tp_size"] == 8 and lc.problems == ()


@pytest.mark.parametrize(
    "call,flag,fix",
    [
        (lambda: sgl("-tp", "4"), "-tp", "did you mean --tp-size?"),
        (lambda: vllm("m", "--tp", "8"), "--tp", "did you mean -tp?"),
    ],
)
def test_other_frameworks_spellings_are_errors_with_the_right_one(
    call: Any, flag: str, fix: str
) -> None:
    lc = call()
    assert lc.settings["tp_size"] == 1 and lc.unknown_flags == (flag,)
    (p,) = lc.problems
    assert p.kind == "unknown-flag" and p.severity is Severity.ERROR and fix in p.fix


def test_equals_values_and_other_parallel_sizes() -> None:
    lc = sgl("--tp-size=2", "--dp-size=2", "--pp-size=1", "--ep-size=2", "--mem-fraction=0.7")
    assert (lc.settings["tp_size"], lc.settings["dp_size"], lc.settings["ep_size"]) == (2, 2, 2)
    assert lc.settings["mem_fraction_static"] == 0.7
    assert lc.settings["enable_expert_parallel"] is True
    v = vllm("m", "-tp=2", "-dp", "2", "--enable-expert-parallel")
    assert v.settings["ep_size"] == 4


def test_defaults_when_nothing_given() -> None:
    lc = sgl("--model-path", "m")
    s = lc.settings
    assert s["cuda_graph"] is True and s["custom_all_reduce"] is True and s["hicache"] is False
    assert s["attention_backend"] == "auto" and s["moe_backend"] == "auto"
    assert s["mem_fraction_static"] is None and s["gpu_memory_utilization"] is None
    assert lc.explicit == frozenset({"model"})
    assert lc.origin("cuda_graph") == "default"
    v = vllm("m")
    assert v.settings["gpu_memory_utilization"] == 0.9
    assert v.settings["distributed_executor_backend"] == "auto"


def test_booleans_no_prefix_and_switch_values() -> None:
    lc = sgl(
        "--disable-cuda-graph",
        "--disable-custom-all-reduce",
        "--enable-hierarchical-cache",
        "--trust-remote-code",
        "--enable-memory-saver=false",
    )
    s = lc.settings
    assert s["cuda_graph"] is False and s["custom_all_reduce"] is False and s["hicache"] is True
    assert s["trust_remote_code"] is True and s["enable_memory_saver"] is False
    # argparse refuses a value on a store_true switch ("ignored explicit argument").
    (bad,) = lc.problems
    assert bad.kind == "bad-value" and bad.subject == "--enable-memory-saver"
    # vLLM's booleans are BooleanOptionalAction: --no-X exists; sglang's store_true have none.
    v = vllm("m", "--enforce-eager", "--no-enforce-eager")
    assert v.settings["cuda_graph"] is True and v.problems == ()
    assert sgl("--no-trust-remote-code").unknown_flags == ("--no-trust-remote-code",)
    with pytest.raises(UsageError, match="is a switch"):
        sgl("--disable-cuda-graph=maybe")


def test_sglang_backends_and_speculative() -> None:
    lc = sgl(
        "--attention-backend",
        "flashinfer",
        "--decode-attention-backend",
        "fa3",
        "--speculative-algorithm",
        "NEXTN",
        "--moe-runner-backend",
        "flashinfer_cutlass",
    )
    s = lc.settings
    assert s["attention_backend"] == "flashinfer"
    assert s["prefill_attention_backend"] == "flashinfer"  # inherits --attention-backend
    assert s["decode_attention_backend"] == "fa3"
    assert s["speculative_algorithm"] == "EAGLE"  # NEXTN is EAGLE in sglang
    assert s["speculative_draft_attention_backend"] == "auto"
    assert s["moe_backend"] == "flashinfer_cutlass"
    assert sgl("--model-path", "m").settings["speculative_draft_attention_backend"] is None


def test_torch_native_attention_implies_no_cuda_graph() -> None:
    lc = sgl("--attention-backend", "torch_native")
    assert lc.settings["cuda_graph"] is False
    assert lc.origin("cuda_graph").startswith(
        "implied by --attention-backend torch_native (sglang-torch-native-disables-cuda-graph: "
    )


# Read from each release's flags: --enable-piecewise-cuda-graph (off) up to 0.5.9,
# --disable-piecewise-cuda-graph (on) from 0.5.10; from 0.5.14 a curated rule with its source line.
@pytest.mark.parametrize(
    "version,expected,why",
    [
        ("0.5.2", False, "no piecewise CUDA graphs in that release"),
        ("0.5.9", False, "it has --enable-piecewise-cuda-graph, off"),
        ("0.5.10", True, "it has --disable-piecewise-cuda-graph"),
        ("0.5.12", True, "it has --disable-piecewise-cuda-graph"),
        ("0.5.14", True, "sglang-prefill-graph-tc-piecewise"),
        ("0.5.23", False, "sglang-prefill-graph-breakable"),
    ],
)
def test_sglang_piecewise_default_by_version(version: str, expected: bool, why: str) -> None:
    lc = sgl("--model-path", "m", version=version)
    assert lc.settings["piecewise_cuda_graph"] is expected
    assert why in lc.origin("piecewise_cuda_graph")
    assert "piecewise_cuda_graph" not in lc.explicit


def test_sglang_piecewise_flags_and_unknown_version() -> None:
    assert sgl("--disable-piecewise-cuda-graph").settings["piecewise_cuda_graph"] is False
    assert (
        sgl("--enable-piecewise-cuda-graph", version="0.5.5").settings["piecewise_cuda_graph"]
        is True
    )
    pre = sgl("--cuda-graph-backend-prefill", "tc_piecewise", version="0.5.14")
    assert pre.settings["piecewise_cuda_graph"] is True and pre.problems == ()
    assert (
        sgl("--cuda-graph-backend-decode", "disabled", version="0.5.14").settings["cuda_graph"]
        is False
    )
    # A flag of a later release: an error that names the release which added it.
    early = sgl("--cuda-graph-backend-prefill", "tc_piecewise", version="0.5.5")
    (p,) = early.problems
    assert p.kind == "removed-flag" and "added in sglang 0.5.14" in p.message
    unknown = parse_launch([*SGL, "--model-path", "m"]).settings["piecewise_cuda_graph"]
    assert isinstance(unknown, Unknown) and "0.5.10" in unknown.reason


def test_vllm_cudagraph_mode_defaults_and_overrides() -> None:
    assert vllm("m", version="0.10.2").settings["cudagraph_mode"] == "PIECEWISE"
    assert vllm("m", version="0.11.0").settings["cudagraph_mode"] == "FULL_AND_PIECEWISE"
    assert isinstance(vllm_default_cudagraph_mode(None), Unknown)
    lc = vllm("m", "--compilation-config", '{"cudagraph_mode": "full_decode_only", "level": 3}')
    assert lc.settings["cudagraph_mode"] == "FULL_DECODE_ONLY"
    assert lc.settings["piecewise_cuda_graph"] is False
    assert lc.settings["compilation_config"] == {"cudagraph_mode": "full_decode_only", "level": 3}
    eager = vllm("m", "--enforce-eager")
    assert eager.settings["cudagraph_mode"] == "NONE"
    assert eager.settings["piecewise_cuda_graph"] is False and eager.settings["cuda_graph"] is False
    none = vllm(
        "m", "-O", '{"cudagraph_mode": "NONE"}', version="0.11.0"
    )  # -O: --compilation-config
    assert none.settings["cuda_graph"] is False
    cc = vllm("m", "-cc", '{"cudagraph_mode": "NONE"}')  # from 0.12 the alias is -cc
    assert cc.settings["cuda_graph"] is False and cc.problems == ()


def test_vllm_dotted_and_attached_compilation_flags() -> None:
    # Up to 0.10 -O is --compilation-config: -O3 is a level, -O.key sets one key.
    lc = vllm(
        "m",
        "-O3",
        "-O.cudagraph_mode=PIECEWISE",
        "--compilation-config.max_capture_size",
        "64",
        version="0.10.2",
    )
    assert lc.settings["compilation_config"] == {
        "level": 3,
        "cudagraph_mode": "PIECEWISE",
        "max_capture_size": 64,
    }
    assert lc.settings["cuda_graph_max_bs"] == 64
    assert lc.settings["piecewise_cuda_graph"] is True
    # From 0.19 FlexibleArgumentParser turns -O3 into --optimization-level 3.
    new = vllm("m", "-O3", "--compilation-config.max_capture_size", "64", "--max_model_len", "32k")
    assert new.values["optimization_level"] == "3"
    assert new.settings["compilation_config"] == {"max_capture_size": 64}
    assert new.settings["max_model_len"] == 32000  # human_readable_int: k = 1000
    zero = vllm("m", "-O0", version="0.10.2")
    assert isinstance(zero.settings["cudagraph_mode"], Unknown)


def test_vllm_speculative_config_json() -> None:
    lc = vllm("m", "--speculative-config", '{"method": "eagle3", "num_speculative_tokens": 3}')
    assert lc.settings["speculative_algorithm"] == "EAGLE3"
    assert "speculative_algorithm" in lc.explicit
    assert vllm("m", "--speculative-config.method=mtp").settings["speculative_algorithm"] == "MTP"


def test_vllm_moe_backend_default_by_version() -> None:
    assert vllm_default_unquantized_moe_backend(Version("0.18.1rc1.dev227")) == "triton"
    assert vllm_default_unquantized_moe_backend(Version("0.18.1rc1.dev266")) == "flashinfer_cutlass"
    assert vllm_default_unquantized_moe_backend(Version("0.19.1rc1.dev45")) == "flashinfer_cutlass"
    assert isinstance(vllm_default_unquantized_moe_backend(None), Unknown)
    given = vllm("m", "--moe-backend", "TRITON")
    assert given.settings["moe_backend"] == given.settings["moe_backend_effective"] == "triton"
    assert vllm("m", version="0.18.1rc1.dev227").settings["moe_backend_effective"] == "triton"
    # the 0.18.1 and 0.19.x releases were cut without the priority list: Triton (read from
    # their wheels); 0.20.0 has it
    for release in ("0.18.1", "0.19.0", "0.19.1"):
        assert vllm("m", version=release).settings["moe_backend_effective"] == "triton"
    # from 0.20.0 the pick depends on the GPU: without GPUs it is not known
    assert isinstance(vllm("m", version="0.20.0").settings["moe_backend_effective"], Unknown)
    assert isinstance(vllm_default_unquantized_moe_backend(Version("0.23.0")), Unknown)
    quant = vllm("m", "--quantization", "fp8").settings["moe_backend_effective"]
    assert isinstance(quant, Unknown)


H100 = (GPU(0, "NVIDIA H100 80GB HBM3", (9, 0)),)
B200 = (GPU(0, "NVIDIA B200", (10, 0)),)
A100 = (GPU(0, "NVIDIA A100-SXM4-80GB", (8, 0)),)
RTX_PRO = (GPU(0, "NVIDIA RTX PRO 6000 Blackwell Server Edition", (12, 0)),)
THOR = (GPU(0, "NVIDIA Thor", (11, 0)),)


@pytest.mark.parametrize(
    ("release", "gpus", "flags", "picked"),
    [
        # 0.20.0-0.22.x (read from the 0.20.0 and 0.22.1 wheels): TRT-LLM, CUTLASS, Triton;
        # CUTLASS last when DP > 1; TRT-LLM BF16 only on Blackwell (10.x)
        ("0.20.0", H100, (), "flashinfer_cutlass"),
        ("0.22.1", H100, ("--data-parallel-size", "2"), "triton"),
        ("0.22.0", RTX_PRO, (), "flashinfer_cutlass"),
        ("0.21.0", RTX_PRO, ("--data-parallel-size", "4"), "triton"),
        ("0.20.1", A100, (), "triton"),
        ("0.20.0", B200, (), None),  # TRT-LLM or CUTLASS by the model's routing method
        ("0.20.0", THOR, (), None),  # no rule for 11.x
        # 0.23.0 on (#44220, read from the 0.23.0, 0.24.0 and 0.29.0 wheels): Triton first on Hopper
        ("0.23.0", H100, (), "triton"),
        ("0.29.0", H100, (), "triton"),
        ("0.29.0", RTX_PRO, (), "flashinfer_cutlass"),
        ("0.29.0", A100, (), "triton"),
        ("0.25.0", B200, (), None),
        # an explicit backend is what it says, whatever the GPU
        ("0.29.0", H100, ("--moe-backend", "flashinfer_cutlass"), "flashinfer_cutlass"),
    ],
)
def test_vllm_moe_backend_default_by_gpu(
    release: str, gpus: tuple[GPU, ...], flags: tuple[str, ...], picked: Optional[str]
) -> None:
    lc = parse_launch(["vllm", "serve", "m", *flags], Version(release), gpus=gpus)
    got = lc.settings["moe_backend_effective"]
    if picked is None:
        assert isinstance(got, Unknown), got
    else:
        assert got == picked
        assert "moe_backend" in lc.explicit or "vllm-unquantized-moe-" in lc.origin(
            "moe_backend_effective"
        )


def test_the_gpus_the_server_sees_decide_and_mixed_ones_are_not_guessed() -> None:
    both = (GPU(0, "NVIDIA H100 80GB HBM3", (9, 0)), GPU(1, "NVIDIA A100-SXM4-80GB", (8, 0)))
    argv = ["vllm", "serve", "m"]

    def picked(env: dict[str, str]) -> object:
        lc = parse_launch(argv, Version("0.20.0"), env=env, gpus=both)
        return lc.settings["moe_backend_effective"]

    assert isinstance(picked({}), Unknown)  # Hopper and Ampere pick differently
    assert picked({"CUDA_VISIBLE_DEVICES": "0"}) == "flashinfer_cutlass"
    assert picked({"CUDA_VISIBLE_DEVICES": "1"}) == "triton"
    assert isinstance(picked({"CUDA_VISIBLE_DEVICES": ""}), Unknown)  # no GPU at all


def test_vllm_attention_backend_from_env() -> None:
    lc = parse_launch(["vllm", "serve", "m"], env={"VLLM_ATTENTION_BACKEND": "FLASHINFER"})
    assert lc.settings["attention_backend"] == "flashinfer"
    assert lc.origin("attention_backend") == "VLLM_ATTENTION_BACKEND in the launch environment"


def test_unknown_flags_are_kept_with_their_values() -> None:
    lc = sgl(
        "--model-path",
        "m",
        "--host",
        "0.0.0.0",
        "--skip-bogus-warmup",
        "--future-flag",
        "7",
        "--tp",
        "2",
    )
    assert lc.unknown_flags == ("--skip-bogus-warmup", "--future-flag")
    assert lc.settings["tp_size"] == 2
    assert lc.values["host"] == "0.0.0.0"
    assert lc.notes == ()


def test_positional_model_and_leftovers() -> None:
    lc = vllm("Qwen/Qwen3-8B", "extra")
    assert lc.model == "Qwen/Qwen3-8B"
    assert lc.origin("model") == "positional MODEL"
    assert any("extra" in n for n in lc.notes)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--tp", "abc"], "--tp expects an integer, got 'abc'"),
        (["--mem-fraction-static", "most"], "expects a number"),
        (["--tp"], "--tp expects a value"),
        (["--tp", "--disable-cuda-graph"], "--tp expects a value"),
    ],
)
def test_bad_values_are_clear_usage_errors(args: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        sgl("--model-path", "m", *args)
    assert info.value.exit_code == 2


def test_bad_json_is_a_clear_usage_error() -> None:
    with pytest.raises(UsageError, match="not valid JSON"):
        vllm("m", "--compilation-config", '{"cudagraph_mode": ')
    with pytest.raises(UsageError, match="expects a JSON object"):
        vllm("m", "--speculative-config", "eagle")
    with pytest.raises(UsageError, match="empty launch command"):
        parse_launch([])


def test_shell_variables_become_unknown_not_errors() -> None:
    lc = sgl("--tp", "$TP", "--model-path", "m")
    assert isinstance(lc.settings["tp_size"], Unknown)


def test_negative_numbers_are_values() -> None:
    assert sgl("--chunked-prefill-size", "-1").settings["chunked_prefill_size"] == -1


# -- launch files --------------------------------------------------------------------------


def test_seed002_standalone_file() -> None:
    lc = parse_launch_text((LAUNCH / "seed002-standalone.sh").read_text(), Version("0.5.12"))
    s = lc.settings
    assert lc.framework == "sglang"
    assert (s["tp_size"], s["mem_fraction_static"], s["cuda_graph_max_bs"]) == (4, 0.7, 512)
    assert s["attention_backend"] == "fa3" and s["sampling_backend"] == "flashinfer"
    assert s["enable_memory_saver"] is True and s["piecewise_cuda_graph"] is False
    assert s["custom_all_reduce"] is True and s["under_ray"] is False
    assert lc.env["CUDA_VISIBLE_DEVICES"] == "1,2,3,4"
    assert lc.env["LD_LIBRARY_PATH"].endswith("tvm_ffi/lib:$LD_LIBRARY_PATH")
    assert lc.unknown_flags == () and lc.values["skip_server_warmup"] is True


def test_seed002_under_ray_and_ray_job_wrapper() -> None:
    ray = parse_launch_text((LAUNCH / "seed002-under-ray.sh").read_text(), Version("0.5.12"))
    assert ray.settings["under_ray"] is True and ray.env["RAY_JOB_ID"] == "02000000"
    job = parse_launch_text((LAUNCH / "seed002-miles-ray-job.sh").read_text())
    assert job.framework == "unknown" and job.settings["under_ray"] is True
    wrapped = parse_launch_text(
        "ray job submit --address http://h:8265 -- "
        "python -m sglang.launch_server --model-path m --tp 2"
    )
    assert wrapped.framework == "sglang" and wrapped.settings["under_ray"] is True


def test_seed001_comment_file_with_unexpanded_variables() -> None:
    lc = parse_launch_text(
        (LAUNCH / "seed001-minimax-hicache-comment.sh").read_text(), Version("0.5.9")
    )
    s = lc.settings
    assert s["tp_size"] == 4 and s["hicache"] is True and s["mem_fraction_static"] == 0.85
    assert s["model"] == "/dev/shm/$MODEL_NAME"
    assert lc.values["hicache_storage_backend"] == "mooncake" and lc.unknown_flags == ()
    assert any("$EXTRA_ARGS" in n for n in lc.notes)


def test_shell_variables_expand_and_plain_assignments_stay_out_of_env() -> None:
    lc = parse_launch_text((LAUNCH / "seed001-glm5-hicache-eagle.sh").read_text(), Version("0.5.9"))
    assert lc.model == "zai-org/GLM-5-FP8"
    assert "MODEL" not in lc.env and lc.env["SGLANG_ENABLE_SPEC_V2"] == "1"
    assert lc.settings["speculative_draft_attention_backend"] == "flashinfer"


def test_seed004_files() -> None:
    crash = parse_launch_text((LAUNCH / "seed004-crash.sh").read_text(), Version("0.18.2rc1.dev54"))
    assert crash.framework == "vllm" and crash.settings["tp_size"] == 8
    assert (
        crash.settings["moe_backend"] == "auto" and crash.settings["piecewise_cuda_graph"] is True
    )
    assert crash.settings["dtype"] == "bfloat16" and crash.settings["max_model_len"] == 33020
    fixed = parse_launch_text(
        (LAUNCH / "seed004-workaround.sh").read_text(), Version("0.18.2rc1.dev54")
    )
    assert fixed.settings["moe_backend"] == "triton" and "moe_backend" in fixed.explicit


def test_prefix_assignments_env_and_separators() -> None:
    text = "cd /srv && NCCL_NVLS_ENABLE=0 CUDA_VISIBLE_DEVICES=0,1 exec vllm serve m -tp 2 ; echo done\n"
    lc = parse_launch_text(text)
    assert lc.env == {"NCCL_NVLS_ENABLE": "0", "CUDA_VISIBLE_DEVICES": "0,1"}
    assert lc.settings["tp_size"] == 2


def test_config_yaml_is_read_and_cli_wins() -> None:
    pytest.importorskip("yaml")
    lc = parse_launch_text(
        (LAUNCH / "vllm-with-config.sh").read_text(), Version("0.19.0"), config_dir=LAUNCH
    )
    s = lc.settings
    assert s["tp_size"] == 2  # the command line overrides the file
    assert s["gpu_memory_utilization"] == 0.85 and s["moe_backend"] == "triton"
    assert s["cuda_graph"] is False
    assert lc.origin("gpu_memory_utilization") == "vllm-config.yaml"


def test_config_without_pyyaml_is_kept_as_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def no_yaml(name: str, *a: object) -> object:
        if name == "yaml":
            raise ImportError("no yaml")
        return real(name)

    monkeypatch.setattr(importlib, "import_module", no_yaml)
    lc = parse_launch(["vllm", "serve", "m", "--config", "x.yaml"])
    assert "--config" in lc.unknown_flags
    assert any("PyYAML is not installed" in n for n in lc.notes)


def test_missing_config_file_is_a_note() -> None:
    pytest.importorskip("yaml")
    lc = parse_launch([*SGL, "--config", "/nonexistent/c.yaml"])
    assert any("cannot read" in n for n in lc.notes)


def test_broken_launch_text_is_a_clear_input_error() -> None:
    with pytest.raises(InputError, match="line 1: No closing quotation") as info:
        parse_launch_text((LAUNCH / "broken-quote.sh").read_text())
    assert info.value.exit_code == 3
    with pytest.raises(InputError, match="no command found"):
        parse_launch_text("# only a comment\nexport A=1\n")


_TOKENS = st.sampled_from(
    [
        "--tp",
        "--tp-size",
        "-tp",
        "2",
        "abc",
        "--mem-fraction-static",
        "0.8",
        "--disable-cuda-graph",
        "--compilation-config",
        "{",
        '{"a":1}',
        "--speculative-config",
        "-O3",
        "-O.x=1",
        "--no-x",
        "--config",
        "=",
        "--attention-backend=",
        "--",
        "-",
        "$X",
        "--enable-hierarchical-cache=maybe",
        "--moe-backend",
        "é",
        "--model",
        "\x00",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([SGL, VLLM]), st.lists(_TOKENS, max_size=8))
def test_garbage_never_escapes_as_a_traceback(entry: list[str], tokens: list[str]) -> None:
    try:
        lc = parse_launch([*entry, *tokens])
    except CompatError as exc:
        assert str(exc)
    else:
        assert lc.framework in ("sglang", "vllm")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_garbage_text_never_escapes_as_a_traceback(text: str) -> None:
    try:
        parse_launch_text(text)
    except CompatError as exc:
        assert str(exc)


def test_list_flags_take_all_their_values() -> None:
    lc = sgl("--cuda-graph-bs", "1", "2", "4", "8", "--tp", "2")
    assert lc.values["cuda_graph_bs"] == [1, 2, 4, 8] and lc.unknown_flags == ()
    assert lc.settings["tp_size"] == 2
    # An unknown flag in sglang (no positional arguments) takes every value that follows.
    odd = sgl("--future-list", "1", "2", "4", "--tp", "2")
    assert odd.unknown_flags == ("--future-list",) and odd.notes == ()
    assert odd.settings["tp_size"] == 2


def test_a_dest_given_on_the_command_line_names_its_flag_not_default() -> None:
    """Evidence for a clause on the release's own dest says where the value came from."""
    lc = vllm("m", "--enforce-eager", "--max-num-seqs", "8", version="0.19.0")
    assert lc.get("enforce_eager") is True
    assert lc.origin("enforce_eager") == "--enforce-eager"
    assert lc.origin("max_num_seqs") == "--max-num-seqs"
    assert lc.origin("disable_log_stats") == "default"
