"""The default run's share of the fuzz campaign: a seeded sample of every surface's fast cases,
each through its in-process entry point (a forked child with a time and memory bound), and the
harness itself checked on inputs whose outcome is known."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compat.errors import InputError
from tests.fuzz import campaign, targets
from tests.fuzz import generators as gen
from tests.fuzz.harness import Outcome, run_cli, run_inproc
from tests.fuzz.known import KNOWN_SMOKE

SEED = 0
# Cases per surface in the default run (the full campaign, `pytest -m fuzz`, runs them all).
PER_SURFACE = {
    "snapshot": 30,
    "freeze": 20,
    "lint": 25,
    "launch-argv": 25,
    "launch-file": 15,
    "overrides": 20,
    "advisory": 20,
    "data": 10,
    "cache": 6,
    "elf": 20,
    "dist-info": 8,
    "model": 15,
    "probe": 20,
    "cli": 6,
}


@functools.lru_cache(maxsize=1)
def _placeholder_table() -> dict[str, gen.GeneratorFn]:
    """The generators with stand-ins for what the session fixture builds: case names do not
    depend on it (the ELF seed is compiled here too, as its size names some cases)."""
    import tempfile

    raw = gen.build_elf(Path(tempfile.mkdtemp(prefix="fuzz-elf-")))
    return gen.surfaces(raw, "/placeholder/libnvidia-ml.so.1", "")


def _rank(surface: str, name: str) -> bytes:
    return hashlib.sha256(f"{SEED}:{surface}:{name}".encode("utf-8", "surrogatepass")).digest()


@functools.lru_cache(maxsize=1)
def smoke_names() -> list[tuple[str, str]]:
    """(surface, case name): the lowest-ranked fast cases of each surface (a stable sample)."""
    out = []
    for surface, fn in _placeholder_table().items():
        names = [
            c.name
            for c in fn(random.Random(f"{SEED}:{surface}"))
            if not campaign.is_slow(c) and (c.target is not None or campaign._cli_ok(c))
        ]
        names = sorted(set(names), key=lambda n: _rank(surface, n))[: PER_SURFACE[surface]]
        out.extend((surface, n) for n in names)
    return out


def _id(surface: str, name: str) -> str:
    text = f"{surface}:{name}".encode("ascii", "backslashreplace").decode("ascii")
    return (
        text if len(text) <= 90 else f"{text[:80]}~{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    )


def _params() -> list[Any]:
    out = []
    for surface, name in smoke_names():
        ident = _id(surface, name)
        reason = KNOWN_SMOKE.get(ident)
        marks = [pytest.mark.xfail(strict=True, reason=f"known: {reason}")] if reason else []
        out.append(pytest.param(surface, name, id=ident, marks=marks))
    return out


@pytest.fixture(scope="session")
def smoke_cases(fuzz_setup: campaign.Setup) -> dict[tuple[str, str], gen.Case]:
    wanted = set(smoke_names())
    found: dict[tuple[str, str], gen.Case] = {}
    for surface, fn in fuzz_setup.surfaces().items():
        for case in fn(random.Random(f"{SEED}:{surface}")):
            if (surface, case.name) in wanted:
                found.setdefault((surface, case.name), case)
    return found


@pytest.mark.parametrize(("surface", "name"), _params())
def test_smoke_share(
    smoke_cases: dict[tuple[str, str], gen.Case], tmp_path: Path, surface: str, name: str
) -> None:
    case = smoke_cases[(surface, name)]
    via = "inproc" if case.target is not None else "cli"
    res = campaign.run_case(case, tmp_path, via)
    assert res.passed, f"{res.short()}\n{res.traceback[-2000:]}"


# --------------------------------------------------------------------------------------------
# Hypothesis over two surfaces (seeded: derandomized, no example database)
# --------------------------------------------------------------------------------------------

FUZZ_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
REQ_ALPHABET = st.sampled_from([*list("torchiton0123456789.=<>!~;@[]()+, -#\\\n'\"*"), "\u00b2"])


@FUZZ_SETTINGS
@given(st.lists(st.text(REQ_ALPHABET, max_size=40), max_size=6))
def test_hypothesis_requirement_lines(
    tmp_path_factory: pytest.TempPathFactory, lines: list[str]
) -> None:
    """Any text made of requirement syntax, as a freeze file and as a requirements file."""
    folder = tmp_path_factory.mktemp("req")
    (folder / "requirements.txt").write_text("torch==2.7.1\n" + "\n".join(lines) + "\n")
    for fn, arg in (
        (targets.freeze_everything, str(folder / "requirements.txt")),
        (targets.lint_paths, [str(folder / "requirements.txt")]),
    ):
        res = run_inproc(fn, arg)
        assert res.passed, res.short()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
SNAPSHOT_PATHS = gen.distinct_paths(gen.full_snapshot(), random.Random(SEED))


@FUZZ_SETTINGS
@given(st.sampled_from(SNAPSHOT_PATHS), JSON)
def test_hypothesis_snapshot_field(
    tmp_path_factory: pytest.TempPathFactory, path: Any, value: Any
) -> None:
    """Any JSON value at any field of a complete snapshot: a report or an input error."""
    folder = tmp_path_factory.mktemp("snap")
    doc = gen._set(gen.full_snapshot(), path, value)
    (folder / "snap.json").write_text(json.dumps(doc))
    res = run_inproc(targets.snapshot_everything, str(folder / "snap.json"), str(gen.SNAPSHOTS[0]))
    assert res.passed, f"{gen._norm(path)}={value!r}: {res.short()}"


# --------------------------------------------------------------------------------------------
# The harness on inputs whose outcome is known
# --------------------------------------------------------------------------------------------


def _raises_input_error() -> None:
    raise InputError("bad input")


def _raises_value_error() -> None:
    int("x")


def _sleeps() -> None:
    time.sleep(30)


def _allocates() -> bytes:
    return b"x" * (2 << 30)


def _grows(mib: int) -> int:
    blocks = [bytearray(1 << 20) for _ in range(mib)]
    return len(blocks)


def _prints_secret() -> str:
    return f"token {gen.HF} here"


def test_harness_classifies_in_process_outcomes() -> None:
    assert run_inproc(lambda: "fine").outcome is Outcome.OK
    assert run_inproc(_raises_input_error).outcome is Outcome.CLEAN_ERROR
    crash = run_inproc(_raises_value_error)
    assert crash.outcome is Outcome.CRASH and crash.detail.startswith("ValueError")
    started = time.monotonic()
    assert run_inproc(_sleeps, timeout=1.0).outcome is Outcome.HANG
    assert time.monotonic() - started < 5
    assert run_inproc(_allocates, mem=256 << 20).outcome is Outcome.MEMORY
    assert run_inproc(_grows, 120, rss_budget=50).outcome is Outcome.MEMORY
    assert run_inproc(_grows, 5, rss_budget=50).outcome is Outcome.OK
    assert run_inproc(_prints_secret, secrets=gen.NEEDLES).outcome is Outcome.LEAK
    assert run_inproc(_prints_secret).outcome is Outcome.OK


def test_harness_classifies_cli_outcomes(tmp_path: Path) -> None:
    snap = str(gen.SNAPSHOTS[0])
    ok = run_cli(("check", "--from", snap))
    assert ok.outcome is Outcome.OK and ok.rc in (0, 1) and ok.peak_mib > 5, ok.short()
    clean = run_cli(("check", "--from", str(tmp_path / "missing.json")))
    assert clean.outcome is Outcome.CLEAN_ERROR and clean.rc == 3, clean.short()
    usage = run_cli(("check", "--no-such-option"))
    assert usage.outcome is Outcome.CLEAN_ERROR and usage.rc == 2, usage.short()
    # A crash: the command module made to fail from inside (a bug, exit 70 with a report).
    (tmp_path / "sitecustomize.py").write_text(
        "import compat.pipeline\ndef boom(*a, **k):\n    raise ZeroDivisionError('planted')\n"
        "compat.pipeline.check = boom\n"
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    crash = run_cli(("check", "--from", snap), env=env)
    assert crash.outcome is Outcome.CRASH and crash.rc == 70, crash.short()
    assert crash.detail.startswith("ZeroDivisionError in"), crash.detail
    hang = run_cli(("check", "--from", snap), env=env | {"PYTHONPATH": ""}, timeout=0.05)
    assert hang.outcome is Outcome.HANG
    (tmp_path / "leaky").mkdir()
    (tmp_path / "leaky" / "sitecustomize.py").write_text(
        f"import sys\nsys.stderr.write('{gen.HF}\\n')\n"
    )
    leak = run_cli(
        ("check", "--from", snap),
        env=dict(os.environ, PYTHONPATH=str(tmp_path / "leaky")),
        secrets=gen.NEEDLES,
    )
    assert leak.outcome is Outcome.LEAK and "hf_ token" in leak.detail, leak.short()
