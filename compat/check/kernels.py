"""kernel-torch and split-package: compiled kernels built for another torch, CUDA or C++ ABI;
parts of one project at different versions.

From metadata and local tags (`+cu124torch2.5`) always; with `--deep`, from the shared objects:
libtorch/c10 libraries they need that the installed torch lacks, and libtorch/c10 symbols they
import that torch does not export (the `undefined symbol` a launch dies of).
"""

from __future__ import annotations

import os
from typing import Optional

from compat import elf
from compat.check.base import Context, pip_install, public, requires_of, satisfied
from compat.check.builds import (
    cudart_major,
    package_objects,
    parse_local,
    torch_lib_dir,
    torch_libs,
)
from compat.matrix.builtfor import built_for, releases_built_for
from compat.models import Code, Distribution, Finding, Severity, canonicalize_name
from compat.probe.distributions import EXTENSIONS

KERNELS = (
    "flashinfer-python",
    "flashinfer-jit-cache",
    "sgl-kernel",
    "sglang-kernel",
    "flash-attn",
    "flash-attn-3",
    "vllm",
    "deep-gemm",
    "deep-ep",
)
SPLIT = (("flashinfer-python", "flashinfer-cubin", "flashinfer-jit-cache"),)
_TORCH_SYMBOL_PREFIXES = ("_ZN3c10", "_ZNK3c10", "_ZN2at", "_ZNK2at", "_ZN5torch", "_ZNK5torch")
_TORCH_LIB_PREFIXES = ("libtorch", "libc10", "libshm")


def check(ctx: Context) -> list[Finding]:
    findings = _split(ctx)
    tb = ctx.torch
    torch_dist = ctx.env.dist("torch")
    if tb is None or tb.version is None:
        return findings
    tv = tb.version
    torch_mm = f"{tv.major}.{tv.minor}"
    for name in KERNELS:
        dist = ctx.env.dist(name)
        if dist is None or dist.version is None:
            continue
        label = f"{name} {dist.version}"
        tag = parse_local(dist.version)
        if tag.torch and tag.torch != torch_mm:
            findings.append(
                Finding(
                    Code.KERNEL_TORCH.value,
                    Severity.ERROR,
                    f"{label} is built for torch {tag.torch}, but torch {tv} is installed",
                    evidence=(f"{name} local tag +…torch{tag.torch}", f"installed: torch {tv}"),
                    fix=(
                        f"install the {name} build for torch {torch_mm}"
                        + (f" and CUDA {tb.cuda}" if tb.cuda else "")
                        + f": compat lock 'torch=={public(tv)}' shows the index to use",
                    ),
                    packages=("torch", name),
                )
            )
        pins = [
            r
            for r in requires_of(ctx, dist)
            if canonicalize_name(r.name) == "torch"
            and (r.marker is None or "extra" not in str(r.marker))
        ]
        bad = [r for r in pins if not satisfied(r, tv)]
        if bad and name != "vllm":  # vLLM's torch pin is framework-pin's to report
            findings.append(
                Finding(
                    Code.KERNEL_TORCH.value,
                    Severity.ERROR,
                    f"{label} requires {bad[0].name}{bad[0].specifier}, but torch {tv} is installed",
                    evidence=(f"{label} requires {bad[0]}", f"installed: torch {tv}"),
                    fix=(
                        pip_install(f"torch{bad[0].specifier}"),
                        f"or a {name} release built for torch {public(tv)}",
                    ),
                    packages=("torch", name),
                )
            )
        if ctx.deep and torch_dist is not None:
            findings.extend(_deep(ctx, dist, torch_dist, Code.KERNEL_TORCH))
    if ctx.deep and torch_dist is not None:
        for name in EXTENSIONS:  # torchvision & co link libtorch the same way
            dist = ctx.env.dist(name)
            if dist is not None and dist.version is not None:
                findings.extend(_deep(ctx, dist, torch_dist, Code.TORCH_COMPANION))
    findings.extend(_from_build_facts(ctx, {p for f in findings for p in f.packages}))
    return findings


def _from_build_facts(ctx: Context, reported: set[str]) -> list[Finding]:
    """Compiled packages that declare no exact torch pin, judged by their wheel's build facts:
    the torch symbols it imports against the ones the installed torch release exports."""
    tb = ctx.torch
    if tb is None or tb.version is None:
        return []
    tv = tb.version
    out: list[Finding] = []
    for name in ctx.matrix.build_projects():
        dist = ctx.env.dist(name)
        if dist is None or dist.version is None or name in reported or name == "torch":
            continue
        pins = [r for r in requires_of(ctx, dist) if canonicalize_name(r.name) == "torch"]
        if any(s.operator in ("==", "===") for r in pins for s in r.specifier):
            continue  # its own pin decides, and the checks above report it
        facts = ctx.matrix.build_facts(name, dist.version)
        if facts is None:
            continue
        exports = ctx.matrix.torch_exports()
        verdict = built_for(facts, tv, exports)
        if verdict.answer is not False:
            continue
        code = Code.TORCH_COMPANION if name in EXTENSIONS else Code.KERNEL_TORCH
        strong = verdict.method == "exports"
        label = f"{name} {dist.version}"
        built = verdict.built_for or "another torch"
        message = (f"{label} was built for {built}, but torch {tv} is installed"
                   + (": its import fails with 'undefined symbol'" if strong else
                      f" (from a {verdict.method} signal, not from its symbols)"))
        better = releases_built_for(ctx.matrix.builds(name), tv, exports)
        fix = (pip_install(f"{name}=={better[0]}") + f"   # built for torch {public(tv)}",) \
            if better else (f"no {name} release in compat's database is built for torch "
                            f"{public(tv)}: install the torch it was built for, or build {name} "
                            "from source against this torch",)
        method = {"exports": "the torch symbols its wheel imports against torch's exports",
                  "copin": "a framework release that pins it with another torch",
                  "local": "its local version tag"}.get(verdict.method, verdict.method)
        out.append(Finding(
            code.value, Severity.ERROR if strong else Severity.WARNING, message,
            evidence=(*verdict.evidence, f"decided by {method} (build facts: compat matrix show "
                      f"{name}=={dist.version})"),
            fix=fix, packages=("torch", name)))
        if ctx.deep:
            torch_dist = ctx.env.dist("torch")
            if torch_dist is not None and name not in KERNELS:
                out.extend(_deep(ctx, dist, torch_dist, code))
    return out


def _split(ctx: Context) -> list[Finding]:
    out = []
    for group in SPLIT:
        present = [(n, ctx.env.version_of(n)) for n in group]
        have = [(n, v) for n, v in present if v is not None]
        publics = {public(v) for _, v in have}
        if len(publics) > 1:
            lead = have[0]
            out.append(
                Finding(
                    Code.SPLIT_PACKAGE.value,
                    Severity.ERROR,
                    "parts of flashinfer are at different versions: "
                    + ", ".join(f"{n} {v}" for n, v in have),
                    evidence=tuple(f"{n} {v}" for n, v in have),
                    fix=(
                        pip_install(*[f"{n}=={public(lead[1])}" for n, _ in have[1:]])
                        + "  (jit-cache wheels come from https://flashinfer.ai/whl/cuXXX)",
                    ),
                    packages=tuple(n for n, _ in have),
                )
            )
    old, new = ctx.env.version_of("sgl-kernel"), ctx.env.version_of("sglang-kernel")
    if old is not None and new is not None:
        out.append(
            Finding(
                Code.SPLIT_PACKAGE.value,
                Severity.WARNING,
                f"both sgl-kernel {old} and its successor sglang-kernel {new} are installed; "
                "they ship the same module and the one imported depends on install order",
                evidence=(f"sgl-kernel {old}", f"sglang-kernel {new}"),
                fix=("pip uninstall -y sgl-kernel   # sglang >= 0.5.10 uses sglang-kernel",),
                packages=("sgl-kernel", "sglang-kernel"),
            )
        )
    return out


def _torch_exports(torch_dist: Distribution) -> Optional[frozenset[str]]:
    folder = torch_lib_dir(torch_dist)
    names: set[str] = set()
    try:
        libs = [n for n in os.listdir(folder) if n.startswith(_TORCH_LIB_PREFIXES) and ".so" in n]
    except OSError:
        return None
    for lib in libs:
        try:
            defined, _ = elf.dynamic_symbols(os.path.join(folder, lib))
        except (OSError, elf.ElfError):
            continue
        names.update(defined)
    return frozenset(names)


def _deep(ctx: Context, dist: Distribution, torch_dist: Distribution, code: Code) -> list[Finding]:
    libs = torch_libs(torch_dist)
    objects = package_objects(dist)
    if libs is None or not objects:
        return []
    tb = ctx.torch
    exports: Optional[frozenset[str]] = None
    out: list[Finding] = []
    for so in objects:
        try:
            needed = elf.needed(so)
            _, undefined = elf.dynamic_symbols(so)
        except (OSError, elf.ElfError):
            continue
        rel = os.path.relpath(so, dist.location)
        missing = [n for n in needed if n.startswith(_TORCH_LIB_PREFIXES) and n not in libs]
        if missing and code is Code.TORCH_COMPANION:
            continue  # the companion check already reports the libraries it needs
        if missing:
            out.append(
                Finding(
                    code.value,
                    Severity.ERROR,
                    f"{dist.key} {dist.version}: {rel} needs {', '.join(missing)}, which torch lacks",
                    evidence=(f"{so} NEEDED {', '.join(missing)}", f"{torch_lib_dir(torch_dist)}"),
                    fix=(f"install a {dist.key} build made for the installed torch",),
                    packages=("torch", dist.key),
                )
            )
            continue
        rt = cudart_major(needed)
        if rt and tb and tb.cuda_major and rt != tb.cuda_major:
            out.append(
                Finding(
                    code.value,
                    Severity.ERROR,
                    f"{dist.key} {dist.version}: {rel} links libcudart.so.{rt}, torch is built for "
                    f"CUDA {tb.cuda}",
                    evidence=(f"{so} NEEDED libcudart.so.{rt}",),
                    fix=(f"install the {dist.key} build for CUDA {tb.cuda}",),
                    packages=("torch", dist.key),
                )
            )
        wanted = sorted(s for s in undefined if s.startswith(_TORCH_SYMBOL_PREFIXES))
        if not wanted:
            continue
        if exports is None:
            exports = _torch_exports(torch_dist) or frozenset()
        absent = [s for s in wanted if s not in exports]
        if absent and exports:
            abi = (
                " (the C++ ABI differs: `__cxx11` names)"
                if any("cxx11" in s for s in absent)
                else ""
            )
            out.append(
                Finding(
                    code.value,
                    Severity.ERROR,
                    f"{dist.key} {dist.version}: {rel} imports {len(absent)} libtorch/c10 symbol(s) "
                    f"that torch {tb.version if tb else ''} does not export{abi}: import fails with "
                    "'undefined symbol'",
                    evidence=tuple(f"undefined: {s}" for s in absent[:3]),
                    fix=(
                        f"install the {dist.key} build made for torch "
                        f"{public(tb.version) if tb and tb.version else ''}",
                    ),
                    packages=("torch", dist.key),
                )
            )
    return out
