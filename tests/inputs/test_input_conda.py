"""Conda files as input: environment.yml (conda packages, `pip:`, `variables:`), `conda list`
exports, the names and CUDA statements curated/conda.toml maps, and lines not understood."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compat.errors import CompatError
from compat.inputs import ReadOptions, load_input, read_pins
from compat.inputs.conda import build_cuda, parse_spec, read_conda_list, read_environment_yml
from compat.lint import LintResult, exit_code, lint_files
from compat.models import Severity
from compat.pipeline import load_database

CONDA = Path(__file__).parents[1] / "assets" / "inputs" / "conda"
DB = load_database()
MATRIX = DB.matrix


def lint(name: str) -> LintResult:
    path = CONDA / name
    return lint_files([(str(path), path.read_text())], DB, None, lambda p: Path(p).read_text())


def where(r: LintResult) -> list[tuple[int, str, Severity]]:
    return [(f.line, f.finding.code, f.finding.severity) for f in r.findings]


@pytest.mark.parametrize(
    ("text", "name", "version", "build"),
    [
        ("pytorch", "pytorch", None, ""),
        ("pytorch=2.5.1", "pytorch", "2.5.1", ""),
        ("pytorch=2.5", "pytorch", None, ""),  # conda's 2.5.*: not one release
        ("pytorch==2.5.1", "pytorch", "2.5.1", ""),
        (
            "pytorch::pytorch=2.5.1=py3.11_cuda12.4_cudnn9.1.0_0",
            "pytorch",
            "2.5.1",
            "py3.11_cuda12.4_cudnn9.1.0_0",
        ),
        ("conda-forge::pytorch=2.5.1=cuda126*", "pytorch", "2.5.1", "cuda126*"),
        ("pytorch>=2.4,<2.6", "pytorch", None, ""),
        (
            "pytorch 2.5.1 cuda126_generic_py312_h1_303",
            "pytorch",
            "2.5.1",
            "cuda126_generic_py312_h1_303",
        ),
        ("pytorch[version='>=2.5',build='cuda*']", "pytorch", None, "cuda*"),
    ],
)
def test_match_specs(text: str, name: str, version: str | None, build: str) -> None:
    spec = parse_spec(text, 1)
    assert spec is not None
    assert (spec.name, spec.version, spec.build) == (name, version, build)


def test_what_is_not_a_spec() -> None:
    for text in ("", "pytorch 2.5.1 b extra words", "pytorch=2.5.1=a b", "py torch", "-e ."):
        assert parse_spec(text, 1) is None, text


def test_build_strings_tell_the_cuda_build() -> None:
    assert build_cuda("cuda126_generic_py312_h1234567_303") == "12.6"  # conda-forge
    assert build_cuda("cuda120_py311h1_300") == "12.0"
    assert build_cuda("py3.11_cuda12.4_cudnn9.1.0_0") == "12.4"  # the pytorch channel
    assert build_cuda("cpu_generic_py312_h1_3") == "cpu"
    assert build_cuda("py311h1234_0") is None


def test_the_pytorch_channel_environment_passes() -> None:
    pf = read_environment_yml((CONDA / "environment.yml").read_text(), "environment.yml", MATRIX)
    assert pf.problems == () and pf.notes == () and pf.python == "3.11"
    ((_, pins),) = pf.scopes
    got = {p.key: (p.version, p.line, p.cuda) for p in pins}
    assert got["torch"] == ("2.5.1", 9, "12.4")
    assert got["nvidia-nccl-cu12"] == ("2.21.5", 13, None)  # conda's nccl is NVIDIA's NCCL
    assert got["xformers"] == ("0.0.28.post3", 17, None)  # from the pip: list, its own line
    assert {s.key: (s.value, s.line) for s in pf.env} == {"NCCL_DEBUG": ("WARN", 20)}
    r = lint("environment.yml")
    assert (r.findings, r.problems) == ((), ())
    env = load_input(str(CONDA / "environment.yml"), MATRIX).env
    tb = env.torch
    assert not isinstance(tb, type(None)) and getattr(tb, "cuda", None) == "12.4"


def test_the_broken_environment_at_its_lines() -> None:
    r = lint("environment-broken.yml")
    assert where(r) == [
        (9, "pin-conflict", Severity.ERROR),  # pytorch-cuda=12.1 vs the cuda12.4 build string
        (10, "torch-companion", Severity.ERROR),  # torchvision 0.21.0 is torch 2.6.0's
        (13, "torch-triton", Severity.ERROR),  # pip's triton 3.0.0
        (15, "env-var", Severity.ERROR),  # variables: CUDA_VISIBLE_DEVICES=""
    ]
    assert exit_code(r, "error") == 1


def test_conda_forge_cuda_version_rules_out_the_build() -> None:
    bad = lint("environment-forge.yml")
    assert (8, "pin-conflict", Severity.ERROR) in where(bad)
    msg = next(f.finding.message for f in bad.findings if f.finding.code == "pin-conflict")
    assert "cuda-version=12.4 rules out torch's CUDA 12.6 build" in msg
    good = lint("environment-forge-good.yml")
    # a conda-forge build PyPI does not publish: an info, no error
    assert [w for w in where(good) if w[2] is not Severity.INFO] == []


def test_conda_list_export_and_explicit() -> None:
    export = read_conda_list((CONDA / "conda-list-export.txt").read_text(), "x.txt", MATRIX)
    ((_, pins),) = export.scopes
    assert {p.key: p.version for p in pins} == {
        "nvidia-nccl-cu12": "2.23.4.1",
        "torch": "2.5.1",
        "triton": "3.0.0",
    }
    assert export.machine == "x86_64" and export.python == "3.12.7"
    r = lint("conda-list-export.txt")
    assert (9, "torch-triton", Severity.ERROR) in where(r)
    explicit = lint("conda-explicit.txt")
    assert [w for w in where(explicit) if w[2] is not Severity.INFO] == []
    env = load_input(str(CONDA / "conda-explicit.txt"), MATRIX).env
    assert getattr(env.torch, "cuda", None) == "12.6"


def test_lines_not_understood_are_named() -> None:
    text = (
        "name: x\n"
        "dependencies:\n"
        "  - pytorch=2.5.1\n"
        "  - {bad: mapping}\n"
        "  - pip:\n"
        "    - torch==2.5.1 ; junk junk\n"
        "\tindented: with a tab\n"
        "channels: [conda-forge, {x: 1}]\n"
    )
    pf = read_environment_yml(text, "environment.yml", MATRIX)
    assert [n for _, n, _ in pf.problems] == [4, 6, 7, 8]
    p = subprocess.run(
        [sys.executable, "-m", "compat", "lint", str(CONDA / "environment-broken.yml"), "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert p.returncode == 1 and "environment-broken.yml:9: pin-conflict error" in p.stdout


def test_pip_over_conda_is_a_warning() -> None:
    text = "dependencies:\n  - pytorch=2.5.1\n  - pip:\n    - torch==2.6.0\n"
    pf = read_environment_yml(text, "environment.yml", MATRIX)
    assert [(n.line, n.finding.code, n.finding.severity) for n in pf.notes] == [
        (4, "pin-conflict", Severity.WARNING)
    ]
    ((_, pins),) = pf.scopes
    assert pins[0].version == "2.6.0"  # pip installs after conda: its torch is the one there


_YML_PIECES = [
    "name: x\n",
    "dependencies:\n",
    "channels:\n",
    "variables:\n",
    "  - pytorch=2.5.1=cuda126_x\n",
    "  - pytorch-cuda=12.4\n",
    "  - cuda-version=12.x\n",
    "  - nccl\n",
    "  - pip:\n",
    "      - torch==2.5.1\n",
    "      - -r req.txt\n",
    "  A: 'b'\n",
    "  - 'quoted # not a comment'\n",
    "  - [flow, list]\n",
    "  - &anchor x\n",
    "\t- tab\n",
    "---\n",
    "@EXPLICIT\n",
    "https://conda.anaconda.org/conda-forge/linux-64/pytorch-2.5.1-cuda126_0.conda#00\n",
    "pytorch=2.5.1=cuda126_0\n",
    "# platform: linux-aarch64\n",
    "\x00\ud800",
]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.one_of(
        st.lists(st.sampled_from(_YML_PIECES), max_size=30).map("".join), st.text(max_size=300)
    ),
    st.sampled_from(["environment.yml", "conda-list.txt"]),
)
def test_any_text_gives_a_result_or_a_compat_error(text: str, name: str) -> None:
    try:
        if name.endswith(".yml"):
            pf = read_environment_yml(text, name, MATRIX, ReadOptions(read=lambda p: "triton\n"))
        else:
            pf = read_conda_list(text, name, MATRIX)
        read_pins(name, text, MATRIX)
    except CompatError:
        return
    for _, pins in pf.scopes:
        assert all(p.line >= 1 for p in pins)
    lint_files([(name, text)], DB)
