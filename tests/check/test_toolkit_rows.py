"""CUDA toolkit rows the checks lean on: a torch 2.0 (CUDA 11.7) build on the CUDA 11 minor-version
floor runs (info), below it does not (error naming the floor, never "None")."""

from __future__ import annotations

from pathlib import Path

import pytest

from compat.inputs import apply_overrides, load_from
from compat.matrix.load import Matrix
from compat.models import Severity
from compat.pipeline import check, load_database


@pytest.mark.parametrize(
    ("driver", "severity", "floor"),
    [("450.80.02", Severity.INFO, "515.43.04"), ("418.39", Severity.ERROR, "450.80.02")],
)
def test_torch_2_0_on_old_drivers(
    tmp_path: Path, driver: str, severity: Severity, floor: str
) -> None:
    freeze = tmp_path / "requirements.txt"
    freeze.write_text("torch==2.0.1\ntriton==2.0.0\n", encoding="utf-8")
    db = load_database()
    env = apply_overrides(load_from(str(freeze), db.matrix), db.matrix, driver, ("a100",))
    found = [f for f in check(env, db) if f.code == "driver-too-old" and "torch" in f.message]
    assert [f.severity for f in found] == [severity]
    assert any(floor in fix for fix in found[0].fix) and not any("None" in x for x in found[0].fix)


def test_every_cuda_the_generated_data_pulls_has_a_toolkit_row() -> None:
    m = Matrix()
    pulled = {
        r.cuda
        for name in m.projects()
        for r in m.releases(name).values()
        if r.cuda and "." in r.cuda
    }
    rows = {f"{t.cuda.major}.{t.cuda.minor}" for t in m.toolkits}
    assert pulled - rows == set()
