"""The launch parser over the generated per-release flag data: every flag, typos, removed flags,
choices, ignored env vars, old releases, unknown versions, dests with their release defaults."""

from __future__ import annotations

import json
import time
from typing import Optional

import pytest
from packaging.version import Version

from compat.launch import LaunchConfig, parse_launch
from compat.launch.data import launch_data
from compat.launch.settings import DESTS
from compat.matrix.launchdata import FlagState
from compat.models import Severity, Unknown

SGL = ["python", "-m", "sglang.launch_server", "--model-path", "m"]
VLLM = ["vllm", "serve", "m"]


def sgl(*args: str, version: Optional[str] = "0.5.12") -> LaunchConfig:
    return parse_launch([*SGL, *args], Version(version) if version else None)


def vllm(
    *args: str, version: Optional[str] = "0.19.0", env: Optional[dict[str, str]] = None
) -> LaunchConfig:
    return parse_launch([*VLLM, *args], Version(version) if version else None, env=env)


def kinds(lc: LaunchConfig) -> list[tuple[str, str]]:
    return [(p.kind, p.subject) for p in lc.problems]


def _value_for(state: FlagState) -> list[str]:
    """A value the release accepts for `state` (its first choice, else one of its type)."""
    if not state.takes_value:
        return []
    if state.choices:
        value = next((c for c in state.choices if c != "None"), state.choices[0])
    elif state.type == "int":
        value = "1"
    elif state.type == "float":
        value = "0.5"
    elif state.type == "json" or state.dest.endswith("_config"):
        value = "{}"
    else:
        value = "x"
    count = int(state.nargs) if state.nargs.isdigit() else 1
    return [value] * count


@pytest.mark.parametrize(
    "framework,version",
    [
        ("sglang", "0.5.23"),
        ("sglang", "0.5.12"),
        ("sglang", "0.4.6.post1"),
        ("sglang", "0.1.3"),
        ("vllm", "0.33.0"),
        ("vllm", "0.19.0"),
        ("vllm", "0.10.2"),
        ("vllm", "0.1.0"),
    ],
)
def test_a_release_accepts_every_flag_of_its_own(framework: str, version: str) -> None:
    data = launch_data(framework)
    assert data is not None
    index = data.index_of(Version(version))
    assert index is not None
    view = data.view(index)
    entry = SGL[:3] if framework == "sglang" else VLLM[:2]
    seen = 0
    for name in view.options:
        state = view.options[name]
        if state.action in ("help", "version") or name == "--config":
            continue
        lc = parse_launch([*entry, name, *_value_for(state)], Version(version))
        bad = [p for p in lc.problems if p.kind not in ("deprecated-flag",)]
        assert bad == [], (name, bad)
        assert lc.unknown_flags == (), name
        seen += 1
    assert seen == len([n for n in view.options if n != "--config"]) - sum(
        1 for n in view.options if view.options[n].action in ("help", "version")
    )
    assert seen > 10


@pytest.mark.parametrize(
    "call,typo,right",
    [
        (
            lambda: vllm("--tensor-paralel-size", "2"),
            "--tensor-paralel-size",
            "--tensor-parallel-size",
        ),
        (
            lambda: sgl("--mem-fraction-statc", "0.8"),
            "--mem-fraction-statc",
            "--mem-fraction-static",
        ),
        (lambda: sgl("--attention-backnd", "triton"), "--attention-backnd", "--attention-backend"),
    ],
)
def test_a_mistyped_flag_is_an_error_with_a_suggestion(call, typo: str, right: str) -> None:  # type: ignore[no-untyped-def]
    lc = call()
    (p,) = lc.problems
    assert (p.kind, p.severity, p.subject) == ("unknown-flag", Severity.ERROR, typo)
    assert f"did you mean {right}?" in p.fix
    assert lc.unknown_flags == (typo,)


def test_a_removed_flag_names_the_release_that_changed_it() -> None:
    lc = vllm("--use-v2-block-manager")
    (p,) = lc.problems
    assert p.kind == "removed-flag" and p.severity is Severity.ERROR
    assert "removed in vllm 0.10.0 (last in 0.9.2)" in p.message
    # A renamed one says what replaced it: sglang 0.5.23 has --cuda-graph-max-bs-decode.
    renamed = sgl("--cuda-graph-max-bs", "8", version="0.5.23")
    (r,) = [p for p in renamed.problems if p.kind == "removed-flag"]
    assert "removed in sglang 0.5.20 (last in 0.5.19)" in r.message
    assert "use --cuda-graph-max-bs-decode instead" in r.fix
    # ... and as typed it is now an abbreviation of two flags, which argparse refuses.
    assert ("ambiguous-flag", "--cuda-graph-max-bs") in kinds(renamed)


def test_a_flag_from_a_later_release() -> None:
    (p,) = sgl("--enable-piecewise-cuda-graph", version="0.5.2").problems
    assert p.kind == "removed-flag" and "added in sglang 0.5.3.post2" in p.message
    assert "or upgrade sglang to >=0.5.3.post2" in p.fix


def test_a_value_outside_the_releases_choices() -> None:
    lc = sgl("--attention-backend", "flashinfr")
    (p,) = lc.problems
    assert p.kind == "bad-choice" and p.severity is Severity.ERROR
    assert (
        "not a choice of sglang 0.5.12" in p.message and "--attention-backend flashinfer" in p.fix
    )
    # Choices are compared as argparse does: exactly (sglang's lists are lower case).
    assert kinds(sgl("--attention-backend", "FlashInfer")) == [
        ("bad-choice", "--attention-backend FlashInfer")
    ]
    assert sgl("--attention-backend", "flashinfer").problems == ()
    # A choice of one release is not one of an older release: fa3 came in 0.4.x.
    assert kinds(sgl("--attention-backend", "fa3", version="0.3.6")) == [
        ("bad-choice", "--attention-backend fa3")
    ]


def test_an_env_var_the_release_no_longer_reads_is_ignored() -> None:
    lc = vllm(env={"VLLM_ATTENTION_BACKEND": "FLASHINFER"})
    (p,) = lc.problems
    assert p.kind == "env-ignored" and p.severity is Severity.WARNING
    assert "no longer reads it (last read by vllm 0.14.1)" in p.message
    assert p.fix == ("use --attention-backend instead",)
    assert lc.settings["attention_backend"] == "auto"  # not taken from the ignored variable
    old = vllm(env={"VLLM_ATTENTION_BACKEND": "FLASHINFER"}, version="0.10.2")
    assert old.problems == () and old.settings["attention_backend"] == "flashinfer"
    # vLLM lists every variable it reads in envs.py: an unknown one is ignored too.
    (typo,) = vllm(env={"VLLM_USE_V11": "1"}, version="0.10.2").problems
    assert typo.kind == "env-ignored" and "did you mean VLLM_USE_V1?" in typo.fix


def test_old_releases_have_their_own_flags() -> None:
    first = sgl("--tp-size", "2", "--mem-fraction-static", "0.8", version="0.1.3")
    assert first.problems == () and first.settings["tp_size"] == 2
    assert kinds(sgl("--attention-backend", "triton", version="0.1.3")) == [
        ("removed-flag", "--attention-backend")
    ]
    v0 = vllm("--tensor-parallel-size", "2", "--swap-space", "4", version="0.1.0")
    assert v0.problems == () and v0.settings["tp_size"] == 2
    assert (
        v0.basis is not None and v0.basis.data.release(v0.basis.index or 0).source.method == "sdist"
    )


def test_unknown_version_judges_against_every_release() -> None:
    never = sgl("--tensor-paralel-size", "2", version=None)
    (p,) = never.problems
    assert p.kind == "unknown-flag" and "any sglang release" in p.message
    (some,) = sgl("--disable-disk-cache", "--tp-size", "2", version=None).problems
    assert (some.kind, some.severity, some.subject) == (
        "could-not-tell",
        Severity.INFO,
        "--disable-disk-cache",
    )
    assert "--disable-disk-cache (0.1.12..0.4.1.post1)" in some.message  # --tp-size: every release
    # A default that differs by release: the newest releases', and the origin says so.
    unknown = vllm(version=None)
    assert unknown.settings["gpu_memory_utilization"] == 0.92
    assert "version unknown; 0.9 in 0.0.1..0.19.1" in unknown.origin("gpu_memory_utilization")
    assert isinstance(unknown.get("gpu_memory_utilization"), float)
    assert isinstance(
        unknown.basis.default("gpu_memory_utilization") if unknown.basis else None, Unknown
    )
    # A version the data does not hold: judged by the nearest release, removals are "could not tell".
    dev = vllm("--use-v2-block-manager", version="0.18.2rc1.dev54")
    (d,) = dev.problems
    assert d.kind == "could-not-tell" and d.severity is Severity.INFO
    assert any("judged by vllm 0.18.1" in n for n in dev.notes)


def test_abbreviations_and_deprecations_as_argparse_sees_them() -> None:
    assert sgl("--mem-frac", "0.7").settings["mem_fraction_static"] == 0.7
    (amb,) = sgl("--enable", version="0.5.12").problems
    assert amb.kind == "ambiguous-flag" and amb.severity is Severity.ERROR
    (dep,) = sgl("--disable-cuda-graph", version="0.5.23").problems
    assert dep.kind == "deprecated-flag" and dep.severity is Severity.WARNING
    assert "--cuda-graph-backend-{decode,prefill}=disabled" in dep.message
    under = vllm("--max_model_len", "4096")  # FlexibleArgumentParser: underscores are dashes
    assert under.problems == () and under.settings["max_model_len"] == 4096
    assert kinds(vllm("--max_model_len", "4096", version="0.5.0")) == [
        ("unknown-flag", "--max_model_len")
    ]


def test_a_frameworks_own_dest_with_the_release_default() -> None:
    lc = sgl(version="0.5.12")
    assert lc.get("enable_two_batch_overlap") is False
    assert sgl("--enable-two-batch-overlap").get("enable_two_batch_overlap") is True
    assert isinstance(lc.get("no_such_dest"), Unknown)
    assert isinstance(lc.get("chunked_prefill_size"), (int, type(None)))
    computed = lc.basis.default("mem_fraction_static") if lc.basis else None
    assert isinstance(computed, Unknown) and "decided at startup" in computed.reason
    assert vllm(version="0.33.0").settings["gpu_memory_utilization"] == 0.92
    assert vllm(version="0.19.0").settings["gpu_memory_utilization"] == 0.9


def test_every_dest_of_the_settings_table_exists_in_the_data() -> None:
    missing = []
    for setting, per in DESTS.items():
        for fw, dests in per.items():
            data = launch_data(fw)
            assert data is not None
            known = {s.dest for s in data.states}
            missing += [f"{setting}: {fw} {d}" for d in dests if d not in known]
    assert missing == []


def test_parse_time_with_the_data_loaded() -> None:
    argv = [
        *SGL,
        "--tp",
        "8",
        "--attention-backend",
        "fa3",
        "--mem-fraction-static",
        "0.8",
        "--enable-hierarchical-cache",
        "--speculative-algorithm",
        "EAGLE",
    ]
    parse_launch(argv, Version("0.5.12"))  # data loaded once per process
    started = time.perf_counter()
    for _ in range(20):
        parse_launch(argv, Version("0.5.12"))
    per_parse = (time.perf_counter() - started) / 20
    # Generous bound for shared CI machines; scripts/bench_launch.py measures it properly.
    assert per_parse < 0.2, per_parse


def test_json_default_round_trip() -> None:
    data = launch_data("vllm")
    assert data is not None
    state = data.view(len(data) - 1).options["--allowed-origins"]
    assert json.loads(json.dumps(state.default)) == state.default


def test_a_default_is_decided_at_startup_only_when_the_code_fills_it_in() -> None:
    """The extractor reads the release's own code: a None default filled in while unset
    (`if self.X is None: self.X = ...`, `self.X = self.X or ...`) or by any plain assignment is
    decided at startup; one only reshaped once given (`if isinstance(self.X, list): ...`,
    `self.X = f(self.X)`) or left empty (`self.X = []`) stays unset."""
    import ast

    from compat.matrix.launch_extract import _filled_when_unset

    src = """
class ServerArgs:
    def __post_init__(self):
        if self.tokenizer_path is None:
            self.tokenizer_path = self.model_path
        if is_hopper():
            if self.attention_backend is None and self.x:
                self.attention_backend = "fa3"
        if self.enable_double_sparsity:
            self.sampling_backend = "triton"
        self.served_model_name = self.served_model_name or self.model_path
        self.device = "cuda" if self.device is None else self.device
        if not self.chunked_prefill_size:
            self.chunked_prefill_size = 8192
        if isinstance(self.lora_paths, list):
            self.lora_paths = {p: p for p in self.lora_paths}
        elif self.lora_paths is None:
            self.lora_paths = []
        if self.json_model_override_args:
            self.json_model_override_args = json.loads(self.json_model_override_args)
        self.tool_call_parser = normalize(self.tool_call_parser)
"""
    assert _filled_when_unset(ast.parse(src)) == {
        "tokenizer_path",
        "attention_backend",
        "sampling_backend",
        "served_model_name",
        "device",
        "chunked_prefill_size",
    }
