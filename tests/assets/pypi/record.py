"""Re-record the trimmed PyPI answers in this folder: python tests/assets/pypi/record.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import urljoin

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from compat.matrix.pypi import PyPIClient  # noqa: E402
from compat.matrix.sync import choose_wheel  # noqa: E402

INDEX = "https://pypi.org/pypi"
# project -> releases kept, and for each the wheels kept (file name prefixes; all when empty)
KEEP = {
    "torch": {
        "1.13.1": ["torch-1.13.1-cp310-cp310-manylinux1_x86_64"],
        "2.7.1": [
            "torch-2.7.1-cp312-cp312-manylinux_2_28_x86_64",
            "torch-2.7.1-cp312-cp312-manylinux_2_28_aarch64",
            "torch-2.7.1-cp313-cp313-manylinux_2_28_x86_64",
            "torch-2.7.1-cp313-cp313t-manylinux_2_28_x86_64",
            "torch-2.7.1-cp39-cp39-manylinux_2_28_x86_64",
            "torch-2.7.1-cp312-cp312-win_amd64",
        ],
        "2.11.0": [
            "torch-2.11.0-cp312-cp312-manylinux_2_28_x86_64",
            "torch-2.11.0-cp312-cp312-manylinux_2_28_aarch64",
        ],
    },
    "sgl-kernel": {"0.1.0": [], "0.3.9.post2": []},
    "sglang": {"0.4.6.post1": [], "0.5.0rc0": []},
    "vllm": {
        "0.2.1": [],
        "0.10.1.1": ["vllm-0.10.1.1-cp38-abi3-manylinux1_x86_64", "vllm-0.10.1.1.tar"],
    },
}


def trim_metadata(data: bytes) -> bytes:
    """Headers as published; the long description body dropped."""
    head, _, _ = data.partition(b"\n\n")
    return head + b"\n\n(description trimmed)\n"


def main() -> None:
    with PyPIClient(INDEX) as client:
        for name, releases in KEEP.items():
            page = client.project(name)
            assert page is not None
            kept = {}
            for version, prefixes in releases.items():
                files = page.data["releases"][version]
                if prefixes:
                    files = [f for f in files if any(f["filename"].startswith(p) for p in prefixes)]
                kept[version] = files
                wheel = choose_wheel(files)
                if wheel is None or (name == "vllm" and version == "0.2.1"):
                    continue
                url = urljoin(page.url, wheel["url"])
                read = client.metadata(url, wheel["digests"]["sha256"])
                (HERE / f"{wheel['filename']}.metadata").write_bytes(trim_metadata(read.data))
            info = {k: page.data["info"][k] for k in ("name", "version", "requires_python")}
            trimmed = {"info": info, "releases": kept, "urls": []}
            text = json.dumps(trimmed, indent=1, sort_keys=True) + "\n"
            (HERE / f"{name}.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
