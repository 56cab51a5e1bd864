"""Test helpers for the data channel: compat-data wheels built from matrices/, and a simple index
on 127.0.0.1 that serves them (slowly or with a wrong hash when told)."""

from __future__ import annotations

import hashlib
import http.server
import importlib.util
import shutil
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("build_data", REPO / "scripts" / "build_data.py")
assert _spec is not None and _spec.loader is not None
build_data: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_data)


def advisory_renamed(matrices: Path, new_id: str, from_id: str = "COMPAT-0401") -> None:
    """One advisory of `matrices` under a new id (a change that `compat check` shows)."""
    old = matrices / "advisories" / f"{from_id}.toml"
    text = old.read_text(encoding="utf-8")
    old.unlink()
    (matrices / "advisories" / f"{new_id}.toml").write_text(
        text.replace(f'id = "{from_id}"', f'id = "{new_id}"', 1), encoding="utf-8"
    )


def build_versions(folder: Path, versions: list[str]) -> dict[str, Path]:
    """compat-data wheels of the repository's data, one per version; version i > 0 adds the
    advisory COMPAT-0401 renamed COMPAT-099i (each release is told apart by what `compat check`
    finds)."""
    out: dict[str, Path] = {}
    tree = folder / "matrices"
    shutil.copytree(REPO / "matrices", tree)
    for i, version in enumerate(versions):
        if i:
            advisory_renamed(
                tree, f"COMPAT-099{i}", "COMPAT-0401" if i == 1 else f"COMPAT-099{i - 1}"
            )
        built = build_data.build(tree, folder / "dist", build_data.Version(version))
        (wheel,) = [p for p in built if p.suffix == ".whl"]
        out[version] = wheel
    return out


class SimpleIndex:
    """/simple/compat-data/ (PEP 503 HTML with #sha256=) and /files/<name>."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.hashes: dict[str, str] = {}
        self.delay: dict[str, float] = {}  # seconds between 16 KiB chunks of a file
        self.sent: dict[str, int] = defaultdict(int)
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/simple"

    def publish(self, wheel: Path, sha256: Optional[str] = None) -> None:
        data = wheel.read_bytes()
        self.files[wheel.name] = data
        self.hashes[wheel.name] = sha256 or hashlib.sha256(data).hexdigest()

    def page(self) -> bytes:
        links = "".join(
            f'<a href="../../files/{name}#sha256={self.hashes[name]}">{name}</a><br>\n'
            for name in sorted(self.files)
        )
        return f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode()

    def __enter__(self) -> SimpleIndex:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(index: SimpleIndex) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            with index.lock:
                index.requests.append(self.path)
            if self.path.rstrip("/") == "/simple/compat-data":
                body = index.page()
                self._head(200, len(body), "text/html")
                self.wfile.write(body)
                return
            name = self.path.rsplit("/", 1)[-1]
            if not self.path.startswith("/files/") or name not in index.files:
                self._head(404, 0, "text/plain")
                return
            data = index.files[name]
            self._head(200, len(data), "application/octet-stream")
            pause = index.delay.get(name, 0.0)
            for at in range(0, len(data), 16 * 1024):
                try:
                    self.wfile.write(data[at : at + 16 * 1024])
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return
                with index.lock:
                    index.sent[name] += len(data[at : at + 16 * 1024])
                if pause:
                    time.sleep(pause)

        def _head(self, status: int, length: int, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(length))
            self.end_headers()

    return Handler
