"""Which format a file is, told by its name and then its content; anything else is refused with
one line that says what compat reads."""

from __future__ import annotations

import enum
import re
from typing import Optional

from compat.errors import InputError
from compat.redact import printable


class Kind(str, enum.Enum):
    SNAPSHOT = "snapshot"
    REQUIREMENTS = "requirements"  # pip freeze, requirements/constraints, pip-compile output
    PYPROJECT = "pyproject"
    PYLOCK = "pylock"
    UVLOCK = "uv.lock"
    CONDA_ENV = "conda-env"  # environment.yml
    CONDA_LIST = "conda-list"  # `conda list --export` / `--explicit`
    DOCKERFILE = "dockerfile"


#: What compat reads, for the one-line refusal of anything else.
READS = (
    "compat env --json snapshots, pip freeze / requirements / constraints files (pip-compile "
    "output too), pyproject.toml, pylock.toml, uv.lock, conda environment.yml and "
    "`conda list --export`/`--explicit` files, and Dockerfiles"
)

# Only the head of a file is looked at to tell its format: enough for any header.
_SNIFF = 64 * 1024
_DOCKERFILE_NAME = re.compile(
    r"^(?:(?:Dockerfile|Containerfile)(?![^/]*\.dockerignore$)(?:[._-][^/]*)?"
    r"|[^/]+\.(?:[Dd]ockerfile|[Cc]ontainerfile))$"
)
_REQUIREMENTS_NAME = re.compile(
    r"^(?:requirements|constraints)[^/]*$|\.(?:txt|in|pip)$", re.IGNORECASE
)
_YAML_NAME = re.compile(r"\.ya?ml$", re.IGNORECASE)
_CONDA_HEADER = re.compile(
    r"^#\s*(?:platform:\s*\S+|\$\s*conda\s+create\b|This file may be used to create an environment)",
    re.IGNORECASE,
)
_CONDA_LINE = re.compile(r"^[A-Za-z0-9_.-]+=[^=\s]+=[^=\s]+$")
_YAML_DEPENDENCIES = re.compile(r"^dependencies\s*:", re.MULTILINE)
_DOCKER_FIRST = re.compile(r"^(?:FROM|ARG)\s", re.IGNORECASE)
_DOCKER_FROM = re.compile(r"^\s*FROM\s+\S", re.IGNORECASE | re.MULTILINE)
_TOML_TABLE = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\"-]+)\s*\]\]?", re.MULTILINE)


def base_name(path: str) -> str:
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def kind_by_name(path: str) -> Optional[Kind]:
    """The format a file name alone tells (None when the content must tell)."""
    base = base_name(path)
    if base == "pyproject.toml":
        return Kind.PYPROJECT
    if base.startswith("pylock") and base.endswith(".toml"):
        return Kind.PYLOCK
    if base == "uv.lock":
        return Kind.UVLOCK
    if _DOCKERFILE_NAME.match(base):
        return Kind.DOCKERFILE
    return None


def requirements_name(path: str) -> bool:
    """Whether the name is one pip's requirement files go by (requirements*.txt, *.in, ...)."""
    base = base_name(path)
    return bool(_REQUIREMENTS_NAME.search(base)) and not _YAML_NAME.search(base)


def _meaningful(text: str, limit: int = 40) -> list[str]:
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            out.append(line)
            if len(out) >= limit:
                break
    return out


def _conda_list(head: str) -> bool:
    lines = head.splitlines()[:40]
    if any(line.strip() == "@EXPLICIT" for line in lines):
        return True
    if any(_CONDA_HEADER.match(line.strip()) for line in lines[:8]):
        return True
    body = _meaningful(head, 20)
    return bool(body) and all(_CONDA_LINE.match(line) for line in body)


def _requirement_like(line: str) -> bool:
    from packaging.requirements import InvalidRequirement

    from compat.models import parse_requirement

    if line.startswith("-"):
        return True
    try:
        parse_requirement(re.split(r"\s#|\s--hash", line, maxsplit=1)[0].strip())
    except InvalidRequirement:
        return False
    return True


def detect(path: str, text: str) -> Kind:
    """The format of a file, by name and then by content; an InputError (exit 3) naming what
    compat reads when it is none of them."""
    named = kind_by_name(path)
    if named is not None:
        return named
    head = text[:_SNIFF]
    stripped = head.lstrip()
    if stripped.startswith("{"):
        if "compat" in head:  # a snapshot names its schema, compat.env/1
            return Kind.SNAPSHOT
        raise InputError(
            f"{printable(path)}: JSON that is not a compat snapshot; compat reads {READS}"
        )
    if _conda_list(head):
        return Kind.CONDA_LIST
    if _YAML_DEPENDENCIES.search(head):
        return Kind.CONDA_ENV
    body = _meaningful(head)
    if body and _DOCKER_FIRST.match(body[0]) and _DOCKER_FROM.search(head):
        return Kind.DOCKERFILE
    tables = {m.group(1).strip('"') for m in _TOML_TABLE.finditer(head)}
    if "package" in tables and re.search(r"^\s*version\s*=\s*[0-9]+\s*$", head, re.MULTILINE):
        return Kind.UVLOCK
    if "packages" in tables and re.search(r"^\s*lock-version\s*=", head, re.MULTILINE):
        return Kind.PYLOCK
    if "project" in tables:
        return Kind.PYPROJECT
    if requirements_name(path):
        return Kind.REQUIREMENTS
    if body and _requirement_like(body[0]):
        return Kind.REQUIREMENTS
    raise InputError(f"{printable(path)}: not a format compat reads; it reads {READS}")
