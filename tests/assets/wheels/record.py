"""Re-record the wheel-member range reads in this folder: python tests/assets/wheels/record.py.

Each case reads one member of a real wheel on PyPI the way the sync does and keeps only the
byte ranges that reading asked for (not the wheel's zip directory, which is large for torch):
`<case>.json` holds the member's central-directory entry and the ranges, base64-encoded.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import msgspec.structs

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from compat.matrix import wheel  # noqa: E402
from compat.matrix.pypi import HttpRangeFile, PyPIClient, RangeFile, read_zip_directory  # noqa: E402

# case -> (project, version, wheel file name prefix, member, settings for the reader). Reads
# from both ends of large members are tested on generated ELF files and online.
CASES: dict[str, tuple[str, str, str, str, dict[str, int]]] = {
    "torch-2.8.0-libshm": (
        "torch",
        "2.8.0",
        "torch-2.8.0-cp312-cp312-manylinux_2_28_x86_64",
        "torch/lib/libshm.so",
        {},
    ),
    "sglang-kernel-0.4.1-spatial-ops": (
        "sglang-kernel",
        "0.4.1",
        "sglang_kernel-0.4.1-cp310-abi3-manylinux2014_x86_64",
        "sgl_kernel/spatial_ops.abi3.so",
        {},
    ),
    # Read from both ends (as a large member is), with small first reads so the case stays small.
}


class Recorder(RangeFile):
    def __init__(self, inner: RangeFile) -> None:
        self.inner = inner
        self.size = inner.size
        self.reads: list[tuple[int, bytes]] = []

    def tail(self, length: int) -> tuple[int, bytes]:
        start, data = self.inner.tail(length)
        self.size = self.inner.size
        return start, data

    def read(self, start: int, end: int) -> bytes:
        data = self.inner.read(start, end)
        self.reads.append((start, data))
        return data


def main() -> None:
    with PyPIClient() as client:
        for case, (project, version, prefix, member, settings) in CASES.items():
            page = client.project(project)
            assert page is not None
            f = next(f for f in page.data["releases"][version] if f["filename"].startswith(prefix))
            http = HttpRangeFile(client, urljoin(page.url, f["url"]), int(f["size"]))
            entry = next(e for e in read_zip_directory(http) if e.name == member)
            saved = {k: getattr(wheel, k) for k in settings}
            for k, v in settings.items():
                setattr(wheel, k, v)
            try:
                rec = Recorder(http)
                wheel.read_member(rec, entry)
            finally:
                for k, v in saved.items():
                    setattr(wheel, k, v)
            doc: dict[str, Any] = {
                "source": f["filename"],
                "sha256": f["digests"]["sha256"],
                "size": int(f["size"]),
                "entry": msgspec.structs.asdict(entry),
                "settings": settings,
                "reads": [[start, base64.b64encode(data).decode()] for start, data in rec.reads],
            }
            (HERE / f"{case}.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
            print(case, sum(len(d) for _, d in rec.reads), "bytes")


if __name__ == "__main__":
    main()
