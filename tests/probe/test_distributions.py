from __future__ import annotations

import os
from pathlib import Path

import pytest
from packaging.version import Version

from compat.models import Distribution
from compat.probe import distributions
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


@pytest.fixture()
def others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site-packages with the stack's torch, one distribution that pins vllm, twenty that
    name nothing of the stack and one broken one; compat's cache in tmp_path/cache."""
    monkeypatch.setenv("COMPAT_CACHE_DIR", str(tmp_path / "cache"))
    site = tmp_path / "site"
    make_dist(site, "torch", "2.7.1", ("triton==3.3.1",))
    make_dist(site, "verl", "0.4.0", ("vllm<=0.8.5", "numpy"))  # off the stack, pins vllm
    for i in range(20):
        make_dist(site, f"other-{i}", "1.0", ("numpy",))
    make_dist(site, "odd", "not a version")
    return site


def _cached_scan(
    site: Path, monkeypatch: pytest.MonkeyPatch, everything: bool = False
) -> tuple[tuple[Distribution, ...], list[str]]:
    """A scan, and the METADATA files it read."""
    reads: list[str] = []
    real = distributions._read_headers

    def counted(path: str, want: bool) -> tuple[dict[str, str], list[str]]:
        reads.append(Path(path).parent.name)
        return real(path, want)

    monkeypatch.setattr(distributions, "_read_headers", counted)
    got = scan([str(site)], everything)
    monkeypatch.setattr(distributions, "_read_headers", real)
    return got, reads


def test_other_distributions_are_read_once_then_known_by_their_stat_fields(
    others: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = others
    first, reads = _cached_scan(site, monkeypatch)
    assert len(reads) == 23
    assert [d.name for d in first] == ["torch", "verl"]
    assert first[1].requires == ("vllm<=0.8.5",)
    again, reads = _cached_scan(site, monkeypatch)
    assert again == first
    assert reads == ["torch-2.7.1.dist-info"]  # the stack's METADATA only
    every, reads = _cached_scan(site, monkeypatch, everything=True)
    assert len(every) == 23 and reads == ["torch-2.7.1.dist-info"]
    assert every == scan([str(site)], everything=True)


def test_an_edited_metadata_is_read_again_even_with_its_old_size_and_mtime(
    others: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = others
    _cached_scan(site, monkeypatch)
    meta = site / "other_3-1.0.dist-info" / "METADATA"
    before = meta.stat()
    text = meta.read_text().replace("Requires-Dist: numpy\n", "Requires-Dist: torch\n")
    meta.write_text(text)  # "numpy" and "torch": the same size
    os.utime(meta, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert meta.stat().st_size == before.st_size
    got, reads = _cached_scan(site, monkeypatch)
    assert "other_3-1.0.dist-info" in reads
    assert [d.name for d in got] == ["other-3", "torch", "verl"]
    assert got[0].requires == ("torch",)


def test_a_damaged_cache_is_ignored_and_an_unwritable_one_is_no_cache(
    others: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = others
    first, _ = _cached_scan(site, monkeypatch)
    (entry,) = (tmp_path / "cache" / "dists").glob("*.json")
    entry.write_text(entry.read_text().replace("vllm<=0.8.5", "vllm<=9"))  # digest no longer fits
    got, reads = _cached_scan(site, monkeypatch)
    assert got == first and len(reads) == 23
    # a cache folder that cannot be made, even by root: under a regular file
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("COMPAT_CACHE_DIR", str(tmp_path / "not-a-folder" / "cache"))
    for _ in range(2):
        got, reads = _cached_scan(site, monkeypatch)
        assert got == first and len(reads) == 23
