"""Smoke-share cases that fail on the current code, by test id, with the class each showed.

Observed by running the share (`pytest tests/fuzz/test_fuzz_smoke.py --runxfail`); each entry is
an xfail(strict=True) mark: when a fix makes the case pass, the test fails and the entry goes.
"""

from __future__ import annotations

KNOWN_SMOKE: dict[str, str] = {
    "snapshot:cpu-torch2.13-pypi-torchvision0.28:.distributions[1].needs[10]=lone-surrogate": "crash: UnicodeEncodeError in -> writing the report to stdout (UTF-8, strict)",
    "snapshot:cpu-torch2.13-pypi-torchvision0.28:.distributions[1].name=lone-surrogate": "crash: UnicodeEncodeError in -> writing the report to stdout (UTF-8, strict)",
    "snapshot:h100-torch2.11-cu130:.env.CUDA_VISIBLE_DEVICES=secret": "leak: secret printed back: URL password (part after '/' or '@'), URL password (part before '/' or '@')",
    "freeze:flashinfer-torch-mismatch:replace:dev-huge": "crash: ValueError in compat/models.py:parse_version -> site-packages/packaging/version.py:_parse_letter_version",
    "freeze:sglang-0.4.6-torch-2.7.1:replace:version-5000-digits": "crash: ValueError in compat/models.py:parse_version -> site-packages/packaging/version.py:__init__",
    "lint:constraints-cu124-cu126:insert:secret-hf": "leak: secret printed back: hf_ token",
    "lint:requirements-sglang-torch:insert:version-5000-digits": "crash: ValueError in compat/models.py:parse_version -> site-packages/packaging/version.py:__init__",
    "lint:requirements-include:insert:version-5000-digits": "crash: ValueError in compat/models.py:parse_version -> site-packages/packaging/version.py:__init__",
    "lint:requirements-sglang-torch:replace:dev-huge": "crash: ValueError in compat/models.py:parse_version -> site-packages/packaging/version.py:_parse_letter_version",
    "lint:pyproject.toml:line11:vision=deep-table": "crash: RecursionError in compat/lint.py:_toml -> tomllib/_parser.py:parse_inline_table",
    "launch-argv:sglang:--enable-memory-saver=secret": "leak: secret printed back: token as URL user",
    "overrides:--driver=digits-5000": "crash: ValueError in compat/models.py:parse_version -> site-packages/packaging/version.py:__init__",
    "elf:sec6:sh_link=2147483648": "crash: IndexError in compat/elf.py:needed",
    "elf:sec6:sh_link=4294967295": "crash: IndexError in compat/elf.py:needed",
    "dist-info:torch/version.py cuda-arabic": "crash: InvalidVersion in compat/check/cuda.py:check_minor -> site-packages/packaging/version.py:__init__",
    "probe:interpreter version=empty-object": "crash: AttributeError in compat/probe/python.py:_other_tags",
    "probe:interpreter soabi=true": "crash: AttributeError in compat/probe/python.py:_other_tags",
    "probe:nvidia-smi csv col3='-inf'": "crash: OverflowError in compat/probe/driver.py:_int",
    "probe:interpreter version=list-null": "crash: AttributeError in compat/probe/python.py:_other_tags",
    "probe:interpreter version=float-huge": "crash: AttributeError in compat/probe/python.py:_other_tags",
    "cli:diff with secrets": "leak: secret printed back: --api-key value, Bearer token, URL password (part after '/' or '@'), URL password (part before '/' or '@'), hf_ token, token as URL user",
}
