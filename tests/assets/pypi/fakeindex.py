"""A fake package index on 127.0.0.1 for the sync tests: JSON API, .metadata, Range, faults."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional, Union
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
CHUNK = 64 * 1024


def load_json(name: str) -> dict[str, Any]:
    """A recorded, trimmed JSON API answer from this folder."""
    data: dict[str, Any] = json.loads((HERE / f"{name}.json").read_text(encoding="utf-8"))
    return data


def load_metadata(filename: str) -> bytes:
    """The recorded METADATA of a wheel (headers as published, description trimmed)."""
    return (HERE / f"{filename}.metadata").read_bytes()


class FakeIndex:
    """Serves pages, wheels (bytes, or a size of zeros made on the fly) and .metadata files.

    `script[key]` queues answers given before the normal one: (status, headers, body), where
    key is a request path or a file's last path segment. `ignore_range` names files served
    whole with 200 whatever the Range header says. `sent` counts body bytes that left.
    """

    def __init__(self) -> None:
        self.pages: dict[str, bytes] = {}
        self.blobs: dict[str, Union[bytes, int]] = {}
        self.metadata: dict[str, bytes] = {}
        self.script: dict[str, list[tuple[int, dict[str, str], bytes]]] = defaultdict(list)
        self.ignore_range: set[str] = set()
        self.use_etags = True
        self.log: list[tuple[str, int, dict[str, str]]] = []
        self.sent: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def index_url(self) -> str:
        return self.base + "/pypi"

    def __enter__(self) -> FakeIndex:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_project(self, name: str, data: dict[str, Any]) -> None:
        """Serve `data` as the JSON page; absolute file URLs are moved onto this server."""
        for files in data["releases"].values():
            for f in files:
                if re.match(r"https?://", f["url"]):
                    f["url"] = f"{self.base}/files/{f['filename']}"
        self.pages[name] = json.dumps(data).encode()

    def requests_to(self, fragment: str) -> list[tuple[str, int, dict[str, str]]]:
        with self.lock:
            return [entry for entry in self.log if fragment in entry[0]]


def _handler(index: FakeIndex) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(
            self, status: int, body: bytes = b"", headers: Optional[dict[str, str]] = None
        ) -> None:
            self._log(status)
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self._write(body)

        def _log(self, status: int) -> None:
            with index.lock:
                index.log.append((self.path, status, dict(self.headers.items())))

        def _write(self, body: bytes) -> None:
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                return
            with index.lock:
                index.sent[self.path] += len(body)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            last = path.rsplit("/", 1)[-1]
            for key in (path, last):
                queued = index.script.get(key)
                if queued:
                    status, headers, body = queued.pop(0)
                    self._answer(status, body, headers)
                    return
            match = re.fullmatch(r"/pypi/([^/]+)/json", path)
            if match:
                self._page(match.group(1))
            elif last.endswith(".metadata"):
                data = index.metadata.get(last[: -len(".metadata")])
                if data is None:
                    self._answer(404, b"not found")
                else:
                    self._answer(200, data, {"Content-Type": "application/octet-stream"})
            elif last in index.blobs:
                self._blob(last, index.blobs[last])
            else:
                self._answer(404, b"not found")

        def _page(self, name: str) -> None:
            body = index.pages.get(name)
            if body is None:
                self._answer(404, b'{"message": "Not Found"}')
                return
            headers = {"Content-Type": "application/json"}
            if index.use_etags:
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                headers["ETag"] = etag
                if self.headers.get("If-None-Match") == etag:
                    self._answer(304, b"", {"ETag": etag})
                    return
            self._answer(200, body, headers)

        def _blob(self, name: str, blob: Union[bytes, int]) -> None:
            size = blob if isinstance(blob, int) else len(blob)
            wanted = self.headers.get("Range")
            if wanted is None or name in index.ignore_range:
                self._log(200)
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                self._stream(blob, 0, size)
                return
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", wanted.strip())
            if not match or match.group(1) == match.group(2) == "":
                self._answer(416, b"")
                return
            if match.group(1) == "":
                start, end = max(0, size - int(match.group(2))), size - 1
            else:
                start = int(match.group(1))
                end = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
            if start >= size or end < start:
                self._answer(416, b"", {"Content-Range": f"bytes */{size}"})
                return
            self._log(206)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            self._stream(blob, start, end + 1)

        def _stream(self, blob: Union[bytes, int], start: int, stop: int) -> None:
            at = start
            while at < stop:
                n = min(CHUNK, stop - at)
                chunk = bytes(n) if isinstance(blob, int) else blob[at : at + n]
                try:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    return
                with index.lock:
                    index.sent[self.path] += n
                at += n

    return Handler
