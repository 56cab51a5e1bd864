"""Smoke-share cases that fail on the current code, by test id, with the class each showed.

Observed by running the share (`pytest tests/fuzz/test_fuzz_smoke.py --runxfail`); each entry is
an xfail(strict=True) mark: when a fix makes the case pass, the test fails and the entry goes.
"""

from __future__ import annotations

KNOWN_SMOKE: dict[str, str] = {
    "cache:generated/sgl-kernel.toml:releases-number": "wrong: run 1: a cache entry of the wrong shape makes the valid database fail",
    "snapshot:h100-torch2.11-cu130:.env.CUDA_VISIBLE_DEVICES=secret": "leak: secret printed back: URL password (part after '/' or '@'), URL password (part before '/' or '@')",
    "dist-info:torch/version.py cuda-arabic": "crash: InvalidVersion in compat/check/cuda.py:check_minor -> site-packages/packaging/version.py:__init__",
    "cli:diff with secrets": "leak: secret printed back: --api-key value, Bearer token, URL password (part after '/' or '@'), URL password (part before '/' or '@'), hf_ token, token as URL user",
}
