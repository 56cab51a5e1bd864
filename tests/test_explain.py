"""`compat explain`: the text shipped in the package, kept equal to docs/findings.md."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from compat.advisories import load_advisories
from compat.codes import FINDINGS
from compat.commands.explain import explain, explain_code, overview
from compat.errors import UsageError
from compat.models import Code
from compat.resources import advisories_dir

DOC = Path(__file__).parents[1] / "docs" / "findings.md"


def _norm(text: str) -> str:
    return " ".join(text.split())


def doc_table() -> list[tuple[str, str]]:
    return re.findall(r"^\| `([a-z-]+)` \| (.+?) \|$", DOC.read_text(), re.M)


def doc_paragraphs() -> dict[str, str]:
    found = re.findall(r"^\*\*([a-z-]+)\.\*\* (.*?)(?=\n\n|\Z)", DOC.read_text(), re.M | re.S)
    return {code: _norm(text) for code, text in found}


def test_every_code_has_text() -> None:
    assert list(FINDINGS) == [c.value for c in Code]
    for code, t in FINDINGS.items():
        assert t.meaning and t.decided and t.fix, code


def test_docs_page_is_rendered_from_the_shipped_table() -> None:
    """docs/findings.md is compat/codes.py rendered (scripts/findings_doc.py --write)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "findings_doc", DOC.parents[1] / "scripts" / "findings_doc.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.render() == DOC.read_text(encoding="utf-8")
    assert doc_table() == [(code, t.meaning) for code, t in FINDINGS.items()]
    assert set(doc_paragraphs()) == set(FINDINGS)


@pytest.mark.parametrize("code", [c.value for c in Code])
def test_explain_each_code(code: str) -> None:
    text = explain(code.upper())
    assert text.startswith(f"{code}: {FINDINGS[code].meaning}\n")
    assert "How compat decides:" in text and "Fixes:" in text
    assert text == explain_code(code) or code == "known-crash"


def test_known_crash_lists_the_advisories() -> None:
    text = explain("known-crash")
    for adv in load_advisories(advisories_dir()):
        assert adv.id in text


def test_advisory_in_full() -> None:
    text = explain("compat-0003")
    assert text.startswith("COMPAT-0003  [crash]")
    assert "--disable-custom-all-reduce" in text
    assert "https://github.com/radixark/miles/issues/1176" in text


def test_unknown_id_gives_close_matches() -> None:
    with pytest.raises(UsageError) as exc:
        explain("torch-trion")
    assert exc.value.exit_code == 2
    assert exc.value.hint == "did you mean: torch-triton, torch-companion"
    with pytest.raises(UsageError) as exc:
        explain("COMPAT-003")
    assert exc.value.hint is not None and exc.value.hint.startswith("did you mean: COMPAT-0003,")
    with pytest.raises(UsageError) as exc:
        explain("zzz")
    assert exc.value.hint is not None and exc.value.hint.startswith("finding codes: framework-pin")


def test_overview_lists_codes_and_advisories() -> None:
    text = overview()
    for code in FINDINGS:
        assert f"  {code} " in text
    assert "COMPAT-0001" in text


def test_cli() -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "compat", "explain", "cuda-mix"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0 and ok.stdout.startswith("cuda-mix: more than one CUDA major")
    bad = subprocess.run(
        [sys.executable, "-m", "compat", "explain", "cuda-mx"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "did you mean: cuda-mix" in bad.stderr
