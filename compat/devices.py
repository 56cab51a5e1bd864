"""Which of the machine's GPUs a process sees, after CUDA_VISIBLE_DEVICES."""

from __future__ import annotations

from typing import Optional, Union

from compat.models import GPU, Unknown, small_int


def visible_gpus(
    gpus: tuple[GPU, ...], cuda_visible_devices: Optional[str], device_order: Optional[str] = None
) -> Union[tuple[tuple[GPU, ...], str], Unknown]:
    """The GPUs a CUDA process sees and how that was decided, or why it cannot be told.

    CUDA reads the list left to right and stops at the first index that does not exist
    (`0,1,-1,2` sees two GPUs); UUIDs (`GPU-8f3c...`, a prefix is enough) name a GPU whatever
    its index; MIG instances (`MIG-...`) are slices whose memory compat does not know.
    """
    ordered = tuple(sorted(gpus, key=lambda g: g.index))
    if cuda_visible_devices is None:
        return ordered, f"all {len(ordered)} GPU(s): CUDA_VISIBLE_DEVICES is not set"
    value = cuda_visible_devices.strip()
    if not value:
        return (), "CUDA_VISIBLE_DEVICES is empty: no GPU is visible"
    picked: list[GPU] = []
    seen: set[int] = set()
    for raw in value.split(","):
        item = raw.strip()
        gpu: Optional[GPU] = None
        n = small_int(item)
        if n is not None:
            if n < 0 or n >= len(ordered):
                break  # CUDA ignores this entry and every one after it
            gpu = ordered[n]
        elif item.upper().startswith("GPU-"):
            if not all(g.uuid for g in ordered):
                return Unknown(
                    f"CUDA_VISIBLE_DEVICES={value} names GPUs by UUID and the GPUs' "
                    "UUIDs are not known (give a snapshot taken on the machine)"
                )
            hits = [g for g in ordered if (g.uuid or "").lower().startswith(item.lower())]
            if len(hits) != 1:
                break
            gpu = hits[0]
        elif item.upper().startswith("MIG-"):
            return Unknown(
                f"CUDA_VISIBLE_DEVICES={value} names MIG instances; compat does not "
                "know their memory"
            )
        else:
            return Unknown(f"CUDA_VISIBLE_DEVICES={value}: {item!r} is not a GPU index or UUID")
        if gpu.index in seen:
            return Unknown(f"CUDA_VISIBLE_DEVICES={value} lists GPU {gpu.index} twice")
        seen.add(gpu.index)
        picked.append(gpu)
    basis = f"CUDA_VISIBLE_DEVICES={value}: {len(picked)} of {len(ordered)} GPU(s)"
    if (device_order or "").upper() != "PCI_BUS_ID" and len({g.name for g in ordered}) > 1:
        basis += (
            " (indices taken in PCI bus order; with mixed GPUs CUDA orders fastest first "
            "unless CUDA_DEVICE_ORDER=PCI_BUS_ID)"
        )
    return tuple(picked), basis
