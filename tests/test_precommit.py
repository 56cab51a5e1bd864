"""The `compat-lint` pre-commit hook, run by real pre-commit against this checkout.

pre-commit installs the hook into a fresh virtualenv with pip, which needs compat's build backend
(hatchling) and dependencies. To run offline, the test packs those from this interpreter's own
installed distributions (compiled ones as they are) into a local wheelhouse and points pip at it alone
(PIP_NO_INDEX, PIP_FIND_LINKS). Where that is not possible, the test is skipped with the reason.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata as md
import io
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
LINT = REPO / "tests" / "assets" / "lint"
_SKIP_IN_RECORD = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"}


def _needs(names: list[str]) -> list[md.Distribution]:
    """The installed distributions `names` need at run time (markers for this interpreter)."""
    out: dict[str, md.Distribution] = {}
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in out:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            pytest.skip(
                f"{name} is not installed here, so the hook cannot be installed offline "
                f"(pip install {name})"
            )
        out[name] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(out.values())


def _wheel_of(dist: md.Distribution, dest: Path) -> Path:
    """A wheel rebuilt from an installed distribution (its RECORD lists the files), named by a
    tag of its WHEEL file that this interpreter installs (a compiled one repacks as it is)."""
    from packaging.tags import sys_tags

    wheel_meta = dist.read_text("WHEEL") or ""
    ours = {str(t) for t in sys_tags()}
    tags = [t for t in re.findall(r"^Tag:\s*(\S+)", wheel_meta, re.M) if t in ours]
    if not tags:
        pytest.skip(f"{dist.metadata['Name']}: no wheel tag this interpreter installs")
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"]).lower()
    path = dest / f"{name}-{dist.version}-{tags[0]}.whl"
    base = Path(str(dist.locate_file("")))
    rows: list[tuple[str, str, str]] = []
    info_dir = ""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in dist.files or []:
            rel = f.as_posix()
            if rel.startswith("..") or "__pycache__" in rel or rel.endswith(".pyc"):
                continue
            if ".dist-info/" in rel:
                info_dir = rel.split("/", 1)[0]
                if rel.rsplit("/", 1)[-1] in _SKIP_IN_RECORD:
                    continue
            data = (base / rel).read_bytes()
            zf.writestr(rel, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            rows.append((rel, f"sha256={digest}", str(len(data))))
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([*rows, (f"{info_dir}/RECORD", "", "")])
        zf.writestr(f"{info_dir}/RECORD", buf.getvalue())
    return path


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment for pre-commit: a wheelhouse with hatchling and compat's dependencies, the
    package index switched off, and pre-commit's cache in a temporary folder."""
    pytest.importorskip("pre_commit", reason="pre-commit is not installed (pip install pre-commit)")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    if (
        subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, check=False
        ).returncode
        != 0
    ):
        pytest.skip(f"{REPO} is not a git checkout: pre-commit try-repo clones one")
    compat_deps = [Requirement(r) for r in md.requires("compat") or []]
    runtime = [r.name for r in compat_deps if r.marker is None or r.marker.evaluate({"extra": ""})]
    house = tmp_path_factory.mktemp("wheelhouse")
    for dist in _needs(["hatchling", *runtime]):
        _wheel_of(dist, house)
    env = dict(os.environ)
    for key in list(env):
        if key.startswith(("PIP_", "PRE_COMMIT", "VIRTUALENV_")):
            del env[key]
    env.update(
        {
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": str(house),
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PRE_COMMIT_HOME": str(tmp_path_factory.mktemp("pre-commit-home")),
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
        }
    )
    yield env


def _project(tmp: Path, files: dict[str, str], env: dict[str, str]) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp)], check=True, env=env)
    for name, text in files.items():
        (tmp / name).write_text(text)
    subprocess.run(["git", "add", "."], cwd=tmp, check=True, env=env)
    return tmp


def _try_repo(project: Path, env: dict[str, str], *files: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pre_commit",
            "try-repo",
            str(REPO),
            "compat-lint",
            "--files",
            *files,
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_hook_fails_a_bad_requirements_file_and_passes_a_good_one(
    tmp_path: Path, offline: dict[str, str]
) -> None:
    project = _project(
        tmp_path,
        {
            "requirements.txt": (LINT / "requirements-torch-triton.txt").read_text(),
            "requirements-serve.txt": (LINT / "requirements-good.txt").read_text(),
            "README.md": "not linted\n",
        },
        offline,
    )
    bad = _try_repo(project, offline, "requirements.txt", "README.md")
    out = bad.stdout + bad.stderr
    assert bad.returncode == 1, out
    assert "compat lint" in out and "Failed" in out
    assert (
        "requirements.txt:5: torch-triton error: triton 3.1.0 does not match torch 2.7.1+cu126, "
        "which requires triton==3.3.1"
    ) in out
    good = _try_repo(project, offline, "requirements-serve.txt", "README.md")
    assert good.returncode == 0, good.stdout + good.stderr
    assert re.search(r"compat lint .*Passed", good.stdout), good.stdout


INPUTS = REPO / "tests" / "assets" / "inputs"


@pytest.mark.slow
def test_hook_reads_dockerfiles_uv_locks_and_conda_files(
    tmp_path: Path, offline: dict[str, str]
) -> None:
    """The hook on a repository holding each kind of file, broken and then fixed."""
    docker = INPUTS / "docker"
    bad = {
        "Dockerfile": (docker / "cuda12-base-cu13-torch.Dockerfile").read_text(),
        "uv.lock": (INPUTS / "uvlock" / "bad" / "uv.lock").read_text(),
        "environment.yml": (INPUTS / "conda" / "environment-broken.yml").read_text(),
        "notes.md": "not linted\n",
    }
    project = _project(tmp_path, bad, offline)
    run = _try_repo(project, offline, *bad)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "Dockerfile:11: cuda-mix error: CUDA 12 parts beside a CUDA 13 torch" in out
    assert "uv.lock:29: framework-pin error: sglang 0.4.6.post1 requires torch==2.6.0" in out
    assert "environment.yml:9: pin-conflict error: pytorch-cuda=12.1" in out
    assert "notes.md" not in out
    (project / "Dockerfile").write_text((docker / "cuda12-base-cu12-torch.Dockerfile").read_text())
    (project / "uv.lock").write_text((INPUTS / "uvlock" / "good" / "uv.lock").read_text())
    (project / "environment.yml").write_text((INPUTS / "conda" / "environment.yml").read_text())
    subprocess.run(["git", "add", "."], cwd=project, check=True, env=offline)
    good = _try_repo(project, offline, *bad)
    assert good.returncode == 0, good.stdout + good.stderr
    assert re.search(r"compat lint .*Passed", good.stdout), good.stdout


def test_hook_manifest_is_valid_and_matches_the_linted_names() -> None:
    pytest.importorskip("pre_commit", reason="pre-commit is not installed (pip install pre-commit)")
    from pre_commit.clientlib import load_manifest

    from compat.lint import FILE_PATTERN

    (hook,) = load_manifest(str(REPO / ".pre-commit-hooks.yaml"))
    assert hook["id"] == "compat-lint" and hook["language"] == "python"
    assert hook["entry"] == "compat lint"
    assert hook["files"] == FILE_PATTERN.pattern


def _docs_local_config() -> str:
    doc = (REPO / "docs" / "integrations.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    (local,) = [b for b in blocks if "repo: local" in b]
    return local


def test_the_documented_local_hook_works_as_written(tmp_path: Path) -> None:
    pytest.importorskip("pre_commit", reason="pre-commit is not installed (pip install pre-commit)")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    import yaml

    from compat.lint import FILE_PATTERN

    config = _docs_local_config()
    (hook,) = yaml.safe_load(config)["repos"][0]["hooks"]
    assert hook["files"] == FILE_PATTERN.pattern
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRE_COMMIT", "GIT_"))}
    # `language: system` runs the `compat` on PATH: this interpreter's
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")
    env.update(
        {
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
        }
    )
    project = _project(
        tmp_path / "project",
        {
            ".pre-commit-config.yaml": config,
            "requirements.txt": (LINT / "requirements-torch-triton.txt").read_text(),
            "constraints-serve.txt": (LINT / "requirements-good.txt").read_text(),
        },
        env,
    )

    def run(*files: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pre_commit", "run", "--files", *files],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    bad = run("requirements.txt")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "requirements.txt:5: torch-triton error" in bad.stdout
    good = run("constraints-serve.txt", ".pre-commit-config.yaml")
    assert good.returncode == 0, good.stdout + good.stderr
