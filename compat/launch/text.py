"""Launch commands and launch files: entry points, wrappers (env, ray job submit, uv run), shell text."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Callable, Optional

from packaging.version import Version

from compat.errors import InputError
from compat.launch.model import RAY_MARKERS, Framework, LaunchConfig

ParseFn = Callable[..., LaunchConfig]


def detect_entrypoint(argv: Sequence[str]) -> tuple[Framework, int]:
    """Which framework `argv` launches and where its own arguments start."""
    toks = list(argv)
    for i, tok in enumerate(toks):
        base = tok.rsplit("/", 1)[-1]
        nxt = toks[i + 1] if i + 1 < len(toks) else ""
        if tok == "-m" and nxt in ("sglang.launch_server", "sglang.srt.server"):
            return "sglang", i + 2
        if tok == "-m" and nxt in (
            "vllm.entrypoints.openai.api_server",
            "vllm.entrypoints.api_server",
        ):
            return "vllm", i + 2
        if (
            tok == "-m"
            and nxt == "vllm.entrypoints.cli.main"
            and i + 2 < len(toks)
            and toks[i + 2] == "serve"
        ):
            return "vllm", i + 3
        if base == "sglang" and nxt == "serve":
            return "sglang", i + 2
        if base == "vllm" and nxt == "serve":
            return "vllm", i + 2
        if base.endswith("launch_server.py") and "sglang" in tok:
            return "sglang", i + 1
        if base == "api_server.py" and "vllm" in tok:
            return "vllm", i + 1
    return "unknown", len(toks)


def env_says_ray(env: Mapping[str, str]) -> bool:
    return any(k in env for k in RAY_MARKERS)


_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def strip_wrappers(args: list[str]) -> tuple[list[str], bool, dict[str, str]]:
    """Drop `VAR=1`, `env`, `exec`, `nohup`, `time`, `uv run`, `ray job submit ... --` in front."""
    env: dict[str, str] = {}
    under_ray = False
    changed = True
    while args and changed:
        changed = False
        head = args[0]
        if _ASSIGN.match(head):
            k, _, v = head.partition("=")
            env[k] = v
            args = args[1:]
            changed = True
        elif head in ("env", "exec", "nohup", "time", "command"):
            args = args[1:]
            changed = True
        elif head == "uv" and len(args) > 1 and args[1] == "run":
            args = args[2:]
            while args and args[0].startswith("-"):
                args = args[1:]
            changed = True
        elif head == "ray" and len(args) > 2 and args[1] == "job" and args[2] == "submit":
            under_ray = True
            if "--" in args:
                args = args[args.index("--") + 1 :]
                changed = True
            else:
                args = []
    return args, under_ray, env


# --------------------------------------------------------------------------------------------
# Defaults


# --------------------------------------------------------------------------------------------
# Launch files
# --------------------------------------------------------------------------------------------

_SEPARATORS = frozenset({";", "&&", "||", "|", "&", ";;"})
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _expand(token: str, env: Mapping[str, str]) -> str:
    """`$X` and `${X}` replaced by known values; a token that would grow past a logical line's
    bound (`X=$X$X` repeated doubles it each line) is left as written, its variables unknown."""
    parts: list[str] = []
    size = 0
    last = 0
    for m in _VAR.finditer(token):
        value = env.get(m.group(1) or m.group(2), m.group(0))
        size += m.start() - last + len(value)
        if size > MAX_LOGICAL_LINE:
            return token
        parts += (token[last : m.start()], value)
        last = m.end()
    parts.append(token[last:])
    return "".join(parts)


# A launch file is a few dozen lines; shlex is quadratic in a token's length, so a logical
# line (continuations joined) longer than this is refused rather than lexed for minutes.
MAX_LAUNCH_TEXT = 1024 * 1024
MAX_LOGICAL_LINE = 64 * 1024


def _quote_state(line: str, state: str) -> str:
    """The quote open at the end of `line` given the one open at its start ("", "'" or '"'),
    as sh reads it: backslash escapes outside single quotes, `#` starts a comment outside
    quotes. Linear, so an unbalanced quote costs one pass, not a re-lex per following line."""
    i = 0
    n = len(line)
    while i < n:
        ch = line[i]
        if state == "'":
            if ch == "'":
                state = ""
        elif state == '"':
            if ch == "\\":
                i += 1
            elif ch == '"':
                state = ""
        elif ch == "\\":
            i += 1
        elif ch in "'\"":
            state = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t;&|"):
            break
        i += 1
    return state


def _logical_lines(text: str) -> list[tuple[int, list[str]]]:
    """Shell-ish lines: backslash continuations joined, comments dropped, tokens via shlex."""
    if len(text) > MAX_LAUNCH_TEXT:
        raise InputError(
            f"launch text of {len(text)} characters: more than a launch file holds",
            hint="pass the file that starts the server",
        )
    raw_lines = text.replace("\r\n", "\n").split("\n")
    out: list[tuple[int, list[str]]] = []
    buf: list[str] = []
    size = 0
    start = 0
    state = ""
    for no, line in enumerate(raw_lines, 1):
        if not buf:
            start = no
        stripped = line.rstrip()
        continued = not state and stripped.endswith("\\") and not stripped.endswith("\\\\")
        piece = stripped[:-1] + " " if continued else line
        state = _quote_state(piece, state)
        buf.append(piece)
        size += len(piece) + 1
        if size > MAX_LOGICAL_LINE:
            why = " (a quote opened there is never closed?)" if state else ""
            raise InputError(
                f"launch text, line {start}: a command of more than {MAX_LOGICAL_LINE} "
                f"characters{why}",
                hint="check the quoting of that command",
            )
        if continued or state:
            if state and no < len(raw_lines):
                buf.append("\n")
            continue
        joined = "".join(buf)
        buf, size = [], 0
        try:
            lex = shlex.shlex(joined, posix=True, punctuation_chars=";&|")
            lex.whitespace_split = True
            lex.commenters = "#"
            tokens = list(lex)
        except ValueError as exc:
            raise InputError(
                f"launch text, line {start}: {exc}", hint="check the quoting of that command"
            ) from None
        out.append((start, tokens))
    if buf:
        raise InputError(
            f"launch text, line {start}: No closing quotation",
            hint="check the quoting of that command",
        )
    return out


def _commands(tokens: list[str]) -> list[list[str]]:
    cmds: list[list[str]] = [[]]
    for tok in tokens:
        if tok in _SEPARATORS or (tok and set(tok) <= set(";&|")):
            cmds.append([])
        else:
            cmds[-1].append(tok)
    return [c for c in cmds if c]


def parse_launch_text_with(
    parse: ParseFn,
    text: str,
    framework_version: Optional[Version] = None,
    *,
    config_dir: Optional[Path] = None,
) -> LaunchConfig:
    """Parse a launch file: shell-ish text with `export X=1`, `X=1 cmd`, continuations.

    The first sglang/vLLM server command found is parsed; exported variables before it and
    assignments in front of it become the launch env. Text with no server command gives a
    LaunchConfig with framework "unknown" (its env and Ray wrapper are still recorded).
    """
    env: dict[str, str] = {}  # exported: reaches the server process
    shell: dict[str, str] = {}  # plain assignments: only expanded in later lines
    fallback: Optional[tuple[list[str], dict[str, str], bool]] = None
    for _lineno, tokens in _logical_lines(text):
        for cmd in _commands(tokens):
            cmd = [_expand(t, {**shell, **env}) for t in cmd]
            head = cmd[0]
            if head in ("export", "declare"):
                for item in cmd[1:]:
                    if item.startswith("-"):
                        continue
                    k, eq, v = item.partition("=")
                    if eq and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
                        env[k] = v
                    elif not eq and item in shell:
                        env[item] = shell[item]
                continue
            if head == "unset":
                for item in cmd[1:]:
                    env.pop(item, None)
                    shell.pop(item, None)
                continue
            if all(_ASSIGN.match(t) for t in cmd):
                for item in cmd:
                    k, _, v = item.partition("=")
                    if k in env:
                        env[k] = v
                    else:
                        shell[k] = v
                continue
            stripped, wrapped_ray, local_env = strip_wrappers(list(cmd))
            framework, _ = detect_entrypoint(stripped)
            cmd_env = dict(env)
            cmd_env.update(local_env)
            if framework != "unknown":
                return parse(
                    stripped,
                    framework_version,
                    env=cmd_env,
                    config_dir=config_dir,
                    under_ray=wrapped_ray,
                )
            if stripped and head not in ("cd", "set", "source", ".", "echo", "mkdir", "rm", "ray"):
                fallback = (stripped, cmd_env, wrapped_ray)
            elif wrapped_ray:
                fallback = (stripped, cmd_env, True)
    if fallback is None:
        raise InputError(
            "no command found in the launch text",
            hint="the file should hold the server command, e.g. "
            "`python -m sglang.launch_server --model-path M`",
        )
    argv, cmd_env, ray = fallback
    if not argv:
        argv = ["ray", "job", "submit"]
    return parse(argv, framework_version, env=cmd_env, config_dir=config_dir, under_ray=ray)
