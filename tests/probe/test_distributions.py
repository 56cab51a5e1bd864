from __future__ import annotations

from pathlib import Path

from packaging.version import Version

from compat.probe.distributions import is_stack, scan
from tests.conftest import make_dist


def test_reads_stack_distributions_with_requires(tmp_path: Path) -> None:
    make_dist(tmp_path, "torch", "2.7.1+cu126", ("triton==3.3.1; platform_system == 'Linux'",))
    make_dist(tmp_path, "requests", "2.32.0")
    dists = scan([str(tmp_path)])
    assert [d.name for d in dists] == ["torch"]
    torch = dists[0]
    assert torch.version == Version("2.7.1+cu126")
    assert torch.version.local == "cu126"
    assert torch.requires == ("triton==3.3.1; platform_system == 'Linux'",)
    assert torch.location == str(tmp_path)


def test_all_lists_every_distribution(tmp_path: Path) -> None:
    make_dist(tmp_path, "torch", "2.7.1")
    make_dist(tmp_path, "requests", "2.32.0")
    assert [d.name for d in scan([str(tmp_path)], everything=True)] == ["requests", "torch"]


def test_broken_dist_infos_are_listed_not_raised(tmp_path: Path) -> None:
    make_dist(tmp_path, "triton", "3.3.1", metadata="")  # no METADATA file at all
    make_dist(tmp_path, "vllm", "not-a-version", folder_version="not_a_version")
    make_dist(tmp_path, "sglang", "0.5.2", metadata="Metadata-Version: 2.1\nName: sglang\n\n")
    dists = {d.name: d for d in scan([str(tmp_path)])}
    assert dists["triton"].broken == "no METADATA in triton-3.3.1.dist-info"
    assert dists["triton"].version == Version("3.3.1")  # still told from the folder name
    assert dists["vllm"].broken == "invalid version 'not-a-version'"
    assert dists["vllm"].version is None
    assert dists["sglang"].broken == "no Version in metadata"


def test_first_path_entry_wins_like_import(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    make_dist(first, "torch", "2.8.0")
    make_dist(second, "torch", "2.7.1")
    (dist,) = scan([str(first), str(second)])
    assert dist.version == Version("2.8.0")


def test_missing_and_unreadable_paths_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "file.zip").write_text("x")
    assert scan([str(tmp_path / "nope"), str(tmp_path / "file.zip")]) == ()


def test_both_nvidia_naming_schemes_are_stack() -> None:
    assert is_stack("nvidia-cublas-cu12")
    assert is_stack("nvidia-cublas")
    assert is_stack("cuda-toolkit")
    assert not is_stack("numpy")


def test_metadata_body_is_not_read_as_headers(tmp_path: Path) -> None:
    make_dist(tmp_path, "torch", "2.7.1", ("triton==3.3.1",))
    (dist,) = scan([str(tmp_path)])
    assert "not-a-header" not in dist.requires
