"""The minimized failing inputs of the fuzz campaign (tests/assets/fuzz/manifest.json), each
through its surface's entry point. Each failed when written: a strict xfail names its class."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fuzz import targets
from tests.fuzz.reproducers import RUNNERS, run_input

HERE = Path(__file__).resolve().parents[1] / "assets" / "fuzz"
MANIFEST = HERE / "manifest.json"


def _params() -> list[Any]:
    if not MANIFEST.is_file():
        return []
    entries = json.loads(MANIFEST.read_text(encoding="utf-8"))
    return [
        pytest.param(
            e["file"],
            e["surface"],
            id=e["file"],
            marks=[pytest.mark.xfail(strict=True, reason=f"known: {e['class']}")]
            if e.get("fails", True)
            else [],
        )
        for e in entries
    ]


@pytest.fixture(autouse=True, scope="module")
def _warm() -> None:
    targets.warm()


@pytest.mark.parametrize(("name", "surface"), _params())
def test_reproducer(name: str, surface: str) -> None:
    _, kind, _ = RUNNERS[surface]
    res = run_input(kind, HERE / name)
    assert res.passed, res.short()
