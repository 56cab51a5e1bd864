"""Secrets never leave compat: a corpus of secret shapes through the one redaction function,
and through the commands that write what compat recorded (env, check, diff, lint, errors)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compat.redact import REDACTED, is_secret_name, quote_line, redact_text, redact_value

# (text, the secret that must not come back, what must stay)
CORPUS = [
    ("https://user:p@ss/w@rd@host.example.com/simple", "p@ss/w@rd", "host.example.com/simple"),
    ("https://user:pa55word@example.org/x", "pa55word", "example.org/x"),
    (
        "git+https://ghp_abcdefghijklmnopqrstuvwxyz0123@github.com/o/r",
        "ghp_abcdefghijklmnop",
        "github.com/o/r",
    ),
    (
        "https://oauth2:glpat-AbCdEf123456@gitlab.example.com/g/p.git",
        "glpat-AbCdEf123456",
        "gitlab.example.com",
    ),
    (
        "vllm serve m --api-key sk-abcdefghijklmnop1234 --port 8000",
        "sk-abcdefghijklmnop1234",
        "--port 8000",
    ),
    ("vllm serve m --api-key=mysecretvalue", "mysecretvalue", "vllm serve m"),
    ("python -m sglang.launch_server --api-key abc123def", "abc123def", "sglang.launch_server"),
    ("curl -H 'Authorization: Bearer eyJabc.def.ghi' http://x", "eyJabc.def.ghi", "http://x"),
    ("X=Bearer:tok and Bearer tok3nvalue here", "tok3nvalue", "here"),
    (
        "HF_TOKEN=hf_abcdefghijklmnopqrstuv vllm serve m",
        "hf_abcdefghijklmnopqrstuv",
        "vllm serve m",
    ),
    ('{"api_key": "secret123", "model": "x"}', "secret123", '"model": "x"'),
    (
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI",
        "",
    ),
    (
        "token in the middle hf_ZZZZZZZZZZZZZZZZZZZZZZZZ of a value",
        "hf_ZZZZZZZZZZZZZZZZZZZZZZZZ",
        "of a value",
    ),
    (
        "--password=hunter2 --max-num-batched-tokens 8192",
        "hunter2",
        "--max-num-batched-tokens 8192",
    ),
    ("slack xoxb-1234567890-abcdefghij here", "xoxb-1234567890-abcdefghij", "here"),
]


@pytest.mark.parametrize(("text", "secret", "kept"), CORPUS)
def test_corpus(text: str, secret: str, kept: str) -> None:
    out = redact_text(text)
    assert secret not in out, out
    assert kept in out and REDACTED in out, out


def test_what_is_not_a_secret_stays() -> None:
    for text in (
        "--tokenizer-mode auto --max-num-batched-tokens 8192",
        "LD_LIBRARY_PATH=/usr/local/cuda/lib64:/opt/x",
        "torch==2.7.1+cu126 triton==3.3.1",
        "NCCL_IB_HCA=mlx5_0 NCCL_SOCKET_IFNAME=eth0",
        "https://download.pytorch.org/whl/cu126",
        "--attention-backend flashinfer --disable-custom-all-reduce",
    ):
        assert redact_text(text) == text
    assert not is_secret_name("max_num_batched_tokens") and is_secret_name("OPENAI_API_KEY")
    assert redact_value("VLLM_API_KEY", "x") == REDACTED
    assert quote_line("HF_TOKEN=hf_abcdefghijklmnopqrstuv") == "'HF_TOKEN=<redacted>'"
    assert quote_line("bad \x1b[31mline") == "'bad \\x1b[31mline'"  # no terminal escapes
    assert quote_line("x" * 500).endswith("...'") and len(quote_line("x" * 500)) == 122


SECRET_ENV = {
    "VLLM_API_KEY": "plainsecretvalue",
    "SGLANG_REMOTE_URL": "https://user:p@ss/w@rd@host.example.com/x",
    "RAY_ADDRESS": "ray://hf_QQQQQQQQQQQQQQQQQQQQQQ@10.0.0.1:10001",
}
LEAKS = ("plainsecretvalue", "p@ss/w@rd", "hf_QQQQQQQQQQQQQQQQQQQQQQ", "sk-leakleakleakleak1234")


def _run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "compat", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        cwd=cwd,
    )


def test_no_secret_comes_back_from_env_check_diff_or_lint(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    snap = tmp_path / "a.json"
    env = _run("env", "--json", "--no-host", "-o", str(snap), env=SECRET_ENV, cwd=root)
    assert env.returncode == 0, env.stderr
    outputs = [snap.read_text(), env.stdout, env.stderr]
    # A snapshot carrying a launch with an API key, as another machine might hand over.
    doc = json.loads(snap.read_text())
    doc["launch"] = ["vllm", "serve", "m", "--api-key", "sk-leakleakleakleak1234"]
    doc["env"]["VLLM_OTHER_URL"] = "https://u:p@ss/w@rd@h.example.com/"
    other = tmp_path / "b.json"
    other.write_text(json.dumps(doc))
    for args in (
        ("check", "--from", str(other)),
        ("check", "--from", str(other), "--format", "json"),
        ("check", "--from", str(other), "--format", "sarif"),
        ("diff", str(snap), str(other)),
        ("diff", str(snap), str(other), "--format", "json"),
    ):
        p = _run(*args, env={}, cwd=root)
        assert p.returncode in (0, 1), p.stderr
        outputs += [p.stdout, p.stderr]
    req = tmp_path / "requirements.txt"
    req.write_text(
        "--index-url https://u:p@ss/w@rd@pypi.example.com/simple\nnot a requirement sk-leakleakleakleak1234\n"
    )
    lint = _run("lint", str(req), env={}, cwd=root)
    outputs += [lint.stdout, lint.stderr]
    for text in outputs:
        for secret in LEAKS:
            assert secret not in text, (secret, text[:2000])


def test_prose_around_secret_words_is_kept() -> None:
    """compat's own sentences name tokens and schemes: only credentials are scrubbed."""
    for prose in (
        "the request-to-token table (needs the model's context length)",
        "Bearer tokens are sent per request",
        "Basic usage: compat check",
        "max-num-batched-tokens 8192",
    ):
        assert redact_text(prose) == prose
    assert redact_text("Authorization: Basic dXNlcjpwYXNz") == "Authorization: Basic <redacted>"
    assert redact_text("Authorization: Token 9f8e7d6c5b4a") == "Authorization: Token <redacted>"
