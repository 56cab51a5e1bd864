"""Data files through the JSON cache: one read for a folder of advisories, never a stale copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from compat.errors import DataError
from compat.matrix import tomlfile


@pytest.fixture()
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COMPAT_CACHE_DIR", str(tmp_path / "cache"))
    d = tmp_path / "adv"
    d.mkdir()
    for i in range(3):
        (d / f"A-{i}.toml").write_text(f'id = "A-{i}"\nn = {i}\n')
    return d


def test_a_folder_is_parsed_once_then_read_from_one_cache_file(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = sorted(folder.glob("*.toml"))
    first = tomlfile.read_toml_folder(paths)
    assert [d for _, d in first] == [{"id": f"A-{i}", "n": i} for i in range(3)]
    assert len(list((Path(tomlfile.cache_root()) / "index").glob("folder-*.json"))) == 1

    def no_parsing(raw: bytes, origin: str) -> dict[str, object]:
        raise AssertionError("parsed again")

    monkeypatch.setattr(tomlfile, "parse_toml", no_parsing)
    assert tomlfile.read_toml_folder(paths) == first


def test_an_edited_file_or_a_broken_cache_is_never_used_stale(folder: Path) -> None:
    paths = sorted(folder.glob("*.toml"))
    tomlfile.read_toml_folder(paths)
    (folder / "A-1.toml").write_text('id = "A-1"\nn = 11\n')
    assert tomlfile.read_toml_folder(paths)[1][1] == {"id": "A-1", "n": 11}
    for cached in (Path(tomlfile.cache_root()) / "index").glob("folder-*.json"):
        cached.write_text('{"files": [1, 2]}')  # not what was stored: ignored, rewritten
    assert tomlfile.read_toml_folder(paths)[1][1] == {"id": "A-1", "n": 11}
    (folder / "A-2.toml").write_text("id = ")
    got = tomlfile.read_toml_folder(paths)
    assert isinstance(got[2][1], DataError) and got[0][1] == {"id": "A-0", "n": 0}


def test_an_unchanged_folder_costs_a_stat_per_file_not_a_read(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = sorted(folder.glob("*.toml"))
    first = tomlfile.read_toml_folder(paths)
    calls: list[str] = []
    original = tomlfile.read_bytes

    def counted(path: object, *args: object, **kwargs: object) -> bytes:
        calls.append(str(path))
        return original(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tomlfile, "read_bytes", counted)
    assert tomlfile.read_toml_folder(paths) == first
    assert not [c for c in calls if c.endswith(".toml")]  # only the two cache entries
    assert len(calls) == 2


def test_an_edit_that_keeps_size_and_mtime_is_still_seen(folder: Path) -> None:
    """The stat fields include ctime: an edit with the old mtime put back is not missed."""
    import os

    paths = sorted(folder.glob("*.toml"))
    tomlfile.read_toml_folder(paths)
    target = folder / "A-1.toml"
    before = target.stat()
    target.write_text('id = "A-1"\nn = 7\n')  # same size as `n = 1`
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert target.stat().st_size == before.st_size
    assert target.stat().st_mtime_ns == before.st_mtime_ns
    assert tomlfile.read_toml_folder(paths)[1][1] == {"id": "A-1", "n": 7}


def test_the_folder_pointer_damaged_or_pointing_nowhere_falls_back_to_the_bytes(
    folder: Path,
) -> None:
    paths = sorted(folder.glob("*.toml"))
    first = tomlfile.read_toml_folder(paths)
    index = Path(tomlfile.cache_root()) / "index"
    (pointer,) = index.glob("at-*.json")
    pointer.write_text("garbage")
    assert tomlfile.read_toml_folder(paths) == first
    for entry in index.glob("folder-*.json"):
        entry.unlink()
    assert tomlfile.read_toml_folder(paths) == first
    assert len(list(index.glob("folder-*.json"))) == 1
