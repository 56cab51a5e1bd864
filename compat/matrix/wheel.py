"""The dynamic-linking facts of a wheel's compiled members, from a few ranges of the wheel.

A member of a few MiB is read whole. A larger one is read from both ends: its first bytes
inflate like any deflate stream (ELF header, program headers, and usually `.dynsym`/`.dynstr`);
its last bytes are decoded from a deflate block boundary found by search, with the 32 KiB window
before it unknown. The tail is inflated twice, with two different fillers for that window: a byte
that comes out equal both times depends only on the bytes read, so it is known; the rest is not
used. The tail holds the section header table, `.dynamic`, and what `patchelf` (auditwheel) moved
to the end of the file: torch's own `.dynstr`. Nothing in the middle of a member is read.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Generic, Optional, TypeVar, Union

from msgspec import Struct

from compat import elf
from compat.matrix.pypi import FetchError, RangeFile, ZipMember, read_zip_directory
from compat.models import Unknown

# A member this small (compressed) is read whole: every table and the fatbins are then known.
WHOLE_MAX = 512 * 1024
PREFIX_FIRST = 64 * 1024
TAIL_FIRST = 64 * 1024
# The most one member may cost (compressed bytes fetched) and the most it may inflate to.
MEMBER_BUDGET = 24 * 1024 * 1024
MAX_OUT = 64 * 1024 * 1024
# What reading .dynamic may add when it lies far from the end (DT_NEEDED has a fallback).
DYNAMIC_EXTRA = 1024 * 1024
# How far into a tail to look for a deflate block boundary (zlib writes one every few dozen KiB).
SEARCH_BYTES = 512 * 1024
_TRIAL = 64 * 1024
_BLOCK = 256  # granularity of the known/unknown comparison of a tail's two inflations
_FILLS = (b"\x01" * 32768, b"\x02" * 32768)
_CLEN_ORDER = (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15)


class _OverBudget(Exception):
    pass


class MemberRead(Struct, frozen=True):
    """What reading one compiled member gave, and what it cost."""

    name: str
    size: int  # uncompressed
    compressed: int
    how: str  # "whole", "ends" (prefix and tail), "stored"
    bytes_read: int
    info: elf.ElfResult
    archs: Union[elf.FatbinArchs, Unknown]


class _Member:
    def __init__(self, file: RangeFile, entry: ZipMember, budget: int) -> None:
        self.file = file
        self.entry = entry
        self.budget = budget
        self.spent = 0
        self.start = -1  # offset of the compressed data in the wheel

    def fetch(self, start: int, end: int) -> bytes:
        """Compressed bytes [start, end) of the member's data."""
        end = min(end, self.entry.compressed)
        if end <= start:
            return b""
        if self.spent + (end - start) > self.budget:
            raise _OverBudget
        data = self.file.read(self.start + start, self.start + end)
        self.spent += len(data)
        if len(data) != end - start:
            raise FetchError("short read of a wheel member")
        return data

    def open(self, first: int) -> bytes:
        """Read the local header and the first `first` compressed bytes in one request."""
        name_len = len(self.entry.name.encode())
        want = min(30 + name_len + 256 + first, 30 + name_len + 65535 + self.entry.compressed)
        block = self.file.read(self.entry.offset, min(self.entry.offset + want, self.file.size))
        self.spent += len(block)
        if len(block) < 30 or block[:4] != b"PK\x03\x04":
            raise FetchError(f"no local header for {self.entry.name}")
        n, x = struct.unpack("<HH", block[26:30])
        self.start = self.entry.offset + 30 + n + x
        return block[30 + n + x :]


class _Prefix:
    """The member's first bytes, inflated on demand (never past MAX_OUT)."""

    def __init__(self, member: _Member, first: bytes) -> None:
        self.member = member
        self.out = bytearray()
        self.pos = len(first)
        self.step = max(len(first), PREFIX_FIRST)
        self.inflater = zlib.decompressobj(-15) if member.entry.method == 8 else None
        self._feed(first)

    def _feed(self, data: bytes) -> None:
        if self.inflater is None:
            self.out += data
            return
        room = MAX_OUT + 1 - len(self.out)
        if room > 0:
            self.out += self.inflater.decompress(self.inflater.unconsumed_tail + data, room)

    def cost(self, length: int) -> int:
        """Compressed bytes still to fetch for `length` inflated bytes, at the ratio so far."""
        if len(self.out) >= length:
            return 0
        ratio = self.pos / max(1, len(self.out))
        return int((length - len(self.out)) * ratio * 1.25) + 1

    def finish(self, tail: bytes) -> None:
        """Inflate to the end: fetch what lies between the prefix and `tail`, the member's last
        compressed bytes already fetched."""
        end = self.member.entry.compressed - len(tail)
        middle = self.member.fetch(self.pos, end) if end > self.pos else b""
        self._feed(middle + tail[max(0, self.pos - end) :])
        self.pos = self.member.entry.compressed

    def ensure(self, length: int) -> bool:
        """Inflate until `length` bytes are known; False when the cap or the end comes first."""
        while len(self.out) < length:
            if self.pos >= self.member.entry.compressed or len(self.out) > MAX_OUT:
                return False
            chunk = self.member.fetch(self.pos, self.pos + self.step)
            self.pos += len(chunk)
            self.step *= 2
            self._feed(chunk)
        return True


def _header_ok(bits: int) -> bool:
    """Whether a dynamic-Huffman deflate block can start at the low bit of `bits`: its type,
    its code counts, and a code-length code that is complete (zlib checks the rest)."""
    if (bits >> 1) & 3 != 2:
        return False
    if (bits >> 3) & 31 > 29 or (bits >> 8) & 31 > 29:
        return False
    count = ((bits >> 13) & 15) + 4
    kraft = used = 0
    for i in range(count):
        length = (bits >> (17 + 3 * i)) & 7
        if length:
            kraft += 1 << (7 - length)
            used += 1
    return kraft == 128 or used == 1


def _stream(buf: bytes, bit: int, stored: bool) -> bytes:
    """The deflate stream from a block boundary at `bit`, realigned to start at a byte."""
    byte, k = bit >> 3, bit & 7
    if stored:
        # After a stored block's 3 header bits the stream pads to a byte; LEN follows. A
        # synthetic header byte (same BFINAL) before LEN makes an aligned stream.
        return bytes([(buf[byte] >> k) & 1]) + buf[byte + (k + 3 + 7) // 8 :]
    if k == 0:
        return buf[byte:]
    return (int.from_bytes(buf[byte:], "little") >> k).to_bytes(len(buf) - byte, "little")


def _trial(buf: bytes, bit: int, stored: bool) -> bool:
    byte = bit >> 3
    piece = _stream(buf[: byte + _TRIAL + 16], bit, stored)
    try:
        out = zlib.decompressobj(-15, zdict=_FILLS[0]).decompress(piece, 1 << 20)
    except zlib.error:
        return False
    return len(out) >= 256


def _boundaries(buf: bytes) -> Iterator[tuple[int, bool]]:
    """(bit, stored) where a deflate block plausibly starts in `buf`, in order."""
    limit = min(len(buf) - 16, SEARCH_BYTES)
    for byte in range(max(0, limit)):
        word = int.from_bytes(buf[byte : byte + 12], "little")
        for k in range(8):
            bits = word >> k
            bit = byte * 8 + k
            if (bits >> 1) & 3 == 0:
                at = byte + (k + 3 + 7) // 8
                length, inverse = struct.unpack_from("<HH", buf, at)
                if length ^ inverse == 0xFFFF and _trial(buf, bit, True):
                    yield bit, True
            elif _header_ok(bits) and _trial(buf, bit, False):
                yield bit, False


class _Tail(Struct, frozen=True):
    start: int  # uncompressed offset of the first byte decoded
    parts: tuple[tuple[int, bytes], ...]  # known runs (absolute offset, bytes)


def _known_runs(first: bytes, second: bytes) -> list[tuple[int, int]]:
    """(start, end) runs where the two inflations agree, exact to 8 bytes."""
    runs: list[tuple[int, int]] = []
    run = -1

    def close(at: int) -> None:
        nonlocal run
        if run >= 0:
            runs.append((run, at))
            run = -1

    for at in range(0, len(first), _BLOCK):
        if first[at : at + _BLOCK] == second[at : at + _BLOCK]:
            if run < 0:
                run = at
            continue
        for sub in range(at, min(at + _BLOCK, len(first)), 8):
            if first[sub : sub + 8] == second[sub : sub + 8]:
                if run < 0:
                    run = sub
            else:
                close(sub)
    close(len(first))
    return runs


def _inflate_both(data: bytes, size: int) -> Optional[_Tail]:
    """Inflate `data` (from a block boundary) to its end with both window fillers; None unless
    both reach the end of the stream exactly."""
    outs: list[bytes] = []
    total = 0
    for fill in _FILLS:
        inflater = zlib.decompressobj(-15, zdict=fill)
        out = bytearray()
        total = 0
        pending = data
        try:
            while pending and not inflater.eof and total <= size:
                piece = inflater.decompress(pending, 8 * 1024 * 1024)
                pending = inflater.unconsumed_tail
                total += len(piece)
                out += piece
                if len(out) > MAX_OUT:
                    del out[: len(out) - MAX_OUT]  # only the end is used; keep it bounded
        except zlib.error:
            return None
        if not inflater.eof or total > size or len(inflater.unused_data) > 1:
            return None
        outs.append(bytes(out))
    first, second = outs
    base = size - len(first)
    parts = tuple((base + a, first[a:b]) for a, b in _known_runs(first, second))
    return _Tail(size - total, parts)


def decode_tail(buf: bytes, size: int) -> Optional[_Tail]:
    """The known bytes at the end of a deflate stream of `size` inflated bytes, whose last
    compressed bytes are `buf`; None when no block boundary in `buf` leads to its end."""
    for bit, stored in _boundaries(buf):
        got = _inflate_both(_stream(buf, bit, stored), size)
        if got is not None:
            return got
    return None


_Outcome = tuple[str, elf.ElfResult, Union[elf.FatbinArchs, Unknown]]


def read_member(file: RangeFile, entry: ZipMember, budget: int = MEMBER_BUDGET) -> MemberRead:
    """Read a compiled member as little as its dynamic tables allow. What is only too large,
    unreadable or malformed is an Unknown in the result; FetchError is for the network."""
    member = _Member(file, entry, budget)
    outcome: _Outcome
    if entry.method not in (0, 8):
        outcome = ("none", Unknown(f"compression method {entry.method}"), Unknown("not read"))
    else:
        try:
            outcome = _read(member)
        except _OverBudget:
            reason = f"needs more than {budget / 2**20:.1f} MiB of ranges"
            outcome = ("ends", Unknown(reason), Unknown("not read"))
    how, info, archs = outcome
    return MemberRead(
        entry.name, entry.uncompressed, entry.compressed, how, member.spent, info, archs
    )


def _read(member: _Member) -> _Outcome:
    entry = member.entry
    whole = entry.compressed <= WHOLE_MAX and entry.uncompressed <= MAX_OUT
    first = member.open(entry.compressed if whole else PREFIX_FIRST)
    prefix = _Prefix(member, first[: entry.compressed])
    if whole:
        prefix.ensure(entry.uncompressed)
        data = bytes(prefix.out)
        if len(data) != entry.uncompressed or zlib.crc32(data) != entry.crc:
            return "whole", Unknown("member does not match its CRC"), Unknown("not read")
        image = elf.BytesImage(data)
        return "whole", elf.parse(image), elf.fatbin_archs(image)
    return (
        "ends",
        _read_ends(member, prefix),
        Unknown(
            f"not read: a {entry.compressed / 2**20:.0f} MiB member (compressed); its fatbins lie in the middle"
        ),
    )


def _read_ends(member: _Member, prefix: _Prefix) -> elf.ElfResult:
    entry = member.entry
    size = entry.uncompressed
    head = elf.layout(elf.BytesImage(bytes(prefix.out), size))
    if isinstance(head, Unknown):
        return head
    tail: Optional[_Tail] = None
    buf = b""  # the member's last compressed bytes, grown towards the front

    def image() -> elf.SparseImage:
        return elf.SparseImage(size, [(0, bytes(prefix.out)), *(tail.parts if tail else ())])

    # .dynamic (for DT_NEEDED) may cost this much beyond the symbol tables: past it, the needed
    # libraries come from the library names in .dynstr instead.
    core_spent: Optional[int] = None
    short = False  # stopped by the budget before the symbol tables were known
    try:
        while True:
            lay = elf.layout(image())
            if isinstance(lay, Unknown):
                return lay
            # The whole section header table first: a partly known one may lack .dynsym's entry.
            wanted = [("sections", head.shoff, head.shsize), *lay.tables()]
            missing = [w for w in wanted if image().get(w[1], w[2]) is None]
            core = [w for w in missing if w[0] != "dynamic"]
            if core:
                missing = core  # .dynamic only once the symbol tables are known
            elif core_spent is None:
                core_spent = member.spent
            need = 0
            room = member.budget - member.spent
            if core_spent is not None:
                room = min(room, core_spent + DYNAMIC_EXTRA - member.spent)
            for _, offset, length in missing:
                if offset + length <= size - offset:
                    if prefix.cost(offset + length) <= room:
                        prefix.ensure(offset + length)
                    continue
                if tail is None:
                    # No tail yet, or no block boundary in the last one: a longer one.
                    need = max(need, TAIL_FIRST, len(buf) * 4)
                    continue
                ratio = len(buf) / max(1, size - tail.start)
                need = max(need, len(buf) * 2, int((size - offset) * ratio * 1.25))
            need = min(need, entry.compressed)
            limit = member.budget
            if core_spent is not None:
                limit = min(limit, core_spent + DYNAMIC_EXTRA)
            if need <= len(buf):
                break
            if member.spent + need - len(buf) > limit:
                short = core_spent is None
                break
            if member.spent + need - len(buf) >= entry.compressed and size <= MAX_OUT:
                # Cheaper to read the rest of the member than to grow the ends: the middle,
                # then the tail already fetched.
                prefix.finish(buf)
                return elf.parse(elf.BytesImage(bytes(prefix.out)))
            buf = member.fetch(entry.compressed - need, entry.compressed - len(buf)) + buf
            tail = decode_tail(buf, size)
    except _OverBudget:
        short = core_spent is None
    got = elf.parse(image())
    if short and isinstance(got, elf.ElfInfo) and not got.symbols_from:
        return Unknown(f"needs more than {member.budget / 2**20:.1f} MiB of ranges")
    return got


class CountingFile(RangeFile):
    """A RangeFile that counts the bytes it hands out (what one wheel's reading cost)."""

    def __init__(self, inner: RangeFile) -> None:
        self.inner = inner
        self.size = inner.size
        self.bytes = 0

    def tail(self, length: int) -> tuple[int, bytes]:
        start, data = self.inner.tail(length)
        self.size = self.inner.size
        self.bytes += len(data)
        return start, data

    def read(self, start: int, end: int) -> bytes:
        data = self.inner.read(start, end)
        self.bytes += len(data)
        return data


def compiled_member(name: str) -> bool:
    """Whether a wheel member is a shared object (`x.so`, `x.abi3.so`, `libx.so.12`)."""
    base = name.rsplit("/", 1)[-1]
    if ".dist-info/" in name or name.endswith("/"):
        return False
    return base.endswith(".so") or ".so." in base


R = TypeVar("R")


class WheelRead(Struct, Generic[R], frozen=True):
    """The compiled members of one wheel as read, and what the reading cost."""

    members: tuple[R, ...]
    copies: tuple[tuple[str, str], ...]  # (member, the identical member read instead)
    skipped: tuple[str, ...]  # compiled members left unread (past MAX_MEMBERS or the budget)
    bytes_read: int


WHEEL_BUDGET = 96 * 1024 * 1024
MAX_MEMBERS = 64


def read_wheel(
    file: RangeFile,
    reader: Callable[[RangeFile, ZipMember, int], R],
    select: Optional[Callable[[str], bool]] = None,
    budget: int = WHEEL_BUDGET,
) -> WheelRead[R]:
    """Read the compiled members of the wheel behind `file` (those `select` keeps) with
    `reader` (read_member, or one that first asks a cache), within `budget` bytes in all.
    Identical members (same CRC and size: sonames copied into the wheel) are read once."""
    counted = CountingFile(file)
    entries = read_zip_directory(counted)
    keep = select or compiled_member
    # The package's own objects first, then what auditwheel vendored (`<pkg>.libs/`), so a cap
    # on members drops vendored helpers, not the extensions.
    chosen = sorted(
        (e for e in entries if keep(e.name)), key=lambda e: (".libs/" in e.name, e.name)
    )
    members: list[R] = []
    copies: list[tuple[str, str]] = []
    skipped: list[str] = []
    seen: dict[tuple[int, int], str] = {}
    for entry in chosen:
        twin = seen.get((entry.crc, entry.uncompressed))
        if twin is not None:
            copies.append((entry.name, twin))
            continue
        left = budget - counted.bytes
        if len(members) >= MAX_MEMBERS or left <= 0:
            skipped.append(entry.name)
            continue
        seen[(entry.crc, entry.uncompressed)] = entry.name
        members.append(reader(counted, entry, min(MEMBER_BUDGET, left)))
    return WheelRead(tuple(members), tuple(copies), tuple(skipped), counted.bytes)
