"""driver-too-old: an image whose NVIDIA_REQUIRE_CUDA the container runtime refuses on the driver.

NVIDIA's container runtime reads NVIDIA_REQUIRE_CUDA before it starts a container: space-separated
alternatives, each a comma-separated conjunction of `cuda>=X.Y` (the CUDA version the driver
reports), `driver>=N` / `driver<N`, `arch=X.Y` and `brand=NAME`; unless NVIDIA_DISABLE_REQUIRE is
true, a container none of whose alternatives holds does not start ("requirement error:
unsatisfied condition: cuda>=12.8"), even when its stack would run on that driver under CUDA's
minor-version compatibility. Source:
https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/docker-specialized.html
"""

from __future__ import annotations

import re
from typing import Optional

from packaging.version import Version

from compat.check.base import Context
from compat.check.cuda import driver_cuda
from compat.models import Code, Finding, Severity, Unknown, parse_version
from compat.nvidia import fmt_driver

_CONSTRAINT = re.compile(r"^(cuda|driver|arch|brand)\s*(>=|<=|==|=|>|<)\s*(\S+)$")
# strconv.ParseBool's true values, which the runtime reads NVIDIA_DISABLE_REQUIRE with.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_MAX_ALTERNATIVES = 512
_DOCS = "https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/docker-specialized.html"


_CONSUMER = frozenset({"geforce", "geforcertx", "titan", "titanrtx"})
_OTHER = "other"


def _brand(ctx: Context) -> Optional[str]:
    """The GPUs' brand as NVIDIA names it where the names tell (GeForce, TITAN), `other` for
    named data-centre and workstation GPUs, None when the GPUs are unknown or mixed. NVIDIA's
    images exempt a driver branch for every non-consumer brand at once (tesla, nvidia, quadro,
    nvidiartx, unknown, ...), so `other` satisfies any of those."""
    gpus = ctx.env.gpus
    if isinstance(gpus, Unknown) or not gpus:
        return None
    brands = set()
    for g in gpus:
        name = g.name.lower()
        if "geforce" in name:
            brands.add("geforcertx" if "rtx" in name else "geforce")
        elif "titan" in name:
            brands.add("titanrtx" if "rtx" in name else "titan")
        elif g.name.startswith("sm_") or not g.name:
            return None
        else:
            brands.add(_OTHER)
    return brands.pop() if len(brands) == 1 else None


def _compare(have: Version, op: str, want: Version) -> bool:
    if op in ("=", "=="):
        return have == want
    return {
        ">=": have >= want,
        "<=": have <= want,
        ">": have > want,
        "<": have < want,
    }[op]


def _holds(
    part: str,
    cuda: Optional[Version],
    driver: Optional[Version],
    ctx: Context,
    brand: Optional[str],
) -> Optional[bool]:
    """One constraint: True, False, or None when it cannot be told here."""
    m = _CONSTRAINT.match(part.strip())
    if not m:
        return None
    key, op, value = m.group(1), m.group(2), m.group(3)
    if key == "brand":
        if brand is None:
            return None
        same = value.lower() not in _CONSUMER if brand == _OTHER else brand == value.lower()
        return same == (op in ("=", "=="))
    want = parse_version(value)
    if want is None:
        return None
    if key == "cuda":
        return None if cuda is None else _compare(cuda, op, want)
    if key == "driver":
        return None if driver is None else _compare(driver, op, want)
    gpus = ctx.env.gpus
    if isinstance(gpus, Unknown) or not gpus or any(g.compute_capability is None for g in gpus):
        return None
    return all(
        _compare(Version(f"{g.compute_capability[0]}.{g.compute_capability[1]}"), op, want)
        for g in gpus
        if g.compute_capability is not None
    )


def _summary(require: str) -> str:
    """The variable as evidence: its `cuda>=` part and the driver branches it exempts."""
    alts = require.split()
    cuda = [a for a in alts if a.startswith("cuda")]
    branches = sorted(
        {int(m.group(1)) for a in alts for m in [re.search(r"driver>=([0-9]+)", a)] if m}
    )
    text = " ".join(cuda) or alts[0]
    from compat.redact import quote_line

    text = quote_line(text, 120).strip("'\"")  # a value from a file: bounded and printable
    if branches:
        text += f" (or a driver of branch {', '.join(map(str, branches))} on the brands it names)"
    return f"NVIDIA_REQUIRE_CUDA={text}"


def check(ctx: Context) -> list[Finding]:
    env = ctx.env.env
    require = env.get("NVIDIA_REQUIRE_CUDA", "").strip()
    if not require or env.get("NVIDIA_DISABLE_REQUIRE", "").strip() in _TRUE:
        return []
    drv = ctx.env.driver
    if isinstance(drv, Unknown) or isinstance(drv.version, Unknown):
        return []
    if ctx.env.source == "live" and not drv.version_source.startswith("--driver"):
        return []  # this container is running: the runtime accepted its requirement
    have, why = driver_cuda(ctx)
    driver = parse_version(drv.version)
    brand = _brand(ctx)
    results: list[Optional[bool]] = []
    for alt in require.split()[:_MAX_ALTERNATIVES]:
        parts = [_holds(p, have, driver, ctx, brand) for p in alt.split(",") if p]
        if any(r is False for r in parts):
            results.append(False)
        elif all(r is True for r in parts):
            results.append(True)
        else:
            results.append(None)
    if any(r is True for r in results) or not results:
        return []
    cuda_want = next(
        (m.group(1) for m in [re.search(r"cuda>=?([0-9]+\.[0-9]+)", require)] if m), ""
    )
    tk = ctx.matrix.toolkit(cuda_want) if cuda_want else None
    upgrade = (
        f"upgrade the driver to one that runs CUDA {cuda_want} (>= {fmt_driver(tk.driver_min)})"
        if tk
        else "upgrade the driver"
    )
    fixes = (
        upgrade,
        "or, when the stack itself runs on this driver (minor-version compatibility), let it "
        "start anyway: ENV NVIDIA_DISABLE_REQUIRE=1",
        "or build on a base image of an older CUDA",
    )
    summary = _summary(require)
    if all(r is False for r in results):
        return [
            Finding(
                Code.DRIVER_TOO_OLD.value,
                Severity.ERROR,
                f"the container runtime refuses to start this image on driver {drv.version}: "
                f"its {summary} does not hold ({why})",
                evidence=(summary, why),
                fix=fixes,
                references=(_DOCS,),
            )
        ]
    return [
        Finding(
            Code.DRIVER_TOO_OLD.value,
            Severity.WARNING,
            f"the container runtime starts this image on driver {drv.version} only if the GPU's "
            f"brand is one its NVIDIA_REQUIRE_CUDA exempts ({why}); GeForce GPUs are not "
            "always among them",
            evidence=(summary, why),
            fix=(*fixes[:2], "or give the GPU (--gpu) so that its brand can be told"),
            references=(_DOCS,),
        )
    ]
