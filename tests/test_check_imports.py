"""`compat check` runs before every launch: its path imports what a check needs and nothing of
the resolver, the sync, the network or the file formats it was not given (so its start-up cost
cannot grow silently; scripts/bench.py measures the time)."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FREEZE = ROOT / "tests" / "assets" / "freeze" / "300-lines.txt"
NEVER = (
    "compat.resolve",
    "compat.emit",
    "compat.lint",
    "compat.diff",
    "compat.matrix.sync",
    "compat.matrix.pypi",
    "compat.matrix.buildfacts",
    "compat.matrix.launchsync",
    "compat.matrix.launch_extract",
    "compat.channel.update",
    "compat.inputs.dockerfile",
    "compat.inputs.uvlock",
    "compat.inputs.conda",
    "compat.inputs.requirements",
    "compat.advisories.osv",
    "httpx",
    "yaml",
    "ray",
    "tomllib",
    "tempfile",
    "secrets",
    "difflib",
    "zipfile",
    "torch",
)
SCRIPT = """
import atexit, json, os, sys
atexit.register(lambda: open(os.environ["MODULES_OUT"], "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["compat", *json.loads(os.environ["ARGS"])]
import runpy
runpy.run_module("compat", run_name="__main__")
"""


def modules_of(args: list[str], tmp_path: Path, replay: bool = False) -> set[str]:
    out = tmp_path / "modules.json"
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, MODULES_OUT=str(out), ARGS=json.dumps(args), PYTHONPATH=path)
    if not replay:  # the full path (a repeat check is otherwise answered from its record)
        env["COMPAT_NO_REPLAY"] = "1"
    # warm: the parsed-data cache exists (a first run parses TOML once)
    for _ in range(2):
        subprocess.run(
            [sys.executable, "-c", SCRIPT], env=env, capture_output=True, timeout=120, check=False
        )
    return set(json.loads(out.read_text()))


@pytest.mark.parametrize(
    "args", [["check"], ["check", "--from", str(FREEZE)], ["env"]], ids=["live", "from", "env"]
)
def test_the_check_path_imports_nothing_it_does_not_need(args: list[str], tmp_path: Path) -> None:
    loaded = modules_of(args, tmp_path)
    assert "compat.pipeline" in loaded or args == ["env"]
    ours = loaded - _loaded_by_dependencies()
    found = sorted(m for m in ours for n in NEVER if m == n or m.startswith(n + "."))
    assert found == [], found


@functools.lru_cache(maxsize=1)
def _loaded_by_dependencies() -> frozenset[str]:
    """What importing compat's dependencies loads by itself (click 8.5 imports tempfile and
    zipfile, say): not compat's doing, and not what this test guards."""
    code = "import sys, json, click, msgspec, packaging.version; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return frozenset(json.loads(out.stdout))


def test_a_replayed_check_imports_only_the_standard_library(tmp_path: Path) -> None:
    """A repeat check answered from its record (compat.answers) loads no third-party module and
    none of compat's records, parsers or checks: its cost is the reading it must do."""
    import time

    time.sleep(2.1)  # what the first run reads must be older than the run (no racy record)
    loaded = modules_of(["check"], tmp_path, replay=True)
    assert "compat.answers" in loaded and "compat.pipeline" not in loaded
    ours = {m for m in loaded if m.split(".")[0] in ("compat", "click", "packaging", "msgspec")}
    light = {"compat", "compat.answers", "compat.entry", "compat.lazy", "compat.probe"}
    light |= {"compat.stamps", "compat.streams"}
    # the NVML child's modules load only where there is a driver to ask
    assert (
        light | {"compat.probe.hostread"}
        <= ours
        <= light
        | {
            "compat.probe.hostread",
            "compat.probe.bounded",
            "compat.probe.nvml",
        }
    )


# Loaded only when a launch command is given: its parser, its flag tables, the model probe and
# the memory model.
LAUNCH_ONLY = (
    "compat.launch.parse",
    "compat.launch.argv",
    "compat.launch.settings",
    "compat.launch.data",
    "compat.matrix.launchdata",
    "compat.probe.model",
    "compat.memory",
    "compat.model",
)


def test_a_check_without_a_launch_loads_no_launch_parser(tmp_path: Path) -> None:
    plain = modules_of(["check"], tmp_path)
    assert not sorted(m for m in plain if m in LAUNCH_ONLY)
    with_launch = modules_of(
        ["check", "--", "vllm", "serve", "Qwen/Qwen3-8B", "--tensor-parallel-size", "2"], tmp_path
    )
    assert {"compat.launch.parse", "compat.launch.argv", "compat.probe.model"} <= with_launch


def test_the_lazy_packages_resolve_every_name_they_export() -> None:
    import compat.inputs
    import compat.launch

    for package in (compat.launch, compat.inputs):
        for name in package.__all__:
            assert getattr(package, name) is not None, (package.__name__, name)
        with pytest.raises(AttributeError, match="no_such_name"):
            _ = package.no_such_name  # type: ignore[attr-defined]
