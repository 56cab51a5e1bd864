"""The bounded ELF reader: real shared objects from wheels, generated ones, and hostile bytes."""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compat import elf
from compat.models import Unknown

sys.path.insert(0, str(Path(__file__).resolve().parent / "matrix"))
from wheelbytes import make_elf, recorded


def _member(case: str) -> bytes:
    """The inflated bytes of a member recorded whole."""
    _, entry, file = recorded(case)
    data = file.reads[0][1]
    name_len, extra_len = struct.unpack("<HH", data[26:30])
    raw = data[30 + name_len + extra_len : 30 + name_len + extra_len + entry.compressed]
    out = zlib.decompressobj(-15).decompress(raw)
    assert zlib.crc32(out) == entry.crc
    return out


LIBSHM = "torch-2.8.0-libshm"
SPATIAL = "sglang-kernel-0.4.1-spatial-ops"


def test_real_torch_library() -> None:
    info = elf.parse(elf.BytesImage(_member(LIBSHM)))
    assert isinstance(info, elf.ElfInfo)
    assert info.symbols_from == "sections" and info.needed_from == "dynamic"
    assert info.needed[:3] == ("libtorch_cpu.so", "librt.so.1", "libc10.so")
    # libshm imports c10's allocator API from libc10.so.
    assert any(s.startswith("_ZN3c10") for s in info.undefined)
    assert info.soname == "libshm.so"


def test_real_kernel_library_and_its_fatbin() -> None:
    image = elf.BytesImage(_member(SPATIAL))
    info = elf.parse(image)
    assert isinstance(info, elf.ElfInfo)
    assert "libcudart.so.12" in info.needed and "libtorch_cuda.so" in info.needed
    assert elf.cuda_majors(info.needed) == {"libcudart.so.12": 12, "libnvrtc.so.12": 12}
    archs = elf.fatbin_archs(image)
    assert isinstance(archs, elf.FatbinArchs)
    assert archs.sass == (80, 89, 90, 100, 120) and archs.ptx == () and archs.fatbins == 1


def test_without_section_headers_the_dynamic_segment_is_used() -> None:
    data = bytearray(_member(LIBSHM))
    struct.pack_into("<Q", data, 40, 0)  # e_shoff = 0: no section headers
    info = elf.parse(elf.BytesImage(bytes(data)))
    assert isinstance(info, elf.ElfInfo)
    assert info.symbols_from == "dynamic" and info.needed_from == "dynamic"
    whole = elf.parse(elf.BytesImage(_member(LIBSHM)))
    assert isinstance(whole, elf.ElfInfo)
    assert info.undefined == whole.undefined and info.defined == whole.defined


def test_generated_elf_round_trips() -> None:
    data = make_elf(
        needed=["libcudart.so.13", "libtorch.so"],
        defined=["mine"],
        undefined=["_ZN3c104impl3fooEv", "THPVariableClass"],
        weak=["__gmon_start__"],
    )
    info = elf.parse(elf.BytesImage(data))
    assert isinstance(info, elf.ElfInfo)
    assert info.needed == ("libcudart.so.13", "libtorch.so")
    assert info.defined == {"mine"}
    assert info.undefined == {"_ZN3c104impl3fooEv", "THPVariableClass"}
    assert info.weak_undefined == {"__gmon_start__"}


def _symbols_one_by_one(data: bytes) -> tuple[set[str], set[str], set[str]]:
    """A plain reading of .dynsym, one entry at a time, to hold the column reader against."""
    lay = elf.layout(elf.BytesImage(data))
    assert isinstance(lay, elf.Layout) and lay.sections is not None
    sym = next(s for s in lay.sections if s.type == elf.SHT_DYNSYM)
    strs = next(s for s in lay.sections if s.index == sym.link)
    strtab = data[strs.offset : strs.offset + strs.size]
    defined: set[str] = set()
    strong: set[str] = set()
    weak: set[str] = set()
    for at in range(sym.offset + 24, sym.offset + sym.size, 24):
        name_at, info, _, shndx = struct.unpack_from("<IBBH", data, at)
        if not name_at:
            continue
        name = strtab[name_at : strtab.index(b"\0", name_at)].decode("utf-8", "replace")
        if shndx:
            defined.add(name)
        else:
            (weak if info >> 4 == 2 else strong).add(name)
    return defined, strong, weak


def test_the_column_reader_agrees_with_a_plain_one_on_real_libraries() -> None:
    for case in (LIBSHM, SPATIAL):
        data = _member(case)
        info = elf.parse(elf.BytesImage(data))
        assert isinstance(info, elf.ElfInfo) and info.symbols_from == "sections"
        assert (set(info.defined), set(info.undefined), set(info.weak_undefined)) == (
            _symbols_one_by_one(data)
        )


def test_prefixes_and_kinds_keep_only_what_is_asked() -> None:
    data = make_elf(
        needed=["libc10.so"],
        defined=["_ZN3c104mineEv", "mine", "_ZN2at3ownEv"],
        undefined=["_ZN3c104testEv", "_ZN2at3addEv", "malloc"],
        weak=["_ZN3c104weakEv", "__gmon_start__"],
    )
    prefixes = ("_ZN3c10", "_ZN2at")
    imports = elf.parse(elf.BytesImage(data), prefixes, "undefined")
    assert isinstance(imports, elf.ElfInfo) and imports.needed == ("libc10.so",)
    assert imports.defined == frozenset() and imports.symbol_kinds == "undefined"
    assert imports.undefined == {"_ZN3c104testEv", "_ZN2at3addEv"}
    assert imports.weak_undefined == {"_ZN3c104weakEv"}
    exports = elf.parse(elf.BytesImage(data), prefixes, "defined")
    assert isinstance(exports, elf.ElfInfo) and exports.symbol_prefixes == prefixes
    assert exports.defined == {"_ZN3c104mineEv", "_ZN2at3ownEv"}
    assert exports.undefined == exports.weak_undefined == frozenset()
    with pytest.raises(ValueError):
        elf.parse(elf.BytesImage(data), prefixes, "exported")


def _name_offset(data: bytes, name: str) -> tuple[int, int]:
    """(where the symbol entry's st_name field is, where its name starts in the file)."""
    lay = elf.layout(elf.BytesImage(data))
    assert isinstance(lay, elf.Layout) and lay.sections is not None
    sym = next(s for s in lay.sections if s.type == elf.SHT_DYNSYM)
    strs = next(s for s in lay.sections if s.index == sym.link)
    for at in range(sym.offset + 24, sym.offset + sym.size, 24):
        (name_at,) = struct.unpack_from("<I", data, at)
        end = data.index(b"\0", strs.offset + name_at)
        if data[strs.offset + name_at : end] == name.encode():
            return at, strs.offset + name_at
    raise AssertionError(name)


def test_a_name_in_the_tail_of_another_string() -> None:
    """Linkers merge a name into the tail of a longer one: st_name points into its middle."""
    data = bytearray(make_elf(defined=["xx_ZN3c103fooEv"], undefined=["_ZN3c103barEv"]))
    entry, _ = _name_offset(bytes(data), "_ZN3c103barEv")
    _, longer = _name_offset(bytes(data), "xx_ZN3c103fooEv")
    lay = elf.layout(elf.BytesImage(bytes(data)))
    assert isinstance(lay, elf.Layout) and lay.sections is not None
    strs = next(s for s in lay.sections if s.type == elf.SHT_STRTAB)
    struct.pack_into("<I", data, entry, longer - strs.offset + 2)
    info = elf.parse(elf.BytesImage(bytes(data)), ("_ZN3c10",))
    assert isinstance(info, elf.ElfInfo)
    assert info.undefined == {"_ZN3c103fooEv"} and info.defined == frozenset()


def test_a_name_outside_the_string_table_is_a_note() -> None:
    data = bytearray(make_elf(defined=["a"], undefined=["_ZN3c103barEv"]))
    entry, _ = _name_offset(bytes(data), "_ZN3c103barEv")
    struct.pack_into("<I", data, entry, 10_000_000)
    info = elf.parse(elf.BytesImage(bytes(data)), ("_ZN3c10",))
    assert isinstance(info, elf.ElfInfo) and info.symbols_from == ""
    assert "dynamic symbol table does not match its string table" in info.notes


_NAMES = st.lists(
    st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), min_size=1),
    max_size=12,
    unique=True,
)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_names_round_trip_with_and_without_prefixes(data: st.DataObject) -> None:
    names = data.draw(_NAMES)
    prefixes = tuple(data.draw(st.lists(st.text(min_size=1, max_size=3), max_size=3)))
    cut = [data.draw(st.integers(0, len(names)))]
    cut.append(data.draw(st.integers(cut[0], len(names))))
    defined, undefined, weak = names[: cut[0]], names[cut[0] : cut[1]], names[cut[1] :]
    raw = make_elf(needed=[], defined=defined, undefined=undefined, weak=weak)
    info = elf.parse(elf.BytesImage(raw))
    assert isinstance(info, elf.ElfInfo)
    assert (info.defined, info.undefined, info.weak_undefined) == (
        set(defined),
        set(undefined),
        set(weak),
    )
    kept = elf.parse(elf.BytesImage(raw), prefixes)
    assert isinstance(kept, elf.ElfInfo)

    def pick(group: list[str]) -> set[str]:
        return {n for n in group if n.startswith(prefixes)} if prefixes else set(group)

    assert (kept.defined, kept.undefined, kept.weak_undefined) == (
        pick(defined),
        pick(undefined),
        pick(weak),
    )


def test_file_image_reads_exactly_at_offsets(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(bytes(range(256)) * 64)
    with open(path, "rb") as fh:
        image = elf.FileImage(fh, 256 * 64)
        assert image.get(300, 4) == bytes([44, 45, 46, 47])
        assert image.get(256 * 64 - 2, 2) == bytes([254, 255])
        assert image.get(256 * 64 - 2, 3) is None and image.get(-1, 1) is None


def test_bounded_image_stops_at_its_budget() -> None:
    image = elf.BoundedImage(elf.BytesImage(bytes(100)), 16, 60.0)
    assert image.get(0, 10) == bytes(10) and image.spent == 10
    assert image.get(10, 8) is None and image.exceeded == "more than 16 bytes of headers"
    assert image.get(0, 1) is None and image.reads == 1


def test_sparse_image_answers_only_what_it_has() -> None:
    image = elf.SparseImage(100, [(0, b"abcd"), (90, b"0123456789")])
    assert image.get(0, 4) == b"abcd" and image.get(92, 3) == b"234"
    assert image.get(2, 4) is None and image.get(50, 1) is None and image.get(95, 10) is None


def test_strings_only_at_the_end_of_a_sparse_view() -> None:
    """torch's layout after patchelf: .dynsym first, .dynstr and the section headers last."""
    data = make_elf(
        needed=["libc10.so"], defined=["_ZN3c103fooEv"], middle=200_000, strings_at_end=True
    )
    head, tail_at = data[:4096], len(data) - 4096
    image = elf.SparseImage(len(data), [(0, head), (tail_at, data[tail_at:])])
    info = elf.parse(image)
    assert isinstance(info, elf.ElfInfo)
    assert info.defined == {"_ZN3c103fooEv"} and info.needed == ("libc10.so",)


def test_dynamic_unreadable_needed_from_dynstr_names() -> None:
    data = make_elf(needed=["libcudart.so.12", "libc.so.6"], defined=["x"], middle=100_000)
    lay = elf.layout(elf.BytesImage(data))
    assert isinstance(lay, elf.Layout)
    dyn = next(s for s in lay.sections or () if s.type == elf.SHT_DYNAMIC)
    # Everything but .dynamic (and the program header pointing at it).
    image = elf.SparseImage(
        len(data), [(0, data[: dyn.offset]), (dyn.offset + dyn.size, data[dyn.offset + dyn.size :])]
    )
    info = elf.parse(image)
    assert isinstance(info, elf.ElfInfo)
    assert info.needed_from == "dynstr"
    assert set(info.needed) == {"libcudart.so.12", "libc.so.6"}


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "shorter than an ELF header"),
        (b"MZ" + bytes(100), "not an ELF file"),
        (b"\x7fELF\x01\x01" + bytes(100), "not a 64-bit ELF file"),
        (b"\x7fELF\x02\x01" + bytes(10), "truncated ELF header"),
    ],
)
def test_not_elf_is_a_value(data: bytes, reason: str) -> None:
    got = elf.parse(elf.BytesImage(data))
    assert isinstance(got, Unknown) and got.reason == reason


def test_huge_counts_are_refused_not_allocated() -> None:
    data = bytearray(make_elf(defined=["a"]))
    struct.pack_into("<H", data, 56, 0xFFFF)  # e_phnum
    got = elf.parse(elf.BytesImage(bytes(data)))
    assert isinstance(got, Unknown) and "program header" in got.reason


@settings(max_examples=300, deadline=None)
@given(cut=st.integers(min_value=0, max_value=60_000))
def test_any_truncation_of_a_real_library_is_a_value(cut: int) -> None:
    data = _member(LIBSHM)[:cut]
    got = elf.parse(elf.BytesImage(data, size=len(_member(LIBSHM))))
    assert isinstance(got, (elf.ElfInfo, Unknown))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_corruption_is_a_value(data: st.DataObject) -> None:
    raw = bytearray(make_elf(needed=["libc.so.6"], defined=["a", "b"], undefined=["c"]))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    got = elf.parse(elf.BytesImage(bytes(raw)))
    assert isinstance(got, (elf.ElfInfo, Unknown))
    archs = elf.fatbin_archs(elf.BytesImage(bytes(raw)))
    assert isinstance(archs, (elf.FatbinArchs, Unknown))


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=4096))
def test_random_bytes_after_a_valid_magic_are_a_value(tail: bytes) -> None:
    got = elf.parse(elf.BytesImage(b"\x7fELF\x02\x01\x01\x00" + tail))
    assert isinstance(got, (elf.ElfInfo, Unknown))


def test_installed_file_helpers(tmp_path: Path) -> None:
    path = tmp_path / "lib.so"
    path.write_bytes(make_elf(needed=["libtorch.so"], defined=["d"], undefined=["u"]))
    assert elf.needed(str(path)) == ("libtorch.so",)
    assert elf.dynamic_symbols(str(path)) == ({"d"}, {"u"})
    (tmp_path / "bad.so").write_bytes(b"not elf")
    assert elf.try_needed(str(tmp_path / "bad.so")) is None
    with pytest.raises(elf.ElfError):
        elf.needed(str(tmp_path / "bad.so"))
    assert isinstance(elf.parse_file(str(tmp_path / "missing.so")), Unknown)


def test_cuda_majors_of_sonames() -> None:
    got = elf.cuda_majors(
        [
            "libcudart.so.11.0",
            "libcublasLt.so.13",
            "libcudart-1b201d85.so.12",
            "libcudnn.so.9",
            "libnccl.so.2",
            "libc.so.6",
        ]
    )
    assert got == {"libcudart.so.11.0": 11, "libcublasLt.so.13": 13, "libcudart-1b201d85.so.12": 12}


def _fatbin(entries: list[tuple[int, int]]) -> bytes:
    """One fatbin container: its 16-byte header, then (kind, arch) entries with empty payloads
    (kind 1 PTX, 2 SASS), each a 64-byte entry header."""
    body = b"".join(
        struct.pack("<HHIQIIHHI", kind, 0, 64, 0, 0, 0, 0, 0, arch) + b"\0" * 32
        for kind, arch in entries
    )
    return struct.pack("<IHHQ", elf.FATBIN_MAGIC, 1, 16, len(body)) + body


def _elf_with_section(data: bytes) -> bytes:
    """A minimal ELF64: header, one PROGBITS section holding `data`, the section-name table."""
    names = b"\0.nv_fatbin\0.shstrtab\0"
    data_off = 64
    names_off = data_off + len(data)
    shoff = (names_off + len(names) + 7) // 8 * 8
    header = (
        b"\x7fELF\x02\x01\x01"
        + b"\0" * 9
        + struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, 0, shoff, 0, 64, 56, 0, 64, 3, 2)
    )
    null = b"\0" * 64
    fat = struct.pack("<IIQQQQIIQQ", 1, 1, 0, 0, data_off, len(data), 0, 0, 8, 0)
    strtab = struct.pack("<IIQQQQIIQQ", 11, 3, 0, 0, names_off, len(names), 0, 0, 1, 0)
    body = header + data + names
    return body + b"\0" * (shoff - len(body)) + null + fat + strtab


def test_the_archs_most_fatbins_carry_are_told_from_a_few_kernels_built_for_more() -> None:
    """libtorch_cuda.so of torch 2.11 has a few kernels for sm_89/sm_103/sm_121 beside the
    arch list every kernel is built for: the common archs are that list."""
    common = [(2, 80), (2, 90), (1, 90)]
    data = b"".join(_fatbin(common) for _ in range(7)) + _fatbin([(2, 89), (2, 121)])
    got = elf.fatbin_archs(elf.BytesImage(_elf_with_section(data)))
    assert isinstance(got, elf.FatbinArchs), got
    assert got.sass == (80, 89, 90, 121) and got.ptx == (90,) and got.fatbins == 8
    assert got.common_sass == (80, 90) and got.common_ptx == (90,)
