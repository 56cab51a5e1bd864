"""Another interpreter (`--interpreter PATH`): its import path without its site hooks, and every
way a wrong "interpreter" can answer, as a usage error with a bound on time and output."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from compat.errors import UsageError
from compat.probe.python import other


def _venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv


def test_site_hooks_do_not_run_but_pth_paths_count(tmp_path: Path) -> None:
    venv = _venv(tmp_path)
    site = next(venv.glob("lib/python*/site-packages"))
    marker = tmp_path / "ran"
    (site / "evil.pth").write_text(f"import os; open({str(marker)!r}, 'w').write('pth')\n")
    (site / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').write('sitecustomize')\n")
    extra = tmp_path / "src"
    extra.mkdir()
    (site / "editable.pth").write_text(f"{extra}\n# a comment\n")
    got = other(str(venv / "bin" / "python"))
    assert not marker.exists(), marker.read_text()
    assert str(site) in got.path and str(extra) in got.path
    assert got.info.version == ".".join(map(str, sys.version_info[:3]))


def _fake(tmp_path: Path, body: str) -> str:
    exe = tmp_path / "python"
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("echo '{}'", "missing value at 'version'"),
        ("echo null", "expected an object"),
        ("echo '[1,2'", "not valid JSON"),
        ('echo \'{"version": "3.11.7", "path": [1]}\'', "expected a string"),
        ('echo \'{"version": "twelve"}\'', "not a Python version"),
        ("yes", "printed more than"),
        ("sleep 30", "did not answer within"),
        ("exit 3", "exited 3"),
    ],
)
def test_wrong_interpreters_are_usage_errors(tmp_path: Path, body: str, needle: str) -> None:
    with pytest.raises(UsageError) as info:
        other(_fake(tmp_path, body), timeout=2.0)
    assert needle in info.value.message


def test_missing_interpreter(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot run the interpreter"):
        other(str(tmp_path / "nope"))
    assert os.path.exists(sys.executable)
