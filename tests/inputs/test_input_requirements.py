"""Requirements files as pip-compile writes them (hashes, index lines, includes), pyproject's
`[tool.uv.sources]`, and the dispatcher that tells every format apart or refuses it in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compat.errors import CompatError, InputError
from compat.inputs import READS, Kind, detect, load_from, read_pins
from compat.inputs.requirements import read_pyproject, read_requirements
from compat.inputs.stack import index_local, index_rows
from compat.lint import exit_code, lint_files
from compat.models import Severity
from compat.pipeline import load_database

REQ = Path(__file__).parents[1] / "assets" / "inputs" / "requirements"
ASSETS = Path(__file__).parents[1] / "assets"
DB = load_database()
MATRIX = DB.matrix


def read(p: str) -> str:
    return Path(p).read_text()


def test_an_index_line_tells_the_build_of_a_pin_without_a_local_tag() -> None:
    path = REQ / "requirements-cu121.txt"
    r = lint_files([(str(path), path.read_text())], DB, None, read)
    assert [(f.line, f.finding.code, f.finding.severity) for f in r.findings] == [
        (11, "cuda-mix", Severity.ERROR)
    ]
    assert "torch 2.5.1+cu121 for CUDA 12.1" in r.findings[0].finding.message
    assert [p.line for p in r.findings[0].related] == [14]
    good = REQ / "requirements-cu121-good.txt"
    assert lint_files([(str(good), good.read_text())], DB, None, read).findings == ()
    # `compat check --from` reads the same file the same way
    env = load_from(str(path), MATRIX)
    assert str(env.version_of("torch")) == "2.5.1+cu121"


def test_index_rows_and_local_tags_come_from_indexes_toml() -> None:
    (row,) = index_rows("https://download.pytorch.org/whl/cu126/torch/", MATRIX)
    assert (row.name, row.local) == ("pytorch-cu126", "cu126")
    assert index_rows("https://pypi.org/simple", MATRIX) == []
    pins, _ = read_requirements(
        "--extra-index-url https://download.pytorch.org/whl/cu118\n"
        "torch==2.7.1\ntorch==2.8.0\ntorchvision==0.20.1\ntriton==3.3.1\n",
        "r.txt",
    )
    got = {p.version: index_local(p, MATRIX) for p in pins}
    assert got["2.7.1"] == ("cu118", "https://download.pytorch.org/whl/cu118")
    assert got["2.8.0"] is None  # CUDA 11.8 left PyTorch's matrix with 2.8 (the row's `when`)
    assert got["3.3.1"] is None  # triton's wheels on PyTorch's index carry no local tag
    assert got["0.20.1"] == ("cu118", "https://download.pytorch.org/whl/cu118")
    two, _ = read_requirements(
        "-i https://download.pytorch.org/whl/cu124\n"
        "--extra-index-url https://download.pytorch.org/whl/cu121\ntorch==2.5.1\n",
        "r.txt",
    )
    assert index_local(two[0], MATRIX) is None  # pip would take either: not guessed


def test_includes_and_constraints_are_bounded_and_followed() -> None:
    path = REQ / "requirements.in"
    pf = read_pins(str(path), path.read_text(), MATRIX)
    assert pf.problems == ()
    r = lint_files([(str(path), path.read_text())], DB, None, read)
    assert r.problems == ()  # requirements.in <-> constraints.txt include each other


def test_pyproject_uv_sources_name_the_index() -> None:
    text = """[project]
name = "serve"
version = "0.1"
dependencies = ["torch==2.5.1", "flashinfer-python==0.2.0.post2+cu124torch2.5"]

[project.optional-dependencies]
cpu = ["torch==2.5.1"]

[tool.uv.sources]
torch = [
  { index = "pytorch-cu121", marker = "sys_platform == 'linux'" },
  { index = "pytorch-cpu", extra = "cpu" },
]
xformers = { index = "missing" }

[[tool.uv.index]]
name = "pytorch-cu121"
url = "https://download.pytorch.org/whl/cu121"
explicit = true

[[tool.uv.index]]
name = "pytorch-cpu"
url = "https://download.pytorch.org/whl/cpu"
explicit = true
"""
    pf = read_pyproject(text, "pyproject.toml")
    assert [(n, what) for _, n, what in pf.problems] == [
        (14, "tool.uv.sources.xformers names index 'missing', which no [[tool.uv.index]] defines")
    ]
    scopes = dict(pf.scopes)
    assert next(p for p in scopes[""] if p.key == "torch").indexes == (
        "https://download.pytorch.org/whl/cu121",
    )
    r = lint_files([("pyproject.toml", text)], DB)
    assert [(f.line, f.finding.code) for f in r.findings] == [(4, "cuda-mix")]
    assert exit_code(r, "error") == 3  # the undefined index is a problem of the file


def test_pip_compile_hashes_and_continuations() -> None:
    text = (REQ / "requirements-cu121.txt").read_text()
    pins, problems = read_requirements(text, "r.txt")
    assert problems == []
    assert [(p.key, p.version, p.line) for p in pins] == [
        ("flashinfer-python", "0.2.0.post2+cu124torch2.5", 11),
        ("torch", "2.5.1", 14),
        ("triton", "3.1.0", 19),
    ]
    assert pins[0].indexes == (
        "https://download.pytorch.org/whl/cu121",
        "https://pypi.org/simple",
        "https://flashinfer.ai/whl/cu124/torch2.5/flashinfer-python/",
    )


# --------------------------------------------------------------------------------------------
# Telling formats apart
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "kind"),
    [
        ("requirements.txt", "torch==2.7.1\n", Kind.REQUIREMENTS),
        ("freeze", "torch==2.7.1\ntriton==3.3.1\n", Kind.REQUIREMENTS),
        ("snap.json", '{"schema": "compat.env/1"}', Kind.SNAPSHOT),
        ("pyproject.toml", "", Kind.PYPROJECT),
        ("pylock.serve.toml", "", Kind.PYLOCK),
        ("uv.lock", "", Kind.UVLOCK),
        ("serve.lock", 'version = 1\n[[package]]\nname = "x"\n', Kind.UVLOCK),
        ("lock.toml", 'lock-version = "1.0"\n[[packages]]\nname = "x"\n', Kind.PYLOCK),
        ("environment.yml", "name: x\ndependencies:\n  - python\n", Kind.CONDA_ENV),
        ("conda.txt", "# platform: linux-64\npytorch=2.5.1=cuda126_0\n", Kind.CONDA_LIST),
        ("spec.txt", "@EXPLICIT\nhttps://x/linux-64/a-1-0.conda\n", Kind.CONDA_LIST),
        ("Dockerfile", "", Kind.DOCKERFILE),
        ("Dockerfile.cuda", "", Kind.DOCKERFILE),
        ("serve.dockerfile", "", Kind.DOCKERFILE),
        ("image", "# build\nARG X=1\nFROM ubuntu:22.04\n", Kind.DOCKERFILE),
    ],
)
def test_formats_by_name_and_content(name: str, text: str, kind: Kind) -> None:
    assert detect(name, text) is kind


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("setup.cfg", "[metadata]\nname = x\n"),
        ("Pipfile.lock", '{"_meta": {"hash": {}}}'),
        ("poetry.lock", '[[package]]\nname = "torch"\n\n[metadata]\nlock-version = "2.0"\n'),
        ("docker-compose.yml", "services:\n  web:\n    image: x\n"),
        ("Dockerfile.dockerignore", "*.pyc\n"),
        ("blob", "\x7fELF\x02\x01"),
    ],
)
def test_unknown_formats_say_what_compat_reads_in_one_line(name: str, text: str) -> None:
    with pytest.raises(InputError) as err:
        detect(name, text)
    assert str(err.value).count("\n") == 0 and READS in str(err.value)


def test_unknown_formats_exit_3_from_the_cli(tmp_path: Path) -> None:
    f = tmp_path / "poetry.lock"
    f.write_text('[[package]]\nname = "torch"\nversion = "2.7.1"\n\n[metadata]\n')
    for args in (["check", "--from", str(f)], ["lint", str(f)]):
        p = subprocess.run(
            [sys.executable, "-m", "compat", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        out = (p.stdout + p.stderr).strip()
        assert p.returncode == 3, out
        assert "not a format compat reads; it reads compat env --json snapshots" in out
        assert "Traceback" not in out


def test_existing_fixtures_keep_their_format() -> None:
    for path in (ASSETS / "freeze").glob("*.txt"):
        assert detect(str(path), path.read_text()) is Kind.REQUIREMENTS, path
    for path in (ASSETS / "envs").glob("*.json"):
        assert detect(str(path), path.read_text()) is Kind.SNAPSHOT, path


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.one_of(
        st.lists(
            st.sampled_from(
                [
                    "torch==2.5.1 \\\n",
                    "    --hash=sha256:00\n",
                    "-r requirements.txt\n",
                    "-c c.txt\n",
                    "--index-url https://download.pytorch.org/whl/cu121\n",
                    "--extra-index-url=https://flashinfer.ai/whl/cu124/torch2.5\n",
                    "flashinfer-python==0.2.0.post2+cu124torch2.5\n",
                    "-e git+https://x/y.git#egg=sglang\n",
                    "sglang[srt] @ https://x/sglang-0.4.6.post1-py3-none-any.whl\n",
                    "torch==" + "9" * 500 + "\n",
                    "[project]\ndependencies = ['torch==2.5.1']\n",
                    "[tool.uv.sources]\ntorch = { index = 'a', marker = '(((' }\n",
                    "\x00",
                ]
            ),
            max_size=25,
        ).map("".join),
        st.text(max_size=300),
    ),
    st.sampled_from(["requirements.txt", "pyproject.toml", "pylock.toml", "x"]),
)
def test_any_text_gives_a_result_or_a_compat_error(text: str, name: str) -> None:
    try:
        read_pins(name, text, MATRIX)
        lint_files([(name, text)], DB, None, lambda p: "torch==2.6.0\n-r requirements.txt\n")
    except CompatError:
        return
