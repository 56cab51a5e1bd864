"""Launch data sync: each framework release's own argument and env-var sources, read by range."""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional, Union
from urllib.parse import urljoin

from packaging.version import Version

from compat.errors import NetworkError
# from compat.matrix import launchdata
# from compat.matrix.launch_extract import ReleaseFacts, extract
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


@dataclass(frozen=True)
class ReleaseSource:
    """The source members of one release, and where they came from."""

    version: str
    file: str
    sha256: str
    method: str  # "range" (zip members by HTTP range), "sdist" (small sdist read whole), "none"
    members: Mapping[str, str]
    note: str = ""


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
    wanted = set(select_members(framework, names))
    raw = read_zip_members(file, [e for e in entries if e.name in wanted], MAX_MEMBER)
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
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise FetchError(f"unreadable sdist: {exc}") from None
    by_name: dict[str, tarfile.TarInfo] = {}
    with archive:
        for info in archive.getmembers():
            # "vllm-0.1.0/vllm/engine/arg_utils.py" -> "vllm/engine/arg_utils.py"
            parts = info.name.split("/", 1)
            if info.isfile() and len(parts) == 2:
                by_name[parts[1]] = info
        wanted = select_members(framework, by_name)
        members: dict[str, str] = {}
        for name in wanted:
            handle = archive.extractfile(by_name[name])
            if handle is not None and by_name[name].size <= MAX_MEMBER:
                members[name] = _decode(handle.read())
    cache.put(sha256, sorted(by_name), members)
    return members, False
