"""Launch data sync: each framework release's own argument and env-var sources, read by range."""

from __future__ import annotations

import difflib
import io
import json
import re
import tarfile
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional, Union
from urllib.parse import urljoin

from msgspec import Struct
from msgspec.structs import replace
from packaging.version import Version

from compat.errors import NetworkError
from compat.matrix import launchdata
from compat.matrix.launch_extract import extract
from compat.matrix.launchdata import Provenance
from compat.matrix.progress import tracked
from compat.matrix.pypi import (
    DEFAULT_INDEX_URL,
    DiskCache,
    FetchError,
    HttpRangeFile,
    ProjectPage,
    PyPIClient,
    default_cache_dir,
    read_zip_directory,
    read_zip_members,
)
from compat.matrix.sync import _load_old, _sha256, choose_wheel, write_all

FRAMEWORKS = ("sglang", "vllm")
# Largest source member read (vLLM's arg_utils.py is ~140 KB; utils/__init__.py ~120 KB).
MAX_MEMBER = 4 * 1024 * 1024
# Old vLLM releases (0.0.1 .. 0.1.3) have no wheel; their sdists are ~100 KB and read whole.
MAX_SDIST = 2 * 1024 * 1024

# The members each framework's argument parser and environment variables are defined in,
# across its history (docs/data-format.md, "Launch data").
_MEMBERS: dict[str, tuple[str, ...]] = {
    "sglang": (
        r"sglang/srt/server_args\.py",
        r"sglang/srt/environ\.py",
        r"sglang/srt/server_args_config_parser\.py",
        r"sglang/srt/arg_groups/(__init__|arg_utils|argparse_actions|choices)\.py",
        r"sglang/srt/arg_groups/fields/[a-z_0-9]+\.py",
        r"sglang/launch_server\.py",
        # Enum values of the per-phase CUDA graph backends (2026 releases).
        r"sglang/srt/model_executor/cuda_graph_config\.py",
    ),
    "vllm": (
        r"vllm/engine/arg_utils\.py",
        r"vllm/envs\.py",
        r"vllm/config\.py",
        r"vllm/config/[a-z_0-9]+\.py",
        # The server's own flags: openai/ up to 0.28, launchers/ and common/ after.
        r"vllm/entrypoints/[a-z_]+/cli_args\.py",
        r"vllm/entrypoints/cli/serve\.py",
        r"vllm/utils/argparse_utils\.py",
        r"vllm/model_executor/layers/quantization/__init__\.py",
    ),
}
# Read only when the preferred member is missing (older layouts).
_FALLBACKS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "sglang": (),
    "vllm": (
        # The OpenAI server defined its own flags before cli_args.py existed.
        (r"vllm/entrypoints/[a-z_]+/cli_args\.py", ("vllm/entrypoints/openai/api_server.py",)),
        # FlexibleArgumentParser (underscores, --config, -O) before utils/argparse_utils.py.
        (r"vllm/utils/argparse_utils\.py", ("vllm/utils/__init__.py", "vllm/utils.py")),
    ),
}


def select_members(framework: str, names: Iterable[str]) -> list[str]:
    """The source members of a release that hold its flags, defaults and env vars."""
    present = set(names)
    patterns = [re.compile(p) for p in _MEMBERS[framework]]
    chosen = {n for n in present if any(p.fullmatch(n) for p in patterns)}
    for preferred, alternatives in _FALLBACKS[framework]:
        if not any(re.fullmatch(preferred, n) for n in present):
            for alt in alternatives:
                if alt in present:
                    chosen.add(alt)
                    break
    return sorted(chosen)


# -- reading one release -------------------------------------------------------------------


class MemberCache:
    """Source members by wheel sha256 (a file's bytes never change under one hash)."""

    def __init__(self, root: Optional[Path]) -> None:
        self.root = None if root is None else root / "launch"

    def _path(self, sha256: str) -> Optional[Path]:
        if self.root is None or not sha256:
            return None
        return self.root / sha256[:2] / f"{sha256}.json"

    def get(self, sha256: str) -> Optional[dict[str, Any]]:
        path = self._path(sha256)
        if path is None or not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def put(self, sha256: str, names: list[str], members: Mapping[str, str]) -> None:
        path = self._path(sha256)
        if path is None:
            return
        from compat.matrix.pypi import _atomic_write

        body = json.dumps({"names": names, "members": dict(members)}, sort_keys=True)
        _atomic_write(path, body.encode("utf-8"))


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def read_wheel_sources(
    client: PyPIClient, url: str, sha256: str, framework: str, cache: MemberCache
) -> tuple[dict[str, str], bool]:
    """(member -> text, taken from the cache) for the members `select_members` names."""
    hit = cache.get(sha256)
    if hit is not None:
        names = [str(n) for n in hit.get("names", [])]
        members = {str(k): str(v) for k, v in dict(hit.get("members", {})).items()}
        wanted = select_members(framework, names)
        if all(name in members for name in wanted):
            return {name: members[name] for name in wanted}, True
    file = HttpRangeFile(client, url)
    entries = read_zip_directory(file)
    names = [entry.name for entry in entries]
    chosen = set(select_members(framework, names))
    raw = read_zip_members(file, [e for e in entries if e.name in chosen], MAX_MEMBER)
    members = {name: _decode(data) for name, data in raw.items()}
    cache.put(sha256, names, members)
    return members, False


def read_sdist_sources(
    client: PyPIClient, url: str, sha256: str, size: int, framework: str, cache: MemberCache
) -> tuple[dict[str, str], bool]:
    """The same members out of a small sdist (read whole: old releases published no wheel)."""
    hit = cache.get(sha256)
    if hit is not None:
        return {str(k): str(v) for k, v in dict(hit.get("members", {})).items()}, True
    if size <= 0 or size > MAX_SDIST:
        raise FetchError(f"sdist of {size} bytes: too large to read whole, and no wheel")
    _, _, data = client.get_range(url, f"0-{size - 1}", limit=size)
    by_name: dict[str, tarfile.TarInfo] = {}
    members: dict[str, str] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for info in archive.getmembers():
                # "vllm-0.1.0/vllm/engine/arg_utils.py" -> "vllm/engine/arg_utils.py"
                parts = info.name.split("/", 1)
                if info.isfile() and len(parts) == 2:
                    by_name[parts[1]] = info
            for name in select_members(framework, by_name):
                handle = archive.extractfile(by_name[name])
                if handle is not None and by_name[name].size <= MAX_MEMBER:
                    members[name] = _decode(handle.read())
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise FetchError(f"unreadable sdist: {exc}") from None
    cache.put(sha256, sorted(by_name), members)
    return members, False


# -- the sync ---------------------------------------------------------------------------------

# Bumped when the extractor reads sources differently: every release is then read again
# (from the member cache when it has them, so without the network).
EXTRACTOR = 2


class LaunchReport(Struct, frozen=True):
    """What the launch sync did for one framework."""

    framework: str
    path: Path
    releases: int = 0
    read: int = 0  # sources fetched from the index in this run
    cached: int = 0  # sources taken from the member cache
    kept: int = 0  # releases carried over from the file (same wheel, same extractor)
    failures: tuple[tuple[str, str], ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    flags: tuple[int, int] = (0, 0)  # fewest and most flags of one release
    written: bool = False
    old_text: str = ""
    new_text: str = ""

    @property
    def changes_file(self) -> bool:
        return self.new_text != self.old_text

    def unified_diff(self) -> str:
        if not self.changes_file:
            return ""
        name = f"generated/launch/{self.path.name}"
        return "".join(
            difflib.unified_diff(
                self.old_text.splitlines(keepends=True),
                self.new_text.splitlines(keepends=True),
                fromfile=f"a/{name}",
                tofile=f"b/{name}",
            )
        )


class LaunchSyncReport(Struct, frozen=True):
    """The launch sync of every framework, with the network cost."""

    frameworks: tuple[LaunchReport, ...]
    write: bool
    elapsed_s: float = 0.0
    requests: int = 0
    bytes_received: int = 0

    @property
    def ok(self) -> bool:
        return not any(r.failures for r in self.frameworks)

    def unified_diff(self) -> str:
        return "".join(r.unified_diff() for r in self.frameworks)

    def summary(self, final: bool = True) -> str:
        lines = [
            f"launch data: {len(self.frameworks)} frameworks, {self.requests} requests, "
            f"{self.bytes_received / 2**20:.1f} MiB, {self.elapsed_s:.1f} s",
            f"{'framework':<12}{'releases':>9}{'read':>6}{'cached':>8}{'kept':>6}{'added':>7}"
            f"{'removed':>9}{'flags':>11}{'failed':>8}",
        ]
        for r in self.frameworks:
            lines.append(
                f"{r.framework:<12}{r.releases:>9}{r.read:>6}{r.cached:>8}{r.kept:>6}"
                f"{len(r.added):>7}{len(r.removed):>9}{f'{r.flags[0]}-{r.flags[1]}':>11}"
                f"{len(r.failures):>8}"
            )
            lines.extend(f"{r.framework}: failed {v}: {why}" for v, why in r.failures)
        if not final:
            return "\n".join(lines) + "\n"
        changed = [r for r in self.frameworks if r.changes_file]
        if not changed:
            lines.append("launch data: nothing to change")
        elif self.write:
            lines.append("wrote " + ", ".join(str(r.path) for r in changed if r.written))
        else:
            lines.append(
                "would write " + ", ".join(str(r.path) for r in changed) + " (run with --write)"
            )
        return "\n".join(lines) + "\n"


def launch_path(generated: Path, framework: str) -> Path:
    return generated / "launch" / f"{framework}.toml"


def _old_launch(path: Path, framework: str) -> tuple[str, Optional[launchdata.LaunchData], int]:
    """(text, data, extractor version) of the file as it is; a damaged file reads as empty."""
    from compat.matrix.schema import Problems

    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return "", None, 0
    try:
        import sys

        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        raw = tomllib.loads(text)
    except ValueError:
        return text, None, 0
    problems = Problems(str(path))
    data = launchdata.read_launch_data(problems, raw, framework)
    if problems.items:
        return text, None, 0
    meta = raw.get("meta", {})
    return text, data, int(meta.get("extractor", 0)) if isinstance(meta, dict) else 0


def database_releases(generated: Path, framework: str) -> list[str]:
    """The releases of `framework` in the version database (matrices/generated/<fw>.toml)."""
    return sorted(_load_old(generated / f"{framework}.toml").releases, key=Version)


_Result = Union[tuple[dict[str, str], bool], FetchError]


def _read(
    client: PyPIClient,
    cache: MemberCache,
    framework: str,
    page: ProjectPage,
    files: list[Mapping[str, Any]],
) -> tuple[Provenance, _Result]:
    wheel = choose_wheel(files)
    chosen: Mapping[str, Any]
    if wheel is not None:
        chosen = wheel
    else:
        sdists = [f for f in files if f.get("packagetype") == "sdist"]
        if not sdists:
            return Provenance("", "", "none", ""), FetchError("no wheel and no sdist")
        chosen = sdists[0]
    url = urljoin(page.url, str(chosen["url"]))
    sha = _sha256(chosen)
    method = "range" if wheel is not None else "sdist"
    source = Provenance(str(chosen["filename"]), sha, method, "")
    try:
        if wheel is not None:
            return source, read_wheel_sources(client, url, sha, framework, cache)
        size = int(chosen.get("size") or 0)
        return source, read_sdist_sources(client, url, sha, size, framework, cache)
    except FetchError as failure:
        return source, failure


def sync_launch(
    client: PyPIClient,
    cache: MemberCache,
    generated: Path,
    frameworks: Iterable[str] = FRAMEWORKS,
    write: bool = False,
    releases: Optional[Mapping[str, list[str]]] = None,
    progress: Optional[Callable[[str], None]] = None,
    now: Optional[Callable[[], datetime]] = None,
) -> LaunchSyncReport:
    """Bring generated/launch/<fw>.toml up to date with the database's releases.

    Only releases whose chosen file differs from the one recorded (new releases, a re-upload)
    are read; the rest are carried over from the file. `releases` overrides the release list
    read from generated/<fw>.toml (the pins sync passes what it is about to write).
    """
    started = time.monotonic()
    say = progress or (lambda _m: None)
    when = (now or (lambda: datetime.now(timezone.utc)))()
    read_at = when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    today = when.astimezone(timezone.utc).date().isoformat()
    reports: list[LaunchReport] = []
    if (bar := tracked(say)) is not None:
        bar.watch(lambda: (client.requests, client.bytes_received))
    with ThreadPoolExecutor(max_workers=client.concurrency) as pool:
        for framework in frameworks:
            reports.append(
                _sync_one(
                    client,
                    cache,
                    pool,
                    generated,
                    framework,
                    (releases or {}).get(framework),
                    read_at,
                    today,
                    say,
                )
            )
    if write:
        from compat.matrix.commit import database_root

        write_all(
            database_root(generated), ((r.path, r.new_text) for r in reports if r.changes_file)
        )
        reports = [replace(r, written=r.changes_file) for r in reports]
    return LaunchSyncReport(
        tuple(reports), write, time.monotonic() - started, client.requests, client.bytes_received
    )


def _sync_one(
    client: PyPIClient,
    cache: MemberCache,
    pool: ThreadPoolExecutor,
    generated: Path,
    framework: str,
    wanted: Optional[list[str]],
    read_at: str,
    today: str,
    say: Callable[[str], None],
) -> LaunchReport:
    path = launch_path(generated, framework)
    old_text, old, extractor = _old_launch(path, framework)
    versions = wanted if wanted is not None else database_releases(generated, framework)
    versions = sorted(versions, key=Version)
    try:
        page = client.project(framework)
    except FetchError as failure:
        raise NetworkError(
            f"the index did not answer for {framework}: {failure.reason}",
            "try again later; no file was changed",
        ) from None
    if page is None:
        return LaunchReport(
            framework,
            path,
            failures=(("*", "not on the index"),),
            old_text=old_text,
            new_text=old_text,
        )
    old_facts = launchdata.expand(old) if old is not None and extractor == EXTRACTOR else {}
    old_sources = {str(r.version): r.source for r in old.releases} if old is not None else {}
    records: list[launchdata.ReleaseRecord] = []
    failures: list[tuple[str, str]] = []
    futures: dict[str, Future[tuple[Provenance, _Result]]] = {}
    kept = 0
    for version in versions:
        files = page.data["releases"].get(version) or []
        choice = choose_wheel(files) or next(
            (f for f in files if f.get("packagetype") == "sdist"), None
        )
        previous = old_sources.get(version)
        if (
            choice is not None
            and previous is not None
            and version in old_facts
            and previous.file == choice.get("filename")
            and previous.sha256 == _sha256(choice)
        ):
            records.append(launchdata.ReleaseRecord(version, old_facts[version], previous))
            kept += 1
            continue
        if not files:
            failures.append((version, "no files on the index"))
            continue
        futures[version] = pool.submit(_read, client, cache, framework, page, files)
        if (bar := tracked(say)) is not None:
            bar.add(1)
            futures[version].add_done_callback(bar.step)
    say(f"launch {framework}: {len(versions)} releases, {len(futures)} to read")
    read = cached = 0
    for version, future in futures.items():
        source, result = future.result()
        if isinstance(result, FetchError):
            failures.append((version, result.reason))
            if version in old_facts:  # stale beats missing
                records.append(
                    launchdata.ReleaseRecord(version, old_facts[version], old_sources[version])
                )
            continue
        members, from_cache = result
        cached += from_cache
        read += not from_cache
        facts = extract(framework, members)
        records.append(
            launchdata.ReleaseRecord(
                version,
                facts,
                Provenance(
                    source.file, source.sha256, source.method, read_at, tuple(sorted(members))
                ),
            )
        )
    synced = old.synced if old is not None else today
    doc = launchdata.merge(framework, records, client.index_url, synced, EXTRACTOR)
    text = launchdata.render(doc)
    if text != old_text:
        doc["meta"]["synced"] = today
        text = launchdata.render(doc)
    counts = [len(r.facts.args) for r in records] or [0]
    old_versions = set(old_sources)
    return LaunchReport(
        framework=framework,
        path=path,
        releases=len(records),
        read=read,
        cached=cached,
        kept=kept,
        failures=tuple(failures),
        added=tuple(v for v in versions if v not in old_versions),
        removed=tuple(sorted((v for v in old_versions if v not in set(versions)), key=Version)),
        flags=(min(counts), max(counts)),
        old_text=old_text,
        new_text=text,
    )


def run_launch_sync(
    generated: Path,
    cache_dir: Optional[Path],
    write: bool,
    frameworks: Iterable[str] = FRAMEWORKS,
    releases: Optional[Mapping[str, list[str]]] = None,
    concurrency: int = 8,
    index_url: str = DEFAULT_INDEX_URL,
    progress: Optional[Callable[[str], None]] = None,
) -> LaunchSyncReport:
    """`compat matrix sync`'s launch step: cache under $COMPAT_CACHE_DIR or ~/.cache/compat/http."""
    root = cache_dir if cache_dir is not None else default_cache_dir()
    with PyPIClient(index_url=index_url, cache=DiskCache(root), concurrency=concurrency) as client:
        return sync_launch(
            client, MemberCache(root), generated, frameworks, write, releases, progress
        )
