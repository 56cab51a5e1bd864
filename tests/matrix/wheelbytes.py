"""Helpers for the wheel tests: replay recorded range reads; build ELF files and zips."""

from __future__ import annotations

import base64
import io
import json
import random
import struct
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from compat.matrix.pypi import RangeFile, ZipMember

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "wheels"


class ReplayFile(RangeFile):
    """Serves only the byte ranges a recorded reading asked for; anything else is an error,
    so a test also proves which ranges the reader reads."""

    def __init__(self, size: int, reads: Sequence[tuple[int, bytes]]) -> None:
        self.size = size
        self.reads = list(reads)
        self.asked: list[tuple[int, int]] = []

    def tail(self, length: int) -> tuple[int, bytes]:
        raise AssertionError("a member read never asks for the zip's tail")

    def read(self, start: int, end: int) -> bytes:
        self.asked.append((start, end))
        for at, data in self.reads:
            if at <= start and end <= at + len(data):
                return data[start - at : end - at]
        raise AssertionError(f"bytes {start}-{end} were not recorded")


def recorded(case: str) -> tuple[dict[str, Any], ZipMember, ReplayFile]:
    doc = json.loads((ASSETS / f"{case}.json").read_text(encoding="utf-8"))
    reads = [(int(at), base64.b64decode(data)) for at, data in doc["reads"]]
    return doc, ZipMember(**doc["entry"]), ReplayFile(int(doc["size"]), reads)


class BytesFile(RangeFile):
    """A whole file in memory, counting what is read."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.bytes = 0

    def tail(self, length: int) -> tuple[int, bytes]:
        start = max(0, self.size - length)
        self.bytes += self.size - start
        return start, self.data[start:]

    def read(self, start: int, end: int) -> bytes:
        self.bytes += max(0, min(end, self.size) - start)
        return self.data[start:end]


# -- a small ELF64 writer ------------------------------------------------------------------


def make_elf(
    needed: Sequence[str] = ("libc.so.6",),
    defined: Sequence[str] = (),
    undefined: Sequence[str] = (),
    weak: Sequence[str] = (),
    middle: int = 0,
    strings_at_end: bool = False,
    after: int = 0,
    seed: int = 1,
) -> bytes:
    """An ELF64 shared object with .dynsym, .dynstr, .dynamic and section headers.

    `middle` bytes of incompressible filler sit between the first segment and the tables
    kept at the end, as .text and fatbins do in a real kernel library; `strings_at_end`
    moves .dynstr past the filler, as patchelf does to torch's libraries; `after` bytes of
    filler follow .dynstr (which then lies in the middle of the file).
    """
    strtab = bytearray(b"\0")
    offsets: dict[str, int] = {}

    def intern(name: str) -> int:
        if name not in offsets:
            offsets[name] = len(strtab)
            strtab.extend(name.encode() + b"\0")
        return offsets[name]

    for name in needed:
        intern(name)
    syms = bytearray(24)  # the null symbol
    for name in defined:
        syms += struct.pack("<IBBHQQ", intern(name), 0x12, 0, 12, 0x1000, 16)
    for name in undefined:
        syms += struct.pack("<IBBHQQ", intern(name), 0x12, 0, 0, 0, 0)
    for name in weak:
        syms += struct.pack("<IBBHQQ", intern(name), 0x22, 0, 0, 0, 0)
    filler = random.Random(seed).randbytes(middle)
    head = 64 + 56 * 2  # ELF header, two program headers (PT_LOAD, PT_DYNAMIC)
    sym_at = head
    layout = bytearray(head) + syms
    if strings_at_end:
        filler_at = len(layout)
        layout += filler
        str_at = len(layout)
        layout += strtab
    else:
        str_at = len(layout)
        layout += strtab
        filler_at = len(layout)
        layout += filler
    layout += random.Random(seed + 1).randbytes(after)
    while len(layout) % 8:
        layout += b"\0"
    dyn_at = len(layout)
    dyn = b"".join(struct.pack("<qQ", 1, offsets[n]) for n in needed)
    dyn += struct.pack("<qQ", 5, str_at) + struct.pack("<qQ", 6, sym_at)
    dyn += struct.pack("<qQ", 10, len(strtab)) + struct.pack("<qQ", 11, 24)
    dyn += struct.pack("<qQ", 0, 0)
    layout += dyn
    shstr = b"\0.dynsym\0.dynstr\0.dynamic\0.text\0.shstrtab\0"
    shstr_at = len(layout)
    layout += shstr
    while len(layout) % 8:
        layout += b"\0"
    sh_at = len(layout)

    def sh(name: int, kind: int, off: int, size: int, link: int = 0, entsize: int = 0) -> bytes:
        return struct.pack("<IIQQQQIIQQ", name, kind, 2, off, off, size, link, 0, 8, entsize)

    sections = [
        bytes(64),
        sh(1, 11, sym_at, len(syms), 2, 24),
        sh(9, 3, str_at, len(strtab)),
        sh(17, 6, dyn_at, len(dyn), 2, 16),
        sh(26, 1, filler_at, len(filler)),
        sh(32, 3, shstr_at, len(shstr)),
    ]
    layout += b"".join(sections)
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header += struct.pack(
        "<HHIQQQIHHHHHH", 3, 62, 1, 0, 64, sh_at, 0, 64, 56, 2, 64, len(sections), 5
    )
    phdrs = struct.pack("<IIQQQQQQ", 1, 5, 0, 0, 0, len(layout), len(layout), 0x1000)
    phdrs += struct.pack("<IIQQQQQQ", 2, 6, dyn_at, dyn_at, dyn_at, len(dyn), len(dyn), 8)
    layout[: len(header) + len(phdrs)] = header + phdrs
    return bytes(layout)


def make_zip(members: dict[str, bytes], level: int = 6) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=level) as z:
        for name, data in members.items():
            z.writestr(name, data)
        z.writestr("pkg-1.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: pkg\n")
    return out.getvalue()
