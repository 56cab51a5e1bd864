"""A bounded ELF64 reader over whole files, prefixes or sparse views: libraries needed, symbols, fatbins.

The parser never trusts an offset or a count: every read goes through `Image.get`, which answers
None for bytes it does not have (past the end of a prefix, inside a tail's unknown part), and every
table is capped, so a malformed, truncated or hostile file gives an `Unknown` with the reason, never
an exception and never unbounded memory. The same code reads an installed `.so` (`FileImage`) and
the inflated prefix and tail of a wheel member (`SparseImage`, built by compat.matrix.wheel).
"""

from __future__ import annotations

import bisect
import io
import os
import re
import struct
import sys
import time
from array import array
from collections.abc import Iterable, Sequence
from typing import BinaryIO, Callable, Optional, Union

from msgspec import Struct

from compat.fileio import open_regular
from compat.models import Unknown

SHT_PROGBITS = 1
SHT_STRTAB = 3
SHT_DYNAMIC = 6
SHT_NOBITS = 8
SHT_DYNSYM = 11
PT_LOAD = 1
PT_DYNAMIC = 2
DT_NULL = 0
DT_NEEDED = 1
DT_HASH = 4
DT_STRTAB = 5
DT_SYMTAB = 6
DT_STRSZ = 10
DT_SYMENT = 11
DT_SONAME = 14
DT_GNU_HASH = 0x6FFFFEF5
SHN_UNDEF = 0
STB_WEAK = 2

# Caps. libtorch_cpu.so, the largest library in the stack, has ~75k dynamic symbols and a 5 MiB
# .dynstr; these leave a wide margin and still bound what a hostile file can make us allocate.
MAX_TABLE = 64 * 1024 * 1024  # bytes of one symbol or string table
MAX_SYMBOLS = 2_000_000
MAX_HEADERS = 4096  # program headers or sections
MAX_DYNAMIC = 8192  # entries of .dynamic
MAX_NAME = 64 * 1024  # bytes of one symbol name
MAX_FATBIN_ENTRIES = 100_000

FATBIN_MAGIC = 0xBA55ED50
_LIBRARY_NAME = re.compile(rb"(?<![^\0])(lib[A-Za-z0-9_+.\-]*\.so(?:\.[0-9]+)*)(?=\0)")


class ElfError(ValueError):
    """Raised only by the file helpers kept for callers that expect an exception."""


class Image:
    """Random access to (part of) an ELF file. `get` answers None for bytes it lacks."""

    size: int

    def get(self, offset: int, length: int) -> Optional[bytes]:
        raise NotImplementedError


class BytesImage(Image):
    """A whole file, or its first bytes (`size` is then the full file's size when known)."""

    def __init__(self, data: bytes, size: Optional[int] = None) -> None:
        self.data = data
        self.size = len(data) if size is None else size

    def get(self, offset: int, length: int) -> Optional[bytes]:
        if offset < 0 or length < 0 or offset + length > len(self.data):
            return None
        return self.data[offset : offset + length]


class SparseImage(Image):
    """Known byte ranges of a file (a prefix, the known parts of a tail); the rest is absent."""

    def __init__(self, size: int, parts: Iterable[tuple[int, bytes]]) -> None:
        self.size = size
        self._parts = sorted((start, data) for start, data in parts if data)
        self._starts = [start for start, _ in self._parts]

    def get(self, offset: int, length: int) -> Optional[bytes]:
        if offset < 0 or length < 0 or offset + length > self.size:
            return None
        at = bisect.bisect_right(self._starts, offset) - 1
        if at < 0:
            return None
        start, data = self._parts[at]
        if offset + length > start + len(data):
            return None
        return data[offset - start : offset - start + length]


class FileImage(Image):
    """An installed file, read at offsets (never whole): exactly the bytes asked for, by pread."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle = handle
        self.size = size
        try:
            self._fd: Optional[int] = handle.fileno() if hasattr(os, "pread") else None
        except (OSError, io.UnsupportedOperation):
            self._fd = None

    def get(self, offset: int, length: int) -> Optional[bytes]:
        if offset < 0 or length < 0 or offset + length > self.size:
            return None
        if self._fd is None:
            self.handle.seek(offset)
            data = self.handle.read(length)
        else:
            # A buffered read would fetch a whole buffer for each 32-byte fatbin header.
            parts = []
            got = 0
            while got < length:
                part = os.pread(self._fd, length - got, offset + got)
                if not part:
                    break
                parts.append(part)
                got += len(part)
            data = b"".join(parts)
        return data if len(data) == length else None


class BoundedImage(Image):
    """Another image read under a budget of bytes and a deadline; past either it answers None,
    and `exceeded` says which bound stopped it."""

    def __init__(
        self,
        inner: Image,
        max_bytes: int,
        deadline_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.size = inner.size
        self.max_bytes = max_bytes
        self.deadline_s = deadline_s
        self.clock = clock
        self.end = clock() + deadline_s
        self.spent = 0  # bytes answered
        self.reads = 0
        self.exceeded = ""

    def get(self, offset: int, length: int) -> Optional[bytes]:
        if self.exceeded:
            return None
        if self.spent + max(length, 0) > self.max_bytes:
            self.exceeded = f"more than {self.max_bytes} bytes of headers"
            return None
        if self.clock() > self.end:
            self.exceeded = f"not done within {self.deadline_s:g} s"
            return None
        self.reads += 1
        data = self.inner.get(offset, length)
        if data is not None:
            self.spent += len(data)
        return data


class Segment(Struct, frozen=True):
    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int


class Section(Struct, frozen=True):
    index: int
    type: int
    offset: int
    size: int
    link: int
    entsize: int


class Layout(Struct, frozen=True):
    """What the ELF header, program headers and (when readable) section headers say."""

    endian: str  # "<" or ">"
    machine: int
    elf_type: int
    segments: tuple[Segment, ...]
    sections: Optional[tuple[Section, ...]]  # None: the section header table was not readable
    shoff: int
    shsize: int

    def to_offset(self, vaddr: int, length: int = 1) -> Optional[int]:
        for seg in self.segments:
            if (
                seg.type == PT_LOAD
                and seg.vaddr <= vaddr
                and vaddr + length <= seg.vaddr + seg.filesz
            ):
                return vaddr - seg.vaddr + seg.offset
        return None

    def tables(self) -> tuple[tuple[str, int, int], ...]:
        """(what, offset, size) of the tables `parse` reads, from the section headers."""
        if self.sections is None:
            return ()
        out: list[tuple[str, int, int]] = []
        for sec in self.sections:
            if sec.type in (SHT_DYNSYM, SHT_DYNAMIC):
                what = "dynsym" if sec.type == SHT_DYNSYM else "dynamic"
                out.append((what, sec.offset, sec.size))
                strtab = self.section(sec.link)
                if strtab is not None:
                    out.append(("dynstr", strtab.offset, strtab.size))
        return tuple(dict.fromkeys(out))

    def section(self, index: int) -> Optional[Section]:
        return next((s for s in self.sections or () if s.index == index), None)


class ElfInfo(Struct, frozen=True):
    """The dynamic-linking facts of one shared object, and how each was read."""

    machine: int
    needed: tuple[str, ...]
    needed_from: str  # "dynamic" (DT_NEEDED), "dynstr" (library names in .dynstr), "" (not read)
    soname: str
    defined: frozenset[str]
    undefined: frozenset[str]  # strong (global) undefined symbols: the loader must resolve them
    weak_undefined: frozenset[str]
    symbols_from: str  # "sections" (.dynsym), "dynamic" (DT_SYMTAB), "" (not read)
    notes: tuple[str, ...] = ()  # what could not be read, in words
    # When not empty, the symbol sets hold only the names that start with one of these.
    symbol_prefixes: tuple[str, ...] = ()
    symbol_kinds: str = "both"  # "defined" or "undefined": the other sets were not read


ElfResult = Union[ElfInfo, Unknown]


def _unpack(fmt: str, data: Optional[bytes]) -> Optional[tuple[int, ...]]:
    if data is None or len(data) < struct.calcsize(fmt):
        return None
    return struct.unpack_from(fmt, data)


def layout(image: Image) -> Union[Layout, Unknown]:
    """ELF header and program headers (required), section headers (when readable)."""
    ident = image.get(0, 16)
    if ident is None:
        return Unknown("shorter than an ELF header")
    if ident[:4] != b"\x7fELF":
        return Unknown("not an ELF file")
    if ident[4] != 2:
        return Unknown("not a 64-bit ELF file")
    if ident[5] not in (1, 2):
        return Unknown("unknown ELF byte order")
    end = "<" if ident[5] == 1 else ">"
    header = _unpack(end + "HHIQQQIHHHHHH", image.get(16, 48))
    if header is None:
        return Unknown("truncated ELF header")
    (elf_type, machine, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, _) = header
    if phnum > MAX_HEADERS or (phnum and phentsize < 56):
        return Unknown(f"implausible program header table ({phnum} x {phentsize})")
    raw = image.get(phoff, phnum * phentsize) if phnum else b""
    if raw is None:
        return Unknown("program headers not readable")
    segments = []
    for i in range(phnum):
        p_type, p_flags, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack_from(
            end + "IIQQQQQQ", raw, i * phentsize
        )
        segments.append(Segment(p_type, p_flags, p_offset, p_vaddr, p_filesz))
    sections = _sections(image, end, shoff, shentsize, shnum)
    shsize = shentsize * shnum if shentsize >= 64 else 0
    return Layout(end, machine, elf_type, tuple(segments), sections, shoff, shsize)


def _sections(
    image: Image, end: str, shoff: int, shentsize: int, shnum: int
) -> Optional[tuple[Section, ...]]:
    """The section headers that are readable (a sparse image may lack some); None if none is."""
    if not shoff or shentsize < 64:
        return None
    if shnum == 0:  # extended numbering: the count is in section 0's sh_size
        first = _unpack(end + "IIQQQQIIQQ", image.get(shoff, 64))
        if first is None:
            return None
        shnum = first[5]
    if shnum > MAX_HEADERS:
        return None
    out = []
    for i in range(shnum):
        fields = _unpack(end + "IIQQQQIIQQ", image.get(shoff + i * shentsize, 64))
        if fields is None:
            continue
        (_, stype, _, _, offset, size, link, _, _, entsize) = fields
        out.append(Section(i, stype, offset, size, link, entsize))
    return tuple(out) if out else None


def _cstr(table: bytes, offset: int) -> Optional[str]:
    if offset < 0 or offset >= len(table):
        return None
    stop = table.find(b"\0", offset, offset + MAX_NAME)
    if stop < 0:
        return None
    return table[offset:stop].decode("utf-8", "replace")


def _table(image: Image, offset: int, size: int) -> Optional[bytes]:
    if size < 0 or size > MAX_TABLE:
        return None
    return image.get(offset, size)


class _Symbols(Struct):
    defined: set[str]
    undefined: set[str]
    weak: set[str]


# An array typecode of 4 bytes (st_name); "I" is 4 bytes on every platform compat runs on.
_U32 = next(code for code in "IL" if array(code).itemsize == 4)


def _column(
    table: bytes, span: int, entsize: int, at: int, width: int, code: str, swap: bool
) -> array[int]:
    """One field of every entry, as an array: byte k of the field is table[at + k::entsize]."""
    raw = bytearray(span // entsize * width)
    for k in range(width):
        raw[k::width] = table[at + k : span : entsize]
    col = array(code)
    col.frombytes(raw)
    if swap:
        col.byteswap()
    return col


def _read_symbols(
    table: bytes,
    strtab: bytes,
    end: str,
    entsize: int,
    prefixes: tuple[str, ...] = (),
    kinds: str = "both",
) -> Optional[_Symbols]:
    """The named dynamic symbols by kind; with `prefixes`, only names starting with one of them;
    `kinds` "defined" or "undefined" leaves the other sets empty.

    libtorch_cpu.so has ~75k symbols: the fields are cut out as columns with strided slices,
    the string table is decoded once (it is ASCII but for exotic files), and names that are not
    kept are tested in place (bytes.startswith at the offset), never cut out or decoded.
    """
    if entsize < 24:
        entsize = 24
    total = len(table) // entsize
    if total > MAX_SYMBOLS:
        return None
    out = _Symbols(set(), set(), set())
    if total < 2:
        return out
    span = total * entsize
    swap = (end == "<") != (sys.byteorder == "little")
    offsets = _column(table, span, entsize, 0, 4, _U32, swap)
    shndx = _column(table, span, entsize, 6, 2, "H", swap)
    info = table[4:span:entsize]
    offsets[0] = 0  # entry 0 is the null symbol
    if max(offsets) > strtab.rfind(b"\0"):
        return None  # a name outside the string table: the pair does not belong together
    heads = tuple(p.encode() for p in prefixes)
    text = strtab.decode("ascii") if strtab.isascii() else None
    starts = strtab.startswith
    defined = out.defined.add if kinds != "undefined" else None
    strong = out.undefined.add if kinds != "defined" else None
    weak = out.weak.add if kinds != "defined" else None
    for off, sec, inf in zip(offsets, shndx, info):
        if not off or (heads and not starts(heads, off)):
            continue
        add = defined if sec != SHN_UNDEF else weak if inf >> 4 == STB_WEAK else strong
        if add is None:
            continue
        if text is not None:
            add(text[off : text.find("\0", off)])
        else:
            add(strtab[off : strtab.find(b"\0", off)].decode("utf-8", "replace"))
    return out


def _dynamic_entries(data: bytes, end: str) -> list[tuple[int, int]]:
    out = []
    for off in range(0, min(len(data), MAX_DYNAMIC * 16) - 15, 16):
        tag, value = struct.unpack_from(end + "qQ", data, off)
        if tag == DT_NULL:
            break
        out.append((tag, value))
    return out


def _gnu_hash_count(image: Image, lay: Layout, vaddr: int) -> Optional[int]:
    """The number of dynamic symbols from a DT_GNU_HASH table (the largest index in a chain)."""
    at = lay.to_offset(vaddr, 16)
    head = _unpack(lay.endian + "IIII", image.get(at, 16) if at is not None else None)
    if head is None or at is None:
        return None
    nbuckets, symoffset, bloom_size, _ = head
    if nbuckets > MAX_SYMBOLS or bloom_size > MAX_SYMBOLS:
        return None
    buckets_at = at + 16 + 8 * bloom_size
    raw = image.get(buckets_at, 4 * nbuckets)
    if raw is None:
        return None
    buckets = struct.unpack_from(f"{lay.endian}{nbuckets}I", raw)
    last = max(buckets, default=0)
    if last < symoffset:
        return symoffset
    chains_at = buckets_at + 4 * nbuckets
    while last - symoffset < MAX_SYMBOLS:
        word = _unpack(lay.endian + "I", image.get(chains_at + 4 * (last - symoffset), 4))
        if word is None:
            return None
        if word[0] & 1:
            return last + 1
        last += 1
    return None


def _tags(entries: list[tuple[int, int]]) -> dict[int, int]:
    tags: dict[int, int] = {}
    for tag, value in entries:
        tags.setdefault(tag, value)
    return tags


def _dynamic_strtab(image: Image, lay: Layout, entries: list[tuple[int, int]]) -> Optional[bytes]:
    tags = _tags(entries)
    if DT_STRTAB not in tags or DT_STRSZ not in tags:
        return None
    strsz = tags[DT_STRSZ]
    at = lay.to_offset(tags[DT_STRTAB], max(strsz, 1))
    return _table(image, at, strsz) if at is not None else None


def _dynamic_tables(
    image: Image, lay: Layout, entries: list[tuple[int, int]]
) -> tuple[Optional[bytes], Optional[bytes], str]:
    """(dynsym, dynstr, why-not) located through DT_SYMTAB/DT_STRTAB and a hash table."""
    tags = _tags(entries)
    if DT_SYMTAB not in tags or DT_STRTAB not in tags or DT_STRSZ not in tags:
        return None, None, "no DT_SYMTAB/DT_STRTAB in .dynamic"
    strtab = _dynamic_strtab(image, lay, entries)
    count: Optional[int] = None
    if DT_HASH in tags:
        at = lay.to_offset(tags[DT_HASH], 8)
        head = _unpack(lay.endian + "II", image.get(at, 8) if at is not None else None)
        count = head[1] if head is not None else None
    if count is None and DT_GNU_HASH in tags:
        count = _gnu_hash_count(image, lay, tags[DT_GNU_HASH])
    if count is None or count > MAX_SYMBOLS:
        return None, strtab, "symbol count not readable (no hash table)"
    entsize = tags.get(DT_SYMENT, 24) or 24
    sym_at = lay.to_offset(tags[DT_SYMTAB], max(count * entsize, 1))
    symtab = _table(image, sym_at, count * entsize) if sym_at is not None else None
    return (
        symtab,
        strtab,
        "" if symtab is not None and strtab is not None else "tables not readable",
    )


def parse(image: Image, prefixes: Sequence[str] = (), kinds: str = "both") -> ElfResult:
    """The dynamic-linking facts of the ELF behind `image`, as far as its known bytes tell.

    Section headers first (exact); else PT_DYNAMIC with DT_SYMTAB/DT_STRTAB and a hash table for
    the count. When .dynamic itself is not readable but the string table is, the needed
    libraries are the library names in .dynstr (`needed_from = "dynstr"`: a superset of
    DT_NEEDED that may also hold the SONAME and version-need file names). With `prefixes`, the
    symbol sets keep only the names that start with one of them; `kinds` "defined" or
    "undefined" reads only those symbols (torch's exports, an extension's imports).
    """
    if kinds not in ("both", "defined", "undefined"):
        raise ValueError(f"kinds must be both, defined or undefined, not {kinds!r}")
    try:
        return _parse(image, tuple(prefixes), kinds)
    except (struct.error, ValueError, OverflowError, MemoryError) as exc:
        return Unknown(f"malformed ELF ({type(exc).__name__}: {exc})")


def _parse(image: Image, prefixes: tuple[str, ...], kinds: str) -> ElfResult:
    lay = layout(image)
    if isinstance(lay, Unknown):
        return lay
    end = lay.endian
    notes: list[str] = []
    symtab = strtab = dynamic = dynstr = None
    entsize = 24
    symbols_from = ""
    if lay.sections is not None:
        secs = lay.sections
        sym = next((s for s in secs if s.type == SHT_DYNSYM), None)
        dyn = next((s for s in secs if s.type == SHT_DYNAMIC), None)
        sym_str = lay.section(sym.link) if sym is not None else None
        dyn_str = lay.section(dyn.link) if dyn is not None else None
        if sym is not None and sym_str is not None:
            symtab = _table(image, sym.offset, sym.size)
            strtab = _table(image, sym_str.offset, sym_str.size)
            entsize = sym.entsize or 24
            symbols_from = "sections" if symtab is not None and strtab is not None else ""
        if dyn is not None and dyn_str is not None:
            dynamic = _table(image, dyn.offset, dyn.size)
            dynstr = _table(image, dyn_str.offset, dyn_str.size)
    if dynamic is None:
        seg = next((s for s in lay.segments if s.type == PT_DYNAMIC), None)
        if seg is not None:
            dynamic = _table(image, seg.offset, min(seg.filesz, MAX_DYNAMIC * 16))
    entries = _dynamic_entries(dynamic, end) if dynamic is not None else []
    if not symbols_from and entries:
        symtab, dyn_strtab, why = _dynamic_tables(image, lay, entries)
        strtab = strtab or dyn_strtab
        if symtab is not None and strtab is not None:
            symbols_from = "dynamic"
        elif why:
            notes.append(why)
    if dynstr is None and entries:
        dynstr = _dynamic_strtab(image, lay, entries)
    dynstr = dynstr if dynstr is not None else strtab
    symbols = None
    if symbols_from and symtab is not None and strtab is not None:
        symbols = _read_symbols(symtab, strtab, end, entsize, prefixes, kinds)
        if symbols is None:
            notes.append("dynamic symbol table does not match its string table")
            symbols_from = ""
    elif not notes:
        notes.append("dynamic symbol table not readable")
    needed: tuple[str, ...] = ()
    needed_from = ""
    soname = ""
    if entries and dynstr is not None:
        names: list[str] = []
        for tag, value in entries:
            if tag in (DT_NEEDED, DT_SONAME):
                name = _cstr(dynstr, value)
                if name is None:
                    names = []
                    notes.append("DT_NEEDED outside the string table")
                    break
                if tag == DT_SONAME:
                    soname = name
                else:
                    names.append(name)
        else:
            needed, needed_from = tuple(dict.fromkeys(names)), "dynamic"
    if not needed_from and dynstr is not None:
        needed = tuple(sorted({m.group(1).decode("ascii") for m in _LIBRARY_NAME.finditer(dynstr)}))
        needed_from = "dynstr"
        notes.append(".dynamic not readable: needed libraries are the library names in .dynstr")
    elif not needed_from:
        notes.append("needed libraries not readable")
    return ElfInfo(
        machine=lay.machine,
        needed=needed,
        needed_from=needed_from,
        soname=soname,
        defined=frozenset(symbols.defined) if symbols else frozenset(),
        undefined=frozenset(symbols.undefined) if symbols else frozenset(),
        weak_undefined=frozenset(symbols.weak) if symbols else frozenset(),
        symbols_from=symbols_from,
        notes=tuple(notes),
        symbol_prefixes=prefixes,
        symbol_kinds=kinds,
    )


# -- fatbins: the GPU architectures a shared object carries ----------------------------------


class FatbinArchs(Struct, frozen=True):
    sass: tuple[int, ...]  # sm numbers with machine code (90 = sm_90)
    ptx: tuple[int, ...]  # sm numbers with PTX
    fatbins: int  # fatbin headers found
    # The archs most of the fatbins carry (a quarter of those with that kind of entry or more):
    # the list a library was built for, without the few kernels built for one GPU more
    # (torch 2.11's libtorch_cuda.so has sm_89/sm_103/sm_121 kernels beside its arch list).
    common_sass: tuple[int, ...] = ()
    common_ptx: tuple[int, ...] = ()


def fatbin_archs(image: Image) -> Union[FatbinArchs, Unknown]:
    """SASS and PTX architectures of every fatbin in the file's PROGBITS sections.

    A fatbin is found by its magic at the start of a section (`.nv_fatbin`), so section names
    need not be readable; entries are walked by their sizes, every step bounded.
    """
    lay = layout(image)
    if isinstance(lay, Unknown):
        return lay
    if lay.sections is None:
        return Unknown("section headers not readable")
    sass: set[int] = set()
    ptx: set[int] = set()
    found = 0
    entries = 0
    # per fatbin: which archs it carries, to tell the common ones from the few
    sass_in: dict[int, int] = {}
    ptx_in: dict[int, int] = {}
    with_sass = with_ptx = 0
    for sec in lay.sections:
        if sec.type != SHT_PROGBITS or sec.size < 16:
            continue
        magic = _unpack(lay.endian + "I", image.get(sec.offset, 4))
        if magic is None or magic[0] != FATBIN_MAGIC:
            continue
        pos, stop = sec.offset, sec.offset + sec.size
        while pos + 16 <= stop:
            head = _unpack(lay.endian + "IHHQ", image.get(pos, 16))
            if head is None:
                return Unknown("fatbin not readable")
            if head[0] != FATBIN_MAGIC:
                # Fatbins are padded to 8 (sometimes 16) bytes; anything else ends the walk.
                if head[0] == 0:
                    pos += 8
                    continue
                break
            found += 1
            header_size, fat_size = head[2], head[3]
            entry, entry_end = pos + header_size, pos + header_size + fat_size
            if header_size < 16 or entry_end > stop:
                return Unknown("fatbin header out of bounds")
            here_sass: set[int] = set()
            here_ptx: set[int] = set()
            while entry + 32 <= entry_end:
                fields = _unpack(lay.endian + "HHIQIIHHI", image.get(entry, 32))
                if fields is None:
                    return Unknown("fatbin entry not readable")
                kind, _, ehead, payload, _, _, _, _, arch = fields
                entries += 1
                if entries > MAX_FATBIN_ENTRIES or ehead < 32:
                    return Unknown("implausible fatbin entry")
                if kind == 1:
                    here_ptx.add(arch)
                elif kind == 2:
                    here_sass.add(arch)
                entry += ehead + payload
            sass |= here_sass
            ptx |= here_ptx
            with_sass += bool(here_sass)
            with_ptx += bool(here_ptx)
            for a in here_sass:
                sass_in[a] = sass_in.get(a, 0) + 1
            for a in here_ptx:
                ptx_in[a] = ptx_in.get(a, 0) + 1
            pos = entry_end
    return FatbinArchs(
        tuple(sorted(sass)),
        tuple(sorted(ptx)),
        found,
        tuple(sorted(a for a, n in sass_in.items() if 4 * n >= with_sass)),
        tuple(sorted(a for a, n in ptx_in.items() if 4 * n >= with_ptx)),
    )


# -- installed files ---------------------------------------------------------------------


def parse_file(path: str, prefixes: Sequence[str] = (), kinds: str = "both") -> ElfResult:
    """`parse` of an installed file, read at offsets."""
    try:
        with open_regular(path) as handle:
            handle.seek(0, 2)
            size = handle.tell()
            return parse(FileImage(handle, size), prefixes, kinds)
    except OSError as exc:
        return Unknown(f"cannot read {path}: {exc.strerror or exc}")


def _info(path: str) -> ElfInfo:
    got = parse_file(path)
    if isinstance(got, Unknown):
        raise ElfError(got.reason)
    return got


def needed(path: str) -> tuple[str, ...]:
    """DT_NEEDED entries: the shared libraries `path` asks the loader for."""
    return _info(path).needed


def dynamic_symbols(path: str) -> tuple[frozenset[str], frozenset[str]]:
    """(defined, undefined) names of the dynamic symbol table (weak undefined included)."""
    info = _info(path)
    return info.defined, info.undefined | info.weak_undefined


def try_needed(path: str) -> Optional[tuple[str, ...]]:
    got = parse_file(path)
    return None if isinstance(got, Unknown) or not got.needed_from else got.needed


def cuda_majors(needed_libs: Sequence[str]) -> dict[str, int]:
    """CUDA library -> the CUDA major its soname names (libcudart.so.13 -> 13; a copy renamed by
    auditwheel, libcudart-1b201d85.so.12, counts too)."""
    out: dict[str, int] = {}
    for lib in needed_libs:
        m = _CUDA_SONAME.match(lib)
        if m:
            out[lib] = int(m.group(2))
    return out


# Libraries whose soname major is the CUDA major (cuBLAS 12.x is libcublas.so.12, ...). cuDNN
# (libcudnn.so.9), NCCL (libnccl.so.2) and cuSPARSELt number their own releases and are left out;
# cuFFT (.so.11 on CUDA 12) and cuSOLVER/cuSPARSE (.so.11/.so.12 on CUDA 12) likewise.
_CUDA_SONAME = re.compile(
    r"^(libcudart|libnvrtc|libcublas|libcublasLt|libnvJitLink|libcupti|libnvjpeg)"
    r"(?:[-.][0-9a-f]{8})?\.so\.([0-9]+)(?:\.[0-9]+)*$"
)
