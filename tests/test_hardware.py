"""--gpu and --driver as people type them and tools print them, against the bundled tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import Version

from compat.errors import UsageError
from compat.hardware import name_words, parse_driver, parse_gpu, split_count, tokens
from compat.inputs import apply_overrides, load_from
from compat.matrix.load import Matrix, read_toml, validate_all
from compat.matrix.schema import Problems, read_gpu_families
from compat.models import Unknown

ASSETS = Path(__file__).parent / "assets"
MATRIX = Matrix()
GPUS = MATRIX.gpu_catalog
DRIVERS = MATRIX.driver_catalog


# Names exactly as nvidia-smi / NVML print them, each seen in a public report.
NVML_NAMES = [
    # NVIDIA/nccl#1264 (8x H100 SXM, driver 550.54.15)
    ("NVIDIA H100 80GB HBM3", "sm_90", 80.0),
    # Frogging-Family/nvidia-all#212 (driver 550.40.07)
    ("NVIDIA GeForce RTX 4070", "sm_89", 12.0),
    # rossumai/nvgpu#15 (driver 450.57)
    ("TITAN Xp", "sm_61", None),
    # akash-network/provider-configs#91: "NVIDIA H100 NVL, 0x232110DE"
    ("NVIDIA H100 NVL", "sm_90", 94.0),
    # vllm-project/vllm#10026
    ("A100-SXM4-80GB", "sm_80", 80.0),
    ("NVIDIA A100-SXM4-80GB", "sm_80", 80.0),
    # vllm-project/aibrix#2388 lists these device types
    ("Tesla-V100-SXM2-32GB", "sm_70", 32.0),
    ("A100-PCIE-40GB", "sm_80", 40.0),
    ("NVIDIA-A800-SXM4-80GB", "sm_80", 80.0),
    ("Tesla T4", "sm_75", 16.0),
    ("NVIDIA A100 80GB PCIe", "sm_80", 80.0),
    ("NVIDIA L40S", "sm_89", 48.0),
    ("NVIDIA L4", "sm_89", 24.0),
    ("NVIDIA A10G", "sm_86", 24.0),
    ("NVIDIA H200", "sm_90", 141.0),
    ("NVIDIA H20", "sm_90", None),  # 96 GB, and the H20 HBM3e,
    ("NVIDIA H800", "sm_90", 80.0),
    ("NVIDIA GH200 480GB", "sm_90", 96.0),  # the GPU's 96 GB, not the superchip's 480
    ("NVIDIA B200", "sm_100", None),  # 180 GB, and the HGX B200 168GB,
    ("NVIDIA GB200", "sm_100", 186.0),
    ("NVIDIA B300 SXM6 AC", "sm_103", 288.0),
    ("NVIDIA GB10", "sm_121", 128.0),
    ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "sm_120", 96.0),
    ("NVIDIA RTX 6000 Ada Generation", "sm_89", 48.0),
    ("NVIDIA RTX A6000", "sm_86", 48.0),
    ("NVIDIA GeForce RTX 4090 Laptop GPU", "sm_89", 16.0),
    ("NVIDIA GeForce RTX 5090", "sm_120", 32.0),
    ("NVIDIA GeForce RTX 3090", "sm_86", 24.0),
    ("Quadro RTX 8000", "sm_75", 48.0),
    ("Tesla P40", "sm_61", None),  # Pascal: no TechPowerUp size,
    ("Tesla K80", "sm_37", None),
]


@pytest.mark.parametrize(("name", "sm", "memory"), NVML_NAMES)
def test_names_tools_print(name: str, sm: str, memory: float | None) -> None:
    g = parse_gpu(name, GPUS)
    assert (g.count, g.sm, g.memory_gib) == (1, sm, memory)


# What people type after --gpu.
TYPED = [
    ("RTX 4070", "GeForce RTX 4070", "sm_89"),
    ("rtx4070", "GeForce RTX 4070", "sm_89"),
    ("rtx-4070", "GeForce RTX 4070", "sm_89"),
    ("geforce rtx 4070 ti", "GeForce RTX 4070 Ti", "sm_89"),
    ("4070ti", "GeForce RTX 4070 Ti", "sm_89"),
    ("NVIDIA GeForce RTX 4090", "GeForce RTX 4090", "sm_89"),
    ("rtx 4090 laptop", "GeForce RTX 4090 Laptop GPU", "sm_89"),
    ("a100 80gb", "A100 80GB", "sm_80"),
    ("A100-80G", "A100 80GB", "sm_80"),
    ("a100", "A100", "sm_80"),
    ("h100", "H100", "sm_90"),
    ("h100 pcie", "H100 PCIe", "sm_90"),
    ("H100 SXM5 80GB", "H100 SXM5 80GB", "sm_90"),
    ("v100", "Tesla V100", "sm_70"),
    ("t4", "Tesla T4", "sm_75"),
    ("l40s", "L40S", "sm_89"),
    ("a6000", "RTX A6000", "sm_86"),
    ("rtx 6000 ada", "RTX 6000 Ada Generation", "sm_89"),
    ("quadro rtx 6000", "Quadro RTX 6000", "sm_75"),
    ("rtx pro 6000", "RTX PRO 6000 Blackwell 96GB", "sm_120"),
    ("rtx5090", "GeForce RTX 5090", "sm_120"),
    ("b300", "B300 SXM6 AC", "sm_103"),
    ("dgx spark", "DGX Spark", "sm_121"),
    ("jetson agx orin", "Jetson AGX Orin", "sm_87"),
    ("thor", "Jetson AGX Thor", "sm_110"),
    ("gtx 1080 ti", "GeForce GTX 1080 Ti", "sm_61"),
]


@pytest.mark.parametrize(("text", "name", "sm"), TYPED)
def test_names_people_type(text: str, name: str, sm: str) -> None:
    g = parse_gpu(text, GPUS)
    assert (g.name, g.sm) == (name, sm)


# --- memory ----------------------------------------------------------------------------------
# A name of one GPU made in one size gets that size: from NVIDIA's pages, the name, or the
# TechPowerUp product of that name and chip (curated/gpus.toml says which, per row).
ONE_SIZE = [
    ("l40s", 48), ("rtx 4090", 24), ("RTX 4090", 24), ("rtx4070", 12), ("t4", 16),
    ("a10", 24), ("a10g", 24), ("l4", 24), ("a40", 48), ("l20", 48), ("a16", 16),
    ("h200", 141), ("h800", 80), ("b300", 288), ("gb200", 186), ("gb300", 288),
    ("rtx pro 6000", 96), ("rtx a4000", 16), ("rtx a5000", 24), ("rtx a6000", 48),
    ("rtx 5000 ada", 32), ("rtx 6000 ada", 48), ("quadro rtx 6000", 24), ("quadro rtx 8000", 48),
    ("rtx 3090", 24), ("rtx 3090 ti", 24), ("rtx 4060", 8), ("rtx 4070 ti super", 16),
    ("rtx 4080 super", 16), ("rtx 5070", 12), ("rtx 5080", 16), ("rtx 5090", 32),
    ("rtx 4090 laptop", 16), ("dgx spark", 128), ("jetson t5000", 128), ("jetson t4000", 64),
]  # fmt: skip


@pytest.mark.parametrize(("text", "gib"), ONE_SIZE)
def test_plain_names_of_one_size_know_it(text: str, gib: float) -> None:
    assert parse_gpu(text, GPUS).memory_gib == gib


# Made in several sizes: the plain name stays unknown (its rows disagree); the size typed decides.
SEVERAL = [
    "a100", "h100", "v100", "gh200", "b200", "h20", "rtx 3060", "rtx 3080", "rtx 4060 ti",
    "rtx 5060 ti", "rtx pro 5000", "jetson agx orin", "jetson orin nano",
]  # fmt: skip


@pytest.mark.parametrize("text", SEVERAL)
def test_names_of_several_sizes_stay_unknown(text: str) -> None:
    g = parse_gpu(text, GPUS)
    assert g.memory_gib is None
    rows = GPUS.lookup(text)
    sizes = {r.memory_gib for r in rows} | {
        float(w[:-2]) for r in rows for w in name_words(r.name).memory
    }
    # Rows (or a name) of different sizes; or rows left without a size because their sources
    # list several (the RTX 5060 Ti in 8 and 16 GB, the Jetson AGX Orin in 32 and 64 GB).
    assert len(sizes) > 1 or sizes == {None}, rows


@pytest.mark.parametrize(
    ("text", "gib"),
    [
        ("a100 80gb", 80), ("a100 40gb", 40), ("A100-80G", 80), ("v100 32gb", 32),
        ("rtx 4060 ti 16gb", 16), ("rtx 4060 ti 8gb", 8), ("b200 180gb", 180),
        ("h100 nvl", 94), ("rtx 4090 48gb", 48), ("NVIDIA GH200 480GB", 96),
    ],
)  # fmt: skip
def test_the_size_typed_decides(text: str, gib: float) -> None:
    # 'rtx 4090 48gb': a modified card, the size typed wins over the sourced 24; the '480GB'
    # of 'GH200 480GB' is in the product's name (it counts the CPU's memory) and does not.
    assert parse_gpu(text, GPUS).memory_gib == gib


def test_a_plain_name_is_the_desktop_card_not_the_laptop_part() -> None:
    g = parse_gpu("rtx 4090", GPUS)
    assert g.matched == ("GeForce RTX 4090",) and g.memory_gib == 24
    laptop = parse_gpu("rtx 4090 laptop", GPUS)
    assert laptop.matched == ("GeForce RTX 4090 Laptop GPU",) and laptop.memory_gib == 16


def test_every_memory_size_names_its_source() -> None:
    path = MATRIX.root / "curated" / "gpu_families.toml"
    p = Problems(str(path))
    fams = read_gpu_families(p, read_toml(path))
    assert p.items == [] and len(fams.memory) >= 20
    for m in fams.memory:
        assert m.source.startswith("https://"), m
    known = [g for g in MATRIX.gpus if g.memory_gib is not None]
    assert len(known) > 200
    for g in known:
        src = g.memory_source
        assert src.startswith("https://") or src.startswith("the product name"), g
        if src == "the product name":
            assert f"{g.memory_gib:g}" in g.name, g


def test_rtx_4070_is_accepted_like_the_nvidia_smi_spelling() -> None:
    typed, printed = parse_gpu("RTX 4070", GPUS), parse_gpu("NVIDIA GeForce RTX 4070", GPUS)
    assert typed == parse_gpu("RTX 4070", GPUS) and typed.sm == printed.sm == "sm_89"
    assert typed.architecture == "Ada"


@pytest.mark.parametrize(
    "text", ["8xH100", "8x h100", "8 x H100", "h100:8", "h100*8", "H100 x8", "8\u00d7H100"]
)
def test_counts(text: str) -> None:
    g = parse_gpu(text, GPUS)
    assert (g.count, g.name, g.sm) == (8, "H100", "sm_90")


def test_count_limits_and_plain_names() -> None:
    assert split_count("a100-sxm4-80gb") == (1, "a100-sxm4-80gb")
    assert split_count("A100X") == (1, "A100X")
    for bad in ("0xH100", "99999x h100"):
        with pytest.raises(UsageError) as e:
            parse_gpu(bad, GPUS)
        assert e.value.exit_code == 2 and "count" in str(e.value)


def test_count_gives_that_many_gpus_in_the_environment() -> None:
    env = load_from(str(ASSETS / "freeze" / "sglang-0.4.6-good.txt"), MATRIX)
    env = apply_overrides(env, MATRIX, gpus=("8xH100", "a100:2"))
    assert not isinstance(env.gpus, Unknown)
    assert [(g.index, g.name, g.sm) for g in env.gpus] == [
        *((i, "H100", "sm_90") for i in range(8)),
        (8, "A100", "sm_80"),
        (9, "A100", "sm_80"),
    ]


@pytest.mark.parametrize(
    ("text", "sm"),
    [
        ("sm_90", "sm_90"),
        ("sm90", "sm_90"),
        ("SM_90", "sm_90"),
        ("9.0", "sm_90"),
        ("compute_90", "sm_90"),
        ("sm_90a", "sm_90"),
        ("sm_100f", "sm_100"),
        ("12.1", "sm_121"),
        ("sm_61", "sm_61"),
    ],
)
def test_compute_capabilities(text: str, sm: str) -> None:
    g = parse_gpu(text, GPUS)
    assert g.sm == sm and g.memory_gib is None


def test_compute_capability_nvidia_never_made() -> None:
    with pytest.raises(UsageError) as e:
        parse_gpu("sm_4090", GPUS)
    assert e.value.exit_code == 2 and "not a compute capability" in str(e.value)


def test_bare_numbers_ask() -> None:
    with pytest.raises(UsageError) as e:
        parse_gpu("4x4090", GPUS)
    assert "'4x4090' is ambiguous" in e.value.message
    with pytest.raises(UsageError) as e:
        parse_gpu("4090", GPUS)
    assert "ambiguous" in e.value.message and "GeForce RTX 4090" in (e.value.hint or "")
    assert "sm_4090" not in str(e.value)
    with pytest.raises(UsageError) as e:
        parse_gpu("90", GPUS)
    assert "ambiguous" in e.value.message and "sm_90" in (e.value.hint or "")


def test_names_of_different_compute_capabilities_ask() -> None:
    with pytest.raises(UsageError) as e:
        parse_gpu("rtx 6000", GPUS)
    hint = e.value.hint or ""
    assert "'Quadro RTX 6000' (sm_75)" in hint and "'RTX 6000 Ada Generation' (sm_89)" in hint


@pytest.mark.parametrize(
    ("text", "near"),
    [("rtx 4099", "GeForce RTX 4090"), ("h1000", "H100"), ("l40x", "L40")],
)
def test_unknown_names_list_the_closest(text: str, near: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_gpu(text, GPUS)
    assert e.value.exit_code == 2 and "not a GPU compat knows" in e.value.message
    listed = (e.value.hint or "").removeprefix("closest known: ").split(";")[0].split(", ")
    assert 3 <= len(listed) <= 5 and near in listed


@pytest.mark.parametrize(
    ("text", "stack"),
    [
        ("MI300X", "ROCm"),
        ("AMD Instinct MI250X", "ROCm"),
        ("radeon rx 7900 xtx", "ROCm"),
        ("Intel Data Center GPU Max 1550", "XPU"),
        ("arc a770", "XPU"),
        ("gaudi2", "Gaudi"),
    ],
)
def test_other_vendors_are_not_checked_yet(text: str, stack: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_gpu(text, GPUS)
    assert e.value.exit_code == 2
    assert stack in e.value.message and "not checked yet" in e.value.message


def test_tokens() -> None:
    assert tokens("NVIDIA A100-SXM4-80GB") == ["a100", "sxm", "80gb"]
    assert tokens("RTX4090") == ["rtx", "4090"]
    assert tokens("GeForce RTX 4080 Max-Q / Mobile") == ["rtx", "4080", "maxq", "mobile"]
    assert tokens("H100 80 GB HBM3") == ["h100", "80gb"]


@settings(deadline=None, max_examples=60)
@given(st.text(max_size=40))
def test_any_text_is_a_spec_or_a_usage_error(text: str) -> None:
    try:
        g = parse_gpu(text, GPUS)
    except UsageError as e:
        assert e.exit_code == 2
    else:
        assert g.count >= 1 and g.compute_capability in GPUS.known_ccs


# --- drivers ---------------------------------------------------------------------------------
def test_branch_is_judged_at_its_lowest_release_and_reports_its_cuda() -> None:
    for text in ("535", "R535", "r535"):
        d = parse_driver(text, DRIVERS)
        assert (d.text, d.branch, d.cuda) == ("535.54.03", 535, "12.2")
        assert "R535" in d.assumed and "535.54.03" in d.assumed
    # R535 reports CUDA 12.2 (its toolkits are 12.2.x), not 12.1.
    assert parse_driver("535.104.05", DRIVERS).cuda == "12.2"
    assert parse_driver("550.40.07", DRIVERS).cuda == "12.4"  # nvidia-smi of 550.40.07: 12.4


def test_full_versions_keep_nvidia_spelling() -> None:
    d = parse_driver("580.65.06", DRIVERS)
    assert (d.text, d.version, d.cuda, d.assumed) == ("580.65.06", Version("580.65.6"), "13.0", "")
    assert parse_driver("580.65.6", DRIVERS).text == "580.65.06"
    assert parse_driver("418.87.00", DRIVERS).text == "418.87.00"
    assert parse_driver("450.57", DRIVERS).text == "450.57"


@pytest.mark.parametrize(
    ("text", "driver"),
    [("12.4", "550.54.15"), ("12.4.1", "550.54.15"), ("11.8", "520.61.05"), ("13.0", "580.95.05")],
)
def test_cuda_version_given_as_driver(text: str, driver: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_driver(text, DRIVERS)
    assert e.value.exit_code == 2 and "is a CUDA version" in e.value.message
    assert f"the driver looks like {driver}" in (e.value.hint or "")


def test_unknown_branches_say_what_they_assume() -> None:
    newer = parse_driver("R699", DRIVERS)
    assert newer.cuda == "13.3" and "newer than every branch" in newer.assumed
    gap = parse_driver("600", DRIVERS)
    assert gap.cuda is None and "knows no release of R600" in gap.assumed
    for bad in ("", "abc", "535.104.05.1", "v535"):
        with pytest.raises(UsageError):
            parse_driver(bad, DRIVERS)


def test_architecture_floors() -> None:
    def floor(cc: tuple[int, int]) -> tuple[int | None, int | None]:
        f = DRIVERS.floor(cc)
        assert f is not None
        return f.min_branch, f.last_branch

    assert floor((12, 0)) == floor((10, 0)) == (570, None)  # Blackwell: CUDA 12.8
    assert floor((9, 0)) == floor((8, 9)) == (520, None)  # Hopper, Ada: CUDA 11.8
    assert floor((8, 0)) == (450, None)
    assert floor((7, 0)) == (None, 580)  # Volta: supported up to R580
    assert DRIVERS.floor((8, 7)) is None  # Jetson: JetPack's driver


def test_bundled_hardware_tables_validate() -> None:
    assert validate_all() == []


def test_broken_hardware_tables_report_every_problem() -> None:
    problems = validate_all(ASSETS / "matrices" / "hardware-broken")
    expected = [
        "gpus.toml: meta.pci_ids_date: missing or empty",
        "gpus.toml: gpu[0].colour: unknown key",
        "gpus.toml: gpu[0].pci_ids[1]: expected a 4-digit hex device id, got 'H100'",
        "gpus.toml: gpu[0].memory_source: missing",
        "gpus.toml: gpu[1].name: empty",
        "gpus.toml: gpu[1].compute_capability: invalid compute capability 'twelve'",
        "gpus.toml: gpu[1].source: expected a URL",
        "gpus.toml: gpu[1].note: missing",
        "gpu_families.toml: family[1].chip: duplicate chip 'GH100'",
        "gpu_families.toml: extra[0].chip: 'GA10B' is not a [[family]] chip",
        "gpu_families.toml: memory[0].memory_gib: expected a positive number",
        "gpu_families.toml: other_vendor[0].patterns[0]: not a regular expression",
        "drivers.toml: release[0].driver: expected a driver version such as 535.104.05",
        "drivers.toml: branch[0].first: expected a release of R565, got '560.28.03'",
        "drivers.toml: branch[0].note: missing",
        "drivers.toml: architecture[0].compute_capabilities: missing or empty",
        "packages.toml: missing (the stack's package families)",
    ]
    for line in expected:
        assert any(line in p for p in problems), (line, problems)
    assert len(problems) == len(expected), problems


# --- the CLI ---------------------------------------------------------------------------------
def compat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "compat", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


FREEZE = str(ASSETS / "freeze" / "sglang-0.4.6-good.txt")


def test_cli_usage_errors_exit_2_with_the_hint() -> None:
    p = compat("check", "--from", FREEZE, "--driver", "12.4")
    assert p.returncode == 2 and "the driver looks like 550.54.15" in p.stderr, p.stderr
    p = compat("check", "--from", FREEZE, "--gpu", "MI300X")
    assert p.returncode == 2 and "ROCm stacks are not checked yet" in p.stderr, p.stderr
    p = compat("check", "--from", FREEZE, "--gpu", "90")
    assert p.returncode == 2 and "sm_90" in p.stderr and "Traceback" not in p.stderr
    p = compat("lock", "sglang==0.4.6.post1", "--driver", "12.4")
    assert p.returncode == 2 and "is a CUDA version" in p.stderr, p.stderr


def test_cli_branch_says_what_it_assumes() -> None:
    p = compat("check", "--from", FREEZE, "--driver", "R535", "--gpu", "RTX 4070")
    assert p.returncode in (0, 1), p.stderr
    assert "note: --driver R535: read as the R535 branch" in p.stderr
    assert "driver 535.54.03, 1x GeForce RTX 4070" in p.stdout
    p = compat("lock", "sglang==0.4.6.post1", "--driver", "535", "--gpu", "8xA100")
    assert p.returncode == 0, p.stderr
    assert "# Host: driver 535.54.03 (--driver 535: read as the R535 branch" in p.stdout
