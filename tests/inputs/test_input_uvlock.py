"""uv.lock as input: locks made by real uv against the local index the lock tests serve, the graph
walk for the target (markers, forks, conflicting extras), and index URLs that tell the build."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compat.errors import CompatError
from compat.inputs import ReadOptions, load_input
from compat.inputs.uvlock import read_uvlock
from compat.lint import Target, exit_code, lint_files
from compat.models import Severity
from compat.pipeline import load_database
from tests.test_lock_cli import STACK, clean_env, make_wheel, serve, uv_binary, write_simple

DB = load_database()


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The lock tests' stack as a PyPI-like index and a CUDA 12.6 index, on 127.0.0.1."""
    root = tmp_path_factory.mktemp("uvindex")
    files = root / "files"
    files.mkdir()
    wheels = {(n, v): make_wheel(files, n, v, r, e) for n, v, r, e, _ in STACK}
    with serve(root) as base:
        for where in ("pypi", "cu126"):
            ws = [wheels[(n, v)] for n, v, _, _, w in STACK if w == where]
            write_simple(
                root / ("simple" if where == "pypi" else "cu126/simple"), ws, f"{base}/files"
            )
        yield base


def uv_lock(project: Path, base: str, deps: list[str], sources: bool) -> Path:
    uv = uv_binary()
    if uv is None:
        pytest.skip("uv is not installed (pip install uv)")
    project.mkdir(parents=True)
    text = (
        '[project]\nname = "serve"\nversion = "0.1.0"\nrequires-python = ">=3.10"\n'
        f"dependencies = [{', '.join(repr(d).replace(chr(39), chr(34)) for d in deps)}]\n"
    )
    if sources:
        text += (
            '\n[tool.uv.sources]\ntorch = { index = "pytorch-cu126" }\n\n'
            f'[[tool.uv.index]]\nname = "pytorch-cu126"\nurl = "{base}/cu126/simple"\n'
            "explicit = true\n"
        )
    (project / "pyproject.toml").write_text(text)
    p = subprocess.run(
        [uv, "lock", "--no-cache", "--default-index", f"{base}/simple"],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    lock = project / "uv.lock"
    assert "pypi.org" not in lock.read_text()  # the local index alone answered
    return lock


def line_of(path: Path, name: str) -> int:
    lines = path.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line == f'name = "{name}"')


def test_a_lock_real_uv_made_for_the_tuple_sglang_pins(tmp_path: Path, index: str) -> None:
    lock = uv_lock(tmp_path / "good", index, ["sglang[srt]==0.4.6.post1", "torch==2.6.0"], True)
    pf = read_uvlock(lock.read_text(), str(lock))
    assert pf.problems == () and pf.python == "3.11"
    ((_, pins),) = pf.scopes
    got = {p.key: (p.version, p.line) for p in pins}
    assert got["torch"] == ("2.6.0+cu126", line_of(lock, "torch"))
    assert got["triton"][0] == "3.2.0" and got["sglang"][0] == "0.4.6.post1"
    assert next(p for p in pins if p.key == "torch").indexes == (f"{index}/cu126/simple",)
    r = lint_files([(str(lock), lock.read_text())], DB)
    assert (r.findings, r.problems) == ((), ())
    env = load_input(str(lock), DB.matrix).env
    assert str(env.version_of("torch")) == "2.6.0+cu126"
    p = subprocess.run(
        [sys.executable, "-m", "compat", "check", "--from", str(lock), "--driver", "550.54.15"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "torch 2.6.0+cu126" in p.stdout


def test_a_lock_real_uv_made_with_a_torch_sglang_does_not_take(tmp_path: Path, index: str) -> None:
    # sglang's index metadata here names no torch in its base requirements, so uv locks torch
    # 2.7.0; sglang 0.4.6.post1 pins torch==2.6.0 (its [srt] extra, from the database).
    lock = uv_lock(tmp_path / "bad", index, ["sglang==0.4.6.post1", "torch==2.7.0"], False)
    r = lint_files([(str(lock), lock.read_text())], DB)
    assert [(f.line, f.finding.code, f.finding.severity) for f in r.findings] == [
        (line_of(lock, "torch"), "framework-pin", Severity.ERROR)
    ]
    assert "sglang 0.4.6.post1 requires torch==2.6.0" in r.findings[0].finding.message
    assert [p.line for p in r.findings[0].related] == [line_of(lock, "sglang")]
    assert exit_code(r, "error") == 1


# A lock of the shape uv writes for PyTorch's per-CUDA extras (conflicting extras, forked
# resolution, resolution markers), written here to exercise each branch of the walk.
FORKED = """version = 1
revision = 3
requires-python = ">=3.10"
resolution-markers = [
    "sys_platform == 'linux' and extra != 'extra-5-serve-cpu' and extra == 'extra-5-serve-cu124'",
    "extra == 'extra-5-serve-cpu' and extra != 'extra-5-serve-cu124'",
]
conflicts = [[
    { package = "serve", extra = "cpu" },
    { package = "serve", extra = "cu124" },
]]

[[package]]
name = "serve"
version = "0.1.0"
source = { virtual = "." }
dependencies = [
    { name = "numpy" },
    { name = "pywin32", marker = "sys_platform == 'win32'" },
]

[package.optional-dependencies]
cpu = [
    { name = "torch", version = "2.5.1+cpu", source = { registry = "https://download.pytorch.org/whl/cpu" } },
]
cu124 = [
    { name = "torch", version = "2.5.1", source = { registry = "https://download.pytorch.org/whl/cu124" }, marker = "sys_platform == 'linux'" },
    { name = "flashinfer-python" },
]

[[package]]
name = "numpy"
version = "2.1.3"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "pywin32"
version = "308"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "flashinfer-python"
version = "0.2.0.post2+cu121torch2.5"
source = { registry = "https://flashinfer.ai/whl/cu121/torch2.5" }

[[package]]
name = "torch"
version = "2.5.1+cpu"
source = { registry = "https://download.pytorch.org/whl/cpu" }
resolution-markers = [
    "extra == 'extra-5-serve-cpu' and extra != 'extra-5-serve-cu124'",
]

[[package]]
name = "torch"
version = "2.5.1"
source = { registry = "https://download.pytorch.org/whl/cu124" }
resolution-markers = [
    "sys_platform == 'linux' and extra != 'extra-5-serve-cpu' and extra == 'extra-5-serve-cu124'",
]
dependencies = [
    { name = "triton", marker = "platform_machine == 'x86_64' and sys_platform == 'linux'" },
]

[[package]]
name = "triton"
version = "3.1.0"
source = { registry = "https://download.pytorch.org/whl/cu124" }
"""


def test_extras_forks_markers_and_the_index_that_tells_the_build(tmp_path: Path) -> None:
    pf = read_uvlock(FORKED, "uv.lock")
    scopes = {name: {p.key: p.version for p in pins} for name, pins in pf.scopes}
    assert scopes == {
        "": {"numpy": "2.1.3"},  # pywin32 is Windows-only
        "[cpu]": {"numpy": "2.1.3", "torch": "2.5.1+cpu"},
        "[cu124]": {
            "numpy": "2.1.3",
            "torch": "2.5.1",
            "flashinfer-python": "0.2.0.post2+cu121torch2.5",
            "triton": "3.1.0",
        },
    }
    aarch64 = read_uvlock(FORKED, "uv.lock", ReadOptions(machine="aarch64"))
    assert "triton" not in {p.key for p in dict(aarch64.scopes)["[cu124]"]}
    # torch 2.5.1 from PyTorch's cu124 index is its CUDA 12.4 build (curated/indexes.toml): a
    # CUDA 12.1 flashinfer beside it is flagged, though neither version says so in the lock
    lock = tmp_path / "uv.lock"
    lock.write_text(FORKED)
    r = lint_files([(str(lock), FORKED)], DB)
    assert [(f.line, f.finding.code, f.finding.severity) for f in r.findings] == [
        (line_of(lock, "flashinfer-python"), "cuda-mix", Severity.WARNING)
    ]
    assert "torch 2.5.1+cu124 for CUDA 12.4" in r.findings[0].finding.message


def test_not_a_lock() -> None:
    assert read_uvlock('version = "one"\n', "uv.lock").problems[0][2].startswith("not a uv.lock")
    assert read_uvlock("version = 1\npackage = 3\n", "uv.lock").problems[0][2].startswith("not a")
    assert read_uvlock("[[package]\n", "uv.lock").problems[0][2].startswith("not valid TOML")
    r = lint_files(
        [("uv.lock", 'version = 1\n[[package]]\nname = "torch"\nversion = "2.7.1"\n')], DB
    )
    assert r.problems == () and r.findings == ()  # no project in it: every package counts


_TOML_PIECES = [
    "version = 1\n",
    'requires-python = ">=3.10"\n',
    "[[package]]\n",
    'name = "torch"\n',
    'name = "serve"\n',
    'version = "2.7.1"\n',
    'version = "not a version"\n',
    'source = { virtual = "." }\n',
    'source = { registry = "https://download.pytorch.org/whl/cu126" }\n',
    'dependencies = [{ name = "torch", marker = "sys_platform == \'linux\'" }]\n',
    'dependencies = [{ name = "triton", marker = "((((" }, { name = "serve" }]\n',
    "[package.optional-dependencies]\n",
    'x = [{ name = "torch", extra = ["a", 1] }]\n',
    "dependencies = 3\n",
    "[\n",
    "\x00",
]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.one_of(
        st.lists(st.sampled_from(_TOML_PIECES), max_size=30).map("".join),
        st.text(max_size=300),
    )
)
def test_any_text_gives_a_result_or_a_compat_error(text: str) -> None:
    try:
        pf = read_uvlock(text, "uv.lock")
    except CompatError:
        return
    for _, pins in pf.scopes:
        assert all(p.line >= 1 and p.version for p in pins)
    lint_files([("uv.lock", text)], DB, Target(python="3.12"))
