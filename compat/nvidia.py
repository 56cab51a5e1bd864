"""NVIDIA's compatibility rules, in one place: which driver runs which CUDA build, and which GPU
runs which compiled code. The figures (driver floors per toolkit) come from curated/cuda.toml,
whose rows name their sources; used by `compat check` and `compat lock` alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from packaging.version import InvalidVersion, Version

from compat.hardware import nvidia_text as fmt_driver
from compat.matrix.load import Matrix

__all__ = ["coverage", "driver_floor", "driver_runs", "driver_span", "fmt_driver", "sass_runs"]


def driver_runs(matrix: Matrix, driver: Version, cuda: str) -> tuple[str, str]:
    """('full' | 'minor' | 'no' | 'unknown', why) for a driver and a CUDA build version.

    NVIDIA: a build for CUDA X.Y runs on drivers at or above X.Y's own floor; under minor-version
    compatibility also on any driver at or above the major's floor (12.x: 525.60.13), except that
    PTX built by the newer toolkit cannot be JIT-compiled (curated/cuda.toml has the sources).
    """
    try:
        want = Version(cuda)
    except InvalidVersion:
        return "unknown", f"CUDA {cuda!r} is not a version"
    tk = matrix.toolkit(cuda)
    if tk is None:
        return "unknown", f"compat has no driver floor for CUDA {cuda} (curated/cuda.toml)"
    d = fmt_driver(driver)
    if tk.cuda.release[:2] == want.release[:2] and driver >= tk.driver_min:
        return "full", f"driver {d} >= {fmt_driver(tk.driver_min)} (CUDA {cuda})"
    floor = tk.minor_compat_driver_min
    if floor is not None and driver >= floor:
        return "minor", (
            f"driver {d} runs CUDA {cuda} under minor-version compatibility "
            f"(CUDA {want.major}.x needs >= {fmt_driver(floor)})"
        )
    need = floor or tk.driver_min
    return "no", f"CUDA {cuda} needs driver >= {fmt_driver(need)}" + (
        f" (CUDA {want.major}.x minor-version compatibility; {fmt_driver(tk.driver_min)} for "
        f"{cuda} itself)"
        if floor is not None and floor != tk.driver_min
        else ""
    )


def driver_floor(matrix: Matrix, cuda: str) -> Optional[Version]:
    """The lowest driver that runs a CUDA build (minor-version compatibility included)."""
    tk = matrix.toolkit(cuda)
    if tk is None:
        return None
    return tk.minor_compat_driver_min or tk.driver_min


def driver_span(matrix: Matrix, driver: Version) -> str:
    """'CUDA 11.x only', 'CUDA 12.x (12.2 natively)': what a driver runs, in words."""
    majors = sorted(
        {
            t.cuda.major
            for t in matrix.toolkits
            if driver >= (t.minor_compat_driver_min or t.driver_min)
        }
    )
    full = [t.cuda for t in matrix.toolkits if driver >= t.driver_min]
    native = f" ({max(full)} natively)" if full else ""
    if not majors:
        return "no CUDA version compat knows"
    if len(majors) == 1:
        return f"CUDA {majors[0]}.x only{native}"
    return "CUDA " + "/".join(f"{m}.x" for m in majors) + native


def sass_runs(built: tuple[int, int], gpu: tuple[int, int]) -> bool:
    return built[0] == gpu[0] and built[1] <= gpu[1]


def coverage(
    sass: Sequence[tuple[int, int]], ptx: Sequence[tuple[int, int]], cc: tuple[int, int]
) -> str:
    """'sass', 'ptx', 'none', or 'unknown' (no arch list recorded) for one GPU.

    CUDA's rules: SASS built for sm_XY runs on GPUs of the same major with minor >= Y (sm_80
    code runs on sm_86, not on sm_90); PTX for compute_XY is JIT-compiled by the driver for any
    GPU of capability >= X.Y.
    """
    if not sass and not ptx:
        return "unknown"
    if any(sass_runs(b, cc) for b in sass):
        return "sass"
    if any(p <= cc for p in ptx):
        return "ptx"
    return "none"
