"""Dockerfiles: the stack of the stage that runs (the last one, with the stages it is built FROM
and copies from), from its base image (curated/images.toml: an image's CUDA, its
NVIDIA_REQUIRE_CUDA and the stack a framework image installs), its `pip install` / `uv pip
install` / `conda install` lines (pins, index options, `-r`/`-c` files of the build context), its
ENV lines, and its ENTRYPOINT/CMD.

The Dockerfile is read by a small bounded reader of Docker's syntax (parser directives, escape
character, continuation lines, comments, heredocs, exec and shell forms) rather than a library: a
pre-commit hook installs no extra package, every instruction keeps its line numbers, and no input
can make it recurse or run long. tests/test_inputs_dockerfile.py compares it with dockerfile-parse.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections.abc import Iterator, Sequence
from typing import Optional

import msgspec
import msgspec.structs
from msgspec import Struct, field
from packaging.requirements import InvalidRequirement
from packaging.specifiers import SpecifierSet

from compat.families import families
from compat.inputs.base import (
    BEST,
    FIRST,
    MAX_ENTRIES,
    MAX_LINE,
    MAX_LINES,
    Note,
    Pin,
    PinFile,
    ReadOptions,
    Setting,
)
from compat.inputs.requirements import (
    Problem,
    pin_from_requirement,
    read_requirements,
)
from compat.inputs.stack import implied
from compat.matrix.load import Matrix
from compat.matrix.schema import ImageRepository
from compat.models import (
    Code,
    Finding,
    Severity,
    canonicalize_name,
    first_line,
    parse_requirement,
    parse_version,
)
from compat.redact import quote_line

# Bounds: a Dockerfile of a serving image is a few hundred lines.
MAX_INSTRUCTIONS = 4096
MAX_INSTRUCTION = 1024 * 1024  # one instruction with its continuations and heredocs
MAX_STAGES = 128
MAX_WORDS = 100_000

INSTRUCTIONS = frozenset(
    {
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    }
)
_DIRECTIVE = re.compile(r"^#\s*([A-Za-z]+)\s*=\s*(\S+)\s*$")
_HEREDOC = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
_VAR = re.compile(
    r"\\\$|\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))"
)
_PLATFORM = {"linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm64/v8": "aarch64"}


class Instruction(Struct, frozen=True):
    """One instruction: its keyword (upper case), its text with continuation lines joined (the
    escape character and comment lines removed), heredoc bodies, and its first and last line."""

    keyword: str
    value: str
    start: int
    end: int
    heredocs: tuple[str, ...] = ()


def parse(text: str, path: str = "Dockerfile") -> tuple[list[Instruction], list[Problem]]:
    """The instructions of a Dockerfile and the lines that are not Docker's syntax."""
    problems: list[Problem] = []
    lines = text.splitlines()
    if len(lines) > MAX_LINES:
        problems.append((path, MAX_LINES, f"more than {MAX_LINES} lines: the rest is not read"))
        lines = lines[:MAX_LINES]
    escape = "\\"
    i = 0
    # Parser directives: comment lines at the very top (`# escape=`` `, `# syntax=...`).
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i].strip())
        if not m:
            break
        if m.group(1).lower() == "escape" and m.group(2) in ("\\", "`"):
            escape = m.group(2)
        i += 1
    out: list[Instruction] = []
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = i
        parts: list[str] = []
        size = 0
        while True:
            line = lines[i]
            if len(line) > MAX_LINE:
                problems.append((path, i + 1, f"a line of {len(line)} characters"))
                line = ""
            body = line.rstrip()
            i += 1
            if body.endswith(escape):
                parts.append(body[: -len(escape)])
                size += len(body)
                # the next lines: comments and empty lines inside a continuation are skipped
                while i < len(lines) and (
                    not lines[i].strip() or lines[i].lstrip().startswith("#")
                ):
                    i += 1
                if i >= len(lines) or size > MAX_INSTRUCTION:
                    break
                continue
            parts.append(body)
            break
        joined = " ".join(p.strip() for p in parts if p.strip())
        word, _, rest = joined.partition(" ")
        keyword = word.upper()
        if keyword not in INSTRUCTIONS:
            problems.append(
                (path, start + 1, f"not a Dockerfile instruction: {quote_line(joined)}")
            )
            continue
        heredocs: list[str] = []
        if keyword in ("RUN", "COPY", "ADD"):
            for m in _HEREDOC.finditer(rest):
                strip_tabs, name = m.group(1) == "-", m.group(3)
                body_lines: list[str] = []
                while i < len(lines):
                    line = lines[i]
                    i += 1
                    if (line.lstrip("\t") if strip_tabs else line).rstrip() == name:
                        break
                    body_lines.append(line)
                    if len(body_lines) > MAX_LINES:
                        break
                else:
                    problems.append((path, start + 1, f"heredoc {name} has no end line"))
                heredocs.append("\n".join(body_lines))
        out.append(
            Instruction(
                keyword,
                rest.strip(),
                start + 1,
                i,
                tuple(heredocs),
            )
        )
        if len(out) >= MAX_INSTRUCTIONS:
            problems.append((path, i, f"more than {MAX_INSTRUCTIONS} instructions"))
            break
    return out, problems


def substitute(text: str, values: dict[str, str]) -> str:
    """Docker's variable substitution, once: `$A`, `${A}`, `${A:-default}`, `${A:+alt}`; an
    unknown variable is empty, `\\$` a dollar."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "\\$":
            return "$"
        name = m.group(1) or m.group(4)
        value = values.get(name)
        op, word = m.group(2), m.group(3) or ""
        if op in (":-", "-"):
            return value if value or (op == "-" and value is not None) else word
        if op in (":+", "+"):
            return word if value or (op == "+" and value is not None) else ""
        return value or ""

    return _VAR.sub(one, text)


# --------------------------------------------------------------------------------------------
# Base images
# --------------------------------------------------------------------------------------------


def _template(pattern: str) -> re.Pattern[str]:
    """A tag pattern of images.toml as a regex: `{version}`, `{cuda}`, `{cu}`, `{any}`."""
    fields = {
        "version": r"(?P<version>[0-9][A-Za-z0-9.!+]*?)",
        "cuda": r"(?P<cuda>[0-9]+\.[0-9]+(?:\.[0-9]+)?)",
        "cu": r"(?P<cu>[0-9]{2,3})",
        "any": r"(?P<any>.*)",
    }
    out = []
    for piece in re.split(r"(\{[a-z_]+\})", pattern):
        name = piece[1:-1] if piece.startswith("{") and piece.endswith("}") else None
        out.append(fields[name] if name in fields else re.escape(piece))
    return re.compile("^" + "".join(out) + "$")


class ImageRef(Struct, frozen=True):
    repository: str
    tag: str


def image_ref(text: str) -> Optional[ImageRef]:
    """`docker.io/library/x:tag@sha256:...` -> (x, tag); None for an empty or odd reference."""
    ref = text.strip().split("@", 1)[0]
    if not ref or " " in ref:
        return None
    name, tag = ref, "latest"
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = ref.rsplit(":", 1)
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    if name.startswith("library/"):
        name = name[len("library/") :]
    return ImageRef(name.lower(), tag)


class BaseFacts(Struct, frozen=True):
    """What a base image brings: stack pins, the variables it sets, its Python, notes."""

    pins: tuple[Pin, ...] = ()
    env: tuple[Setting, ...] = ()
    python: Optional[str] = None
    notes: tuple[Note, ...] = ()
    known: bool = False


def _torch_index(cuda: str, matrix: Matrix) -> str:
    """The PyTorch index of a CUDA minor (indexes.toml), "" when there is none."""
    for row in matrix.indexes:
        if (
            row.cuda == cuda
            and "torch" in row.projects
            and row.local == "cu" + cuda.replace(".", "")
        ):
            return row.url
    return ""


def base_facts(
    text: str, path: str, line: int, matrix: Matrix, python: Optional[str], machine: str
) -> BaseFacts:
    """The facts curated/images.toml holds about an image reference."""
    ref = image_ref(text)
    if ref is None:
        return BaseFacts()
    text = quote_line(text).strip("'\"")  # the reference as messages show it
    repos = [r for r in matrix.image_repositories if r.name == ref.repository]
    if not repos:
        return BaseFacts()
    repo = repos[0]
    for tag in repo.tags:
        m = _template(tag.pattern).match(ref.tag)
        if m:
            return _facts(
                repo, tag.cuda_image, m.groupdict(), text, path, line, matrix, python, machine
            )
    return BaseFacts(
        notes=(
            Note(
                path,
                line,
                Finding(
                    Code.UNKNOWN_COMBINATION.value,
                    Severity.INFO,
                    f"{text}: compat does not know the tag shape of {repo.name} images, so the "
                    "stack in it is not checked",
                    references=(repo.source,),
                ),
            ),
        ),
        known=True,
    )


def _facts(
    repo: ImageRepository,
    cuda_image: bool,
    fields: dict[str, Optional[str]],
    text: str,
    path: str,
    line: int,
    matrix: Matrix,
    python: Optional[str],
    machine: str,
) -> BaseFacts:
    version = fields.get("version")
    cuda_full = fields.get("cuda")
    if cuda_full is None and fields.get("cu"):
        digits = fields["cu"] or ""
        cuda_full = f"{digits[:-1]}.{digits[-1]}"
    pins: list[Pin] = []
    notes: list[Note] = []
    installs = repo.installs
    v = parse_version(version) if version else None
    if cuda_full is None and installs is not None and v is not None:
        for row in repo.cuda:
            if canonicalize_name(row.when.name) == canonicalize_name(
                installs.name
            ) and row.when.specifier.contains(v, prereleases=True):
                cuda_full = row.cuda
                break
    cuda = ".".join(cuda_full.split(".")[:2]) if cuda_full else None
    py = repo.python or python
    if installs is not None and v is not None:
        index = _torch_index(cuda, matrix) if cuda else ""
        pin = Pin(
            installs.name,
            SpecifierSet(f"=={version}"),
            version,
            None,
            path,
            line,
            f"{installs.name}=={version} (in {text})",
            indexes=(index,) if index else (),
            strategy=BEST,
            cuda=cuda if canonicalize_name(installs.name) == "torch" else None,
            via=f"base image {text}",
            extras=frozenset(canonicalize_name(e) for e in installs.extras),
        )
        pins = [pin, *implied([pin], matrix, py, machine)]
        pins = [msgspec.structs.replace(p, via=f"base image {text}") for p in pins]
        if cuda is None:
            notes.append(
                Note(
                    path,
                    line,
                    Finding(
                        Code.UNKNOWN_COMBINATION.value,
                        Severity.INFO,
                        f"{text}: the CUDA this image is built with is not recorded; torch's build "
                        "is taken as the one PyPI serves",
                        references=(repo.source,),
                    ),
                )
            )
    env: list[Setting] = []
    if cuda_image and cuda:
        image = next((r for r in matrix.images if r.cuda == cuda), None)
        full = (
            cuda_full if cuda_full and cuda_full.count(".") == 2 else (image.tag if image else cuda)
        )
        env.append(Setting("CUDA_VERSION", full, path, line))
        if image is not None and image.require:
            env.append(Setting("NVIDIA_REQUIRE_CUDA", image.require, path, line))
        else:
            notes.append(
                Note(
                    path,
                    line,
                    Finding(
                        Code.DRIVER_TOO_OLD.value,
                        Severity.INFO,
                        f"{text} is built on nvidia/cuda {cuda}, whose NVIDIA_REQUIRE_CUDA "
                        f"(cuda>={cuda}, or the older driver branches it exempts) compat has not "
                        "recorded: whether the container runtime starts it on an older driver "
                        "cannot be told",
                        references=(image.source,) if image else (),
                    ),
                    below_cuda=cuda,
                )
            )
    return BaseFacts(tuple(pins), tuple(env), py, tuple(notes), known=True)


# --------------------------------------------------------------------------------------------
# Installs in RUN lines
# --------------------------------------------------------------------------------------------

# pip's and uv's install options that take a value (the value is not a requirement).
_PIP_VALUE_OPTIONS = frozenset(
    """-t --target --prefix --root --src --upgrade-strategy --trusted-host --platform
    --python-version --implementation --abi --only-binary --no-binary --progress-bar --log
    --timeout --retries --proxy --cert --client-cert --cache-dir --config-settings -C
    --global-option --install-option --keyring-provider --resolution --prerelease
    --exclude-newer -p --python --report --root-user-action --python-platform --link-mode
    --config-file --override --build-constraint -b --exists-action --use-feature
    --use-deprecated""".split()  # noqa: SIM905
)
_INDEX_OPTIONS = {
    "-i": "index",
    "--index-url": "index",
    "--default-index": "index",
    "--extra-index-url": "extra",
    "--index": "extra",
    "-f": "extra",
    "--find-links": "extra",
}
_SKIP_WORDS = frozenset(
    {"sudo", "env", "time", "command", "nohup", "exec", "then", "else", "do", "{", "(", "!"}
)
_SHELL_OPS = frozenset({"&&", "||", ";", "|", "&", ";;", "(", ")", "\n"})
_OPENERS = {"if": "fi", "case": "esac", "for": "done", "while": "done", "until": "done"}


def _tokens(script: str) -> Iterator[str]:
    """Shell words and operators of a script (quotes removed, comments dropped); newlines are
    separators. A quote left open ends the script."""
    for raw_line in _logical_lines(script):
        lex = shlex.shlex(raw_line, posix=True, punctuation_chars=";&|()")
        lex.whitespace_split = True
        lex.commenters = "#"
        try:
            yield from lex
        except ValueError:
            return
        yield "\n"


def _logical_lines(script: str) -> list[str]:
    out: list[str] = []
    buf = ""
    for line in script.split("\n"):
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        out.append(buf + line)
        buf = ""
    if buf:
        out.append(buf)
    return out


def commands(script: str) -> list[tuple[list[str], bool]]:
    """Simple commands of a shell script as word lists, and whether each runs only under a
    condition (inside if/case/for/while)."""
    out: list[tuple[list[str], bool]] = []
    words: list[str] = []
    depth = 0
    count = 0
    for tok in _tokens(script):
        count += 1
        if count > MAX_WORDS:
            break
        if tok in _SHELL_OPS or set(tok) <= set(";&|()"):
            if words:
                out.append((words, depth > 0))
            words = []
            continue
        if not words and tok in _OPENERS:
            depth += 1
            continue
        if not words and tok in ("fi", "esac", "done"):
            depth = max(0, depth - 1)
            continue
        words.append(tok)
    if words:
        out.append((words, depth > 0))
    return out


class _Install(Struct):
    """One install command: what it names, how, and from where."""

    tool: str  # pip | uv | conda
    requirements: list[str] = field(default_factory=list)
    requirement_files: list[str] = field(default_factory=list)
    constraint_files: list[str] = field(default_factory=list)
    indexes: list[str] = field(default_factory=list)  # replace the default index
    extra: list[str] = field(default_factory=list)  # searched too (before it, for uv)
    no_deps: bool = False
    best: bool = False  # uv --index-strategy unsafe-best-match
    torch_backend: str = ""
    env: dict[str, str] = field(default_factory=dict)


def install_of(words: list[str]) -> Optional[_Install]:
    """The install a simple command runs (pip, python -m pip, uv pip, conda/mamba), or None."""
    env: dict[str, str] = {}
    i = 0
    while i < len(words) and (
        words[i] in _SKIP_WORDS or re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[i])
    ):
        if "=" in words[i] and words[i] not in _SKIP_WORDS:
            k, _, v = words[i].partition("=")
            env[k] = v
        i += 1
    rest = words[i:]
    if not rest:
        return None
    prog = posixpath.basename(rest[0])
    args: list[str]
    tool: str
    if re.match(r"^pip(3(\.[0-9]+)?)?$", prog) and rest[1:2] == ["install"]:
        tool, args = "pip", rest[2:]
    elif re.match(r"^python(3(\.[0-9]+)?)?$", prog) and rest[1:4] == ["-m", "pip", "install"]:
        tool, args = "pip", rest[4:]
    elif re.match(r"^python(3(\.[0-9]+)?)?$", prog) and rest[1:5] == ["-m", "uv", "pip", "install"]:
        tool, args = "uv", rest[5:]
    elif prog == "uv" and rest[1:3] == ["pip", "install"]:
        tool, args = "uv", rest[3:]
    elif prog in ("conda", "mamba", "micromamba") and rest[1:2] in (["install"], ["create"]):
        tool, args = "conda", rest[2:]
    else:
        return None
    inst = _Install(tool, env=env)
    j = 0
    while j < len(args):
        a = args[j]
        name, eq, inline = a.partition("=") if a.startswith("--") else (a, "", "")
        value = inline if eq else (args[j + 1] if j + 1 < len(args) else "")
        takes = not eq
        if tool == "conda":
            if a in ("-c", "--channel", "-n", "--name", "-p", "--prefix", "--file") or (
                a.startswith("--") and not eq and a in ("--channel", "--name", "--prefix", "--file")
            ):
                j += 2
                continue
            if not a.startswith("-"):
                inst.requirements.append(a)
            j += 1
            continue
        if name in ("-r", "--requirement", "-c", "--constraint"):
            (
                inst.requirement_files if name in ("-r", "--requirement") else inst.constraint_files
            ).append(value)
            j += 2 if takes else 1
        elif a.startswith("-r") and len(a) > 2 and not a.startswith("--"):
            inst.requirement_files.append(a[2:])
            j += 1
        elif name in _INDEX_OPTIONS:
            (inst.indexes if _INDEX_OPTIONS[name] == "index" else inst.extra).append(value)
            j += 2 if takes else 1
        elif name == "--torch-backend":
            inst.torch_backend = value
            j += 2 if takes else 1
        elif name == "--index-strategy":
            inst.best = value in ("unsafe-best-match", "unsafe-any-match")
            j += 2 if takes else 1
        elif name == "--no-deps":
            inst.no_deps = True
            j += 1
        elif name in ("-e", "--editable"):
            j += 2 if takes else 1  # a local tree: nothing to check
        elif name in _PIP_VALUE_OPTIONS:
            j += 2 if takes else 1
        elif a.startswith("-"):
            j += 1
        else:
            inst.requirements.append(a)
            j += 1
    return inst


# --------------------------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------------------------


class _Stage(Struct):
    index: int
    name: str
    line: int
    env: dict[str, Setting] = field(default_factory=dict)
    args: dict[str, str] = field(default_factory=dict)
    pins: dict[str, Pin] = field(default_factory=dict)  # by key, the install that stays
    own: dict[str, Pin] = field(default_factory=dict)  # pins the Dockerfile itself states
    copies_from: list[str] = field(default_factory=list)
    copies: list[tuple[str, str]] = field(default_factory=list)  # (container path, context path)
    workdir: str = "/"
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    launch_line: int = 0
    python: Optional[str] = None
    machine: Optional[str] = None
    parent: Optional[str] = None


class _Reader(Struct):
    path: str
    matrix: Matrix
    opts: ReadOptions
    problems: list[Problem] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    stages: list[_Stage] = field(default_factory=list)
    global_args: dict[str, str] = field(default_factory=dict)

    # -- helpers ---------------------------------------------------------------------------
    def note(
        self,
        line: int,
        code: Code,
        severity: Severity,
        message: str,
        *packages: str,
        fix: Sequence[str] = (),
    ) -> None:
        self.notes.append(
            Note(
                self.path,
                line,
                Finding(code.value, severity, message, fix=tuple(fix), packages=packages),
            )
        )

    def values(self, st: _Stage) -> dict[str, str]:
        out = dict(st.args)
        out.update({k: s.value for k, s in st.env.items()})
        return out

    def stage(self, name: str) -> Optional[_Stage]:
        for st in self.stages:
            if (st.name and st.name == name.lower()) or (
                name.isascii() and name.isdigit() and st.index == int(name)
            ):
                return st
        return None

    # -- instructions ----------------------------------------------------------------------
    def run(self, instructions: list[Instruction]) -> None:
        for ins in instructions:
            if not self.stages:
                if ins.keyword == "ARG":
                    self.global_args.update(self._arg_pairs(ins.value, {}))
                elif ins.keyword == "FROM":
                    self._from(ins)
                else:
                    self.problems.append(
                        (self.path, ins.start, f"{ins.keyword} before the first FROM")
                    )
                continue
            st = self.stages[-1]
            handler = getattr(self, "_" + ins.keyword.lower(), None)
            if handler is not None:
                handler(ins, st) if ins.keyword != "FROM" else self._from(ins)

    def _arg_pairs(self, value: str, known: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for word in _split(value):
            name, eq, default = word.partition("=")
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
                continue
            out[name] = (
                substitute(default, {**self.global_args, **known})
                if eq
                else self.global_args.get(name, "")
            )
        return out

    def _from(self, ins: Instruction) -> None:
        if len(self.stages) >= MAX_STAGES:
            self.problems.append((self.path, ins.start, f"more than {MAX_STAGES} stages"))
            return
        words = _split(substitute(ins.value, self.global_args))
        platform = ""
        while words and words[0].startswith("--"):
            if words[0].startswith("--platform="):
                platform = words[0].split("=", 1)[1]
            words = words[1:]
        if not words:
            self.problems.append((self.path, ins.start, "FROM names no image"))
            return
        image = words[0]
        name = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else ""
        st = _Stage(len(self.stages), name, ins.start, machine=_PLATFORM.get(platform))
        parent = self.stage(image) if "/" not in image and ":" not in image else None
        if parent is not None:
            st.env = dict(parent.env)
            st.pins = dict(parent.pins)
            st.own = dict(parent.own)
            st.copies_from = list(parent.copies_from)
            st.workdir = parent.workdir
            st.entrypoint, st.cmd = list(parent.entrypoint), list(parent.cmd)
            st.launch_line = parent.launch_line
            st.python, st.parent = parent.python, parent.name or str(parent.index)
            st.machine = st.machine or parent.machine
        else:
            facts = base_facts(
                image,
                self.path,
                ins.start,
                self.matrix,
                self.opts.python,
                st.machine or self.opts.machine,
            )
            for s in facts.env:
                st.env[s.key] = s
            for p in facts.pins:
                st.pins[p.key] = p
            st.python = facts.python
            self.notes.extend(facts.notes)
        self.stages.append(st)

    def _arg(self, ins: Instruction, st: _Stage) -> None:
        st.args.update(self._arg_pairs(ins.value, self.values(st)))

    def _env(self, ins: Instruction, st: _Stage) -> None:
        value = ins.value
        words = _split(value)
        if words and "=" not in words[0]:
            key, _, rest = value.partition(" ")
            pairs = [(key.strip(), substitute(rest.strip().strip("\"'"), self.values(st)))]
        else:
            pairs = []
            for w in words:
                k, eq, v = w.partition("=")
                if not eq or not k:
                    self.problems.append(
                        (self.path, ins.start, f"ENV: not KEY=VALUE: {quote_line(w)}")
                    )
                    continue
                pairs.append((k, substitute(v, self.values(st))))
        for k, v in pairs[:MAX_ENTRIES]:
            st.env[k] = Setting(k, v, self.path, ins.start)

    def _workdir(self, ins: Instruction, st: _Stage) -> None:
        target = substitute(ins.value.strip().strip("\"'"), self.values(st))
        st.workdir = posixpath.normpath(posixpath.join(st.workdir, target))

    def _copy(self, ins: Instruction, st: _Stage) -> None:
        words = _exec_form(ins.value) or _split(ins.value)
        source_stage = ""
        while words and words[0].startswith("--"):
            if words[0].startswith("--from="):
                source_stage = words[0].split("=", 1)[1]
            words = words[1:]
        if source_stage:
            if self.stage(source_stage) is not None:
                st.copies_from.append(source_stage)
            return
        if len(words) < 2 or ins.heredocs:
            return
        dest = substitute(words[-1], self.values(st))
        dest = posixpath.normpath(posixpath.join(st.workdir, dest)) + (
            "/" if dest.endswith("/") or len(words) > 2 else ""
        )
        for src in words[:-1]:
            st.copies.append((dest, substitute(src, self.values(st))))

    _add = _copy

    def _entrypoint(self, ins: Instruction, st: _Stage) -> None:
        st.entrypoint = _exec_form(ins.value) or ["/bin/sh", "-c", ins.value]
        st.cmd = []
        st.launch_line = ins.start

    def _cmd(self, ins: Instruction, st: _Stage) -> None:
        st.cmd = _exec_form(ins.value) or ["/bin/sh", "-c", ins.value]
        st.launch_line = ins.start

    def _run(self, ins: Instruction, st: _Stage) -> None:
        value = ins.value
        words = value.split()
        while words and words[0].startswith("--") and not words[0].startswith("--="):
            words = words[1:]  # --mount=..., --network=..., --security=...
        value = " ".join(words)
        exec_form = _exec_form(value)
        if exec_form is not None:
            script = (
                exec_form[-1]
                if exec_form[:2]
                in (["/bin/sh", "-c"], ["sh", "-c"], ["/bin/bash", "-c"], ["bash", "-c"])
                else shlex.join(exec_form)
            )
        else:
            script = value
        scripts = [script, *ins.heredocs] if not _HEREDOC.search(script) else list(ins.heredocs)
        for text in scripts:
            for words_, conditional in commands(text):
                inst = install_of(words_)
                if inst is None:
                    continue
                if conditional:
                    self.note(
                        ins.start,
                        Code.UNKNOWN_COMBINATION,
                        Severity.INFO,
                        f"an install under a shell condition (if/case/loop) is not evaluated: {quote_line(shlex.join(words_))}",
                    )
                    continue
                self._install(inst, ins, st)

    # -- installs ---------------------------------------------------------------------------
    def _index_urls(self, inst: _Install, st: _Stage) -> tuple[tuple[str, ...], str]:
        vals = {**self.values(st), **inst.env}
        env = {k: v for k, v in vals.items()}
        index, extra = list(inst.indexes), list(inst.extra)
        if inst.tool == "pip":
            if not index and env.get("PIP_INDEX_URL"):
                index = [env["PIP_INDEX_URL"]]
            extra += env.get("PIP_EXTRA_INDEX_URL", "").split()
            extra += env.get("PIP_FIND_LINKS", "").split()
        elif inst.tool == "uv":
            if not index and (env.get("UV_INDEX_URL") or env.get("UV_DEFAULT_INDEX")):
                index = [env.get("UV_DEFAULT_INDEX") or env["UV_INDEX_URL"]]
            extra = (
                env.get("UV_INDEX", "").split() + env.get("UV_EXTRA_INDEX_URL", "").split() + extra
            )
            backend = inst.torch_backend or env.get("UV_TORCH_BACKEND", "")
            row = next(
                (
                    r
                    for r in self.matrix.indexes
                    if backend
                    and r.local == backend
                    and "torch" in r.projects
                    and r.url.startswith("https://download.pytorch.org/")
                ),
                None,
            )
            if row is not None:
                extra.insert(0, row.url)
        urls = tuple(dict.fromkeys(substitute(u, vals) for u in [*extra, *index] if u))
        best = (
            inst.tool == "pip"
            or inst.best
            or env.get("UV_INDEX_STRATEGY", "") in ("unsafe-best-match", "unsafe-any-match")
        )
        return urls, BEST if best else FIRST

    def _context_path(self, target: str, st: _Stage) -> Optional[str]:
        """A file named inside the image, found in the build context through the COPY lines
        (the latest COPY that brings it in); None when none does."""
        target = posixpath.normpath(posixpath.join(st.workdir, target))
        for dest, src in reversed(st.copies):
            if not dest.endswith("/"):
                if target == dest:
                    return src
                continue
            folder = dest.rstrip("/")
            if not target.startswith(folder + "/"):
                continue
            rest = target[len(folder) + 1 :]
            if src in (".", "./"):
                return rest
            base = src.rstrip("/")
            return base if posixpath.basename(base) == rest else f"{base}/{rest}"
        return None

    def _include(self, name: str, st: _Stage, line: int) -> Optional[tuple[str, str]]:
        """(path, text) of a `-r`/`-c` file of an install, read from the build context (the
        Dockerfile's folder); a problem when it cannot be found or read."""
        if self.opts.read is None:
            return None
        from compat.errors import CompatError
        from compat.inputs.requirements import relative

        inside = substitute(name, self.values(st))
        found = self._context_path(inside, st)
        if found is None and inside.startswith("/"):
            self.problems.append(
                (self.path, line, f"-r {quote_line(inside)}: no COPY line brings it into the image")
            )
            return None
        path = relative(self.path, found if found is not None else inside)
        try:
            return path, self.opts.read(path)
        except CompatError as exc:
            self.problems.append((self.path, line, exc.message))
        except (OSError, ValueError) as exc:
            self.problems.append(
                (self.path, line, f"cannot read {quote_line(path)}: {first_line(exc)}")
            )
        return None

    def _install(self, inst: _Install, ins: Instruction, st: _Stage) -> None:
        urls, strategy = self._index_urls(inst, st)
        vals = {**self.values(st), **inst.env}
        stated: list[Pin] = []
        if inst.tool == "conda":
            from compat.inputs.conda import map_specs, parse_spec

            specs = [
                s
                for s in (parse_spec(substitute(r, vals), ins.start) for r in inst.requirements)
                if s is not None
            ]
            mapped = map_specs(specs, self.path, self.matrix)
            self.notes.extend(mapped.notes)
            stated = [msgspec.structs.replace(p, line=ins.start) for p in mapped.pins]
        for text in inst.requirements if inst.tool != "conda" else ():
            req_text = substitute(text, vals)
            if (
                "$" in req_text
                or req_text.startswith((".", "/"))
                or ("://" in req_text and "@" not in req_text)
                or req_text.endswith((".whl", ".tar.gz", ".zip"))
            ):
                continue  # a local tree, archive or unresolved variable: nothing to check here
            try:
                req = parse_requirement(req_text)
            except InvalidRequirement as exc:
                self.problems.append(
                    (
                        self.path,
                        ins.start,
                        f"not a requirement: {quote_line(req_text)} ({first_line(exc)})",
                    )
                )
                continue
            stated.append(pin_from_requirement(req, self.path, ins.start, req_text))
        for name in inst.requirement_files:
            got = self._include(name, st, ins.start)
            if got is not None:
                pins, problems = read_requirements(got[1], got[0], self.opts.read)
                stated.extend(pins)
                self.problems.extend(problems)
        constraints: dict[str, Pin] = {}
        for name in inst.constraint_files:
            got = self._include(name, st, ins.start)
            if got is not None:
                pins, problems = read_requirements(got[1], got[0], self.opts.read)
                self.problems.extend(problems)
                for p in pins:
                    if p.version:
                        constraints.setdefault(p.key, p)
        table = families()
        command: dict[str, Pin] = {}
        for p in stated[:MAX_ENTRIES]:
            if p.version is None and p.key in constraints:
                p = msgspec.structs.replace(constraints[p.key], indexes=p.indexes, extras=p.extras)
            p = msgspec.structs.replace(p, indexes=p.indexes or urls, strategy=strategy)
            if p.version is None:
                earlier = st.pins.get(p.key)
                if table.is_stack(p.key) and earlier is None:
                    self.note(
                        p.line if p.path == self.path else ins.start,
                        Code.UNPINNED,
                        Severity.WARNING,
                        f"{quote_line(p.text)} leaves {p.name} unpinned: each rebuild of the image installs "
                        "whatever is newest then",
                        fix=(f"pin it: {p.name}==<version> (compat lock writes the whole tuple)",),
                    )
                continue
            same = command.get(p.key)
            if same is not None and same.version != p.version:
                self.note(
                    p.line,
                    Code.PIN_CONFLICT,
                    Severity.ERROR,
                    f"{p.name} is pinned twice in one install: {same.version} and {p.version}; "
                    "pip refuses the command",
                    p.name,
                    fix=(f"keep one pin of {p.name}",),
                )
                continue
            command[p.key] = p
        for key, p in command.items():
            earlier = st.own.get(key)
            if earlier is not None and earlier.version != p.version:
                self._replaced(p, earlier, ins.start)
            st.pins[key] = p
            st.own[key] = p
        if inst.no_deps or not command:
            return
        # pip installs what the new pins require, replacing what is there (exact pins leave it
        # no choice); a pin of an earlier install that gives way is a note.
        python = st.python or self.opts.python
        for dep in implied(
            list(command.values()), self.matrix, python, st.machine or self.opts.machine
        ):
            old = st.pins.get(dep.key)
            if old is not None and old.version == dep.version:
                continue
            mine = st.own.get(dep.key)
            if mine is not None:
                self._replaced(dep, mine, ins.start)
                st.own.pop(dep.key, None)
            st.pins[dep.key] = dep

    def _replaced(self, new: Pin, old: Pin, line: int) -> None:
        by = f" ({new.via})" if new.via else ""
        self.note(
            new.line if new.path == self.path else line,
            Code.PIN_CONFLICT,
            Severity.WARNING,
            f"{new.name}=={new.version}{by} replaces {old.name}=={old.version} installed on "
            f"{'line ' + str(old.line) if old.path == self.path else old.where}: the later "
            "install wins",
            new.name,
            fix=(f"keep one pin of {new.name}",),
        )

    # -- result ------------------------------------------------------------------------------
    def result(self) -> PinFile:
        if not self.stages:
            self.problems.append((self.path, 1, "no FROM: not a Dockerfile"))
            return PinFile(self.path, (), tuple(self.problems), kind="dockerfile")
        final = self.stages[-1]
        pins = dict(final.pins)
        seen: set[str] = set()
        todo = list(final.copies_from)
        while todo:
            name = todo.pop()
            st = self.stage(name)
            if st is None or name in seen:
                continue
            seen.add(name)
            todo.extend(st.copies_from)
            for key, p in st.pins.items():
                pins.setdefault(key, p)
        launch = _launch(final.entrypoint + final.cmd)
        return PinFile(
            self.path,
            (("", tuple(sorted(pins.values(), key=lambda p: (p.line, p.key)))),),
            tuple(dict.fromkeys(self.problems)),
            env=tuple(final.env.values()),
            notes=tuple(self.notes),
            python=final.python,
            machine=final.machine,
            launch=launch,
            kind="dockerfile",
            launch_line=final.launch_line if launch else 0,
        )


def _split(value: str) -> list[str]:
    try:
        return shlex.split(value, comments=False, posix=True)
    except ValueError:
        return value.split()


def _exec_form(value: str) -> Optional[list[str]]:
    v = value.strip()
    if not v.startswith("["):
        return None
    try:
        data = json.loads(v)
    except (ValueError, RecursionError):
        return None
    if isinstance(data, list) and all(isinstance(x, str) for x in data):
        return [str(x) for x in data]
    return None


def _launch(argv: list[str]) -> tuple[str, ...]:
    """The server command an image runs, when it starts sglang or vLLM (after `compat run --`)."""
    if "--" in argv and any(posixpath.basename(a) == "compat" for a in argv[: argv.index("--")]):
        argv = argv[argv.index("--") + 1 :]
    if (
        argv[:2] in (["/bin/sh", "-c"], ["sh", "-c"], ["/bin/bash", "-c"], ["bash", "-c"])
        and len(argv) >= 3
    ):
        argv = _split(argv[2])
    if not any("sglang" in a or "vllm" in a for a in argv[:4]):
        return ()
    return tuple(argv[:4096])


def read_dockerfile(
    text: str, path: str, matrix: Matrix, opts: Optional[ReadOptions] = None
) -> PinFile:
    """The stack of the stage a Dockerfile runs, with its base image, variables and notes."""
    instructions, problems = parse(text, path)
    reader = _Reader(path, matrix, opts or ReadOptions(), problems=problems)
    reader.run(instructions)
    return reader.result()
