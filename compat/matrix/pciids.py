"""NVIDIA GPU names from the PCI ID database (pci.ids), joined with curated chip families."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Optional

from msgspec import Struct, field

from compat.matrix.gpudb import TpuIndex, memory_match
from compat.matrix.schema import GpuFamilies, GpuFamily, cc_str

NVIDIA_VENDOR = "10de"
DEVICE_URL = "https://pci-ids.ucw.cz/read/PC/10de/{device}"

# A device line: "\t2684  AD102 [GeForce RTX 4090]". The chip code comes first, then an optional
# revision letter (GK110B, GA107B), then the product class (GL: professional, M: mobile, GLM ...).
_DEVICE = re.compile(r"^\t(?P<id>[0-9a-f]{4})\s+(?P<text>.+)$")
_SUBSYSTEM = re.compile(r"^\t\t(?P<vendor>[0-9a-f]{4})\s+(?P<id>[0-9a-f]{4})\s+(?P<text>.+)$")
_CHIP = re.compile(r"^(?P<chip>(?:GK|GM|GP|GV|TU|GA|AD|GH|GB|GR)[0-9]{2,3}[AB]?)(?P<cls>[A-Z]*)\b")
_BRACKET = re.compile(r"\[(?P<name>[^\]]+)\]\s*$")
_MEMORY = re.compile(r"(?<![\w.])([0-9]{1,3})\s*GB?(?![\w])", re.IGNORECASE)
# TechPowerUp lists a product at its reference memory. Before Volta, board partners often
# doubled it (GeForce GTX 680 4GB, GTX 960 4GB) under the same name, so the reference size is
# not the card's: those generations (and the Kepler to Pascal parts no CUDA 13 supports) keep
# only the sizes NVIDIA or the name state.
TPU_FROM_CC = (7, 0)
# Device lines that are not GPUs, or GPUs without a product name worth offering.
_NOT_A_GPU = re.compile(
    r"audio|usb|ucsi|nvswitch|bridge|root complex|pcie host|sata|reserved dev|initial dev|"
    r"engineering sample|desktop device|generic-gpu|\bcpu\b|\bsku\b|\bpg[0-9]{3}\b|\bint sku\b",
    re.IGNORECASE,
)


class PciDevice(Struct, frozen=True):
    """One NVIDIA device id of pci.ids with the chip code and the product name it gives."""

    device: str
    chip: str
    product_class: str
    name: str
    subsystems: tuple[str, ...] = ()


class PciIds(Struct, frozen=True):
    version: str
    date: str
    devices: tuple[PciDevice, ...]


class DerivedGpu(Struct):
    """One row of gpus.toml: a product name, its chip family and the device ids that carry it."""

    name: str
    chip: str
    architecture: str
    compute_capability: tuple[int, int]
    pci_ids: list[str] = field(default_factory=list)
    memory_gib: Optional[float] = None
    memory_source: str = ""
    origin: str = "pci.ids"
    source: str = ""
    verified: bool = True
    note: str = ""
    # The chips pci.ids gives for the devices of this name (a name can span chips: the
    # GeForce RTX 4070 is an AD103 and an AD104 device).
    chips: list[str] = field(default_factory=list)
    # Where another source disagrees with the size kept (printed by the derivation).
    memory_note: str = ""


def parse_pci_ids(text: str) -> PciIds:
    """The NVIDIA (10de) section of pci.ids: every device line with a chip code and a name."""
    version = date = ""
    devices: list[PciDevice] = []
    in_nvidia = False
    current: Optional[PciDevice] = None
    subs: list[str] = []

    def flush() -> None:
        nonlocal current, subs
        if current is not None:
            devices.append(
                PciDevice(
                    current.device,
                    current.chip,
                    current.product_class,
                    current.name,
                    tuple(subs),
                )
            )
        current, subs = None, []

    for line in text.splitlines():
        if line.startswith("#"):
            m = re.match(r"^#\s*Version:\s*(\S+)", line)
            if m:
                version = m.group(1)
            m = re.match(r"^#\s*Date:\s*(.+?)\s*$", line)
            if m:
                date = m.group(1)
            continue
        if line and not line.startswith("\t"):
            flush()
            in_nvidia = line.startswith(NVIDIA_VENDOR + " ")
            continue
        if not in_nvidia:
            continue
        sub = _SUBSYSTEM.match(line)
        if sub:
            # Only NVIDIA's own subsystem names: board partners name their cards, not the GPU.
            if current is not None and sub.group("vendor") == NVIDIA_VENDOR:
                subs.append(sub.group("text").strip())
            continue
        dev = _DEVICE.match(line)
        if dev:
            flush()
            text_ = dev.group("text").strip()
            chip = _CHIP.match(text_)
            name = _BRACKET.search(text_)
            if chip and name:
                current = PciDevice(
                    dev.group("id"), chip.group("chip"), chip.group("cls"), name.group("name")
                )
    flush()
    return PciIds(version, date, tuple(devices))


def memory_of(name: str) -> Optional[float]:
    """The memory a product name states ('A100 SXM4 80GB' -> 80), or None when it states none,
    several ('8GB/16GB'), or only for one of its alternatives ('RTX PRO 5000 Blackwell / RTX PRO
    5000 72GB Blackwell')."""
    found: set[int] = set()
    for alternative in name.split(" / "):
        sizes = {int(m.group(1)) for m in _MEMORY.finditer(alternative)}
        if not sizes:
            return None
        found |= sizes
    return float(found.pop()) if len(found) == 1 else None


def _subsystem_name(text: str) -> str:
    m = _BRACKET.search(text)
    return m.group("name") if m else text


def family_of(chip: str, by_chip: dict[str, GpuFamily]) -> Optional[GpuFamily]:
    """The family of a pci.ids chip code; a revision letter (GA107B, TU104B) falls back to the
    base chip unless the revision is a family of its own (GK110B)."""
    fam = by_chip.get(chip)
    if fam is None and chip[-1:] in ("A", "B") and chip[-4:-1].isdigit():
        fam = by_chip.get(chip[:-1])
    return fam


def derive_gpus(
    pci: PciIds, curated: GpuFamilies, tpu: Optional[TpuIndex] = None
) -> tuple[list[DerivedGpu], list[str]]:
    """Rows for every NVIDIA device whose chip has a curated family, and the problems found.

    A family's `evidence` names must appear under that chip in pci.ids (or, for an integrated
    GPU, among its [[extra]] names): that ties the compute capability NVIDIA states for a
    product to the chip pci.ids says the product uses.

    Memory, first source that states it: a curated [[memory]] row of the device id (NVIDIA's
    pages), the size the name states, the TechPowerUp product of the same name and chip (when
    `tpu` is given and its products agree). An alias takes the size of the device it names.
    """
    by_chip = {f.chip: f for f in curated.families}
    problems: list[str] = []
    rows: dict[tuple[str, str], DerivedGpu] = {}

    def add(
        name: str, pci_id: str, fam: GpuFamily, origin: str, source: str, chip: str
    ) -> DerivedGpu:
        key = (name.lower(), cc_str(fam.compute_capability))
        row = rows.get(key)
        if row is None:
            row = rows[key] = DerivedGpu(
                name=name,
                chip=fam.chip,
                architecture=fam.architecture,
                compute_capability=fam.compute_capability,
                origin=origin,
                source=source,
                verified=fam.verified,
                note="" if fam.verified else f"compute capability of {fam.chip}: {fam.note}",
            )
        if pci_id and pci_id not in row.pci_ids:
            row.pci_ids.append(pci_id)
        if chip not in row.chips:
            row.chips.append(chip)
        return row

    names_of: dict[str, list[str]] = {}
    for dev in pci.devices:
        fam = family_of(dev.chip, by_chip)
        if fam is None:
            continue
        names_of.setdefault(fam.chip, []).append(dev.name.lower())
        if _NOT_A_GPU.search(dev.name):
            continue
        add(dev.name, dev.device, fam, "pci.ids", DEVICE_URL.format(device=dev.device), dev.chip)
        for sub in dev.subsystems:
            sname = _subsystem_name(sub)
            if not _NOT_A_GPU.search(sname):
                add(
                    sname,
                    dev.device,
                    fam,
                    "pci.ids subsystem",
                    DEVICE_URL.format(device=dev.device),
                    dev.chip,
                )
    for extra in curated.extras:
        fam = by_chip.get(extra.chip)
        if fam is None:
            problems.append(f"extra {extra.name!r}: chip {extra.chip} has no family")
            continue
        names_of.setdefault(fam.chip, []).append(extra.name.lower())
        add(extra.name, "", fam, "curated", extra.source, fam.chip)

    for fam in curated.families:
        names = names_of.get(fam.chip, [])
        if fam.pci and not names:
            problems.append(f"family {fam.chip}: no device of this chip in pci.ids")
        for ev in fam.evidence:
            if not any(ev.lower() in n for n in names):
                where = "in pci.ids" if fam.pci else "among its [[extra]] names"
                problems.append(
                    f"family {fam.chip}: evidence {ev!r} is not a product of it {where}"
                )

    by_id: dict[str, list[DerivedGpu]] = {}
    for row in rows.values():
        for i in row.pci_ids:
            by_id.setdefault(i, []).append(row)
    for a in curated.aliases:
        targets = [r for r in by_id.get(a.pci_id, []) if r.origin == "pci.ids"]
        if not targets:
            problems.append(f"alias {a.name!r}: device {a.pci_id} is not a derived GPU")
            continue
        fam = by_chip[targets[0].chip]
        row = add(a.name, a.pci_id, fam, "alias", a.source, targets[0].chips[0])
        by_id[a.pci_id].append(row)

    mem_by_id = {m.pci_id: m for m in curated.memory}
    for m in curated.memory:
        if m.pci_id not in by_id:
            problems.append(f"memory: device {m.pci_id} is not a derived GPU")
    for row in rows.values():
        # A subsystem name may state another size than its parent device ("RTX 3080 20GB").
        curated_mem = [mem_by_id[i] for i in row.pci_ids if i in mem_by_id]
        sizes = {m.memory_gib for m in curated_mem}
        if row.origin != "pci.ids subsystem" and len(sizes) == 1:
            row.memory_gib, row.memory_source = sizes.pop(), curated_mem[0].source
        elif row.origin == "alias":
            continue  # below, once its device has a size
        else:
            stated = memory_of(row.name)
            if stated is not None:
                row.memory_gib, row.memory_source = stated, "the product name"
        use_tpu = tpu is not None and row.compute_capability >= TPU_FROM_CC
        hit = memory_match(row.name, row.chips, tpu) if tpu is not None and use_tpu else None
        if hit is None:
            continue
        if row.memory_gib is None:
            row.memory_gib, row.memory_source = hit.memory_gib, hit.url
        elif row.memory_gib != hit.memory_gib:
            row.memory_note = (
                f"kept {row.memory_gib:g} GB ({row.memory_source}); TechPowerUp gives "
                f"{hit.memory_gib:g} GB for {hit.products[0].name} ({hit.url})"
            )
    for row in rows.values():
        if row.origin != "alias" or row.memory_gib is not None:
            continue
        devices = [r for i in row.pci_ids for r in by_id.get(i, []) if r.origin == "pci.ids"]
        known = {r.memory_gib for r in devices}
        if len(known) == 1 and None not in known:
            dev_row = devices[0]
            row.memory_gib = dev_row.memory_gib
            row.memory_source = (
                dev_row.memory_source
                if dev_row.memory_source.startswith("https://")
                else f"the product name of device {dev_row.pci_ids[0]} ({dev_row.name})"
            )

    out = sorted(rows.values(), key=lambda r: (r.compute_capability, r.chip, r.name.lower()))
    return out, problems


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_gpus_toml(
    rows: Iterable[DerivedGpu],
    pci: PciIds,
    pci_source: str,
    families_file: str,
    memory_db: str = "",
) -> str:
    """gpus.toml text: deterministic (rows sorted), so a refresh of pci.ids is a reviewable diff."""
    rows = list(rows)
    lines = [
        "# NVIDIA GPU names -> chip, architecture, compute capability (and memory where known).",
        "# Derived by scripts/derive_gpus.py from the PCI ID database's NVIDIA device names and the",
        f"# chip families of {families_file}. Do not edit: change the families file and re-derive.",
        "# memory_gib: the size NVIDIA states (a curated [[memory]] row of the families file), else",
        "#   the size the product name states, else the size of the TechPowerUp product of that",
        "#   name and chip (meta.memory_db); memory_source names which. Otherwise unknown.",
        "",
        "[meta]",
        f"source = {_q(pci_source)}",
        f"pci_ids_version = {_q(pci.version)}",
        f"pci_ids_date = {_q(pci.date)}",
        f"families = {_q(families_file)}",
    ]
    if memory_db:
        lines.append(f"memory_db = {_q(memory_db)}")
    lines += [
        f"rows = {len(rows)}",
    ]
    for r in rows:
        lines += [
            "",
            "[[gpu]]",
            f"name = {_q(r.name)}",
            f"chip = {_q(r.chip)}",
            f"architecture = {_q(r.architecture)}",
            f"compute_capability = {_q(cc_str(r.compute_capability))}",
            "pci_ids = [" + ", ".join(_q(i) for i in r.pci_ids) + "]",
        ]
        if r.memory_gib is not None:
            mem = int(r.memory_gib) if r.memory_gib.is_integer() else r.memory_gib
            lines.append(f"memory_gib = {mem}")
            lines.append(f"memory_source = {_q(r.memory_source)}")
        lines.append(f"origin = {_q(r.origin)}")
        lines.append(f"source = {_q(r.source)}")
        if not r.verified:
            lines.append("verified = false")
            lines.append(f"note = {_q(r.note)}")
    return "\n".join(lines) + "\n"
