"""A repeat check answered from its record (compat.answers): replayed only while every input the
full check read is unchanged, and never when one differs, whichever it is."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from compat import answers
from compat.cli import main
from compat.models import Unknown
from compat.probe import hostread
from tests.conftest import make_dist

ROOT = Path(__file__).resolve().parents[1]
HUB = ROOT / "tests" / "assets" / "models" / "hub"
SERVE = ["vllm", "serve", "meta-llama/Meta-Llama-3-8B", "--max-model-len", "8192"]
TICK = 0.05  # longer than a coarse file clock's tick: a change is seen in the stat fields


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A site folder on the import path holding a vLLM whose torch pin is not the torch
    installed (a finding: exit 1), JIT caches with entries, and compat's cache in tmp_path."""
    site = tmp_path / "site"
    make_dist(site, "torch", "2.6.0")
    make_dist(site, "vllm", "0.10.1.1", requires=("torch==2.7.1",))
    make_dist(site, "rich", "13.0.0")
    (site / "torch" / "lib").mkdir(parents=True)
    (site / "torch" / "version.py").write_text("__version__ = '2.6.0+cu124'\ncuda = '12.4'\n")
    triton = tmp_path / "triton"
    (triton / "abc123").mkdir(parents=True)
    monkeypatch.setenv("TRITON_CACHE_DIR", str(triton))
    monkeypatch.setenv("COMPAT_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()  # as on any run but the first: made then, its folder changed
    monkeypatch.delenv(answers.OFF, raising=False)
    monkeypatch.syspath_prepend(str(site))
    # files this test writes are as new as the run: the racy guard is tested on its own
    monkeypatch.setattr(answers, "RACY_NS", 0)
    time.sleep(TICK)
    yield site


def replayed(argv: list[str]) -> Optional[tuple[str, str, int]]:
    """What a replay of `argv` prints and exits with (None: it runs in full)."""
    got = answers.replay(argv)
    return None if got is None else got[:3]


def full(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[str, str, int]:
    """The full check of `argv`, as the entry point runs it (keeping its answer)."""
    capsys.readouterr()
    answers.begin(argv)
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    got = capsys.readouterr()
    time.sleep(TICK)
    return got.out, got.err, code


def test_a_repeat_check_is_the_kept_answer(stack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, err, code = full(["check"], capsys)
    assert code == 1 and "vllm" in out
    assert replayed(["check"]) == (out, err, code)
    # another command line is another answer
    assert replayed(["check", "--format", "json"]) is None


def _edit_metadata_same_size_and_mtime(site: Path) -> None:
    meta = next(site.glob("torch-*.dist-info")) / "METADATA"
    st = meta.stat()
    meta.write_text(meta.read_text().replace("2.6.0", "2.7.1"))
    os.utime(meta, ns=(st.st_atime_ns, st.st_mtime_ns))  # only ctime tells


def _new_dist(site: Path) -> None:
    make_dist(site, "flashinfer-python", "0.2.5")


def _removed_dist(site: Path) -> None:
    shutil.rmtree(next(site.glob("rich-*.dist-info")))


def _direct_url(site: Path) -> None:
    (next(site.glob("vllm-*.dist-info")) / "direct_url.json").write_text('{"url": "file:///src"}')


def _torch_version_py(site: Path) -> None:
    (site / "torch" / "version.py").write_text("__version__ = '2.6.0+cu126'\ncuda = '12.6'\n")


def _torch_lib(site: Path) -> None:
    (site / "torch" / "lib" / "libtorch_cuda.so").write_bytes(b"")


def _cache_entry(site: Path) -> None:
    (Path(os.environ["TRITON_CACHE_DIR"]) / "3.3.1").mkdir()


def _cache_entry_mtime(site: Path) -> None:
    os.utime(Path(os.environ["TRITON_CACHE_DIR"]) / "abc123", (1, 1))


@pytest.mark.parametrize(
    "change",
    [
        _edit_metadata_same_size_and_mtime,
        _new_dist,
        _removed_dist,
        _direct_url,
        _torch_version_py,
        _torch_lib,
        _cache_entry,
        _cache_entry_mtime,
    ],
)
def test_a_changed_file_is_a_full_run(
    stack: Path, capsys: pytest.CaptureFixture[str], change: Any
) -> None:
    full(["check"], capsys)
    assert replayed(["check"]) is not None
    change(stack)
    assert replayed(["check"]) is None


def test_the_environment_the_day_and_the_host_are_inputs(
    stack: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    full(["check"], capsys)
    kept = replayed(["check"])
    assert kept is not None
    monkeypatch.setenv("PWD", "/elsewhere")  # the shell's bookkeeping is not an input
    assert replayed(["check"]) == kept
    for name in ("NCCL_P2P_DISABLE", "ANYTHING_AT_ALL"):
        monkeypatch.setenv(name, "1")
        assert replayed(["check"]) is None
        monkeypatch.delenv(name)
    assert replayed(["check"]) == kept

    real = hostread.read_host
    monkeypatch.setattr(hostread, "read_host", lambda: {**real(), "kmod": "580.65.06"})
    assert replayed(["check"]) is None
    monkeypatch.setattr(hostread, "read_host", real)

    day = time.strftime("%Y-%m-%d")
    monkeypatch.setattr(answers.time, "strftime", lambda fmt: "2031-01-01")
    assert day != "2031-01-01" and replayed(["check"]) is None
    monkeypatch.undo()


@pytest.mark.parametrize("linked", [False, True], ids=["folder", "linked-folder"])
def test_the_database_is_an_input(
    stack: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    linked: bool,
) -> None:
    """Every file of the database in use, through a linked folder too (the readers follow it)."""
    data = tmp_path / "matrices"
    shutil.copytree(ROOT / "matrices", data)
    advisories = data / "advisories"
    if linked:
        shutil.move(str(advisories), str(tmp_path / "advisories-real"))
        advisories.symlink_to(tmp_path / "advisories-real")
    monkeypatch.setenv("COMPAT_MATRICES", str(data))
    time.sleep(TICK)
    full(["check"], capsys)
    assert replayed(["check"]) is not None
    advisory = sorted(advisories.glob("*.toml"))[0]
    advisory.write_text(advisory.read_text() + "\n")
    assert replayed(["check"]) is None


def test_the_record_names_every_module_the_check_ran(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full(["check"], capsys)
    ran = {m.__file__ for name, m in sys.modules.items() if name.split(".")[0] == "compat"}
    assert ran <= _record_paths()
    assert "ANYTHING" not in json.dumps(_record())  # the environment is a digest, no value


def _record_file() -> Path:
    """The one record the test's run kept."""
    (path,) = (Path(os.environ["COMPAT_CACHE_DIR"]) / "answers").glob("*.json")
    return path


def _record() -> Any:
    return json.loads(_record_file().read_bytes())


def _record_paths() -> set[str]:
    return {path for path, _follow, _stamp in _record()["files"]}


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--from", str(ROOT / "tests" / "assets" / "freeze" / "300-lines.txt")],
        ["check", "--driver", "550"],
        ["check", "--deep"],  # its torch is a CUDA build whose arch list only torch can say
        ["check", "-o", "REPORT"],
        [
            "check",
            "--launch-file",
            str(ROOT / "tests" / "assets" / "launch" / "seed002-standalone.sh"),
        ],
    ],
    ids=["from", "driver", "deep-importing-torch", "output", "launch-file"],
)
def test_what_reads_more_than_it_can_watch_is_never_kept(
    stack: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    argv = [str(tmp_path / "r.txt") if a == "REPORT" else a for a in argv]
    full(argv, capsys)
    assert not (Path(os.environ["COMPAT_CACHE_DIR"]) / "answers").exists()
    assert replayed(argv) is None


def test_a_cache_too_large_to_watch_keeps_nothing(
    stack: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from compat.probe import live

    monkeypatch.setattr(live, "MAX_WATCHED_CACHE_ENTRIES", 0)
    full(["check"], capsys)
    assert replayed(["check"]) is None


def test_a_file_written_just_before_the_run_keeps_nothing(
    stack: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(answers, "RACY_NS", answers.RACY_NS.__class__(2_000_000_000))
    _new_dist(stack)  # within two seconds of the run: its stat fields could miss a next write
    full(["check"], capsys)
    assert replayed(["check"]) is None


def test_no_replay_switch(
    stack: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    full(["check"], capsys)
    monkeypatch.setenv(answers.OFF, "1")
    assert replayed(["check"]) is None
    assert full(["check"], capsys)[2] == 1 and not answers.recording()


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(p.read_bytes()[:100]),
        lambda p: p.write_text("[]"),
        lambda p: p.write_text(p.read_text().replace('"code": 1', '"code": "1"')),
        lambda p: p.write_text(p.read_text().replace('"code": 1', '"code": 300')),
        lambda p: p.write_text(p.read_text().replace('"files": [[', '"files": [7, [')),
        lambda p: p.write_text(
            p.read_text().replace('"host": {', '"host": [{').replace('}, "files"', '}], "files"')
        ),
        lambda p: (p.unlink(), os.mkfifo(p)),
        lambda p: (p.unlink(), p.mkdir()),
        lambda p: p.write_bytes(b"\xff" * 64),
    ],
)
def test_a_damaged_record_is_a_full_run(
    stack: Path, capsys: pytest.CaptureFixture[str], damage: Any
) -> None:
    full(["check"], capsys)
    record = _record_file()
    damage(record)
    assert replayed(["check"]) is None


def _program(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = ["compat", *(args or ("check",))]
    code = f"import sys\nsys.argv = {argv!r}\nfrom compat.entry import run\nrun()\n"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )


def _program_env(tmp_path: Path, site: Path) -> tuple[dict[str, str], Path, Path]:
    """The environment, cache folder and working folder of a program run on `site`, once what
    they hold is older than the racy window."""
    cache, work = tmp_path / "cache", tmp_path / "work"
    cache.mkdir()  # made beside the (absent) triton cache during a first run, it would be racy
    work.mkdir()  # the folder `python -c` puts on the path: not where caches go
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(site), str(ROOT), os.environ.get("PYTHONPATH", "")]),
        COMPAT_CACHE_DIR=str(cache),
        TRITON_CACHE_DIR=str(tmp_path / "triton"),
    )
    env.pop(answers.OFF, None)
    time.sleep(2.1)
    return env, cache, work


def test_the_program_replays_and_a_full_run_agrees(tmp_path: Path) -> None:
    """End to end, as the `compat` script runs: the second run is the record's answer (seen by
    a marker put into the record), the full run gives the same, and a change is seen."""
    site = tmp_path / "site"
    make_dist(site, "torch", "2.6.0")
    make_dist(site, "vllm", "0.10.1.1", requires=("torch==2.7.1",))
    env, cache, work = _program_env(tmp_path, site)
    first = _program(env, work)
    assert first.returncode == 1 and "vllm" in first.stdout
    (record,) = (cache / "answers").glob("*.json")
    doc = json.loads(record.read_bytes())
    doc["stdout"] = doc["stdout"].replace("compat check", "compat check (kept)")
    record.write_text(json.dumps(doc))
    second = _program(env, work)
    assert second.returncode == 1 and "(kept)" in second.stdout
    assert second.stdout.replace(" (kept)", "") == first.stdout and second.stderr == first.stderr
    fresh = _program({**env, answers.OFF: "1"}, work)
    assert (fresh.stdout, fresh.stderr, fresh.returncode) == (
        first.stdout,
        first.stderr,
        first.returncode,
    )
    time.sleep(TICK)
    meta = next(site.glob("torch-*.dist-info")) / "METADATA"
    meta.write_text(meta.read_text().replace("2.6.0", "2.7.1"))
    third = _program(env, work)
    assert "(kept)" not in third.stdout and third.stdout != first.stdout


TRACE = r"""
import json, os, sys
traced = {}
def note(kind, path):
    if isinstance(path, (str, bytes)) and path not in (b"", ""):
        traced.setdefault(os.path.abspath(os.fsdecode(path)), set()).add(kind)
def hook(event, args):
    if event == "open" and not isinstance(args[0], int):
        note("open", args[0])
    elif event in ("os.listdir", "os.scandir"):
        note("list", args[0] if args[0] is not None else ".")
for name in ("stat", "lstat", "access"):
    def wrap(path, *a, _real=getattr(os, name), _name=name, **k):
        if not isinstance(path, int):
            note(_name, path)
        return _real(path, *a, **k)
    setattr(os, name, wrap)
from compat import answers
kept = []
argv = json.loads(os.environ["ARGV"])
answers.keep = lambda out, err, code, watched, unused=(), then=None: kept.append(
    [os.path.abspath(p) for p, _follow in [*(watched or ()), *answers.argument_paths(argv)]]
    + [sys.executable])
from compat.cli import main
argv = json.loads(os.environ["ARGV"])
answers.begin(argv)
sys.addaudithook(hook)
try:
    main(argv)
except SystemExit:
    pass
modules = [m.__file__ for m in list(sys.modules.values()) if isinstance(getattr(m, "__file__", None), str)]
json.dump({"traced": {p: sorted(k) for p, k in traced.items()}, "watched": kept[0],
           "modules": modules, "prefix": sys.base_prefix,
           "pycache": sys.pycache_prefix or "\0"}, open(os.environ["TRACE_OUT"], "w"))
"""


@pytest.mark.parametrize(
    "argv",
    [["check"], ["env"], ["check", "--", *SERVE, "--config", "serve.yaml"], ["check", "--deep"]],
    ids=["check", "env", "launch", "deep"],
)
def test_the_record_watches_everything_a_full_run_reads(tmp_path: Path, argv: list[str]) -> None:
    """Every file and folder a full check opens, lists or stats is watched by its record, but
    the host's files (read again on every replay), compat's own caches (derived from watched
    files), the interpreter's installation and the modules it imports (watched by their files).
    A probe that reads something new fails here until `watched` names it."""
    site = tmp_path / "site"
    make_dist(site, "torch", "2.6.0")
    make_dist(site, "vllm", "0.10.1.1", requires=("torch==2.7.1",))
    make_dist(site, "sgl-kernel", "0.3.0")
    make_dist(site, "rich", "13.0.0")
    (site / "torch" / "lib").mkdir(parents=True)
    (site / "torch" / "version.py").write_text("__version__ = '2.6.0+cu124'\ncuda = '12.4'\n")
    (site / "sgl_kernel").mkdir()
    (site / "sgl_kernel" / "common_ops.abi3.so").write_bytes(b"\x7fELF" + bytes(60))
    record = "sgl_kernel/common_ops.abi3.so,sha256=x,1\nsgl_kernel/gone.so,,\n"
    next(site.glob("sgl_kernel-*.dist-info")).joinpath("RECORD").write_text(record)
    if "--deep" in argv:  # a CPU torch: no arch list to ask an imported torch for
        (site / "torch" / "version.py").write_text("__version__ = '2.6.0+cpu'\ncuda = None\n")
        (site / "torch" / "lib" / "libc10.so").write_bytes(b"\x7fELF" + bytes(60))
    triton = tmp_path / "triton"
    (triton / "3.3.1" / "kernels").mkdir(parents=True)
    (triton / "3.3.1" / "kernels" / "k.cubin").write_bytes(bytes(100))
    work = tmp_path / "work"
    work.mkdir()
    (work / "serve.yaml").write_text("gpu-memory-utilization: 0.9\n")
    shutil.copytree(HUB, tmp_path / "hub")
    out = tmp_path / "trace.json"
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(site), str(ROOT), os.environ.get("PYTHONPATH", "")]),
        COMPAT_CACHE_DIR=str(tmp_path / "cache"),
        TRITON_CACHE_DIR=str(triton),
        HF_HUB_CACHE=str(tmp_path / "hub"),
        TRACE_OUT=str(out),
        ARGV=json.dumps(argv),
    )
    subprocess.run(
        [sys.executable, "-c", TRACE],
        env=env,
        cwd=work,
        check=True,
        timeout=120,
        capture_output=True,
    )
    doc = json.loads(out.read_text())
    if "--" in argv:  # the launch's own inputs were read: the model's config, the YAML
        read = [p for p, kinds in doc["traced"].items() if "open" in kinds]
        assert any(p.endswith("config.json") and "models--meta-llama" in p for p in read)
        assert str(work / "serve.yaml") in read
    if "--deep" in argv:  # the objects its RECORD lists were read
        read = [p for p, kinds in doc["traced"].items() if "open" in kinds]
        assert str(site / "sgl_kernel" / "common_ops.abi3.so") in read
    watched = set(doc["watched"])
    modules = {os.path.abspath(m) for m in doc["modules"]}
    folders = {os.path.dirname(m) for m in modules}
    host = {"/sys/module/nvidia/version", "/proc/driver/nvidia/version", "/proc/1/cgroup"}
    host |= {"/proc/sys/kernel/osrelease", "/dev", "/.dockerenv", "/run/.containerenv"}
    ancestors = {str(parent) for p in watched | modules for parent in Path(p).parents}
    real = {os.path.realpath(p) for p in watched}
    missed = []
    for path, kinds in doc["traced"].items():
        if (
            path in watched
            or path in host
            or path in modules
            or path in folders
            or path.startswith((str(tmp_path / "cache"), doc["prefix"] + os.sep, doc["pycache"]))
            or "__pycache__" in path
            or path.endswith((".pyc", ".py"))
            # realpath() walking to a watched path: its folders and the links on the way
            or (kinds == ["lstat"] and (path in ancestors or os.path.realpath(path) in real))
        ):
            continue
        missed.append((path, kinds))
    assert missed == [], missed


def test_env_is_replayed_until_a_cache_grows(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`compat env` counts the caches' sizes: a file written deep inside one is a full run."""
    deep = Path(os.environ["TRITON_CACHE_DIR"]) / "abc123" / "k.cubin"
    deep.write_bytes(bytes(10))
    time.sleep(TICK)
    out, err, code = full(["env"], capsys)
    assert code == 0 and "triton" in out
    assert replayed(["env"]) == (out, err, code)
    deep.write_bytes(bytes(20))
    assert replayed(["env"]) is None


@pytest.mark.parametrize("argv", [["env", "--json"], ["env", "--no-host"]])
def test_env_kept_only_as_a_text_report_of_this_machine(
    stack: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    full(argv, capsys)  # the snapshot holds the time it was made; --no-host read no host
    assert replayed(argv) is None


def test_a_cache_walk_cut_short_keeps_nothing(
    stack: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from compat.probe import caches

    for n in range(3):
        (Path(os.environ["TRITON_CACHE_DIR"]) / f"k{n}").mkdir()
    monkeypatch.setattr(caches, "MAX_ENTRIES", 2)  # the figures would say "at least"
    time.sleep(TICK)
    full(["env"], capsys)
    assert replayed(["env"]) is None


def test_a_deleted_working_folder_is_a_full_run(
    stack: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    answers.begin(["check"])  # nothing to key the record by: not recorded, and no error
    assert not answers.recording()
    assert replayed(["check"]) is None


def test_a_user_generation_that_appears_is_seen(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from compat.channel.store import Store

    store = Store()
    store.root.mkdir(parents=True, exist_ok=True)
    store.pointer.write_text("g1\n")  # names a generation that is not there (yet)
    time.sleep(TICK)
    full(["check"], capsys)
    assert replayed(["check"]) is not None
    shutil.copytree(ROOT / "matrices", store.root / "generations" / "g1")
    assert replayed(["check"]) is None


def test_a_dangling_dist_info_link_whose_target_appears(
    stack: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "elsewhere"
    (stack / "flashinfer_python-0.2.5.dist-info").symlink_to(target)
    time.sleep(TICK)
    full(["check"], capsys)
    assert replayed(["check"]) is not None
    make_dist(tmp_path, "flashinfer-python", "0.2.5").rename(target)
    assert replayed(["check"]) is None


def test_only_this_users_own_record_is_replayed(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full(["check"], capsys)
    record = _record_file()
    record.chmod(0o622)  # another user could have written it
    assert replayed(["check"]) is None
    record.chmod(0o600)
    assert replayed(["check"]) is not None
    if os.geteuid() == 0:
        os.chown(record, 65534, -1)
        assert replayed(["check"]) is None


def test_the_machine_and_the_user_are_inputs(
    stack: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    full(["check"], capsys)
    assert replayed(["check"]) is not None
    real = os.uname()
    other = os.uname_result((real.sysname, real.nodename, real.release, real.version, "aarch64"))
    monkeypatch.setattr(os, "uname", lambda: other)
    assert replayed(["check"]) is None
    monkeypatch.undo()
    monkeypatch.setattr(os, "getgroups", lambda: [12345])
    assert replayed(["check"]) is None


def _gpu_host(used: int) -> dict[str, Any]:
    device = {"index": 0, "name": "NVIDIA H200", "uuid": "GPU-1", "cc": [9, 0]}
    device |= {"memory_total_mib": 143771, "memory_used_mib": used, "mig": False}
    return {
        "kmod": "580.159.04",
        "kmod_source": "/sys/module/nvidia/version",
        "context": {"container": None, "wsl": False, "dev": ["nvidia0", "nvidiactl"]},
        "nvml_lib": None,
        "nvml": {"driver": "580.159.04", "cuda": "13.0", "devices": [device]},
    }


def test_memory_in_use_is_no_input_of_a_check_without_a_launch(
    stack: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GPU that serves something between two checks: the check (no launch command) is
    replayed, `compat env` (which shows the memory in use) is not."""
    reading = {"used": 615}

    def read_host(root: str = "/", nvml_lib: Optional[str] = None, timeout: float = 2.0) -> Any:
        hostread.last = _gpu_host(reading["used"])
        return hostread.last

    monkeypatch.setattr(hostread, "read_host", read_host)
    check = full(["check"], capsys)
    env = full(["env"], capsys)
    assert "GPU" in env[0] and replayed(["check"]) == check
    reading["used"] = 80_000
    assert replayed(["check"]) == check
    assert replayed(["env"]) is None
    full_again = full(["check"], capsys)
    assert full_again == check  # what the replay said is what the full run says


def test_a_checks_report_does_not_depend_on_memory_in_use() -> None:
    """What lets a check's record ignore the memory in use: without a launch command, no check
    and no report format reads it (compat.check.fit sizes a launch)."""
    import msgspec

    from compat.format import Format, render
    from compat.pipeline import check, load_database
    from compat.snapshot import loads

    db = load_database()
    base = loads((ROOT / "tests" / "assets" / "device" / "h200" / "env.json").read_text())
    assert not isinstance(base.gpus, Unknown) and base.gpus
    outputs = set()
    for used in (0, 615, 80_000, 143_000):
        gpus = tuple(msgspec.structs.replace(g, memory_used_mib=used) for g in base.gpus)
        env = msgspec.structs.replace(base, gpus=gpus, source="live")
        found = check(env, db)
        outputs.add(tuple(render(fmt, found, env, "error") for fmt in Format))
    assert len(outputs) == 1


@pytest.fixture
def model(stack: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The served model in a hub cache (HF_HUB_CACHE); its repo folder."""
    shutil.copytree(HUB, tmp_path / "hub")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    time.sleep(TICK)
    return tmp_path / "hub" / "models--meta-llama--Meta-Llama-3-8B"


def _snapshot(repo: Path) -> Path:
    return next((repo / "snapshots").iterdir())


@pytest.mark.parametrize(
    "change",
    [
        lambda repo: (_snapshot(repo) / "config.json").write_text(
            (_snapshot(repo) / "config.json").read_text().replace("8192", "4096")
        ),
        lambda repo: (_snapshot(repo) / "model.safetensors.index.json").unlink(),
        lambda repo: (_snapshot(repo) / "hf_quant_config.json").write_text("{}"),
        lambda repo: (repo / "snapshots" / ("f" * 40)).mkdir(),
        lambda repo: (repo / "refs" / "main").write_text("f" * 40),
        lambda repo: shutil.rmtree(repo),
    ],
    ids=["config", "index", "quant-file", "snapshot", "ref", "gone"],
)
def test_a_launch_check_is_replayed_until_its_model_changes(
    model: Path, capsys: pytest.CaptureFixture[str], change: Any
) -> None:
    argv = ["check", "--", *SERVE]
    out, err, code = full(argv, capsys)
    assert str(_snapshot(model) / "config.json") in _record_paths()  # the facts' source
    assert replayed(argv) == (out, err, code)
    change(model)
    assert replayed(argv) is None


def test_a_launch_checks_config_file_and_memory_in_use_are_inputs(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text("gpu-memory-utilization: 0.9\n")
    argv = ["check", "--", *SERVE, "--config", str(config)]
    reading = {"used": 615}

    def read_host(root: str = "/", nvml_lib: Optional[str] = None, timeout: float = 2.0) -> Any:
        hostread.last = _gpu_host(reading["used"])
        return hostread.last

    monkeypatch.setattr(hostread, "read_host", read_host)
    time.sleep(TICK)
    full(argv, capsys)
    assert replayed(argv) is not None
    reading["used"] = 80_000  # the memory fit counts what else holds the GPU
    assert replayed(argv) is None
    reading["used"] = 615
    assert replayed(argv) is not None
    config.write_text("gpu-memory-utilization: 0.5\n")
    assert replayed(argv) is None


def test_a_file_removed_while_the_run_read_it_keeps_nothing(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Removed after it was read and before the answer is kept: absent then, it has no times
    that would show it was there; what the command line names was stamped as the run began."""
    config = tmp_path / "cfg" / "serve.yaml"
    config.parent.mkdir()
    config.write_text("max-model-len: 999999\n")
    time.sleep(TICK)
    from compat.commands import check as check_command

    real = check_command.keep_answer

    def removed_first(*args: Any, **kwargs: Any) -> None:
        config.unlink()
        real(*args, **kwargs)

    monkeypatch.setattr(check_command, "keep_answer", removed_first)
    argv = ["check", "--", *SERVE, "--config", str(config)]
    full(argv, capsys)
    assert replayed(argv) is None


def test_another_users_home_keeps_nothing(
    model: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`~name` is resolved through the password database, which no record watches; without
    $HOME every home folder is."""
    argv = ["check", "--", *SERVE, "--download-dir", "~nobody/models"]
    full(argv, capsys)
    assert replayed(argv) is None
    monkeypatch.delenv("HOME")
    full(["check"], capsys)
    assert replayed(["check"]) is None


def test_a_trailing_slash_names_the_file_the_reader_opens(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text("max-model-len: 4096\n")
    time.sleep(TICK)
    argv = ["check", "--", *SERVE, "--config", f"{config}/"]
    full(argv, capsys)
    assert replayed(argv) is not None
    config.write_text("max-model-len: 999999\n")
    assert replayed(argv) is None


def test_a_cache_removed_while_the_run_read_it_keeps_nothing(
    stack: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from compat.commands import check as check_command

    real = check_command.keep_answer

    def removed_first(*args: Any, **kwargs: Any) -> None:
        shutil.rmtree(os.environ["TRITON_CACHE_DIR"])
        real(*args, **kwargs)

    monkeypatch.setattr(check_command, "keep_answer", removed_first)
    full(["check"], capsys)
    assert replayed(["check"]) is None


CC = shutil.which("cc") or shutil.which("gcc")


def _so(out: Path, source: str, *link: str) -> None:
    assert CC is not None
    out.parent.mkdir(parents=True, exist_ok=True)
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run([CC, "-shared", "-fPIC", "-o", str(out), str(src), *link], check=True)
    src.unlink()


@pytest.fixture
def deep_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A CPU torch (no arch list to read) whose libc10 exports one name, and an sgl-kernel whose
    compiled object imports it: what `--deep` reads, through the RECORD."""
    if CC is None:
        pytest.skip("needs a C compiler")
    site = tmp_path / "site"
    lib = site / "torch" / "lib"
    _so(lib / "libc10.so", "void _ZN3c104testEv(void) {}\n")
    (site / "torch" / "version.py").write_text("__version__ = '2.7.1+cpu'\ncuda = None\n")
    make_dist(site, "torch", "2.7.1+cpu")
    _so(
        site / "sgl_kernel" / "common_ops.abi3.so",
        "extern void _ZN3c104testEv(void);\nvoid run(void) { _ZN3c104testEv(); }\n",
        f"-L{lib}",
        "-lc10",
    )
    kernel = make_dist(site, "sgl-kernel", "0.3.9")
    (kernel / "RECORD").write_text("sgl_kernel/common_ops.abi3.so,sha256=x,1\n")
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "triton"))
    monkeypatch.setenv("COMPAT_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    monkeypatch.delenv(answers.OFF, raising=False)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(answers, "RACY_NS", 0)
    time.sleep(TICK)
    return site


@pytest.mark.parametrize(
    "change",
    [
        lambda site: (site / "sgl_kernel" / "common_ops.abi3.so").write_bytes(b"not an object"),
        lambda site: next(site.glob("sgl_kernel-*.dist-info")).joinpath("RECORD").write_text(""),
        lambda site: (site / "torch" / "lib" / "libc10.so").write_bytes(b"\x7fELF"),
        lambda site: (site / "torch" / "lib" / "libtorch_cpu.so").write_bytes(b"\x7fELF"),
    ],
    ids=["object", "record", "torch-lib", "new-torch-lib"],
)
def test_a_deep_check_is_replayed_until_what_it_read_changes(
    deep_stack: Path, capsys: pytest.CaptureFixture[str], change: Any
) -> None:
    out, err, code = full(["check", "--deep"], capsys)
    assert str(deep_stack / "sgl_kernel" / "common_ops.abi3.so") in _record_paths()
    assert replayed(["check", "--deep"]) == (out, err, code)
    change(deep_stack)
    assert replayed(["check", "--deep"]) is None


def test_what_a_probe_calls_unrepeatable_is_not_kept(
    stack: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from compat.probe import caches

    real = caches.probe_caches

    def measured_against_the_clock(*args: Any, **kwargs: Any) -> Any:
        answers.unrepeatable("a read stopped at its time bound")
        return real(*args, **kwargs)

    monkeypatch.setattr(caches, "probe_caches", measured_against_the_clock)
    full(["check"], capsys)
    assert replayed(["check"]) is None


def test_a_deep_read_stopped_by_its_bound_is_not_kept(
    deep_stack: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch's arch list from its CUDA library's fatbins, stopped by a bound (time among them:
    a cold page cache): another run may read further, so the answer is not kept."""
    from compat.probe import torch as torch_probe

    (deep_stack / "torch" / "version.py").write_text("__version__ = '2.7.1+cu126'\ncuda = '12.6'\n")
    shutil.copy(
        deep_stack / "torch" / "lib" / "libc10.so",
        deep_stack / "torch" / "lib" / "libtorch_cuda.so",
    )
    monkeypatch.setattr(torch_probe, "ARCH_MAX_BYTES", 0)
    time.sleep(TICK)
    full(["check", "--deep"], capsys)
    assert replayed(["check", "--deep"]) is None


def test_compat_run_replays_its_check_and_then_execs(tmp_path: Path) -> None:
    """`compat run -- CMD`: a clean check's record holds the command it execs, which the replay
    execs too (seen by a command put into the record); a check with findings replays its
    refusal and runs nothing."""
    site = tmp_path / "site"
    make_dist(site, "torch", "2.6.0")
    env, cache, work = _program_env(tmp_path, site)
    # whatever else the import path holds (a real stack beside this one) may not stop it
    server = ("--fail-on", "never", "--", sys.executable, "-c", "print('up')")
    first = _program(env, work, "run", *server)
    assert (first.returncode, first.stdout) == (0, "up\n"), first.stderr
    (record,) = (cache / "answers").glob("*.json")
    doc = json.loads(record.read_bytes())
    assert doc["then"] == list(server[3:])
    doc["then"] = [sys.executable, "-c", "print('replayed')"]
    record.write_text(json.dumps(doc))
    second = _program(env, work, "run", *server)
    assert (second.returncode, second.stdout) == (0, "replayed\n"), second.stderr

    time.sleep(TICK)
    make_dist(site, "vllm", "0.10.1.1", requires=("torch==2.7.1",))  # now a finding
    marker = tmp_path / "ran"
    refused = ("--", sys.executable, "-c", f"open({str(marker)!r}, 'w')")
    time.sleep(2.1)
    third = _program(env, work, "run", *refused)
    assert third.returncode == 1 and "compat run: not starting" in third.stderr
    (kept,) = [p for p in (cache / "answers").glob("*.json") if p != record]
    doc = json.loads(kept.read_bytes())
    assert doc["then"] is None
    doc["stderr"] = doc["stderr"].replace("not starting", "not starting (kept)")
    kept.write_text(json.dumps(doc))
    fourth = _program(env, work, "run", *refused)
    assert fourth.returncode == 1 and "not starting (kept)" in fourth.stderr
    assert not marker.exists()
