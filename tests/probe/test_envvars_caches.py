from __future__ import annotations

import os
from pathlib import Path

from compat.probe.caches import measure, probe_caches
from compat.probe.envvars import probe_env
from compat.redact import REDACTED


def test_only_variables_that_matter_with_secrets_redacted() -> None:
    env = probe_env(
        {
            "HOME": "/root",
            "NCCL_DEBUG": "INFO",
            "CUDA_VISIBLE_DEVICES": "1,2,3,4",
            "HF_TOKEN": "hf_abcdefghijklmnopqrstuvwxyz",
            "VLLM_API_KEY": "anything",
            "SGLANG_HOST_URL": "https://user:pa55word@example.org/x",
            "RAY_ADDRESS": "sk-abcdefghijklmnopqrstuvwx",
        }
    )
    assert "HOME" not in env
    assert env["NCCL_DEBUG"] == "INFO" and env["CUDA_VISIBLE_DEVICES"] == "1,2,3,4"
    assert "HF_TOKEN" not in env  # not a stack variable at all
    assert env["VLLM_API_KEY"] == REDACTED
    assert env["SGLANG_HOST_URL"] == f"https://{REDACTED}@example.org/x"
    assert env["RAY_ADDRESS"] == REDACTED


def test_cache_locations_follow_variables(tmp_path: Path) -> None:
    kinds = {
        c.kind: c
        for c in probe_caches(
            {
                "TRITON_CACHE_DIR": str(tmp_path / "t"),
                "VLLM_CACHE_ROOT": str(tmp_path / "v"),
                "HOME": str(tmp_path),
            }
        )
    }
    assert kinds["triton"].path == str(tmp_path / "t") and not kinds["triton"].exists
    assert kinds["flashinfer"].path == str(tmp_path / ".cache" / "flashinfer")


def test_measure_counts_sizes_and_versions(tmp_path: Path) -> None:
    (tmp_path / "0.2.5" / "90").mkdir(parents=True)
    (tmp_path / "0.2.5" / "90" / "op.so").write_bytes(b"x" * 100)
    (tmp_path / "abc").mkdir()
    (tmp_path / "abc" / "k.json").write_bytes(b"{}")
    os.utime(tmp_path / "abc", (1_000_000, 1_000_000))
    info = measure("flashinfer", str(tmp_path))
    assert info.exists and info.size_bytes == 102 and info.entries == 5 and not info.truncated
    assert info.built_by == ("0.2.5",)
    assert info.oldest_mtime == 1_000_000


def test_measure_top_level_only(tmp_path: Path) -> None:
    (tmp_path / "0.2.5" / "90").mkdir(parents=True)
    (tmp_path / "0.2.5" / "90" / "op.so").write_bytes(b"x" * 100)
    (tmp_path / "abc").mkdir()
    info = measure("flashinfer", str(tmp_path), walk=False)
    assert (info.entries, info.size_bytes, info.truncated) == (2, 0, True)
    assert info.built_by == ("0.2.5",) and info.oldest_mtime is not None
