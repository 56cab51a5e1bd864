"""The data channel: compat-data releases N and N+1 on a local index, `compat data update`,
where the data in use comes from, kills mid-way, and who can read what was written."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from compat.channel.info import DataInfo, next_version, read_info, sync_version
from compat.channel.netconf import net_config
from compat.channel.source import Kind, locate
from compat.channel.store import Store
from compat.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datachannel import REPO, SimpleIndex, build_versions

N, N1 = "2030.1.1", "2030.1.2"
FREEZE = REPO / "tests" / "assets" / "freeze" / "h100-image-freeze.txt"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """compat-data N (the repository's data) and N+1 (COMPAT-0401 there named COMPAT-0991)."""
    return build_versions(tmp_path_factory.mktemp("data"), [N, N1])


@pytest.fixture
def index() -> Iterator[SimpleIndex]:
    with SimpleIndex() as served:
        yield served


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user data folder of this test alone; no pip configuration or index from outside."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "COMPAT_MATRICES", "PIP_CERT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "share" / "compat" / "data"


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def advisories_found(capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], set[str]]:
    code, out, err = run_main(["check", "--from", str(FREEZE), "--format", "json"], capsys)
    assert code in (0, 1), err
    doc = json.loads(out)
    return doc["data"], {f["advisory"] for f in doc["findings"] if f.get("advisory")}


def test_update_picks_the_newest_and_verifies_it(
    wheels: dict[str, Path], index: SimpleIndex, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, found = advisories_found(capsys)
    assert data["source"] == "source tree" and "COMPAT-0401" in found and "COMPAT-0991" not in found
    index.publish(wheels[N])
    index.publish(wheels[N1])
    code, out, err = run_main(["data", "update", "--index-url", index.url, "-q"], capsys)
    assert code == 0, err
    assert f"-> {N1}" in out and "verified" in out
    assert any(p.endswith(wheels[N1].name) for p in index.requests)
    assert not any(p.endswith(wheels[N].name) for p in index.requests)  # never downloaded

    src = locate()
    assert src.kind is Kind.USER and str(src.info.version) == N1
    info = read_info(src.root)
    assert info.origin == "compat-data" and info.sha256 == index.hashes[wheels[N1].name]
    data, found = advisories_found(capsys)
    assert data["source"] == "user folder" and data["version"] == N1
    assert "COMPAT-0991" in found and "COMPAT-0401" not in found  # the check reads N+1

    # Again: nothing newer, nothing fetched.
    before = len(index.requests)
    code, out, _ = run_main(["data", "update", "--index-url", index.url, "-q"], capsys)
    assert code == 0 and out.startswith("up to date") and f"newest on the index: {N1}" in out
    assert len(index.requests) == before + 1  # the index page only


def test_update_refuses_a_wheel_whose_hash_differs(
    wheels: dict[str, Path], index: SimpleIndex, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index.publish(wheels[N1], sha256="0" * 64)
    code, _, err = run_main(["data", "update", "--index-url", index.url], capsys)
    assert code == 3 and "does not match the index's" in err
    assert Store(home).current() is None and locate().kind is Kind.SOURCE
    assert [p.name for p in home.iterdir()] == [".lock"]  # no stage left behind


def test_newer_installed_data_wins_over_an_older_user_folder(
    wheels: dict[str, Path],
    index: SimpleIndex,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    index.publish(wheels[N])
    assert run_main(["data", "update", "--index-url", index.url, "-q"], capsys)[0] == 0
    assert str(locate().info.version) == N
    # The source tree at a later version (a compat upgrade with newer data) takes over again.
    import compat.channel.source as source

    newer = DataInfo(version=next_version(Version(N1), date(2030, 1, 3)))
    monkeypatch.setattr(
        source, "_info", lambda root: newer if root.name == "matrices" else read_info(root)
    )
    source._memo.clear()
    assert locate().kind is Kind.SOURCE
    source._memo.clear()


def test_offline_touches_no_network(
    index: SimpleIndex, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_main(["data", "update", "--offline", "--index-url", index.url], capsys)
    assert code == 0 and out.startswith("offline:") and index.requests == []


def test_the_index_comes_from_pip_settings(
    home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://mirror.example/simple\ncert = /etc/ca.pem\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    got = net_config()
    assert got.indexes == ("https://mirror.example/simple",) and got.verify == "/etc/ca.pem"
    monkeypatch.setenv("PIP_INDEX_URL", "https://env.example/simple/")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "https://extra.example/simple")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/x.pem")
    got = net_config()
    assert got.indexes == ("https://env.example/simple", "https://extra.example/simple")
    assert got.origin == "PIP_INDEX_URL" and got.verify == "/etc/ca.pem"  # pip's cert first
    assert net_config("https://cli.example/simple").indexes == ("https://cli.example/simple",)


def test_versions_order_published_and_synced_data() -> None:
    assert next_version(Version("2026.12.1"), date(2026, 12, 5)) == Version("2026.12.5")
    assert next_version(Version("2026.12.5"), date(2026, 12, 5)) == Version("2026.12.5.1")
    assert next_version(Version("2026.12.5.1"), date(2026, 12, 5)) == Version("2026.12.5.2")
    synced = sync_version(Version("2026.12.5"), "20261207101500")
    assert Version("2026.12.5") < synced < Version("2026.12.6")
    assert synced < sync_version(Version("2026.12.5"), "20261207101501")


# -- kills mid-way -----------------------------------------------------------------------------


def _update_process(index: SimpleIndex, home: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "XDG_DATA_HOME": str(home.parent.parent), "PIP_CONFIG_FILE": os.devnull}
    return subprocess.Popen(
        [sys.executable, "-m", "compat", "data", "update", "--index-url", index.url, "-q"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for_bytes(
    index: SimpleIndex, name: str, at_least: int, proc: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 60
    while index.sent.get(name, 0) < at_least:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_a_killed_download_leaves_the_previous_data(
    wheels: dict[str, Path],
    index: SimpleIndex,
    home: Path,
    how: signal.Signals,
    capsys: pytest.CaptureFixture[str],
) -> None:
    index.publish(wheels[N])
    assert run_main(["data", "update", "--index-url", index.url, "-q"], capsys)[0] == 0
    before = Store(home).current_name()
    index.publish(wheels[N1])
    index.delay[wheels[N1].name] = 0.05
    proc = _update_process(index, home)
    _wait_for_bytes(index, wheels[N1].name, 64 * 1024, proc)
    proc.send_signal(how)
    proc.communicate(timeout=60)
    expected = {signal.SIGKILL: -9, signal.SIGTERM: 143, signal.SIGINT: 130}[how]
    assert proc.returncode == expected
    assert Store(home).current_name() == before and str(locate().info.version) == N
    leftovers = [p.name for p in home.iterdir() if p.name.startswith(".stage-")]
    # A clean stop removes its stage folder; SIGKILL cannot, and the next writer does.
    assert leftovers == ([] if how != signal.SIGKILL else leftovers) and (
        how == signal.SIGKILL
    ) == bool(leftovers)
    index.delay.clear()
    assert run_main(["data", "update", "--index-url", index.url, "-q"], capsys)[0] == 0
    assert str(locate().info.version) == N1
    assert not [p for p in home.iterdir() if p.name.startswith(".stage-")]
    # The generation replaced is kept (a process may still read it), older ones are not.
    assert sorted(Store(home).generations()) == sorted(
        {before or "", Store(home).current_name() or ""}
    )


# -- who can read what was written -------------------------------------------------------------


def _modes(root: Path) -> set[tuple[str, int]]:
    return {
        ("d" if p.is_dir() else "f", stat.S_IMODE(p.stat().st_mode))
        for p in [root, *root.rglob("*")]
        if not p.name.startswith(".")
    }


def test_what_is_written_is_readable_by_everyone_whatever_the_umask(
    wheels: dict[str, Path], index: SimpleIndex, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index.publish(wheels[N1])
    old = os.umask(0o077)
    try:
        assert run_main(["data", "update", "--index-url", index.url, "-q"], capsys)[0] == 0
    finally:
        os.umask(old)
    assert _modes(home) == {("d", 0o755), ("f", 0o644)}


# -- end to end: a fresh clone installed read-only, updated from the local index ----------------


def _as(user: int) -> Any:
    def drop() -> None:
        os.setgid(user)
        os.setuid(user)

    return drop


def _snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(root)): (
            stat.S_IMODE(p.stat().st_mode),
            p.read_bytes() if p.is_file() else b"",
        )
        for p in sorted(root.rglob("*"))
        if "__pycache__" not in p.parts
    }


@pytest.mark.slow
def test_fresh_clone_install_update_check(wheels: dict[str, Path], index: SimpleIndex) -> None:
    """git clone, build and install compat into a read-only target, `compat data update` against
    the local index, and `compat check` reads the new data. Run as root (as CI runs), the checks
    and a second update run as `nobody`, so the read-only site-packages and the reading of
    root's data folder by another user are real, not assumed."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    import shutil
    import tempfile

    other = 65534 if os.geteuid() == 0 else None
    top = Path(tempfile.mkdtemp(prefix="compat-e2e-"))
    try:
        top.chmod(0o755)
        clone = top / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        subprocess.run(
            [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(top / "dist")],
            cwd=clone,
            check=True,
            capture_output=True,
        )
        (wheel,) = (top / "dist").glob("compat-*.whl")
        site = top / "site"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--no-index",
                "--target",
                str(site),
                str(wheel),
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(["chmod", "-R", "a-w", str(site)], check=True)
        installed = _snapshot(site)
        index.publish(wheels[N])
        index.publish(wheels[N1])
        home = top / "home"
        home.mkdir(mode=0o755)
        base_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "COMPAT_"))},
            "PYTHONPATH": str(site),
            "HOME": str(home),
            "PIP_CONFIG_FILE": os.devnull,
            "XDG_DATA_HOME": str(home / "share"),
            "XDG_CACHE_HOME": str(home / "cache"),
        }

        def run(
            args: list[str], user: int | None = None, **extra: str
        ) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "compat", *args],
                env={**base_env, **extra},
                cwd=top,
                capture_output=True,
                text=True,
                timeout=120,
                preexec_fn=_as(user) if user is not None else None,
            )

        def check(user: int | None = None, **extra: str) -> tuple[dict[str, Any], set[str]]:
            done = run(["check", "--from", str(FREEZE), "--format", "json"], user, **extra)
            assert done.returncode in (0, 1), done.stderr
            doc = json.loads(done.stdout)
            return doc["data"], {f["advisory"] for f in doc["findings"] if f.get("advisory")}

        where = run(["data", "show", "--json"])
        assert json.loads(where.stdout)["in_use"]["path"].startswith(str(site)), where.stderr
        data, found = check()
        assert data["source"] == "bundled with compat" and "COMPAT-0401" in found

        old = os.umask(0o077)  # root's umask does not decide who can read the data
        try:
            done = run(["data", "update", "--index-url", index.url])
        finally:
            os.umask(old)
        assert done.returncode == 0 and f"-> {N1}" in done.stdout, done.stderr
        data, found = check()
        assert data["source"] == "user folder" and data["version"] == N1
        assert "COMPAT-0991" in found and "COMPAT-0401" not in found
        assert _snapshot(site) == installed  # nothing under site-packages was written

        if other is None:
            return
        # Another user reads every folder and file root's update wrote ...
        data_dir = home / "share" / "compat" / "data"
        files = [p for p in data_dir.rglob("*") if p.is_file() and not p.name.startswith(".")]
        read = subprocess.run(
            ["find", str(data_dir), "-type", "f", "!", "-name", ".*", "-exec", "cat", "{}", "+"],
            capture_output=True,
            preexec_fn=_as(other),
        )
        assert read.returncode == 0, read.stderr
        assert len(read.stdout) == sum(p.stat().st_size for p in files) > 1_000_000
        # ... and, where that user may run this interpreter, uses it and updates into its own
        # folder with a site-packages it cannot write.
        try:
            subprocess.run([sys.executable, "-c", "pass"], preexec_fn=_as(other), check=True)
        except (OSError, subprocess.CalledProcessError):
            return  # the interpreter lives where that user cannot reach (e.g. under /root)
        data, found = check(other)
        assert data["source"] == "user folder" and data["version"] == N1 and "COMPAT-0991" in found
        own = top / "other"
        own.mkdir(mode=0o755)
        os.chown(own, other, other)
        done = run(
            ["data", "update", "--index-url", index.url],
            other,
            HOME=str(own),
            XDG_DATA_HOME=str(own / "share"),
        )
        assert done.returncode == 0 and f"-> {N1}" in done.stdout, done.stderr
        assert _snapshot(site) == installed
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(top)], check=False)
        shutil.rmtree(top, ignore_errors=True)


def test_old_data_adds_one_note_naming_the_update(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    tree = tmp_path / "db"
    shutil.copytree(REPO / "matrices", tree)
    (tree / "DATA.toml").write_text(DataInfo(Version("2026.1.1"), date(2026, 1, 1)).to_toml())
    monkeypatch.setenv("COMPAT_MATRICES", str(tree))
    code, out, err = run_main(["check", "--from", str(FREEZE)], capsys)
    assert code in (0, 1) and err.count("compat data update") == 1 and "synced" in err
    assert "compat data update" not in out  # the report itself stays as it was
    code, out, err = run_main(["check", "--from", str(FREEZE), "--format", "json"], capsys)
    data = json.loads(out)["data"]
    assert data["source"] == "COMPAT_MATRICES" and data["stale"] and data["version"] == "2026.1.1"
    code, out, _ = run_main(["env", "--no-host"], capsys)
    assert (
        code == 0 and f"Data          2026.1.1, synced 2026-01-01 (COMPAT_MATRICES: {tree})" in out
    )


def test_progress_is_one_line_on_a_terminal_and_lines_in_a_log() -> None:
    import io

    from compat.matrix.progress import Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Tty()
    with Progress(term, interval=0.01) as bar:
        bar.watch(lambda: (12, 3 * 2**20))
        bar.add(4)
        bar.step()
        bar.stage("vllm", 1, 2)
        time.sleep(0.1)
        bar("vllm: done")
    text = term.getvalue()
    assert "[1/2] 1/4 reads 12 requests, 3.0 MiB" in text and "vllm" in text
    assert "\r" in text and text.count("\n") == 1  # the milestone alone ends a line
    log = io.StringIO()
    with Progress(log) as bar:
        bar.add(3)
        bar("torch: done")
        bar("vllm: done")
    assert log.getvalue() == "torch: done\nvllm: done\n"
