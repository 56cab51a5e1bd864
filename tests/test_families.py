"""The table of stack package families (matrices/curated/packages.toml) and its lookups."""

from __future__ import annotations

from compat.families import Families, Family, families, read_packages


def test_shipped_table_answers_every_list_the_code_needs() -> None:
    fam = families()
    assert fam.frameworks == ("sglang", "vllm")
    assert fam.family("torch") is Family.TORCH
    assert fam.family("flashinfer-python") is Family.KERNEL
    # Prefix rows: any nvidia-*/cuda-* wheel is part of the stack (cuda-tile included).
    assert fam.is_stack("nvidia-cublas-cu12") and fam.is_stack("cuda-tile")
    assert fam.cluster_critical("nvidia-nccl-cu13") and not fam.cluster_critical("nvidia-cublas")
    assert not fam.is_stack("requests")
    assert fam.groups()["flashinfer"] == (
        "flashinfer-python",
        "flashinfer-cubin",
        "flashinfer-jit-cache",
    )
    assert fam.get("sgl-kernel") is not None and fam.get("sgl-kernel").successor == "sglang-kernel"  # type: ignore[union-attr]
    assert fam.extensions["torchvision"] == "torchvision/_C.so"
    assert "torch" in fam.synced and "requests" not in fam.synced
    assert fam.links_torch("sglang-kernel") and not fam.links_torch("triton")


def test_rows_are_validated_with_their_key_paths() -> None:
    rows, problems = read_packages(
        {
            "package": [
                {"name": "torch", "family": "torch", "source": "https://pypi.org/project/torch/"},
                {"name": "x", "family": "gadget", "source": "https://x"},
                {"name": "y", "family": "kernel", "source": "http://y", "sync": "yes"},
                {"name": "Torch", "family": "torch", "source": "https://pypi.org/project/torch/"},
                {"family": "kernel"},
                {"name": "z", "family": "kernel", "source": "https://z", "colour": "red"},
            ]
        },
        "packages.toml",
    )
    assert [r.name for r in rows] == ["torch", "torch", "z"]
    text = "\n".join(problems)
    for needle in (
        "package[1].family: expected one of framework",
        "package[2].source: an https:// URL is required",
        "package[2].sync: wrong type",
        "package[3].name: 'Torch' is listed twice",
        "package[4].name: a name is required",
        "package[5].colour: unknown key",
    ):
        assert needle in text, text
    assert read_packages({}, "p.toml")[1] == [
        "p.toml: package: at least one [[package]] row is required"
    ]


def test_longest_prefix_wins() -> None:
    rows, _ = read_packages(
        {
            "package": [
                {"name": "nvidia-", "family": "runtime", "prefix": True, "source": "https://a"},
                {
                    "name": "nvidia-nccl",
                    "family": "runtime",
                    "prefix": True,
                    "cluster": True,
                    "source": "https://a",
                },
            ]
        },
        "p.toml",
    )
    fam = Families(rows)
    assert fam.cluster_critical("nvidia-nccl-cu12") and not fam.cluster_critical(
        "nvidia-cudnn-cu12"
    )
