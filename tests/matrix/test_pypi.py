"""The PyPI client: JSON pages, PEP 658 files, zip range reads, cache, retries, failures."""

from __future__ import annotations

import importlib.util
import io
import socket
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest

from compat.errors import NetworkError
from compat.matrix.pypi import (
    BytesRangeFile,
    DiskCache,
    FetchError,
    PyPIClient,
    RetryPolicy,
    _retry_after,
    read_zip_metadata,
)

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "pypi"
_spec = importlib.util.spec_from_file_location("fakeindex", ASSETS / "fakeindex.py")
assert _spec is not None and _spec.loader is not None
fakeindex: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fakeindex)

TORCH_WHEEL = "torch-2.7.1-cp312-cp312-manylinux_2_28_x86_64.whl"
SGL_WHEEL = "sgl_kernel-0.3.9.post2-cp310-abi3-manylinux2014_x86_64.whl"


def make_wheel(
    metadata: bytes,
    dist_info: str = "pkg-1.0.dist-info",
    compression: int = zipfile.ZIP_DEFLATED,
    filler: int = 200_000,
) -> bytes:
    """A small real wheel: some payload, then the dist-info files (as wheels put them last)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        archive.writestr("pkg/__init__.py", b"")
        # Incompressible filler, so METADATA sits far from both ends of the file.
        archive.writestr("pkg/data.bin", bytes(range(256)) * (filler // 256), zipfile.ZIP_STORED)
        archive.writestr(f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\n")
        archive.writestr(f"{dist_info}/METADATA", metadata)
        archive.writestr(f"{dist_info}/RECORD", b"")
    return out.getvalue()


def make_zip64_wheel(metadata: bytes, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """A wheel with ZIP64 end records and ZIP64 extra fields, as multi-GiB wheels have."""
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 64)
    data = bytearray(make_wheel(metadata))
    monkeypatch.undo()
    # zipfile keeps the true values in the classic record; real ZIP64 writers store the
    # 0xFFFF... sentinels there, which is the case a reader must follow.
    at = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HHII", data, at + 8, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
    assert data.find(b"PK\x06\x06") >= 0 and data.find(b"PK\x06\x07") >= 0
    return bytes(data)


@pytest.fixture
def index() -> Any:
    with fakeindex.FakeIndex() as served:
        yield served


def client_for(index: Any, cache: Path | None = None, **kwargs: Any) -> PyPIClient:
    kwargs.setdefault("retry", RetryPolicy(attempts=4, first_pause=0.0))
    kwargs.setdefault("sleep", lambda _seconds: None)
    return PyPIClient(index.index_url, cache=DiskCache(cache), **kwargs)


# -- zip reading ----------------------------------------------------------------------------


def test_zip_metadata_deflated_and_stored() -> None:
    metadata = fakeindex.load_metadata(TORCH_WHEEL)
    for compression in (zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED):
        wheel = make_wheel(metadata, compression=compression)
        assert read_zip_metadata(BytesRangeFile(wheel), tail_bytes=4096) == metadata


def test_zip_metadata_central_directory_inside_the_tail() -> None:
    metadata = b"Metadata-Version: 2.1\nName: tiny\nVersion: 1\n"
    wheel = make_wheel(metadata, filler=0)
    assert read_zip_metadata(BytesRangeFile(wheel)) == metadata


def test_zip64(monkeypatch: pytest.MonkeyPatch) -> None:
    metadata = fakeindex.load_metadata(TORCH_WHEEL)
    wheel = make_zip64_wheel(metadata, monkeypatch)
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:  # still a valid zip
        assert archive.read("pkg-1.0.dist-info/METADATA") == metadata
    assert read_zip_metadata(BytesRangeFile(wheel), tail_bytes=1024) == metadata


@pytest.mark.parametrize(
    ("cut", "reason"),
    [
        (lambda w: w[: len(w) // 2], "no end of central directory"),
        (lambda w: w[:-200], "no end of central directory"),
        (lambda w: b"", "no end of central directory"),
        (lambda w: b"PK\x05\x06" + bytes(18), "no *.dist-info/METADATA"),
    ],
)
def test_zip_truncated_fails_cleanly(cut: Any, reason: str) -> None:
    wheel = make_wheel(fakeindex.load_metadata(TORCH_WHEEL))
    with pytest.raises(FetchError, match=reason.replace("*", r"\*")):
        read_zip_metadata(BytesRangeFile(cut(wheel)), tail_bytes=4096)


def test_zip_head_cut_off_fails_cleanly() -> None:
    # The tail survives but the central directory's offsets point before the data we have.
    wheel = make_wheel(fakeindex.load_metadata(TORCH_WHEEL))
    with pytest.raises(FetchError):
        read_zip_metadata(BytesRangeFile(wheel[1000:]), tail_bytes=4096)


def test_zip_corrupt_metadata_is_caught_by_crc() -> None:
    metadata = fakeindex.load_metadata(TORCH_WHEEL)
    wheel = bytearray(make_wheel(metadata, compression=zipfile.ZIP_STORED))
    at = wheel.find(b"Requires-Dist: triton")
    wheel[at] ^= 0xFF
    with pytest.raises(FetchError, match="CRC"):
        read_zip_metadata(BytesRangeFile(bytes(wheel)))


def test_zip_without_metadata() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("pkg/__init__.py", b"")
    with pytest.raises(FetchError, match="METADATA"):
        read_zip_metadata(BytesRangeFile(out.getvalue()))


# -- the client over HTTP -------------------------------------------------------------------


def test_project_page_and_404(index: Any) -> None:
    index.add_project("torch", fakeindex.load_json("torch"))
    with client_for(index) as client:
        page = client.project("torch")
        assert page is not None
        assert "2.7.1" in page.data["releases"]
        assert page.url == f"{index.index_url}/torch/json"
        assert client.project("no-such-project") is None


def test_page_revalidated_with_etag(index: Any, tmp_path: Path) -> None:
    index.add_project("torch", fakeindex.load_json("torch"))
    with client_for(index, cache=tmp_path) as client:
        first = client.project("torch")
        second = client.project("torch")
    assert first is not None and second is not None
    assert not first.revalidated and second.revalidated
    assert first.data == second.data
    statuses = [status for _, status, _ in index.requests_to("/pypi/torch/json")]
    assert statuses == [200, 304]
    assert "If-None-Match" in index.requests_to("/pypi/torch/json")[1][2]


def test_429_then_200_honours_retry_after(index: Any) -> None:
    index.add_project("torch", fakeindex.load_json("torch"))
    index.script["/pypi/torch/json"].append((429, {"Retry-After": "7"}, b"slow down"))
    pauses: list[float] = []
    with client_for(index, sleep=pauses.append) as client:
        assert client.project("torch") is not None
    assert pauses == [7.0]
    assert [s for _, s, _ in index.requests_to("/pypi/torch/json")] == [429, 200]


def test_5xx_retried_with_backoff(index: Any) -> None:
    index.add_project("torch", fakeindex.load_json("torch"))
    for status in (503, 502):
        index.script["/pypi/torch/json"].append((status, {}, b"oops"))
    pauses: list[float] = []
    policy = RetryPolicy(attempts=4, first_pause=0.25)
    with client_for(index, sleep=pauses.append, retry=policy) as client:
        assert client.project("torch") is not None
    assert pauses == [0.25, 0.5]


def test_5xx_gives_up_after_the_last_try(index: Any) -> None:
    index.script["/pypi/torch/json"].extend([(500, {}, b"")] * 4)
    with client_for(index) as client, pytest.raises(FetchError, match="HTTP 500"):
        client.project("torch")


def test_unreachable_index_is_a_network_error() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    policy = RetryPolicy(attempts=2, first_pause=0.0)
    client = PyPIClient(f"http://127.0.0.1:{port}/pypi", retry=policy, sleep=lambda _s: None)
    with client, pytest.raises(NetworkError) as raised:
        client.project("torch")
    assert raised.value.exit_code == 4
    assert raised.value.hint and "proxy" in raised.value.hint


def test_metadata_from_pep658_file(index: Any, tmp_path: Path) -> None:
    metadata = fakeindex.load_metadata(TORCH_WHEEL)
    index.metadata[TORCH_WHEEL] = metadata
    url = f"{index.base}/packages/{TORCH_WHEEL}"
    with client_for(index, cache=tmp_path) as client:
        read = client.metadata(url, "a" * 64)
        again = client.metadata(url, "a" * 64)
    assert (read.method, read.cached, read.data) == ("pep658", False, metadata)
    assert (again.method, again.cached, again.data) == ("pep658", True, metadata)
    assert len(index.log) == 1  # the second answer came from the cache


def test_metadata_hash_mismatch_falls_back_to_range(index: Any) -> None:
    metadata = fakeindex.load_metadata(TORCH_WHEEL)
    index.metadata[TORCH_WHEEL] = b"Name: not-what-was-promised\n"
    index.blobs[TORCH_WHEEL] = make_wheel(metadata)
    with client_for(index) as client:
        read = client.metadata(f"{index.base}/x/{TORCH_WHEEL}", "b" * 64, metadata_sha256="0" * 64)
    assert (read.method, read.data) == ("range", metadata)


def test_missing_metadata_file_falls_back_to_range(index: Any, tmp_path: Path) -> None:
    metadata = fakeindex.load_metadata(SGL_WHEEL)
    wheel = make_wheel(metadata, dist_info="sgl_kernel-0.3.9.post2.dist-info", filler=2_000_000)
    index.blobs[SGL_WHEEL] = wheel
    with client_for(index, cache=tmp_path) as client:
        read = client.metadata(f"{index.base}/files/{SGL_WHEEL}", "c" * 64)
        assert client.metadata(f"{index.base}/files/{SGL_WHEEL}", "c" * 64).cached
    assert (read.method, read.data) == ("range", metadata)
    statuses = [status for _, status, _ in index.log]
    assert statuses[0] == 404 and set(statuses[1:]) == {206}
    assert sum(index.sent.values()) < len(wheel) // 4  # ranges only, never the wheel


def test_server_ignoring_range_is_refused_unread(index: Any) -> None:
    size = 256 * 2**20
    index.blobs["huge-1.0-cp312-cp312-manylinux_2_28_x86_64.whl"] = size  # zeros, made lazily
    index.ignore_range.add("huge-1.0-cp312-cp312-manylinux_2_28_x86_64.whl")
    url = f"{index.base}/files/huge-1.0-cp312-cp312-manylinux_2_28_x86_64.whl"
    with client_for(index) as client, pytest.raises(FetchError, match="server ignores Range"):
        client.metadata(url, "d" * 64)
    assert sum(index.sent.values()) < 16 * 2**20  # socket buffers at most, not the body


def test_small_file_answered_whole_is_accepted(index: Any) -> None:
    metadata = b"Metadata-Version: 2.1\nName: tiny\nVersion: 1\n"
    wheel = make_wheel(metadata, filler=0)
    index.blobs["tiny-1-py3-none-any.whl"] = wheel
    index.ignore_range.add("tiny-1-py3-none-any.whl")
    with client_for(index) as client:
        read = client.metadata(f"{index.base}/f/tiny-1-py3-none-any.whl", "e" * 64)
    assert read.data == metadata


def test_truncated_wheel_over_http_fails_cleanly(index: Any) -> None:
    wheel = make_wheel(fakeindex.load_metadata(SGL_WHEEL))
    index.blobs[SGL_WHEEL] = wheel[: len(wheel) // 2]
    with client_for(index) as client, pytest.raises(FetchError, match="end of central directory"):
        client.metadata(f"{index.base}/files/{SGL_WHEEL}", "f" * 64)


def test_retry_after_forms() -> None:
    assert _retry_after("12") == 12.0
    assert _retry_after(None) is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert _retry_after("soon") is None
