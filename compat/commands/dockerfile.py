"""`compat dockerfile TARGET... [lock options]`: a build stage (or --full Dockerfile) whose CUDA
base image matches the resolved tuple, ending in a `compat check` that fails the build on errors."""

from __future__ import annotations

import shlex
import sys
from typing import Optional

import click

from compat.commands.common import FAIL_ON, write_report
from compat.errors import UsageError


@click.command("dockerfile")
@click.argument("targets", nargs=-1, required=True, metavar="TARGET...")
@click.option(
    "--cuda",
    metavar="X.Y|auto",
    help="The CUDA build to lock (12.6, or a major: 12); "
    "auto: at most what this host's driver reports.",
)
@click.option(
    "--driver",
    metavar="VERSION|auto",
    help="The target's NVIDIA driver (auto: this host's); checked in the build.",
)
@click.option(
    "--gpu",
    "gpus",
    multiple=True,
    metavar="sm_XY|NAME|auto",
    help="A target GPU (repeatable); checked in the build.",
)
@click.option(
    "--python",
    "python_version",
    metavar="X.Y",
    help="The image's Python (default: this interpreter's).",
)
@click.option("--platform", metavar="PLATFORM", help="x86_64 (default) or aarch64.")
@click.option(
    "--allow",
    multiple=True,
    metavar="ID",
    help="Accept a known-crash advisory that would otherwise rule a tuple out.",
)
@click.option("--hashes", is_flag=True, help="Add --hash=sha256 lines where the database has them.")
@click.option(
    "--full",
    is_flag=True,
    help="A whole Dockerfile: also a serve stage with `compat run` as ENTRYPOINT.",
)
@click.option(
    "--flavor",
    type=click.Choice(["auto", "runtime", "devel"]),
    default="auto",
    show_default=True,
    help="CUDA image flavor; auto: devel when kernels JIT-compile.",
)
@click.option(
    "--os",
    "os_name",
    metavar="ubuntuXX.YY",
    help="The image's Ubuntu (default: the one whose python3 is the target's).",
)
@click.option("--base-image", metavar="IMAGE", help="Use this base image instead of nvidia/cuda.")
@click.option(
    "--compat-spec",
    metavar="SPEC",
    help="Where the image gets compat (pip spec, URL, or a .whl in the build context); "
    "default: this compat's version from the index. Build arg COMPAT_SPEC overrides.",
)
@click.option("--stage", default="stack", show_default=True, help="Name of the build stage.")
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_ON),
    default="error",
    show_default=True,
    help="The build fails on findings at or above this severity.",
)
@click.option("-o", "--output", metavar="FILE", help="Write the Dockerfile to FILE.")
def dockerfile_cmd(
    targets: tuple[str, ...],
    cuda: Optional[str],
    driver: Optional[str],
    gpus: tuple[str, ...],
    python_version: Optional[str],
    platform: Optional[str],
    allow: tuple[str, ...],
    hashes: bool,
    full: bool,
    flavor: str,
    os_name: Optional[str],
    base_image: Optional[str],
    compat_spec: Optional[str],
    stage: str,
    fail_on: str,
    output: Optional[str],
) -> None:
    """A Dockerfile build stage for TARGET (resolved as `compat lock` does): nvidia/cuda base
    image of the tuple's CUDA (devel when kernels compile at run time), Python, the stack from the
    lock's pins and index lines, and a `compat check` of the installed stack against the target
    host (--driver, --gpu) that fails the build on errors. --full adds a serve stage whose
    ENTRYPOINT is `compat run`.

    \b
      compat dockerfile sglang==0.4.6.post1 --driver 550.54.15 --gpu h100 --python 3.10 --full
    """
    from compat import __version__
    from compat.advisories import load_advisories
    from compat.commands.lock import build_target
    from compat.emit.dockerfile import DockerOptions, cuda_images, render_dockerfile
    from compat.matrix.load import Matrix
    from compat.nvidia import driver_runs, fmt_driver
    from compat.resolve import resolve
    from compat.resources import advisories_dir

    if not stage.replace("-", "").replace("_", "").isalnum() or stage == "serve":
        raise UsageError(
            f"--stage {stage!r}: a stage name of letters, digits, - and _ (not 'serve')"
        )
    matrix = Matrix()
    target = build_target(targets, cuda, driver, gpus, python_version, platform, allow, matrix)
    res = resolve(target, matrix, load_advisories(advisories_dir()))
    check_args: list[str] = []
    if target.driver is not None:
        check_args += ["--driver", fmt_driver(target.driver)]
    for g in target.gpus:
        # a name compat knows carries memory and matches name-based advisories; else sm_XY
        check_args += ["--gpu", g.name if matrix.gpu(g.name) is not None else g.sm]
    disable_require = None
    if target.driver is not None and res.cuda[:1].isdigit():
        state, why = driver_runs(matrix, target.driver, res.cuda)
        disable_require = why if state == "minor" else None
    argv = (
        sys.argv[sys.argv.index("dockerfile") + 1 :] if "dockerfile" in sys.argv else list(targets)
    )
    argv = [
        a
        for i, a in enumerate(argv)
        if a not in ("-o", "--output") and (i == 0 or argv[i - 1] not in ("-o", "--output"))
    ]
    opts = DockerOptions(
        command="compat dockerfile " + " ".join(shlex.quote(a) for a in argv),
        version=__version__,
        full=full,
        os=os_name,
        flavor=flavor,
        base_image=base_image,
        compat_spec=compat_spec,
        check_args=tuple(check_args),
        disable_require=disable_require,
        fail_on=fail_on,
        stage=stage,
        hashes=hashes,
    )
    write_report(render_dockerfile(res, opts, cuda_images(matrix)), output)
