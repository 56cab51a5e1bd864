"""OSV export: every advisory is a valid OSV record (checked with jsonschema against OSV's
published schema), ranges map to PyPI ECOSYSTEM events, the rest to database_specific."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from compat.advisories.osv import events, to_osv
from compat.pipeline import load_database

SCHEMA = json.loads((Path(__file__).parent / "assets" / "osv" / "schema.json").read_text())


def _validator() -> Draft202012Validator:
    """OSV's schema as published on PyPI (tests/assets/osv/SOURCE.md), with one change: the id
    prefix rule of the current specification, which adds `x_` for local databases."""
    schema: dict[str, Any] = copy.deepcopy(SCHEMA)
    prefix = schema["$defs"]["prefix"]
    assert prefix["pattern"].startswith("^(") and prefix["pattern"].endswith(")-")
    prefix["pattern"] = "^(x_|" + prefix["pattern"][1:] + ")"  # as the current spec writes it
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_every_advisory_is_a_valid_osv_record() -> None:
    validator = _validator()
    advisories = load_database().advisories
    assert len(advisories) >= 50
    for adv in advisories:
        doc = json.loads(json.dumps(to_osv(adv)))
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, (adv.id, [f"{list(e.path)}: {e.message}" for e in errors])
        assert doc["id"] == f"x_{adv.id}"
        compat = doc["database_specific"]["compat"]
        assert compat["id"] == adv.id and compat["workarounds"]
        if adv.affected.gpu_cc:
            assert compat["gpu_compute_capabilities"]


def test_the_published_schema_itself_refuses_a_bad_record() -> None:
    validator = _validator()
    adv = load_database().advisories[0]
    doc = to_osv(adv)
    doc["affected"][0]["ranges"][0]["events"] = [{"fixed": "1.0"}]  # no introduced
    assert list(validator.iter_errors(doc))
    assert list(validator.iter_errors({"id": "COMPAT-1", "modified": "2026-01-01T00:00:00Z"}))


@pytest.mark.parametrize(
    ("spec", "expected", "left"),
    [
        (">=0.5.12,<0.5.15", [{"introduced": "0.5.12"}, {"fixed": "0.5.15"}], []),
        (">=0.18.1rc1.dev266", [{"introduced": "0.18.1rc1.dev266"}], []),
        ("==3.5.0", [{"introduced": "3.5.0"}, {"last_affected": "3.5.0"}], []),
        ("<2.5.1", [{"introduced": "0"}, {"fixed": "2.5.1"}], []),
        (">=2.0,<=2.3", [{"introduced": "2.0"}, {"last_affected": "2.3"}], []),
        (">=1.0,!=1.2", [{"introduced": "1.0"}], ["!=1.2"]),
    ],
)
def test_ranges_become_ecosystem_events(
    spec: str, expected: list[dict[str, str]], left: list[str]
) -> None:
    assert events(spec) == (expected, left)


def test_cli_export_and_list(tmp_path: Path) -> None:
    out = tmp_path / "osv"
    p = subprocess.run(
        [sys.executable, "-m", "compat", "advisories", "export", "--format", "osv", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    files = sorted(out.glob("x_COMPAT-*.json"))
    assert len(files) == len(load_database().advisories)
    validator = _validator()
    assert all(not list(validator.iter_errors(json.loads(f.read_text()))) for f in files)
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "compat",
            "advisories",
            "--package",
            "vllm",
            "--severity",
            "crash",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    docs = json.loads(listed.stdout)
    assert docs and all(d["database_specific"]["compat"]["severity"] == "crash" for d in docs)
    assert all("vllm" in {a["package"]["name"] for a in d["affected"]} for d in docs)


def test_filters() -> None:
    from compat.commands.advisories import select

    advs = load_database().advisories
    h100 = select(advs, gpu="H100 SXM5 80GB", gpu_cc=(9, 0))
    assert h100 and all(
        (9, 0) in a.affected.gpu_cc
        or not (a.affected.gpu_cc or a.affected.gpu_names)
        or any(n.lower() in "h100 sxm5 80gb" for n in a.affected.gpu_names)
        for a in h100
    )
    assert not any(a.is_withdrawn for a in select(advs))
    assert any(a.is_withdrawn for a in select(advs, withdrawn=True))
    assert all("graph" in (a.summary + a.details).lower() for a in select(advs, text="graph"))


def test_advisories_list_page_is_rendered_from_the_data() -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "advisories_doc.py"
    spec = importlib.util.spec_from_file_location("advisories_doc", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.render() == mod.DOC.read_text(encoding="utf-8"), (
        "run scripts/advisories_doc.py --write"
    )
