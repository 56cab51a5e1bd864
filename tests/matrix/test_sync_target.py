"""Where the sync writes (user folder by default, --out, --repo), --check, and kills at every
step of the switch: readers see the old data or the new, never a mix."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from compat.channel.info import read_info
from compat.channel.source import JOURNAL, Kind, locate
from compat.channel.store import Store
from compat.errors import DataError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_sync import fakeindex, serve_recorded

ROOT = Path(__file__).resolve().parents[2]
KILLER = Path(__file__).resolve().parent / "killsync.py"
PROJECTS = ["torch", "sgl-kernel"]


@pytest.fixture
def index() -> Any:
    with fakeindex.FakeIndex() as served:
        serve_recorded(served)
        yield served


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    monkeypatch.setenv("COMPAT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("COMPAT_MATRICES", raising=False)
    return {**os.environ}


def compat(
    args: list[str], env: dict[str, str], mode: str = "none", n: int = 0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(KILLER), mode, str(n), "--", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def sync_args(index: Any, *extra: str) -> list[str]:
    return [
        "matrix",
        "sync",
        *PROJECTS,
        "--no-builds",
        "-q",
        "--index-url",
        index.index_url,
        *extra,
    ]


def tree(root: Path) -> dict[str, str]:
    """Every database file under `root` (dotfiles left out) and its hash, the times records
    were read at left out (two runs read at different seconds)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(
            re.sub(rb"(?m)^read_at = .*$", b"", p.read_bytes())
        ).hexdigest()[:12]
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    }


def test_default_target_is_the_user_folder(index: Any, env: dict[str, str]) -> None:
    repo_before = tree(ROOT / "matrices")
    done = compat(sync_args(index, "--write"), env)
    assert done.returncode == 0, done.stderr
    assert "to the user folder" not in done.stdout and "wrote generated/" in done.stdout
    src = locate()
    assert src.kind is Kind.USER and src.info.origin == "sync"
    base = read_info(ROOT / "matrices").version
    assert base is not None and src.info.version is not None and src.info.version > base
    assert src.info.version.local and src.info.base == str(base)
    assert tree(ROOT / "matrices") == repo_before  # the installed data is never written
    check = compat(sync_args(index, "--check"), env)
    assert check.returncode == 0 and "nothing to change" in check.stdout, check.stderr


def test_check_exits_1_when_the_data_would_change(
    index: Any, env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "db"
    check = compat(sync_args(index, "--out", str(out), "--check"), env)
    assert check.returncode == 1 and "the data would change: generated/torch.toml" in check.stdout
    assert not out.exists()  # --check writes nothing
    assert compat(sync_args(index, "--out", str(out), "--write"), env).returncode == 0
    assert compat(sync_args(index, "--out", str(out), "--check"), env).returncode == 0
    # --out is a whole database, read back through COMPAT_MATRICES.
    shown = compat(["data", "show"], {**env, "COMPAT_MATRICES": str(out)})
    assert "COMPAT_MATRICES" in shown.stdout and "2026.12." in shown.stdout
    validate = compat(["matrix", "validate"], {**env, "COMPAT_MATRICES": str(out)})
    assert validate.returncode == 0, validate.stderr


def _expected(
    index: Any, env: dict[str, str], tmp_path: Path
) -> tuple[dict[str, str], dict[str, str]]:
    """The seeded folder before, and after one uninterrupted sync."""
    seed = tmp_path / "seed"
    shutil.copytree(ROOT / "matrices", seed)
    ref = tmp_path / "ref"
    shutil.copytree(seed, ref)
    assert compat(sync_args(index, "--out", str(ref), "--write"), env).returncode == 0
    return tree(seed), tree(ref)


def test_killed_at_every_step_of_a_folder_sync(
    index: Any, env: dict[str, str], tmp_path: Path
) -> None:
    old, new = _expected(index, env, tmp_path)
    assert old != new
    steps = 0
    for n in range(1, 40):
        out = tmp_path / f"out{n}"
        shutil.copytree(tmp_path / "seed", out)
        run = compat(sync_args(index, "--out", str(out), "--write"), env, "kill-at-rename", n)
        if run.returncode == 0:
            break  # no rename left to kill at
        assert run.returncode == -9, run.stderr
        steps += 1
        if (out / JOURNAL).exists():
            # Past the commit point: readers refuse the folder until the switch is completed.
            with pytest.raises(DataError, match="interrupted"):
                os.environ["COMPAT_MATRICES"] = str(out)
                try:
                    from compat import resources

                    resources.matrices_dir()
                finally:
                    del os.environ["COMPAT_MATRICES"]
        else:
            assert tree(out) == old  # before it: every old file as it was
        again = compat(sync_args(index, "--out", str(out), "--write"), env)
        assert again.returncode == 0, again.stderr
        assert tree(out) == new and not [p for p in out.rglob(".*") if p.name != ".git"]
    assert steps >= 4  # the staged files' renames, the journal's, and the journal itself


def test_killed_at_every_step_of_a_user_folder_sync(
    index: Any, env: dict[str, str], tmp_path: Path
) -> None:
    base = tree(ROOT / "matrices")
    for n in range(1, 40):
        home = tmp_path / f"home{n}"
        local = {**env, "XDG_DATA_HOME": str(home)}
        run = compat(sync_args(index, "--write"), local, "kill-at-rename", n)
        store = Store(home / "compat" / "data")
        current = store.current()
        if run.returncode == 0:
            assert current is not None
            break
        assert run.returncode == -9, run.stderr
        if current is not None:  # the pointer names a whole generation, or none is in use
            got = tree(current)
            assert (
                got.keys() == base.keys()
                and got["generated/torch.toml"] != base["generated/torch.toml"]
            )
        again = compat(sync_args(index, "--write"), local)
        assert again.returncode == 0, again.stderr
        assert not [p for p in store.root.iterdir() if p.name.startswith(".stage-")]
    else:
        pytest.fail("the sync never finished")


@pytest.mark.parametrize("target", ["user", "out"])
def test_ctrl_c_while_reading_exits_130_and_changes_nothing(
    index: Any, env: dict[str, str], tmp_path: Path, target: str
) -> None:
    out = tmp_path / "db"
    shutil.copytree(ROOT / "matrices", out)
    before = tree(out)
    extra = ["--out", str(out)] if target == "out" else []
    # A re-uploaded wheel (new sha256): its METADATA is read, and that read is interrupted.
    torch = fakeindex.load_json("torch")
    for f in torch["releases"]["2.11.0"]:
        f["digests"]["sha256"] = "e" * 64
    index.add_project("torch", torch)
    run = compat(sync_args(index, "--write", *extra), env, "int-at-read")
    assert run.returncode == 130, (run.returncode, run.stderr)
    assert "interrupted" in run.stderr
    assert tree(out) == before and not [p for p in out.rglob(".*")]
    assert Store().current() is None
