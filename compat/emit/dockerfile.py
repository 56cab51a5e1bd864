"""A Dockerfile build stage (or a whole Dockerfile) for a resolved tuple.

The base image is NVIDIA's CUDA image of the tuple's CUDA version (devel when kernels compile at
run time or install from source), Python is the image's own when its version is the target's
(else a uv-managed one), the stack installs from the lock's pins and index lines with the same
versions as constraints, and the last step runs `compat check` on the installed stack against the
declared target host, which fails the build on errors (a docker build sees no GPU: the host comes
from --driver/--gpu). Pure: the resolution and the options come in, the text goes out.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Optional

from msgspec import Struct
from packaging.version import Version

from compat.emit import EmitOptions, LockFormat, render
from compat.errors import UsageError
from compat.matrix.load import Matrix
from compat.nvidia import fmt_driver
from compat.resolve import Resolution

# nvidia/cuda tags per CUDA version: the release tag, and the Ubuntu versions it is published for
# (newest first). Tags as NVIDIA publishes them: https://hub.docker.com/r/nvidia/cuda/tags and
# https://gitlab.com/nvidia/container-images/cuda/-/blob/master/doc/supported-tags.md
Images = Mapping[str, tuple[str, tuple[str, ...]]]


def cuda_images(matrix: Optional[Matrix] = None) -> dict[str, tuple[str, tuple[str, ...]]]:
    """CUDA minor -> (nvidia/cuda tag, OS releases), from matrices/curated/images.toml."""
    m = matrix or Matrix()
    return {i.cuda: (i.tag, i.os) for i in m.images}


# The python3 each Ubuntu release ships (apt), used when it is the target's Python.
SYSTEM_PYTHON = {"ubuntu24.04": "3.12", "ubuntu22.04": "3.10", "ubuntu20.04": "3.8"}
# uv installs any other Python (python-build-standalone builds) at image build time.
UV_IMAGE = "ghcr.io/astral-sh/uv:0.8.22"
# Packages that compile CUDA kernels at run time (JIT) and so need nvcc and headers in the image:
# flashinfer builds its kernels on first use unless a jit-cache wheel covers them; sglang has its
# own JIT kernels (sglang/jit_kernel); DeepGEMM compiles at run time.
JIT_PACKAGES = ("flashinfer-python", "sglang", "deep-gemm")
FLAVORS = ("auto", "runtime", "devel")
VENV = "/opt/venv"
COMPAT_VENV = "/opt/compat"
STACK_DIR = "/opt/stack"


class DockerOptions(Struct, frozen=True):
    command: str = "compat dockerfile"  # the command line that reproduces the output
    version: str = ""  # compat's version: the default COMPAT_SPEC pins it
    full: bool = False  # a whole Dockerfile (syntax line, serve stage, ENTRYPOINT)
    os: Optional[str] = None  # "ubuntu22.04"; default: from the target's Python
    flavor: str = "auto"  # runtime | devel | auto (devel when kernels JIT-compile)
    base_image: Optional[str] = None  # replaces the nvidia/cuda image
    compat_spec: Optional[str] = None  # pip spec (or a local .whl) compat is installed from
    check_args: tuple[str, ...] = ()  # host flags for `compat check` (--driver ..., --gpu ...)
    # Set when the target's driver runs the tuple's CUDA only under minor-version compatibility
    # (the reason, in words): nvidia/cuda images carry NVIDIA_REQUIRE_CUDA=cuda>=X.Y, which the
    # container runtime enforces unless NVIDIA_DISABLE_REQUIRE is set.
    disable_require: Optional[str] = None
    fail_on: str = "error"
    stage: str = "stack"
    hashes: bool = False


class Base(Struct, frozen=True):
    image: str
    os: str
    flavor: str
    why: str
    python_from: str  # "apt" | "uv"


def _sh(text: str) -> str:
    return shlex.quote(text)


def lock_lines(text: str) -> list[str]:
    """The lines of a lock file that pip reads: comments and blank lines dropped."""
    return [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def flavor_of(res: Resolution, wanted: str) -> tuple[str, str]:
    """('runtime' | 'devel', why)."""
    if wanted not in FLAVORS:
        raise UsageError(f"--flavor {wanted!r}: expected one of {', '.join(FLAVORS)}")
    if wanted != "auto":
        return wanted, f"--flavor {wanted}"
    jit = [p.name for p in res.pins if p.name in JIT_PACKAGES]
    sdist = [p.name for p in res.pins if p.sdist_only]
    if sdist:
        verb = "installs" if len(sdist) == 1 else "install"
        return "devel", f"{', '.join(sdist)} {verb} from source: nvcc and headers needed"
    if jit:
        verb = "compiles" if len(jit) == 1 else "compile"
        return "devel", f"{', '.join(jit)} {verb} CUDA kernels at run time (JIT): nvcc needed"
    return "runtime", "no package of the stack compiles CUDA code"


def choose_base(res: Resolution, opts: DockerOptions, images: Optional[Images] = None) -> Base:
    """The base image; `images` (cuda_images()) is read from the bundled database when None."""
    py = res.target.python
    flavor, why = flavor_of(res, opts.flavor)
    if opts.base_image:
        os_name = opts.os or ""
        return Base(
            opts.base_image,
            os_name,
            flavor,
            "--base-image",
            "apt" if SYSTEM_PYTHON.get(os_name) == py else "uv",
        )
    if res.cuda == "cpu" or not res.cuda[:1].isdigit():
        os_name = opts.os or next((o for o, v in SYSTEM_PYTHON.items() if v == py), "ubuntu24.04")
        image = "ubuntu:" + os_name.removeprefix("ubuntu")
        return Base(
            image,
            os_name,
            "runtime",
            f"torch is a {res.cuda} build: no CUDA image",
            "apt" if SYSTEM_PYTHON.get(os_name) == py else "uv",
        )
    cuda = ".".join(res.cuda.split(".")[:2])
    images = cuda_images() if images is None else images
    entry = images.get(cuda)
    if entry is None:
        known = ", ".join(images)
        raise UsageError(
            f"compat knows no nvidia/cuda image for CUDA {cuda}",
            hint=f"give one: --base-image nvidia/cuda:<tag> (known CUDA versions: {known})",
        )
    tag, oses = entry
    if opts.os:
        if opts.os not in oses:
            raise UsageError(
                f"nvidia/cuda {tag} is not published for {opts.os}",
                hint=f"use --os {' or --os '.join(oses)}",
            )
        os_name = opts.os
    else:
        os_name = next((o for o in oses if SYSTEM_PYTHON.get(o) == py), oses[0])
    return Base(
        f"nvidia/cuda:{tag}-{flavor}-{os_name}",
        os_name,
        flavor,
        f"CUDA {cuda} as torch's build; {flavor}: {why}",
        "apt" if SYSTEM_PYTHON.get(os_name) == py else "uv",
    )


def _printf(lines: Sequence[str], path: str) -> list[str]:
    out = ["printf '%s\\n' \\"]
    out.extend(f"      {_sh(line)} \\" for line in lines)
    out.append(f"      > {path}")
    return out


def _run(lines: Sequence[str]) -> list[str]:
    """RUN with one command per line, `&&`-joined."""
    if not lines:
        return []
    out = [f"RUN {lines[0]}"]
    for cmd in lines[1:]:
        out[-1] += " \\"
        out.append(f" && {cmd}")
    return out


def _compat_install(opts: DockerOptions, python: str) -> list[str]:
    """Lines that install compat into its own venv (from COMPAT_SPEC, overridable at build)."""
    spec = opts.compat_spec or (f"compat=={opts.version}" if opts.version else "compat")
    pre: list[str] = []
    arg = '"${COMPAT_SPEC}"'
    if spec.endswith(".whl") and "://" not in spec:
        name = spec.replace("\\", "/").rsplit("/", 1)[-1]
        pre.append(f"COPY {spec} /tmp/{name}")
        spec = f"/tmp/{name}"
    pre.append(f"ARG COMPAT_SPEC={json.dumps(spec)}")
    return pre + _run(
        [f"{python} -m venv {COMPAT_VENV}", f"{COMPAT_VENV}/bin/pip install --no-cache-dir {arg}"]
    )


def render_dockerfile(res: Resolution, opts: DockerOptions, images: Optional[Images] = None) -> str:
    base = choose_base(res, opts, images)
    t = res.target
    lock_opts = EmitOptions(command=opts.command, hashes=opts.hashes, version=opts.version)
    requirements = lock_lines(render(LockFormat.REQUIREMENTS, res, lock_opts))
    constraints = lock_lines(render(LockFormat.CONSTRAINTS, res, lock_opts))
    torch = res.pin("torch")
    fw = res.framework
    what = ", ".join(
        x
        for x in (
            f"{fw.name} {fw.version}" if fw else "",
            f"torch {torch.version}" if torch else "",
        )
        if x
    )
    lines: list[str] = []
    if opts.full:
        lines.append("# syntax=docker/dockerfile:1")
    lines.append(
        f"# The stack for {t.spec_text()}: {what} (CUDA {res.cuda}), Python {t.python}; "
        f"written by compat{(' ' + opts.version) if opts.version else ''}."
    )
    lines.append(f"# Reproduce: {opts.command}")
    host = []
    if t.driver is not None:
        host.append(f"driver {fmt_driver(t.driver)}")
    host.extend(f"GPU {g.label}" for g in t.gpus)
    lines.append(
        "# Target host: "
        + ("; ".join(host) if host else "none declared (give --driver/--gpu to check for one)")
    )
    lines.append(f"# Base: {base.why}")
    for note in res.notes:
        lines.append(f"# Note: {note}")
    if base.python_from == "uv":
        lines.append("")
        lines.append(f"FROM {UV_IMAGE} AS uv")
    lines.append("")
    lines.append(f"FROM {base.image} AS {opts.stage}")
    lines.append("ARG DEBIAN_FRONTEND=noninteractive")
    lines.append("ENV PYTHONUNBUFFERED=1 \\")
    lines.append("    PIP_NO_CACHE_DIR=1 \\")
    lines.append("    PIP_DISABLE_PIP_VERSION_CHECK=1")
    if opts.disable_require and base.image.startswith("nvidia/cuda:"):
        lines.append(f"# {opts.disable_require}.")
        lines.append(
            f"# The image requires cuda>={res.cuda} (NVIDIA_REQUIRE_CUDA): without this the "
            "container runtime refuses to start it there."
        )
        lines.append("ENV NVIDIA_DISABLE_REQUIRE=1")
    apt = ["ca-certificates"]
    if base.python_from == "apt":
        apt += ["python3", "python3-venv"]
        if base.flavor == "devel":
            apt.append("python3-dev")
    if base.flavor == "devel":
        apt += ["build-essential", "git"]
    lines.append("# hadolint ignore=DL3008")
    lines.extend(
        _run(
            [
                "apt-get update",
                f"apt-get install -y --no-install-recommends {' '.join(sorted(apt))}",
                "rm -rf /var/lib/apt/lists/*",
            ]
        )
    )
    if base.python_from == "apt":
        python = "python3"
        lines.extend(_run([f"python3 -m venv {VENV}"]))
    else:
        python = f"{VENV}/bin/python"
        lines.append(
            f"# Python {t.python}: the image's python3 is "
            f"{SYSTEM_PYTHON.get(base.os, 'another version')}, so uv installs it"
        )
        lines.append("COPY --from=uv /uv /usr/local/bin/uv")
        lines.append("ENV UV_PYTHON_INSTALL_DIR=/opt/python")
        lines.extend(
            _run([f"uv python install {t.python}", f"uv venv --seed --python {t.python} {VENV}"])
        )
    lines.append(
        "# The lock: each pin with the index it needs; the same versions as constraints, "
        f"kept in {STACK_DIR}/ for what is installed later (pip install -c)"
    )
    block = [
        f"mkdir -p {STACK_DIR}",
        "\n".join(_printf(requirements, f"{STACK_DIR}/requirements.lock")),
        "\n".join(_printf(constraints, f"{STACK_DIR}/constraints.txt")),
    ]
    lines.extend("\n".join(_run(block)).splitlines())
    lines.extend(
        _run(
            [
                f"{VENV}/bin/pip install --no-cache-dir "
                f"-r {STACK_DIR}/requirements.lock -c {STACK_DIR}/constraints.txt"
            ]
        )
    )
    lines.append(
        "# Verify: compat checks the installed stack against the target host and fails the build on"
    )
    lines.append(
        f"# findings at or above {opts.fail_on} (no GPU is needed: the host comes from "
        "the flags). compat lives in its own venv."
    )
    lines.extend(_compat_install(opts, python))
    check = [
        f"{COMPAT_VENV}/bin/compat",
        "check",
        "--interpreter",
        f"{VENV}/bin/python",
        *opts.check_args,
        "--fail-on",
        opts.fail_on,
    ]
    lines.append("RUN " + " ".join(_sh(a) for a in check))
    lines.append(f"ENV PATH={VENV}/bin:$PATH")
    if opts.full:
        lines.extend(_serve_stage(res, opts))
    return "\n".join(lines) + "\n"


def _serve_stage(res: Resolution, opts: DockerOptions) -> list[str]:
    fw = res.framework
    if fw is not None and fw.name == "sglang":
        cmd = ["python", "-m", "sglang.launch_server", "--help"]
    elif fw is not None and fw.name == "vllm":
        cmd = ["vllm", "serve", "--help"]
    else:
        cmd = ["python"]
    entry = [f"{COMPAT_VENV}/bin/compat", "run", "--interpreter", f"{VENV}/bin/python", "--"]
    return [
        "",
        f"FROM {opts.stage} AS serve",
        "WORKDIR /app",
        "# Your application's own requirements, held to the stack's versions:",
        "#   COPY requirements.txt .",
        f"#   RUN pip install --no-cache-dir -c {STACK_DIR}/constraints.txt -r requirements.txt",
        "# At start, compat checks this image on the real host (driver, GPUs, env) with the server",
        "# command as the launch command, then execs it; with findings it exits 1 instead.",
        f"ENTRYPOINT {json.dumps(entry)}",
        f"CMD {json.dumps(cmd)}",
    ]


def cuda_image_version(image: str) -> Optional[Version]:
    """'nvidia/cuda:12.6.3-devel-ubuntu24.04' -> Version('12.6.3'); None for other images."""
    if not image.startswith("nvidia/cuda:"):
        return None
    try:
        return Version(image.split(":", 1)[1].split("-", 1)[0])
    except ValueError:
        return None
