"""Refresh matrices/generated/ from PyPI: python scripts/sync.py [--write] [--diff] [PROJECT ...]."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compat.errors import CompatError  # noqa: E402
from compat.matrix.pypi import DEFAULT_INDEX_URL  # noqa: E402
from compat.matrix.sync import DEFAULT_PROJECTS, run_sync  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("projects", nargs="*", help=f"default: {' '.join(DEFAULT_PROJECTS)}")
    parser.add_argument("--write", action="store_true", help="write the files (default: dry run)")
    parser.add_argument("--diff", action="store_true", help="print a unified diff of the changes")
    parser.add_argument("--out", type=Path, default=ROOT / "matrices" / "generated")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--index-url", default=DEFAULT_INDEX_URL)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        report = run_sync(
            args.projects or None,
            write=args.write,
            out_dir=args.out,
            cache_dir=args.cache_dir,
            concurrency=args.concurrency,
            index_url=args.index_url,
            progress=None if args.quiet else progress,
        )
    except CompatError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    if args.diff:
        sys.stdout.write(report.unified_diff())
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
