from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from compat.models import Unknown
from compat.probe import hostread
from compat.probe.driver import host_context, module_version, parse_smi_csv, probe_host
from tests.conftest import fake_nvml_library

ASSET = Path(__file__).parents[1] / "assets" / "nvml" / "fake_nvml.c"

PROC_VERSION = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (nixbld@)  \n"
    "GCC version:  gcc version 15.3.0 (GCC) \n"
)


@pytest.fixture(scope="session")
def fake_nvml(tmp_path_factory: pytest.TempPathFactory) -> str:
    return fake_nvml_library(tmp_path_factory, ASSET)


def fake_root(
    tmp_path: Path, proc: str = PROC_VERSION, sys_version: str = "", dev: bool = True
) -> Path:
    (tmp_path / "proc/driver/nvidia").mkdir(parents=True)
    (tmp_path / "proc/driver/nvidia/version").write_text(proc)
    if sys_version:
        (tmp_path / "sys/module/nvidia").mkdir(parents=True)
        (tmp_path / "sys/module/nvidia/version").write_text(sys_version + "\n")
    (tmp_path / "dev").mkdir()
    if dev:
        (tmp_path / "dev/nvidia0").write_text("")
        (tmp_path / "dev/nvidiactl").write_text("")
    return tmp_path


def test_module_version_from_sys_then_proc(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    assert module_version(str(root)) == ("580.159.04", "/proc/driver/nvidia/version")
    (root / "sys/module/nvidia").mkdir(parents=True)
    (root / "sys/module/nvidia/version").write_text("580.159.04\n")
    assert module_version(str(root)) == ("580.159.04", "/sys/module/nvidia/version")


def test_proprietary_module_line(tmp_path: Path) -> None:
    text = (
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  Sun May 12 19:39:15 UTC 2024\n"
    )
    root = fake_root(tmp_path, proc=text)
    assert module_version(str(root))[0] == "535.183.01"


def test_no_gpu_host_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPAT_NVML_LIB", raising=False)
    (tmp_path / "dev").mkdir()
    hp = probe_host(str(tmp_path))
    assert isinstance(hp.driver, Unknown) and isinstance(hp.gpus, Unknown)
    assert "no usable NVIDIA GPU" in hp.driver.reason
    assert hp.context.device_nodes == ()


def test_fake_nvml_two_gpus(
    tmp_path: Path, fake_nvml: str, monkeypatch: pytest.MonkeyPatch, child_kind: str
) -> None:
    monkeypatch.setenv("FAKE_NVML_MODE", "ok")
    hp = probe_host(str(fake_root(tmp_path, sys_version="550.54.15")), nvml_lib=fake_nvml)
    assert not isinstance(hp.driver, Unknown)
    assert (
        hp.driver.version == "550.54.15"
        and hp.driver.version_source == "/sys/module/nvidia/version"
    )
    assert hp.driver.cuda == "12.4"
    assert not isinstance(hp.gpus, Unknown)
    a100, v100 = hp.gpus
    assert (a100.name, a100.compute_capability, a100.memory_total_mib, a100.mig) == (
        "NVIDIA A100-SXM4-80GB",
        (8, 0),
        81920,
        True,
    )
    assert (v100.index, v100.sm, v100.memory_used_mib, v100.mig) == (1, "sm_70", 1024, False)


@pytest.fixture(params=["fork", "interpreter"])
def child_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways NVML is bounded: a fork of compat (single-threaded), a fresh interpreter."""
    from compat.probe import bounded

    if request.param == "interpreter":
        monkeypatch.setattr(bounded, "can_fork", lambda: False)
    else:
        assert bounded.can_fork()
    return str(request.param)


def test_hung_nvml_is_bounded(
    tmp_path: Path, fake_nvml: str, monkeypatch: pytest.MonkeyPatch, child_kind: str
) -> None:
    monkeypatch.setenv("FAKE_NVML_MODE", "hang")
    start = time.monotonic()
    hp = probe_host(str(fake_root(tmp_path)), nvml_lib=fake_nvml, timeout=0.5)
    assert time.monotonic() - start < 2.0
    assert isinstance(hp.gpus, Unknown) and "did not answer within 0.5 s" in hp.gpus.reason
    # The kernel module still tells the driver version.
    assert not isinstance(hp.driver, Unknown) and hp.driver.version == "580.159.04"
    assert isinstance(hp.driver.cuda, Unknown)


def test_crashing_nvml_does_not_take_compat_down(
    tmp_path: Path,
    fake_nvml: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    child_kind: str,
) -> None:
    monkeypatch.setenv("FAKE_NVML_MODE", "crash")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no nvidia-smi fallback either
    hp = probe_host(str(fake_root(tmp_path)), nvml_lib=fake_nvml)
    assert isinstance(hp.gpus, Unknown) and "NVML crashed (signal 11)" in hp.gpus.reason
    assert capfd.readouterr().err == ""  # the child's crash prints nothing of compat's


def test_nvml_missing_falls_back_to_nvidia_smi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    smi = bindir / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\necho '0, NVIDIA H100 80GB HBM3, 9.0, 81559, 0, Disabled, GPU-5269, 580.159.04'\n"
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    root = fake_root(tmp_path / "root")
    hp = probe_host(str(root), nvml_lib=str(tmp_path / "no-such-libnvidia-ml.so"))
    assert not isinstance(hp.gpus, Unknown)
    assert hp.gpus[0].compute_capability == (9, 0) and hp.gpus[0].source == "nvidia-smi"


def test_parse_smi_csv_tolerates_na_and_garbage() -> None:
    text = "garbage\n0, NVIDIA A10, 8.6, [N/A], [N/A], [N/A], GPU-1, 535.1\n"
    drv, gpus, _ = parse_smi_csv(text)
    assert drv == "535.1"
    assert gpus[0].memory_total_mib is None and gpus[0].mig is None and gpus[0].sm == "sm_86"


def test_context_container_and_wsl(tmp_path: Path) -> None:
    (tmp_path / ".dockerenv").write_text("")
    (tmp_path / "proc/sys/kernel").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/osrelease").write_text("5.15.153.1-microsoft-standard-WSL2\n")
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/dxg").write_text("")
    ctx = host_context(str(tmp_path))
    assert (ctx.container, ctx.wsl, ctx.device_nodes) == ("docker", True, ("dxg",))


def test_nvml_script_is_stdlib_only() -> None:
    # It runs with `python -I -S`: importing compat or packaging there would fail.
    text = Path(hostread._NVML_SCRIPT).read_text()
    assert "import compat" not in text and "packaging" not in text


@pytest.mark.parametrize(
    ("body", "gpus", "why"),
    [
        # "inf" and "[N/A]" figures are unknown, not a crash; an index that is not a number skips the row.
        (
            'echo "0, NVIDIA H100 80GB HBM3, 9.0, inf, [N/A], Disabled, GPU-1, 580.65.06"\n'
            'echo "x, junk, 9.0, 1, 1, Disabled, GPU-2, 580.65.06"',
            1,
            "nvidia-smi",
        ),
        ("yes '0, x, 9.0, 1, 1, Disabled, GPU-1, 580'", 0, "printed more than"),
        ("sleep 30", 0, "did not answer within"),
    ],
)
def test_nvidia_smi_junk_floods_and_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, gpus: int, why: str
) -> None:
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\n" + body + "\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    started = time.monotonic()
    got = hostread.smi(1.5)
    assert time.monotonic() - started < 5
    _driver, found, text = parse_smi_csv(got["csv"]) if "csv" in got else (None, [], got["why"])
    assert len(found) == gpus and why in text
    if gpus:
        assert found[0].memory_total_mib is None and found[0].compute_capability == (9, 0)


def test_a_forked_child_is_bounded_in_output_and_reports_its_exit() -> None:
    from compat.probe import bounded

    ok = bounded.forked(lambda: b"{}", 2.0)
    assert (ok.returncode, ok.stdout, ok.problem) == (0, b"{}", "")
    flood = bounded.forked(lambda: b"x" * 5000, 2.0, limit=1000)
    assert flood.returncode is None and "more than 1000 bytes" in flood.problem

    def fails() -> bytes:
        raise RuntimeError("boom")

    assert bounded.forked(fails, 2.0).returncode == 1


def test_a_forked_query_leaves_nvml_to_the_exit_a_script_shuts_it_down() -> None:
    from compat.probe import nvml

    class Lib:
        """Answers every call with an error past init: enough to see what query calls."""

        def __init__(self) -> None:
            self.calls: list[str] = []

        def __getattr__(self, name: str) -> object:
            def call(*args: object) -> int:
                self.calls.append(name)
                return 0 if name in ("nvmlInit_v2", "nvmlShutdown") else 999

            return call

    script, forked = Lib(), Lib()
    assert "devices_error" in nvml.query(script)
    assert script.calls[-1] == "nvmlShutdown"
    assert "devices_error" in nvml.query(forked, shutdown=False)
    assert "nvmlShutdown" not in forked.calls and forked.calls[0] == "nvmlInit_v2"
