"""PyPI access for the sync: JSON API, PEP 658 metadata, zip range reads, disk cache, retries."""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import re
import struct
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

from msgspec import Struct

from compat.errors import NetworkError

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")

DEFAULT_INDEX_URL = "https://pypi.org/pypi"
MAX_CONCURRENCY = 8
TAIL_BYTES = 64 * 1024
# Limits on what one wheel read may pull: a central directory of torch (~15k entries) is a
# few MiB; METADATA is tens of KiB. Anything larger is refused, never downloaded.
MAX_CENTRAL_DIRECTORY = 64 * 1024 * 1024
MAX_METADATA = 16 * 1024 * 1024

_CONNECT_ATTEMPTS = 3
_NETWORK_HINT = (
    "check the connection, DNS and proxy settings (HTTPS_PROXY), or point --index-url at a "
    "reachable mirror; the files already under matrices/generated/ were left as they were"
)


class FetchError(Exception):
    """One item could not be read; `reason` is the text recorded in the sync report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Retry(Exception):
    """An answer worth asking again (429, 5xx); `pause` is the server's Retry-After."""

    def __init__(self, reason: str, pause: Optional[float] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.pause = pause


def default_cache_dir() -> Path:
    """$COMPAT_CACHE_DIR, else ~/.cache/compat/http."""
    override = os.environ.get("COMPAT_CACHE_DIR")
    if override:
        return Path(override)
    return Path.home() / ".cache" / "compat" / "http"


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class CachedPage(Struct, frozen=True):
    body: bytes
    etag: str
    last_modified: str


class DiskCache:
    """JSON pages by URL with their validators; METADATA by wheel sha256, kept forever.

    A wheel's bytes never change under one sha256, so its METADATA never needs revalidating.
    `root=None` disables the cache.
    """

    def __init__(self, root: Optional[Path]) -> None:
        self.root = root

    def _json_path(self, url: str) -> Optional[Path]:
        if self.root is None:
            return None
        return self.root / "json" / (hashlib.sha256(url.encode()).hexdigest() + ".json")

    def _metadata_path(self, sha256: str, method: str) -> Optional[Path]:
        if self.root is None or not sha256:
            return None
        return self.root / "metadata" / sha256[:2] / f"{sha256}.{method}"

    def get_page(self, url: str) -> Optional[CachedPage]:
        path = self._json_path(url)
        if path is None or not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            return CachedPage(
                body=entry["body"].encode("utf-8"),
                etag=entry.get("etag", ""),
                last_modified=entry.get("last_modified", ""),
            )
        except (OSError, ValueError, KeyError, AttributeError):
            return None  # a damaged entry is a miss

    def put_page(self, url: str, page: CachedPage) -> None:
        path = self._json_path(url)
        if path is None:
            return
        entry = {
            "url": url,
            "etag": page.etag,
            "last_modified": page.last_modified,
            "body": page.body.decode("utf-8"),
        }
        _atomic_write(path, json.dumps(entry).encode("utf-8"))

    def get_metadata(self, sha256: str) -> Optional[tuple[str, bytes]]:
        for method in ("pep658", "range", "sdist"):
            path = self._metadata_path(sha256, method)
            if path is not None and path.is_file():
                try:
                    return method, path.read_bytes()
                except OSError:
                    return None
        return None

    def put_metadata(self, sha256: str, method: str, data: bytes) -> None:
        path = self._metadata_path(sha256, method)
        if path is not None:
            _atomic_write(path, data)

    def _record_path(self, kind: str, key: str) -> Optional[Path]:
        if self.root is None or not key:
            return None
        return self.root / kind / key[:2] / f"{key}.json"

    def get_record(self, kind: str, key: str) -> Optional[Any]:
        """A JSON record stored under `kind` by an immutable key (a wheel's sha256)."""
        path = self._record_path(kind, key)
        if path is None or not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # a damaged entry is a miss

    def put_record(self, kind: str, key: str, record: Any) -> None:
        path = self._record_path(kind, key)
        if path is not None:
            _atomic_write(path, json.dumps(record, sort_keys=True).encode("utf-8"))


class ProjectPage(Struct, frozen=True):
    """A project's JSON API answer."""

    name: str
    url: str  # the JSON URL: relative file URLs resolve against it
    data: Any
    revalidated: bool  # answered 304: the cached copy was still current


class MetadataRead(Struct, frozen=True):
    """A wheel's METADATA and how it was obtained."""

    data: bytes
    method: str  # "pep658", "range" or "sdist" (PKG-INFO from an sdist's head; b"" if absent)
    cached: bool


class RetryPolicy(Struct, frozen=True):
    attempts: int = 5
    first_pause: float = 0.5  # doubles each try
    max_pause: float = 60.0


def _retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _parse_content_range(value: str) -> tuple[int, int, Optional[int]]:
    """`bytes START-END/TOTAL` -> (start, end inclusive, total or None for `*`)."""
    try:
        unit, _, rest = value.strip().partition(" ")
        span, _, total = rest.partition("/")
        first, _, last = span.partition("-")
        if unit != "bytes":
            raise ValueError(unit)
        return int(first), int(last), (None if total.strip() == "*" else int(total))
    except ValueError:
        raise FetchError(f"bad Content-Range {value!r}") from None


class PyPIClient:
    """A polite client: bounded requests in flight, retries with backoff, a disk cache."""

    def __init__(
        self,
        index_url: str = DEFAULT_INDEX_URL,
        cache: Optional[DiskCache] = None,
        concurrency: int = MAX_CONCURRENCY,
        timeout: float = 60.0,
        retry: Optional[RetryPolicy] = None,
        transport: Optional[httpx.BaseTransport] = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import httpx  # only the sync needs it

        self.index_url = index_url.rstrip("/")
        self.cache = cache or DiskCache(None)
        self.concurrency = max(1, min(concurrency, MAX_CONCURRENCY))
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._lock = threading.Lock()
        self.requests = 0
        self.bytes_received = 0
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
            limits=httpx.Limits(max_connections=self.concurrency),
            follow_redirects=True,
            headers={"User-Agent": "compat-matrix-sync (+https://pypi.org/project/compat/)"},
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PyPIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count(self, received: int) -> None:
        with self._lock:
            self.requests += 1
            self.bytes_received += received

    # -- requests ------------------------------------------------------------------------

    def _with_retries(self, url: str, attempt: Callable[[], T]) -> T:
        """Run `attempt` until it succeeds, backing off on timeouts, resets, 429 and 5xx."""
        import httpx

        reason = ""
        for number in range(self.retry.attempts):
            pause = self.retry.first_pause * (2**number)
            try:
                with self._slots:
                    return attempt()
            except _Retry as answer:
                reason = answer.reason
                if answer.pause is not None:
                    pause = answer.pause
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError) as exc:
                reason = f"cannot connect: {exc or type(exc).__name__}"
                # A dead network or a wrong host name rarely heals within seconds: give up
                # sooner than for a busy server.
                if number >= min(self.retry.attempts, _CONNECT_ATTEMPTS) - 1:
                    raise NetworkError(f"cannot reach {url}: {reason}", _NETWORK_HINT) from exc
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
            if number < self.retry.attempts - 1:
                self._sleep(min(pause, self.retry.max_pause))
        raise FetchError(f"{reason} (after {self.retry.attempts} tries)")

    def _get(self, url: str, headers: Optional[dict[str, str]] = None) -> httpx.Response:
        """GET with retries; returns any final answer that is not 429/5xx (body read)."""

        def attempt() -> httpx.Response:
            response = self._client.get(url, headers=headers)
            self._count(len(response.content))
            if response.status_code == 429 or response.status_code >= 500:
                raise _Retry(
                    f"HTTP {response.status_code}",
                    _retry_after(response.headers.get("retry-after")),
                )
            return response

        return self._with_retries(url, attempt)

    def get_range(self, url: str, spec: str, limit: int) -> tuple[int, Optional[int], bytes]:
        """Bytes `spec` ("START-END" or "-SUFFIX") of `url` -> (start, total size, data).

        Streams, so an answer that ignores Range (200 with a large body) is dropped after its
        headers: the body is never read.
        """

        def attempt() -> tuple[int, Optional[int], bytes]:
            headers = {"Range": f"bytes={spec}", "Accept-Encoding": "identity"}
            with self._client.stream("GET", url, headers=headers) as response:
                status = response.status_code
                if status == 429 or status >= 500:
                    self._count(0)
                    raise _Retry(
                        f"HTTP {status}",
                        _retry_after(response.headers.get("retry-after")),
                    )
                if status == 206:
                    start, end, total = _parse_content_range(
                        response.headers.get("content-range", "")
                    )
                    expected = end - start + 1
                    if expected > limit:
                        self._count(0)
                        raise FetchError(f"range answer of {expected} bytes exceeds {limit}")
                    data = _read_at_most(response.iter_raw(), expected)
                    self._count(len(data))
                    if len(data) != expected:
                        raise FetchError(f"short range answer: {len(data)} of {expected} bytes")
                    return start, total, data
                if status == 200:
                    length = response.headers.get("content-length")
                    if (
                        length is not None
                        and length.isascii()
                        and length.isdigit()
                        and int(length) <= limit
                    ):
                        # A file smaller than the range asked for may come whole.
                        data = _read_at_most(response.iter_raw(), int(length))
                        self._count(len(data))
                        return 0, len(data), data
                    self._count(0)
                    raise FetchError("server ignores Range")
                self._count(0)
                if status == 416:
                    raise FetchError("range not satisfiable (HTTP 416)")
                raise FetchError(f"HTTP {status} on a range read")

        return self._with_retries(url, attempt)

    # -- the JSON API --------------------------------------------------------------------

    def project_url(self, name: str) -> str:
        return f"{self.index_url}/{name}/json"

    def project(self, name: str) -> Optional[ProjectPage]:
        """The project's JSON page, revalidated against the cache; None when the index has none."""
        url = self.project_url(name)
        cached = self.cache.get_page(url)
        headers = {"Accept": "application/json"}
        if cached is not None and cached.etag:
            headers["If-None-Match"] = cached.etag
        if cached is not None and cached.last_modified:
            headers["If-Modified-Since"] = cached.last_modified
        response = self._get(url, headers)
        if response.status_code == 404:
            return None
        if response.status_code == 304 and cached is not None:
            body, revalidated = cached.body, True
        elif response.status_code == 200:
            body, revalidated = response.content, False
            etag = response.headers.get("etag", "")
            last_modified = response.headers.get("last-modified", "")
            if etag or last_modified:
                self.cache.put_page(url, CachedPage(body, etag, last_modified))
        else:
            raise FetchError(f"HTTP {response.status_code} from {url}")
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise FetchError(f"{url} is not JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("releases"), dict):
            raise FetchError(f"{url} has no 'releases' table")
        return ProjectPage(name=name, url=str(response.url), data=data, revalidated=revalidated)

    # -- wheel METADATA ------------------------------------------------------------------

    def metadata(
        self, url: str, sha256: str, metadata_sha256: Optional[str] = None
    ) -> MetadataRead:
        """The METADATA of the wheel at `url`: cache, then PEP 658 file, then a zip range read."""
        hit = self.cache.get_metadata(sha256)
        if hit is not None:
            return MetadataRead(data=hit[1], method=hit[0], cached=True)
        data = self._pep658(url, metadata_sha256)
        method = "pep658"
        if data is None:
            data = read_zip_metadata(HttpRangeFile(self, url))
            method = "range"
        self.cache.put_metadata(sha256, method, data)
        return MetadataRead(data=data, method=method, cached=False)

    def sdist_pkg_info(self, url: str, sha256: str, filename: str, size: int) -> MetadataRead:
        """The PKG-INFO of an sdist (b"" when not near its start), read by ranges and cached."""
        hit = self.cache.get_metadata(sha256)
        if hit is not None and hit[0] == "sdist":
            return MetadataRead(data=hit[1], method="sdist", cached=True)
        data = read_sdist_pkg_info(HttpRangeFile(self, url, size), filename)
        self.cache.put_metadata(sha256, "sdist", data)
        return MetadataRead(data=data, method="sdist", cached=False)

    def _pep658(self, url: str, expected_sha256: Optional[str]) -> Optional[bytes]:
        # The JSON's "core-metadata" flag is not trusted: mirrors differ from what it says.
        try:
            response = self._get(url + ".metadata")
        except FetchError:
            return None
        if response.status_code != 200:
            return None
        data = response.content
        if expected_sha256 and hashlib.sha256(data).hexdigest() != expected_sha256:
            return None  # served, but not what the index promised: read the wheel instead
        return data


def _read_at_most(chunks: Iterator[bytes], limit: int) -> bytes:
    out = bytearray()
    for chunk in chunks:
        out += chunk
        if len(out) > limit:
            raise FetchError(f"answer longer than the {limit} bytes asked for")
    return bytes(out)


# -- zip reading over ranges ---------------------------------------------------------------


class RangeFile:
    """Random access to a file of known size by byte ranges (the interface the zip code uses)."""

    size: int

    def tail(self, length: int) -> tuple[int, bytes]:
        """The last `length` bytes (or the whole file) -> (offset of the first, data)."""
        raise NotImplementedError

    def read(self, start: int, end: int) -> bytes:
        """Bytes [start, end)."""
        raise NotImplementedError


class BytesRangeFile(RangeFile):
    """A RangeFile over bytes in memory (tests, local files)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def tail(self, length: int) -> tuple[int, bytes]:
        start = max(0, self.size - length)
        return start, self.data[start:]

    def read(self, start: int, end: int) -> bytes:
        return self.data[start:end]


class HttpRangeFile(RangeFile):
    """A file on the index read by HTTP range requests through the client."""

    def __init__(self, client: PyPIClient, url: str, size: int = -1) -> None:
        self.client = client
        self.url = url
        self.size = size  # known from the index, else learnt from the first tail read
        self._tail_start = 0
        self._tail = b""

    def tail(self, length: int) -> tuple[int, bytes]:
        start, total, data = self.client.get_range(self.url, f"-{length}", limit=length)
        self.size = total if total is not None else start + len(data)
        self._tail_start, self._tail = start, data
        return start, data

    def read(self, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        if self._tail and start >= self._tail_start and end <= self._tail_start + len(self._tail):
            return self._tail[start - self._tail_start : end - self._tail_start]
        got, _, data = self.client.get_range(self.url, f"{start}-{end - 1}", limit=end - start)
        if got != start:
            raise FetchError(f"asked for bytes from {start}, got from {got}")
        return data


_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"


class ZipMember(Struct, frozen=True):
    """One member of a zip as its central directory describes it."""

    name: str
    method: int
    crc: int
    compressed: int
    uncompressed: int
    offset: int


@contextmanager
def _zip_errors() -> Iterator[None]:
    try:
        yield
    except struct.error as exc:
        raise FetchError(f"truncated or corrupt zip ({exc})") from None


def read_zip_metadata(file: RangeFile, tail_bytes: int = TAIL_BYTES) -> bytes:
    """The bytes of `*.dist-info/METADATA` in the zip behind `file`, read by ranges only.

    Reads the tail (end of central directory, ZIP64 aware), the central directory, then the
    member's local header and data; inflates and checks its CRC.
    """
    entry = _pick_metadata(iter(read_zip_directory(file, tail_bytes)))
    return read_zip_member(file, entry, MAX_METADATA)


def read_zip_directory(file: RangeFile, tail_bytes: int = TAIL_BYTES) -> list[ZipMember]:
    """Every member of the zip behind `file` (names, sizes, offsets), from its central directory."""
    with _zip_errors():
        tail_start, tail = file.tail(tail_bytes)
        cd_offset, cd_size = _find_central_directory(file, tail_start, tail)
        if cd_size > MAX_CENTRAL_DIRECTORY:
            raise FetchError(f"central directory of {cd_size} bytes is too large")
        if cd_offset + cd_size > file.size:
            raise FetchError("truncated zip: central directory lies past the end of the file")
        if cd_offset >= tail_start:
            directory = tail[cd_offset - tail_start : cd_offset - tail_start + cd_size]
        else:
            directory = file.read(cd_offset, cd_offset + cd_size)
        return list(_central_entries(directory))


def read_zip_members(
    file: RangeFile, entries: list[ZipMember], limit: int, gap: int = 256 * 1024
) -> dict[str, bytes]:
    """Several members at once: neighbours closer than `gap` bytes come in one range read.

    The members of a package folder sit next to each other in a wheel, so a dozen source
    files usually cost one request instead of twelve.
    """
    out: dict[str, bytes] = {}
    ordered = sorted(entries, key=lambda entry: entry.offset)
    group: list[ZipMember] = []

    def span_end(entry: ZipMember) -> int:
        return min(
            entry.offset + 30 + len(entry.name.encode()) + 1024 + entry.compressed, file.size
        )

    def flush() -> None:
        if not group:
            return
        start, end = group[0].offset, max(span_end(entry) for entry in group)
        window = _Window(file, start, file.read(start, end))
        for entry in group:
            out[entry.name] = read_zip_member(window, entry, limit)
        group.clear()

    for entry in ordered:
        if group and (
            entry.offset - span_end(group[-1]) > gap
            or span_end(entry) - group[0].offset > MAX_CENTRAL_DIRECTORY
        ):
            flush()
        group.append(entry)
    flush()
    return out


class _Window(RangeFile):
    """A block already read, in front of the file it came from (reads outside go through)."""

    def __init__(self, base: RangeFile, start: int, data: bytes) -> None:
        self.base = base
        self.start = start
        self.data = data
        self.size = base.size

    def tail(self, length: int) -> tuple[int, bytes]:
        return self.base.tail(length)

    def read(self, start: int, end: int) -> bytes:
        if start >= self.start and end <= self.start + len(self.data):
            return self.data[start - self.start : end - self.start]
        return self.base.read(start, end)


def _bytes_at(file: RangeFile, tail_start: int, tail: bytes, start: int, length: int) -> bytes:
    if start >= tail_start:
        return tail[start - tail_start : start - tail_start + length]
    return file.read(start, start + length)


def _find_central_directory(file: RangeFile, tail_start: int, tail: bytes) -> tuple[int, int]:
    at = tail.rfind(_EOCD)
    while at >= 0 and len(tail) - at < 22:
        at = tail.rfind(_EOCD, 0, at)
    if at < 0:
        raise FetchError("truncated or not a zip: no end of central directory record")
    (_, _, _, _, entries, cd_size, cd_offset, _) = struct.unpack("<4sHHHHIIH", tail[at : at + 22])
    if entries != 0xFFFF and cd_size != 0xFFFFFFFF and cd_offset != 0xFFFFFFFF:
        return cd_offset, cd_size
    # ZIP64: a locator sits just before the classic record and points at the ZIP64 record.
    eocd = tail_start + at
    locator = _bytes_at(file, tail_start, tail, eocd - 20, 20)
    signature, _, record_at, _ = struct.unpack("<4sIQI", locator)
    if signature != _ZIP64_LOCATOR:
        raise FetchError("corrupt zip: ZIP64 end of central directory locator missing")
    record = _bytes_at(file, tail_start, tail, record_at, 56)
    fields = struct.unpack("<4sQHHIIQQQQ", record)
    if fields[0] != _ZIP64_EOCD:
        raise FetchError("corrupt zip: ZIP64 end of central directory record missing")
    cd_size64, cd_offset64 = fields[8], fields[9]
    return int(cd_offset64), int(cd_size64)


def _central_entries(directory: bytes) -> Iterator[ZipMember]:
    pos = 0
    while pos + 46 <= len(directory):
        if directory[pos : pos + 4] != _CENTRAL:
            raise FetchError("corrupt zip: bad central directory entry")
        fields = struct.unpack("<HHHHHHIIIHHHHHII", directory[pos + 4 : pos + 46])
        flags, method, crc = fields[2], fields[3], fields[6]
        compressed, uncompressed = fields[7], fields[8]
        name_len, extra_len, comment_len = fields[9], fields[10], fields[11]
        offset = fields[15]
        raw_name = directory[pos + 46 : pos + 46 + name_len]
        extra = directory[pos + 46 + name_len : pos + 46 + name_len + extra_len]
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
        if 0xFFFFFFFF in (compressed, uncompressed, offset):
            uncompressed, compressed, offset = _zip64_extra(extra, uncompressed, compressed, offset)
        yield ZipMember(name, method, crc, compressed, uncompressed, offset)
        pos += 46 + name_len + extra_len + comment_len


def _zip64_extra(extra: bytes, uncompressed: int, compressed: int, offset: int) -> tuple[int, ...]:
    """Replace the 0xFFFFFFFF fields from the ZIP64 extended information (header id 1)."""
    pos = 0
    while pos + 4 <= len(extra):
        header_id, size = struct.unpack("<HH", extra[pos : pos + 4])
        body = extra[pos + 4 : pos + 4 + size]
        if header_id == 1:
            values = [uncompressed, compressed, offset]
            at = 0
            for i, value in enumerate(values):
                if value == 0xFFFFFFFF:
                    (values[i],) = struct.unpack("<Q", body[at : at + 8])
                    at += 8
            return tuple(values)
        pos += 4 + size
    raise FetchError("corrupt zip: ZIP64 sizes missing")


def _pick_metadata(entries: Iterator[ZipMember]) -> ZipMember:
    found = [
        entry
        for entry in entries
        if entry.name.count("/") == 1 and entry.name.endswith(".dist-info/METADATA")
    ]
    if not found:
        raise FetchError("no *.dist-info/METADATA in the wheel")
    return min(found, key=lambda entry: entry.name)


def read_zip_member(file: RangeFile, entry: ZipMember, limit: int) -> bytes:
    """The inflated bytes of one member, CRC-checked; refused when larger than `limit`."""
    with _zip_errors():
        return _member(file, entry, limit)


def _member(file: RangeFile, entry: ZipMember, limit: int) -> bytes:
    what = entry.name.rsplit("/", 1)[-1]
    if entry.compressed > limit or entry.uncompressed > limit:
        raise FetchError(f"{what} of {entry.uncompressed} bytes is too large")
    # One read for the header, the name, a typical extra field and the data; a second only when
    # the local extra field is larger than guessed.
    guess = 30 + len(entry.name.encode()) + 1024 + entry.compressed
    end = min(entry.offset + guess, file.size)
    block = file.read(entry.offset, end)
    if len(block) < 30 or block[:4] != _LOCAL:
        raise FetchError(f"truncated or corrupt zip: no local header for {what}")
    name_len, extra_len = struct.unpack("<HH", block[26:30])
    data_start = 30 + name_len + extra_len
    data_end = data_start + entry.compressed
    if entry.offset + data_end > file.size:
        raise FetchError(f"truncated zip: {what} runs past the end of the file")
    if data_end > len(block):
        block += file.read(entry.offset + len(block), entry.offset + data_end)
    raw = block[data_start:data_end]
    if len(raw) != entry.compressed:
        raise FetchError(f"truncated zip: {what} cut short")
    if entry.method == 0:
        data = raw
    elif entry.method == 8:
        inflater = zlib.decompressobj(-15)
        try:
            data = inflater.decompress(raw, entry.uncompressed + 1)
        except zlib.error as exc:
            raise FetchError(f"corrupt {what} deflate stream: {exc}") from None
    else:
        raise FetchError(f"{what} uses unsupported compression method {entry.method}")
    if len(data) != entry.uncompressed or zlib.crc32(data) != entry.crc:
        raise FetchError(f"corrupt {what}: size or CRC does not match the central directory")
    return data


# -- sdists: PKG-INFO from the head of the archive ----------------------------------------

SDIST_FIRST = 128 * 1024
# How much of an sdist (compressed) may be read looking for PKG-INFO: setuptools may put it
# after the sources, and past this it is recorded as not found rather than downloaded.
SDIST_MAX = 2 * 1024 * 1024
_PKG_INFO = re.compile(rb"^(?:\./)?[^/]+/PKG-INFO$")


def read_sdist_pkg_info(file: RangeFile, filename: str) -> bytes:
    """The PKG-INFO of the sdist behind `file` (.tar.gz from its first bytes, .zip from its
    central directory); b"" when it is not within SDIST_MAX bytes of the start."""
    if filename.endswith(".zip"):
        found = [e for e in read_zip_directory(file) if _PKG_INFO.match(e.name.encode())]
        if not found:
            return b""
        with _zip_errors():
            return _member(file, min(found, key=lambda e: e.name), MAX_METADATA)
    if not filename.endswith((".tar.gz", ".tgz")):
        return b""
    return _TarHead(file).pkg_info()


class _TarHead:
    """A gzip'd tar read from its start, entry by entry, keeping only what is not yet passed."""

    def __init__(self, file: RangeFile) -> None:
        self.file = file
        self.inflater = zlib.decompressobj(31)
        self.buf = bytearray()
        self.base = 0  # tar offset of buf[0]
        self.pos = 0  # compressed bytes fetched
        self.size = file.size  # -1 when not known

    def _more(self) -> bool:
        step = SDIST_FIRST if self.pos == 0 else self.pos
        end = min(self.pos + step, SDIST_MAX)
        if self.size >= 0:
            end = min(end, self.size)
        if end <= self.pos or self.inflater.eof:
            return False
        data = self.file.read(self.pos, end)
        if not data:
            return False
        self.pos += len(data)
        try:
            self.buf += self.inflater.decompress(data, 64 * 1024 * 1024)
        except zlib.error as exc:
            raise FetchError(f"corrupt sdist gzip stream: {exc}") from None
        return True

    def _ensure(self, end: int) -> bool:
        while self.base + len(self.buf) < end:
            if not self._more():
                return False
        return True

    def _bytes(self, start: int, length: int) -> bytes:
        return bytes(self.buf[start - self.base : start - self.base + length])

    def pkg_info(self) -> bytes:
        at = 0
        long_name: Optional[bytes] = None
        while self._ensure(at + 512):
            header = self._bytes(at, 512)
            if not header.strip(b"\0"):
                return b""  # end of archive
            name = header[:100].split(b"\0", 1)[0]
            if header[257:262] == b"ustar":
                prefix = header[345:500].split(b"\0", 1)[0]
                if prefix:
                    name = prefix + b"/" + name
            try:
                size = int(header[124:136].strip(b"\0 ") or b"0", 8)
            except ValueError:
                return b""  # not a tar header this reader understands
            kind = header[156:157]
            data_at = at + 512
            nxt = data_at + (size + 511) // 512 * 512
            if long_name is not None:
                name, long_name = long_name, None
            if kind in (b"x", b"L") and size <= 1024 * 1024:
                if not self._ensure(data_at + size):
                    return b""
                body = self._bytes(data_at, size)
                long_name = _pax_path(body) if kind == b"x" else body.split(b"\0", 1)[0]
            elif kind in (b"0", b"\0") and _PKG_INFO.match(name):
                if size > MAX_METADATA or not self._ensure(data_at + size):
                    return b""
                return self._bytes(data_at, size)
            # Drop what lies before the next header: the buffer stays small.
            drop = min(nxt, self.base + len(self.buf)) - self.base
            del self.buf[:drop]
            self.base += drop
            at = nxt
        return b""


def _pax_path(body: bytes) -> Optional[bytes]:
    for record in body.split(b"\n"):
        _, _, kv = record.partition(b" ")
        key, _, value = kv.partition(b"=")
        if key == b"path":
            return value
    return None
