"""Seeded fuzz cases per input surface: mutations of the real fixtures under tests/assets.

Every generator is deterministic for a seed. A case names the files it needs (laid out in a
fresh folder, `@WD@` in any argument), the in-process target that mirrors the command, and
the CLI arguments that run the command itself.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import random
import re
import shlex
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from tests.fuzz import harness

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "tests" / "assets"
MATRICES = ROOT / "matrices"
WD = "@WD@"


# --------------------------------------------------------------------------------------------
# Files a case lays out
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fifo:
    """A named pipe nobody writes: a reader that opens it blocks forever."""


@dataclass(frozen=True)
class Link:
    target: str  # may contain @WD@


@dataclass(frozen=True)
class Dir:
    pass


@dataclass(frozen=True)
class Sparse:
    """A file of `size` bytes that costs no disk (a hole)."""

    size: int


@dataclass(frozen=True)
class Exec:
    """An executable script."""

    text: str


@dataclass(frozen=True)
class Lazy:
    """Content made only when the case runs (most cases of a sweep are never laid out)."""

    make: Callable[[], Union[bytes, str]]


FileSpec = Union[bytes, str, Fifo, Link, Dir, Sparse, Exec, Lazy]


@dataclass
class Case:
    surface: str
    name: str
    files: dict[str, FileSpec] = field(default_factory=dict)
    target: Optional[str] = None  # a function of tests.fuzz.targets
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    cli: Optional[tuple[str, ...]] = None
    env: dict[str, Optional[str]] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    stdout_path: Optional[str] = None
    allow_exit: tuple[int, ...] = ()
    example: Any = None  # the input to show when this case fails (the smallest of its class)
    slow: bool = False  # large enough that a quadratic path would take seconds


def materialize(case: Case, wd: Path) -> None:
    for rel, spec in case.files.items():
        if isinstance(spec, Lazy):
            spec = spec.make()
        path = wd / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(spec, bytes):
            path.write_bytes(spec)
        elif isinstance(spec, str):
            path.write_bytes(spec.encode("utf-8", "surrogatepass"))
        elif isinstance(spec, Fifo):
            os.mkfifo(path)
        elif isinstance(spec, Link):
            os.symlink(spec.target.replace(WD, str(wd)), path)
        elif isinstance(spec, Dir):
            path.mkdir(exist_ok=True)
        elif isinstance(spec, Sparse):
            with open(path, "wb") as fh:
                fh.truncate(spec.size)
        elif isinstance(spec, Exec):
            path.write_text(spec.text.replace(WD, str(wd)), encoding="utf-8")
            path.chmod(0o755)


def substitute(value: Any, wd: Path) -> Any:
    if isinstance(value, str):
        return value.replace(WD, str(wd))
    if isinstance(value, tuple):
        return tuple(substitute(v, wd) for v in value)
    if isinstance(value, list):
        return [substitute(v, wd) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, wd) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------------------
# Planted secrets: every place a value can come from carries one; none may come back out
# --------------------------------------------------------------------------------------------

PW_A, PW_B = "FUZZPWa1", "FUZZPWb2"
SECRET_URL_PASSWORD = f"https://alice:{PW_A}@ss/w@rd{PW_B}@db.example.com:5432/app"
GH_TOKEN = "ghp_FUZZTOKEN0123456789abcdefABCDEF"
SECRET_URL_TOKEN = f"https://{GH_TOKEN}@github.com/org/repo.git"
API_KEY = "sk-FUZZKEY0123456789abcdefghij"
BEARER = "FUZZBEARER0123456789abcdefXYZ"
HF = "hf_FUZZHF0123456789abcdefghijklmn"
NEEDLES = (PW_A, PW_B, GH_TOKEN, API_KEY, BEARER, HF)
harness.SECRET_KINDS.update(
    {
        PW_A: "URL password (part before '/' or '@')",
        PW_B: "URL password (part after '/' or '@')",
        GH_TOKEN: "token as URL user",
        API_KEY: "--api-key value",
        BEARER: "Bearer token",
        HF: "hf_ token",
    }
)
SECRET_VALUES = (
    SECRET_URL_PASSWORD,
    SECRET_URL_TOKEN,
    f"--api-key {API_KEY}",
    f"Authorization: Bearer {BEARER}",
    f"HF_TOKEN={HF}",
)
# Variables compat records (by name or prefix), each carrying a secret in the middle of a value.
SECRET_ENV = {
    "LD_LIBRARY_PATH": f"/usr/local/cuda/lib64:{SECRET_URL_PASSWORD}:/opt/lib",
    "VLLM_RPC_BASE_URL": SECRET_URL_PASSWORD,
    "SGLANG_REPO_URL": SECRET_URL_TOKEN,
    "VLLM_EXTRA_ARGS": f"--tp 2 --api-key {API_KEY} --port 8000",
    "NCCL_DEBUG_SUBSYS": f"INIT Authorization: Bearer {BEARER}",
    "COMPAT_NOTE": f"see HF_TOKEN={HF} here",
    "RAY_ADDRESS": f"http://{GH_TOKEN}@ray-head:8265",
    "HF_TOKEN": HF,
    "PYTHONPATH": f"/srv/app:{SECRET_URL_TOKEN}",
}


# --------------------------------------------------------------------------------------------
# Value catalogues
# --------------------------------------------------------------------------------------------

DEEP = 100_000
HUGE_DIGITS = "9" * 5000
BIG_INT = int("9" * 4300)  # the most digits json.loads takes; arithmetic on it overflows str()

JSON_VALUES: list[tuple[str, Any]] = [
    ("null", None),
    ("true", True),
    ("false", False),
    ("zero", 0),
    ("negative", -1),
    ("int64", 2**63),
    ("int-4300-digits", BIG_INT),
    ("float", 1.5),
    ("float-huge", 1e308),
    ("NaN", float("nan")),
    ("Infinity", float("inf")),
    ("empty-string", ""),
    ("string", "x"),
    ("version-x", "12.x"),
    ("lone-surrogate", "H100\ud800"),
    ("digits-5000", HUGE_DIGITS),
    ("arabic-digits", "\u0663.\u0661\u0661"),
    ("superscript-two", "\u00b2"),
    ("nul", "a\x00b"),
    ("newlines", "a\nb\r\nc"),
    ("long-string", "A" * 200_000),
    ("secret", SECRET_URL_PASSWORD),
    ("empty-list", []),
    ("list-int", [1]),
    ("list-null", [None]),
    ("list-list", [[]]),
    ("list-surrogate", ["\udcff"]),
    ("empty-object", {}),
    ("object-unknown", {"unknown": "why"}),
    ("object-unknown-int", {"unknown": 5}),
    ("object", {"a": 1}),
]

TOML_VALUES: list[tuple[str, str]] = [
    ("datetime", "1979-05-27T07:32:00Z"),
    ("local-datetime", "1979-05-27T07:32:00"),
    ("date", "1979-05-27"),
    ("time", "07:32:00"),
    ("inf", "inf"),
    ("nan", "nan"),
    ("negative", "-1"),
    ("int-big", "99999999999999999999999999"),
    ("int-5000-digits", HUGE_DIGITS),
    ("float", "1.5"),
    ("true", "true"),
    ("empty-string", '""'),
    ("string", '"x"'),
    ("version-x", '"12.x"'),
    ("digits-string-5000", f'"{HUGE_DIGITS}"'),
    ("arabic-digits", '"\u0663.\u0661\u0661"'),
    ("unicode", '"\u00e9\u4e2d\U0001f600"'),
    ("long-string", '"' + "A" * 200_000 + '"'),
    ("empty-array", "[]"),
    ("array-mixed", '[1, "a", true]'),
    ("array-of-tables", "[{a = 1}]"),
    ("empty-table", "{}"),
    ("table", "{ a = 1, b = [2] }"),
    ("deep-array", "[" * DEEP + "]" * DEEP),
    ("deep-table", "{a = " * 2000 + "1" + "}" * 2000),
]

ARG_VALUES: list[tuple[str, str]] = [
    ("empty", ""),
    ("word", "abc"),
    ("negative", "-1"),
    ("zero", "0"),
    ("float", "0.5"),
    ("exp-overflow", "1e999"),
    ("inf", "inf"),
    ("nan", "nan"),
    ("digits-5000", HUGE_DIGITS),
    ("superscript-two", "\u00b2"),
    ("arabic-digits", "\u0663"),
    ("json-object", "{}"),
    ("json-list", "[]"),
    ("json-null", "null"),
    ("json-deep", '{"a":' * DEEP + "1" + "}" * DEEP),
    ("json-deep-list", "{" + '"a":' + "[" * DEEP + "]" * DEEP + "}"),
    ("json-nan", '{"a": NaN}'),
    ("json-big-int", '{"level": ' + "9" * 4300 + "}"),
    ("shell-var", "$PORT"),
    ("shell-braces", "${X:-1}"),
    ("long", "a" * 200_000),
    ("true", "true"),
    ("dash", "-"),
    ("double-dash", "--"),
    ("hex", "0x10"),
    ("secret", f"{SECRET_URL_TOKEN}"),
    ("lone-surrogate", "a\udcff"),
]

HOSTILE_REQ_LINES: list[tuple[str, str]] = [
    ("version-5000-digits", "torch==" + HUGE_DIGITS),
    ("version-5000-digits-triton", "triton==3." + HUGE_DIGITS),
    ("local-tag-junk", "torch==2.7.1+cu12x"),
    ("local-tag-huge", "torch==2.7.1+cu" + HUGE_DIGITS),
    ("arabic-version", "torch==\u0663.\u0661"),
    ("arbitrary-equality", "torch===abc"),
    ("marker-arabic", "torch==2.7.1; python_version < '\u0663'"),
    ("marker-junk", "torch==2.7.1; os_name === 'x'"),
    ("url-token", f"torch @ {SECRET_URL_TOKEN}"),
    (
        "url-password-wheel",
        f"torch @ {SECRET_URL_PASSWORD}/torch-2.7.1-cp312-cp312-linux_x86_64.whl",
    ),
    ("url-file-environ", "pkg @ file:///proc/self/environ"),
    ("editable-secret", f"-e git+{SECRET_URL_PASSWORD}#egg=torch"),
    ("index-secret", f"--index-url {SECRET_URL_PASSWORD}"),
    ("extras-many", "torch[" + "a," * 20_000 + "b]==2.7.1"),
    ("token-2mb", "t" * 2_000_000 + "==1.0"),
    ("line-2mb-spaces", "torch==2.7.1" + " " * 2_000_000 + "#"),
    ("parenthesized", "torch (==2.7.1)"),
    ("wildcard", "torch==2.*"),
    ("range", "torch>=2,<3"),
    ("not-equal", "torch!=1"),
    ("nul", "torch==2.7.1\x00"),
    ("bom-mid", "\ufefftorch==2.7.1"),
    ("continuation-eof", "torch==2.7.1 \\"),
    ("hash", "torch==2.7.1 --hash=sha256:" + "0" * 64),
    ("comment-only", "# " + SECRET_URL_PASSWORD),
    ("marker-long", "torch==2.7.1; " + " and ".join(["python_version >= '3'"] * 2000)),
    ("name-unicode", "t\u00f6rch==1.0"),
    ("superscript-version", "torch==2.\u00b2"),
    ("version-epoch", "torch==99999999999999999999!1.0"),
    ("dev-huge", "torch==1.0.dev" + "9" * 4400),
    ("secret-hf", f"HF_TOKEN={HF}"),
    ("bearer", f"Authorization: Bearer {BEARER}"),
    ("api-key", f"--api-key {API_KEY}"),
]

MUTATION_CHARS = "=<>!~;@#[](),.*+-\\\n\r\t\x00\"' \u00b2\u0663\ufeff"


def _mutate_text(rng: random.Random, text: str, n: int = 3) -> str:
    chars = list(text)
    for _ in range(n):
        op = rng.randrange(4)
        pos = rng.randrange(len(chars) + 1)
        if op == 0 and chars:
            del chars[min(pos, len(chars) - 1)]
        elif op == 1:
            chars.insert(pos, rng.choice(MUTATION_CHARS))
        elif op == 2 and chars:
            i = min(pos, len(chars) - 1)
            chars[i:i] = chars[i : i + rng.randint(1, 20)]
        else:
            chars.insert(pos, rng.choice(["\\", "#", "\n", "==", "@", ";"]))
    return "".join(chars)


# --------------------------------------------------------------------------------------------
# JSON paths
# --------------------------------------------------------------------------------------------

PathT = tuple[Union[str, int], ...]


def _paths(value: Any, prefix: PathT = ()) -> Iterator[PathT]:
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _norm(path: PathT) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path) or "$"


def distinct_paths(doc: Any, rng: random.Random) -> list[PathT]:
    """One concrete path per schema path (list positions normalized), chosen by the seed."""
    by_norm: dict[str, list[PathT]] = {}
    for p in _paths(doc):
        key = re.sub(r"\[\d+\]", "[*]", _norm(p))
        by_norm.setdefault(key, []).append(p)
    return [rng.choice(ps) for _, ps in sorted(by_norm.items())]


def _set(doc: Any, path: PathT, value: Any) -> Any:
    if not path:
        return value
    cur = doc
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return doc


def _replaced(doc: Any, path: PathT, value: Any) -> str:
    return _dump(_set(copy.deepcopy(doc), path, copy.deepcopy(value)))


def _dump(doc: Any) -> str:
    return json.dumps(doc, indent=1, allow_nan=True)


_DEEP_MARK = "__FUZZ_DEEP__"


def _with_deep(doc: Any, path: PathT, opener: str = "[", closer: str = "]") -> str:
    text = _dump(_set(copy.deepcopy(doc), path, _DEEP_MARK))
    return text.replace(json.dumps(_DEEP_MARK), opener * DEEP + closer * DEEP, 1)


# --------------------------------------------------------------------------------------------
# Snapshots
# --------------------------------------------------------------------------------------------

SNAPSHOTS = [
    ASSETS / "envs" / "h100-torch2.11-cu130.json",
    ASSETS / "diff" / "seed002-under-ray.json",
    ASSETS / "envs" / "cpu-torch2.13-pypi-torchvision0.28.json",
]


def full_snapshot() -> dict[str, Any]:
    """The H100 snapshot with every optional field the schema reads present (objects, deep,
    needs, launch, a cache with built_by), so every field can be given every JSON type."""
    doc: dict[str, Any] = json.loads(SNAPSHOTS[0].read_text(encoding="utf-8"))
    doc["deep"] = True
    doc["launch"] = ["vllm", "serve", "m", "--tensor-parallel-size", "2"]
    for d in doc["distributions"]:
        if d["name"] in ("sgl-kernel", "torchvision", "flashinfer-python"):
            d["needs"] = ["libc10.so", "libcudart.so.12"]
            d["objects"] = [
                {
                    "path": f"{d['name']}/_C.so",
                    "needed": ["libc10.so"],
                    "torch_imports": 3,
                    "unresolved": ["_ZN3c104testEv"],
                    "unresolved_count": 1,
                    "error": "",
                }
            ]
    if not doc.get("caches"):
        doc["caches"] = []
    doc["caches"].append(
        {
            "kind": "triton",
            "path": "/root/.triton/cache",
            "exists": True,
            "size_bytes": 1024,
            "entries": 3,
            "truncated": False,
            "built_by": ["3.1.0"],
            "oldest_mtime": 1790000000.0,
        }
    )
    doc["env"]["CUDA_VISIBLE_DEVICES"] = "0,1"
    return doc


def from_file_case(
    surface: str,
    name: str,
    file: str,
    content: FileSpec,
    example: Any,
    target_args: tuple[Any, ...] = (),
    env: Optional[dict[str, Optional[str]]] = None,
) -> Case:
    """A file `compat check --from` reads (and the surface's target reads it too)."""
    return Case(
        surface,
        name,
        files={file: content},
        target=f"{surface}_everything",
        args=(f"{WD}/{file}", *target_args),
        cli=("check", "--from", f"{WD}/{file}"),
        env=env or {},
        secrets=NEEDLES,
        example=example,
    )


def snapshot_case(
    name: str, text: Union[str, bytes, Lazy], original: Path, example: Any = None
) -> Case:
    shown = example if example is not None else text
    return from_file_case("snapshot", name, "snap.json", text, shown, (str(original),))


def snapshot_cases(rng: random.Random) -> Iterator[Case]:
    full = full_snapshot()
    original = SNAPSHOTS[0]
    # The named shapes first.
    yield snapshot_case(
        "gpu-name-lone-surrogate",
        _dump(_set(copy.deepcopy(full), ("gpus", 0, "name"), "H100\ud800")),
        original,
        {"gpus[0].name": "H100\\ud800"},
    )
    yield snapshot_case(
        "torch-cuda-12.x",
        _dump(_set(copy.deepcopy(full), ("torch", "cuda"), "12.x")),
        original,
        {"torch.cuda": "12.x"},
    )
    yield snapshot_case(
        "cuda-visible-devices-superscript",
        _dump(_set(copy.deepcopy(full), ("env", "CUDA_VISIBLE_DEVICES"), "\u00b2")),
        original,
        {"env.CUDA_VISIBLE_DEVICES": "\u00b2"},
    )
    yield snapshot_case(
        "cuda-visible-devices-5000-digits",
        _dump(_set(copy.deepcopy(full), ("env", "CUDA_VISIBLE_DEVICES"), HUGE_DIGITS)),
        original,
        {"env.CUDA_VISIBLE_DEVICES": "9 x 5000"},
    )
    torch_i = next(i for i, d in enumerate(full["distributions"]) if d["name"] == "torch")
    yield snapshot_case(
        "torch-version-5000-digits",
        _dump(_set(copy.deepcopy(full), ("distributions", torch_i, "version"), HUGE_DIGITS)),
        original,
        {"distributions[torch].version": "9 x 5000"},
    )
    yield snapshot_case(
        "deep-nesting-top",
        "[" * DEEP + "]" * DEEP,
        original,
        "[ x 100000 ] x 100000",
    )
    secret_doc = copy.deepcopy(full)
    secret_doc["env"].update(SECRET_ENV)
    secret_doc["launch"] = ["vllm", "serve", "m", "--api-key", API_KEY, "--tp", "2"]
    yield snapshot_case("secrets-in-env-and-launch", _dump(secret_doc), original, SECRET_ENV)
    # Every field x every JSON type, on the complete snapshot and on the others' shapes.
    docs = [(original, full)] + [
        (p, json.loads(p.read_text(encoding="utf-8"))) for p in SNAPSHOTS[1:]
    ]
    for source, doc in docs:
        for path in distinct_paths(doc, rng):
            for vname, value in JSON_VALUES:
                yield snapshot_case(
                    f"{source.stem}:{_norm(path)}={vname}",
                    Lazy(functools.partial(_replaced, doc, path, value)),
                    source,
                    {_norm(path): vname},
                )
            if path and source == original:
                yield snapshot_case(
                    f"{source.stem}:{_norm(path)}=deep-list",
                    Lazy(functools.partial(_with_deep, doc, path)),
                    source,
                    {_norm(path): "[ x 100000"},
                )
    # Whole-document damage.
    base = _dump(full)
    for i in range(60):
        cut = rng.randrange(len(base))
        yield snapshot_case(f"truncated-{i}", base[:cut], original, f"cut at {cut}")
    for i in range(80):
        yield snapshot_case(
            f"mutated-{i}", _mutate_text(rng, base, rng.randint(1, 6)), original, "mutated"
        )
    for name, raw in [
        ("empty", b""),
        ("bom-only", b"\xef\xbb\xbf"),
        ("not-utf8", b'{"schema": "compat.env/1", "created": "\xff\xfe"}'),
        ("utf16", base.encode("utf-16")),
        ("schema-only", b'{"schema": "compat.env/1"}'),
        ("schema-2", b'{"schema": "compat.env/2"}'),
        ("schema-major-huge", ('{"schema": "compat.env/' + HUGE_DIGITS + '"}').encode()),
        ("big-int-literal", ('{"schema": "compat.env/1", "x": ' + "9" * 5000 + "}").encode()),
        ("dup-keys", b'{"schema": "compat.env/1", "schema": "compat.env/1", "env": {}}'),
        ("nan-top", b"NaN"),
    ]:
        yield snapshot_case(name, raw, original, example=raw[:200])


# --------------------------------------------------------------------------------------------
# Freeze files (check --from) and requirements (lint)
# --------------------------------------------------------------------------------------------

FREEZES = sorted((ASSETS / "freeze").glob("*.txt"))
LINT_FILES = sorted((ASSETS / "lint").glob("*.txt"))


def _line_mutants(rng: random.Random, text: str) -> Iterator[tuple[str, str, str]]:
    """(name, mutated text, the line that makes it) for a requirements-like text."""
    lines = text.splitlines()
    for lname, line in HOSTILE_REQ_LINES:
        at = rng.randrange(len(lines) + 1)
        yield f"insert:{lname}", "\n".join([*lines[:at], line, *lines[at:]]) + "\n", line
        if lines:
            at = rng.randrange(len(lines))
            yield f"replace:{lname}", "\n".join([*lines[:at], line, *lines[at + 1 :]]) + "\n", line
    for i in range(25):
        at = rng.randrange(len(lines)) if lines else 0
        bad = _mutate_text(rng, lines[at] if lines else "torch==2.7.1", rng.randint(1, 4))
        yield f"char-mutation-{i}", "\n".join([*lines[:at], bad, *lines[at + 1 :]]) + "\n", bad


def _freeze_case(
    name: str, content: FileSpec, example: Any, env: Optional[dict[str, Optional[str]]] = None
) -> Case:
    return from_file_case("freeze", name, "freeze.txt", content, example, env=env)


def freeze_cases(rng: random.Random) -> Iterator[Case]:
    for src in FREEZES:
        text = src.read_text(encoding="utf-8")
        for name, mutated, line in _line_mutants(rng, text):
            yield _freeze_case(f"{src.stem}:{name}", mutated, line[:300])
    for name, spec in [
        ("fifo", Fifo()),
        ("dev-zero", Link("/dev/zero")),
        ("directory", Dir()),
        ("proc-environ", Link("/proc/self/environ")),
        ("sparse-40mb", Sparse(40 << 20)),
        ("binary", bytes(range(256)) * 4),
        ("crlf", b"torch==2.7.1\r\ntriton==3.3.1\r\n"),
        ("cr-only", b"torch==2.7.1\rtriton==3.3.1\r"),
        ("latin1", "torch==2.7.1 # caf\u00e9\n".encode("latin-1")),
        ("many-lines", b"".join(b"pkg%d==1.0\n" % i for i in range(100_000))),
        ("dangling-link", Link("/nonexistent/freeze.txt")),
        ("link-loop", Link(f"{WD}/freeze.txt")),
    ]:
        secrets_in_env = {"HF_TOKEN": HF, "COMPAT_FUZZ_SECRET": SECRET_URL_PASSWORD}
        yield _freeze_case(f"file:{name}", spec, name, env=secrets_in_env)


def _lint_case(name: str, files: dict[str, FileSpec], paths: list[str], example: Any) -> Case:
    return Case(
        "lint",
        name,
        files=files,
        target="lint_paths",
        args=([f"{WD}/{p}" for p in paths],),
        cli=("lint", *(f"{WD}/{p}" for p in paths)),
        env={"HF_TOKEN": HF, "COMPAT_FUZZ_SECRET": SECRET_URL_PASSWORD},
        secrets=NEEDLES,
        example=example,
    )


INCLUDES: list[tuple[str, FileSpec, str]] = [
    ("self", b"", "-r requirements.txt"),
    ("self-dotslash", b"", "-r ./requirements.txt"),
    ("self-constraint", b"", "-c ./requirements.txt"),
    ("cycle", b"-r ./requirements.txt\ntriton==3.3.1\n", "-r sub/../b.txt"),
    ("nul-path", b"", "-r a\x00b"),
    ("proc-environ", b"", "-r /proc/self/environ"),
    ("proc-environ-from", b"", "--requirement=/proc/self/environ"),
    ("dev-zero", Link("/dev/zero"), "-r zero.txt"),
    ("fifo", Fifo(), "-r fifo.txt"),
    ("directory", Dir(), "-r dir.txt"),
    ("sparse-40mb", Sparse(40 << 20), "-r big.txt"),
    ("not-utf8", b"torch==2.7.1\xff\n", "-r latin.txt"),
    ("missing", b"", "-r nope.txt"),
    ("long-name", b"", "-r " + "a" * 5000 + ".txt"),
    ("deep-chain", b"", "-r chain/0.txt"),
]


def lint_cases(rng: random.Random) -> Iterator[Case]:
    # Includes: every kind of file `-r`/`-c` can name.
    for name, spec, line in INCLUDES:
        files: dict[str, FileSpec] = {"requirements.txt": f"torch==2.7.1\n{line}\n"}
        target = line.split()[-1].split("=", 1)[-1]
        if name == "cycle":
            files["b.txt"] = spec
            files["sub/.keep"] = b""
        elif name == "deep-chain":
            for i in range(300):
                files[f"chain/{i}.txt"] = f"-r {i + 1}.txt\n".encode()
        elif not isinstance(spec, bytes) or spec:
            files[target] = spec
        yield _lint_case(f"include:{name}", files, ["requirements.txt"], line)
    # Requirements files: line mutations of the real ones.
    for src in LINT_FILES:
        text = src.read_text(encoding="utf-8")
        for name, mutated, line in _line_mutants(rng, text):
            fname = "constraints.txt" if "constraints" in src.name else "requirements.txt"
            yield _lint_case(
                f"{src.stem}:{name}",
                {fname: mutated},
                [fname],
                line[:300] if len(line) > 300 else line,
            )
    # pyproject.toml and pylock.toml: every value of the real ones given every TOML type.
    for src, fname in [
        (ASSETS / "lint" / "pyproject-extras" / "pyproject.toml", "pyproject.toml"),
        (ASSETS / "lint" / "pylock.toml", "pylock.toml"),
    ]:
        text = src.read_text(encoding="utf-8")
        for name, mutated, what in _toml_mutants(rng, text, every=True):
            yield _lint_case(f"{fname}:{name}", {fname: mutated}, [fname], what)
    extra_py = [
        (
            "self-extra-cycle",
            '[project]\nname = "svc"\ndependencies = ["torch==2.7.1"]\n'
            '[project.optional-dependencies]\na = ["svc[b]"]\nb = ["svc[a]", "triton==3.1.0"]\n',
        ),
        (
            "many-extras",
            '[project]\nname = "svc"\n[project.optional-dependencies]\n'
            + "".join(f'e{i} = ["svc[e{i + 1}]", "torch==2.7.1"]\n' for i in range(400)),
        ),
        (
            "same-dep-many-times",
            '[project]\nname = "svc"\ndependencies = [\n' + '"torch==2.7.1",\n' * 3000 + "]\n",
        ),
        ("project-not-table", 'project = "x"\n'),
        ("name-5000-digits", f'[project]\nname = "{HUGE_DIGITS}"\ndependencies = []\n'),
        ("deep-arrays", "x = " + "[" * DEEP + "]" * DEEP + "\n"),
        ("datetime-deps", "[project]\ndependencies = [1979-05-27T07:32:00Z]\n"),
    ]
    for name, text in extra_py:
        yield _lint_case(
            f"pyproject.toml:{name}", {"pyproject.toml": text}, ["pyproject.toml"], text[:300]
        )
    extra_lock = [
        (
            "version-5000-digits",
            f'lock-version = "1.0"\n[[packages]]\nname = "torch"\nversion = "{HUGE_DIGITS}"\n',
        ),
        ("packages-deep", "packages = " + "[" * DEEP + "]" * DEEP + "\n"),
        ("marker-junk", '[[packages]]\nname = "torch"\nversion = "2.7.1"\nmarker = "((("\n'),
        (
            "many-packages",
            "".join(f'[[packages]]\nname = "p{i}"\nversion = "1.0"\n' for i in range(5000)),
        ),
        ("name-regex", '[[packages]]\nname = "(a+)+$"\nversion = "1.0"\n'),
    ]
    for name, text in extra_lock:
        yield _lint_case(f"pylock.toml:{name}", {"pylock.toml": text}, ["pylock.toml"], text[:300])
    # --python values (markers are evaluated with it).
    for vname, value in [
        *ARG_VALUES[:14],
        ("three-parts", "3.11.4"),
        ("arabic", "\u0663.\u0661\u0661"),
    ]:
        case = _lint_case(
            f"--python={vname}",
            {"requirements.txt": (ASSETS / "lint" / "requirements-torch-triton.txt").read_text()},
            ["requirements.txt"],
            f"--python {value[:60]!r}",
        )
        case.kwargs = {"python": value}
        if case.cli is not None and "\x00" not in value:
            case.cli = ("lint", "--python", value, f"{WD}/requirements.txt")
        yield case


_TOML_LINE = re.compile(r"^(\s*[A-Za-z0-9_.\"'-]+\s*=\s*)(.+)$")


def _toml_mutants(
    rng: random.Random, text: str, every: bool, per_file: int = 0
) -> Iterator[tuple[str, str, str]]:
    """Each `key = value` line (or `per_file` of them, seeded) with its value replaced by every
    TOML type; multi-line values are left alone."""
    lines = text.splitlines()
    spots = [
        i
        for i, ln in enumerate(lines)
        if _TOML_LINE.match(ln) and not ln.rstrip().endswith(("[", "{", '"""', "'''"))
    ]
    if not every and per_file and len(spots) > per_file:
        spots = sorted(rng.sample(spots, per_file))
    for i in spots:
        m = _TOML_LINE.match(lines[i])
        assert m is not None
        key = m.group(1).strip().rstrip("=").strip()
        for vname, value in TOML_VALUES:
            out = list(lines)
            out[i] = m.group(1) + value
            shown = (m.group(1) + value)[:200]
            yield f"line{i + 1}:{key}={vname}", "\n".join(out) + "\n", shown


# --------------------------------------------------------------------------------------------
# Launch commands: argv and files
# --------------------------------------------------------------------------------------------

LAUNCH_FILES = sorted((ASSETS / "launch").glob("*.sh"))


def _real_argvs() -> list[tuple[str, list[str]]]:
    from compat.launch.text import _commands, _logical_lines, detect_entrypoint, strip_wrappers

    out = []
    for path in LAUNCH_FILES:
        try:
            lines = _logical_lines(path.read_text(encoding="utf-8"))
        except Exception:  # the broken-quote fixture
            continue
        for _, tokens in lines:
            for cmd in _commands(tokens):
                stripped, _, _ = strip_wrappers(list(cmd))
                if detect_entrypoint(stripped)[0] != "unknown":
                    out.append((path.stem, stripped))
    return out


NUMERIC_VALUES = {
    "empty",
    "word",
    "negative",
    "zero",
    "float",
    "exp-overflow",
    "inf",
    "nan",
    "digits-5000",
    "superscript-two",
    "arabic-digits",
    "hex",
    "shell-var",
}
SHORT_VALUES = {"empty", "word", "digits-5000", "superscript-two", "secret", "lone-surrogate"}


def _flag_table(rng: random.Random) -> list[tuple[str, str, set[str]]]:
    """(framework, flag, names of the values to give it): every JSON flag with every value, a
    seeded sample of the numeric flags with the numeric values, and of the rest with a few."""
    from compat.launch.data import Basis

    every = {n for n, _ in ARG_VALUES}
    values = {
        "json": every,
        "number": NUMERIC_VALUES,
        "choice": SHORT_VALUES,
        "switch": SHORT_VALUES,
        "other": SHORT_VALUES,
    }
    take = {"json": 1000, "number": 25, "choice": 10, "switch": 10, "other": 10}
    out = []
    for fw in ("sglang", "vllm"):
        basis = Basis.for_version(fw, None)
        if basis is None:
            continue
        kinds: dict[str, list[str]] = {k: [] for k in values}
        for n in sorted(n for n in basis.names() if n.startswith("--")):
            st = basis.lookup(n)
            if st is None:
                continue
            if st.type == "json":
                kinds["json"].append(n)
            elif st.type in ("int", "float"):
                kinds["number"].append(n)
            elif st.choices:
                kinds["choice"].append(n)
            elif not st.takes_value:
                kinds["switch"].append(n)
            else:
                kinds["other"].append(n)
        for kind, flags in kinds.items():
            picked = flags if len(flags) <= take[kind] else sorted(rng.sample(flags, take[kind]))
            out.extend((fw, f, values[kind]) for f in picked)
    return out


ENTRY = {"sglang": ["python", "-m", "sglang.launch_server"], "vllm": ["vllm", "serve", "m"]}


def _argv_case(
    name: str, argv: list[str], fw: str, example: Any, files: Optional[dict[str, FileSpec]] = None
) -> Case:
    freeze = {"sglang": "sglang-0.4.6-good.txt", "vllm": "vllm-0.10.1.1-good.txt"}[fw]
    cli = None
    if all("\x00" not in a for a in argv):
        cli = ("check", "--from", str(ASSETS / "freeze" / freeze), "--", *argv)
    return Case(
        "launch-argv",
        name,
        files=files or {},
        target="launch_argv",
        args=(argv, fw),
        cli=cli,
        secrets=NEEDLES,
        example=example,
    )


YAML_CONFIGS: list[tuple[str, FileSpec]] = [
    (
        "alias-bomb",
        "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
        "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
        "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
        "tensor-parallel-size: [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n",
    ),
    ("deep-list", "x: " + "[" * 50_000 + "]" * 50_000 + "\n"),
    ("deep-map", "x: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n"),
    ("not-a-mapping", "- 1\n- 2\n"),
    ("scalar", "42\n"),
    ("binary", b"\x00\xff\xfe" * 100),
    ("fifo", Fifo()),
    ("dev-zero", Link("/dev/zero")),
    ("directory", Dir()),
    ("sparse-40mb", Sparse(40 << 20)),
    ("timestamp-in-json-flag", "compilation-config: {a: 2001-12-14}\n"),
    ("timestamp-value", "tensor-parallel-size: 2001-12-14\n"),
    ("set-value", "compilation-config: !!set {a, b}\n"),
    ("int-key", "1: 2\nnull: 3\n"),
    ("complex-key", "? [1, 2]\n: 3\n"),
    ("huge-int", f"tensor-parallel-size: {HUGE_DIGITS}\n"),
    ("float-inf", "gpu-memory-utilization: .inf\n"),
    ("bool-false", "enforce-eager: false\ndisable-custom-all-reduce: false\n"),
    ("python-tag", "x: !!python/object/apply:os.system ['true']\n"),
    ("secret", f"api-key: {API_KEY}\nhf-token: {HF}\n"),
    ("list-of-dicts", "compilation-config: [{a: 1}]\n"),
]


def launch_argv_cases(rng: random.Random) -> Iterator[Case]:
    # Every known flag given every hostile value, both spellings.
    for fw, flag, wanted in _flag_table(rng):
        for vname, value in ARG_VALUES:
            if vname not in wanted:
                continue
            argv = (
                [*ENTRY[fw], f"{flag}={value}"] if rng.random() < 0.5 else [*ENTRY[fw], flag, value]
            )
            yield _argv_case(f"{fw}:{flag}={vname}", argv, fw, f"{flag} {value[:80]!r}")
    # The real launch commands, token-mutated.
    reals = _real_argvs()
    for stem, argv in reals:
        fw = "vllm" if argv[0] == "vllm" or "vllm" in " ".join(argv[:3]) else "sglang"
        for i in range(30):
            mutated = list(argv)
            for _ in range(rng.randint(1, 4)):
                op = rng.randrange(5)
                pos = rng.randrange(len(mutated) + 1)
                if op == 0 and len(mutated) > 3:
                    del mutated[min(pos, len(mutated) - 1)]
                elif op == 1:
                    mutated.insert(pos, rng.choice(ARG_VALUES)[1][:1000])
                elif op == 2 and mutated:
                    i2 = min(pos, len(mutated) - 1)
                    mutated[i2] = _mutate_text(rng, mutated[i2], 2)
                elif op == 3:
                    mutated.insert(
                        pos,
                        rng.choice(["--", "-O3", "-O.level=3", "--no-enforce-eager", "--config"]),
                    )
                else:
                    mutated = mutated + mutated[3:]
            yield _argv_case(
                f"{stem}:mutation-{i}", mutated, fw, " ".join(m[:60] for m in mutated)[:400]
            )
    # vLLM's dotted JSON keys and -O forms.
    for name, tok in [
        ("dotted-deep-key", "--compilation-config." + "a." * 50_000 + "b=1"),
        ("dotted-empty-key", "--compilation-config.=1"),
        ("dotted-dots", "--compilation-config....=1"),
        ("O-dotted-deep", "-O." + "a." * 50_000 + "b=1"),
        ("O-huge-level", "-O" + HUGE_DIGITS),
        ("O-junk", "-Ox"),
        ("json-flag-deep", "--compilation-config=" + '{"a":' * DEEP + "1" + "}" * DEEP),
        (
            "kv-transfer-deep",
            "--kv-transfer-config=" + "{" + '"a":' + "[" * DEEP + "]" * DEEP + "}",
        ),
        ("secret-api-key", f"--api-key={API_KEY}"),
    ]:
        yield _argv_case(f"vllm:{name}", [*ENTRY["vllm"], tok], "vllm", tok[:120])
    # --config files of every kind.
    for fw in ("vllm", "sglang"):
        for name, spec in YAML_CONFIGS:
            yield _argv_case(
                f"{fw}:--config:{name}",
                [*ENTRY[fw], "--config", f"{WD}/config.yaml"],
                fw,
                spec if isinstance(spec, str) and len(spec) < 2000 else name,
                files={"config.yaml": spec},
            )
    # --runtime-env JSON (parsed before Ray is asked anything).
    for vname, value in ARG_VALUES:
        yield Case(
            "launch-argv",
            f"--runtime-env={vname}",
            target="runtime_env",
            args=(value,),
            example=value[:120],
        )


def _launch_file_case(
    name: str,
    text: Union[str, bytes, FileSpec],
    fw: str,
    example: Any,
    extra: Optional[dict[str, FileSpec]] = None,
) -> Case:
    freeze = {"sglang": "sglang-0.4.6-good.txt", "vllm": "vllm-0.10.1.1-good.txt"}[fw]
    files: dict[str, FileSpec] = {"run.sh": text}
    files.update(extra or {})
    size = len(text) if isinstance(text, (str, bytes)) else 0
    return Case(
        "launch-file",
        name,
        files=files,
        target="launch_file",
        args=(f"{WD}/run.sh", fw),
        cli=("check", "--from", str(ASSETS / "freeze" / freeze), "--launch-file", f"{WD}/run.sh"),
        secrets=NEEDLES,
        example=example,
        slow=size > 20_000,
    )


def launch_file_cases(rng: random.Random) -> Iterator[Case]:
    base = "vllm serve m --tensor-parallel-size 2\n"
    shapes: list[tuple[str, Union[str, bytes, FileSpec]]] = [
        ("unbalanced-quote-4000-lines", "echo 'x\n" + "ls -l /tmp\n" * 4000 + base),
        ("unbalanced-quote-500-lines", "echo 'x\n" + "ls -l /tmp\n" * 500 + base),
        ("token-2mb", "vllm serve " + "m" * 2_000_000 + "\n"),
        ("quoted-2mb", "vllm serve '" + "m " * 1_000_000 + "'\n"),
        ("continuations-20000", "vllm serve m \\\n" + "  --tp 2 \\\n" * 20_000 + "\n"),
        ("nul", "vllm serve m\x00 --tp 2\n"),
        ("crlf", base.replace("\n", "\r\n")),
        ("backslash-eof", "vllm serve m \\"),
        ("heredoc", "cat <<EOF\n'\nEOF\n" + base),
        ("subshell", "$(vllm serve m)\n`vllm serve m`\n"),
        ("empty", ""),
        ("comments-only", "# nothing\n" * 100),
        ("fifo", Fifo()),
        ("dev-zero", Link("/dev/zero")),
        ("directory", Dir()),
        ("sparse-40mb", Sparse(40 << 20)),
        ("not-utf8", b"vllm serve m \xff\xfe\n"),
        ("proc-environ", Link("/proc/self/environ")),
        ("export-many", "".join(f"export V{i}=${{V{i - 1}}}x\n" for i in range(1, 3000)) + base),
        ("export-doubling", "X=ab\n" + "X=$X$X\n" * 40 + base),
        ("separators", ";;;&&&|||\n" * 1000 + base),
        (
            "secrets",
            f"export HF_TOKEN={HF}\nexport VLLM_RPC_BASE_URL='{SECRET_URL_PASSWORD}'\n"
            f"export SGLANG_REPO_URL={SECRET_URL_TOKEN}\n"
            f"NCCL_DEBUG_SUBSYS='INIT Authorization: Bearer {BEARER}' "
            f"vllm serve m --api-key {API_KEY} --tensor-parallel-size 2\n",
        ),
    ]
    for name, text in shapes:
        yield _launch_file_case(
            name, text, "vllm", text[:300] if isinstance(text, (str, bytes)) else name
        )
    yield _launch_file_case(
        "config-alias-bomb",
        "vllm serve m --config bomb.yaml\n",
        "vllm",
        YAML_CONFIGS[0][1],
        {"bomb.yaml": YAML_CONFIGS[0][1]},
    )
    for path in LAUNCH_FILES:
        text = path.read_text(encoding="utf-8")
        fw = "vllm" if "vllm" in text else "sglang"
        for i in range(40):
            mutated = _mutate_text(rng, text, rng.randint(1, 8))
            yield _launch_file_case(f"{path.stem}:mutation-{i}", mutated, fw, mutated[:400])
        lines = text.splitlines()
        for vname, value in ARG_VALUES:
            at = rng.randrange(len(lines)) if lines else 0
            out = list(lines)
            if out:
                words = out[at].split(" ")
                words[rng.randrange(len(words))] = (
                    shlex.quote(value) if rng.random() < 0.5 else value
                )
                out[at] = " ".join(words)
            yield _launch_file_case(
                f"{path.stem}:word={vname}", "\n".join(out) + "\n", fw, value[:120]
            )


# --------------------------------------------------------------------------------------------
# Host facts on the command line
# --------------------------------------------------------------------------------------------


def override_cases(rng: random.Random) -> Iterator[Case]:
    snap = str(ASSETS / "envs" / "h100-torch2.11-cu130.json")

    def case(name: str, example: Any, cli_opts: list[str], **kw: Any) -> Case:
        return Case(
            "overrides",
            name,
            target="host_overrides",
            kwargs={
                "driver": kw.get("driver"),
                "gpus": tuple(kw.get("gpus", ())),
                "env_vars": tuple(kw.get("env_vars", ())),
                "python": kw.get("python"),
            },
            cli=None
            if any("\x00" in o for o in cli_opts)
            else ("check", "--from", snap, *cli_opts),
            secrets=NEEDLES,
            example=example,
        )

    values = [
        *ARG_VALUES,
        ("cuda-visible-uuid", "GPU-526909b2-216e"),
        ("cuda-visible-commas", ",,,"),
        ("cuda-visible-list", "0,1,2,3,4,5,6,7,8"),
        ("cuda-visible-minus", "-1"),
        ("mig-uuid", "MIG-GPU-1/2/3"),
        ("version-three", "550.54.15"),
        ("version-two", "535"),
        ("arabic-python", "\u0663.\u0661\u0661"),
        ("fullwidth", "\uff13.\uff11\uff11"),
    ]
    for vname, value in values:
        yield case(
            f"--driver={vname}", f"--driver {value[:60]!r}", ["--driver", value], driver=value
        )
        yield case(f"--gpu={vname}", f"--gpu {value[:60]!r}", ["--gpu", value], gpus=[value])
        yield case(
            f"--python={vname}", f"--python {value[:60]!r}", ["--python", value], python=value
        )
        for var in (
            "CUDA_VISIBLE_DEVICES",
            "NVIDIA_VISIBLE_DEVICES",
            "PYTORCH_CUDA_ALLOC_CONF",
            "NCCL_NVLS_ENABLE",
            "TORCH_CUDA_ARCH_LIST",
            "LD_LIBRARY_PATH",
        ):
            kv = f"{var}={value}"
            yield case(f"--env {var}={vname}", f"--env {kv[:80]!r}", ["--env", kv], env_vars=[kv])
    for kv in (
        "=1",
        "NOEQUALS",
        "=",
        "\u00b2=1",
        f"X={SECRET_URL_PASSWORD}",
        f"LD_LIBRARY_PATH={SECRET_ENV['LD_LIBRARY_PATH']}",
    ):
        yield case(f"--env:{kv[:20]}", kv, ["--env", kv], env_vars=[kv])
    for gpu in (
        "sm_",
        "sm_x",
        "sm_" + HUGE_DIGITS,
        "9.",
        ".9",
        "h100:" + HUGE_DIGITS,
        "8xH100",
        "0xH100",
        "h100:-1",
        "999999999999xH100",
    ):
        yield case(f"--gpu:{gpu[:20]}", gpu[:80], ["--gpu", gpu], gpus=[gpu])


# --------------------------------------------------------------------------------------------
# The database: advisories, generated and curated files, cache entries
# --------------------------------------------------------------------------------------------


def _toml_load(path: Path) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    return tomllib.loads(path.read_text(encoding="utf-8"))


def _toml_py_values() -> list[tuple[str, Any]]:
    import datetime as dt

    return [
        ("datetime", dt.datetime(1979, 5, 27, 7, 32, tzinfo=dt.timezone.utc)),
        ("date", dt.date(1979, 5, 27)),
        ("time", dt.time(7, 32)),
        ("inf", float("inf")),
        ("nan", float("nan")),
        ("big-int", BIG_INT),
        ("negative", -1),
        ("zero", 0),
        ("float", 1.5),
        ("true", True),
        ("empty-string", ""),
        ("string", "x"),
        ("version-x", "12.x"),
        ("digits-5000", HUGE_DIGITS),
        ("arabic-digits", "\u0663.\u0661\u0661"),
        ("specifier-junk", ">=1.0,<<2"),
        ("regex-like", "(a+)+$"),
        ("long-string", "A" * 200_000),
        ("empty-list", []),
        ("list-int", [1]),
        ("list-date", [dt.date(1979, 5, 27)]),
        ("list-list", [[]]),
        ("empty-table", {}),
        ("table", {"a": 1}),
        ("deep-list", _deep_list(400)),  # about the most nesting tomllib returns
    ]


def _deep_list(n: int) -> list[Any]:
    out: list[Any] = []
    for _ in range(n):
        out = [out]
    return out


ADVISORIES = sorted((MATRICES / "advisories").glob("*.toml"))


def advisory_cases(rng: random.Random) -> Iterator[Case]:
    values = _toml_py_values()
    picked = ADVISORIES if len(ADVISORIES) <= 5 else rng.sample(ADVISORIES, 5)
    for path in picked:
        doc = _toml_load(path)
        for p in distinct_paths(doc, rng):
            if not p:
                continue  # the loader hands parse_advisory a table, always
            for vname, value in values:
                data = _set(copy.deepcopy(doc), p, value)
                yield Case(
                    "advisory",
                    f"{path.stem}:{_norm(p)}={vname}",
                    target="advisory_dict",
                    args=(data, path.name),
                    example={_norm(p): vname},
                )
    # The TOML text itself, through the loader and `compat matrix validate`.
    for path in ADVISORIES[:3]:
        text = path.read_text(encoding="utf-8")
        for name, mutated, what in _toml_mutants(rng, text, every=False, per_file=6):
            yield _db_case(
                "advisory", f"{path.stem}:toml:{name}", f"advisories/{path.name}", mutated, what
            )


@functools.lru_cache(maxsize=1)
def _database_files() -> tuple[tuple[str, str], ...]:
    return tuple(
        (p.relative_to(MATRICES).as_posix(), str(p)) for p in sorted(MATRICES.rglob("*.toml"))
    )


def _db_files(replace: str, content: FileSpec) -> dict[str, FileSpec]:
    """A database folder of links to the bundled files, `replace` (relative) swapped."""
    files: dict[str, FileSpec] = {}
    for rel, real in _database_files():
        files[f"db/{rel}"] = content if rel == replace else Link(real)
    if f"db/{replace}" not in files:
        files[f"db/{replace}"] = content
    return files


def _db_case(surface: str, name: str, replace: str, content: FileSpec, example: Any) -> Case:
    return Case(
        surface,
        name,
        files=_db_files(replace, content),
        target="database_root",
        args=(f"{WD}/db",),
        cli=("matrix", "validate", "--path", f"{WD}/db"),
        # Every reader (launch data, package families, rules) reads this folder.
        env={"COMPAT_CACHE_DIR": f"{WD}/cache", "COMPAT_MATRICES": f"{WD}/db"},
        example=example,
    )


def data_cases(rng: random.Random) -> Iterator[Case]:
    files = sorted((MATRICES / "curated").glob("*.toml")) + sorted(
        (MATRICES / "generated").rglob("*.toml")
    )
    for path in files:
        rel = path.relative_to(MATRICES).as_posix()
        text = path.read_text(encoding="utf-8")
        curated = path.parent.name == "curated"
        per = 5 if curated else 1
        for i, (name, mutated, what) in enumerate(
            _toml_mutants(rng, text, every=False, per_file=per)
        ):
            case = _db_case("data", f"{rel}:{name}", rel, mutated, what)
            # `compat matrix validate` parses every file afresh: one case in four runs it.
            case.kwargs["validate"] = i % 4 == 0
            if rng.random() < 0.5:  # half through `compat check`, which reads the data cached
                case.cli = ("check", "--from", str(SNAPSHOTS[0]), "--", *ENTRY["vllm"], "-tp", "2")
                case.env["COMPAT_MATRICES"] = f"{WD}/db"
            yield case
        for i in range(3):
            yield _db_case(
                "data", f"{rel}:mutation-{i}", rel, _mutate_text(rng, text, 4), "mutated"
            )
    for name, spec in [
        ("fifo", Fifo()),
        ("dev-zero", Link("/dev/zero")),
        ("directory", Dir()),
        ("sparse-40mb", Sparse(40 << 20)),
        ("not-utf8", b"x = '\xff'\n"),
        ("unquoted-datetime", b"[meta]\ngenerated = 2026-01-01T00:00:00Z\n"),
        ("deep-array", ("x = " + "[" * DEEP + "]" * DEEP + "\n").encode()),
    ]:
        for rel in (
            "generated/torch.toml",
            "curated/gpus.toml",
            "advisories/COMPAT-0001.toml",
            "curated/packages.toml",
        ):
            yield _db_case("data", f"{rel}:file:{name}", rel, spec, f"{rel} is {name}")
    # An unquoted datetime in a data file checked through the JSON cache writer.
    gpus = (MATRICES / "curated" / "gpus.toml").read_text(encoding="utf-8")
    case = _db_case(
        "data",
        "curated/gpus.toml:datetime-through-cache",
        "curated/gpus.toml",
        gpus + "\n[datetime_row]\nwhen = 1979-05-27T07:32:00Z\n",
        "[datetime_row] when = 1979-05-27T07:32:00Z",
    )
    case.cli = (
        "check",
        "--from",
        str(ASSETS / "envs" / "h100-torch2.11-cu130.json"),
        "--gpu",
        "h100",
    )
    case.env["COMPAT_MATRICES"] = f"{WD}/db"
    yield case


def cache_key(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:32]


def cache_cases(rng: random.Random, expected: str) -> Iterator[Case]:
    """The bundled data read through a cache folder whose entry for one file was replaced."""
    data_files = (
        sorted((MATRICES / "generated").rglob("*.toml"))
        + sorted((MATRICES / "curated").glob("*.toml"))
        + ADVISORIES[:2]
    )
    other = json.dumps({"meta": {"project": "triton"}, "releases": {}})
    entries: list[tuple[str, FileSpec]] = [
        ("list", "[]"),
        ("null", "null"),
        ("number", "5"),
        ("string", '"x"'),
        ("empty-object", "{}"),
        ("releases-number", '{"releases": 5, "meta": {"project": "torch"}}'),
        ("releases-list", '{"releases": [1, 2], "meta": 3}'),
        ("rows-wrong", '{"gpu": 5, "toolkit": [1], "build": {"x": null}}'),
        ("another-files-content", other),
        ("truncated", '{"releases": {"2.7.1": {'),
        ("deep", "[" * DEEP + "]" * DEEP),
        ("deep-object", '{"a":' * DEEP + "1" + "}" * DEEP),
        ("big-int", '{"x": ' + "9" * 5000 + "}"),
        ("not-utf8", b'{"x": "\xff"}'),
        ("fifo", Fifo()),
        ("dev-zero", Link("/dev/zero")),
        ("directory", Dir()),
        ("sparse-40mb", Sparse(40 << 20)),
        ("dangling-link", Link("/nonexistent")),
    ]
    for path in data_files:
        key = cache_key(path)
        for name, spec in entries:
            if (
                path.parent.name == "generated"
                and rng.random() < 0.4
                and name in ("fifo", "dev-zero", "sparse-40mb")
            ):
                continue
            yield Case(
                "cache",
                f"{path.parent.name}/{path.name}:{name}",
                files={f"cache/index/{key}.json": spec},
                target="cached_database",
                args=(str(MATRICES), expected),
                cli=(
                    "check",
                    "--from",
                    str(ASSETS / "envs" / "h100-torch2.11-cu130.json"),
                    "--format",
                    "json",
                    "--",
                    "vllm",
                    "serve",
                    "m",
                    "--tensor-parallel-size",
                    "2",
                ),
                env={"COMPAT_CACHE_DIR": f"{WD}/cache"},
                example=f"the cache entry of {path.parent.name}/{path.name} holds {name}",
            )


# --------------------------------------------------------------------------------------------
# ELF files
# --------------------------------------------------------------------------------------------

ELF_SOURCE = (
    "extern void _ZN3c104testEv(void); extern void _ZN3c107missingEv(void);\n"
    "void run(void) { _ZN3c104testEv(); _ZN3c107missingEv(); }\n"
)


def build_elf(folder: Path) -> Optional[bytes]:
    """A small shared object with DT_NEEDED and undefined c10 symbols (needs a C compiler)."""
    import shutil
    import subprocess

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "x.c").write_text(ELF_SOURCE)
    (folder / "c10.c").write_text("void _ZN3c104testEv(void) {}\n")
    subprocess.run(
        [cc, "-shared", "-fPIC", "-o", str(folder / "libc10.so"), str(folder / "c10.c")], check=True
    )
    subprocess.run(
        [
            cc,
            "-shared",
            "-fPIC",
            "-o",
            str(folder / "x.so"),
            str(folder / "x.c"),
            f"-L{folder}",
            "-lc10",
            "-Wl,--no-as-needed",
        ],
        check=True,
    )
    return (folder / "x.so").read_bytes()


def _elf_layout(raw: bytes) -> tuple[str, int, int, int, list[tuple[int, int, int]]]:
    """(endian, e_shoff, e_shentsize, e_shnum, [(offset of header, type, link)])."""
    end = "<" if raw[5] == 1 else ">"
    fields = struct.unpack_from(end + "HHIQQQIHHHHHH", raw, 16)
    shoff, shentsize, shnum = fields[5], fields[10], fields[11]
    secs = []
    for i in range(shnum):
        off = shoff + i * shentsize
        (stype,) = struct.unpack_from(end + "I", raw, off + 4)
        (link,) = struct.unpack_from(end + "I", raw, off + 40)
        secs.append((off, stype, link))
    return end, shoff, shentsize, shnum, secs


def elf_mutants(rng: random.Random, raw: bytes) -> Iterator[tuple[str, bytes]]:
    end, shoff, shentsize, shnum, secs = _elf_layout(raw)

    def put(data: bytes, off: int, fmt: str, value: int) -> bytes:
        b = bytearray(data)
        struct.pack_into(end + fmt, b, off, value)
        return bytes(b)

    header_fields = [
        ("e_shoff", 40, "Q"),
        ("e_shentsize", 58, "H"),
        ("e_shnum", 60, "H"),
        ("e_shstrndx", 62, "H"),
        ("e_phoff", 32, "Q"),
    ]
    hostile = {
        "Q": [0, 1, len(raw), len(raw) - 1, 2**63 - 1, 2**64 - 1, 2**40],
        "H": [0, 1, 63, 64, 65, 65535],
    }
    for fname, off, fmt in header_fields:
        for v in hostile[fmt]:
            yield f"{fname}={v}", put(raw, off, fmt, v)
    yield "ei_class=32bit", raw[:4] + b"\x01" + raw[5:]
    yield "ei_data=big-endian", raw[:5] + b"\x02" + raw[6:]
    yield "ei_data=0", raw[:5] + b"\x00" + raw[6:]
    # Section headers of the dynamic tables: sh_link, sh_offset, sh_size, sh_entsize.
    sec_fields = [
        ("sh_link", 40, "I"),
        ("sh_offset", 24, "Q"),
        ("sh_size", 32, "Q"),
        ("sh_entsize", 56, "Q"),
    ]
    hostile["I"] = [0, shnum, 2**32 - 1, 2**31]
    for off, stype, _link in secs:
        if stype not in (6, 11, 3):  # SHT_DYNAMIC, SHT_DYNSYM, SHT_STRTAB
            continue
        for fname, foff, fmt in sec_fields:
            for v in hostile[fmt]:
                yield f"sec{stype}:{fname}={v}", put(raw, off + foff, fmt, v)
        yield f"sec{stype}:sh_type=0", put(raw, off + 4, "I", 0)
    for cut in sorted({16, 63, 64, shoff, shoff + shentsize, len(raw) // 2, len(raw) - 1}):
        yield f"truncated-at-{cut}", raw[:cut]
    for i in range(60):
        b = bytearray(raw)
        for _ in range(rng.randint(1, 16)):
            pos = rng.randrange(len(b))
            b[pos] = rng.randrange(256)
        yield f"byte-flips-{i}", bytes(b)
    yield "not-elf", b"\x7fELF"
    yield "empty", b""


def elf_cases(rng: random.Random, raw: Optional[bytes]) -> Iterator[Case]:
    if raw is None:
        return
    for name, data in elf_mutants(rng, raw):
        yield Case(
            "elf",
            name,
            files={"site/torch/lib/libc10.so": data},
            target="elf_object",
            args=(f"{WD}/site/torch/lib/libc10.so",),
            env={"COMPAT_CACHE_DIR": f"{WD}/cache"},  # the --deep fact cache, per case
            example=name,
        )
    for name, spec in [
        ("fifo", Fifo()),
        ("dev-zero", Link("/dev/zero")),
        ("directory", Dir()),
        ("sparse-40mb", Sparse(40 << 20)),
    ]:
        yield Case(
            "elf",
            f"file:{name}",
            files={"site/torch/lib/libc10.so": spec},
            target="elf_object",
            args=(f"{WD}/site/torch/lib/libc10.so",),
            env={"COMPAT_CACHE_DIR": f"{WD}/cache"},  # the --deep fact cache, per case
            example=name,
        )


# --------------------------------------------------------------------------------------------
# Installed distributions (dist-info, torch/version.py, extension modules)
# --------------------------------------------------------------------------------------------


def _metadata(name: str, version: str, requires: tuple[str, ...] = ()) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    return "\n".join(lines) + "\n\nLong description.\n"


def site_files(
    torch_version: str = "2.7.1", torch_py: Optional[FileSpec] = None
) -> dict[str, FileSpec]:
    """A site-packages with torch 2.7.1+cu126, triton, sglang and torchvision, as installed."""
    files: dict[str, FileSpec] = {
        f"site/torch-{torch_version}.dist-info/METADATA": _metadata(
            "torch", torch_version, ("triton==3.3.1",)
        ),
        "site/torch/version.py": torch_py
        if torch_py is not None
        else "__version__ = '2.7.1+cu126'\ncuda = '12.6'\nhip = None\n",
        "site/torch/lib/libc10.so": b"not elf",
        "site/triton-3.3.1.dist-info/METADATA": _metadata("triton", "3.3.1"),
        "site/sglang-0.4.6.post1.dist-info/METADATA": _metadata(
            "sglang", "0.4.6.post1", ('torch==2.6.0; extra == "srt"',)
        ),
        "site/torchvision-0.22.1.dist-info/METADATA": _metadata(
            "torchvision", "0.22.1", ("torch==2.7.1",)
        ),
        "site/torchvision/_C.so": b"\x7fELF",
    }
    return files


def distinfo_variants() -> Iterator[tuple[str, dict[str, FileSpec]]]:
    meta = "site/torch-2.7.1.dist-info/METADATA"
    vpy = "site/torch/version.py"
    for name, spec in [
        ("missing", None),
        ("directory", Dir()),
        ("fifo", Fifo()),
        ("dev-zero", Link("/dev/zero")),
        ("dangling-link", Link("/nonexistent")),
        ("link-loop", Link(f"{WD}/{meta}")),
        ("empty", b""),
        ("binary", bytes(range(256))),
        ("not-utf8", b"Name: torch\nVersion: 2.7.1\xff\n"),
        ("no-version", "Name: torch\n"),
        ("version-5000-digits", _metadata("torch", HUGE_DIGITS)),
        ("version-arabic", _metadata("torch", "\u0663.\u0661")),
        ("version-junk", _metadata("torch", "2.7.1+cu12x")),
        ("version-local-huge", _metadata("torch", "2.7.1+cu" + HUGE_DIGITS)),
        ("name-header-20mb", "Name: " + "t" * (20 << 20) + "\nVersion: 2.7.1\n"),
        ("line-20mb-no-newline", "X" * (20 << 20)),
        ("requires-100k", _metadata("torch", "2.7.1", tuple(f"p{i}==1" for i in range(100_000)))),
        (
            "requires-junk",
            _metadata(
                "torch", "2.7.1", ("((((", "torch==" + HUGE_DIGITS, "x; python_version < '\u0663'")
            ),
        ),
        ("requires-secret", _metadata("torch", "2.7.1", (f"pkg @ {SECRET_URL_PASSWORD}",))),
        ("sparse-40mb", Sparse(40 << 20)),
        ("crlf", _metadata("torch", "2.7.1").replace("\n", "\r\n")),
    ]:
        files = site_files()
        if spec is None:
            del files[meta]
        else:
            files[meta] = spec
        yield f"torch METADATA {name}", files
    for name, spec in [
        ("missing", None),
        ("directory", Dir()),
        ("fifo", Fifo()),
        ("dev-zero", Link("/dev/zero")),
        ("version-5000-digits", f"__version__ = '{HUGE_DIGITS}'\ncuda = '12.6'\n"),
        ("cuda-12.x", "__version__ = '2.7.1+cu126'\ncuda = '12.x'\n"),
        ("cuda-5000-digits", f"__version__ = '2.7.1+cu126'\ncuda = '{HUGE_DIGITS}'\n"),
        ("cuda-arabic", "__version__ = '2.7.1+cu126'\ncuda = '\u0661\u0662.\u0664'\n"),
        ("hip-junk", "__version__ = '2.7.1+rocm6.x'\nhip = 'x.y'\ncuda = None\n"),
        ("line-20mb", "__version__ = '" + "9" * (20 << 20) + "'\n"),
        ("sparse-40mb", Sparse(40 << 20)),
        ("not-utf8", b"__version__ = '2.7.1\xff'\n"),
        ("regex-heavy", "cuda " + " " * 200_000 + ": x" * 1000 + "\n"),
    ]:
        files = site_files()
        if spec is None:
            del files[vpy]
        else:
            files[vpy] = spec
        yield f"torch/version.py {name}", files
    for name, spec in [
        ("fifo", Fifo()),
        ("dev-zero", Link("/dev/zero")),
        ("directory", Dir()),
        ("sparse-40mb", Sparse(40 << 20)),
    ]:
        files = site_files()
        files["site/torchvision/_C.so"] = spec
        yield f"torchvision/_C.so {name}", files
    for name, spec in [("file-not-dir", b"x"), ("fifo", Fifo())]:
        files = site_files()
        del files["site/torch/lib/libc10.so"]
        files["site/torch/lib"] = spec
        yield f"torch/lib {name}", files
    for name in (
        "torch-.dist-info",
        "-1.0.dist-info",
        "t\u00f6rch-1.0.dist-info",
        "torch-" + HUGE_DIGITS[:200] + ".dist-info",
        ".dist-info",
    ):
        files = site_files()
        files[f"site/{name}/METADATA"] = _metadata("torch", "2.7.1")
        yield f"folder {name[:40]}", files
    for name, spec in [
        ("fifo", Fifo()),
        ("dev-zero", Link("/dev/zero")),
        ("huge", "x.so,sha,1\n" * 300_000),
        ("traversal", "../../../../etc/passwd.so,,\n/abs/x.so,,\n"),
    ]:
        files = site_files()
        files["site/sgl_kernel-0.3.9.dist-info/METADATA"] = _metadata("sgl-kernel", "0.3.9")
        files["site/sgl_kernel-0.3.9.dist-info/RECORD"] = spec
        yield f"sgl-kernel RECORD {name}", files


def distinfo_cases(rng: random.Random) -> Iterator[Case]:
    for name, files in distinfo_variants():
        files["bin/python"] = Exec(_printer(_interp_json()))
        for deep in (False, True):
            yield Case(
                "dist-info",
                f"{name}{' --deep' if deep else ''}",
                files=files,
                target="site_probe",
                args=(f"{WD}/site", deep),
                cli=("check", "--interpreter", f"{WD}/bin/python", *(["--deep"] if deep else [])),
                secrets=NEEDLES,
                example=name,
            )


# --------------------------------------------------------------------------------------------
# Probes: nvidia-smi, NVML, another interpreter
# --------------------------------------------------------------------------------------------

SMI_GOOD = "0, NVIDIA H100 80GB HBM3, 9.0, 81559, 480, Disabled, GPU-5269, 550.54.15"


def smi_rows() -> Iterator[tuple[str, str]]:
    cols = [c.strip() for c in SMI_GOOD.split(",")]
    junk = [
        "inf",
        "-inf",
        "nan",
        "1e400",
        "-1",
        HUGE_DIGITS,
        "\u00b2",
        "[N/A]",
        "",
        "x",
        "1.5",
        "0x10",
        "\u0663",
        "9." + HUGE_DIGITS,
        HUGE_DIGITS + ".0",
        "\x00",
    ]
    for i in range(len(cols)):
        for j in junk:
            row = list(cols)
            row[i] = j
            yield f"col{i}={j[:12]!r}", ", ".join(row) + "\n"
    yield "few-columns", "0, H100\n"
    yield "many-columns", SMI_GOOD + ", x" * 1000 + "\n"
    yield "many-rows", (SMI_GOOD + "\n") * 100_000
    yield "secret-driver", SMI_GOOD.rsplit(",", 1)[0] + f", {SECRET_URL_PASSWORD}\n"
    yield "binary", "\x00\xff" * 1000
    yield "long-name", SMI_GOOD.replace("NVIDIA H100 80GB HBM3", "N" * 2_000_000) + "\n"


def _fake_host(extra: dict[str, FileSpec]) -> dict[str, FileSpec]:
    files: dict[str, FileSpec] = {
        "root/proc/driver/nvidia/version": "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Release Build\n",
        "root/dev/nvidia0": b"",
    }
    files.update(extra)
    return files


SMI_SCRIPTS: list[tuple[str, str]] = [
    ("prints-inf", "#!/bin/sh\necho '0, H100, inf, inf, inf, Disabled, GPU-1, inf'\n"),
    ("flood-zero", "#!/bin/sh\nexec cat /dev/zero\n"),
    (
        "flood-lines",
        "#!/bin/sh\nexec yes '0, NVIDIA H100 80GB HBM3, 9.0, 81559, 480, Disabled, GPU-1, 550.54.15'\n",
    ),
    ("flood-stderr", "#!/bin/sh\nexec cat /dev/zero >&2\n"),
    ("hangs", "#!/bin/sh\nexec sleep 60\n"),
    ("hangs-after-output", f"#!/bin/sh\necho '{SMI_GOOD}'\nexec sleep 60\n"),
    ("exits-1", "#!/bin/sh\necho boom >&2\nexit 1\n"),
    ("killed", "#!/bin/sh\nkill -SEGV $$\n"),
    ("not-utf8", "#!/bin/sh\nprintf '0, \\377\\376, 9.0, 1, 1, Disabled, GPU, 550\\n'\n"),
    ("forks-and-exits", "#!/bin/sh\n(sleep 60 >/dev/null 2>&1 &)\necho '" + SMI_GOOD + "'\n"),
    ("keeps-pipe-open", "#!/bin/sh\n(sleep 60 &)\necho '" + SMI_GOOD + "'\n"),
]


def probe_cases(rng: random.Random, nvml_lib: Optional[str]) -> Iterator[Case]:
    for name, text in smi_rows():
        yield Case(
            "probe",
            f"nvidia-smi csv {name}",
            target="smi_text",
            args=(text,),
            secrets=NEEDLES,
            example=text[:300],
        )
    for name, script in SMI_SCRIPTS:
        files = _fake_host({"bin/nvidia-smi": Exec(script)})
        yield Case(
            "probe",
            f"nvidia-smi script {name}",
            files=files,
            target="probe_host",
            args=(f"{WD}/root", f"{WD}/no-such-libnvidia-ml.so"),
            env={"PATH": f"{WD}/bin:/usr/bin:/bin"},
            example=script,
        )
    if nvml_lib:
        for mode in (
            "ok",
            "hang",
            "crash",
            "initfail",
            "manydev",
            "junk",
            "hugemem",
            "badcc",
            "slow",
        ):
            yield Case(
                "probe",
                f"NVML {mode}",
                files=_fake_host({}),
                target="probe_host",
                args=(f"{WD}/root", nvml_lib),
                env={"FAKE_NVML_MODE": mode, "PATH": "/usr/bin:/bin"},
                example=f"FAKE_NVML_MODE={mode}",
            )
    # Another interpreter (`--interpreter PATH`): what it prints is not to be trusted.
    for name, script in interpreter_scripts():
        yield Case(
            "probe",
            f"interpreter {name}",
            files={"bin/python": Exec(script), "site/.keep": b""},
            target="interpreter",
            args=(f"{WD}/bin/python",),
            cli=("env", "--interpreter", f"{WD}/bin/python", "--no-host"),
            secrets=NEEDLES,
            example=script[:400],
        )
    # The live environment's variables with planted secrets.
    for var, value in SECRET_ENV.items():
        environ = {"PATH": "/usr/bin:/bin", var: value}
        yield Case(
            "probe",
            f"environment {var}",
            target="live_env",
            args=(environ,),
            cli=("env", "--no-host"),
            env={var: value},
            secrets=NEEDLES,
            example=f"{var}={value}",
        )
    yield Case(
        "probe",
        "environment all secrets",
        target="live_env",
        args=(dict(SECRET_ENV, PATH="/usr/bin:/bin"),),
        cli=("env", "--json", "--no-host"),
        env=dict(SECRET_ENV),
        secrets=NEEDLES,
        example=SECRET_ENV,
    )


def _interp_json(**override: Any) -> str:
    doc: dict[str, Any] = {
        "version": "3.11.7",
        "implementation": "cpython",
        "executable": "/srv/venv/bin/python",
        "platform": "linux-x86_64",
        "machine": "x86_64",
        "path": [f"{WD}/site"],
        "soabi": "cpython-311-x86_64-linux-gnu",
    }
    doc.update(override)
    return json.dumps(doc)


def _printer(payload: str) -> str:
    quoted = payload.replace("'", "'\\''")
    return f"#!/bin/sh\nprintf '%s\\n' '{quoted}'\n"


def interpreter_scripts() -> Iterator[tuple[str, str]]:
    for raw in ("{}", "null", "[]", '"x"', "1", "", "not json", "{" * 1000):
        yield f"prints {raw[:12]!r}", _printer(raw)
    for key in ("version", "implementation", "executable", "platform", "machine", "path", "soabi"):
        for vname, value in JSON_VALUES:
            if vname in ("long-string", "lone-surrogate", "list-surrogate", "int-4300-digits"):
                continue
            yield f"{key}={vname}", _printer(_interp_json(**{key: value}))
    for version in (
        "3.x",
        "\u0663.\u0661\u0661",
        HUGE_DIGITS,
        "3",
        "3.11.7.8.9",
        "-1.-1",
        "3.11rc1",
    ):
        yield f"version {version[:12]!r}", _printer(_interp_json(version=version))
    yield (
        "path huge list",
        "#!/bin/sh\n"
        + sys.executable
        + " -c \"import json; print(json.dumps({'version':'3.11.7','implementation':'cpython','executable':'x','platform':'linux','machine':'x86_64','soabi':'','path':['/nonexistent/%d' % i for i in range(200000)]}))\"\n",
    )
    yield "flood stdout", "#!/bin/sh\nexec cat /dev/zero\n"
    yield "flood stderr and fail", "#!/bin/sh\nhead -c 50000000 /dev/zero >&2\nexit 1\n"
    yield "hangs", "#!/bin/sh\nexec sleep 60\n"
    yield "exits 1", "#!/bin/sh\necho 'ModuleNotFoundError: x' >&2\nexit 1\n"
    yield "killed", "#!/bin/sh\nkill -SEGV $$\n"
    yield "not utf8", "#!/bin/sh\nprintf '\\377\\376{}\\n'\n"
    yield "prints secret on stderr", f"#!/bin/sh\necho 'Traceback: HF_TOKEN={HF}' >&2\nexit 1\n"
    yield "real python", f'#!/bin/sh\nexec {sys.executable} "$@"\n'


# --------------------------------------------------------------------------------------------
# The served model's files (config.json, weight index, safetensors headers, the HF cache)
# --------------------------------------------------------------------------------------------

MODELS = ASSETS / "models"
SNAPSHOT_ID = "0123456789abcdef0123456789abcdef01234567"


def _hub_model(repo: str) -> Path:
    return MODELS / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots" / SNAPSHOT_ID


def _model_case(
    name: str, files: dict[str, FileSpec], example: Any, model: str = f"{WD}/model", **env: str
) -> Case:
    argv = ("vllm", "serve", model, "--tensor-parallel-size", "2")
    return Case(
        "model",
        name,
        files=files,
        target="check_request",
        args=(str(SNAPSHOTS[0]),),
        kwargs={"launch_argv": argv},
        cli=("check", "--from", str(SNAPSHOTS[0]), "--", *argv),
        env=dict(env),
        secrets=NEEDLES,
        example=example,
    )


def model_cases(rng: random.Random) -> Iterator[Case]:
    for repo in ("Qwen/Qwen3-30B-A3B", "meta-llama/Llama-3.1-8B-Instruct"):
        folder = _hub_model(repo)
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        index = Link(str(folder / "model.safetensors.index.json"))
        for path in distinct_paths(config, rng):
            for vname, value in JSON_VALUES:
                if vname == "long-string":
                    continue
                yield _model_case(
                    f"{repo}:config{_norm(path)}={vname}",
                    {
                        "model/config.json": Lazy(
                            functools.partial(_replaced, config, path, value)
                        ),
                        "model/model.safetensors.index.json": index,
                    },
                    {f"config.json{_norm(path)}": vname},
                )
        index_doc = json.loads(
            (folder / "model.safetensors.index.json").read_text(encoding="utf-8")
        )
        for vname, value in JSON_VALUES:
            yield _model_case(
                f"{repo}:index.metadata.total_size={vname}",
                {
                    "model/config.json": Link(str(folder / "config.json")),
                    "model/model.safetensors.index.json": Lazy(
                        functools.partial(_replaced, index_doc, ("metadata", "total_size"), value)
                    ),
                },
                {"model.safetensors.index.json metadata.total_size": vname},
            )
    tiny = MODELS / "tiny-local"
    raw = (tiny / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])

    def st_file(head: bytes, length: Optional[int] = None) -> bytes:
        return struct.pack("<Q", len(head) if length is None else length) + head

    tensor = next(k for k in header if k != "__metadata__")
    variants: list[tuple[str, FileSpec]] = [
        ("length-huge", st_file(b"{}", 2**63)),
        ("length-past-end", st_file(b"{}", 1 << 20)),
        ("length-zero", st_file(b"", 0)),
        ("short", b"\x01\x02"),
        ("not-json", st_file(b"not json")),
        ("deep", st_file(("[" * DEEP + "]" * DEEP).encode())),
        ("not-object", st_file(b"[1, 2]")),
        ("big-int", st_file(('{"a": {"data_offsets": [0, ' + "9" * 5000 + "]}}").encode())),
        ("offsets-huge", st_file(json.dumps({tensor: {"data_offsets": [0, 2**80]}}).encode())),
        ("offsets-float", st_file(json.dumps({tensor: {"data_offsets": [0.5, 1e308]}}).encode())),
        ("not-utf8", st_file(b'{"\xff": 1}')),
        ("fifo", Fifo()),
        ("dev-zero", Link("/dev/zero")),
        ("directory", Dir()),
    ]
    for field_name in ("dtype", "shape", "data_offsets"):
        for vname, value in JSON_VALUES:
            if vname == "long-string":
                continue
            doc = copy.deepcopy(header)
            doc[tensor][field_name] = value
            variants.append(
                (f"{field_name}={vname}", st_file(json.dumps(doc, allow_nan=True).encode()))
            )
    for vname, spec in variants:
        yield _model_case(
            f"tiny:model.safetensors {vname}",
            {"model/config.json": Link(str(tiny / "config.json")), "model/model.safetensors": spec},
            f"model.safetensors: {vname}",
        )
    config_files: list[tuple[str, FileSpec]] = [
        ("fifo", Fifo()),
        ("dev-zero", Link("/dev/zero")),
        ("directory", Dir()),
        ("sparse-40mb", Sparse(40 << 20)),
        ("deep", "[" * DEEP + "]" * DEEP),
        ("deep-object", '{"a":' * 5000 + "1" + "}" * 5000),
        ("nan-literal", '{"num_hidden_layers": NaN, "hidden_size": Infinity}'),
        ("big-int-literal", '{"num_hidden_layers": ' + "9" * 5000 + "}"),
        ("not-utf8", b'{"model_type": "\xff"}'),
        ("empty", b""),
        ("secret", json.dumps({"model_type": "llama", "_name_or_path": SECRET_URL_PASSWORD})),
    ]
    for vname, spec in config_files:
        yield _model_case(
            f"config.json {vname}", {"model/config.json": spec}, f"config.json: {vname}"
        )
    # The Hugging Face cache: refs and snapshot folders of every kind.
    repo_dir = "hub/models--org--m"
    hub_variants: list[tuple[str, dict[str, FileSpec]]] = [
        (
            "refs-main-fifo",
            {f"{repo_dir}/refs/main": Fifo(), f"{repo_dir}/snapshots/x/config.json": "{}"},
        ),
        (
            "refs-main-dev-zero",
            {
                f"{repo_dir}/refs/main": Link("/dev/zero"),
                f"{repo_dir}/snapshots/x/config.json": "{}",
            },
        ),
        (
            "refs-main-huge",
            {f"{repo_dir}/refs/main": "a" * 100_000, f"{repo_dir}/snapshots/x/config.json": "{}"},
        ),
        ("snapshots-file", {f"{repo_dir}/snapshots": b"x"}),
        ("snapshot-link-loop", {f"{repo_dir}/snapshots/x": Link(f"{WD}/{repo_dir}/snapshots/x")}),
        (
            "config-fifo",
            {
                f"{repo_dir}/snapshots/{SNAPSHOT_ID}/config.json": Fifo(),
                f"{repo_dir}/refs/main": SNAPSHOT_ID,
            },
        ),
        ("many-snapshots", {f"{repo_dir}/snapshots/s{i}/config.json": "{}" for i in range(2000)}),
    ]
    for vname, files in hub_variants:
        yield _model_case(
            f"hub {vname}", files, f"HF cache: {vname}", model="org/m", HF_HUB_CACHE=f"{WD}/hub"
        )


# --------------------------------------------------------------------------------------------
# Commands that only the CLI can show (output, exec, argv)
# --------------------------------------------------------------------------------------------


def cli_cases(rng: random.Random) -> Iterator[Case]:
    good = str(ASSETS / "freeze" / "sglang-0.4.6-good.txt")
    snap = str(ASSETS / "envs" / "h100-torch2.11-cu130.json")
    plain: list[tuple[str, tuple[str, ...], Optional[str], dict[str, Optional[str]]]] = [
        ("env > /dev/full", ("env", "--no-host"), "/dev/full", {}),
        ("env --json > /dev/full", ("env", "--json", "--no-host"), "/dev/full", {}),
        ("check > /dev/full", ("check", "--from", snap), "/dev/full", {}),
        (
            "lint > /dev/full",
            ("lint", str(ASSETS / "lint" / "requirements-torch-triton.txt")),
            "/dev/full",
            {},
        ),
        ("explain > /dev/full", ("explain", "framework-pin"), "/dev/full", {}),
        ("check -o /dev/full", ("check", "--from", snap, "-o", "/dev/full"), None, {}),
        ("check -o directory", ("check", "--from", snap, "-o", "/tmp"), None, {}),
        ("check -o /proc/version", ("check", "--from", snap, "-o", "/proc/version"), None, {}),
        ("run -- ''", ("run", "--from", good, "--", ""), None, {}),
        ("run -- ' '", ("run", "--from", good, "--", " "), None, {}),
        ("run -- /nonexistent", ("run", "--from", good, "--", "/nonexistent/cmd"), None, {}),
        ("run -- /tmp", ("run", "--from", good, "--", "/tmp"), None, {}),
        ("run -- /dev/null", ("run", "--from", good, "--", "/dev/null"), None, {}),
        ("run without command", ("run", "--from", good, "--"), None, {}),
        ("explain 5000 chars", ("explain", "x" * 5000), None, {}),
        ("explain unicode", ("explain", "\u00e9\u4e2d"), None, {}),
        ("explain COMPAT-99999999", ("explain", "COMPAT-" + "9" * 5000), None, {}),
        ("lock 5000 digits", ("lock", "torch==" + HUGE_DIGITS), None, {}),
        ("lock junk", ("lock", "sglang[=="), None, {}),
        ("lock arabic", ("lock", "sglang==\u0663"), None, {}),
        ("lock --cuda junk", ("lock", "sglang", "--cuda", "12.x"), None, {}),
        ("lock --cuda huge", ("lock", "sglang", "--cuda", HUGE_DIGITS), None, {}),
        ("lock --driver junk", ("lock", "sglang", "--driver", "\u00b2"), None, {}),
        ("lock --gpu junk", ("lock", "sglang", "--gpu", "sm_" + HUGE_DIGITS), None, {}),
        ("lock --python arabic", ("lock", "sglang", "--python", "\u0663.\u0661\u0661"), None, {}),
        ("dockerfile junk", ("dockerfile", "vllm==" + HUGE_DIGITS), None, {}),
        ("matrix show junk", ("matrix", "show", "torch==" + HUGE_DIGITS), None, {}),
        ("matrix show unicode", ("matrix", "show", "\u0663"), None, {}),
        ("matrix validate --path /proc", ("matrix", "validate", "--path", "/proc/self"), None, {}),
        ("matrix validate --path file", ("matrix", "validate", "--path", good), None, {}),
        ("check --ignore 5000", ("check", "--from", snap, "--ignore", "x" * 5000), None, {}),
        (
            "check --from /proc/self/environ",
            ("check", "--from", "/proc/self/environ"),
            None,
            {"HF_TOKEN": HF, "COMPAT_FUZZ_SECRET": SECRET_URL_PASSWORD},
        ),
        (
            "check --launch-file /proc/self/environ",
            ("check", "--from", good, "--launch-file", "/proc/self/environ"),
            None,
            {"HF_TOKEN": HF, "COMPAT_FUZZ_SECRET": SECRET_URL_PASSWORD},
        ),
        (
            "lint -r /proc/self/environ",
            ("lint", f"{WD}/requirements.txt"),
            None,
            {"HF_TOKEN": HF, "COMPAT_FUZZ_SECRET": SECRET_URL_PASSWORD},
        ),
        (
            "check --runtime-env deep",
            ("check", "--ray", "--runtime-env", '{"a":' * 20_000 + "1" + "}" * 20_000),
            None,
            {},
        ),
        (
            "check -- api key",
            (
                "check",
                "--from",
                good,
                "--",
                "python",
                "-m",
                "sglang.launch_server",
                "--model-path",
                "m",
                "--api-key",
                API_KEY,
                "--tp",
                "x",
            ),
            None,
            {},
        ),
        (
            "run secret argv",
            (
                "run",
                "--from",
                good,
                "--",
                "python",
                "-m",
                "sglang.launch_server",
                "--api-key",
                API_KEY,
                "--tp",
                "x",
            ),
            None,
            {},
        ),
        (
            "check --env secret",
            (
                "check",
                "--from",
                good,
                "--env",
                f"VLLM_RPC_BASE_URL={SECRET_URL_PASSWORD}",
                "--env",
                f"SGLANG_REPO_URL={SECRET_URL_TOKEN}",
            ),
            None,
            {},
        ),
        (
            "check --interpreter secret path",
            ("check", "--interpreter", f"/nonexistent/{HF}/python"),
            None,
            {},
        ),
        ("unknown option 5000", ("check", "--" + "x" * 5000), None, {}),
        ("version", ("--version",), None, {}),
        ("help", ("--help",), None, {}),
        ("no command", (), None, {}),
        (
            "bad HOME",
            ("check", "--from", snap),
            None,
            {"HOME": "/nonexistent", "XDG_CACHE_HOME": "/proc/self"},
        ),
        ("cache dir is a file", ("check", "--from", snap), None, {"COMPAT_CACHE_DIR": good}),
        (
            "cache dir in /proc",
            ("check", "--from", snap),
            None,
            {"COMPAT_CACHE_DIR": "/proc/self/fuzz"},
        ),
        (
            "COMPAT_MATRICES missing",
            ("check", "--from", snap),
            None,
            {"COMPAT_MATRICES": "/nonexistent"},
        ),
        ("COMPAT_MATRICES file", ("check", "--from", snap), None, {"COMPAT_MATRICES": good}),
        ("COMPAT_MATRICES /dev/zero", ("check", "--from", snap), None, {"COMPAT_MATRICES": "/dev"}),
        ("COMPAT_NVML_LIB junk", ("env",), None, {"COMPAT_NVML_LIB": "/dev/zero"}),
        ("TRITON_CACHE_DIR /proc", ("env", "--no-host"), None, {"TRITON_CACHE_DIR": "/proc"}),
        ("TRITON_CACHE_DIR fifo", ("env", "--no-host"), None, {"TRITON_CACHE_DIR": f"{WD}/fifo"}),
        (
            "LANG=C",
            ("check", "--from", snap),
            None,
            {"LANG": "C", "LC_ALL": "C", "PYTHONIOENCODING": None},
        ),
        (
            "PYTHONIOENCODING ascii",
            ("check", "--from", f"{WD}/unicode.json"),
            None,
            {"PYTHONIOENCODING": "ascii"},
        ),
    ]
    unicode_snap = full_snapshot()
    unicode_snap["gpus"][0]["name"] = "NVIDIA H100 \u4e2d\u6587 \U0001f600"
    for name, args, stdout_path, env in plain:
        files: dict[str, FileSpec] = {
            "requirements.txt": "torch==2.7.1\n-r /proc/self/environ\n",
            "fifo": Fifo(),
            "unicode.json": json.dumps(unicode_snap),
        }
        yield Case(
            "cli",
            name,
            files=files,
            cli=args,
            env=dict(env),
            stdout_path=stdout_path,
            secrets=NEEDLES,
            allow_exit=(0,) if args[:1] == ("run",) else (),
            example=" ".join(a[:40] for a in args)[:300],
        )
    # `compat diff` with a planted secret on one side (it must redact on its own).
    secret_snap = full_snapshot()
    secret_snap["env"].update(SECRET_ENV)
    secret_snap["launch"] = ["vllm", "serve", "m", "--api-key", API_KEY]
    yield Case(
        "cli",
        "diff with secrets",
        files={"a.json": json.dumps(full_snapshot()), "b.json": json.dumps(secret_snap)},
        target="diff_files",
        args=(f"{WD}/a.json", f"{WD}/b.json"),
        cli=("diff", f"{WD}/a.json", f"{WD}/b.json"),
        secrets=NEEDLES,
        example="snapshot B's env holds " + ", ".join(SECRET_ENV),
    )
    # Non-UTF-8 bytes in argv (a shell hands compat whatever the file name is).
    for name, args in [
        ("argv not utf8 --from", ("check", "--from", os.fsdecode(b"/tmp/\xff\xfe.txt"))),
        ("argv not utf8 explain", ("explain", os.fsdecode(b"\xff"))),
        ("argv not utf8 lint", ("lint", os.fsdecode(b"requirements-\xff.txt"))),
        (
            "argv not utf8 launch",
            (
                "check",
                "--from",
                good,
                "--",
                "python",
                "-m",
                "sglang.launch_server",
                "--tp",
                os.fsdecode(b"\xff"),
            ),
        ),
    ]:
        yield Case("cli", name, cli=args, example=repr(args)[:300])


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

GeneratorFn = Callable[[random.Random], Iterator[Case]]


def surfaces(
    elf_seed: Optional[bytes], nvml_lib: Optional[str], expected_cache: str
) -> dict[str, GeneratorFn]:
    return {
        "snapshot": snapshot_cases,
        "freeze": freeze_cases,
        "lint": lint_cases,
        "launch-argv": launch_argv_cases,
        "launch-file": launch_file_cases,
        "overrides": override_cases,
        "advisory": advisory_cases,
        "data": data_cases,
        "cache": lambda rng: cache_cases(rng, expected_cache),
        "elf": lambda rng: elf_cases(rng, elf_seed),
        "dist-info": distinfo_cases,
        "model": model_cases,
        "probe": lambda rng: probe_cases(rng, nvml_lib),
        "cli": cli_cases,
    }
