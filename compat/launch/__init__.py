"""Server launch commands (sglang, vLLM) parsed with the installed release's own flags.

The records (LaunchConfig, SETTINGS, ...) load with the package; the parser, the launch data
and the normalizer only when a launch is parsed (a check without one never pays for them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from compat.launch.model import (
    PROBLEM_KINDS,
    RAY_MARKERS,
    SETTINGS,
    Framework,
    LaunchConfig,
    LaunchProblem,
    SettingValue,
)

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
    "Basis": "compat.launch.data",
    "describe_setting": "compat.launch.parse",
    "parse_launch": "compat.launch.parse",
    "parse_launch_text": "compat.launch.parse",
    "settings_for": "compat.launch.parse",
    "vllm_default_cudagraph_mode": "compat.launch.settings",
    "vllm_default_unquantized_moe_backend": "compat.launch.settings",
    "detect_entrypoint": "compat.launch.text",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
