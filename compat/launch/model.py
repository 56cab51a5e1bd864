"""The parsed launch: normalized settings, the release's own flag values, and what was wrong."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Optional

from msgspec import Struct, field
from packaging.version import Version

from compat.models import Severity, Unknown

if TYPE_CHECKING:
    from compat.launch.data import Basis

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
    "under_ray",
    "kv_transfer_config",
    "moe_a2a_backend",
    "nnodes",
    "revision",
    "download_dir",
)

# A process runs inside Ray when Ray put one of these into its environment (job drivers get
# RAY_ADDRESS / RAY_JOB_ID / RAY_JOB_SUBMISSION_ID; actors and workers RAY_RAYLET_PID and
# RAY_NODE_ID), or when the launch text wraps the command in `ray job submit ... --`.
RAY_MARKERS: frozenset[str] = frozenset(
    {"RAY_ADDRESS", "RAY_JOB_ID", "RAY_JOB_SUBMISSION_ID", "RAY_RAYLET_PID", "RAY_NODE_ID"}
)

#: Kinds of launch problems, each with the finding code the launch-flags check gives it.
PROBLEM_KINDS: Mapping[str, str] = MappingProxyType(
    {
        "unknown-flag": "launch-flag",  # not a flag of the release (did-you-mean)
        "removed-flag": "launch-flag",  # a flag of other releases: says which release changed it
        "ambiguous-flag": "launch-flag",  # an abbreviation argparse cannot resolve
        "bad-choice": "launch-flag",  # a value outside the release's choices
        "bad-value": "launch-flag",  # a value argparse refuses (a switch given a value)
        "deprecated-flag": "launch-flag",  # accepted with a warning, or refused with a message
        "could-not-tell": "launch-flag",  # version unknown and the flag exists in some releases only
        "env-ignored": "env-var",  # an env var the release does not read
    }
)


class LaunchProblem(Struct, frozen=True):
    """Something the release's own parser would refuse or ignore, found while parsing."""

    kind: str
    severity: Severity
    subject: str  # the flag or env var as written
    message: str
    fix: tuple[str, ...] = ()


class LaunchConfig(Struct, frozen=True):
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
    # The release's own argparse destinations given on the command line (dest -> value).
    values: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    problems: tuple[LaunchProblem, ...] = ()
    # Which release's flags the launch was judged against (None: no launch data).
    basis: Optional[Basis] = None  # equal when built for the same release (Basis.__eq__)

    def get(self, name: str) -> SettingValue:
        """A normalized setting, else the framework's own argparse dest with the release's
        default applied (`launch.get("enable_two_batch_overlap")`); Unknown when the default
        is decided at startup or the release is not known."""
        if name in self.settings:
            return self.settings.get(name)
        if name in self.values:
            return self.values[name]
        if self.basis is None:
            return Unknown(f"no launch data for {self.framework}")
        return self.basis.default(name)

    def origin(self, name: str) -> str:
        return self.origins.get(name, "default")
