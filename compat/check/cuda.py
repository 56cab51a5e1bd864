"""cuda-mix and driver-too-old: one CUDA major across the stack, and a driver that can run it.

NVIDIA's rules (curated/cuda.toml has the figures and sources): a build for CUDA X.Y runs on a
driver whose CUDA version is >= X.Y; under minor-version compatibility, also on any driver of the
same major at or above that major's floor (12.x: 525.60.13), except that PTX built by the newer
toolkit cannot be JIT-compiled by the older driver.
"""

from __future__ import annotations

import re
from typing import Optional

from packaging.version import Version

from compat.check.base import Context
from compat.check.builds import parse_local
from compat.families import families
from compat.matrix.schema import WheelIndex
from compat.models import Code, Finding, Severity, Unknown, canonicalize_name, parse_version
from compat.nvidia import driver_runs, fmt_driver

# Unsuffixed nvidia-* wheels whose version is the CUDA version (cuFFT, cuBLAS... have their own).
_CUDA_VERSIONED = (
    "nvidia-cuda-runtime",
    "nvidia-cuda-nvrtc",
    "nvidia-cuda-cupti",
    "nvidia-nvjitlink",
    "nvidia-cuda-nvcc",
    "cuda-toolkit",
)
_SUFFIX = re.compile(r"^nvidia-[a-z0-9-]+-cu([0-9]{2})$")
_LD_PATTERNS = (
    re.compile(r"/cuda-([0-9]{2})(?:\.[0-9]+)?(?:/|$)"),
    re.compile(r"/cu([0-9]{2})(?:/|$)"),
    re.compile(r"/nvidia/cu([0-9]{2})/"),
)
_SYSTEM = "CUDA_VERSION"
KERNEL_TAGGED = (
    "flashinfer-python",
    "flashinfer-jit-cache",
    "sgl-kernel",
    "sglang-kernel",
    "flash-attn",
    "vllm",
    "xformers",
    "torchvision",
    "torchaudio",
)


def cuda_sources(ctx: Context) -> list[tuple[int, str]]:
    """(CUDA major, where it was seen) for every part of the stack that names one."""
    out: list[tuple[int, str]] = []
    tb = ctx.torch
    if tb is not None and tb.cuda_major:
        out.append(
            (tb.cuda_major, f"torch {tb.version} is built for CUDA {tb.cuda or tb.cuda_from_deps}")
        )
    built = set(ctx.matrix.build_projects())
    for d in ctx.env.distributions:
        if d.broken or d.version is None:
            continue
        m = _SUFFIX.match(d.key)
        tag = parse_local(d.version)
        if m:
            out.append((int(m.group(1)), f"{d.name} {d.raw_version}"))
        elif d.key in _CUDA_VERSIONED:
            out.append((d.version.major, f"{d.name} {d.raw_version}"))
        elif d.key in KERNEL_TAGGED and tag.cuda:
            out.append((int(tag.cuda.split(".")[0]), f"{d.name} {d.raw_version}"))
        elif d.key in built and not tag.cpu:
            # No tag: the CUDA runtime its wheel links (build facts), when it links one only.
            facts = ctx.matrix.build_facts(d.key, d.version)
            if facts is not None and len(facts.cuda) == 1:
                out.append(
                    (
                        facts.cuda[0],
                        f"{d.name} {d.raw_version}: links {facts.cuda_from[0]} (build facts)",
                    )
                )
    # nvidia/cuda images (and those built on them) set CUDA_VERSION to their toolkit's version.
    system = ctx.env.env.get("CUDA_VERSION", "").strip()
    m = re.match(r"^([0-9]{1,2})\.[0-9]+", system)
    if m:
        out.append((int(m.group(1)), f"{_SYSTEM}={system} (the image's CUDA toolkit)"))
    for entry in ctx.env.env.get("LD_LIBRARY_PATH", "").split(":"):
        for pat in _LD_PATTERNS:
            m = pat.search(entry + "/")
            if m:
                out.append((int(m.group(1)), f"LD_LIBRARY_PATH entry {entry}"))
                break
    return out


def check_mix(ctx: Context) -> list[Finding]:
    sources = cuda_sources(ctx)
    majors = sorted({m for m, _ in sources})
    if len(majors) < 2:
        return []
    tb = ctx.torch
    ref = tb.cuda_major if tb is not None and tb.cuda_major else None
    if ref is None:
        return [
            Finding(
                Code.CUDA_MIX.value,
                Severity.WARNING,
                f"the stack names more than one CUDA major ({', '.join(map(str, majors))})",
                evidence=tuple(s for _, s in sources),
                packages=(),
            )
        ]
    odd = [(m, s) for m, s in sources if m != ref]
    shadowing = [s for _, s in odd if s.startswith("LD_LIBRARY_PATH")]
    system = [m for m, s in odd if s.startswith(_SYSTEM)]
    kernels = [s for _, s in odd if not s.startswith(("LD_LIBRARY_PATH", "nvidia-", _SYSTEM))]
    # A package that skips compiled ops it cannot load (ops_optional) still imports: a warning.
    hard = [s for s in kernels if not families().ops_optional(_who(s).split()[0])]
    severity = Severity.ERROR if shadowing or hard or system else Severity.WARNING
    fixes = []
    if system:
        # torch.utils.cpp_extension refuses a toolkit of another major than torch's build, so
        # every kernel compiled in the image (flashinfer JIT, DeepGEMM, extensions) fails.
        fixes.append(
            f"build the image on a CUDA {ref} base (nvidia/cuda:{ref}.x-...), or install torch's "
            f"CUDA {system[0]} build: kernels compiled at run time need the toolkit of torch's major"
        )
    if shadowing:
        fixes.append(
            "remove the CUDA "
            + "/".join(sorted({str(m) for m, s in odd if s.startswith("LD_")}))
            + " folders from LD_LIBRARY_PATH: libraries found there are loaded before torch's"
        )
    if kernels:
        names = sorted({s.split()[0] for s in kernels})
        fixes.append(f"install the CUDA {ref} builds of: " + ", ".join(names))
        fixes.extend(_variant_fixes(ctx, names, ref, sorted({m for m, s in odd if s in kernels})))
    wheels = sorted({s.split()[0] for _, s in odd if s.startswith("nvidia-")})
    if wheels:
        fixes.append("pip uninstall -y " + " ".join(wheels) + "   # if nothing else needs them")
    return [
        Finding(
            Code.CUDA_MIX.value,
            severity,
            f"CUDA {'/'.join(sorted({str(m) for m, _ in odd}))} parts beside a CUDA {ref} torch",
            evidence=tuple(s for m, s in sources if m == ref)[:1] + tuple(s for _, s in odd),
            fix=tuple(fixes),
            packages=tuple(
                sorted({s.split()[0] for _, s in odd if not s.startswith((_SYSTEM, "LD_"))})
            ),
        )
    ]


def _serves(ix: WheelIndex, name: str, ver: Optional[Version], torch: Optional[Version]) -> bool:
    """Whether the index row's range holds the release (a row keyed on torch, as PyTorch's
    indexes are, is judged by the torch of the tuple)."""
    if ix.when is None:
        return True
    subject = ver if canonicalize_name(ix.when.name) == name else torch
    return subject is not None and ix.when.specifier.contains(subject, True)


def _variant_fixes(ctx: Context, names: list[str], ref: int, majors: list[int]) -> list[str]:
    """Where the builds named by a cuda-mix fix are: the project's variant for torch's CUDA
    (else its major) among the known indexes (curated/indexes.toml), worded as sure as the row
    is; and torch's own build for the odd CUDA major (the other way to one CUDA)."""
    out: list[str] = []
    tb = ctx.torch
    torch_cuda = (tb.cuda or tb.cuda_from_deps or "") if tb is not None else ""
    from compat.check.target import target_of

    target = target_of(ctx)
    for name in names:
        d = ctx.env.dist(name)
        # the release the report's tuple installs (a companion moves with torch), else this one
        ver = target.get(name) or (d.version if d is not None else None)
        torch_v = target.get("torch")
        rows = [
            ix
            for ix in ctx.matrix.indexes
            if name in ix.projects
            and ix.cuda
            and ix.cuda.startswith(f"{ref}.")
            and not (ix.prereleases and (ver is None or not ver.is_prerelease))
            and _serves(ix, name, ver, torch_v)
        ]
        exact = [ix for ix in rows if ix.cuda == torch_cuda]
        what = f"{name} {ver.public}" if ver is not None else name
        for ix in exact or rows:
            if ix.when is not None and ix.verified:
                out.append(f"the CUDA {ix.cuda} build of {what} is at {ix.url} ({ix.name})")
            else:
                out.append(
                    f"{name} publishes CUDA {ix.cuda} builds at {ix.url} ({ix.name}); "
                    f"compat has not confirmed one for {what}"
                )
    have, _ = driver_cuda(ctx)
    if tb is not None and tb.version is not None:
        for b in ctx.matrix.builds_of(tb.version):
            if not b.is_cuda or int(b.cuda.split(".")[0]) not in majors:
                continue
            if have is not None and Version(b.cuda).major > have.major:
                out.append(
                    f"or, with a driver for CUDA {b.cuda}, move torch to its CUDA {b.cuda} "
                    f"build: pip install 'torch=={b.torch}+{b.local}' --extra-index-url {b.index}"
                )
            else:
                out.append(
                    f"or move torch to its CUDA {b.cuda} build: pip install "
                    f"'torch=={b.torch}+{b.local}' --extra-index-url {b.index}"
                )
    return out


def check_minor(ctx: Context) -> list[Finding]:
    """Kernels and companions built for another CUDA minor than torch (+cu124 torch beside a
    +cu126 flashinfer): one stack comes from one CUDA index. A kernel built by a newer toolkit
    than torch's runtime may call runtime APIs that runtime lacks and ship PTX its driver cannot
    JIT (an error); one built by an older toolkit usually loads (a warning). Other majors are
    check_mix's to report."""
    tb = ctx.torch
    tc = (tb.cuda or tb.cuda_from_deps) if tb is not None else None
    if tb is None or not tc or "." not in tc:
        return []
    torch_cuda = Version(tc)
    out: list[Finding] = []
    for key in KERNEL_TAGGED:
        d = ctx.env.dist(key)
        if d is None or d.version is None:
            continue
        tag = parse_local(d.version)
        if not tag.cuda or "." not in tag.cuda:
            continue
        kc = Version(tag.cuda)
        if kc.major != torch_cuda.major or kc == torch_cuda:
            continue
        newer = kc > torch_cuda
        out.append(
            Finding(
                Code.CUDA_MIX.value,
                Severity.ERROR if newer else Severity.WARNING,
                f"{key} {d.version} is built for CUDA {kc}, torch {tb.version} for CUDA {torch_cuda}"
                + (
                    ": built by a newer CUDA toolkit than torch's runtime, it may need runtime APIs "
                    f"(and a driver) that torch's CUDA {torch_cuda} build does not bring"
                    if newer
                    else ": the stack should come from one CUDA index"
                ),
                evidence=(f"{key} {d.version}", f"torch {tb.version} (CUDA {torch_cuda})"),
                fix=(
                    f"install the {key} build for CUDA {torch_cuda} (+cu{torch_cuda.major}"
                    f"{torch_cuda.minor}), or torch's build for CUDA {kc}",
                ),
                packages=("torch", key),
            )
        )
    return out


def driver_cuda(ctx: Context) -> tuple[Optional[Version], str]:
    """The highest CUDA the driver runs: NVML's answer, else the CUDA its branch reports
    (curated/drivers.toml), else the toolkit table by driver version."""
    drv = ctx.env.driver
    if isinstance(drv, Unknown):
        return None, drv.reason
    if not isinstance(drv.cuda, Unknown):
        try:
            return Version(drv.cuda), f"driver {drv.version} reports CUDA {drv.cuda}"
        except ValueError:
            pass
    if isinstance(drv.version, Unknown):
        return None, drv.version.reason
    try:
        dv = Version(drv.version)
    except ValueError:
        return None, f"driver version {drv.version!r} is not a version"
    branch_cuda = ctx.matrix.driver_catalog.cuda_of(dv)
    if branch_cuda is not None:
        return Version(branch_cuda), (
            f"driver {drv.version} (R{dv.major}) reports CUDA {branch_cuda} (curated/drivers.toml)"
        )
    best = None
    for t in ctx.matrix.toolkits:
        if t.driver_min <= dv and (best is None or t.cuda > best):
            best = t.cuda
    if best is not None:
        return best, f"driver {drv.version} runs toolkits up to CUDA {best} (curated/cuda.toml)"
    # Older than every toolkit row: the minor-version floors still tell the major it runs.
    majors = sorted(
        {
            (t.minor_compat_driver_min, t.cuda.major)
            for t in ctx.matrix.toolkits
            if t.minor_compat_driver_min is not None and t.minor_compat_driver_min <= dv
        }
    )
    if majors:
        floor, major = majors[-1]
        return Version(f"{major}.0"), (
            f"driver {drv.version} runs CUDA {major}.x only "
            f"(minor-version compatibility floor {fmt_driver(floor)})"
        )
    return None, f"driver {drv.version} is older than every CUDA toolkit compat knows"


def needed_cuda(ctx: Context) -> list[tuple[Version, str]]:
    out: list[tuple[Version, str]] = []
    tb = ctx.torch
    if tb is not None and (tb.cuda or tb.cuda_from_deps):
        c = tb.cuda or tb.cuda_from_deps or ""
        if "." in c:
            out.append((Version(c), f"torch {tb.version}"))
    for name in KERNEL_TAGGED:
        d = ctx.env.dist(name)
        if d is not None and d.version is not None:
            tag = parse_local(d.version)
            if tag.cuda and "." in tag.cuda:
                out.append((Version(tag.cuda), f"{name} {d.version}"))
    return out


def needed_majors(ctx: Context, needs: list[tuple[Version, str]]) -> list[tuple[int, str]]:
    """Installed parts that name only a CUDA major (nvidia-*-cu13 and CUDA 13 runtime wheels, a
    torch whose deps give only the major), beyond those needed_cuda already has."""
    named = {who.split()[0] for _, who in needs}
    out: list[tuple[int, str]] = []
    for major, who in cuda_sources(ctx):
        if who.startswith(("LD_LIBRARY_PATH", _SYSTEM)) or who.split()[0] in named:
            continue
        out.append((major, who))
    return out


def _who(source: str) -> str:
    """The part a CUDA source names ("vllm 0.20.0" of "vllm 0.20.0: links ... (build facts)")."""
    return source.split(": ", 1)[0]


def _major_floor(ctx: Context, major: int) -> Optional[Version]:
    """The lowest driver that runs any CUDA of a major (its minor-version compatibility floor)."""
    floors = [
        t.minor_compat_driver_min or t.driver_min
        for t in ctx.matrix.toolkits
        if t.cuda.major == major
    ]
    return min(floors) if floors else None


def check_driver(ctx: Context) -> list[Finding]:
    needs = needed_cuda(ctx)
    majors = needed_majors(ctx, needs)
    if not needs and not majors:
        return []
    top = max([v for v, _ in needs] + [Version(f"{m}.0") for m, _ in majors])
    have, why = driver_cuda(ctx)
    drv = ctx.env.driver
    drv_version = (
        None if isinstance(drv, Unknown) or isinstance(drv.version, Unknown) else drv.version
    )
    dv = parse_version(drv_version) if drv_version else None
    if have is None and dv is None:
        return [
            Finding(
                Code.DRIVER_TOO_OLD.value,
                Severity.INFO,
                f"could not tell whether the driver runs CUDA {top}: {why}",
                fix=("give the target's driver: compat check --driver 550.54.15",),
                missing="driver",
            )
        ]
    compat_ok: list[tuple[Version, str]] = []
    too_old: list[tuple[Version, str, str]] = []
    for need, who in sorted(needs, reverse=True):
        if have is not None and have >= Version(f"{need.major}.{need.minor}"):
            continue  # the driver says it runs this CUDA (NVML), or its floor is met
        mode = "no"
        if dv is not None:
            mode, _ = driver_runs(ctx.matrix, dv, f"{need.major}.{need.minor}")
        if mode == "minor":
            compat_ok.append((need, who))
        elif mode != "full":
            too_old.append((need, who, f"CUDA {need}"))
    for major, who in sorted(majors, reverse=True):
        floor = _major_floor(ctx, major)
        if have is not None and have.major >= major:
            continue
        if dv is not None and floor is not None and dv >= floor:
            continue
        too_old.append((Version(f"{major}.0"), who, f"CUDA {major}.x"))
    out = []
    if too_old:
        need = max(v for v, _, _ in too_old)
        tk = ctx.matrix.toolkit(str(need))
        floor = tk.minor_compat_driver_min if tk else None
        own = tk.driver_min if tk else None
        floors = (
            f"driver >= {fmt_driver(floor)} (any CUDA {need.major}.x under minor-version "
            "compatibility)"
            if floor
            else f"a driver for CUDA {need.major}.x"
        )
        if own and any(label == f"CUDA {need}" for _, _, label in too_old):
            floors += f", >= {fmt_driver(own)} for CUDA {need} itself"
        parts = ", ".join(f"{_who(who)} ({label})" for _, who, label in too_old)
        best = floor or own
        out.append(
            Finding(
                Code.DRIVER_TOO_OLD.value,
                Severity.ERROR,
                f"the driver is too old for {parts}: {why}; needs {floors}",
                evidence=(
                    why,
                    *tuple(
                        who if ": " in who else f"{who} is built for {label}"
                        for _, who, label in too_old
                    ),
                ),
                fix=(
                    f"upgrade the NVIDIA driver to >= {fmt_driver(best)}"
                    if best
                    else "upgrade the NVIDIA driver",
                    f"or install builds for CUDA <= {have}: compat lock <target> --driver "
                    f"{drv_version or '<version>'}"
                    if have is not None
                    else f"or install builds for an older CUDA: compat lock <target> --driver "
                    f"{drv_version or '<version>'}",
                ),
                references=(tk.source,) if tk else (),
                packages=tuple(who.split()[0] for _, who, _ in too_old),
            )
        )
    if compat_ok:
        need = max(v for v, _ in compat_ok)
        tk = ctx.matrix.toolkit(str(need))
        parts = ", ".join(f"{who} (CUDA {v})" for v, who in compat_ok)
        out.append(
            Finding(
                Code.DRIVER_TOO_OLD.value,
                Severity.INFO,
                f"{parts} run on this CUDA {have} driver under minor-version compatibility; PTX "
                f"built by CUDA {need} cannot be JIT-compiled by it (GPUs covered only by PTX "
                "would fail, and so can Triton kernels built with a newer bundled ptxas)",
                evidence=(why,),
                fix=(f"for full support upgrade the driver to >= {fmt_driver(tk.driver_min)}",)
                if tk
                else (),
                references=(tk.source,) if tk else (),
            )
        )
    return out
