"""Server launch commands (sglang, vLLM) parsed with the installed release's own flags.

The records (LaunchConfig, SETTINGS, ...) load with the package; the parser, the launch data
and the normalizer only when a launch is parsed (a check without one never pays for them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from compat.launch.model import (
    PROBLEM_KINDS,
    RAY_MARKERS,
    SETTINGS,
    Framework,
    LaunchConfig,
    LaunchProblem,
    SettingValue,
)
from compat.lazy import exports

if TYPE_CHECKING:
    from compat.launch.data import Basis
    from compat.launch.parse import describe_setting, parse_launch, parse_launch_text, settings_for
    from compat.launch.settings import (
        vllm_default_cudagraph_mode,
        vllm_default_unquantized_moe_backend,
    )
    from compat.launch.text import detect_entrypoint

__all__ = [
    "PROBLEM_KINDS",
    "RAY_MARKERS",
    "SETTINGS",
    "Basis",
    "Framework",
    "LaunchConfig",
    "LaunchProblem",
    "SettingValue",
    "describe_setting",
    "detect_entrypoint",
    "parse_launch",
    "parse_launch_text",
    "settings_for",
    "vllm_default_cudagraph_mode",
    "vllm_default_unquantized_moe_backend",
]

_LAZY = {
    "Basis": "data",
    "describe_setting": "parse",
    "parse_launch": "parse",
    "parse_launch_text": "parse",
    "settings_for": "parse",
    "vllm_default_cudagraph_mode": "settings",
    "vllm_default_unquantized_moe_backend": "settings",
    "detect_entrypoint": "text",
}


__getattr__ = exports(__name__, _LAZY)
