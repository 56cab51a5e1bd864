"""Smoke-share cases that fail on the current code, by test id, with the class each showed.

Observed by running the share (`pytest tests/fuzz/test_fuzz_smoke.py --runxfail`); each entry is
an xfail(strict=True) mark: when a fix makes the case pass, the test fails and the entry goes.
"""

from __future__ import annotations

KNOWN_SMOKE: dict[str, str] = {}
