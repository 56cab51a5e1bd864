"""Normalized launch settings (SETTINGS) from a release's argparse values and defaults."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Optional, Union

from packaging.version import Version

from compat.launch.argv import Parsed, parse_json_arg
from compat.launch.data import Basis
from compat.launch.rules import applies, rules_for
from compat.models import Unknown

# setting -> framework -> the argparse dests that carry it, in the order they are looked for
# (a release has one of them: sglang 0.4.x stored --tp-size under tensor_parallel_size).
# Every dest here must exist in some release of the launch data (tests/test_launch_data.py).
DESTS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "model": {"sglang": ("model_path",), "vllm": ("model",)},
    "tp_size": {"sglang": ("tp_size", "tensor_parallel_size"), "vllm": ("tensor_parallel_size",)},
    "dp_size": {"sglang": ("dp_size", "data_parallel_size"), "vllm": ("data_parallel_size",)},
    "pp_size": {
        "sglang": ("pp_size", "pipeline_parallel_size"),
        "vllm": ("pipeline_parallel_size",),
    },
    "ep_size": {"sglang": ("ep_size", "expert_parallel_size")},
    "cuda_graph_max_bs": {
        "sglang": ("cuda_graph_max_bs", "cuda_graph_max_bs_decode"),
        "vllm": ("max_cudagraph_capture_size",),
    },
    "attention_backend": {"sglang": ("attention_backend",), "vllm": ("attention_backend",)},
    "prefill_attention_backend": {"sglang": ("prefill_attention_backend",)},
    "decode_attention_backend": {"sglang": ("decode_attention_backend",)},
    "moe_backend": {"sglang": ("moe_runner_backend",), "vllm": ("moe_backend",)},
    "sampling_backend": {"sglang": ("sampling_backend",)},
    "speculative_algorithm": {"sglang": ("speculative_algorithm",)},
    "speculative_draft_attention_backend": {"sglang": ("speculative_draft_attention_backend",)},
    "hicache": {"sglang": ("enable_hierarchical_cache",)},
    "mem_fraction_static": {"sglang": ("mem_fraction_static",)},
    "gpu_memory_utilization": {"vllm": ("gpu_memory_utilization",)},
    "max_running_requests": {"sglang": ("max_running_requests",), "vllm": ("max_num_seqs",)},
    "max_model_len": {"sglang": ("context_length",), "vllm": ("max_model_len",)},
    "kv_cache_dtype": {"sglang": ("kv_cache_dtype",), "vllm": ("kv_cache_dtype",)},
    "dtype": {"sglang": ("dtype",), "vllm": ("dtype",)},
    "quantization": {"sglang": ("quantization",), "vllm": ("quantization",)},
    "enable_dp_attention": {"sglang": ("enable_dp_attention",)},
    "enable_memory_saver": {"sglang": ("enable_memory_saver",), "vllm": ("enable_sleep_mode",)},
    "chunked_prefill_size": {
        "sglang": ("chunked_prefill_size",),
        "vllm": ("max_num_batched_tokens",),
    },
    "trust_remote_code": {"sglang": ("trust_remote_code",), "vllm": ("trust_remote_code",)},
    "enable_expert_parallel": {"vllm": ("enable_expert_parallel",)},
    "distributed_executor_backend": {"vllm": ("distributed_executor_backend",)},
    "enable_p2p_check": {"sglang": ("enable_p2p_check",)},
    "nccl_nvls": {"sglang": ("enable_nccl_nvls",)},
    "enable_torch_compile": {"sglang": ("enable_torch_compile",)},
    "custom_all_reduce": {
        "sglang": ("disable_custom_all_reduce",),
        "vllm": ("disable_custom_all_reduce",),
    },
    "cuda_graph": {
        "sglang": ("disable_cuda_graph", "disable_decode_cuda_graph", "cuda_graph_backend_decode"),
        "vllm": ("enforce_eager",),
    },
    "piecewise_cuda_graph": {
        "sglang": (
            "enable_piecewise_cuda_graph",
            "disable_piecewise_cuda_graph",
            "enforce_piecewise_cuda_graph",
            "disable_prefill_cuda_graph",
            "cuda_graph_backend_prefill",
        )
    },
    "compilation_config": {"vllm": ("compilation_config",)},
    "kv_transfer_config": {"vllm": ("kv_transfer_config",)},
    "moe_a2a_backend": {"sglang": ("moe_a2a_backend",)},
    "nnodes": {"sglang": ("nnodes",), "vllm": ("nnodes",)},
    "revision": {"sglang": ("revision",), "vllm": ("revision",)},
    "download_dir": {"sglang": ("download_dir",), "vllm": ("download_dir",)},
}

# What compat writes where a release declares no value (None) or decides it at startup: the
# backends pick themselves ("auto"), sizes are 1, features absent from a release are off.
_PLACEHOLDER: Mapping[str, object] = {
    "tp_size": 1,
    "dp_size": 1,
    "pp_size": 1,
    "ep_size": 1,
    "attention_backend": "auto",
    "prefill_attention_backend": "auto",
    "decode_attention_backend": "auto",
    "moe_backend": "auto",
    "sampling_backend": "auto",
    "kv_cache_dtype": "auto",
    "dtype": "auto",
    "hicache": False,
    "enable_dp_attention": False,
    "enable_memory_saver": False,
    "trust_remote_code": False,
    "enable_expert_parallel": False,
    "enable_p2p_check": False,
    "nccl_nvls": False,
    "enable_torch_compile": False,
    "moe_a2a_backend": "none",
}
_LOWER = frozenset(
    {
        "moe_a2a_backend",
        "attention_backend",
        "prefill_attention_backend",
        "decode_attention_backend",
        "moe_backend",
        "sampling_backend",
        "kv_cache_dtype",
        "quantization",
        "distributed_executor_backend",
        "speculative_draft_attention_backend",
    }
)


class Normalizer:
    """SETTINGS for one parse: given values first, then the release's defaults, then rules."""

    def __init__(
        self,
        framework: str,
        basis: Optional[Basis],
        parsed: Parsed,
        version: Optional[Version],
        env: Mapping[str, str],
        gpus: Optional[tuple[tuple[int, int], ...]] = None,
    ) -> None:
        self.framework = framework
        self.basis = basis
        self.parsed = parsed
        self.version = version
        self.env = env
        # The compute capabilities of the GPUs the server sees; None when they are not known.
        self.gpus = gpus
        self.values = parsed.values
        self.origins: dict[str, str] = {}
        self.given: set[str] = set()  # settings set on the command line (or a config file)
        self.derived: dict[str, str] = {}  # setting -> why (a value that follows from another)
        self.settings: dict[str, object] = {}

    # lookups ----------------------------------------------------------------------------------

    def _given(self, setting: str) -> tuple[bool, object, str]:
        for dest in DESTS.get(setting, {}).get(self.framework, ()):
            if dest in self.values:
                return True, self.values[dest], self.parsed.origins.get(dest, dest)
        return False, None, ""

    def _default(self, setting: str) -> object:
        dests = DESTS.get(setting, {}).get(self.framework, ())
        basis = self.basis
        if basis is None or not dests:
            return _PLACEHOLDER.get(setting)
        for dest in dests:
            if basis.has_dest(dest):
                if basis.placeholder(dest):
                    return _PLACEHOLDER.get(setting)
                value = basis.default(dest)
                if isinstance(value, Unknown) and basis.index is None:
                    return self._newest_default(setting, dest, value)
                if value is None or (
                    isinstance(value, Unknown) and "decided at startup" in value.reason
                ):
                    return _PLACEHOLDER.get(setting)
                return value
        return _PLACEHOLDER.get(setting)

    def _newest_default(self, setting: str, dest: str, unknown: Unknown) -> object:
        """Version unknown and the default differs by release: the newest release's, said so."""
        basis = self.basis
        assert basis is not None
        states = [s for s in basis.by_dest(dest) if not s.deprecated]
        newest = max(states, key=lambda s: s.last)
        if newest.computed or newest.default_unknown or newest.default is None:
            return unknown
        first, last = basis.version_at(newest.first), basis.version_at(newest.last)
        self.origins[setting] = (
            f"default of {self.framework} {first}..{last}, the newest releases "
            f"(version unknown; {unknown.reason.split('(', 1)[-1].rstrip(')')})"
        )
        return newest.default

    def simple(self, setting: str) -> object:
        given, value, origin = self._given(setting)
        if given:
            self._mark(setting, origin)
            return _normal(setting, value)
        default = self._default(setting)
        return _normal(setting, default)

    def _mark(self, setting: str, origin: str) -> None:
        self.origins[setting] = origin
        self.given.add(setting)

    def explicit(self, setting: str) -> bool:
        return self._given(setting)[0]

    def rule(self, setting: str, current: Mapping[str, object]) -> Optional[tuple[object, str]]:
        """The first rule for the release that applies (its value, or Unknown when the release
        decides from what is not modeled, or from GPUs that are not known); None when none does."""
        if self.version is None:
            return None
        for r in rules_for(self.framework, setting, self.version):
            if r.formula or not applies(r, current):
                continue
            why = f"{r.id}: {r.where}"
            if r.gpu_cc:
                if not self.gpus:
                    return Unknown(
                        f"{self.framework} {self.version} decides it by the GPU, which is not "
                        "known here (give it with --gpu)"
                    ), why
                if not r.fits_gpus(self.gpus):
                    continue
            if r.unknown:
                return Unknown(r.unknown), why
            return r.value, why
        return None

    # the whole set ----------------------------------------------------------------------------

    def run(self) -> dict[str, object]:
        if self.framework == "sglang":
            self._sglang()
        else:
            self._vllm()
        return self.settings

    def _sglang(self) -> None:
        s = self.settings
        for k in ("model", "tp_size", "dp_size", "pp_size", "ep_size"):
            s[k] = self.simple(k)
        backend = self.simple("attention_backend")
        s["attention_backend"] = backend
        # prefill/decode backends "have priority over --attention-backend" (server_args help).
        for k in ("prefill_attention_backend", "decode_attention_backend"):
            s[k] = self.simple(k) if self.explicit(k) else backend
        s["cuda_graph"] = self._sglang_cuda_graph(s)
        s["piecewise_cuda_graph"] = self._sglang_piecewise()
        s["cudagraph_mode"] = None
        s["cuda_graph_max_bs"] = self.simple("cuda_graph_max_bs")
        s["moe_backend"] = self.simple("moe_backend")
        # sglang resolves "auto" per model and quantization at load time; compat does not model it.
        s["moe_backend_effective"] = s["moe_backend"]
        s["sampling_backend"] = self.simple("sampling_backend")
        spec = self.simple("speculative_algorithm")
        if isinstance(spec, str):
            spec = spec.upper()
            if spec == "NEXTN":  # server_args: "NEXTN shares the same implementation of EAGLE"
                spec = "EAGLE"
        s["speculative_algorithm"] = spec
        draft = self.simple("speculative_draft_attention_backend")
        if spec is not None and draft is None:
            draft = "auto"
        s["speculative_draft_attention_backend"] = draft
        s["hicache"] = self.simple("hicache")
        s["custom_all_reduce"] = _negate(self.simple("custom_all_reduce"))
        if self.explicit("custom_all_reduce"):
            self._mark("custom_all_reduce", self._given("custom_all_reduce")[2])
        s["mem_fraction_static"] = self._value_or_none("mem_fraction_static")
        s["gpu_memory_utilization"] = None
        for k in ("max_running_requests", "max_model_len", "chunked_prefill_size", "quantization"):
            s[k] = self._value_or_none(k)
        for k in (
            "kv_cache_dtype",
            "dtype",
            "enable_dp_attention",
            "enable_memory_saver",
            "trust_remote_code",
            "enable_p2p_check",
            "nccl_nvls",
            "enable_torch_compile",
        ):
            s[k] = self.simple(k)
        s["compilation_config"] = None
        ep = s["ep_size"]
        s["enable_expert_parallel"] = isinstance(ep, int) and ep > 1
        s["kv_transfer_config"] = None
        s["moe_a2a_backend"] = self.simple("moe_a2a_backend")
        s["nnodes"] = self.simple("nnodes")
        s["revision"] = self._value_or_none("revision")
        s["download_dir"] = self._value_or_none("download_dir")
        use_ray = self.values.get("use_ray")
        s["distributed_executor_backend"] = "ray" if use_ray is True else None
        if use_ray is True:
            self._mark(
                "distributed_executor_backend", self.parsed.origins.get("use_ray", "--use-ray")
            )

    def _value_or_none(self, setting: str) -> object:
        value = self.simple(setting)
        return (
            None if isinstance(value, Unknown) and "decided at startup" in value.reason else value
        )

    def _sglang_cuda_graph(self, s: Mapping[str, object]) -> object:
        v = self.values
        for dest, off in (("disable_cuda_graph", True), ("disable_decode_cuda_graph", True)):
            if dest in v and v[dest] is off:
                self._mark("cuda_graph", self.parsed.origins.get(dest, dest))
                return False
        if "cuda_graph_backend_decode" in v:
            self._mark("cuda_graph", self.parsed.origins.get("cuda_graph_backend_decode", ""))
            return str(v["cuda_graph_backend_decode"]).lower() != "disabled"
        if any(dest in v for dest in ("disable_cuda_graph", "disable_decode_cuda_graph")):
            dest = next(d for d in ("disable_cuda_graph", "disable_decode_cuda_graph") if d in v)
            self._mark("cuda_graph", self.parsed.origins.get(dest, dest))
            return True
        hit = self.rule("cuda_graph", s)
        if hit is not None:
            self.derived["cuda_graph"] = (
                f"implied by --attention-backend {s.get('attention_backend')} ({hit[1]})"
            )
            return hit[0]
        return True

    def _sglang_piecewise(self) -> object:
        v = self.values
        o = self.parsed.origins
        if "cuda_graph_backend_prefill" in v:
            self._mark("piecewise_cuda_graph", o.get("cuda_graph_backend_prefill", ""))
            return str(v["cuda_graph_backend_prefill"]).lower() == "tc_piecewise"
        for dest, when_true in (
            ("disable_piecewise_cuda_graph", False),
            ("disable_prefill_cuda_graph", False),
            ("enable_piecewise_cuda_graph", True),
            ("enforce_piecewise_cuda_graph", True),
        ):
            if dest in v and v[dest] is True:
                self._mark("piecewise_cuda_graph", o.get(dest, dest))
                return when_true
        hit = self.rule("piecewise_cuda_graph", self.settings)
        if hit is not None:
            self.origins["piecewise_cuda_graph"] = f"default for sglang {self.version} ({hit[1]})"
            return hit[0]
        basis = self.basis
        if basis is None or basis.index is None:
            return Unknown(
                "sglang version unknown: piecewise CUDA graphs are on by default from "
                "0.5.10 (--disable-piecewise-cuda-graph), opt-in before "
                "(--enable-piecewise-cuda-graph)"
            )
        disable = basis.state_for_dest("disable_piecewise_cuda_graph")
        enable = basis.state_for_dest("enable_piecewise_cuda_graph")
        where = f"default for {basis.release}"
        if disable is not None and not disable.deprecated:
            self.origins["piecewise_cuda_graph"] = (
                f"{where} (it has --disable-piecewise-cuda-graph)"
            )
            return True
        if enable is not None and not enable.deprecated:
            self.origins["piecewise_cuda_graph"] = (
                f"{where} (it has --enable-piecewise-cuda-graph, off)"
            )
            return enable.default is True
        self.origins["piecewise_cuda_graph"] = f"{where} (no piecewise CUDA graphs in that release)"
        return False

    # vLLM -------------------------------------------------------------------------------------

    def _vllm(self) -> None:
        s = self.settings
        v = self.values
        for k in ("model", "tp_size", "dp_size", "pp_size"):
            s[k] = self.simple(k)
        ep_on = self.simple("enable_expert_parallel")
        s["enable_expert_parallel"] = ep_on
        tp, dp = s["tp_size"], s["dp_size"]
        # With --enable-expert-parallel vLLM shards experts over TP x DP ranks.
        s["ep_size"] = (
            (
                tp * dp
                if isinstance(tp, int) and isinstance(dp, int)
                else Unknown("tp/dp size unknown")
            )
            if ep_on is True
            else 1
        )
        comp = v.get("compilation_config")
        if comp is not None and not isinstance(comp, dict):
            comp = parse_json_arg("--compilation-config", str(comp))
        s["compilation_config"] = comp
        if comp is not None:
            self._mark("compilation_config", self.parsed.origins.get("compilation_config", ""))
        eager = v.get("enforce_eager") is True
        mode: object
        level = v.get("optimization_level")
        if isinstance(comp, dict) and "cudagraph_mode" in comp:
            mode = str(comp["cudagraph_mode"]).upper()
            self.derived["cudagraph_mode"] = self.parsed.origins.get(
                "compilation_config", "--compilation-config"
            )
        elif (
            isinstance(comp, dict) and comp.get("level") == 0 and set(comp) == {"level"}
        ) or level == "0":
            mode = Unknown(
                "-O0: vLLM's CUDA graph mode at optimization level 0 is not tracked by compat"
            )
        else:
            mode = self._vllm_default_mode()
        if eager:
            mode = "NONE"
            self.derived["cudagraph_mode"] = self.parsed.origins.get(
                "enforce_eager", "--enforce-eager"
            )
        s["cudagraph_mode"] = mode
        if isinstance(mode, Unknown):
            s["cuda_graph"] = not eager
            s["piecewise_cuda_graph"] = mode
        else:
            s["cuda_graph"] = mode != "NONE"
            if eager:
                self._mark(
                    "cuda_graph", self.parsed.origins.get("enforce_eager", "--enforce-eager")
                )
            elif "enforce_eager" in v:
                self._mark("cuda_graph", self.parsed.origins.get("enforce_eager", ""))
            elif mode == "NONE":
                self.derived["cuda_graph"] = self.parsed.origins.get(
                    "compilation_config", "--compilation-config"
                )
            s["piecewise_cuda_graph"] = mode in ("PIECEWISE", "FULL_AND_PIECEWISE")
            if "cudagraph_mode" in self.derived:
                self.derived["piecewise_cuda_graph"] = self.derived["cudagraph_mode"]
            elif self.version is not None:
                self.origins["piecewise_cuda_graph"] = f"default for vllm {self.version} ({mode})"
        if isinstance(comp, dict) and isinstance(comp.get("max_capture_size"), int):
            s["cuda_graph_max_bs"] = comp["max_capture_size"]
        elif isinstance(comp, dict) and isinstance(comp.get("max_cudagraph_capture_size"), int):
            s["cuda_graph_max_bs"] = comp["max_cudagraph_capture_size"]
        else:
            s["cuda_graph_max_bs"] = self._value_or_none("cuda_graph_max_bs")
        backend = self.simple("attention_backend")
        if (
            not self.explicit("attention_backend")
            and self.env.get("VLLM_ATTENTION_BACKEND")
            and self._reads_env("VLLM_ATTENTION_BACKEND")
        ):
            backend = self.env["VLLM_ATTENTION_BACKEND"].lower()
            self.derived["attention_backend"] = "VLLM_ATTENTION_BACKEND in the launch environment"
        s["attention_backend"] = backend if backend is not None else "auto"
        s["prefill_attention_backend"] = s["attention_backend"]
        s["decode_attention_backend"] = s["attention_backend"]
        s["moe_backend"] = self.simple("moe_backend")
        s["quantization"] = self._value_or_none("quantization")
        if s["moe_backend"] != "auto":
            s["moe_backend_effective"] = s["moe_backend"]
            if self.explicit("moe_backend"):
                self.derived["moe_backend_effective"] = self._given("moe_backend")[2]
        elif s["quantization"] is not None:
            s["moe_backend_effective"] = Unknown(
                "the MoE backend vLLM picks for quantized models depends on the method; not modeled"
            )
        else:
            s["moe_backend_effective"] = self._vllm_moe_default(s)
        s["sampling_backend"] = "auto"
        s["speculative_algorithm"] = self._vllm_speculative()
        s["speculative_draft_attention_backend"] = None
        s["hicache"] = False
        s["custom_all_reduce"] = _negate(self.simple("custom_all_reduce"))
        if self.explicit("custom_all_reduce"):
            self._mark("custom_all_reduce", self._given("custom_all_reduce")[2])
        s["mem_fraction_static"] = None
        s["gpu_memory_utilization"] = self.simple("gpu_memory_utilization")
        for k in ("max_running_requests", "max_model_len", "chunked_prefill_size"):
            s[k] = self._value_or_none(k)
        for k in ("kv_cache_dtype", "dtype", "enable_memory_saver", "trust_remote_code"):
            s[k] = self.simple(k)
        s["enable_dp_attention"] = False
        backend_exec = self.simple("distributed_executor_backend")
        s["distributed_executor_backend"] = backend_exec if backend_exec is not None else "auto"
        s["enable_p2p_check"] = None
        # vLLM leaves NVLS to NCCL (on where NVSwitch multicast is available) unless the env says no.
        s["nccl_nvls"] = "auto"
        s["enable_torch_compile"] = None
        # The JSON as given: advisories test it with `contains` (e.g. a connector's name).
        kv = self._given("kv_transfer_config")
        if kv[0]:
            self._mark("kv_transfer_config", kv[2])
        s["kv_transfer_config"] = (
            (json.dumps(kv[1], sort_keys=True) if isinstance(kv[1], dict) else kv[1])
            if kv[0]
            else None
        )
        s["moe_a2a_backend"] = None
        # Multi-node vLLM under Ray does not pass --nnodes, so absent means "not known", not 1.
        nn = self._given("nnodes")
        if nn[0]:
            self._mark("nnodes", nn[2])
        s["nnodes"] = _normal("nnodes", nn[1]) if nn[0] else None
        s["revision"] = self._value_or_none("revision")
        s["download_dir"] = self._value_or_none("download_dir")

    def _reads_env(self, name: str) -> bool:
        basis = self.basis
        if basis is None or basis.view is None:
            return True
        if not basis.view.info.env_registry:
            return True
        return name in basis.view.env

    def _vllm_default_mode(self) -> object:
        hit = self.rule("cudagraph_mode", self.settings)
        if hit is None:
            return vllm_default_cudagraph_mode(self.version)
        self.origins["cudagraph_mode"] = f"default for vllm {self.version} ({hit[1]})"
        return hit[0]

    def _vllm_moe_default(self, s: Mapping[str, object]) -> object:
        hit = self.rule("moe_backend_effective", s)
        if hit is None:
            return vllm_default_unquantized_moe_backend(self.version)
        self.origins["moe_backend_effective"] = (
            f"what --moe-backend auto picks for unquantized MoE in vllm {self.version} ({hit[1]})"
        )
        return hit[0]

    def _vllm_speculative(self) -> object:
        v = self.values
        cfg = v.get("speculative_config")
        if cfg is not None and not isinstance(cfg, dict):
            cfg = parse_json_arg("--speculative-config", str(cfg))
        if isinstance(cfg, dict):
            method = cfg.get("method")
            if method is None and cfg.get("model"):
                method = "draft_model"
            self.derived["speculative_algorithm"] = self.parsed.origins.get(
                "speculative_config", "--speculative-config"
            )
            return str(method).upper() if method is not None else "DRAFT_MODEL"
        if v.get("speculative_model"):
            self.derived["speculative_algorithm"] = self.parsed.origins.get(
                "speculative_model", "--speculative-model"
            )
            return "DRAFT_MODEL"
        return None


_NUMERIC = frozenset(
    {
        "nnodes",
        "tp_size",
        "dp_size",
        "pp_size",
        "ep_size",
        "cuda_graph_max_bs",
        "max_running_requests",
        "max_model_len",
        "chunked_prefill_size",
    }
)
_FRACTIONS = frozenset({"mem_fraction_static", "gpu_memory_utilization"})
# vLLM's human_readable_int: decimal k/m/g, binary K/M/G ("32k" = 32000, "32K" = 32768).
_HUMAN = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([kmgKMG])$")
_SCALE = {"k": 10**3, "m": 10**6, "g": 10**9, "K": 2**10, "M": 2**20, "G": 2**30}


def _number(setting: str, text: str) -> object:
    if text.startswith("$"):
        return Unknown(f"{setting} is set from an unexpanded shell variable ({text})")
    try:
        return float(text) if setting in _FRACTIONS else int(text)
    except ValueError:
        pass
    match = _HUMAN.match(text)
    if match and setting not in _FRACTIONS:
        return int(float(match.group(1)) * _SCALE[match.group(2)])
    if text.lower() == "auto":
        return Unknown(f"{setting} auto: chosen at startup to fit the GPU memory")
    return text


def _normal(setting: str, value: object) -> object:
    if isinstance(value, str) and (setting in _NUMERIC or setting in _FRACTIONS):
        return _number(setting, value)
    if isinstance(value, str):
        if setting in _LOWER:
            return value.lower().replace("-", "_")
        if setting == "dtype":
            return value.lower()
    return value


def _negate(value: object) -> object:
    return (not value) if isinstance(value, bool) else (True if value is None else value)


def vllm_default_cudagraph_mode(version: Optional[Version]) -> Union[str, Unknown]:
    """vLLM's default CUDAGraphMode for `version`, from the curated rules (launch_rules.toml)."""
    if version is None:
        return Unknown(
            "vLLM version unknown: cudagraph_mode defaults to FULL_AND_PIECEWISE from "
            "0.11.0, PIECEWISE before"
        )
    for r in rules_for("vllm", "cudagraph_mode", version):
        return str(r.value)
    return Unknown(f"no curated rule for vLLM {version}'s default cudagraph_mode")


def vllm_default_unquantized_moe_backend(version: Optional[Version]) -> Union[str, Unknown]:
    """What `--moe-backend auto` picks for unquantized (BF16/FP16) MoE on NVIDIA GPUs (rules)."""
    if version is None:
        return Unknown(
            "vLLM version unknown: the default unquantized MoE backend changed at "
            "v0.18.1rc1.dev266 (#36286)"
        )
    for r in rules_for("vllm", "moe_backend_effective", version):
        if r.gpu_cc:
            return Unknown(f"vLLM {version} picks the unquantized MoE backend by the GPU")
        if applies(r, {"moe_backend": "auto"}):
            return Unknown(r.unknown) if r.unknown else str(r.value)
    return Unknown(f"no curated rule for vLLM {version}'s unquantized MoE backend")
