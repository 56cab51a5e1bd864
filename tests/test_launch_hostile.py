"""Launch text and config files from outside: bounded in time and memory, never a traceback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from packaging.version import Version

from compat.errors import InputError
from compat.launch import parse_launch, parse_launch_text

BOMB = "\n".join(
    [
        f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9) + "]"
        for i in range(1, 9)
    ]
)
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + BOMB.split("\n", 1)[1]


def test_unbalanced_quote_in_a_long_file_is_refused_fast() -> None:
    text = "echo 'unbalanced\n" + "vllm serve m --tensor-parallel-size 2\n" * 4000
    started = time.monotonic()
    with pytest.raises(InputError, match="line 1"):
        parse_launch_text(text)
    assert time.monotonic() - started < 1.0


def test_a_huge_token_is_refused_fast() -> None:
    started = time.monotonic()
    with pytest.raises(InputError):
        parse_launch_text("vllm serve " + "x" * 2_000_000)
    with pytest.raises(InputError):
        parse_launch_text("vllm serve m \\\n" + "--x y \\\n" * 20_000)
    assert time.monotonic() - started < 1.0


def test_a_yaml_alias_bomb_is_not_expanded(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    started = time.monotonic()
    launch = parse_launch(["vllm", "serve", "m", "--config", str(bomb)], Version("0.10.1.1"))
    assert time.monotonic() - started < 2.0
    assert any("YAML aliases" in n for n in launch.notes), launch.notes


def test_config_that_is_a_fifo_or_missing_is_a_note(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    import os

    fifo = tmp_path / "cfg.yaml"
    os.mkfifo(fifo)
    launch = parse_launch(["vllm", "serve", "m", "--config", str(fifo)], Version("0.10.1.1"))
    assert any("not a config file" in n for n in launch.notes), launch.notes
    gone = parse_launch(
        ["vllm", "serve", "m", "--config", "/nonexistent.yaml"], Version("0.10.1.1")
    )
    assert any("cannot read" in n for n in gone.notes), gone.notes
