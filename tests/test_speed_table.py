"""The README's speed table is the recorded benchmark runs, made by scripts/bench.py: editing a
figure by hand, or recording a run without regenerating the table, fails here."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench", ROOT / "scripts" / "bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_table_is_made_from_the_recorded_runs() -> None:
    b = bench()
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    _, _, rest = text.partition(b.TABLE_START + "\n")
    table, _, _ = rest.partition(b.TABLE_END)
    assert table == b.readme_table(), "run: python scripts/bench.py --update-readme"


def test_each_recorded_run_holds_every_command_the_benchmark_times() -> None:
    b = bench()
    for _, path in b.RECORDED:
        rows = b.recorded(path)
        for name in ("python -c pass", "floor (scripts/floor.py)", "pip check", "compat check"):
            assert name in rows, (path, name)
        assert rows["floor (scripts/floor.py)"][1] == "1.00"
