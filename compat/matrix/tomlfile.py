"""TOML data files read once and kept as JSON keyed by their content (the database's fast path)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Optional, Union

from compat.errors import CompatError, DataError
from compat.fileio import MAX_DATA, atomic_write, identity, read_bytes


def cache_root() -> Path:
    """$COMPAT_CACHE_DIR, else $XDG_CACHE_HOME/compat, else ~/.cache/compat."""
    from compat.answers import cache_dir

    return Path(cache_dir())


def parse_toml(raw: bytes, origin: str) -> dict[str, Any]:
    """TOML bytes as a dict; any problem (syntax, encoding, nesting too deep) is a DataError."""
    # imported here: a run that finds every file in the JSON cache never parses TOML
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except ValueError as exc:  # TOMLDecodeError, UnicodeDecodeError, a 5,000-digit integer
        raise DataError(
            [f"{origin}: not valid TOML: {exc}"],
            hint="run `compat matrix validate` after fixing the file",
        ) from exc
    except RecursionError:
        raise DataError(
            [f"{origin}: not valid TOML: nested too deeply"],
            hint="run `compat matrix validate` after fixing the file",
        ) from None


def read_toml(path: Path, cached: bool = False) -> dict[str, Any]:
    """A TOML file as a dict; with `cached`, through a JSON copy keyed by the file's content.

    TOML parsing of the generated files costs ~30x what JSON does, and `compat check` runs
    before every launch: the cache makes the second and later runs cheap, and a content hash
    (not a timestamp) keeps it correct whatever installs or edits the file. A cache entry that
    cannot be read, or holds anything but a JSON object, is ignored and rewritten.
    """
    raw = read_bytes(path, MAX_DATA, "data file")
    return parse_toml_cached(raw, str(path)) if cached else parse_toml(raw, str(path))


def parse_toml_cached(raw: bytes, origin: str) -> dict[str, Any]:
    """parse_toml through the JSON copy keyed by the bytes' hash."""
    cache_file = _cache_path(raw)
    hit = load_entry(cache_file)
    if hit is not None:
        return hit
    data = parse_toml(raw, origin)
    store_entry(cache_file, data)
    return data


def _cache_path(raw: bytes) -> Path:
    return cache_root() / "index" / f"{hashlib.sha256(raw).hexdigest()[:32]}.json"


# An entry is a header line, `compat-cache 1 <sha256 of the rest>`, then the JSON: one that was
# cut short, overwritten or edited (a JSON object of another shape would pass a type test and
# change every later answer) fails the digest, is ignored and is written again.
_MAGIC = b"compat-cache 1 "


def load_entry(path: Path) -> Optional[dict[str, Any]]:
    """A cache entry written by `store_entry`: its JSON object, or None when it is absent,
    unreadable, cut short or edited (the digest in its first line no longer fits)."""
    try:
        raw = read_bytes(path, MAX_DATA, "cache entry")
    except CompatError:
        return None  # absent, unreadable, not a regular file, too large: no cache
    head, _, body = raw.partition(b"\n")
    if (
        not head.startswith(_MAGIC)
        or head[len(_MAGIC) :] != hashlib.sha256(body).hexdigest().encode()
    ):
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def store_entry(path: Path, data: dict[str, Any]) -> None:
    """`data` written atomically with its digest, best effort: a read-only home just means no
    cache; a value JSON cannot hold (a TOML datetime) means this file is not cached, and
    validation reports the value."""
    try:
        body = json.dumps(data, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        return
    with contextlib.suppress(OSError):
        atomic_write(path, _MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body)


def read_toml_folder(
    paths: list[Path],
) -> list[tuple[Path, Union[dict[str, Any], CompatError]]]:
    """Many small TOML files (the advisories) through one JSON copy keyed by all their bytes:
    one cache read instead of one per file. A file that cannot be read or parsed comes back as
    its error, in its place, and the set is then not cached.

    Which copy holds the folder is remembered with the files' stat fields (the ones git's index
    trusts: size, mtime, ctime, inode, device; any write changes ctime, which no tool can set
    back), so an unchanged folder costs a stat per file, not a read."""
    signature = _stat_signature(paths)
    pointer = (
        cache_root()
        / "index"
        / f"at-{hashlib.sha256(str(paths[0].parent).encode()).hexdigest()[:32]}.json"
        if signature is not None and paths
        else None
    )
    if pointer is not None:
        known = load_entry(pointer)
        content = known.get("content") if known is not None else None
        if known is not None and known.get("signature") == signature and isinstance(content, str):
            files = _folder_hit(load_entry(_folder_entry(content)), len(paths))
            if files is not None:
                return list(zip(paths, files))
    raws: list[tuple[Path, Union[bytes, CompatError]]] = []
    digest = hashlib.sha256()
    for path in paths:
        try:
            raw: Union[bytes, CompatError] = read_bytes(path, MAX_DATA, "data file")
        except CompatError as exc:
            raw = exc
        raws.append((path, raw))
        digest.update(path.name.encode() + b"\0")
        digest.update(raw if isinstance(raw, bytes) else b"\0error\0")
        digest.update(b"\0")
    content = digest.hexdigest()[:32]
    cache_file = _folder_entry(content)
    files = _folder_hit(load_entry(cache_file), len(paths))
    if files is None:
        out: list[tuple[Path, Union[dict[str, Any], CompatError]]] = []
        for path, raw in raws:
            if isinstance(raw, CompatError):
                out.append((path, raw))
                continue
            try:
                out.append((path, parse_toml(raw, str(path))))
            except DataError as exc:
                out.append((path, exc))
        if not all(isinstance(d, dict) for _, d in out):
            return out
        files = [d for _, d in out if isinstance(d, dict)]
        store_entry(cache_file, {"files": files})
        _prune(cache_file.parent, "folder-*.json", keep=8)
    if pointer is not None:
        store_entry(pointer, {"signature": signature, "content": content})
    return list(zip(paths, files))


def _folder_entry(content: str) -> Path:
    return cache_root() / "index" / f"folder-{content}.json"


def _prune(folder: Path, pattern: str, keep: int) -> None:
    """Best effort: the newest `keep` entries of a kind stay (a data update writes a new one)."""
    with contextlib.suppress(OSError):
        entries = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[keep:]:
            old.unlink(missing_ok=True)


def _folder_hit(hit: Optional[dict[str, Any]], count: int) -> Optional[list[dict[str, Any]]]:
    files = hit.get("files") if hit is not None else None
    if isinstance(files, list) and len(files) == count and all(isinstance(f, dict) for f in files):
        return files
    return None


def _stat_signature(paths: list[Path]) -> Optional[str]:
    """A digest of each file's name and stat fields; None when one is not a regular file (it
    is read, and its error reported, the slow way)."""
    digest = hashlib.sha256()
    for path in paths:
        fields = identity(path)
        if fields is None:
            return None
        digest.update(f"{path.name}\0{fields}\0".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:32]
