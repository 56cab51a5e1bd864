"""compat.probe.model: finding the model's files (local folder, HF cache) and reading them, bounded."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import msgspec.structs
import pytest

from compat.launch import parse_launch
from compat.model import ModelFacts
from compat.models import Unknown
from compat.probe import model as probe
from compat.probe.model import (
    find_model_dir,
    hub_cache,
    model_of_launch,
    read_model,
    safetensors_bytes,
)

ASSETS = Path(__file__).parents[1] / "assets" / "models"
HUB = ASSETS / "hub"
REV = "0123456789abcdef0123456789abcdef01234567"


def env(**kv: str) -> dict[str, str]:
    return {"HOME": "/nonexistent-home", **kv}


def test_hub_cache_precedence() -> None:
    assert hub_cache(env()) == (Path("/nonexistent-home/.cache/huggingface/hub"), "default")
    assert hub_cache(env(XDG_CACHE_HOME="/x")) == (Path("/x/huggingface/hub"), "XDG_CACHE_HOME")
    assert hub_cache(env(XDG_CACHE_HOME="/x", HF_HOME="/h")) == (Path("/h/hub"), "HF_HOME")
    assert hub_cache(env(HF_HOME="/h", HUGGINGFACE_HUB_CACHE="/old")) == (
        Path("/old"),
        "HUGGINGFACE_HUB_CACHE",
    )
    assert hub_cache(env(HUGGINGFACE_HUB_CACHE="/old", HF_HUB_CACHE="/new")) == (
        Path("/new"),
        "HF_HUB_CACHE",
    )


def test_snapshot_from_refs_main() -> None:
    d = find_model_dir("Qwen/Qwen3-30B-A3B", env(HF_HUB_CACHE=str(HUB)))
    assert d == HUB / "models--Qwen--Qwen3-30B-A3B" / "snapshots" / REV


def test_hf_home_layout(tmp_path: Path) -> None:
    shutil.copytree(HUB / "models--Qwen--Qwen3-8B", tmp_path / "hub" / "models--Qwen--Qwen3-8B")
    f = read_model("Qwen/Qwen3-8B", env(HF_HOME=str(tmp_path)))
    assert isinstance(f, ModelFacts) and f.model_type == "qwen3"
    assert f.weight_source == "model.safetensors.index.json total_size"


def test_revision_and_snapshot_choice(tmp_path: Path) -> None:
    repo = tmp_path / "models--o--m"
    old, new = "a" * 40, "b" * 40
    for rev in (old, new):
        (repo / "snapshots" / rev).mkdir(parents=True)
        (repo / "snapshots" / rev / "config.json").write_text("{}")
    os.utime(repo / "snapshots" / old, (1, 1))
    e = env(HF_HUB_CACHE=str(tmp_path))
    # No refs/main: the newest snapshot.
    assert find_model_dir("o/m", e) == repo / "snapshots" / new
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(old + "\n")
    assert find_model_dir("o/m", e) == repo / "snapshots" / old
    assert find_model_dir("o/m", e, revision=new) == repo / "snapshots" / new
    missing = find_model_dir("o/m", e, revision="v2")
    assert isinstance(missing, Unknown) and "revision 'v2'" in missing.reason


def test_local_folder_and_missing_paths(tmp_path: Path) -> None:
    f = read_model(str(ASSETS / "tiny-local"), env())
    assert isinstance(f, ModelFacts) and f.weight_bytes == 40
    assert f.weight_source == "safetensors headers (1 file)"
    gone = read_model("/models/Qwen2-1.5B-Instruct", env())  # a size in the name: a labelled guess
    assert isinstance(gone, ModelFacts) and gone.guess and gone.weight_bytes == int(1.5e9 * 2)
    assert "does not exist on this machine" in gone.notes[0]
    nothing = read_model("/models/my-finetune", env())
    assert isinstance(nothing, Unknown) and "does not exist" in nothing.reason
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert "is a file" in str(read_model(str(gguf), env()))
    not_cached = read_model("org/unknown-model", env(HF_HUB_CACHE=str(tmp_path)))
    assert isinstance(not_cached, Unknown) and "would download it" in not_cached.reason


def test_config_only_gives_a_shape_estimate() -> None:
    f = read_model("deepseek-ai/DeepSeek-V3", env(HF_HUB_CACHE=str(HUB)))
    assert isinstance(f, ModelFacts) and f.weight_bytes is None
    assert any("estimated from the config's shapes" in n for n in f.notes)


def test_index_metadata_after_a_long_weight_map(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    weight_map = {f"model.layers.{i}.w": "a.safetensors" for i in range(5000)}
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": weight_map, "metadata": {"total_size": 123456789}})
    )
    f = read_model(str(tmp_path), env())
    assert isinstance(f, ModelFacts) and f.weight_bytes == 123456789


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ("[" * 100 + "]" * 100, "nests deeper than 64"),
    ],
)
def test_bad_configs_are_unknown(tmp_path: Path, text: str, expect: str) -> None:
    (tmp_path / "config.json").write_text(text)
    got = read_model(str(tmp_path), env())
    assert isinstance(got, Unknown) and expect in got.reason


def test_config_over_the_size_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe, "CONFIG_MAX_BYTES", 64)
    (tmp_path / "config.json").write_text(json.dumps({"pad": "x" * 100}))
    got = read_model(str(tmp_path), env())
    assert isinstance(got, Unknown) and "over compat's limit" in got.reason


def _safetensors(path: Path, header: object, length: int = -1) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length < 0 else length) + raw)


def test_safetensors_headers(tmp_path: Path) -> None:
    p = tmp_path / "a.safetensors"
    _safetensors(p, {"x": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]}})
    assert safetensors_bytes(p) == 12
    _safetensors(p, {"x": {"dtype": "BF16", "shape": [2], "data_offsets": [8, 4]}})
    assert "no valid data_offsets" in str(safetensors_bytes(p))
    _safetensors(p, {}, length=1 << 40)
    assert "over compat's limit" in str(safetensors_bytes(p))
    p.write_bytes(b"\x01")
    assert "shorter than" in str(safetensors_bytes(p))


def test_model_of_launch_uses_the_launch_env_revision_and_download_dir(tmp_path: Path) -> None:
    launch = parse_launch(["vllm", "serve", "Qwen/Qwen3-8B"])
    launch = msgspec.structs.replace(launch, env={"HF_HUB_CACHE": str(HUB)})
    f = model_of_launch(launch, {})
    assert isinstance(f, ModelFacts) and f.model_type == "qwen3"
    d = parse_launch(
        [
            "python",
            "-m",
            "sglang.launch_server",
            "--model-path",
            "Qwen/Qwen3-8B",
            "--download-dir",
            str(HUB),
            "--revision",
            "c" * 40,
        ]
    )
    got = model_of_launch(d, {"HF_HUB_CACHE": str(tmp_path)})
    # --download-dir wins over the variable; that commit is not there: a labelled guess remains.
    assert isinstance(got, ModelFacts) and got.guess and "revision 'cccc" in got.notes[0]
    assert model_of_launch(parse_launch(["python", "train.py"]), {}) is None
    assert model_of_launch(None, {}) is None
