"""kernel-torch and split-package: compiled kernels built for another torch, CUDA or C++ ABI;
parts of one project at different versions.

From metadata and local tags (`+cu124torch2.5`) always; with `--deep`, from the compiled objects
the probe read: libtorch/c10 libraries they need that the installed torch lacks, and
libtorch/c10 symbols they import that torch does not export (the `undefined symbol` a launch
dies of).
"""

from __future__ import annotations

from packaging.version import Version

from compat.check.base import Context, pip_install, public, requires_of, satisfied
from compat.check.builds import cudart_major, parse_local
from compat.families import Family, families
from compat.matrix.builtfor import built_for, releases_built_for
from compat.models import Code, Distribution, Finding, Severity, TorchBuild, canonicalize_name

_TORCH_LIB_PREFIXES = ("libtorch", "libc10", "libshm")


def check(ctx: Context) -> list[Finding]:
    findings = _split(ctx)
    tb = ctx.torch
    if tb is None or tb.version is None:
        return findings
    tv = tb.version
    torch_mm = f"{tv.major}.{tv.minor}"
    fam = families()
    for d in ctx.env.distributions:
        if d.broken is not None or d.version is None or not fam.links_torch(d.key):
            continue
        name = d.key
        companion = name in fam.extensions  # torchvision & co: torch-companion's to report
        if not companion:
            findings.extend(_metadata(ctx, d, tb, torch_mm))
        findings.extend(_objects(d, tb, Code.TORCH_COMPANION if companion else Code.KERNEL_TORCH))
    findings.extend(_from_build_facts(ctx, tb, {p for f in findings for p in f.packages}))
    return findings


def _from_build_facts(ctx: Context, tb: TorchBuild, reported: set[str]) -> list[Finding]:
    """Compiled packages with no exact torch pin, judged by their wheel's build facts (the
    torch symbols it imports against those the installed torch release exports)."""
    assert tb.version is not None
    tv = tb.version
    fam = families()
    out: list[Finding] = []
    for name in ctx.matrix.build_projects():
        dist = ctx.env.dist(name)
        if dist is None or dist.version is None or name in reported:
            continue
        pins = [r for r in requires_of(ctx, dist) if canonicalize_name(r.name) == "torch"]
        if any(s.operator in ("==", "===") for r in pins for s in r.specifier):
            continue  # its own exact pin decides (framework-pin, torch-companion, above)
        facts = ctx.matrix.build_facts(name, dist.version)
        if facts is None:
            continue
        exports = ctx.matrix.torch_exports()
        verdict = built_for(facts, tv, exports)
        if verdict.answer is not False:
            continue
        strong = verdict.method == "exports"
        optional = fam.ops_optional(name)
        label = f"{name} {dist.version}"
        message = f"{label} was built for {verdict.built_for or 'another torch'}, but torch {tv} is installed"
        message += (
            (
                ": its compiled ops fail to load ('undefined symbol'); it skips them and imports "
                "without its custom kernels"
                if optional
                else ": its compiled libraries fail to load with 'undefined symbol'"
            )
            if strong
            else f" (a {verdict.method} signal, not its symbols)"
        )
        better = releases_built_for(ctx.matrix.builds(name), tv, exports)
        toward = _toward_target(ctx, name, dist.version, tv)
        fix = toward or (
            (pip_install(f"{name}=={better[0]}") + f"   # built for torch {public(tv)}",)
            if better
            else (
                f"no {name} release in compat's database is built for torch {public(tv)}: install "
                f"the torch it was built for, or build {name} from source against this torch",
            )
        )
        how = _METHODS.get(verdict.method, verdict.method)
        out.append(
            Finding(
                (Code.TORCH_COMPANION if name in fam.extensions else Code.KERNEL_TORCH).value,
                Severity.ERROR if strong and not optional else Severity.WARNING,
                message,
                evidence=(
                    *verdict.evidence,
                    f"decided by {how} (compat matrix show {name}=={facts.version})",
                ),
                fix=fix,
                packages=("torch", name),
            )
        )
    return out


def _toward_target(ctx: Context, name: str, have: Version, tv: Version) -> tuple[str, ...]:
    """When the report's tuple moves torch (the framework pins another), the kernel release of
    that tuple is judged against that torch: if it is built for it, the one composed install
    line is the fix (no kernel for the torch about to be replaced)."""
    from compat.check.target import install_target, target_of

    target = target_of(ctx)
    tt = target.get("torch")
    if tt is None or tt == public(tv):
        return ()
    kv = target.get(name) or public(have)
    facts = ctx.matrix.build_facts(name, kv)
    if facts is None or built_for(facts, tt, ctx.matrix.torch_exports()).answer is not True:
        return ()
    line = install_target(ctx, (name,) if kv != public(have) else ())
    if line is None:
        return ()
    return (
        f"{line}   # {target.why.get('torch', 'the tuple')}: torch {tt}; {name} {kv} is built for it",
    )


_METHODS = {
    "exports": "the torch symbols its wheel imports against those torch's libraries export",
    "copin": "a framework release that pins it together with another torch",
    "local": "its local version tag",
}


def _metadata(ctx: Context, dist: Distribution, tb: TorchBuild, torch_mm: str) -> list[Finding]:
    """The local tag's torch (`+cu128torch2.7`) and the torch pin of a kernel's metadata."""
    assert tb.version is not None and dist.version is not None
    tv, name = tb.version, dist.key
    label = f"{name} {dist.version}"
    out = []
    tag = parse_local(dist.version)
    if tag.torch and tag.torch != torch_mm:
        out.append(
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
    if families().family(name) is Family.FRAMEWORK:
        return out  # the framework's torch pin is framework-pin's to report
    pins = [
        r
        for r in requires_of(ctx, dist, "torch".__eq__)
        if r.marker is None or "extra" not in str(r.marker)
    ]
    bad = [r for r in pins if not satisfied(r, tv)]
    if bad:
        out.append(
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
    return out


def _split(ctx: Context) -> list[Finding]:
    """Parts of one project at different versions; a renamed project next to its successor."""
    out = []
    fam = families()
    for group, names in sorted(fam.groups().items()):
        have = [(n, v) for n in names if (v := ctx.env.version_of(n)) is not None]
        if len({public(v) for _, v in have}) <= 1:
            continue
        lead = have[0]
        out.append(
            Finding(
                Code.SPLIT_PACKAGE.value,
                Severity.ERROR,
                f"parts of {group} are at different versions: "
                + ", ".join(f"{n} {v}" for n, v in have),
                evidence=tuple(f"{n} {v}" for n, v in have),
                fix=(
                    pip_install(*[f"{n}=={public(lead[1])}" for n, _ in have[1:]])
                    + "  (parts not on PyPI come from the project's own index: "
                    f"`compat lock {lead[0]}=={public(lead[1])}` names it)",
                ),
                packages=tuple(n for n, _ in have),
            )
        )
    for p in fam.rows:
        if not p.successor:
            continue
        old, new = ctx.env.version_of(p.name), ctx.env.version_of(p.successor)
        if old is None or new is None:
            continue
        out.append(
            Finding(
                Code.SPLIT_PACKAGE.value,
                Severity.WARNING,
                f"both {p.name} {old} and its successor {p.successor} {new} are installed; "
                "they ship the same module and the one imported depends on install order",
                evidence=(f"{p.name} {old}", f"{p.successor} {new}"),
                fix=(f"pip uninstall -y {p.name}   # {p.successor} replaces it",),
                packages=(p.name, p.successor),
            )
        )
    return out


def _objects(dist: Distribution, tb: TorchBuild, code: Code) -> list[Finding]:
    """What --deep read of the compiled objects: missing torch libraries, another CUDA runtime,
    libtorch/c10 symbols the installed torch does not export."""
    out: list[Finding] = []
    # A package that skips ops it cannot load (packages.toml ops_optional) still imports.
    optional = families().ops_optional(dist.key)
    severity = Severity.WARNING if optional else Severity.ERROR
    fails = (
        "it skips them and imports without its custom kernels"
        if optional
        else "loading it fails with 'undefined symbol'"
    )
    for obj in dist.objects:
        if obj.error:
            continue
        where = f"{dist.location}/{obj.path}" if dist.location else obj.path
        missing = [
            n
            for n in obj.needed
            if n.startswith(_TORCH_LIB_PREFIXES) and tb.libs and n not in tb.libs
        ]
        if missing and code is Code.TORCH_COMPANION:
            continue  # the companion check already reports the libraries it needs
        if missing:
            out.append(
                Finding(
                    code.value,
                    severity,
                    f"{dist.key} {dist.version}: {obj.path} needs {', '.join(missing)}, "
                    "which torch lacks",
                    evidence=(
                        f"{where} NEEDED {', '.join(missing)}",
                        f"torch/lib has: {', '.join(tb.libs)}",
                    ),
                    fix=(f"install a {dist.key} build made for the installed torch",),
                    packages=("torch", dist.key),
                )
            )
            continue
        rt = cudart_major(obj.needed)
        if rt and tb.cuda_major and rt != tb.cuda_major:
            out.append(
                Finding(
                    code.value,
                    severity,
                    f"{dist.key} {dist.version}: {obj.path} links libcudart.so.{rt}, torch is "
                    f"built for CUDA {tb.cuda or tb.cuda_from_deps}",
                    evidence=(f"{where} NEEDED libcudart.so.{rt}",),
                    fix=(f"install the {dist.key} build for CUDA {tb.cuda or tb.cuda_from_deps}",),
                    packages=("torch", dist.key),
                )
            )
        if obj.unresolved_count:
            abi = (
                " (the C++ ABI differs: `__cxx11` names)"
                if any("cxx11" in s for s in obj.unresolved)
                else ""
            )
            out.append(
                Finding(
                    code.value,
                    severity,
                    f"{dist.key} {dist.version}: {obj.path} imports {obj.unresolved_count} "
                    f"libtorch/c10 symbol(s) that torch {tb.version} does not export{abi}: "
                    + fails,
                    evidence=tuple(f"undefined: {s}" for s in obj.unresolved[:3]),
                    fix=(
                        f"install the {dist.key} build made for torch "
                        f"{public(tb.version) if tb.version else ''}",
                    ),
                    packages=("torch", dist.key),
                )
            )
    return out
