"""On a real NVIDIA machine (opt-in: pytest -m gpu): what compat probes matches the driver and torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.gpu


def compat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "compat", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def snapshot() -> dict[str, object]:
    p = compat("env", "--json")
    assert p.returncode == 0, p.stderr
    data: dict[str, object] = json.loads(p.stdout)
    return data


def test_driver_and_gpus_match_nvidia_smi(snapshot: dict[str, object]) -> None:
    smi = shutil.which("nvidia-smi")
    if not smi:
        pytest.skip("nvidia-smi not on PATH")
    out = subprocess.run(
        [smi, "--query-gpu=index,name,compute_cap,driver_version", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [[c.strip() for c in line.split(",")] for line in out.strip().splitlines()]
    gpus = snapshot["gpus"]
    assert isinstance(gpus, list) and len(gpus) == len(rows)
    for g, row in zip(gpus, rows):
        assert (str(g["index"]), g["name"], g["compute_capability"]) == (row[0], row[1], row[2])
    driver = snapshot["driver"]
    assert isinstance(driver, dict) and driver["version"] == rows[0][3]
    assert isinstance(driver["cuda"], str)


def test_torch_build_matches_import(snapshot: dict[str, object]) -> None:
    torch = pytest.importorskip("torch")
    t = snapshot["torch"]
    assert isinstance(t, dict)
    assert t["version"] == torch.__version__ and t["cuda"] == torch.version.cuda
    cc = torch.cuda.get_device_capability(0)
    gpus = snapshot["gpus"]
    assert isinstance(gpus, list) and gpus[0]["compute_capability"] == f"{cc[0]}.{cc[1]}"


def test_arch_list_from_fatbin_headers_matches_torch() -> None:
    """--deep reads torch's arch list from the fatbin headers of libtorch_cuda.so, not importing
    torch: the same list torch.cuda.get_arch_list() reports (sm_90a read as sm_90)."""
    torch = pytest.importorskip("torch")
    from compat.probe.deepcache import FactCache
    from compat.probe.torch import fatbin_arch_list

    got = fatbin_arch_list(str(Path(torch.__file__).parent / "lib"), FactCache(None))
    want = {a.rstrip("af") for a in torch.cuda.get_arch_list()}
    assert got.archs and set(got.archs) == want, (got, torch.cuda.get_arch_list())


def test_live_stack_check_is_clean() -> None:
    p = compat("check", "--deep")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "ERRORS" not in p.stdout and "WARNINGS" not in p.stdout, p.stdout


# Wheels of compiled packages built for another torch than this machine's (carried to the GPU
# machine in .whl/, or named by COMPAT_WHEELS): compat's offline verdict from build facts, its
# --deep verdict from the installed objects, and the dynamic loader's own answer must agree.
WHEELS = Path(os.environ.get("COMPAT_WHEELS", Path(__file__).resolve().parents[1] / ".whl"))
ROOT = Path(__file__).resolve().parents[1]
KERNELS = ("torchaudio", "lmcache", "sgl_deep_gemm", "torchao")


def _wheels() -> list[Path]:
    if not WHEELS.is_dir():
        return []
    return sorted(p for p in WHEELS.glob("*.whl") if p.name.split("-")[0] in KERNELS)


def _compat_in(site: Path, *args: str) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{site}")
    p = subprocess.run(
        [sys.executable, "-m", "compat", "check", "--format", "json", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert p.returncode in (0, 1), p.stderr
    doc: dict[str, Any] = json.loads(p.stdout)
    return doc


LOADER = """
import ctypes, json, os, sys
import torch  # its libraries first, as the package's own import would have them
site, rels = sys.argv[1], sys.argv[2:]
out = {}
for rel in rels:
    try:
        ctypes.CDLL(os.path.join(site, rel), mode=ctypes.RTLD_GLOBAL)
        out[rel] = ""
    except OSError as exc:
        out[rel] = str(exc)
print(json.dumps(out))
"""


@pytest.mark.parametrize("wheel", _wheels(), ids=lambda p: p.name.split("-")[0])
def test_a_kernel_for_another_torch_fails_where_compat_says(wheel: Path, tmp_path: Path) -> None:
    import zipfile

    from compat import elf
    from compat.models import Distribution
    from compat.probe.deep import TORCH_SYMBOL_PREFIXES, package_objects, torch_exports

    torch = pytest.importorskip("torch")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)  # what pip --target lays out: the package and its dist-info
    name, version = wheel.name.split("-")[:2]
    key = name.replace("_", "-")

    offline = _compat_in(site)
    said = [f for f in offline["findings"] if key in f.get("packages", [])]
    # an error, or a warning for a package that skips ops it cannot load (ops_optional: torchao)
    from compat.families import families

    wanted = "warning" if families().ops_optional(key) else "error"
    assert any(f["severity"] == wanted for f in said), offline["findings"]
    deep = _compat_in(site, "--deep")
    deep_said = " ".join(f["message"] for f in deep["findings"] if key in f.get("packages", []))

    dist = Distribution(key, None, version, str(site))
    rels = package_objects(dist)
    assert rels, "the wheel installs no shared object"
    torch_dist = Distribution(
        "torch", None, torch.__version__, str(Path(torch.__file__).parents[1])
    )
    exports = torch_exports(torch_dist) or frozenset()
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", LOADER, str(site), *rels],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout
    )
    failures = {rel: why for rel, why in loaded.items() if why}
    assert failures, f"every object of {wheel.name} loaded: compat said {said}"
    for rel, why in failures.items():
        _, undefined = elf.dynamic_symbols(str(site / rel))
        absent = {s for s in undefined if s.startswith(TORCH_SYMBOL_PREFIXES)} - exports
        needed = elf.needed(str(site / rel))
        if "undefined symbol: " in why:
            symbol = why.split("undefined symbol: ", 1)[1].strip()
            # the loader's first unresolved torch symbol is one compat found absent
            assert symbol in absent or not symbol.startswith(TORCH_SYMBOL_PREFIXES), why
            assert "undefined symbol" in deep_said or "does not export" in deep_said, deep_said
        else:
            # a library it needs is not there (another CUDA major): compat named it too
            missing = [n for n in needed if n in why]
            assert missing, why
            assert any(f["code"] == "cuda-mix" for f in offline["findings"] + deep["findings"]), why
