"""compat: keep LLM-serving stacks consistent (inspect, check, lock)."""

__version__ = "0.1.0.dev0"
