"""Reading a wheel's compiled members from a few ranges: whole, from both ends, within bounds."""

from __future__ import annotations

import io
import random
import sys
import zipfile
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compat import elf
from compat.matrix import wheel
from compat.matrix.pypi import read_zip_directory
from compat.models import Unknown

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wheelbytes import BytesFile, make_elf, make_zip, recorded


def test_recorded_whole_read_asks_only_for_the_member() -> None:
    doc, entry, file = recorded("sglang-kernel-0.4.1-spatial-ops")
    got = wheel.read_member(file, entry)
    assert got.how == "whole" and got.bytes_read == sum(b - a for a, b in file.asked)
    assert isinstance(got.info, elf.ElfInfo)
    assert "libcudart.so.12" in got.info.needed
    assert isinstance(got.archs, elf.FatbinArchs) and got.archs.sass == (80, 89, 90, 100, 120)
    assert doc["source"].startswith("sglang_kernel-0.4.1-")


def _member_of(data: bytes, name: str = "pkg/lib.so") -> tuple[BytesFile, object]:
    file = BytesFile(make_zip({name: data}))
    entry = next(e for e in read_zip_directory(file) if e.name == name)
    return file, entry


@pytest.mark.parametrize("strings_at_end", [False, True])
def test_large_member_read_from_both_ends(strings_at_end: bool) -> None:
    data = make_elf(
        needed=["libtorch_cuda.so", "libcudart.so.13"],
        defined=["_ZN3c105ErrorC2Ev"],
        undefined=["_ZN3c104cuda20getCurrentCUDAStreamEa"],
        middle=6_000_000,
        strings_at_end=strings_at_end,
    )
    file, entry = _member_of(data)
    before = file.bytes
    got = wheel.read_member(file, entry)  # type: ignore[arg-type]
    assert got.how == "ends"
    assert isinstance(got.info, elf.ElfInfo)
    assert got.info.needed == ("libtorch_cuda.so", "libcudart.so.13")
    assert got.info.undefined == {"_ZN3c104cuda20getCurrentCUDAStreamEa"}
    assert got.info.defined == {"_ZN3c105ErrorC2Ev"}
    # A few hundred KiB of a 6 MB member, and the fatbins are honestly not read.
    assert got.bytes_read == file.bytes - before < 600_000
    assert isinstance(got.archs, Unknown) and "middle" in got.archs.reason


def test_strings_in_the_middle_come_from_the_prefix() -> None:
    data = make_elf(
        needed=["libc10.so"],
        defined=["_ZN3c103fooEv"],
        middle=400_000,
        strings_at_end=True,
        after=400_000,
    )
    file, entry = _member_of(data)
    got = wheel.read_member(file, entry)  # type: ignore[arg-type]
    assert isinstance(got.info, elf.ElfInfo) and got.info.defined == {"_ZN3c103fooEv"}
    assert got.bytes_read < entry.compressed  # type: ignore[attr-defined]


def test_finishing_a_member_reads_only_its_middle() -> None:
    data = make_elf(defined=["a"], middle=900_000)
    file, entry = _member_of(data)
    member = wheel._Member(file, entry, 10**9)  # type: ignore[arg-type]
    prefix = wheel._Prefix(member, member.open(50_000))
    tail = member.fetch(entry.compressed - 80_000, entry.compressed)  # type: ignore[attr-defined]
    before, start = member.spent, prefix.pos
    prefix.finish(tail)
    assert bytes(prefix.out) == data
    assert member.spent - before == entry.compressed - 80_000 - start  # type: ignore[attr-defined]


def test_decode_tail_knows_only_true_bytes() -> None:
    rng = random.Random(7)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randrange(4, 12))) for _ in range(3000)]
    text = "\0".join(" ".join(rng.choice(words) for _ in range(3)) for _ in range(60_000))
    data = rng.randbytes(300_000) + text.encode()
    stream = zlib.compressobj(6, zlib.DEFLATED, -15)
    compressed = stream.compress(data) + stream.flush()
    tail = wheel.decode_tail(compressed[-120_000:], len(data))
    assert tail is not None and tail.parts
    # Bytes copied (through any chain) from before the boundary stay unknown; every byte
    # reported known is the true one.
    known = sum(len(part) for _, part in tail.parts)
    assert known > 50_000
    for at, part in tail.parts:
        assert data[at : at + len(part)] == part


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=0, max_size=3000), st.integers(0, 10**9))
def test_decode_tail_of_garbage_is_none_or_consistent(buf: bytes, size: int) -> None:
    got = wheel.decode_tail(buf, size)
    assert got is None or all(at >= 0 for at, _ in got.parts)


def test_over_budget_is_a_value() -> None:
    data = make_elf(defined=["x"], middle=3_000_000, strings_at_end=True)
    file, entry = _member_of(data)
    got = wheel.read_member(file, entry, budget=100_000)  # type: ignore[arg-type]
    assert isinstance(got.info, Unknown) and "MiB of ranges" in got.info.reason


def test_not_elf_and_bad_crc_are_values() -> None:
    file, entry = _member_of(b"just text, not an ELF\n" * 10)
    got = wheel.read_member(file, entry)  # type: ignore[arg-type]
    assert isinstance(got.info, Unknown) and got.info.reason == "not an ELF file"
    raw = bytearray(make_zip({"pkg/lib.so": make_elf(defined=["a"])}, level=0))
    at = raw.find(b"\x7fELF")
    raw[at + 200] ^= 0xFF  # flip a byte of the stored member: its CRC no longer matches
    file = BytesFile(bytes(raw))
    entry = next(e for e in read_zip_directory(file) if e.name == "pkg/lib.so")
    got = wheel.read_member(file, entry)
    assert isinstance(got.info, Unknown) and "CRC" in got.info.reason


def test_stored_member_is_read() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("pkg/lib.so", make_elf(needed=["libc10.so"], defined=["a"]))
    file = BytesFile(out.getvalue())
    entry = next(iter(read_zip_directory(file)))
    got = wheel.read_member(file, entry)
    assert isinstance(got.info, elf.ElfInfo) and got.info.needed == ("libc10.so",)


def test_read_wheel_reads_identical_members_once() -> None:
    lib = make_elf(needed=["libcudart.so.12"], defined=["a"])
    file = BytesFile(
        make_zip(
            {
                "pkg/lib/libx.so": lib,
                "pkg/lib/libx.so.1": lib,
                "pkg/_C.abi3.so": make_elf(defined=["b"]),
                "pkg/__init__.py": b"",
            }
        )
    )
    seen: list[str] = []

    def reader(f: object, entry: object, budget: int) -> str:
        seen.append(entry.name)  # type: ignore[attr-defined]
        return entry.name  # type: ignore[attr-defined,no-any-return]

    got = wheel.read_wheel(file, reader)
    assert got.members == ("pkg/_C.abi3.so", "pkg/lib/libx.so") == tuple(seen)
    assert got.copies == (("pkg/lib/libx.so.1", "pkg/lib/libx.so"),)
    assert got.bytes_read == file.bytes


def test_compiled_member_names() -> None:
    assert wheel.compiled_member("sgl_kernel/common_ops.abi3.so")
    assert wheel.compiled_member("torchvision.libs/libnvjpeg.36e11081.so.13")
    assert not wheel.compiled_member("pkg/notes.txt")
    assert not wheel.compiled_member("pkg-1.0.dist-info/RECORD")
