"""Requirements of sdist-only releases: PKG-INFO from the head of the archive, or "unknown"."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import random
import sys
import tarfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
from packaging.version import Version

from compat.matrix.load import Matrix
from compat.matrix.pypi import (
    SDIST_MAX,
    DiskCache,
    FetchError,
    PyPIClient,
    RetryPolicy,
    read_sdist_pkg_info,
)
from compat.matrix.sync import states_requirements, sync

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wheelbytes import BytesFile

PKG_INFO = b"Metadata-Version: 2.1\nName: flash-attn\nVersion: 2.8.3\nRequires-Dist: torch\n"


def tar_gz(members: list[tuple[str, bytes]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_pkg_info_near_the_start() -> None:
    blob = tar_gz([("pkg-1.0/setup.py", b"x" * 1000), ("pkg-1.0/PKG-INFO", PKG_INFO)])
    file = BytesFile(blob)
    assert read_sdist_pkg_info(file, "pkg-1.0.tar.gz") == PKG_INFO


def test_nested_pkg_info_is_not_the_sdist_one() -> None:
    blob = tar_gz(
        [("pkg-1.0/pkg.egg-info/PKG-INFO", b"Name: other\n"), ("pkg-1.0/PKG-INFO", PKG_INFO)]
    )
    assert read_sdist_pkg_info(BytesFile(blob), "pkg-1.0.tar.gz") == PKG_INFO


def test_long_names_through_pax_and_gnu_headers() -> None:
    root = "p" * 120
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        blob = tar_gz([(f"{root}/{'d' * 110}/x.py", b"1"), (f"{root}/PKG-INFO", PKG_INFO)], fmt)
        assert read_sdist_pkg_info(BytesFile(blob), "x.tar.gz") == PKG_INFO


def test_pkg_info_past_the_limit_is_not_downloaded() -> None:
    noise = random.Random(3).randbytes(SDIST_MAX + 500_000)
    blob = tar_gz([("pkg-1.0/csrc/big.bin", noise), ("pkg-1.0/PKG-INFO", PKG_INFO)])
    file = BytesFile(blob)
    assert read_sdist_pkg_info(file, "pkg-1.0.tar.gz") == b""
    assert file.bytes <= SDIST_MAX


def test_zip_sdist_and_other_formats() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("pkg-1.0/setup.py", b"")
        z.writestr("pkg-1.0/PKG-INFO", PKG_INFO)
    assert read_sdist_pkg_info(BytesFile(out.getvalue()), "pkg-1.0.zip") == PKG_INFO
    assert read_sdist_pkg_info(BytesFile(b"BZh9"), "pkg-1.0.tar.bz2") == b""


def test_corrupt_gzip_is_a_fetch_error() -> None:
    with pytest.raises(FetchError):
        read_sdist_pkg_info(BytesFile(b"\x1f\x8b\x08\x00" + b"\xff" * 100), "pkg-1.0.tar.gz")


@pytest.mark.parametrize(
    "text, states",
    [
        (PKG_INFO, True),
        (b"Metadata-Version: 2.1\nName: x\n", False),  # before PEP 643: silence says nothing
        (b"Metadata-Version: 2.2\nName: x\n", True),  # static: really no requirements
        (b"Metadata-Version: 2.2\nName: x\nDynamic: Requires-Dist\n", False),
        (b"", False),
    ],
)
def test_which_pkg_info_states_requirements(text: bytes, states: bool) -> None:
    assert states_requirements(text) is states


def test_sync_records_sdist_requirements_or_unknown(tmp_path: Path) -> None:

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location(
        "fakeindex", root / "tests" / "assets" / "pypi" / "fakeindex.py"
    )
    assert spec is not None and spec.loader is not None
    fakeindex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fakeindex)
    blobs = {
        "1.0": tar_gz([("flash_attn-1.0/PKG-INFO", PKG_INFO)]),
        "2.0": tar_gz([("flash_attn-2.0/PKG-INFO", b"Metadata-Version: 2.1\nName: flash-attn\n")]),
    }
    page = {"info": {}, "releases": {}}
    with fakeindex.FakeIndex() as index:
        for version, blob in blobs.items():
            name = f"flash_attn-{version}.tar.gz"
            index.blobs[name] = blob
            page["releases"][version] = [
                {
                    "filename": name,
                    "url": f"https://files.example/{name}",
                    "packagetype": "sdist",
                    "size": len(blob),
                    "digests": {"sha256": hashlib.sha256(blob).hexdigest()},
                    "upload_time_iso_8601": "2025-01-01T00:00:00Z",
                    "yanked": False,
                    "requires_python": ">=3.9",
                }
            ]
        index.add_project("flash-attn", page)
        out = tmp_path / "generated"
        when = datetime(2026, 1, 1, tzinfo=timezone.utc)
        for _ in range(2):
            with PyPIClient(
                index.index_url,
                cache=DiskCache(None),
                sleep=lambda _s: None,
                retry=RetryPolicy(attempts=2, first_pause=0.0),
            ) as client:
                report = sync(client, ["flash-attn"], out, write=True, now=lambda: when)
        assert report.ok and report.projects[0].kept == 2  # the second run read nothing
    rels = Matrix(tmp_path).releases("flash-attn")
    known, unknown = rels[Version("1.0")], rels[Version("2.0")]
    assert known.requires_raw == ("torch",) and known.requires_known
    assert known.source is not None and known.source.method == "sdist"
    assert unknown.requires_raw == () and not unknown.requires_known
    assert unknown.source is not None and unknown.source.method == "none"
    assert str(unknown.requires_python) == ">=3.9"
