"""Secrets never leave compat: one function scrubs every text it writes (reports, snapshots,
diffs, SARIF, cluster reports, error messages, crash reports), and env values are scrubbed when
they are recorded.

What counts as a secret: credentials in URLs (whatever characters the password holds, a token
used as the user), values of options and variables named like secrets (`--api-key`, `HF_TOKEN=`,
`Authorization:`), bearer/basic credentials, and token shapes that are secrets wherever they
appear (Hugging Face, OpenAI-style, GitHub, Slack, AWS access keys, JWTs).

Text that leaves is also printable: control characters and lone surrogates are escaped.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, Callable, TypeVar, cast

F = TypeVar("F", bound=Callable[..., str])

REDACTED = "<redacted>"

# Words that make a name a secret's name, as whole parts of it (HF_TOKEN, api-key, DB_PASSWORD,
# AWS_SECRET_ACCESS_KEY, auth_token), so `--tokenizer-mode` or `max_num_batched_tokens` are not.
_SECRET_PARTS = frozenset(
    {
        "token",
        "secret",
        "password",
        "passwd",
        "passphrase",
        "apikey",
        "auth",
        "credential",
        "credentials",
        "pat",
    }
)
_KEY_QUALIFIERS = frozenset({"api", "access", "private", "secret", "signing", "encryption"})


def is_secret_name(name: str) -> bool:
    """Whether a variable, option or key name says its value is a secret."""
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", name.lower()) if p]
    if any(p in _SECRET_PARTS for p in parts):
        return True
    return any(p == "key" and i and parts[i - 1] in _KEY_QUALIFIERS for i, p in enumerate(parts))


# Characters a value runs over: up to whitespace, quotes, or JSON/shell punctuation.
_V = r"[^\s\"'`,;\\]+"

_TOKEN_SHAPES = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"hf_[A-Za-z0-9]{20,}"
    r"|sk-[A-Za-z0-9_-]{16,}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"
    r"|AKIA[0-9A-Z]{16}"
    r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*"
    r")"
)
# `--api-key X`, `--api-key=X`, `--hf-token X`: a flag and its value (kept when not a secret).
_FLAG = re.compile(r"(?<![A-Za-z0-9_-])(--?[A-Za-z][A-Za-z0-9_-]*)(\s*=\s*|\s+)(?!-)(" + _V + ")")
# `HF_TOKEN=value`, `"api_key": "value"`, `password: value`.
# The name starts where a word does and is bounded: otherwise a 200 kB run of letters is tried
# from each of its characters (quadratic).
_ASSIGN = re.compile(
    r"(?<![A-Za-z0-9_.-])([A-Za-z_][A-Za-z0-9_.-]{0,127})(\"?\s*[:=]\s*\"?)(" + _V + ")"
)
_AUTH_SCHEMES = frozenset({"bearer", "basic", "token", "digest", REDACTED.lower()})
_SCHEME_AUTH = re.compile(r"\b(Bearer|Basic|Token)\s+(" + _V + ")", re.I)
# A credential after a scheme word, not prose ("token table", "Bearer tokens"): at least 8
# characters with a digit or a character words do not hold, or 20 of any; for Basic, base64 of
# `user:password`.
_CREDENTIAL = re.compile(r"(?=.{8,})(?=.*[0-9+/=._~-])|(?=.{20,})")


def _credential(scheme: str, value: str) -> bool:
    if scheme.lower() == "basic":
        import base64
        import binascii

        try:
            decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
        except (binascii.Error, ValueError):
            return False
        return b":" in decoded
    return _CREDENTIAL.match(value) is not None


_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)(" + _V + ")")
_HOST = re.compile(r"[A-Za-z0-9.-]+(?::[0-9]+)?(?:[/?#]|$)")


def _url(m: re.Match[str]) -> str:
    """`scheme://user:pa/ss@word@host/path` -> `scheme://<redacted>@host/path`: the userinfo ends
    at the last `@` that is followed by a host name, so `/` and `@` in a password do not stop it."""
    scheme, rest = m.group(1), m.group(2)
    naive = rest.split("/", 1)[0]
    if "@" not in naive and not re.search(r":[^0-9]", naive):
        return m.group(0)  # a plain host[:port]: a later `@` is a VCS revision (repo.git@v1.2)
    cut = -1
    for i, ch in enumerate(rest):
        if ch == "@" and _HOST.match(rest, i + 1):
            cut = i
    if cut < 0:
        return m.group(0)
    return f"{scheme}{REDACTED}{rest[cut:]}"


def redact_text(text: str) -> str:
    """`text` with every secret this module knows replaced by <redacted>."""
    if not text:
        return text
    text = _URL.sub(_url, text)
    text = _SCHEME_AUTH.sub(
        lambda m: f"{m.group(1)} {REDACTED}" if _credential(m.group(1), m.group(2)) else m.group(0),
        text,
    )
    text = _FLAG.sub(_named, text)
    text = _ASSIGN.sub(_named, text)
    return _TOKEN_SHAPES.sub(REDACTED, text)


def _named(m: re.Match[str]) -> str:
    name, sep, value = m.group(1), m.group(2), m.group(3)
    if not is_secret_name(name) or value.lower() in _AUTH_SCHEMES or value.startswith(REDACTED):
        return m.group(0)
    return f"{name}{sep}{REDACTED}"


def redact_value(name: str, value: str) -> str:
    """An environment variable's value as compat records it: all of it when the name says it is
    a secret, else with the secrets inside it scrubbed."""
    if is_secret_name(name):
        return REDACTED
    return redact_text(value)


def redacted(render: F) -> F:
    """A formatter whose text is scrubbed before it is returned: every report compat renders
    (check, lint, diff) goes through one, whatever its findings quote. A lone surrogate (a
    non-UTF-8 byte of a command line) is written as its escape, so the report can be written."""

    @functools.wraps(render)
    def wrapper(*args: Any, **kwargs: Any) -> str:
        text = redact_text(render(*args, **kwargs))
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        return text

    return cast(F, wrapper)


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """Environment variables as compat keeps them, from wherever they were read (the process, a
    snapshot, `--env`, a launch file's exports): each value through `redact_value`, so no later
    split of a value (PATH-like lists, diffs) can cut a secret out of its context."""
    return {k: redact_value(k, v) for k, v in env.items()}


def printable(text: str) -> str:
    """Text for a message: control characters (terminal escapes) and lone surrogates shown
    escaped, so echoing a bad value cannot drive the terminal or fail the output."""
    out = []
    for ch in text:
        if (ch.isprintable() or ch in "\n\t") and not 0xD800 <= ord(ch) <= 0xDFFF:
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape", "backslashreplace").decode("ascii"))
    return "".join(out)


def quote_line(line: str, limit: int = 120) -> str:
    """A line of an input file for a message: secrets scrubbed, control characters escaped,
    cut to `limit` characters."""
    shown = printable(redact_text(line))
    if len(shown) > limit:
        shown = shown[: limit - 3] + "..."
    return f"'{shown}'" if "'" not in shown else f'"{shown}"'
