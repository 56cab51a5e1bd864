"""Where `compat matrix sync` writes: the user folder (default), a source checkout, or a folder."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from msgspec import Struct
from msgspec.structs import replace

from compat.channel.info import DATA_FILE, DataInfo, next_version, read_info, sync_version
from compat.channel.source import DataSource, checkout_tree, locate
from compat.channel.store import FILE_MODE, Store, copy_tree, make_dirs
from compat.errors import UsageError
from compat.matrix.commit import commit, recover


class Target(Struct, frozen=True):
    """`base`: the database the sync reads as the old data; `kind`: user, repo or out; `root`:
    the folder written (the store's root for the user folder)."""

    kind: str
    root: Path
    base: Path

    def describe(self) -> str:
        return {
            "user": f"the user folder {self.root}",
            "repo": f"the repository's {self.root}",
            "out": f"{self.root}",
        }[self.kind]


def resolve_target(repo: bool, out: Optional[Path]) -> tuple[Target, Optional[str]]:
    """The target and, for a plain folder, what recovering an interrupted sync did."""
    if repo and out is not None:
        raise UsageError("--repo and --out name two targets: give one")
    if repo:
        tree = checkout_tree()
        if tree is None:
            raise UsageError(
                "--repo writes a source checkout's matrices/, and compat does not run from one",
                hint="run it from an editable install of the repository (pip install -e .)",
            )
        return Target("repo", tree, tree), recover(tree)
    if out is not None:
        done = recover(out) if out.is_dir() else None
        seeded = (out / "curated").is_dir() or (out / "generated").is_dir()
        return Target("out", out, out if seeded else locate().root), done
    return Target("user", Store().root, locate().root), None


def write(
    target: Target,
    files: list[tuple[Path, str]],
    index_url: str,
    now: Optional[datetime] = None,
) -> tuple[str, DataInfo]:
    """Write the changed files (paths under target.base) to the target, every file or none,
    with DATA.toml's version and date moved on. Returns where it went and the new DATA.toml."""
    when = now or datetime.now(timezone.utc)
    today = when.date()
    old = read_info(target.base)
    if target.kind == "user":
        base = locate()
        info = DataInfo(
            version=sync_version(base.info.version, when.strftime("%Y%m%d%H%M%S")),
            synced=today,
            origin="sync",
            url=index_url,
            fetched=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            base=str(base.info.version or ""),
        )
        return _to_store(target, base, files, info), info
    info = replace(old, version=next_version(old.version, today), synced=today)
    texts = [(target.root / p.relative_to(target.base), t) for p, t in files]
    if target.base != target.root:  # --out into a new folder: the whole database, seeded
        given = {p for p, _ in texts}
        for src in sorted(target.base.rglob("*")):
            rel = src.relative_to(target.base)
            if src.is_file() and not any(part.startswith(".") for part in rel.parts):
                dst = target.root / rel
                if dst not in given and rel.as_posix() != DATA_FILE:
                    texts.append((dst, src.read_text(encoding="utf-8")))
    texts.append((target.root / DATA_FILE, info.to_toml()))
    target.root.mkdir(parents=True, exist_ok=True)
    commit(target.root, texts)
    return str(target.root), info


def _to_store(
    target: Target, base: DataSource, files: list[tuple[Path, str]], info: DataInfo
) -> str:
    store = Store(target.root)
    with store.lock():
        stage = store.stage()
        try:
            tree = stage / "tree"
            copy_tree(base.root, tree, skip=frozenset({DATA_FILE}))
            for path, text in [*files, (base.root / DATA_FILE, info.to_toml())]:
                dst = tree / path.relative_to(base.root)
                make_dirs(dst.parent)
                dst.write_text(text, encoding="utf-8", newline="\n")
                dst.chmod(FILE_MODE)
            name = store.publish(tree, str(info.version))
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    return str(store.root / "generations" / name)
