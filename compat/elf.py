"""A small ELF64 reader: the libraries a shared object needs and the symbols it imports/exports.

Reads only the headers and the dynamic tables (seek + small reads), never the whole file, so
asking what torchvision's _C.so links against costs well under a millisecond.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO, Optional

SHT_DYNSYM = 11
SHT_DYNAMIC = 6
DT_NEEDED = 1
SHN_UNDEF = 0


class ElfError(ValueError):
    pass


@dataclass(frozen=True)
class _Section:
    type: int
    offset: int
    size: int
    link: int
    entsize: int


def _sections(fh: BinaryIO) -> tuple[str, list[_Section]]:
    ident = fh.read(16)
    if len(ident) < 16 or ident[:4] != b"\x7fELF":
        raise ElfError("not an ELF file")
    if ident[4] != 2:
        raise ElfError("not a 64-bit ELF file")
    end = "<" if ident[5] == 1 else ">"
    header = fh.read(48)
    if len(header) < 48:
        raise ElfError("truncated ELF header")
    # e_type, e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags, e_ehsize, e_phentsize,
    # e_phnum, e_shentsize, e_shnum, e_shstrndx
    fields = struct.unpack(end + "HHIQQQIHHHHHH", header)
    shoff, shentsize, shnum = fields[5], fields[10], fields[11]
    if not shoff or shentsize < 64:
        raise ElfError("no section headers")
    fh.seek(shoff)
    raw = fh.read(shentsize * shnum)
    if len(raw) < shentsize * shnum:
        raise ElfError("truncated section headers")
    out = []
    for i in range(shnum):
        (_, stype, _, _, offset, size, link, _, _, entsize) = struct.unpack_from(
            end + "IIQQQQIIQQ", raw, i * shentsize
        )
        out.append(_Section(stype, offset, size, link, entsize))
    return end, out


def _read(fh: BinaryIO, sec: _Section) -> bytes:
    fh.seek(sec.offset)
    data = fh.read(sec.size)
    if len(data) < sec.size:
        raise ElfError("truncated section")
    return data


def _cstr(table: bytes, offset: int) -> str:
    end = table.find(b"\0", offset)
    return table[offset : end if end >= 0 else None].decode("utf-8", "replace")


def needed(path: str) -> tuple[str, ...]:
    """DT_NEEDED entries: the shared libraries `path` asks the loader for."""
    with open(path, "rb") as fh:
        end, secs = _sections(fh)
        dyn = next((s for s in secs if s.type == SHT_DYNAMIC), None)
        if dyn is None:
            return ()
        strtab = _read(fh, secs[dyn.link])
        data = _read(fh, dyn)
    out = []
    for off in range(0, len(data) - 15, 16):
        tag, val = struct.unpack_from(end + "qQ", data, off)
        if tag == 0:
            break
        if tag == DT_NEEDED:
            out.append(_cstr(strtab, val))
    return tuple(out)


def dynamic_symbols(path: str) -> tuple[frozenset[str], frozenset[str]]:
    """(defined, undefined) names of the dynamic symbol table."""
    with open(path, "rb") as fh:
        end, secs = _sections(fh)
        sym = next((s for s in secs if s.type == SHT_DYNSYM), None)
        if sym is None:
            return frozenset(), frozenset()
        strtab = _read(fh, secs[sym.link])
        data = _read(fh, sym)
    defined: set[str] = set()
    undefined: set[str] = set()
    size = sym.entsize or 24
    for off in range(size, len(data) - size + 1, size):  # entry 0 is the null symbol
        name_off, _info, _other, shndx = struct.unpack_from(end + "IBBH", data, off)
        if not name_off:
            continue
        (undefined if shndx == SHN_UNDEF else defined).add(_cstr(strtab, name_off))
    return frozenset(defined), frozenset(undefined)


def try_needed(path: str) -> Optional[tuple[str, ...]]:
    try:
        return needed(path)
    except (OSError, ElfError, struct.error):
        return None
