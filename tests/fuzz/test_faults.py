"""Fault injection: the sync killed at each step, concurrent runs on one cache, read-only and
corrupted caches, hung and flooding nvidia-smi and NVML, through the real CLI."""

from __future__ import annotations

import concurrent.futures
import copy
import ctypes
import importlib.util
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fake_nvml_library
from tests.fuzz import generators as gen
from tests.fuzz.harness import Outcome, run_cli

ROOT = Path(__file__).resolve().parents[2]
PYPI = ROOT / "tests" / "assets" / "pypi"
GENERATED = ROOT / "matrices" / "generated"
SNAP = str(ROOT / "tests" / "assets" / "envs" / "h100-torch2.11-cu130.json")
_spec = importlib.util.spec_from_file_location("fuzz_fakeindex", PYPI / "fakeindex.py")
assert _spec is not None and _spec.loader is not None
fakeindex: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fakeindex)

# Two projects, no framework (a framework's sync also reads its launch flags). The "old" folder
# is what a sync against the index without torch 2.11.0 wrote; the "new" one adds it.
PROJECTS = ("torch", "sgl-kernel")
HELD_BACK = ("torch", "2.11.0")

# Runs `compat` with each step of a write to the --out folder counted: a staged file created
# (`.NAME.compat-new`), an fsync, a rename (the journal's own is the first), the journal's
# removal, a request to the index (before and after each). At the step named by FUZZ_KILL_AT
# ("rename:2:after") the process sends itself FUZZ_KILL_SIG.
BOOT = r"""
import os, sys, threading
OUT = os.path.realpath(os.environ["FUZZ_OUT"])
AT = os.environ.get("FUZZ_KILL_AT", "")
SIG = int(os.environ.get("FUZZ_KILL_SIG", "9"))
seen = {}
lock = threading.Lock()
staged_fds = set()

def step(kind, when, n=None):
    with lock:
        if n is None:
            seen[kind] = seen.get(kind, 0) + 1
            n = seen[kind]
    name = f"{kind}:{n}:{when}"
    with lock, open(os.environ["FUZZ_STEPS"], "a") as fh:
        fh.write(name + "\n")
    if name == AT:
        os.kill(os.getpid(), SIG)
    return n

def ours(path):
    try:
        return os.path.realpath(os.fspath(path)).startswith(OUT)
    except (TypeError, ValueError):
        return False

real_open, real_replace, real_fsync, real_unlink = os.open, os.replace, os.fsync, os.unlink

def open_(path, flags, *a, **kw):
    mine = isinstance(path, (str, bytes, os.PathLike)) and ours(path) and (flags & os.O_CREAT)
    if not mine:
        return real_open(path, flags, *a, **kw)
    n = step("create", "before")
    fd = real_open(path, flags, *a, **kw)
    staged_fds.add(fd)
    step("create", "after", n)
    return fd

def replace(src, dst, *a, **kw):
    if not ours(dst):
        return real_replace(src, dst, *a, **kw)
    n = step("rename", "before")
    real_replace(src, dst, *a, **kw)
    step("rename", "after", n)

def fsync(fd):
    if fd not in staged_fds:
        return real_fsync(fd)
    n = step("fsync", "before")
    real_fsync(fd)
    step("fsync", "after", n)

def unlink(path, *a, **kw):
    if not (ours(path) and os.path.basename(os.fspath(path)).startswith(".sync-journal")):
        return real_unlink(path, *a, **kw)
    n = step("unlink-journal", "before")
    real_unlink(path, *a, **kw)
    step("unlink-journal", "after", n)

os.open, os.replace, os.fsync, os.unlink = open_, replace, fsync, unlink
import httpx
real_send = httpx.Client.send
def send(self, *a, **kw):
    n = step("request", "before")
    r = real_send(self, *a, **kw)
    step("request", "after", n)
    return r
httpx.Client.send = send
from compat.cli import main
sys.argv = ["compat", *sys.argv[1:]]
main()
"""


def _wheel(metadata: bytes) -> bytes:
    """A small wheel whose METADATA the sync reads through HTTP range requests."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("pkg/__init__.py", b"")
        archive.writestr("pkg-1.0.dist-info/METADATA", metadata)
        archive.writestr("pkg-1.0.dist-info/RECORD", b"")
    return out.getvalue()


def _serve(index: Any, hold_back: bool = False) -> None:
    """torch answers PEP 658 .metadata files; sgl-kernel's METADATA needs range reads; the
    build facts range-read every wheel. With `hold_back`, torch 2.11.0 is not on the index."""
    for name in PROJECTS:
        data = copy.deepcopy(fakeindex.load_json(name))
        if hold_back and name == HELD_BACK[0]:
            data["releases"].pop(HELD_BACK[1], None)
        index.add_project(name, data)
        for files in data["releases"].values():
            for f in files:
                if not (PYPI / f"{f['filename']}.metadata").is_file():
                    continue
                meta = fakeindex.load_metadata(f["filename"])
                if name == "torch":
                    index.metadata[f["filename"]] = meta
                index.blobs[f["filename"]] = _wheel(meta)


@pytest.fixture(scope="module")
def index() -> Any:
    pytest.importorskip("httpx")
    with fakeindex.FakeIndex() as served:
        _serve(served)
        yield served


@pytest.fixture(scope="module")
def old_index() -> Any:
    pytest.importorskip("httpx")
    with fakeindex.FakeIndex() as served:
        _serve(served, hold_back=True)
        yield served


def _sync(
    index: Any, out: Path, cache: Path, kill_at: str = "", sig: int = 9, timeout: float = 120
) -> tuple[int, list[str], str]:
    steps = out.parent / f"steps-{out.name}.txt"
    steps.unlink(missing_ok=True)
    env = _env(
        FUZZ_OUT=str(out),
        FUZZ_KILL_AT=kill_at,
        FUZZ_KILL_SIG=str(sig),
        FUZZ_STEPS=str(steps),
    )
    argv = [sys.executable, "-c", BOOT, "matrix", "sync", *PROJECTS, "--write", "-q"]
    argv += ["--out", str(out), "--cache-dir", str(cache), "--index-url", index.index_url]
    proc = subprocess.run(
        argv, env=env, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
    )
    taken = steps.read_text().split() if steps.exists() else []
    return proc.returncode, taken, proc.stderr.decode("utf-8", "replace")


_STAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def _state(out: Path) -> dict[str, bytes]:
    """Every file of the folder (the journal and staged files included), read times masked (a
    record says when it was read, to the second)."""
    return {
        p.relative_to(out).as_posix(): _STAMP.sub(b"<time>", p.read_bytes())
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


def _leftovers(out: Path) -> list[str]:
    return sorted(
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.name.endswith((".compat-new", ".tmp")) or p.name.startswith(".sync-journal")
    )


@pytest.fixture(scope="module")
def sync_states(
    index: Any, old_index: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, bytes], dict[str, bytes], list[str]]:
    """The old folder (synced without torch 2.11.0), the new state a sync over it writes, and
    the steps that sync takes."""
    base = tmp_path_factory.mktemp("sync-states")
    old = base / "old"
    rc, _, err = _sync(old_index, old, base / "cache-old")
    assert rc == 0, err
    shutil.copytree(old, base / "work", symlinks=True)
    rc, steps, err = _sync(index, base / "work", base / "cache")
    assert rc == 0, err
    old_state, new_state = _state(old), _state(base / "work")
    changed = sorted(k for k in new_state if old_state.get(k) != new_state[k])
    assert len(changed) >= 2, changed  # "every file or none" needs more than one file
    return old, old_state, new_state, steps


# Steps of a commit: staged files created and synced, the journal renamed into place (rename 1,
# the commit point), the renames of the staged files, the journal removed.
WRITE_STEPS = [
    "create:1:before",
    "create:1:after",
    "fsync:1:after",
    "fsync:2:after",
    "rename:1:before",
    "rename:1:after",
    "rename:2:after",
    "rename:3:before",
    "unlink-journal:1:before",
    "unlink-journal:1:after",
]
FETCH_STEPS = ["request:1:before", "request:2:after"]
SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
EXITS = {signal.SIGKILL: -9, signal.SIGTERM: 143, signal.SIGINT: 130}


def _check_kill(index: Any, states: Any, tmp: Path, at: str, sig: signal.Signals) -> list[str]:
    """What is wrong after a sync killed at `at` with `sig`, a read of the folder, and the
    sync run again (empty: nothing)."""
    old, old_state, new_state, _ = states
    out = tmp / "out"
    shutil.copytree(old, out, symlinks=True)
    rc, steps, err = _sync(index, out, tmp / "cache", at, int(sig))
    assert at in steps, f"the sync never reached {at}: {steps}"
    problems = []
    if "Traceback" in err:
        problems.append("a traceback on stderr")
    if sig is not signal.SIGKILL and rc != EXITS[sig]:
        problems.append(f"killed by {sig.name}, but exit {rc} (expected {EXITS[sig]})")
    state = _state(out)
    journal = any(k.startswith(".sync-journal") for k in state)
    if not journal:
        plain = {k: v for k, v in state.items() if not k.endswith((".compat-new", ".tmp"))}
        if plain not in (old_state, new_state):
            mixed = sorted(k for k in plain if plain[k] == new_state.get(k) != old_state.get(k))
            problems.append(f"a mixed set of files without a journal: {mixed} new")
    if sig is not signal.SIGKILL and not journal and _leftovers(out):
        problems.append(f"left behind by a {sig.name} the sync handles: {_leftovers(out)}")
    # A reader takes the old data, the new data, or refuses the folder; never a mix.
    read = run_cli(CHECK, env=_env(COMPAT_MATRICES=str(out), COMPAT_CACHE_DIR=str(tmp / "c")))
    if read.outcome not in (Outcome.OK, Outcome.CLEAN_ERROR):
        problems.append(f"reading the folder: {read.short()}")
    if journal and read.outcome is not Outcome.CLEAN_ERROR:
        problems.append("a half-switched folder (journal present) was read as a database")
    # The next sync completes or rolls back, then writes the new state.
    rc2, _, err2 = _sync(index, out, tmp / "cache")
    if rc2 != 0:
        problems.append(f"the next sync exits {rc2}: {err2[-300:]}")
    elif _state(out) != new_state:
        problems.append(f"after the next sync: {sorted(set(_state(out)) ^ set(new_state))[:5]}")
    return problems


def _kill_params() -> list[Any]:
    out = []
    for sig in SIGNALS:
        for at in WRITE_STEPS + FETCH_STEPS:
            out.append(pytest.param(sig, at, id=f"{sig.name}-{at}"))
    return out


@pytest.mark.fuzz
@pytest.mark.parametrize(("sig", "at"), _kill_params())
def test_sync_killed_at_each_step(
    index: Any, sync_states: Any, tmp_path: Path, sig: signal.Signals, at: str
) -> None:
    if at not in sync_states[3]:
        pytest.fail(f"an uninterrupted sync never takes step {at}: {sync_states[3]}")
    assert _check_kill(index, sync_states, tmp_path, at, sig) == []


def test_sync_killed_between_renames_is_completed_by_the_next(
    index: Any, sync_states: Any, tmp_path: Path
) -> None:
    assert _check_kill(index, sync_states, tmp_path, "rename:2:after", signal.SIGKILL) == []


def test_sync_interrupted_while_staging_exits_130_and_cleans_up(
    index: Any, sync_states: Any, tmp_path: Path
) -> None:
    assert _check_kill(index, sync_states, tmp_path, "fsync:1:after", signal.SIGINT) == []


def test_sync_keeps_files_readable_by_others(sync_states: Any) -> None:
    old, _, _, _ = sync_states
    modes = {
        p.relative_to(old).as_posix(): oct(p.stat().st_mode & 0o777) for p in old.rglob("*.toml")
    }
    assert modes and {m for m in modes.values()} == {"0o644"}, modes


@pytest.mark.fuzz
def test_concurrent_syncs_on_one_cache_and_folder(
    index: Any, sync_states: Any, tmp_path: Path
) -> None:
    old, _, new_state, _ = sync_states
    out, cache = tmp_path / "out", tmp_path / "cache"
    shutil.copytree(old, out, symlinks=True)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _i: _sync(index, out, cache), range(4)))
    assert [rc for rc, _, _ in runs] == [0] * 4, [err[-500:] for _, _, err in runs]
    # Each writer that found changes counts a new data version: only that may differ.
    serial = re.compile(rb'version = "[0-9.]+"')
    got, want = _state(out), new_state
    assert {k: serial.sub(b"", v) for k, v in got.items()} == {
        k: serial.sub(b"", v) for k, v in want.items()
    }
    assert not _leftovers(out)
    assert not list(cache.rglob("*.tmp"))


# --------------------------------------------------------------------------------------------
# The data cache (content-keyed JSON copies of the TOML files)
# --------------------------------------------------------------------------------------------

CHECK = ("check", "--from", SNAP, "--format", "json", "--", "vllm", "serve", "m", "-tp", "2")


def _report(stdout: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(stdout)
    return {k: v for k, v in doc.items() if "created" not in k and "time" not in k}


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # The model `m` is looked up in the HF cache, whose path the report names: keep it fixed.
    env["HF_HUB_CACHE"] = "/nonexistent/hf-hub"
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def clean_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cache = tmp_path_factory.mktemp("clean-cache")
    res = run_cli(CHECK, env=_env(COMPAT_CACHE_DIR=str(cache)))
    assert res.outcome is Outcome.OK, res.short()
    return _report(res.stdout)


def test_concurrent_checks_share_one_cache(tmp_path: Path, clean_report: dict[str, Any]) -> None:
    cache = tmp_path / "cache"
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(
            pool.map(
                lambda _i: run_cli(CHECK, env=_env(COMPAT_CACHE_DIR=str(cache)), timeout=60),
                range(6),
            )
        )
    assert [r.outcome for r in results] == [Outcome.OK] * 6, [r.short() for r in results]
    assert all(_report(r.stdout) == clean_report for r in results)
    entries = sorted((cache / "index").iterdir())
    assert entries and not [p.name for p in entries if not p.name.endswith(".json")]
    assert all(isinstance(json.loads(p.read_bytes().partition(b"\n")[2]), dict) for p in entries)


def _drop_dac() -> None:
    """Root reads and writes past file modes; without these capabilities a mode of 0555 binds it
    as it binds any user (the bounding set applies from the exec on)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP


def _run_ro(args: tuple[str, ...], cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "compat", *args],
        env=_env(COMPAT_CACHE_DIR=str(cache)),
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_drop_dac if os.geteuid() == 0 else None,
        check=False,
    )


@pytest.mark.parametrize("populated", [False, True], ids=["empty", "populated"])
def test_read_only_cache_gives_the_same_answer(
    tmp_path: Path, clean_report: dict[str, Any], populated: bool
) -> None:
    cache = tmp_path / "cache"
    if populated:
        res = run_cli(CHECK, env=_env(COMPAT_CACHE_DIR=str(cache)))
        assert res.outcome is Outcome.OK
    (cache / "index").mkdir(parents=True, exist_ok=True)
    for p in [cache, cache / "index", *(cache / "index").iterdir()]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        proc = _run_ro(CHECK, cache)
        probe = _run_ro(("matrix", "validate"), cache)
    finally:
        for p in [cache, cache / "index"]:
            p.chmod(0o755)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert _report(proc.stdout) == clean_report
    assert probe.returncode == 0, probe.stderr[-2000:]


CORRUPT = {
    "list": b"[]",
    "number": b"5",
    "empty-object": b"{}",
    "wrong-shape": b'{"releases": 5, "meta": [1], "gpu": "x", "toolkit": {"a": null}}',
    "truncated": b'{"releases": {"2.7.1": {',
    "not-utf8": b'{"x": "\xff"}',
}


def _corrupt_params() -> list[Any]:
    # Each entry carries a digest of its JSON: any of these fails it and is rewritten.
    out = []
    for k in sorted(CORRUPT):
        marks: list[Any] = []
        if k not in ("wrong-shape", "truncated"):
            marks.append(pytest.mark.fuzz)  # the default run keeps one of each kind
        out.append(pytest.param(k, id=k, marks=marks))
    return out


@pytest.mark.parametrize("kind", _corrupt_params())
def test_corrupted_cache_entries_are_ignored_and_repaired(
    tmp_path: Path, clean_report: dict[str, Any], kind: str
) -> None:
    cache = tmp_path / "cache"
    first = run_cli(CHECK, env=_env(COMPAT_CACHE_DIR=str(cache)))
    assert first.outcome is Outcome.OK
    entries = sorted((cache / "index").iterdir())
    for p in entries:
        p.write_bytes(CORRUPT[kind])
    for attempt in range(2):
        res = run_cli(CHECK, env=_env(COMPAT_CACHE_DIR=str(cache)))
        assert res.outcome is Outcome.OK, f"run {attempt + 1}: {res.short()}"
        assert _report(res.stdout) == clean_report
    # repaired: each entry is again a header line and a JSON object
    assert all(
        isinstance(json.loads(p.read_bytes().partition(b"\n")[2]), dict)
        and p.read_bytes() != CORRUPT[kind]
        for p in entries
    )


# --------------------------------------------------------------------------------------------
# nvidia-smi and NVML that hang, flood or crash: `compat env` stays bounded
# --------------------------------------------------------------------------------------------


def _fake_smi(tmp_path: Path, script: str) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text(script)
    smi.chmod(0o755)
    # A missing NVML library makes the probe fall back to nvidia-smi.
    return _env(
        PATH=f"{bin_dir}:{os.environ.get('PATH', '')}", COMPAT_NVML_LIB=str(tmp_path / "none.so")
    )


# nvidia-smi scripts the current code does not survive (none since bounded probe children).
SMI_KNOWN: dict[str, str] = {}


def _smi_params() -> list[Any]:
    return [
        pytest.param(
            script,
            id=name,
            marks=[pytest.mark.xfail(strict=True, reason=SMI_KNOWN[name])]
            if name in SMI_KNOWN
            else [],
        )
        for name, script in gen.SMI_SCRIPTS
    ]


@pytest.mark.fuzz
@pytest.mark.parametrize("script", _smi_params())
def test_env_with_a_hostile_nvidia_smi(tmp_path: Path, script: str) -> None:
    res = run_cli(("env", "--json"), env=_fake_smi(tmp_path, script), timeout=10)
    assert res.outcome in (Outcome.OK, Outcome.CLEAN_ERROR), res.short()


@pytest.fixture(scope="module")
def fake_nvml(tmp_path_factory: pytest.TempPathFactory) -> str:
    return fake_nvml_library(
        tmp_path_factory, ROOT / "tests" / "assets" / "fuzz" / "fake_nvml_fuzz.c"
    )


@pytest.mark.fuzz
@pytest.mark.parametrize(
    "mode",
    [
        "ok",
        "hang",
        "crash",
        "initfail",
        "manydev",  # a million devices: more than the probe reads (compat.probe.nvml.MAX_DEVICES)
        "junk",
        "hugemem",
        "badcc",
        "slow",
    ],
)
def test_env_with_a_hostile_nvml(fake_nvml: str, tmp_path: Path, mode: str) -> None:
    env = _env(COMPAT_NVML_LIB=fake_nvml, FAKE_NVML_MODE=mode)
    env["PATH"] = "/usr/bin:/bin"  # no nvidia-smi to fall back on
    started = time.monotonic()
    res = run_cli(("env", "--json"), env=env, timeout=10)
    assert res.outcome in (Outcome.OK, Outcome.CLEAN_ERROR), res.short()
    assert time.monotonic() - started < 10
