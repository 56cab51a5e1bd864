"""`compat check` end to end: real subprocesses for exit codes and formats; hypothesis over the readers."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compat.errors import InputError
from compat.inputs import env_from_freeze
from compat.matrix.load import Matrix
from compat.snapshot import loads

ASSETS = Path(__file__).parent / "assets"
BAD = str(ASSETS / "freeze" / "sglang-0.4.6-torch-2.7.1.txt")
GOOD = str(ASSETS / "freeze" / "sglang-0.4.6-good.txt")
H100 = str(ASSETS / "envs" / "h100-torch2.11-cu130.json")


def compat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "compat", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_exit_1_on_errors_and_text_report() -> None:
    p = compat("check", "--from", BAD)
    assert p.returncode == 1, p.stderr
    assert "ERRORS" in p.stdout and "[framework-pin]" in p.stdout and "fix: pip install" in p.stdout


def test_exit_0_on_a_good_tuple_and_fail_on() -> None:
    assert compat("check", "--from", GOOD, "--python", "3.11").returncode == 0
    assert compat("check", "--from", BAD, "--fail-on", "never").returncode == 0
    # Infos (host facts unknown) fail only when asked to.
    assert compat("check", "--from", GOOD, "--python", "3.11", "--fail-on", "info").returncode == 1


def test_ignore_codes() -> None:
    p = compat(
        "check",
        "--from",
        BAD,
        "--ignore",
        "framework-pin",
        "--ignore",
        "torch-triton",
        "--ignore",
        "torch-companion",
        # sgl-kernel 0.1.0 in this freeze is built for torch 2.4-2.6 (build facts).
        "--ignore",
        "kernel-torch",
    )
    assert p.returncode == 0, p.stdout


def test_json_format_is_versioned_and_complete(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    p = compat("check", "--from", BAD, "--format", "json", "-o", str(out))
    assert p.returncode == 1 and p.stdout == ""
    doc = json.loads(out.read_text())
    assert doc["schema"] == "compat.findings/1"
    f = next(x for x in doc["findings"] if x["code"] == "torch-triton")
    assert set(f) >= {"code", "severity", "message", "packages", "evidence", "fix", "references"}
    assert doc["summary"]["error"] >= 3


def test_sarif_format() -> None:
    p = compat("check", "--from", BAD, "--format", "sarif")
    doc = json.loads(p.stdout)
    assert doc["version"] == "2.1.0" and doc["$schema"].endswith("sarif-2.1.0.json")
    run = doc["runs"][0]
    rule_ids = {r["id"] for r in run["tool"]["driver"]["rules"]}
    assert {r["ruleId"] for r in run["results"]} <= rule_ids
    assert any(r["level"] == "error" and r["ruleId"] == "torch-triton" for r in run["results"])


def test_h100_snapshot_is_clean() -> None:
    p = compat("check", "--from", H100)
    assert p.returncode == 0, p.stdout
    assert "ERRORS" not in p.stdout and "WARNINGS" not in p.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "no installed packages"),
        (b"# only a comment\n\n", "no installed packages"),
        (b"torch==" + b"9" * 5000 + b"\n", "a version of 5000 characters"),
        (b"x" * 70_000 + b"\n", "is not a requirement"),
        (b"\xff\xfe garbage", "not UTF-8"),
        (b"torch==2.7.1\nthis is not a requirement !!\n", ":2: not a requirement"),
        (b"torch>=2.0\n", "not an exact pin"),
        (b"torch==2.x.y\n", ":1: not a requirement"),
        (b"torch===weird\n", "invalid version"),
        (b'{"schema": "compat.env/9"}', "compat.env/9 is not supported"),
        (b'{"schema": "compat.env/1", "gpus": 5}', "'gpus'"),
    ],
)
def test_bad_input_is_a_clear_exit_3(tmp_path: Path, content: bytes, message: str) -> None:
    f = tmp_path / "in.txt"
    f.write_bytes(content)
    p = compat("check", "--from", str(f))
    assert "Traceback" not in p.stderr
    assert p.returncode == 3, (p.returncode, p.stderr)
    assert message in p.stderr and "compat: error:" in p.stderr


def test_missing_file_and_bad_overrides() -> None:
    assert compat("check", "--from", "/nonexistent/file").returncode == 3
    p = compat("check", "--from", GOOD, "--gpu", "warp-drive-9000")
    assert p.returncode == 2 and "not a GPU compat knows" in p.stderr
    assert compat("check", "--from", GOOD, "--driver", "not.a.version!").returncode == 2
    assert compat("check", "--from", GOOD, "--env", "NOEQUALS").returncode == 2


def test_live_check_runs_here() -> None:
    p = compat("check")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith("compat check:")


# Property-based: any input gives an environment or a clean InputError, never a traceback.
_MATRIX = Matrix()
_line = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda n, v: f"{n}=={v}",
        st.sampled_from(["torch", "triton", "sglang", "vllm", "x_y"]),
        st.text(alphabet="0123456789.+abcdefrcpostdevu", min_size=1, max_size=12),
    ),
    st.sampled_from(
        [
            "# comment",
            "-e .",
            "--index-url https://x",
            "torch @ https://x/torch-2.5.1-cp311.whl",
            "a==1 \\",
            "",
            "   ",
        ]
    ),
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(_line, max_size=12))
def test_freeze_reader_never_crashes(lines: list[str]) -> None:
    with contextlib.suppress(InputError):
        env_from_freeze("\n".join(lines), "prop.txt", _MATRIX)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_keys = st.sampled_from(
    [
        "python",
        "torch",
        "driver",
        "gpus",
        "context",
        "distributions",
        "env",
        "caches",
        "launch",
        "created",
    ]
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(_keys, _json, max_size=6))
def test_snapshot_reader_never_crashes(doc: dict[str, object]) -> None:
    doc = {"schema": "compat.env/1", **doc}
    with contextlib.suppress(InputError):
        loads(json.dumps(doc), "prop.json")


def test_device_broken_snapshot_reads_back() -> None:
    # Written on the H100 machine with PyPI's torchvision 0.21.0 laid over torch 2.11.0+cu130;
    # there `import torchvision` failed with "operator torchvision::nms does not exist"
    # (tests/assets/device/broken-import.txt) and `compat check --deep` gave broken-check.txt.
    p = compat("check", "--from", str(ASSETS / "envs" / "h100-broken-torchvision0.21.json"))
    assert p.returncode == 1
    assert "torchvision 0.21.0 is built for torch==2.6.0, but torch 2.11.0+cu130" in p.stdout
    recorded = (ASSETS / "device" / "broken-check.txt").read_text()
    assert "does not export" in recorded and "libcudart.so.12" in recorded
    assert (
        "operator torchvision::nms does not exist"
        in (ASSETS / "device" / "broken-import.txt").read_text()
    )


def test_launch_after_double_dash_is_parsed() -> None:
    p = compat(
        "check",
        "--from",
        str(ASSETS / "envs" / "h100-torch2.11-cu130.json"),
        "--",
        "vllm",
        "serve",
        "Qwen/Qwen3-Next-80B-A3B-Instruct",
        "--tensor-parallel-size",
        "8",
    )
    # No vllm installed: no version check fires; the snapshot's one H100 cannot hold tp 8.
    assert p.returncode == 1, p.stdout + p.stderr
    assert "[parallelism] the launch needs 8 GPUs (tp=8 x pp=1) but this process sees 1" in p.stdout


def test_unknown_ignore_code_is_a_usage_error_with_close_matches() -> None:
    p = compat("check", "--from", GOOD, "--ignore", "torch-trition")
    assert p.returncode == 2
    assert "--ignore 'torch-trition': not a finding code or advisory id" in p.stderr
    assert "did you mean torch-triton" in p.stderr
    ok = compat("check", "--from", BAD, "--ignore", "FRAMEWORK-PIN", "--ignore", "compat-0001")
    assert ok.returncode in (0, 1) and "[framework-pin]" not in ok.stdout, ok.stderr


def test_launch_command_without_the_separator_gets_a_hint() -> None:
    p = compat("check", "--from", GOOD, "python", "-m", "sglang.launch_server", "--tp", "2")
    assert p.returncode == 2
    assert "hint: put the server launch command after `--`" in p.stderr


def test_deep_with_from_says_it_needs_a_live_interpreter() -> None:
    p = compat("check", "--from", GOOD, "--deep")
    assert p.returncode == 2
    assert "--deep reads the installed files: it needs a live interpreter" in p.stderr


def test_installs_from_source_are_reported_not_dropped(tmp_path: Path) -> None:
    freeze = tmp_path / "freeze.txt"
    freeze.write_text(
        "-e git+https://github.com/sgl-project/sglang.git@abc123#egg=sglang&subdirectory=python\n"
        "torch==2.7.1\ntriton==3.3.1\n"
    )
    p = compat("check", "--from", str(freeze))
    assert p.returncode == 0, p.stderr
    assert (
        "sglang is installed from source (git+https://github.com/sgl-project/sglang.git" in p.stdout
    )
    assert "its pins are not checked" in p.stdout
    noted = tmp_path / "noted.txt"
    noted.write_text(
        "# Editable install with no version control (vllm==0.10.1.1)\n-e /src/vllm\ntorch==2.7.0\n"
    )
    q = compat("check", "--from", str(noted))
    assert q.returncode == 1 and "vllm 0.10.1.1 requires torch==2.7.1" in q.stdout, q.stdout


def test_a_launch_of_a_framework_that_is_not_installed_says_so() -> None:
    p = compat("check", "--from", GOOD, "--", "vllm", "serve", "Qwen/Qwen3-8B")
    assert p.returncode == 0, p.stderr
    assert "[launch-flag] the launch command starts vllm, which is not installed" in p.stdout
    assert "OK: no findings" not in p.stdout


def test_kernel_without_a_torch_pin_judged_by_its_build_facts(tmp_path: Path) -> None:
    """The seed freeze: sgl-kernel 0.1.0 declares no torch pin; its wheel imports symbols that
    torch 2.7.1 does not export. sglang pins torch 2.6.0, for which it is built: the fix is the
    report's one tuple. Without a framework, 0.2.9 is the newest release built for 2.7.1."""
    p = compat("check", "--from", BAD, "--format", "json")
    assert p.returncode == 1, p.stderr
    found = [f for f in json.loads(p.stdout)["findings"] if f["code"] == "kernel-torch"]
    assert len(found) == 1 and found[0]["severity"] == "error"
    assert found[0]["message"].startswith("sgl-kernel 0.1.0 was built for torch 2.4.0 ... 2.6.0")
    assert found[0]["fix"][0].startswith("pip install 'torch==2.6.0' 'triton==3.2.0'")
    alone = tmp_path / "freeze.txt"
    alone.write_text("torch==2.7.1\ntriton==3.3.1\nsgl-kernel==0.1.0\n")
    p = compat("check", "--from", str(alone), "--format", "json")
    found = [f for f in json.loads(p.stdout)["findings"] if f["code"] == "kernel-torch"]
    assert "pip install 'sgl-kernel==0.2.9'" in found[0]["fix"][0]
