"""`compat data update`: the newest compat-data from the package index into the user folder."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import zipfile
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import urljoin, urlsplit

from msgspec import Struct
from msgspec.structs import replace
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import Version

from compat.channel.info import DATA_FILE, DATA_FORMAT, parse_info
from compat.channel.netconf import NetConfig
from compat.channel.source import DataSource, locate
from compat.channel.store import FILE_MODE, Store, make_dirs
from compat.errors import DataError, NetworkError
from compat.matrix.progress import Progress

if TYPE_CHECKING:
    import httpx

PROJECT = "compat-data"
MEMBER_PREFIX = "compat_data/matrices/"
# A data wheel is a few hundred KiB (the TOML of matrices/, ~4 MiB unpacked): limits far above
# that, so a hostile or broken index cannot fill the disk.
MAX_WHEEL = 64 * 1024 * 1024
MAX_UNPACKED = 256 * 1024 * 1024
MAX_MEMBERS = 20_000
_SIMPLE_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.1"
)


class Candidate(Struct, frozen=True):
    """One compat-data wheel an index offers."""

    version: Version
    filename: str
    url: str
    sha256: str
    index: str


class UpdateResult(Struct, frozen=True):
    status: str  # "updated", "current", "offline"
    before: DataSource
    after: DataSource
    candidate: Optional[Candidate] = None
    bytes_received: int = 0
    elapsed_s: float = 0.0


class HashMismatch(DataError):
    """The downloaded wheel is not the one the index described."""


# -- the simple index (PEP 503 HTML, PEP 691 JSON) --------------------------------------------


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, dict[str, Optional[str]]]] = []
        self._attrs: Optional[dict[str, Optional[str]]] = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
        if tag == "a":
            self._attrs, self._text = dict(attrs), []

    def handle_data(self, data: str) -> None:
        if self._attrs is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._attrs is not None:
            self.links.append(("".join(self._text).strip(), self._attrs))
            self._attrs = None


def parse_simple(body: bytes, content_type: str, page_url: str) -> list[dict[str, Any]]:
    """The files of a simple-index project page as {filename, url, sha256, yanked}."""
    files: list[dict[str, Any]] = []
    if "json" in content_type:
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise NetworkError(f"{page_url}: not JSON ({exc})") from None
        for f in doc.get("files", []) if isinstance(doc, dict) else []:
            if not isinstance(f, dict):
                continue
            raw = f.get("hashes")
            hashes: dict[str, Any] = raw if isinstance(raw, dict) else {}
            files.append(
                {
                    "filename": str(f.get("filename", "")),
                    "url": urljoin(page_url, str(f.get("url", ""))),
                    "sha256": str(hashes.get("sha256", "")),
                    "yanked": bool(f.get("yanked")),
                }
            )
        return files
    parser = _Links()
    parser.feed(body.decode("utf-8", "replace"))
    for text, attrs in parser.links:
        href = attrs.get("href") or ""
        url, _, fragment = href.partition("#")
        match = re.search(r"(?:^|&)sha256=([0-9a-fA-F]{64})", fragment)
        files.append(
            {
                "filename": text or urlsplit(url).path.rsplit("/", 1)[-1],
                "url": urljoin(page_url, url),
                "sha256": match.group(1).lower() if match else "",
                "yanked": "data-yanked" in attrs,
            }
        )
    return files


def candidates(client: httpx.Client, index: str) -> list[Candidate]:
    """compat-data wheels on one simple index (none when the index has no such project)."""
    import httpx

    url = f"{index.rstrip('/')}/{PROJECT}/"
    try:
        response = client.get(url, headers={"Accept": _SIMPLE_ACCEPT})
    except httpx.HTTPError as exc:
        raise NetworkError(
            f"cannot reach {url}: {exc or type(exc).__name__}",
            hint="check the connection and proxy (HTTPS_PROXY), or pass --index-url; the data "
            "in use was left as it was",
        ) from None
    if response.status_code == 404:
        return []
    if response.status_code != 200:
        raise NetworkError(f"{url}: HTTP {response.status_code}", hint="try again later")
    out = []
    for f in parse_simple(
        response.content, response.headers.get("content-type", ""), str(response.url)
    ):
        try:
            name, version, _, _ = parse_wheel_filename(f["filename"])
        except InvalidWheelFilename:
            continue  # an sdist or something else: only wheels are installed here
        if name != PROJECT or f["yanked"] or version.is_prerelease:
            continue
        out.append(Candidate(version, f["filename"], f["url"], f["sha256"], index))
    return out


# -- download, verify, unpack ------------------------------------------------------------------


def download(client: httpx.Client, cand: Candidate, target: Path, progress: Progress) -> int:
    """Stream the wheel to `target`, refusing more than MAX_WHEEL bytes; verify its sha256
    against the index's. Returns the bytes received."""
    import httpx

    if not re.fullmatch(r"[0-9a-f]{64}", cand.sha256):
        raise DataError(
            [f"{cand.url}: the index gives no sha256 for {cand.filename}"],
            hint="use an index that publishes hashes (PEP 503 #sha256= or PEP 691 hashes)",
        )
    digest = hashlib.sha256()
    received = 0
    progress.stage(f"downloading {cand.filename}")
    progress.watch(lambda: (1, received))
    try:
        with client.stream("GET", cand.url) as response, open(target, "wb") as out:
            if response.status_code != 200:
                raise NetworkError(
                    f"{cand.url}: HTTP {response.status_code}", hint="try again later"
                )
            for chunk in response.iter_bytes():
                received += len(chunk)
                if received > MAX_WHEEL:
                    raise DataError([f"{cand.url}: more than {MAX_WHEEL} bytes: not a data wheel"])
                digest.update(chunk)
                out.write(chunk)
    except httpx.HTTPError as exc:
        raise NetworkError(
            f"the download of {cand.url} failed: {exc or type(exc).__name__}",
            hint="try again; the data in use was left as it was",
        ) from None
    if digest.hexdigest() != cand.sha256:
        raise HashMismatch(
            [
                f"{cand.filename}: sha256 {digest.hexdigest()} does not match the index's "
                f"{cand.sha256}"
            ],
            hint="the file was altered on the way or on the index; nothing was installed",
        )
    return received


def unpack(wheel: Path, tree: Path) -> None:
    """The database under compat_data/matrices/ of the wheel into `tree` (0644 files, 0755
    folders), refusing paths outside it, links, and sizes past the limits."""
    try:
        archive = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError([f"{wheel.name}: not a wheel ({exc})"]) from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise DataError([f"{wheel.name}: {len(infos)} members: not a data wheel"])
        total = 0
        found = False
        for info in infos:
            if not info.filename.startswith(MEMBER_PREFIX) or info.is_dir():
                continue
            rel = info.filename[len(MEMBER_PREFIX) :]
            parts = rel.split("/")
            if not rel or any(p in ("", ".", "..") for p in parts) or "\\" in rel:
                raise DataError([f"{wheel.name}: unsafe member name {info.filename!r}"])
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise DataError([f"{wheel.name}: {info.filename} is a symbolic link"])
            total += info.file_size
            if total > MAX_UNPACKED:
                raise DataError([f"{wheel.name}: unpacks to more than {MAX_UNPACKED} bytes"])
            target = tree.joinpath(*parts)
            make_dirs(target.parent)
            with archive.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            target.chmod(FILE_MODE)
            found = True
        if not found:
            raise DataError([f"{wheel.name}: no {MEMBER_PREFIX} in it: not a compat-data wheel"])


# -- the update --------------------------------------------------------------------------------


def update(
    net: NetConfig,
    progress: Progress,
    store: Optional[Store] = None,
    offline: bool = False,
    transport: Optional[httpx.BaseTransport] = None,
    timeout: float = 60.0,
) -> UpdateResult:
    """Fetch the newest compat-data when it is newer than the data in use, verify it, validate
    it, and switch the user folder to it. Nothing changes unless every step succeeds."""
    import time

    import httpx

    started = time.monotonic()
    before = locate()
    if offline:
        return UpdateResult("offline", before, before)
    store = store or Store()
    with httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
        follow_redirects=True,
        headers={"User-Agent": "compat-data-update (+https://pypi.org/project/compat/)"},
        transport=transport,
        **net.client_options(),
    ) as client:
        found = [c for index in net.indexes for c in candidates(client, index)]
        if not found:
            raise NetworkError(
                f"no {PROJECT} wheel on {', '.join(net.indexes)}",
                hint="publish one (docs/data-channel.md), or point --index-url / PIP_INDEX_URL "
                "at an index that has it",
            )
        best = max(found, key=lambda c: c.version)
        if before.info.version is not None and best.version <= before.info.version:
            return UpdateResult(
                "current", before, before, best, elapsed_s=time.monotonic() - started
            )
        with store.lock():
            stage = store.stage()
            try:
                wheel = stage / best.filename
                received = download(client, best, wheel, progress)
                tree = stage / "tree"
                unpack(wheel, tree)
                info = _check_tree(tree, best)
                stamped = replace(
                    info,
                    origin=PROJECT,
                    url=best.url,
                    sha256=best.sha256,
                    fetched=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                )
                (tree / DATA_FILE).write_text(stamped.to_toml(), encoding="utf-8")
                (tree / DATA_FILE).chmod(FILE_MODE)
                store.publish(tree, str(best.version))
            finally:
                shutil.rmtree(stage, ignore_errors=True)
    after = locate()
    return UpdateResult("updated", before, after, best, received, time.monotonic() - started)


def _check_tree(tree: Path, cand: Candidate) -> Any:
    """The unpacked data: its DATA.toml names this version and a format this compat reads, and
    every file validates (a broken release is never switched to)."""
    from compat.fileio import read_bytes
    from compat.matrix.load import validate_all

    path = tree / DATA_FILE
    if not path.is_file():
        raise DataError([f"{cand.filename}: no {DATA_FILE} in the data"])
    info = parse_info(read_bytes(path, 64 * 1024, "data file"), f"{cand.filename}:{DATA_FILE}")
    if info.format != DATA_FORMAT:
        raise DataError(
            [f"{cand.filename}: data format {info.format}; this compat reads format {DATA_FORMAT}"],
            hint="upgrade compat (pip install -U compat) to use this data",
        )
    if info.version != cand.version:
        raise DataError([f"{cand.filename}: its {DATA_FILE} says version {info.version}"])
    problems = validate_all(tree)
    if problems:
        raise DataError(
            problems[:20] + ([f"... {len(problems) - 20} more"] if len(problems) > 20 else []),
            hint=f"{PROJECT} {cand.version} does not validate; the data in use was left as it was",
        )
    return info
