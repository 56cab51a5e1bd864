"""`--deep` without importing torch, and cached: torch's arch list from the fatbin headers of real
CUDA objects (torchao 0.15.0 from PyPI, kept as the byte ranges the readers ask for and laid out
as sparse files of the real size), and the per-file cache of what the ELF reads found."""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import msgspec.structs
import pytest

from compat import elf
from compat.matrix.buildfacts import is_torch_symbol, symbol_hash
from compat.matrix.schema import cc_str, decode_ranges
from compat.matrix.tomlfile import parse_toml
from compat.models import Distribution, TorchBuild
from compat.probe import deep, deepcache
from compat.probe import torch as torch_probe
from compat.probe.deepcache import FactCache
from compat.probe.distributions import scan
from tests.conftest import make_dist

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "tests" / "assets" / "deep"
BUILDS = ROOT / "matrices" / "generated" / "builds"
CASES = ("torchao-0.15.0-mxfp8", "torchao-0.15.0-cutlass-100a")
CC = shutil.which("cc") or shutil.which("gcc")


def _recorded(case: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((ASSETS / f"{case}.json").read_text())
    return doc


def _lay_out(case: str, path: Path) -> dict[str, Any]:
    """The member as a sparse file of its real size: the recorded ranges, zeros elsewhere."""
    doc = _recorded(case)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(doc["size"])
        for at, data in doc["reads"]:
            fh.seek(at)
            fh.write(base64.b64decode(data))
    return doc


def _torchao_record() -> dict[str, Any]:
    """torchao 0.15.0's build facts in the database, read by the sync from PyPI range reads."""
    data = parse_toml((BUILDS / "torchao.toml").read_bytes(), "torchao.toml")
    record: dict[str, Any] = data["releases"]["0.15.0"]
    return record


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, int]]]:
    """Every read of an installed ELF file (name, bytes), through the one reader `--deep` uses."""
    seen: list[tuple[str, int]] = []
    real_get = elf.FileImage.get

    def get(self: elf.FileImage, offset: int, length: int) -> Optional[bytes]:
        seen.append((os.path.basename(getattr(self.handle, "name", "?")), length))
        return real_get(self, offset, length)

    monkeypatch.setattr(elf.FileImage, "get", get)
    yield seen


def make_torch(site: Path) -> Distribution:
    """A CUDA torch's dist-info and version.py (its libraries are the test's)."""
    make_dist(site, "torch", "2.9.1+cu128")
    (site / "torch" / "version.py").write_text("__version__ = '2.9.1+cu128'\ncuda = '12.8'\n")
    return next(d for d in scan([str(site)]) if d.key == "torch")


# -- the arch list from fatbin headers ---------------------------------------------------------


def test_arch_list_matches_the_fatbins_the_database_recorded(tmp_path: Path) -> None:
    record = _torchao_record()
    sass: set[str] = set()
    ptx: set[str] = set()
    for case in CASES:
        lib = tmp_path / case / "torch" / "lib"
        doc = _lay_out(case, lib / "libtorch_cuda.so")
        assert doc["sha256"] == record["sha256"]  # the same wheel the sync read
        got = torch_probe.fatbin_arch_list(str(lib), FactCache(tmp_path / "cache"))
        assert got.final and got.source == "fatbin headers of torch/lib/libtorch_cuda.so"
        names = list(got.archs)
        # torch's own order: SASS targets, then PTX ones, each ascending.
        kinds = [a.split("_")[0] for a in names]
        assert kinds == sorted(kinds, key=lambda k: k != "sm")
        sass.update(cc_str(divmod(int(a[3:]), 10)) for a in names if a.startswith("sm_"))
        ptx.update(cc_str(divmod(int(a[8:]), 10)) for a in names if a.startswith("compute_"))
    # The union over the two members with GPU code is what the database holds for the wheel.
    assert record["archs"].startswith("2 of 4 members read whole, 2 with GPU code")
    assert sorted(sass) == record["sass"] and sorted(ptx) == record["ptx"]


def test_only_headers_are_read(tmp_path: Path, counted: list[tuple[str, int]]) -> None:
    lib = tmp_path / "torch" / "lib"
    doc = _lay_out("torchao-0.15.0-mxfp8", lib / "libtorch_cuda.so")
    got = torch_probe.fatbin_arch_list(str(lib), FactCache(None))
    assert got.archs
    spent = sum(n for _, n in counted)
    # ELF and section headers, one fatbin header and its entries: a few KiB of an 800 KiB file
    # whose fatbin section alone is 630 KiB.
    assert spent < 8 * 1024 and doc["size"] > 100 * spent


def test_the_walk_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counted: list[tuple[str, int]]
) -> None:
    lib = tmp_path / "torch" / "lib"
    _lay_out("torchao-0.15.0-mxfp8", lib / "libtorch_cuda.so")
    monkeypatch.setattr(torch_probe, "ARCH_MAX_BYTES", 512)
    asked: list[str] = []
    monkeypatch.setattr(torch_probe, "arch_list", lambda exe: asked.append(exe) or ((), "no"))
    got = torch_probe.read_arch_list(make_torch(tmp_path), "python", FactCache(None))
    assert got.archs == () and got.final
    assert "more than 512 bytes of headers" in got.source
    assert asked == []  # a walk stopped by its bounds does not import torch instead
    assert sum(n for _, n in counted) <= 512


def test_bounded_image_deadline() -> None:
    now = [0.0]
    image = elf.BoundedImage(elf.BytesImage(b"x" * 100), 1000, 5.0, clock=lambda: now[0])
    assert image.get(0, 10) == b"x" * 10
    now[0] = 6.0
    assert image.get(10, 10) is None and image.exceeded == "not done within 5 s"
    now[0] = 0.0
    assert image.get(0, 1) is None  # once stopped, stays stopped


@pytest.mark.skipif(CC is None, reason="needs a C compiler")
def test_a_cuda_library_without_fatbin_falls_back_to_torch(tmp_path: Path) -> None:
    lib = tmp_path / "torch" / "lib"
    lib.mkdir(parents=True)
    src = tmp_path / "k.c"
    src.write_text("void _ZN2at3addEv(void) {}\n")
    assert CC is not None
    subprocess.run(
        [CC, "-shared", "-fPIC", "-o", str(lib / "libtorch_cuda.so"), str(src)], check=True
    )
    torch_dist = make_torch(tmp_path)
    # An interpreter that cannot import torch: the fallback's failure is a value too.
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named torch' >&2\nexit 1\n")
    fake.chmod(0o755)
    got = torch_probe.read_arch_list(torch_dist, str(fake), FactCache(tmp_path / "cache"))
    assert got.archs == ()
    assert got.source == (
        "libtorch_cuda.so holds no fatbin; importing torch failed: "
        "ModuleNotFoundError: No module named torch"
    )
    # An interpreter whose torch answers: its list is taken, and said where it came from.
    fake.write_text('#!/bin/sh\necho \'["sm_80", "sm_90"]\'\n')
    got = torch_probe.read_arch_list(torch_dist, str(fake), FactCache(tmp_path / "cache"))
    assert got.archs == ("sm_80", "sm_90") and got.source == "torch.cuda.get_arch_list()"


def test_unreadable_or_missing_libraries_are_values(tmp_path: Path) -> None:
    lib = tmp_path / "torch" / "lib"
    lib.mkdir(parents=True)
    cache = FactCache(tmp_path / "cache")
    got = torch_probe.fatbin_arch_list(str(lib), cache)
    assert got == torch_probe.ArchRead(
        (), "torch/lib has no libtorch_cuda.so or libtorch_cuda_cu.so", final=False
    )
    (lib / "libtorch_cuda.so").write_bytes(b"\x7fELF\x02\x01" + b"\0" * 10)
    got = torch_probe.fatbin_arch_list(str(lib), cache)
    assert got.archs == () and not got.final and got.source.startswith("libtorch_cuda.so: ")
    # A fatbin whose header claims more bytes than its section: the walk says so.
    path = lib / "libtorch_cuda.so"
    _lay_out("torchao-0.15.0-mxfp8", path)
    data = bytearray(path.read_bytes())
    at = data.index(struct.pack("<I", elf.FATBIN_MAGIC))
    struct.pack_into("<Q", data, at + 8, 2**40)
    path.write_bytes(bytes(data))
    got = torch_probe.fatbin_arch_list(str(lib), cache)
    assert got == torch_probe.ArchRead(
        (), "libtorch_cuda.so: fatbin header out of bounds", final=False
    )
    # Cut short: the section headers at its end are gone.
    os.truncate(path, at + 40)
    got = torch_probe.fatbin_arch_list(str(lib), cache)
    assert got == torch_probe.ArchRead(
        (), "libtorch_cuda.so: section headers not readable", final=False
    )
    assert list((tmp_path / "cache").glob("*.json")) == []  # no failure is cached


# -- the symbol reads, against the database ------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_torch_imports_match_the_database(case: str, tmp_path: Path) -> None:
    """The imports read from the recorded bytes are those the sync recorded for the member."""
    doc = _lay_out(case, tmp_path / "obj.so")
    record = _torchao_record()
    tracked = parse_toml((BUILDS / "torch-exports.toml").read_bytes(), "torch-exports.toml")[
        "tracked"
    ]["symbols"]
    ranges = dict(line.split(": ", 1) for line in record["member_imports"])
    expected = {tracked[i] for i in decode_ranges(ranges[doc["member"]])}
    full = elf.parse_file(str(tmp_path / "obj.so"))
    assert isinstance(full, elf.ElfInfo)
    assert {symbol_hash(s) for s in full.undefined if is_torch_symbol(s)} == expected
    quick = elf.parse_file(str(tmp_path / "obj.so"), deep.TORCH_SYMBOL_PREFIXES, "undefined")
    assert isinstance(quick, elf.ElfInfo) and quick.defined == frozenset()
    assert quick.needed == full.needed
    assert quick.undefined == {
        s for s in full.undefined if s.startswith(deep.TORCH_SYMBOL_PREFIXES)
    }
    assert quick.undefined and quick.weak_undefined == {
        s for s in full.weak_undefined if s.startswith(deep.TORCH_SYMBOL_PREFIXES)
    }


# -- the cache -------------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """torch whose CUDA library is torchao's _C_mxfp8 (a real fatbin) and whose libc10.so is
    torchao's _C_cutlass_100a (real exports), and torchao with one object."""
    root = tmp_path / "site"
    lib = root / "torch" / "lib"
    _lay_out("torchao-0.15.0-mxfp8", lib / "libtorch_cuda.so")
    _lay_out("torchao-0.15.0-cutlass-100a", lib / "libc10.so")
    make_torch(root)
    _lay_out("torchao-0.15.0-mxfp8", root / "torchao" / "_C_mxfp8.so")
    dist = make_dist(root, "torchao", "0.15.0")
    (dist / "RECORD").write_text("torchao/_C_mxfp8.so,sha256=x,1\ntorchao/__init__.py,,\n")
    return root


def _deep(site: Path, cache: FactCache) -> tuple[Any, torch_probe.ArchRead]:
    dists = deep.with_objects(scan([str(site)]), cache)
    torchao = next(d for d in dists if d.key == "torchao")
    torch_dist = next(d for d in dists if d.key == "torch")
    return torchao.objects, torch_probe.read_arch_list(torch_dist, "python", cache)


def test_a_repeat_run_reads_no_elf_file(site: Path, counted: list[tuple[str, int]]) -> None:
    folder = site.parent / "cache"
    first_objects, first_archs = _deep(site, FactCache(folder))
    assert {name for name, _ in counted} == {"libtorch_cuda.so", "libc10.so", "_C_mxfp8.so"}
    (obj,) = first_objects
    assert obj.error == "" and "libtorch_cuda.so" in obj.needed
    # The same judgment from the full symbol tables.
    full = elf.parse_file(str(site / "torchao" / "_C_mxfp8.so"))
    assert isinstance(full, elf.ElfInfo)
    imports = {
        s for s in full.undefined | full.weak_undefined if s.startswith(deep.TORCH_SYMBOL_PREFIXES)
    }
    exported: set[str] = set()
    for lib in ("libc10.so", "libtorch_cuda.so"):
        got = elf.parse_file(str(site / "torch" / "lib" / lib))
        assert isinstance(got, elf.ElfInfo)
        exported |= got.defined
    absent = sorted(imports - exported)
    assert obj.torch_imports == len(imports) > 0
    assert (obj.unresolved_count, obj.unresolved) == (len(absent), tuple(absent[:8]))
    assert first_archs.archs and first_archs.source.startswith("fatbin headers")
    counted.clear()
    cache = FactCache(folder)
    assert _deep(site, cache) == (first_objects, first_archs)
    # Two entries read (the object's facts, the arch list); torch's exports not even loaded:
    # the object's judgment was kept with the keys of torch's libraries.
    assert counted == [] and cache.misses == 0 and cache.hits == 2


def test_exports_are_loaded_only_when_a_judgment_is_missing(
    site: Path, counted: list[tuple[str, int]]
) -> None:
    folder = site.parent / "cache"
    first, _ = _deep(site, FactCache(folder))
    # Another object with the same bytes: its facts are read, torch's exports come from the cache.
    shutil.copy(site / "torchao" / "_C_mxfp8.so", site / "torchao" / "_C_other.so")
    record = next(site.glob("torchao-*.dist-info")) / "RECORD"
    record.write_text(record.read_text() + "torchao/_C_other.so,sha256=x,1\n")
    counted.clear()
    cache = FactCache(folder)
    objects, _ = _deep(site, cache)
    assert {name for name, _ in counted} == {"_C_other.so"}
    assert objects[1] == msgspec.structs.replace(first[0], path="torchao/_C_other.so")


def test_a_changed_file_is_read_again(site: Path, counted: list[tuple[str, int]]) -> None:
    folder = site.parent / "cache"
    first, archs = _deep(site, FactCache(folder))
    obj = site / "torchao" / "_C_mxfp8.so"
    st = obj.stat()
    os.utime(obj, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # same size, new mtime
    counted.clear()
    again, _ = _deep(site, FactCache(folder))
    assert {name for name, _ in counted} == {"_C_mxfp8.so"} and again == first
    # torch replaced by another build: its exports and fatbins are read again, and the object
    # judged against them.
    libc10 = site / "torch" / "lib" / "libc10.so"
    os.truncate(libc10, libc10.stat().st_size + 4096)  # another size, the same headers
    counted.clear()
    _, archs2 = _deep(site, FactCache(folder))
    assert {name for name, _ in counted} == {"libc10.so"}
    assert archs2 == archs


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json"))


def _foreign(entries: list[Path]) -> None:
    """Each entry replaced by another file's (valid, but not this file's)."""
    texts = [e.read_bytes() for e in entries]
    for e, text in zip(entries, texts[1:] + texts[:1]):
        e.write_bytes(text)


def _other_release(entries: list[Path]) -> None:
    for e in entries:
        doc = json.loads(e.read_bytes())
        doc["reader"] = "0.0.1"
        e.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"{not json",
        b"[1, 2, 3]",
        b"\xff\xfe garbage",
        b'{"format": 99}',
        b'{"format": 1, "kind": "archs", "path": "/x", "size": 1, "mtime_ns": 1, "value": {}}',
        _foreign,
        _other_release,
    ],
)
def test_a_corrupt_or_foreign_entry_is_ignored_and_rewritten(
    site: Path, counted: list[tuple[str, int]], damage: Any
) -> None:
    folder = site.parent / "cache"
    first = _deep(site, FactCache(folder))
    entries = _entries(folder)
    assert len(entries) == 4  # the object, torch's two libraries' exports, the arch list
    if callable(damage):
        damage(entries)
    else:
        for e in entries:
            e.write_bytes(damage)
    counted.clear()
    cache = FactCache(folder)
    assert _deep(site, cache) == first
    assert cache.hits == 0 and {n for n, _ in counted} == {
        "_C_mxfp8.so",
        "libc10.so",
        "libtorch_cuda.so",
    }
    for e in _entries(folder):
        doc = json.loads(e.read_bytes())
        assert doc["format"] == deepcache.FORMAT and isinstance(doc["value"], dict)
    counted.clear()
    assert _deep(site, FactCache(folder)) == first and counted == []


def test_a_wrong_shaped_value_is_ignored(site: Path, counted: list[tuple[str, int]]) -> None:
    folder = site.parent / "cache"
    first = _deep(site, FactCache(folder))
    for e in _entries(folder):
        doc = json.loads(e.read_bytes())
        doc["value"] = {k: {"x": 1} for k in doc["value"]}  # right keys, wrong types
        e.write_text(json.dumps(doc))
    counted.clear()
    assert _deep(site, FactCache(folder)) == first
    assert {n for n, _ in counted} == {"_C_mxfp8.so", "libc10.so", "libtorch_cuda.so"}


def test_an_unwritable_cache_only_costs_time(site: Path) -> None:
    blocker = site.parent / "cache"
    blocker.write_text("a file where the folder would be")
    cache = FactCache(blocker / "deep")
    first = _deep(site, cache)
    assert first == _deep(site, FactCache(None))


def test_the_folder_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deepcache, "MAX_ENTRIES", 8)
    folder = tmp_path / "cache"
    folder.mkdir()
    for i in range(12):
        (folder / f"{i:032x}.json").write_text("{}")
        os.utime(folder / f"{i:032x}.json", (i, i))
    (tmp_path / "f").write_bytes(b"x")
    key = deepcache.file_key(str(tmp_path / "f"))
    assert key is not None
    cache = FactCache(folder)
    cache.put("object", key, {"error": "x"})
    # Past the bound the oldest go, down to 3/4 of it (6); then the new entry is written.
    assert len(_entries(folder)) == 7
    assert not (folder / f"{0:032x}.json").exists() and cache.get("object", key) == {"error": "x"}


def test_the_cache_lives_under_the_users_cache_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPAT_CACHE_DIR", "/somewhere/compat")
    assert deepcache.default_cache().folder == Path("/somewhere/compat/deep")


def test_probe_environment_reads_the_arch_list_without_torch(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from compat.probe import probe_environment, python

    def no_import(executable: str) -> tuple[tuple[str, ...], str]:
        raise AssertionError("torch was imported")

    monkeypatch.setattr(torch_probe, "arch_list", no_import)
    here = python.current()
    monkeypatch.setattr(
        python, "current", lambda tags=True: msgspec.structs.replace(here, path=(str(site),))
    )
    env = probe_environment(None, host=False, deep=True, walk_caches=False)
    assert isinstance(env.torch, TorchBuild) and env.deep
    direct = torch_probe.fatbin_arch_list(str(site / "torch" / "lib"), FactCache(None))
    assert env.torch.arch_list == direct.archs != ()
    assert env.torch.arch_source == "fatbin headers of torch/lib/libtorch_cuda.so"
    (torchao,) = [d for d in env.distributions if d.key == "torchao"]
    assert [o.path for o in torchao.objects] == ["torchao/_C_mxfp8.so"]
