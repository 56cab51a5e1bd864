"""Conda files: environment.yml (conda packages, its `pip:` list, `variables:`) and `conda list`
output (`--export`, `--explicit`, the plain table). Conda packages that are packages of the stack
are mapped by curated/conda.toml; `pytorch-cuda`, `cuda-version`, `cudatoolkit` and pytorch's build
string tell its CUDA build. environment.yml is read by a small bounded reader of the YAML subset
conda writes (no PyYAML needed), so every line keeps its number and a line outside that subset is
named rather than guessed at."""

from __future__ import annotations

import re
import urllib.parse
from typing import Optional

import msgspec
import msgspec.structs
from msgspec import Struct
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from compat.inputs.base import (
    MAX_ENTRIES,
    MAX_LINE,
    MAX_LINES,
    Note,
    Pin,
    PinFile,
    ReadOptions,
    Setting,
)
from compat.inputs.requirements import Problem, read_requirements
from compat.matrix.load import Matrix
from compat.matrix.schema import CondaPackage
from compat.models import Code, Finding, Severity, canonicalize_name, parse_version
from compat.redact import quote_line

# `[channel::]name` then a version and build: `=1.2=build`, `==1.2`, `>=1.2,<2`, ` 1.2 build`.
_SPEC = re.compile(
    r"^(?:(?P<channel>[A-Za-z0-9_./:-]+)::)?(?P<name>[A-Za-z0-9_][A-Za-z0-9_.-]*)"
    r"(?P<rest>.*)$"
)
_BRACKET = re.compile(r"^\[(?P<body>[^\]]*)\]$")
_BRACKET_ITEM = re.compile(r"\s*([a-z_]+)\s*=\s*(['\"]?)([^,'\"]*)\2\s*(?:,|$)")
_CUDA_TOKEN = re.compile(r"^cuda([0-9]+)(?:\.([0-9]+))?")
_PLATFORMS = {"linux-64": "x86_64", "linux-aarch64": "aarch64"}


class CondaSpec(Struct, frozen=True):
    """One conda package as a file states it."""

    name: str
    version: Optional[str]  # exact version, when the spec pins one
    spec: str  # the version constraint as written ("" for none)
    build: str  # build string or glob ("" for none)
    line: int
    text: str


def _exact(version: str) -> bool:
    v = parse_version(version)
    return v is not None and len(v.release) >= 3 and "*" not in version


def parse_spec(text: str, line: int) -> Optional[CondaSpec]:
    """A conda MatchSpec of the common shapes, or None when it is not one compat understands."""
    t = text.strip()
    if not t or len(t) > 1024:
        return None
    m = _SPEC.match(t)
    if not m:
        return None
    name, rest = m.group("name").lower(), m.group("rest").strip()
    version: Optional[str] = None
    spec = build = ""
    bracket = _BRACKET.match(rest)
    if bracket:
        fields = {k: v for k, _, v in _BRACKET_ITEM.findall(bracket.group("body"))}
        spec, build = fields.get("version", ""), fields.get("build", "")
    elif rest.startswith("=="):
        spec = rest[2:].strip()
    elif rest.startswith("=") and not rest.startswith("=="):
        parts = rest[1:].split("=", 1)
        spec = parts[0].strip()
        build = parts[1].strip() if len(parts) > 1 else ""
    elif rest and rest[0] in "<>!~":
        spec = rest
    elif rest:
        words = rest.split()
        if len(words) > 2 or not re.match(r"^[0-9*<>=!~]", words[0]):
            return None
        spec = words[0]
        build = words[1] if len(words) > 1 else ""
    if spec and not re.match(r"^[A-Za-z0-9_.*+!<>=~,| -]+$", spec):
        return None
    if build and not re.match(r"^[A-Za-z0-9_.*+-]+$", build):
        return None
    plain = spec.lstrip("=").strip()
    if spec and not any(c in spec for c in "<>!~,|") and _exact(plain):
        version = plain
    return CondaSpec(name, version, spec, build, line, t)


def build_cuda(build: str) -> Optional[str]:
    """The CUDA a build string names: `cuda126_generic_py311_h...` (conda-forge) -> "12.6",
    `py3.11_cuda12.4_cudnn9.1.0_0` (pytorch channel) -> "12.4", `cpu_...` -> "cpu"."""
    for token in build.lower().split("_"):
        if token.startswith("cpu"):
            return "cpu"
        m = _CUDA_TOKEN.match(token)
        if m:
            if m.group(2) is not None:
                return f"{m.group(1)}.{m.group(2)}"
            digits = m.group(1)
            if len(digits) in (2, 3):
                return f"{digits[:-1]}.{digits[-1]}"
    return None


# --------------------------------------------------------------------------------------------
# environment.yml: the subset of YAML conda writes
# --------------------------------------------------------------------------------------------


class _Item(Struct, frozen=True):
    text: str
    line: int


class _EnvYml(Struct):
    name: str = ""
    channels: list[_Item] = msgspec.field(default_factory=list)
    conda: list[_Item] = msgspec.field(default_factory=list)
    pip: list[_Item] = msgspec.field(default_factory=list)
    variables: list[tuple[str, str, int]] = msgspec.field(default_factory=list)


def _strip_comment(line: str) -> str:
    """The line without a trailing ` # comment` (a `#` inside quotes is kept)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def _scalar(text: str) -> Optional[str]:
    """A plain or quoted YAML scalar; None for anything else (anchors, tags, flow mappings)."""
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1]
    if not t or t[0] in "&*!{[|>@`%":
        return None
    return t


def _flow_list(text: str) -> Optional[list[str]]:
    t = text.strip()
    if not (t.startswith("[") and t.endswith("]")):
        return None
    out = []
    for part in t[1:-1].split(","):
        if part.strip():
            s = _scalar(part)
            if s is None:
                return None
            out.append(s)
    return out


def _parse_env_yml(text: str, path: str, problems: list[Problem]) -> _EnvYml:
    """Top-level keys with a scalar, a flow list or a block list; under `dependencies`, one
    `- pip:` entry holding a block list; `variables` as a block mapping. Other keys are skipped;
    a line of `dependencies`/`channels`/`variables` outside this shape is named."""
    doc = _EnvYml()
    section = ""
    in_pip = False
    pip_indent = -1
    for n, raw in enumerate(text.splitlines(), 1):
        if n > MAX_LINES:
            problems.append((path, n, f"more than {MAX_LINES} lines: the rest is not read"))
            break
        if len(raw) > MAX_LINE:
            problems.append((path, n, f"a line of {len(raw)} characters is not understood"))
            continue
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            problems.append((path, n, "a tab in the indentation is not YAML"))
            continue
        line = _strip_comment(raw)
        if not line.strip() or line.strip() in ("---", "..."):
            continue
        indent = len(line) - len(line.lstrip(" "))
        body = line.strip()
        if indent == 0 and not body.startswith("-"):
            key, sep, value = body.partition(":")
            if not sep:
                problems.append((path, n, f"not understood: {quote_line(body)}"))
                section = ""
                continue
            section, in_pip = key.strip(), False
            value = value.strip()
            if section == "name":
                doc.name = _scalar(value) or ""
            elif section in ("channels", "dependencies") and value:
                items = _flow_list(value)
                if items is None:
                    problems.append((path, n, f"{section}: not understood: {quote_line(value)}"))
                    continue
                target = doc.channels if section == "channels" else doc.conda
                target.extend(_Item(i, n) for i in items)
            continue
        if section not in ("channels", "dependencies", "variables"):
            continue  # prefix, other keys: nothing compat checks
        if section == "variables":
            key, sep, value = body.partition(":")
            val = _scalar(value) if sep else None
            if not sep or (val is None and value.strip()):
                problems.append((path, n, f"variables: not understood: {quote_line(body)}"))
                continue
            doc.variables.append((key.strip(), val or "", n))
            continue
        if not body.startswith("-"):
            problems.append((path, n, f"{section}: not understood: {quote_line(body)}"))
            continue
        item = body[1:].strip()
        if in_pip and indent > pip_indent:
            pip_item = _scalar(item)
            if pip_item is None:
                problems.append((path, n, f"pip: not understood: {quote_line(item)}"))
            else:
                doc.pip.append(_Item(pip_item, n))
            continue
        in_pip = False
        if section == "dependencies" and re.match(r"^pip\s*:\s*$", item):
            in_pip, pip_indent = True, indent
            continue
        entry = _scalar(item)
        if entry is None or re.match(r"^[A-Za-z0-9_.-]+\s*:(\s|$)", item):
            problems.append((path, n, f"{section}: not understood: {quote_line(item)}"))
            continue
        (doc.channels if section == "channels" else doc.conda).append(_Item(entry, n))
        if len(doc.conda) + len(doc.pip) > MAX_ENTRIES:
            problems.append((path, n, f"more than {MAX_ENTRIES} packages: the rest is not read"))
            break
    return doc


# --------------------------------------------------------------------------------------------
# Conda packages -> pins of the stack
# --------------------------------------------------------------------------------------------


def _note(path: str, line: int, severity: Severity, message: str, *packages: str) -> Note:
    return Note(
        path,
        line,
        Finding(
            Code.PIN_CONFLICT.value,
            severity,
            message,
            fix=("keep one CUDA build: e.g. `pytorch=*=cuda126*` with `cuda-version=12.6`",),
            packages=packages,
        ),
    )


class _Mapped(Struct, frozen=True):
    pins: list[Pin]
    notes: list[Note]
    python: Optional[str]


def map_specs(specs: list[CondaSpec], path: str, matrix: Matrix) -> _Mapped:
    """Conda packages as pins of the stack: names from curated/conda.toml, torch's CUDA from its
    build string, `pytorch-cuda` or the environment's CUDA limit; conflicting CUDA statements and
    a package listed twice are notes."""
    table: dict[str, CondaPackage] = {r.conda: r for r in matrix.conda_packages}
    notes: list[Note] = []
    python: Optional[str] = None
    seen: dict[str, CondaSpec] = {}
    for s in specs:
        if s.name == "python" and python is None:
            v = s.version or s.spec.lstrip("=").rstrip(".*").strip()
            if re.match(r"^3\.[0-9]+(\.[0-9]+)?$", v):
                python = v
        old = seen.get(s.name)
        if old is not None and old.version and s.version and old.version != s.version:
            notes.append(
                _note(
                    path,
                    s.line,
                    Severity.ERROR,
                    f"{s.name} is listed twice: {old.version} (line {old.line}) and {s.version}",
                    s.name,
                )
            )
        seen.setdefault(s.name, s)
    build_of: dict[str, tuple[str, CondaSpec]] = {}  # CUDA "build" statements (pytorch-cuda)
    limits: list[tuple[str, CondaSpec]] = []
    for s in seen.values():
        row = table.get(s.name)
        if row is None or not row.cuda:
            continue
        v = s.version or s.spec.lstrip("=").strip().rstrip("*").rstrip(".")
        cuda = _major_minor(v)
        if cuda is None:
            continue
        if row.cuda == "build":
            build_of[s.name] = (cuda, s)
        else:
            limits.append((cuda, s))
    torch_spec = next(
        (
            s
            for s in seen.values()
            if (r := table.get(s.name)) and canonicalize_name(r.pypi) == "torch"
        ),
        None,
    )
    torch_cuda: Optional[str] = None
    torch_row = table.get(torch_spec.name) if torch_spec else None
    if (
        torch_spec is not None
        and torch_row is not None
        and torch_row.build_cuda
        and torch_spec.build
    ):
        torch_cuda = build_cuda(torch_spec.build)
    for cuda, s in build_of.values():
        if torch_cuda is not None and torch_cuda != "cpu" and torch_cuda != cuda:
            assert torch_spec is not None
            notes.append(
                _note(
                    path,
                    s.line,
                    Severity.ERROR,
                    f"{s.name}={cuda} selects the CUDA {cuda} build, but {torch_spec.name}'s build "
                    f"string {torch_spec.build} (line {torch_spec.line}) is the CUDA {torch_cuda} "
                    "one: the solver cannot satisfy both",
                    "torch",
                )
            )
        torch_cuda = torch_cuda or cuda
    major: Optional[str] = torch_cuda.split(".")[0] if torch_cuda and torch_cuda != "cpu" else None
    for cuda, s in limits:
        have = _version(cuda)
        built = _version(torch_cuda) if torch_cuda and torch_cuda != "cpu" else None
        if built is not None and have is not None and (built.major != have.major or built > have):
            notes.append(
                _note(
                    path,
                    s.line,
                    Severity.ERROR,
                    f"{s.name}={cuda} rules out torch's CUDA {torch_cuda} build (it needs "
                    f"{s.name} >={torch_cuda},<{built.major + 1}): the solver cannot satisfy both",
                    "torch",
                )
            )
        major = major or cuda.split(".")[0]
        if torch_cuda is None:
            torch_cuda = cuda.split(".")[0]  # the major alone: the build's minor is not said
    pins: list[Pin] = []
    for s in seen.values():
        row = table.get(s.name)
        if row is None or not row.pypi:
            continue
        pypi = row.pypi
        if "{cuda_major}" in pypi:
            if major is None:
                continue
            pypi = pypi.replace("{cuda_major}", major)
        try:
            spec = SpecifierSet(f"=={s.version}") if s.version else SpecifierSet()
        except InvalidSpecifier:
            spec = SpecifierSet()
        stated: Optional[str] = None
        if canonicalize_name(pypi) == "torch":
            stated = torch_cuda
        elif row.build_cuda and s.build:
            stated = build_cuda(s.build)
        pins.append(
            Pin(
                pypi,
                spec,
                s.version,
                None,
                path,
                s.line,
                s.text,
                cuda=stated,
                via=f"conda package {s.name}",
            )
        )
    return _Mapped(pins, notes, python)


def _major_minor(text: str) -> Optional[str]:
    v = parse_version(text)
    if v is None or not v.release:
        return None
    return f"{v.release[0]}.{v.release[1] if len(v.release) > 1 else 0}"


def _version(text: Optional[str]) -> Optional[Version]:
    return parse_version(text) if text else None


def _specs(items: list[_Item], path: str, problems: list[Problem]) -> list[CondaSpec]:
    out = []
    for item in items:
        spec = parse_spec(item.text, item.line)
        if spec is None:
            problems.append((path, item.line, f"not a conda package spec: {quote_line(item.text)}"))
            continue
        out.append(spec)
    return out


def _pip_pins(
    items: list[_Item], path: str, opts: ReadOptions, problems: list[Problem]
) -> list[Pin]:
    """The `pip:` list read as a requirements file whose lines are the items' own lines."""
    if not items:
        return []
    slots = [""] * max(i.line for i in items)
    for i in items:
        slots[i.line - 1] = i.text
    pins, found = read_requirements("\n".join(slots) + "\n", path, opts.read)
    problems.extend(found)
    return pins


def _pip_over_conda(pip: list[Pin], conda: list[Pin], path: str) -> list[Note]:
    by = {p.key: p for p in conda}
    out = []
    for p in pip:
        c = by.get(p.key)
        if c is None:
            continue
        out.append(
            Note(
                path,
                p.line,
                Finding(
                    Code.PIN_CONFLICT.value,
                    Severity.WARNING,
                    f"pip installs {quote_line(p.text)} over the conda package on line "
                    f"{c.line} ({quote_line(c.text)}): pip's files replace conda's, which conda "
                    "still lists",
                    fix=(f"install {p.name} from one of them only",),
                    packages=(p.name,),
                ),
            )
        )
    return out


def read_environment_yml(
    text: str, path: str, matrix: Matrix, opts: Optional[ReadOptions] = None
) -> PinFile:
    """An environment.yml: the stack among its conda packages and its `pip:` list (pip's pins
    first: pip installs after conda, over it), `variables:` as the environment's variables."""
    opts = opts or ReadOptions()
    problems: list[Problem] = []
    doc = _parse_env_yml(text, path, problems)
    mapped = map_specs(_specs(doc.conda, path, problems), path, matrix)
    pip = _pip_pins(doc.pip, path, opts, problems)
    notes = mapped.notes + _pip_over_conda(pip, mapped.pins, path)
    env = tuple(Setting(k, v, path, n) for k, v, n in doc.variables[:MAX_ENTRIES])
    return PinFile(
        path,
        (("", tuple(pip + mapped.pins)),),
        tuple(sorted(problems, key=lambda p: p[1])),
        env=env,
        notes=tuple(notes),
        python=mapped.python,
        kind="conda-env",
    )


def read_conda_list(
    text: str, path: str, matrix: Matrix, opts: Optional[ReadOptions] = None
) -> PinFile:
    """`conda list --export` (`name=version=build`), `conda list --explicit` (package URLs after
    `@EXPLICIT`) or the plain `conda list` table (name, version, build, channel)."""
    problems: list[Problem] = []
    specs: list[CondaSpec] = []
    machine: Optional[str] = None
    explicit = False
    for n, raw in enumerate(text.splitlines(), 1):
        if n > MAX_LINES or len(specs) > MAX_ENTRIES:
            problems.append((path, n, "too many lines: the rest is not read"))
            break
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            m = re.match(r"^#\s*platform:\s*(\S+)", line)
            if m:
                machine = _PLATFORMS.get(m.group(1), machine)
            continue
        if len(line) > MAX_LINE:
            problems.append((path, n, f"a line of {len(line)} characters is not understood"))
            continue
        if line == "@EXPLICIT":
            explicit = True
            continue
        if explicit or "://" in line:
            spec = _from_url(line, n)
            if spec is None:
                problems.append((path, n, f"not a conda package URL: {quote_line(line)}"))
                continue
            sub = _subdir(line)
            machine = _PLATFORMS.get(sub, machine) if sub else machine
            specs.append(spec)
            continue
        words = line.split()
        if len(words) >= 3 and "=" not in line:  # the plain table: name version build [channel]
            spec = parse_spec(f"{words[0]}=={words[1]}", n)
            spec = msgspec.structs.replace(spec, build=words[2], text=line) if spec else None
        else:
            spec = parse_spec(line, n)
        if spec is None:
            problems.append((path, n, f"not a conda package line: {quote_line(line)}"))
            continue
        specs.append(spec)
    mapped = map_specs(specs, path, matrix)
    return PinFile(
        path,
        (("", tuple(mapped.pins)),),
        tuple(problems),
        notes=tuple(mapped.notes),
        python=mapped.python,
        machine=machine,
        kind="conda-list",
    )


def _subdir(url: str) -> str:
    parts = urllib.parse.urlsplit(url.split("#", 1)[0]).path.rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 else ""


def _from_url(url: str, line: int) -> Optional[CondaSpec]:
    """`.../linux-64/pytorch-2.5.1-cuda126_py311h1234_303.conda#md5` -> name, version, build."""
    try:
        tail = urllib.parse.unquote(urllib.parse.urlsplit(url.split("#", 1)[0]).path)
    except ValueError:
        return None
    base = tail.rstrip("/").rsplit("/", 1)[-1]
    for ext in (".conda", ".tar.bz2"):
        if base.endswith(ext):
            base = base[: -len(ext)]
            break
    else:
        return None
    parts = base.rsplit("-", 2)
    if len(parts) != 3 or not all(parts):
        return None
    name, version, build = parts
    spec = parse_spec(f"{name}=={version}", line)
    return msgspec.structs.replace(spec, build=build, text=url) if spec else None
