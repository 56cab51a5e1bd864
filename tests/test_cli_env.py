"""The CLI as a real subprocess, as users and CI run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import make_dist


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "compat", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_env_text_on_this_machine() -> None:
    proc = run("env")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Python ")
    for heading in ("Driver", "GPUs", "Distributions", "Environment variables", "Caches"):
        assert heading in proc.stdout


def test_env_json_to_file_reads_back(tmp_path: Path) -> None:
    out = tmp_path / "env.json"
    proc = run("env", "--json", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    data = json.loads(out.read_text())
    assert data["schema"] == "compat.env/1"
    assert data["python"]["version"].startswith(f"{sys.version_info[0]}.{sys.version_info[1]}")


def test_env_of_another_interpreter_sees_its_packages(tmp_path: Path) -> None:
    site = tmp_path / "site"
    make_dist(site, "torch", "2.5.1+cu124")
    make_dist(site, "sglang", "0.4.6.post1")
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    proc = run("env", "--json", "--interpreter", sys.executable, "--no-host", env=env)
    assert proc.returncode == 0, proc.stderr
    names = {d["name"]: d["version"] for d in json.loads(proc.stdout)["distributions"]}
    assert names["torch"] == "2.5.1+cu124" and names["sglang"] == "0.4.6.post1"
    # The old spelling still works, and says which to use: --python means a version elsewhere.
    old = run("env", "--json", "--python", sys.executable, "--no-host", env=env)
    assert old.returncode == 0 and json.loads(old.stdout) | {"created": ""} == json.loads(
        proc.stdout
    ) | {"created": ""}
    assert "--python PATH is deprecated; use --interpreter PATH" in old.stderr


def test_check_python_takes_a_version_and_points_paths_to_interpreter() -> None:
    bad = run(
        "check", "--from", "tests/assets/freeze/sglang-0.4.6-good.txt", "--python", sys.executable
    )
    assert bad.returncode == 2
    assert "expected a Python version such as 3.11" in bad.stderr
    assert "use --interpreter PATH" in bad.stderr
    # Digits of other scripts are not a version (they made every marker false before).
    arabic = run(
        "check",
        "--from",
        "tests/assets/freeze/sglang-0.4.6-good.txt",
        "--python",
        "\u0663.\u0661\u0661",
    )
    assert arabic.returncode == 2


def test_env_bad_python_is_usage_error(tmp_path: Path) -> None:
    proc = run("env", "--interpreter", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert "cannot run the interpreter" in proc.stderr and "hint:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_option_is_usage_error() -> None:
    proc = run("env", "--bogus")
    assert proc.returncode == 2 and "No such option" in proc.stderr
