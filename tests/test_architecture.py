"""The package's shape: no import cycles, checks and the pipeline free of I/O, one entry for crashes."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "compat"


def _module(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """Every compat module and the compat modules it imports (at any depth in the file)."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        deps: set[str] = set()
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                # The module itself, or the package a name was taken from.
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t.startswith("compat") and t != name:
                    deps.add(t)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _package_edges(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    # A package's __init__ re-exporting its modules is not a cycle with them.
    return {(a, b) for a, deps in graph.items() for b in deps if not b.startswith(a + ".")}


def test_the_module_graph_has_no_cycles() -> None:
    graph = _imports()
    edges = _package_edges(graph)
    pruned: dict[str, set[str]] = {v: set() for v in graph}
    for a, b in edges:
        pruned[a].add(b)
    assert _cycles(pruned) == []


@pytest.mark.parametrize("folder", ["check", "advisories"])
def test_checks_and_matching_do_no_io(folder: str) -> None:
    """check/ and the advisory matcher judge values: no open(), os, subprocess, probes."""
    banned_calls = {"open"}
    banned_modules = {"os", "subprocess", "socket", "shutil", "compat.probe", "pathlib"}
    allowed = {("advisories", "schema.py"), ("advisories", "__init__.py")}  # loading is schema's
    for path in sorted((PACKAGE / folder).glob("*.py")):
        if (folder, path.name) in allowed:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in banned_calls, f"{path.name} calls {node.func.id}()"
            if isinstance(node, ast.Import):
                for a in node.names:
                    assert a.name.split(".")[0] not in banned_modules, f"{path.name}: {a.name}"
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not any(
                    node.module == m or node.module.startswith(m + ".") for m in banned_modules
                ), f"{path.name} imports {node.module}"


def test_a_broken_command_module_is_a_crash_not_no_such_command(tmp_path: Path) -> None:
    code = (
        "import sys, compat.cli as c\n"
        "c.COMMANDS['explain'] = 'compat.commands.no_such_module:cmd'\n"
        "c.main(['explain'])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 70, proc.stderr
    assert "internal error: ModuleNotFoundError" in proc.stderr
    assert "No such command" not in proc.stderr
    (report,) = tmp_path.glob("compat-crash-*.txt")
    assert "Traceback" in report.read_text()


def test_an_unexpected_exception_exits_70_with_a_report(tmp_path: Path) -> None:
    code = (
        "import compat.pipeline as p, compat.cli as c\n"
        "def boom(*a, **k):\n    raise RuntimeError('bug')\n"
        "p.check = boom\n"
        "import compat.commands.check as cc\n"
        "cc.check = boom\n"
        "c.main(['check', '--from', 'tests/assets/freeze/sglang-0.4.6-good.txt'])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PACKAGE.parent,
        env={"TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert proc.returncode == 70, proc.stderr
    assert "compat: internal error: RuntimeError: bug" in proc.stderr
    assert "this is a bug in compat, not a finding" in proc.stderr


def test_tests_run_with_a_private_home() -> None:
    """The autouse fixture in conftest.py: compat's caches and data folder are not the user's."""
    import os

    home = Path(os.environ["HOME"])
    assert "pytest" in str(home) or str(home).startswith("/tmp")
    from compat.matrix.tomlfile import cache_root

    assert str(cache_root()).startswith(str(home))
