"""`compat matrix validate | show` on the bundled database and on a broken one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BROKEN = Path(__file__).parent / "assets" / "matrices" / "broken"


def compat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "compat", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_bundled_database_validates() -> None:
    p = compat("matrix", "validate")
    assert p.returncode == 0, p.stderr


def test_broken_database_reports_every_problem_with_file_and_key() -> None:
    p = compat("matrix", "validate", "--path", str(BROKEN))
    assert p.returncode == 3
    err = p.stderr
    assert "Traceback" not in err
    for expected in (
        "torch.toml: releases.2.7.1.requires[0]: invalid requirement",
        "torch.toml: releases.2.7.1.requires[1]: expected a string",
        "torch.toml: releases.2.7.1.requires_python: invalid specifier",
        "torch.toml: releases.2.7.1.yanked: expected bool",
        "torch.toml: releases.2.7.1.source: missing provenance",
        "torch.toml: releases.not-a-version: invalid version",
        "releases.not-a-version.source.method: expected pep658, range, sdist or none",
        "cuda.toml: toolkit[0].archs[1]: invalid compute capability",
        "cuda.toml: toolkit[0].source: expected a URL",
        "gpus.toml: gpu[0].memory_gib: expected a positive number",
        "gpus.toml: meta.pci_ids_version: missing or empty",
        "COMPAT-9998.toml: invalid TOML",
        "COMPAT-9999.toml",
    ):
        assert expected in err, expected


def test_show_release_and_project() -> None:
    p = compat("matrix", "show", "torch==2.7.1", "--json")
    doc = json.loads(p.stdout)
    assert doc["cuda"] == "12.6"
    assert any(r.startswith("triton==3.3.1") for r in doc["requires"])
    assert doc["source"]["file"].startswith("torch-2.7.1-") and len(doc["source"]["sha256"]) == 64
    p = compat("matrix", "show", "vllm")
    assert "0.10.1.1" in p.stdout
    p = compat("matrix", "show", "torch==9.9.9")
    assert p.returncode == 2 and "not in the database" in p.stderr


def test_show_build_facts_with_their_methods() -> None:
    p = compat("matrix", "show", "sglang-kernel==0.4.10")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "build facts      sglang_kernel-0.4.10-" in out
    assert "libcudart.so.13 in sgl_kernel/" in out and "[DT_NEEDED" in out
    assert "torch ABI      imports " in out and "built against torch 2.14.0" in out
    assert "[the torch symbols its .dynsym imports" in out
    p = compat("matrix", "show", "sglang-kernel==0.4.10", "--json")
    facts = json.loads(p.stdout)["build_facts"]
    assert facts["cuda"]["majors"] == [13]
    assert "2.14.0" in facts["torch"]["built_against"]
    assert facts["bytes_read"] < 5 * 2**20  # ranges of a ~350 MB wheel
    # A pure-Python release has no build facts.
    assert (
        json.loads(compat("matrix", "show", "sglang==0.5.2", "--json").stdout)["build_facts"]
        is None
    )
