"""Build the compat-data distribution from matrices/: python scripts/build_data.py [--version V] [--out DIR]."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from packaging.version import InvalidVersion, Version  # noqa: E402

from compat.channel.info import DATA_FILE, read_info  # noqa: E402
from compat.channel.store import copy_tree  # noqa: E402
from compat.errors import CompatError  # noqa: E402
from compat.matrix.load import validate_all  # noqa: E402


def build(matrices: Path, out: Path, version: Version | None = None) -> list[Path]:
    """Validate `matrices`, stage it as compat_data/matrices with DATA.toml stamped with
    `version` (default: the version DATA.toml has), and build the wheel and sdist into `out`."""
    problems = validate_all(matrices)
    if problems:
        raise CompatError(
            "the data does not validate:\n  " + "\n  ".join(problems[:20]),
            hint="fix it (compat matrix validate --path matrices) before building",
        )
    info = read_info(matrices)
    chosen = version or info.version
    if chosen is None:
        raise CompatError(f"{matrices / DATA_FILE} has no version", hint="pass --version")
    if chosen.local:
        raise CompatError(f"{chosen}: a published version has no local label")
    stamped = info.__class__(version=chosen, synced=info.synced or date.today(), format=info.format)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="compat-data-") as tmp:
        stage = Path(tmp) / "compat-data"
        shutil.copytree(ROOT / "data", stage)
        tree = stage / "compat_data" / "matrices"
        copy_tree(matrices, tree, skip=frozenset({DATA_FILE}))
        (tree / DATA_FILE).write_text(stamped.to_toml(), encoding="utf-8")
        before = set(out.iterdir())
        subprocess.run(
            [sys.executable, "-m", "hatchling", "build", "-d", str(out.resolve())],
            cwd=stage,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return sorted(set(out.iterdir()) - before)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--matrices", type=Path, default=ROOT / "matrices")
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument("--version", help="the data version (default: matrices/DATA.toml's)")
    args = parser.parse_args(argv)
    try:
        version = Version(args.version) if args.version else None
    except InvalidVersion:
        print(f"error: {args.version!r} is not a version", file=sys.stderr)
        return 2
    try:
        built = build(args.matrices, args.out, version)
    except CompatError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except subprocess.CalledProcessError as error:
        print(f"error: hatchling failed ({error.returncode})", file=sys.stderr)
        return 1
    for path in built:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
