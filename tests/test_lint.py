"""`compat lint`: pins that cannot live together, mapped to their lines, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compat.lint import (
    FILE_PATTERN,
    LintResult,
    Target,
    exit_code,
    format_sarif,
    format_text,
    kind_of,
    lint_files,
    read_pyproject,
    read_requirements,
)
from compat.models import Severity
from compat.pipeline import load_database

LINT = Path(__file__).parent / "assets" / "lint"
DB = load_database()


def lint(*names: str, target: Target | None = None) -> LintResult:
    files = [(str(LINT / n), (LINT / n).read_text()) for n in names]
    return lint_files(files, DB, target, lambda p: Path(p).read_text())


def where(result: LintResult) -> list[tuple[str, int, str, Severity]]:
    return [
        (Path(lf.path).name, lf.line, lf.finding.code, lf.finding.severity)
        for lf in result.findings
    ]


def run(*args: str, cwd: Path = LINT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "compat", "lint", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def test_torch_with_another_triton_is_an_error_on_the_triton_line() -> None:
    r = lint("requirements-torch-triton.txt")
    # line 5 starts the continued `triton==3.1.0 \ --hash=...` line; numpy's range is not judged
    assert where(r) == [("requirements-torch-triton.txt", 5, "torch-triton", Severity.ERROR)]
    f = r.findings[0]
    assert (
        "triton 3.1.0 does not match torch 2.7.1+cu126, which requires triton==3.3.1"
        in f.finding.message
    )
    assert [p.line for p in f.related] == [4]
    assert exit_code(r, "error") == 1


def test_sglang_pinning_another_torch() -> None:
    r = lint("requirements-sglang-torch.txt")
    assert where(r) == [("requirements-sglang-torch.txt", 2, "framework-pin", Severity.ERROR)]
    msg = r.findings[0].finding.message
    assert msg == ("sglang 0.4.6.post1 requires torch==2.6.0 ([srt]), but torch 2.7.1 is pinned")


def test_torchvision_pinned_to_another_torch() -> None:
    r = lint("requirements-torchvision.txt")
    assert where(r) == [("requirements-torchvision.txt", 2, "torch-companion", Severity.ERROR)]
    assert "built for torch==2.6.0, but torch 2.7.1 is pinned" in r.findings[0].finding.message


def test_cu124_torch_beside_cu126_kernels() -> None:
    r = lint("constraints-cu124-cu126.txt")
    assert where(r) == [
        ("constraints-cu124-cu126.txt", 4, "cuda-mix", Severity.ERROR),
        ("constraints-cu124-cu126.txt", 5, "cuda-mix", Severity.ERROR),
    ]
    assert "built for CUDA 12.6, torch 2.5.1+cu124 for CUDA 12.4" in r.findings[1].finding.message


def test_the_tuple_sglang_pins_is_clean() -> None:
    r = lint("requirements-good.txt")
    assert r.findings == () and r.problems == ()
    assert exit_code(r, "error") == 0


def test_a_range_that_excludes_every_fitting_release_is_an_info() -> None:
    r = lint("requirements-range.txt")
    # the darwin pin is left out by its marker; the Linux range is judged against sglang's pin
    assert where(r) == [("requirements-range.txt", 2, "framework-pin", Severity.INFO)]
    msg = r.findings[0].finding.message
    assert msg.startswith("torch>=2.7 admits no release known to compat that fits the pins here")
    assert "requires torch==2.6.0" in msg
    assert exit_code(r, "error") == 0
    assert exit_code(r, "info") == 1


def test_a_range_with_a_fitting_release_is_quiet(tmp_path: Path) -> None:
    f = tmp_path / "requirements.txt"
    f.write_text("sglang[srt]==0.4.6.post1\ntorch>=2.5,<2.8\ntriton\n")
    r = lint_files([(str(f), f.read_text())], DB)
    assert r.findings == ()


def test_missing_packages_are_left_to_the_resolver(tmp_path: Path) -> None:
    # sglang alone: torch, triton... are not pinned here, so nothing is "not installed"
    f = tmp_path / "requirements.txt"
    f.write_text("sglang[srt]==0.4.6.post1\n")
    assert lint_files([(str(f), f.read_text())], DB).findings == ()


def test_includes_map_to_the_included_file_and_are_not_reported_twice() -> None:
    r = lint("requirements-include.txt", "constraints-cu124-cu126.txt")
    assert [(Path(p).name, n) for p, n, _ in r.problems] == [("requirements-include.txt", 2)]
    assert "requirements-missing.txt" in r.problems[0][2]
    assert where(r) == [
        ("constraints-cu124-cu126.txt", 4, "cuda-mix", Severity.ERROR),
        ("constraints-cu124-cu126.txt", 5, "cuda-mix", Severity.ERROR),
    ]
    assert exit_code(r, "error") == 3


def test_pyproject_extras_and_self_references() -> None:
    pf = read_pyproject(
        (LINT / "pyproject-extras" / "pyproject.toml").read_text(), "pyproject.toml"
    )
    scopes = {name: sorted(p.key for p in pins) for name, pins in pf.scopes}
    assert scopes == {
        "": ["requests", "torch"],
        "[all]": ["requests", "torch", "torchvision", "triton"],
        "[legacy]": ["requests", "torch", "triton"],
        "[vision]": ["requests", "torch", "torchvision"],
    }
    r = lint("pyproject-extras/pyproject.toml")
    # once, although the [legacy] and [all] scopes both hold it
    assert where(r) == [("pyproject.toml", 10, "torch-triton", Severity.ERROR)]
    assert [p.line for p in r.findings[0].related] == [5]


def test_pylock_lines_and_markers() -> None:
    r = lint("pylock.toml")
    # the Windows-only triton 3.0.0 is out by its marker; the directory entry has no version
    assert where(r) == [("pylock.toml", 14, "torch-triton", Severity.ERROR)]


def test_requirements_syntax() -> None:
    text = (
        "# c\n-i https://pypi.org/simple\n--extra-index-url https://x\n-e ./local\n"
        "torch @ https://download.pytorch.org/whl/cu124/torch-2.5.1%2Bcu124-cp311-cp311-linux_x86_64.whl\n"
        "flash-attn==2.7.4.post1 --config-settings=x=y  # inline comment\n"
        "numpy==1.* \n"
        "triton===3.1.0\n"
    )
    pins, problems = read_requirements(text, "r.txt")
    assert problems == []
    assert [(p.key, p.version, p.line) for p in pins] == [
        ("torch", "2.5.1+cu124", 5),
        ("flash-attn", "2.7.4.post1", 6),
        ("numpy", None, 7),
        ("triton", "3.1.0", 8),
    ]


def test_unreadable_line_is_exit_3_and_named() -> None:
    r = lint("requirements-broken.txt")
    assert [(Path(p).name, n) for p, n, _ in r.problems] == [("requirements-broken.txt", 2)]
    assert exit_code(r, "error") == 3
    assert format_text(r).startswith(
        f"{LINT / 'requirements-broken.txt'}:2: unreadable: not a requirement"
    )


def test_host_checks_only_when_the_host_is_given(tmp_path: Path) -> None:
    f = tmp_path / "requirements.txt"
    f.write_text("torch==2.7.1\ntriton==3.3.1\n")
    files = [(str(f), f.read_text())]
    assert lint_files(files, DB).findings == ()
    # with a target, the host checks run (which ones fire depends on the curated tables)
    lint_files(files, DB, Target(driver="470.57.02", gpus=("sm_90",)))


def test_ignore_drops_a_code() -> None:
    assert (
        lint("requirements-torch-triton.txt", target=Target(ignore=("torch-triton",))).findings
        == ()
    )


def test_sarif_has_file_and_line() -> None:
    doc = json.loads(format_sarif(lint("requirements-torchvision.txt")))
    res = doc["runs"][0]["results"][0]
    loc = res["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"].endswith("requirements-torchvision.txt")
    assert loc["region"]["startLine"] == 2
    assert res["ruleId"] == "torch-companion" and res["level"] == "error"


@pytest.mark.parametrize(
    ("path", "kind", "hooked"),
    [
        ("requirements.txt", "requirements", True),
        ("deploy/requirements-serve.txt", "requirements", True),
        ("requirements/gpu.txt", "requirements", True),
        ("constraints.txt", "requirements", True),
        ("sub/pyproject.toml", "pyproject", True),
        ("pylock.toml", "pylock", True),
        ("pylock.serve.toml", "pylock", True),
        ("requirements.in", "requirements", False),
        ("setup.cfg", None, False),
        ("uv.lock", "uv.lock", True),
        ("deploy/Dockerfile", "dockerfile", True),
        ("Dockerfile.cuda", "dockerfile", True),
        ("docker/serve.Dockerfile", "dockerfile", True),
        ("Containerfile", "dockerfile", True),
        ("environment.yml", None, True),
        ("envs/environment-gpu.yaml", None, True),
        ("docker-compose.yml", None, False),
    ],
)
def test_file_names(path: str, kind: str | None, hooked: bool) -> None:
    assert kind_of(path) == kind
    assert bool(FILE_PATTERN.search(path)) is hooked


def test_cli_output_and_exit_codes() -> None:
    bad = run("requirements-torch-triton.txt")
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[0] == (
        "requirements-torch-triton.txt:5: torch-triton error: triton 3.1.0 does not match torch 2.7.1+cu126, "
        "which requires triton==3.3.1"
    )
    assert "1 error(s)" in bad.stderr
    good = run(
        "requirements-good.txt", "pyproject-extras/pyproject.toml", "--ignore", "torch-triton"
    )
    # A clean run says so in one line.
    assert (good.returncode, good.stdout, good.stderr) == (
        0,
        "compat lint: 2 file(s) checked, no findings\n",
        "",
    )
    assert (
        "fix: requirements-torch-triton.txt:5: change `triton==3.1.0` to `triton==3.3.1`"
        in bad.stdout
    )
    assert run("requirements-broken.txt").returncode == 3
    assert run().returncode == 2
    assert run("no-such-file.txt").returncode == 3
    js = run("--format", "json", "requirements-range.txt", "--fail-on", "info")
    assert js.returncode == 1
    doc = json.loads(js.stdout)
    assert doc["schema"] == "compat.lint/1"
    assert doc["findings"][0]["line"] == 2 and doc["findings"][0]["severity"] == "info"


def test_includes_loop_nul_and_proc_are_bounded_and_quiet(tmp_path: Path) -> None:
    """`-r ./requirements.txt` inside itself, `-r a\\0b`, `-r /proc/self/environ`: each a problem
    line (exit 3), never a hang, traceback, or the included file's lines echoed with secrets."""
    req = tmp_path / "requirements.txt"
    req.write_text(
        "-r ./requirements.txt\n-r ../" + tmp_path.name + "/requirements.txt\n"
        "-r a\x00b\n-r /proc/self/environ\ntorch==2.7.1\n"
    )
    p = subprocess.run(
        [sys.executable, "-m", "compat", "lint", str(req)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "VLLM_API_KEY": "sk-leakleakleakleak1234"},
    )
    assert p.returncode == 3, p.stdout + p.stderr
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr
    out = p.stdout + p.stderr
    assert "NUL byte" in out and "files under /proc and /sys are not a requirements file" in out
    assert "sk-leakleakleakleak1234" not in out
