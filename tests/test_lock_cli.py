"""`compat lock` end to end: the CLI, the round trip through `compat check`, and real installers
(pip, and uv when installed) resolving the emitted files against a local index served here."""

from __future__ import annotations

import base64
import contextlib
import csv
import functools
import hashlib
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from compat.cli import main
from compat.inputs import apply_overrides, load_from
from compat.matrix.load import Matrix
from compat.models import Severity
from compat.pipeline import check, load_database

REPO = Path(__file__).resolve().parents[1]


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------------------------
# The CLI against the bundled database
# --------------------------------------------------------------------------------------------


def test_lock_to_stdout_and_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(
        [
            "lock",
            "sglang==0.4.6.post1",
            "--driver",
            "535.104.05",
            "--gpu",
            "a100",
            "--python",
            "3.11",
        ],
        capsys,
    )
    assert code == 0, err
    # torchao (in sglang[srt]) loads its kernels only beside a CUDA 12 torch: PyPI's cu124 build
    assert "\ntorch==2.6.0\n" in out and out.startswith("# requirements.lock")
    code, out, err = run_main(
        [
            "lock",
            "sglang==0.4.6.post1",
            "--driver",
            "535.104.05",
            "--gpu",
            "a100",
            "--python",
            "3.11",
            "-o",
            str(tmp_path / "l"),
        ],
        capsys,
    )
    assert code == 0 and out == ""
    names = sorted(p.name for p in (tmp_path / "l").iterdir())
    assert names == ["constraints.txt", "pylock.toml", "requirements.lock", "uv-sources.toml"]
    code, out, _ = run_main(
        ["lock", "torch==2.7.1", "--python", "3.12", "--format", "pylock"], capsys
    )
    assert code == 0 and out.count("[[packages]]") == 2


def test_lock_failure_exits_1_grouped(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(
        ["lock", "sglang>=0.5", "--driver", "470.57.02", "--python", "3.11", "--explain"], capsys
    )
    assert code == 1 and out == ""
    assert "driver 470.57.02 runs CUDA 11.x only; every torch that sglang>=0.5 pins" in err
    assert "nearest alternatives:" in err and "[driver]" in err


def test_lock_explain_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["lock", "torch>=2.7,<2.8", "--gpu", "rtx5090", "--explain"], capsys)
    assert code == 0
    assert "rule: newest torch release first" in err and "[gpu-arch]" in err
    assert run_main(["lock", "transformers"], capsys)[0] == 2
    assert run_main(["lock", "vllm", "--cuda", "twelve"], capsys)[0] == 2
    assert run_main(["lock", "vllm", "--gpu", "not-a-gpu"], capsys)[0] == 2
    assert run_main(["lock", "vllm", "--format", "uv", "-o", "x"], capsys)[0] == 2


def test_auto_reads_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    from compat.commands.lock import build_target
    from compat.models import GPU, Driver, HostContext
    from compat.probe.driver import HostProbe

    probe = HostProbe(
        Driver("550.54.15", "12.4", "/proc", "NVML"),
        (GPU(0, "NVIDIA H100 80GB HBM3", (9, 0), 81559),) * 2,
        HostContext(None, False, ()),
    )
    t = build_target(
        ["vllm"], "auto", "auto", ["auto"], "3.11", None, (), Matrix(), probe=lambda: probe
    )
    assert str(t.driver) == "550.54.15" and str(t.cuda_max) == "12.4"
    assert [g.sm for g in t.gpus] == ["sm_90"]


@pytest.mark.parametrize(
    ("target", "host"),
    [
        (["sglang==0.4.6.post1"], ["--driver", "535.104.05", "--gpu", "a100"]),
        (["sglang>=0.5"], ["--driver", "580.65.06", "--gpu", "h100"]),
        (["vllm==0.10.1.1"], ["--driver", "550.54.15", "--gpu", "l40s"]),
        (["torch==2.7.1", "torchvision"], ["--driver", "570.86.10", "--gpu", "rtx5090"]),
    ],
)
def test_round_trip_check_finds_nothing_above_info(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: list[str], host: list[str]
) -> None:
    out = tmp_path / "lock"
    code, _, err = run_main(["lock", *target, *host, "--python", "3.11", "-o", str(out)], capsys)
    assert code == 0, err
    matrix = Matrix()
    env = load_from(str(out / "requirements.lock"), matrix)
    gpus = tuple(host[i + 1] for i, a in enumerate(host) if a == "--gpu")
    driver = host[host.index("--driver") + 1]
    env = apply_overrides(env, matrix, driver=driver, gpus=gpus, python="3.11")
    findings = check(env, load_database())
    worse = [f for f in findings if f.severity > Severity.INFO]
    assert not worse, [f.message for f in worse]


# --------------------------------------------------------------------------------------------
# Real installers against a local index: tiny real-format wheels, a fixture database
# --------------------------------------------------------------------------------------------


def make_wheel(
    folder: Path,
    name: str,
    version: str,
    requires: tuple[str, ...] = (),
    extras: tuple[str, ...] = (),
) -> Path:
    """A minimal valid py3-none-any wheel (METADATA, WHEEL, RECORD and one module)."""
    dist = re.sub(r"[-_.]+", "_", name)
    info = f"{dist}-{version}.dist-info"
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    meta += [f"Provides-Extra: {e}" for e in extras]
    meta += [f"Requires-Dist: {r}" for r in requires]
    files = {
        f"{dist}/__init__.py": f"__version__ = {version!r}\n",
        f"{info}/METADATA": "\n".join(meta) + "\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: compat-tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    rows = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        rows.append([path, f"sha256={digest.decode()}", str(len(text.encode()))])
    rows.append([f"{info}/RECORD", "", ""])
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    files[f"{info}/RECORD"] = buf.getvalue()
    wheel = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for p, text in files.items():
            zf.writestr(p, text)
    return wheel


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve(root: Path) -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def write_simple(index: Path, wheels: list[Path], files_url: str) -> None:
    """A PEP 503 simple index: one page per project, links carrying the sha256."""
    by: dict[str, list[Path]] = {}
    for w in wheels:
        by.setdefault(re.sub(r"[-_.]+", "-", w.name.split("-")[0]).lower(), []).append(w)
    for project, ws in by.items():
        page = index / project
        page.mkdir(parents=True, exist_ok=True)
        links = "".join(
            f'<a href="{files_url}/{w.name}#sha256={hashlib.sha256(w.read_bytes()).hexdigest()}">'
            f"{w.name}</a><br>\n"
            for w in ws
        )
        (page / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")


# (project, version, requires, extras, index): the stack as PyPI and a PyTorch CUDA index serve it.
STACK: list[tuple[str, str, tuple[str, ...], tuple[str, ...], str]] = [
    (
        "sglang",
        "0.4.6.post1",
        (
            'torch==2.6.0; extra == "srt"',
            'torchvision==0.21.0; extra == "srt"',
            'sgl-kernel==0.1.0; extra == "srt"',
            'flashinfer_python==0.2.3; extra == "srt"',
        ),
        ("srt",),
        "pypi",
    ),
    ("torch", "2.6.0", ('triton==3.2.0; platform_system == "Linux"',), (), "pypi"),
    ("torch", "2.7.0", ('triton==3.3.0; platform_system == "Linux"',), (), "pypi"),
    ("torchvision", "0.21.0", ("torch==2.6.0",), (), "pypi"),
    ("triton", "3.2.0", (), (), "pypi"),
    ("triton", "3.3.0", (), (), "pypi"),
    ("sgl-kernel", "0.1.0", (), (), "pypi"),
    ("flashinfer-python", "0.2.3", ("torch",), (), "pypi"),
    ("torch", "2.6.0+cu126", ('triton==3.2.0; platform_system == "Linux"',), (), "cu126"),
    ("torchvision", "0.21.0+cu126", ("torch==2.6.0",), (), "cu126"),
]


def fixture_database(root: Path, wheels: dict[tuple[str, str], Path], base: str) -> None:
    """generated/*.toml for the STACK (with the wheels' real hashes) and curated rows pointing the
    CUDA 12.6 build at the local index."""
    from compat.matrix.toml_write import quote

    (root / "generated").mkdir(parents=True)
    (root / "advisories").mkdir()
    by: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for name, version, requires, _, where in STACK:
        if where == "pypi":
            by.setdefault(name, []).append((version, requires))
    for name, rels in by.items():
        out = [f'[meta]\nproject = {quote(name)}\nindex = "local"\nsynced = "2026-01-01"\n']
        for version, requires in rels:
            w = wheels[(name, version)]
            sha = hashlib.sha256(w.read_bytes()).hexdigest()
            cuda = 'cuda = "12.4"\n' if name == "torch" else ""
            reqs = ", ".join(quote(r) for r in requires)
            out.append(
                f'[releases."{version}"]\nrequires_python = ">=3.9"\nupload_time = '
                f'"2025-01-01T00:00:00Z"\nyanked = false\n{cuda}requires = [{reqs}]\n'
                f'wheels = ["py3-none-any"]\nsdist = false\n\n[releases."{version}".source]\n'
                f'file = {quote(w.name)}\nsha256 = "{sha}"\nmethod = "pep658"\n'
                'read_at = "2026-01-01T00:00:00Z"\n'
            )
        (root / "generated" / f"{name}.toml").write_text("\n".join(out))
    curated = root / "curated"
    curated.mkdir()
    for name in ("cuda.toml", "gpus.toml"):
        shutil.copy(REPO / "matrices" / "curated" / name, curated / name)
    archs = '["7.0", "7.5", "8.0", "8.6", "9.0"]'
    src = "https://example.com/fixture"
    (curated / "torch_builds.toml").write_text(
        f'[[build]]\ntorch = "2.6.0"\ncuda = "12.4"\nindex = "{base}/cu124/simple"\nlocal = "cu124"\n'
        f'pypi_default = true\nsass = {archs}\nptx = []\nsource = "{src}"\n\n'
        f'[[build]]\ntorch = "2.6.0"\ncuda = "12.6"\nindex = "{base}/cu126/simple"\nlocal = "cu126"\n'
        f'pypi_default = false\nsass = {archs}\nptx = []\nsource = "{src}"\n'
    )
    (curated / "indexes.toml").write_text(
        f'[[index]]\nname = "local-cu126"\nurl = "{base}/cu126/simple"\n'
        'projects = ["torch", "torchvision", "torchaudio", "triton"]\ncuda = "12.6"\n'
        f'when = "torch>=2.6,<2.7"\nlocal = "cu126"\nsource = "{src}"\n'
    )


def clean_env() -> dict[str, str]:
    """No pip/uv configuration from this machine: only the local index answers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["UV_NO_CONFIG"] = "1"
    return env


def uv_binary() -> Optional[str]:
    here = Path(sys.executable).parent / "uv"
    return str(here) if here.is_file() else shutil.which("uv")


@pytest.fixture(scope="module")
def local_lock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("index")
    files = root / "files"
    files.mkdir()
    wheels = {(n, v): make_wheel(files, n, v, r, e) for n, v, r, e, _ in STACK}
    with serve(root) as base:
        for where in ("pypi", "cu126"):
            ws = [wheels[(n, v)] for n, v, _, _, w in STACK if w == where]
            write_simple(
                root / ("simple" if where == "pypi" else "cu126/simple"), ws, f"{base}/files"
            )
        db = tmp_path_factory.mktemp("db")
        fixture_database(db, wheels, base)
        yield {"base": base, "db": db, "wheels": wheels}


def test_installers_agree_with_the_lock(
    local_lock: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = local_lock["base"]
    monkeypatch.setenv("COMPAT_MATRICES", str(local_lock["db"]))
    out = tmp_path / "lock"
    py = f"{sys.version_info[0]}.{sys.version_info[1]}"
    args = [
        "lock",
        "sglang==0.4.6.post1",
        "--driver",
        "535.104.05",
        "--gpu",
        "a100",
        "--python",
        py,
    ]
    code, _, err = run_main([*args, "-o", str(out)], capsys)
    assert code == 0, err
    lock_text = (out / "requirements.lock").read_text()
    assert f"--extra-index-url {base}/cu126/simple" in lock_text
    want = {
        m.group(1).lower(): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", lock_text, re.M)
    }
    assert want["torch"] == "2.6.0+cu126" and want["triton"] == "3.2.0"

    def pip_report(*args: str) -> dict[str, str]:
        report = tmp_path / "report.json"
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--no-cache-dir",
            "--quiet",
            "--report",
            str(report),
            "--index-url",
            f"{base}/simple",
            *args,
        ]
        proc = subprocess.run(cmd, env=clean_env(), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        data = json.loads(report.read_text())
        return {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in data["install"]}

    # 1. The requirements.lock as is (its index line brings the CUDA 12.6 index).
    assert pip_report("-r", str(out / "requirements.lock")) == want
    # 2. The framework with the constraints (the way most people use them).
    got = pip_report(
        "--extra-index-url",
        f"{base}/cu126/simple",
        "-c",
        str(out / "constraints.txt"),
        "sglang[srt]",
    )
    assert got == want
    # 3. --hashes: the fixture database records the wheels' real hashes; pip verifies the
    # covered pins in hash-checking mode (the index builds are not covered, and say so).
    code, hashed, err = run_main([*args, "--hashes"], capsys)
    assert code == 0, err
    assert "Not covered: torch, torchvision" in hashed
    covered = tmp_path / "covered.txt"
    covered.write_text(
        "\n".join(block for block in re.findall(r"^\S+==\S+ \\\n\s+--hash=\S+", hashed, re.M))
        + "\n"
    )
    assert covered.read_text().count("--hash=sha256:") == 4
    assert pip_report("--no-deps", "--require-hashes", "-r", str(covered))["sgl-kernel"] == "0.1.0"

    uv = uv_binary()
    if uv is None:
        pytest.skip("uv is not installed: the uv half of this test needs it")
    req = tmp_path / "req.in"
    req.write_text("sglang[srt]\n")
    proc = subprocess.run(
        [
            uv,
            "pip",
            "compile",
            str(req),
            "-c",
            str(out / "constraints.txt"),
            "--no-cache",
            "--index-url",
            f"{base}/simple",
            "--extra-index-url",
            f"{base}/cu126/simple",
            "--python-version",
            f"{sys.version_info[0]}.{sys.version_info[1]}",
            "--no-header",
            "--no-annotate",
            "--quiet",
        ],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    got = {
        m.group(1).lower(): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", proc.stdout, re.M)
    }
    assert got == want


# --------------------------------------------------------------------------------------------
# Online: real pip and uv against real PyPI, for targets PyPI alone can satisfy
# --------------------------------------------------------------------------------------------


def _pins(text: str) -> dict[str, str]:
    return {
        m.group(1).lower(): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", text, re.M)
    }


@pytest.mark.online
@pytest.mark.parametrize(
    ("target", "roots"),
    [
        (["torch==2.7.1", "torchvision"], ["torch", "torchvision"]),
        (["vllm==0.10.1.1"], ["vllm==0.10.1.1"]),
    ],
)
def test_online_pypi_agrees(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: list[str], roots: list[str]
) -> None:
    code, text, err = run_main(
        ["lock", *target, "--python", "3.11", "--format", "constraints"], capsys
    )
    assert code == 0, err
    want = _pins(text)
    assert not re.search(r"\+cu\d+", text), "a PyPI-only target needs no other index"
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(text)
    req = tmp_path / "req.in"
    req.write_text("\n".join(roots) + "\n")
    uv = uv_binary()
    if uv is not None:
        proc = subprocess.run(
            [
                uv,
                "pip",
                "compile",
                str(req),
                "-c",
                str(constraints),
                "--python-version",
                "3.11",
                "--python-platform",
                "x86_64-manylinux_2_28",
                "--no-header",
                "--no-annotate",
                "--quiet",
            ],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr
        got = _pins(proc.stdout)
        assert {k: got.get(k) for k in want} == want
    if sys.version_info[:2] != (3, 11):
        pytest.skip("pip's dry run resolves for this interpreter: needs Python 3.11")
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            "-c",
            str(constraints),
            "-r",
            str(req),
        ],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    got = {
        i["metadata"]["name"].lower(): i["metadata"]["version"]
        for i in json.loads(report.read_text())["install"]
    }
    assert {k: got.get(k) for k in want} == want
