"""Re-record the byte ranges `--deep` reads from real CUDA objects: python tests/assets/deep/record.py WHEEL...

For each member of CASES found in the given wheels (from PyPI: `pip download torchao==0.15.0
--no-deps`), the readers `--deep` runs (the fatbin header walk, the ELF reads of an object's
imports and of a library's exports) are run over the member's bytes, and only the ranges they
asked for are kept: `<case>.json` holds the wheel's name and sha256, the member's size and the
ranges, base64-encoded. The tests lay them out as a sparse file of the member's size, so that a
read of any other byte finds zeros, not the payloads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import zipfile
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from compat import elf  # noqa: E402
from compat.probe.deep import TORCH_SYMBOL_PREFIXES  # noqa: E402

# case -> (wheel file name prefix, member)
CASES: dict[str, tuple[str, str]] = {
    "torchao-0.15.0-mxfp8": (
        "torchao-0.15.0-cp310-abi3-manylinux_2_24_x86_64",
        "torchao/_C_mxfp8.cpython-310-x86_64-linux-gnu.so",
    ),
    "torchao-0.15.0-cutlass-100a": (
        "torchao-0.15.0-cp310-abi3-manylinux_2_24_x86_64",
        "torchao/_C_cutlass_100a.abi3.so",
    ),
}


class Recorder(elf.Image):
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.reads: list[tuple[int, int]] = []

    def get(self, offset: int, length: int) -> Optional[bytes]:
        if offset < 0 or length < 0 or offset + length > self.size:
            return None
        self.reads.append((offset, offset + length))
        return self.data[offset : offset + length]


def merged(reads: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for start, end in sorted(reads):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(a, b) for a, b in out]


def main(wheels: list[str]) -> None:
    for case, (prefix, member) in CASES.items():
        wheel = next((Path(w) for w in wheels if Path(w).name.startswith(prefix)), None)
        if wheel is None:
            print(case, "skipped: no wheel", prefix)
            continue
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(member)
        rec = Recorder(data)
        elf.fatbin_archs(rec)
        elf.parse(rec, TORCH_SYMBOL_PREFIXES, "undefined")
        elf.parse(rec, TORCH_SYMBOL_PREFIXES, "defined")
        ranges = merged(rec.reads)
        doc: dict[str, Any] = {
            "source": wheel.name,
            "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
            "member": member,
            "size": len(data),
            "reads": [[a, base64.b64encode(data[a:b]).decode()] for a, b in ranges],
        }
        (HERE / f"{case}.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        print(case, sum(b - a for a, b in ranges), "bytes in", len(ranges), "ranges")


if __name__ == "__main__":
    main(sys.argv[1:])
