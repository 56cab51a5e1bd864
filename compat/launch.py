"""Server launch commands (sglang, vLLM) parsed into normalized settings with defaults applied."""

from __future__ import annotations

import importlib
import json
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Optional, Union

from packaging.version import Version

from compat.errors import InputError, UsageError
from compat.models import Unknown

# Flag names and defaults below were read from the frameworks' sources:
# - sglang: python/sglang/srt/server_args.py (ServerArgs fields and add_cli_args) at several
#   revisions: 0.4.x (tp-based mem fraction), mid-2025 (PR #7054), late 2025 (PR #10975,
#   `_handle_gpu_memory_settings`), and 2026 main (dataclass-annotated args, cuda_graph_config).
#   https://github.com/sgl-project/sglang/blob/main/python/sglang/srt/server_args.py
# - vLLM: vllm/engine/arg_utils.py (EngineArgs), vllm/config/kernel.py (KernelConfig.moe_backend),
#   vllm/config/compilation.py (cudagraph_mode), and
#   vllm/model_executor/layers/fused_moe/oracle/unquantized.py (MoE backend priority).
#   https://github.com/vllm-project/vllm/tree/main/vllm

Framework = str  # "sglang" | "vllm" | "unknown"
SettingValue = object

#: Settings every LaunchConfig carries (normalized names); advisories may only name these.
SETTINGS: tuple[str, ...] = (
    "model",
    "tp_size",
    "dp_size",
    "pp_size",
    "ep_size",
    "cuda_graph",
    "piecewise_cuda_graph",
    "cudagraph_mode",
    "cuda_graph_max_bs",
    "attention_backend",
    "prefill_attention_backend",
    "decode_attention_backend",
    "moe_backend",
    "moe_backend_effective",
    "sampling_backend",
    "speculative_algorithm",
    "speculative_draft_attention_backend",
    "hicache",
    "custom_all_reduce",
    "mem_fraction_static",
    "gpu_memory_utilization",
    "max_running_requests",
    "max_model_len",
    "kv_cache_dtype",
    "dtype",
    "quantization",
    "enable_dp_attention",
    "enable_memory_saver",
    "chunked_prefill_size",
    "compilation_config",
    "trust_remote_code",
    "enable_expert_parallel",
    "distributed_executor_backend",
    "enable_p2p_check",
    "nccl_nvls",
    "enable_torch_compile",
    "kv_transfer_config",
    "moe_a2a_backend",
    "nnodes",
    "under_ray",
)

# A process runs inside Ray when Ray put one of these into its environment (job drivers get
# RAY_ADDRESS / RAY_JOB_ID / RAY_JOB_SUBMISSION_ID; actors and workers RAY_RAYLET_PID and
# RAY_NODE_ID), or when the launch text wraps the command in `ray job submit ... --`.
RAY_MARKERS: frozenset[str] = frozenset(
    {"RAY_ADDRESS", "RAY_JOB_ID", "RAY_JOB_SUBMISSION_ID", "RAY_RAYLET_PID", "RAY_NODE_ID"}
)

# sglang: piecewise CUDA graph became the default in v0.5.10 ("Piecewise CUDA Graph Enabled by
# Default ... #16331", release notes of v0.5.10); before that it was opt-in through
# --enable-piecewise-cuda-graph (added by PR #10062, autumn 2025).
SGLANG_PIECEWISE_DEFAULT_FROM = Version("0.5.10")
# vLLM: default cudagraph_mode changed from PIECEWISE to FULL_AND_PIECEWISE in PR #25444
# (merged 2025-09), first released in v0.11.0. Earlier V1 releases captured piecewise graphs.
VLLM_FULL_AND_PIECEWISE_FROM = Version("0.11.0")
# vLLM: PR #36286 ("Migrate Unquantized to Full Oracle Flow") made FlashInfer CUTLASS the
# preferred unquantized MoE backend on CUDA; last good v0.18.1rc1.dev227, first with it
# v0.18.1rc1.dev266 (vllm-project/vllm#39288). PR #44220 (merged 2026-06) moves FlashInfer
# behind Triton again on Hopper (SM90); the first release carrying it is not verified here.
VLLM_FI_CUTLASS_MOE_DEFAULT_FROM = Version("0.18.1rc1.dev266")


@dataclass(frozen=True)
class LaunchConfig:
    """A parsed server launch: normalized settings with the framework's defaults applied."""

    framework: Framework
    argv: tuple[str, ...]
    settings: Mapping[str, SettingValue]
    explicit: frozenset[str]
    unknown_flags: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    model: Optional[str] = None
    # Where each setting's value came from: "default", "--flag", "config.yaml", ...
    origins: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    notes: tuple[str, ...] = ()
    framework_version: Optional[Version] = None

    def get(self, name: str) -> SettingValue:
        return self.settings.get(name)

    def origin(self, name: str) -> str:
        return self.origins.get(name, "default")


# --------------------------------------------------------------------------------------------
# Flag tables
# --------------------------------------------------------------------------------------------

Kind = str  # int | float | str | lower | upper | json | true | false | const | list


@dataclass(frozen=True)
class Flag:
    """One command-line flag: its spellings, the setting it feeds and how its value is read."""

    names: tuple[str, ...]
    setting: str
    kind: Kind
    const: object = None
    # BooleanOptionalAction-style flags also accept --no-<name>.
    negatable: bool = True


def _f(names: Union[str, tuple[str, ...]], setting: str, kind: Kind, const: object = None) -> Flag:
    return Flag(names if isinstance(names, tuple) else (names,), setting, kind, const)


# sglang: ServerArgs.add_cli_args. Aliases: --model/--model-path, --tp-size/--tensor-parallel-size,
# --dp-size/--data-parallel-size, --pp-size/--pipeline-parallel-size, --ep-size/
# --expert-parallel-size. `--tp 2`, `--dp 2` (used in sglang's own docs) and `--mem-fraction` work
# through argparse's prefix matching; compat lists them as explicit aliases instead of guessing
# prefixes (its table is a subset of the real flags, so prefix matching could pick wrongly).
SGLANG_FLAGS: tuple[Flag, ...] = (
    _f(("--model-path", "--model"), "model", "str"),
    _f(("--tp-size", "--tensor-parallel-size", "--tp", "-tp"), "tp_size", "int"),
    _f(("--dp-size", "--data-parallel-size", "--dp", "-dp"), "dp_size", "int"),
    _f(("--pp-size", "--pipeline-parallel-size", "--pp", "-pp"), "pp_size", "int"),
    _f(("--ep-size", "--expert-parallel-size", "--ep"), "ep_size", "int"),
    _f("--disable-cuda-graph", "cuda_graph", "false"),
    # 2026 main: per-phase CUDA graph flags (cuda_graph_config refactor).
    _f("--disable-decode-cuda-graph", "cuda_graph", "false"),
    _f("--cuda-graph-backend-decode", "_cg_backend_decode", "lower"),
    _f("--disable-prefill-cuda-graph", "piecewise_cuda_graph", "false"),
    _f("--cuda-graph-backend-prefill", "_cg_backend_prefill", "lower"),
    _f("--disable-piecewise-cuda-graph", "piecewise_cuda_graph", "false"),
    _f("--enable-piecewise-cuda-graph", "piecewise_cuda_graph", "true"),
    _f("--enforce-piecewise-cuda-graph", "piecewise_cuda_graph", "true"),
    _f(("--cuda-graph-max-bs", "--cuda-graph-max-bs-decode"), "cuda_graph_max_bs", "int"),
    _f("--attention-backend", "attention_backend", "lower"),
    _f("--prefill-attention-backend", "prefill_attention_backend", "lower"),
    _f("--decode-attention-backend", "decode_attention_backend", "lower"),
    _f("--moe-runner-backend", "moe_backend", "lower"),
    _f("--sampling-backend", "sampling_backend", "lower"),
    _f("--speculative-algorithm", "speculative_algorithm", "upper"),
    _f("--speculative-draft-attention-backend", "speculative_draft_attention_backend", "lower"),
    _f("--enable-hierarchical-cache", "hicache", "true"),
    _f("--disable-custom-all-reduce", "custom_all_reduce", "false"),
    _f(("--mem-fraction-static", "--mem-fraction"), "mem_fraction_static", "float"),
    _f("--max-running-requests", "max_running_requests", "int"),
    _f("--context-length", "max_model_len", "int"),
    _f("--kv-cache-dtype", "kv_cache_dtype", "lower"),
    _f("--dtype", "dtype", "lower"),
    _f("--quantization", "quantization", "lower"),
    _f("--enable-dp-attention", "enable_dp_attention", "true"),
    _f("--enable-memory-saver", "enable_memory_saver", "true"),
    _f("--chunked-prefill-size", "chunked_prefill_size", "int"),
    _f("--trust-remote-code", "trust_remote_code", "true"),
    _f("--enable-p2p-check", "enable_p2p_check", "true"),
    # PR #631: sglang exports NCCL_NVLS_ENABLE from this flag (off unless given).
    _f("--enable-nccl-nvls", "nccl_nvls", "true"),
    _f("--enable-torch-compile", "enable_torch_compile", "true"),
    _f("--use-ray", "distributed_executor_backend", "const", "ray"),
    _f("--moe-a2a-backend", "moe_a2a_backend", "lower"),
    _f("--nnodes", "nnodes", "int"),
)

# vLLM: EngineArgs.add_cli_args (+ FlexibleArgumentParser: `--x.key=value` for JSON args and
# `-O3` / `-O.key=value` for --compilation-config). Boolean flags are BooleanOptionalAction in
# current releases, so `--no-enforce-eager` etc. are accepted.
VLLM_FLAGS: tuple[Flag, ...] = (
    _f("--model", "model", "str"),
    _f(("--tensor-parallel-size", "-tp", "--tp", "--tp-size"), "tp_size", "int"),
    _f(("--data-parallel-size", "-dp", "--dp"), "dp_size", "int"),
    _f(("--pipeline-parallel-size", "-pp", "--pp"), "pp_size", "int"),
    _f(("--enable-expert-parallel", "-ep"), "enable_expert_parallel", "true"),
    _f("--enforce-eager", "cuda_graph", "false"),
    _f(("--compilation-config", "-O"), "compilation_config", "json"),
    _f("--attention-backend", "attention_backend", "lower"),
    _f("--moe-backend", "moe_backend", "lower"),
    _f("--speculative-config", "_speculative_config", "json"),
    _f("--speculative-model", "_speculative_model", "str"),
    _f("--disable-custom-all-reduce", "custom_all_reduce", "false"),
    _f("--gpu-memory-utilization", "gpu_memory_utilization", "float"),
    _f("--max-num-seqs", "max_running_requests", "int"),
    _f("--max-model-len", "max_model_len", "int"),
    _f("--kv-cache-dtype", "kv_cache_dtype", "lower"),
    _f("--dtype", "dtype", "lower"),
    _f(("--quantization", "-q"), "quantization", "lower"),
    _f("--max-num-batched-tokens", "chunked_prefill_size", "int"),
    _f("--trust-remote-code", "trust_remote_code", "true"),
    _f("--distributed-executor-backend", "distributed_executor_backend", "lower"),
    _f("--enable-sleep-mode", "enable_memory_saver", "true"),
    # Kept as the raw JSON text so advisories can look for a connector name in it.
    _f("--kv-transfer-config", "kv_transfer_config", "str"),
    _f("--nnodes", "nnodes", "int"),
)

_JSON_FLAGS_VLLM = frozenset(
    {
        "--compilation-config",
        "--speculative-config",
        "--kv-transfer-config",
        "--hf-overrides",
        "--override-generation-config",
        "--kv-events-config",
        "--kernel-config",
    }
)

_TABLES: dict[str, tuple[Flag, ...]] = {"sglang": SGLANG_FLAGS, "vllm": VLLM_FLAGS}


def _index(flags: Iterable[Flag]) -> dict[str, Flag]:
    out: dict[str, Flag] = {}
    for fl in flags:
        for n in fl.names:
            out[n] = fl
    return out


_INDEX: dict[str, dict[str, Flag]] = {fw: _index(t) for fw, t in _TABLES.items()}

_TRUTHY = frozenset({"1", "true", "yes", "on", "y", "t"})
_FALSY = frozenset({"0", "false", "no", "off", "n", "f"})
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def detect_entrypoint(argv: Sequence[str]) -> tuple[Framework, int]:
    """Which framework `argv` launches and where its own arguments start."""
    toks = list(argv)
    for i, tok in enumerate(toks):
        base = tok.rsplit("/", 1)[-1]
        nxt = toks[i + 1] if i + 1 < len(toks) else ""
        if tok == "-m" and nxt in ("sglang.launch_server", "sglang.srt.server"):
            return "sglang", i + 2
        if tok == "-m" and nxt in (
            "vllm.entrypoints.openai.api_server",
            "vllm.entrypoints.api_server",
        ):
            return "vllm", i + 2
        if (
            tok == "-m"
            and nxt == "vllm.entrypoints.cli.main"
            and i + 2 < len(toks)
            and toks[i + 2] == "serve"
        ):
            return "vllm", i + 3
        if base == "sglang" and nxt == "serve":
            return "sglang", i + 2
        if base == "vllm" and nxt == "serve":
            return "vllm", i + 2
        if base.endswith("launch_server.py") and "sglang" in tok:
            return "sglang", i + 1
        if base == "api_server.py" and "vllm" in tok:
            return "vllm", i + 1
    return "unknown", len(toks)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


class _State:
    def __init__(self, framework: str) -> None:
        self.framework = framework
        self.values: dict[str, object] = {}
        self.origins: dict[str, str] = {}
        self.unknown: list[str] = []
        self.notes: list[str] = []
        self.positionals: list[str] = []
        self.config_files: list[str] = []
        # Settings whose value follows from another flag (e.g. --enforce-eager -> cudagraph_mode).
        self.derived: dict[str, str] = {}

    def set(self, setting: str, value: object, origin: str) -> None:
        self.values[setting] = value
        self.origins[setting] = origin


def _convert(flag: Flag, name: str, raw: str) -> object:
    kind = flag.kind
    if "$" in raw and kind != "str":
        return Unknown(f"{name} is set from an unexpanded shell variable ({raw})")
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        what = "an integer" if kind == "int" else "a number"
        raise UsageError(
            f"{name} expects {what}, got {raw!r}",
            hint="fix the launch command; compat parses it as the server would",
        ) from None
    if kind == "lower":
        return raw.lower().replace("-", "_") if name != "--dtype" else raw.lower()
    if kind == "upper":
        return raw.upper()
    if kind == "json":
        return _parse_json_arg(name, raw)
    return raw


def _parse_json_arg(name: str, raw: str) -> object:
    text = raw.strip()
    if (name == "-O" or name == "--compilation-config") and re.fullmatch(r"\d+", text):
        # -O3 / --compilation-config 3: a level (vLLM < 0.11) or optimization level.
        return {"level": int(text)}
    if not text.startswith("{"):
        raise UsageError(
            f"{name} expects a JSON object, got {raw!r}",
            hint="quote the JSON in the shell, e.g. " + name + " '{\"key\": 1}'",
        )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{name}: invalid JSON ({exc.msg} at position {exc.pos}): {raw!r}",
            hint="quote the JSON in the shell",
        ) from None
    if not isinstance(value, dict):
        raise UsageError(f"{name} expects a JSON object, got {raw!r}")
    return value


def _scalar(text: str) -> object:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    try:
        return json.loads(text)
    except ValueError:
        return text


def _apply_flag(
    st: _State, flag: Flag, name: str, value: Optional[str], negated: bool, origin: str
) -> None:
    if flag.kind in ("true", "false", "const"):
        if value is not None and flag.kind != "const":
            low = value.lower()
            if low not in _TRUTHY | _FALSY:
                raise UsageError(f"{name} is a switch; it takes no value (got {value!r})")
            on = low in _TRUTHY
        else:
            on = True
        if negated:
            on = not on
        if flag.kind == "const":
            st.set(flag.setting, flag.const if on else None, origin)
            return
        st.set(flag.setting, on if flag.kind == "true" else not on, origin)
        return
    assert value is not None
    converted = _convert(flag, name, value)
    if flag.kind == "json" and isinstance(converted, dict):
        prev = st.values.get(flag.setting)
        if isinstance(prev, dict):
            merged = dict(prev)
            merged.update(converted)
            converted = merged
    st.set(flag.setting, converted, origin)


def _takes_value(flag: Flag) -> bool:
    return flag.kind not in ("true", "false", "const")


def _looks_like_value(tok: str) -> bool:
    return not tok.startswith("-") or bool(_NUMBER.match(tok)) or tok == "-"


def _parse_tokens(st: _State, tokens: Sequence[str], origin_label: str = "") -> None:
    index = _INDEX.get(st.framework, {})
    i = 0
    n = len(tokens)
    while i < n:
        tok = tokens[i]
        i += 1
        if tok == "--":
            continue
        if not tok.startswith("-") or tok == "-" or _NUMBER.match(tok):
            st.positionals.append(tok)
            continue
        name, eq, inline = tok.partition("=")
        value: Optional[str] = inline if eq else None
        # -O3 / -O.cudagraph_mode=FULL (vLLM's FlexibleArgumentParser).
        if (
            st.framework == "vllm"
            and name.startswith("-O")
            and not name.startswith("--")
            and name != "-O"
        ):
            rest = tok[2:]
            if rest.startswith("."):
                key, _, val = rest[1:].partition("=")
                _set_json_key(st, "compilation_config", key, val, tok, origin_label or tok)
            else:
                _apply_flag(st, _INDEX["vllm"]["-O"], "-O", rest, False, origin_label or tok)
            continue
        # --compilation-config.cudagraph_mode=FULL and friends.
        if st.framework == "vllm" and "." in name and name.split(".", 1)[0] in _JSON_FLAGS_VLLM:
            base, key = name.split(".", 1)
            if value is None and i < n and _looks_like_value(tokens[i]):
                value = tokens[i]
                i += 1
            fl = index.get(base)
            if fl is not None:
                _set_json_key(st, fl.setting, key, value or "true", tok, origin_label or base)
            else:
                st.unknown.append(base)
            continue
        if name == "--config":
            if value is None:
                if i >= n:
                    raise UsageError("--config expects a file path")
                value = tokens[i]
                i += 1
            st.config_files.append(value)
            continue
        flag = index.get(name)
        negated = False
        if flag is None and name.startswith("--no-"):
            cand = index.get("--" + name[5:])
            if cand is not None and not _takes_value(cand) and cand.negatable:
                flag, negated = cand, True
        if flag is None:
            st.unknown.append(name)
            if value is None and not _is_bare_switch(name):
                # Its value(s), kept in argv. sglang takes no positional arguments, so every
                # following value belongs to the flag (nargs="+" options such as --cuda-graph-bs);
                # vLLM's MODEL may follow, so only one is taken there.
                taken = 0
                while i < n and _looks_like_value(tokens[i]):
                    if taken and _VAR.fullmatch(tokens[i]):
                        break  # `--port $PORT $EXTRA_ARGS`: the second is its own thing
                    i += 1
                    taken += 1
                    if st.framework != "sglang":
                        break
            continue
        if _takes_value(flag) and value is None:
            if i >= n or not _looks_like_value(tokens[i]):
                raise UsageError(
                    f"{name} expects a value", hint=f"write `{name} VALUE` or `{name}=VALUE`"
                )
            value = tokens[i]
            i += 1
        _apply_flag(st, flag, name, value, negated, origin_label or name)


def _is_bare_switch(name: str) -> bool:
    # Unknown flags of these shapes are switches by convention in both frameworks.
    return name.startswith(("--enable-", "--disable-", "--no-", "--skip-", "--log-requests"))


def _set_json_key(st: _State, setting: str, key: str, raw: str, tok: str, origin: str) -> None:
    if not key:
        raise UsageError(f"{tok}: missing key after '.'")
    prev = st.values.get(setting)
    obj: dict[str, object] = dict(prev) if isinstance(prev, dict) else {}
    cur = obj
    parts = key.split(".")
    for part in parts[:-1]:
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[part] = nxt
        cur = nxt
    cur[parts[-1]] = _scalar(raw)
    st.set(setting, obj, origin)


def _load_config_file(
    path_text: str, framework: str, config_dir: Optional[Path], st: _State
) -> None:
    """sglang and vLLM both accept `--config FILE.yaml`; read it when PyYAML is importable."""
    path = Path(path_text)
    if not path.is_absolute() and config_dir is not None:
        path = config_dir / path
    try:
        yaml: Any = importlib.import_module("yaml")
    except ImportError:
        st.unknown.append("--config")
        st.notes.append(
            f"--config {path_text}: PyYAML is not installed, so the settings in that "
            "file are not known to compat (pip install pyyaml to read it)"
        )
        return
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        st.unknown.append("--config")
        st.notes.append(
            f"--config {path_text}: cannot read ({getattr(exc, 'strerror', None) or exc}); "
            "its settings are not known to compat"
        )
        return
    try:
        data = yaml.safe_load(text)
    except Exception as exc:  # yaml.YAMLError; PyYAML is optional so it is not imported by name
        st.notes.append(f"--config {path_text}: not valid YAML ({exc}); its settings are ignored")
        return
    if data is None:
        return
    if not isinstance(data, dict):
        st.notes.append(f"--config {path_text}: expected a mapping of option names to values")
        return
    tokens: list[str] = []
    for key, val in data.items():
        name = "--" + str(key).replace("_", "-")
        if isinstance(val, bool):
            if val:
                tokens.append(name)
            elif name.startswith("--no-") is False:
                tokens.append("--no-" + name[2:])
        elif isinstance(val, list):
            tokens.append(name)
            tokens.extend(str(v) for v in val)
        elif isinstance(val, dict):
            tokens.append(name + "=" + json.dumps(val))
        elif val is None:
            continue
        else:
            tokens.append(name + "=" + str(val))
    sub = _State(framework)
    _parse_tokens(sub, tokens, origin_label=path.name)
    st.derived.update({k: v for k, v in sub.derived.items() if k not in st.derived})
    for k, v in sub.values.items():
        st.values.setdefault(k, v)
        st.origins.setdefault(k, path.name)
    st.unknown.extend(u for u in sub.unknown if u not in st.unknown)


def parse_launch(
    argv: Sequence[str],
    framework_version: Optional[Version] = None,
    *,
    env: Optional[Mapping[str, str]] = None,
    config_dir: Optional[Path] = None,
    under_ray: bool = False,
) -> LaunchConfig:
    """Parse a server command line (sglang or vLLM) into a LaunchConfig.

    Unknown flags are kept, not fatal. A malformed value of a known flag (`--tp abc`, bad JSON)
    raises UsageError with what to fix. `framework_version` selects version-dependent defaults;
    without it those settings hold Unknown.
    """
    args = [str(a) for a in argv]
    if not args:
        raise UsageError(
            "empty launch command",
            hint="pass the server command after `--`, e.g. "
            "`compat check -- python -m sglang.launch_server --model-path M`",
        )
    args, wrapper_ray, wrapper_env = _strip_wrappers(args)
    merged_env = dict(env or {})
    merged_env.update(wrapper_env)
    framework, start = detect_entrypoint(args)
    st = _State(framework)
    if framework == "unknown":
        st.notes.append("not an sglang or vLLM server command; settings are not known")
        return LaunchConfig(
            framework="unknown",
            argv=tuple(argv),
            settings=MappingProxyType(
                {"under_ray": under_ray or wrapper_ray or _env_says_ray(merged_env)}
            ),
            explicit=frozenset(),
            unknown_flags=(),
            env=MappingProxyType(merged_env),
            model=None,
            origins=MappingProxyType({}),
            notes=tuple(st.notes),
            framework_version=framework_version,
        )
    _parse_tokens(st, args[start:])
    for cfg in st.config_files:
        _load_config_file(cfg, framework, config_dir, st)
    if framework == "vllm" and st.positionals:
        if "model" not in st.values:
            st.set("model", st.positionals[0], "positional MODEL")
        extra = st.positionals[1:]
    else:
        extra = st.positionals
    shell_vars = [x for x in extra if x.startswith("$")]
    if shell_vars:
        st.notes.append(f"unexpanded {' '.join(shell_vars)} may add flags compat cannot see")
    extra = [x for x in extra if not x.startswith("$")]
    if extra:
        st.notes.append("positional arguments not understood: " + " ".join(extra))
    explicit = frozenset(k for k in st.values if not k.startswith("_"))
    if framework == "sglang":
        settings = _sglang_settings(st, framework_version, merged_env)
    else:
        settings = _vllm_settings(st, framework_version, merged_env)
    settings["under_ray"] = under_ray or wrapper_ray or _env_says_ray(merged_env)
    origins = {k: v for k, v in st.origins.items() if k in settings}
    for k, why in st.derived.items():
        origins.setdefault(k, why)
    explicit_public = frozenset(k for k in explicit if k in settings) | frozenset(
        k for k in st.derived if k in settings
    )
    model = settings.get("model")
    return LaunchConfig(
        framework=framework,
        argv=tuple(argv),
        settings=MappingProxyType(settings),
        explicit=explicit_public,
        unknown_flags=tuple(dict.fromkeys(st.unknown)),
        env=MappingProxyType(merged_env),
        model=model if isinstance(model, str) else None,
        origins=MappingProxyType(origins),
        notes=tuple(st.notes),
        framework_version=framework_version,
    )


def _env_says_ray(env: Mapping[str, str]) -> bool:
    return any(k in env for k in RAY_MARKERS)


_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _strip_wrappers(args: list[str]) -> tuple[list[str], bool, dict[str, str]]:
    """Drop `VAR=1`, `env`, `exec`, `nohup`, `time`, `uv run`, `ray job submit ... --` in front."""
    env: dict[str, str] = {}
    under_ray = False
    changed = True
    while args and changed:
        changed = False
        head = args[0]
        if _ASSIGN.match(head):
            k, _, v = head.partition("=")
            env[k] = v
            args = args[1:]
            changed = True
        elif head in ("env", "exec", "nohup", "time", "command"):
            args = args[1:]
            changed = True
        elif head == "uv" and len(args) > 1 and args[1] == "run":
            args = args[2:]
            while args and args[0].startswith("-"):
                args = args[1:]
            changed = True
        elif head == "ray" and len(args) > 2 and args[1] == "job" and args[2] == "submit":
            under_ray = True
            if "--" in args:
                args = args[args.index("--") + 1 :]
                changed = True
            else:
                args = []
    return args, under_ray, env


# --------------------------------------------------------------------------------------------
# Defaults
# --------------------------------------------------------------------------------------------


def _pick(st: _State, name: str, default: object) -> object:
    return st.values.get(name, default)


def _derive(st: _State, name: str, why: str) -> None:
    st.derived[name] = why


def _sglang_settings(
    st: _State, version: Optional[Version], env: Mapping[str, str]
) -> dict[str, object]:
    s: dict[str, object] = {}
    s["model"] = _pick(st, "model", None)
    for k in ("tp_size", "dp_size", "pp_size", "ep_size"):
        s[k] = _pick(st, k, 1)
    backend = _pick(st, "attention_backend", "auto")
    s["attention_backend"] = backend
    # prefill/decode backends "have priority over --attention-backend" (server_args help text).
    s["prefill_attention_backend"] = _pick(st, "prefill_attention_backend", backend)
    s["decode_attention_backend"] = _pick(st, "decode_attention_backend", backend)
    cuda_graph = _pick(st, "cuda_graph", True)
    dec = st.values.get("_cg_backend_decode")
    if dec is not None:
        cuda_graph = dec != "disabled"
        st.set(
            "cuda_graph",
            cuda_graph,
            st.origins.get("_cg_backend_decode", "--cuda-graph-backend-decode"),
        )
    if backend == "torch_native" and cuda_graph is True and "cuda_graph" not in st.values:
        # server_args: "Cuda graph is disabled because of using torch native attention backend".
        cuda_graph = False
        _derive(st, "cuda_graph", "implied by --attention-backend torch_native")
    s["cuda_graph"] = cuda_graph
    pre = st.values.get("_cg_backend_prefill")
    if "piecewise_cuda_graph" in st.values:
        s["piecewise_cuda_graph"] = st.values["piecewise_cuda_graph"]
    elif pre is not None:
        s["piecewise_cuda_graph"] = pre == "tc_piecewise"
        st.set(
            "piecewise_cuda_graph",
            s["piecewise_cuda_graph"],
            st.origins.get("_cg_backend_prefill", "--cuda-graph-backend-prefill"),
        )
    elif version is None:
        s["piecewise_cuda_graph"] = Unknown(
            "sglang version unknown: piecewise CUDA graph is on by default from 0.5.10 (#16331), "
            "opt-in before"
        )
    else:
        on = version >= SGLANG_PIECEWISE_DEFAULT_FROM
        s["piecewise_cuda_graph"] = on
        st.origins["piecewise_cuda_graph"] = (
            f"default for sglang {'>=' if on else '<'}{SGLANG_PIECEWISE_DEFAULT_FROM}"
        )
    s["cudagraph_mode"] = None
    s["cuda_graph_max_bs"] = _pick(st, "cuda_graph_max_bs", None)  # None: set from GPU memory
    s["moe_backend"] = _pick(st, "moe_backend", "auto")
    # sglang resolves "auto" per model and quantization at load time; compat does not model it.
    s["moe_backend_effective"] = s["moe_backend"]
    s["sampling_backend"] = _pick(st, "sampling_backend", "auto")
    spec = _pick(st, "speculative_algorithm", None)
    if spec == "NEXTN":  # server_args: "NEXTN shares the same implementation of EAGLE"
        spec = "EAGLE"
    s["speculative_algorithm"] = spec
    s["speculative_draft_attention_backend"] = (
        _pick(st, "speculative_draft_attention_backend", "auto")
        if spec is not None
        else _pick(st, "speculative_draft_attention_backend", None)
    )
    s["hicache"] = _pick(st, "hicache", False)
    s["custom_all_reduce"] = _pick(st, "custom_all_reduce", True)
    s["mem_fraction_static"] = _pick(st, "mem_fraction_static", None)  # None: from GPU memory
    s["gpu_memory_utilization"] = None
    s["max_running_requests"] = _pick(st, "max_running_requests", None)
    s["max_model_len"] = _pick(st, "max_model_len", None)
    s["kv_cache_dtype"] = _pick(st, "kv_cache_dtype", "auto")
    s["dtype"] = _pick(st, "dtype", "auto")
    s["quantization"] = _pick(st, "quantization", None)
    s["enable_dp_attention"] = _pick(st, "enable_dp_attention", False)
    s["enable_memory_saver"] = _pick(st, "enable_memory_saver", False)
    s["chunked_prefill_size"] = _pick(st, "chunked_prefill_size", None)
    s["compilation_config"] = None
    s["trust_remote_code"] = _pick(st, "trust_remote_code", False)
    ep = s["ep_size"]
    s["enable_expert_parallel"] = isinstance(ep, int) and ep > 1
    s["distributed_executor_backend"] = _pick(st, "distributed_executor_backend", None)
    s["enable_p2p_check"] = _pick(st, "enable_p2p_check", False)
    s["nccl_nvls"] = _pick(st, "nccl_nvls", False)
    s["enable_torch_compile"] = _pick(st, "enable_torch_compile", False)
    s["kv_transfer_config"] = None
    s["moe_a2a_backend"] = _pick(st, "moe_a2a_backend", "none")
    s["nnodes"] = _pick(st, "nnodes", 1)
    return s


def vllm_default_cudagraph_mode(version: Optional[Version]) -> Union[str, Unknown]:
    """vLLM's default CUDAGraphMode: FULL_AND_PIECEWISE from 0.11.0 (#25444), PIECEWISE before."""
    if version is None:
        return Unknown(
            "vLLM version unknown: cudagraph_mode defaults to FULL_AND_PIECEWISE from "
            "0.11.0, PIECEWISE before"
        )
    return "FULL_AND_PIECEWISE" if version >= VLLM_FULL_AND_PIECEWISE_FROM else "PIECEWISE"


def vllm_default_unquantized_moe_backend(version: Optional[Version]) -> Union[str, Unknown]:
    """What `--moe-backend auto` picks for unquantized (BF16/FP16) MoE on NVIDIA GPUs.

    Known ranges only: TRITON up to v0.18.1rc1.dev227; FlashInfer CUTLASS from
    v0.18.1rc1.dev266 (#36286, per vllm-project/vllm#39288; FlashInfer TRTLLM comes first on
    Blackwell where it supports the shape). PR #44220 (2026-06) prefers Triton again on Hopper;
    its first release is not verified, so later versions still answer FlashInfer CUTLASS here.
    """
    if version is None:
        return Unknown(
            "vLLM version unknown: the default unquantized MoE backend changed at "
            "v0.18.1rc1.dev266 (#36286)"
        )
    if version >= VLLM_FI_CUTLASS_MOE_DEFAULT_FROM:
        return "flashinfer_cutlass"
    return "triton"


def _vllm_settings(
    st: _State, version: Optional[Version], env: Mapping[str, str]
) -> dict[str, object]:
    s: dict[str, object] = {}
    s["model"] = _pick(st, "model", None)
    s["tp_size"] = _pick(st, "tp_size", 1)
    s["dp_size"] = _pick(st, "dp_size", 1)
    s["pp_size"] = _pick(st, "pp_size", 1)
    ep_on = _pick(st, "enable_expert_parallel", False)
    s["enable_expert_parallel"] = ep_on
    tp, dp = s["tp_size"], s["dp_size"]
    # With --enable-expert-parallel vLLM shards experts over TP x DP ranks.
    s["ep_size"] = (
        (tp * dp if isinstance(tp, int) and isinstance(dp, int) else Unknown("tp/dp size unknown"))
        if ep_on is True
        else 1
    )
    comp = _pick(st, "compilation_config", None)
    s["compilation_config"] = comp
    eager = st.values.get("cuda_graph") is False
    mode: object
    if isinstance(comp, dict) and "cudagraph_mode" in comp:
        mode = str(comp["cudagraph_mode"]).upper()
        _derive(st, "cudagraph_mode", st.origins.get("compilation_config", "--compilation-config"))
    elif isinstance(comp, dict) and comp.get("level") == 0 and set(comp) == {"level"}:
        mode = Unknown(
            "-O0: vLLM's CUDA graph mode at optimization level 0 is not tracked by compat"
        )
    else:
        mode = vllm_default_cudagraph_mode(version)
        if version is not None:
            st.origins["cudagraph_mode"] = f"default for vllm {version}"
    if eager:
        mode = "NONE"
        _derive(st, "cudagraph_mode", st.origins.get("cuda_graph", "--enforce-eager"))
    s["cudagraph_mode"] = mode
    if isinstance(mode, Unknown):
        s["cuda_graph"] = not eager
        s["piecewise_cuda_graph"] = mode
    else:
        s["cuda_graph"] = mode != "NONE"
        if "cuda_graph" not in st.values and mode == "NONE":
            _derive(st, "cuda_graph", st.origins.get("compilation_config", "--compilation-config"))
        s["piecewise_cuda_graph"] = mode in ("PIECEWISE", "FULL_AND_PIECEWISE")
        if "cudagraph_mode" in st.derived:
            _derive(st, "piecewise_cuda_graph", st.derived["cudagraph_mode"])
        elif version is not None:
            st.origins["piecewise_cuda_graph"] = f"default for vllm {version} ({mode})"
    if isinstance(comp, dict) and isinstance(comp.get("max_capture_size"), int):
        s["cuda_graph_max_bs"] = comp["max_capture_size"]
    elif isinstance(comp, dict) and isinstance(comp.get("max_cudagraph_capture_size"), int):
        s["cuda_graph_max_bs"] = comp["max_cudagraph_capture_size"]
    else:
        s["cuda_graph_max_bs"] = None
    backend = _pick(st, "attention_backend", None)
    if backend is None and env.get("VLLM_ATTENTION_BACKEND"):
        backend = env["VLLM_ATTENTION_BACKEND"].lower()
        _derive(st, "attention_backend", "VLLM_ATTENTION_BACKEND in the launch environment")
    s["attention_backend"] = backend if backend is not None else "auto"
    s["prefill_attention_backend"] = s["attention_backend"]
    s["decode_attention_backend"] = s["attention_backend"]
    s["moe_backend"] = _pick(st, "moe_backend", "auto")  # KernelConfig.moe_backend = "auto"
    if s["moe_backend"] != "auto":
        s["moe_backend_effective"] = s["moe_backend"]
        _derive(st, "moe_backend_effective", st.origins.get("moe_backend", "--moe-backend"))
    elif _pick(st, "quantization", None) is not None:
        s["moe_backend_effective"] = Unknown(
            "the MoE backend vLLM picks for quantized models depends on the method; not modeled"
        )
    else:
        s["moe_backend_effective"] = vllm_default_unquantized_moe_backend(version)
        if version is not None:
            st.origins["moe_backend_effective"] = (
                f"what --moe-backend auto picks for unquantized MoE in vllm {version}"
            )
    s["sampling_backend"] = "auto"
    spec_cfg = st.values.get("_speculative_config")
    spec: object = None
    if isinstance(spec_cfg, dict):
        method = spec_cfg.get("method")
        if method is None and spec_cfg.get("model"):
            method = "draft_model"
        spec = str(method).upper() if method is not None else "DRAFT_MODEL"
        _derive(st, "speculative_algorithm", "--speculative-config")
    elif st.values.get("_speculative_model"):
        spec = "DRAFT_MODEL"
        _derive(st, "speculative_algorithm", "--speculative-model")
    s["speculative_algorithm"] = spec
    s["speculative_draft_attention_backend"] = None
    s["hicache"] = False
    s["custom_all_reduce"] = _pick(st, "custom_all_reduce", True)
    s["mem_fraction_static"] = None
    s["gpu_memory_utilization"] = _pick(st, "gpu_memory_utilization", 0.9)  # EngineArgs default
    s["max_running_requests"] = _pick(st, "max_running_requests", None)
    s["max_model_len"] = _pick(st, "max_model_len", None)
    s["kv_cache_dtype"] = _pick(st, "kv_cache_dtype", "auto")
    s["dtype"] = _pick(st, "dtype", "auto")
    s["quantization"] = _pick(st, "quantization", None)
    s["enable_dp_attention"] = False
    s["enable_memory_saver"] = _pick(st, "enable_memory_saver", False)
    s["chunked_prefill_size"] = _pick(st, "chunked_prefill_size", None)
    s["trust_remote_code"] = _pick(st, "trust_remote_code", False)
    s["distributed_executor_backend"] = _pick(st, "distributed_executor_backend", "auto")
    s["enable_p2p_check"] = None
    # vLLM leaves NVLS to NCCL (on where NVSwitch multicast is available) unless the env says no.
    s["nccl_nvls"] = "auto"
    s["enable_torch_compile"] = None
    s["kv_transfer_config"] = _pick(st, "kv_transfer_config", None)
    s["moe_a2a_backend"] = None
    # Multi-node vLLM under Ray does not pass --nnodes, so absent means "not known", not 1.
    s["nnodes"] = _pick(st, "nnodes", None)
    return s


# --------------------------------------------------------------------------------------------
# Launch files
# --------------------------------------------------------------------------------------------

_SEPARATORS = frozenset({";", "&&", "||", "|", "&", ";;"})
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _expand(token: str, env: Mapping[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        return env.get(name, m.group(0))

    return _VAR.sub(sub, token)


def _logical_lines(text: str) -> list[tuple[int, list[str]]]:
    """Shell-ish lines: backslash continuations joined, comments dropped, tokens via shlex."""
    raw_lines = text.replace("\r\n", "\n").split("\n")
    out: list[tuple[int, list[str]]] = []
    buf = ""
    start = 0
    for no, line in enumerate(raw_lines, 1):
        if not buf:
            start = no
        stripped = line.rstrip()
        if stripped.endswith("\\") and not stripped.endswith("\\\\"):
            buf += stripped[:-1] + " "
            continue
        buf += line
        try:
            lex = shlex.shlex(buf, posix=True, punctuation_chars=";&|")
            lex.whitespace_split = True
            lex.commenters = "#"
            tokens = list(lex)
        except ValueError as exc:
            if no < len(raw_lines):
                buf += "\n"
                continue
            raise InputError(
                f"launch text, line {start}: {exc}", hint="check the quoting of that command"
            ) from None
        out.append((start, tokens))
        buf = ""
    return out


def _commands(tokens: list[str]) -> list[list[str]]:
    cmds: list[list[str]] = [[]]
    for tok in tokens:
        if tok in _SEPARATORS or (tok and set(tok) <= set(";&|")):
            cmds.append([])
        else:
            cmds[-1].append(tok)
    return [c for c in cmds if c]


def parse_launch_text(
    text: str, framework_version: Optional[Version] = None, *, config_dir: Optional[Path] = None
) -> LaunchConfig:
    """Parse a launch file: shell-ish text with `export X=1`, `X=1 cmd`, continuations.

    The first sglang/vLLM server command found is parsed; exported variables before it and
    assignments in front of it become the launch env. Text with no server command gives a
    LaunchConfig with framework "unknown" (its env and Ray wrapper are still recorded).
    """
    env: dict[str, str] = {}  # exported: reaches the server process
    shell: dict[str, str] = {}  # plain assignments: only expanded in later lines
    fallback: Optional[tuple[list[str], dict[str, str], bool]] = None
    for _lineno, tokens in _logical_lines(text):
        for cmd in _commands(tokens):
            cmd = [_expand(t, {**shell, **env}) for t in cmd]
            head = cmd[0]
            if head in ("export", "declare"):
                for item in cmd[1:]:
                    if item.startswith("-"):
                        continue
                    k, eq, v = item.partition("=")
                    if eq and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
                        env[k] = v
                    elif not eq and item in shell:
                        env[item] = shell[item]
                continue
            if head == "unset":
                for item in cmd[1:]:
                    env.pop(item, None)
                    shell.pop(item, None)
                continue
            if all(_ASSIGN.match(t) for t in cmd):
                for item in cmd:
                    k, _, v = item.partition("=")
                    if k in env:
                        env[k] = v
                    else:
                        shell[k] = v
                continue
            stripped, wrapped_ray, local_env = _strip_wrappers(list(cmd))
            framework, _ = detect_entrypoint(stripped)
            cmd_env = dict(env)
            cmd_env.update(local_env)
            if framework != "unknown":
                return parse_launch(
                    stripped,
                    framework_version,
                    env=cmd_env,
                    config_dir=config_dir,
                    under_ray=wrapped_ray,
                )
            if stripped and head not in ("cd", "set", "source", ".", "echo", "mkdir", "rm", "ray"):
                fallback = (stripped, cmd_env, wrapped_ray)
            elif wrapped_ray:
                fallback = (stripped, cmd_env, True)
    if fallback is None:
        raise InputError(
            "no command found in the launch text",
            hint="the file should hold the server command, e.g. "
            "`python -m sglang.launch_server --model-path M`",
        )
    argv, cmd_env, ray = fallback
    if not argv:
        argv = ["ray", "job", "submit"]
    return parse_launch(argv, framework_version, env=cmd_env, config_dir=config_dir, under_ray=ray)


def describe_setting(launch: LaunchConfig, name: str) -> str:
    """`cuda_graph=True (default)` for evidence lines."""
    return f"{name}={launch.settings.get(name)} ({launch.origin(name)})"


def settings_for(
    framework: str, flags: Sequence[str], framework_version: Optional[Version] = None
) -> LaunchConfig:
    """Parse bare flags as if given to `framework`'s server (workarounds use this)."""
    entry: dict[str, list[str]] = {
        "sglang": ["python", "-m", "sglang.launch_server"],
        "vllm": ["vllm", "serve"],
    }
    return parse_launch(entry[framework] + list(flags), framework_version)
