"""env-var: environment variables that hide GPUs, shadow the stack's libraries or break builds."""

from __future__ import annotations

import re

from compat.check.base import Context
from compat.matrix.schema import parse_cc
from compat.models import Code, Finding, Severity, Unknown, small_int

_CUDA_HOME_VERSION = re.compile(r"cuda-([0-9]+)\.([0-9]+)")


def check(ctx: Context) -> list[Finding]:
    env = ctx.env.env
    out: list[Finding] = []
    out.extend(_visible_devices(ctx, env.get("CUDA_VISIBLE_DEVICES")))
    tb = ctx.torch
    home = env.get("CUDA_HOME") or env.get("CUDA_PATH")
    if home and tb is not None and tb.cuda_major:
        m = _CUDA_HOME_VERSION.search(home)
        if m and int(m.group(1)) != tb.cuda_major:
            out.append(
                Finding(
                    Code.ENV_VAR.value,
                    Severity.WARNING,
                    f"CUDA_HOME points to CUDA {m.group(1)}.{m.group(2)}, torch is built for CUDA {tb.cuda}: "
                    "kernels compiled at run time (flashinfer JIT, DeepGEMM, torch extensions) will "
                    "target the wrong toolkit",
                    evidence=(f"CUDA_HOME={home}",),
                    fix=(
                        f"export CUDA_HOME=/usr/local/cuda-{tb.cuda}   # a toolkit of torch's major",
                    ),
                )
            )
    arch = env.get("TORCH_CUDA_ARCH_LIST")
    gpus = ctx.env.gpus
    if arch and not isinstance(gpus, Unknown):
        listed = []
        for part in re.split(r"[ ;,]+", arch.strip()):
            try:
                listed.append((parse_cc(part.replace("+PTX", "")), part.endswith("+PTX")))
            except ValueError:
                continue
        for g in gpus:
            cc = g.compute_capability
            if cc is None or not listed:
                continue
            ok = any((a[0] == cc[0] and a[1] <= cc[1]) or (ptx and a <= cc) for a, ptx in listed)
            if not ok:
                out.append(
                    Finding(
                        Code.ENV_VAR.value,
                        Severity.WARNING,
                        f"TORCH_CUDA_ARCH_LIST={arch} leaves out GPU {g.index} (sm_{cc[0]}{cc[1]}): "
                        "extensions built at run time will have no kernel for it",
                        evidence=(f"TORCH_CUDA_ARCH_LIST={arch}", f"GPU {g.index}: {g.name}"),
                        fix=(f"export TORCH_CUDA_ARCH_LIST='{cc[0]}.{cc[1]}'",),
                    )
                )
    if env.get("CUDA_LAUNCH_BLOCKING", "") not in ("", "0"):
        out.append(
            Finding(
                Code.ENV_VAR.value,
                Severity.WARNING,
                "CUDA_LAUNCH_BLOCKING is set: every kernel launch synchronises (a "
                "debugging switch that makes serving many times slower)",
                evidence=(f"CUDA_LAUNCH_BLOCKING={env['CUDA_LAUNCH_BLOCKING']}",),
                fix=("unset CUDA_LAUNCH_BLOCKING",),
            )
        )
    preload = env.get("LD_PRELOAD", "")
    if re.search(r"lib(cuda|cudart|nccl|cublas)[^/]*\.so", preload):
        out.append(
            Finding(
                Code.ENV_VAR.value,
                Severity.WARNING,
                "LD_PRELOAD forces a CUDA/NCCL library ahead of the ones torch ships",
                evidence=(f"LD_PRELOAD={preload}",),
                fix=("unset LD_PRELOAD",),
            )
        )
    return out


def _visible_devices(ctx: Context, value: str | None) -> list[Finding]:
    if value is None:
        return []
    v = value.strip()
    if v in ("", "-1", "none", "NoDevFiles"):
        return [
            Finding(
                Code.ENV_VAR.value,
                Severity.ERROR,
                f"CUDA_VISIBLE_DEVICES={value!r} hides every GPU: CUDA sees none",
                evidence=(f"CUDA_VISIBLE_DEVICES={value!r}",),
                fix=(
                    "unset CUDA_VISIBLE_DEVICES, or list the GPUs: export CUDA_VISIBLE_DEVICES=0,1",
                ),
            )
        ]
    gpus = ctx.env.gpus
    if isinstance(gpus, Unknown):
        return []
    items = [x.strip() for x in v.split(",") if x.strip()]
    uuids = {g.uuid for g in gpus if g.uuid}
    bad = []
    seen: set[str] = set()
    for item in items:
        if item in seen:
            bad.append(f"{item} (listed twice)")
        seen.add(item)
        n = small_int(item)
        if n is not None:
            if n < 0 or n >= len(gpus):
                bad.append(f"{item} (only {len(gpus)} GPU(s): 0..{len(gpus) - 1})")
        elif item.startswith("GPU-"):
            if uuids and not any(u.startswith(item) for u in uuids):
                bad.append(f"{item} (no GPU has this UUID)")
        elif not item.startswith("MIG-"):
            bad.append(f"{item} (not an index or UUID)")
    if not bad:
        return []
    # CUDA stops at the first invalid entry: the devices after it are silently dropped.
    return [
        Finding(
            Code.ENV_VAR.value,
            Severity.ERROR,
            f"CUDA_VISIBLE_DEVICES={value} names devices that do not exist: {'; '.join(bad)}",
            evidence=(f"CUDA_VISIBLE_DEVICES={value}", f"{len(gpus)} GPU(s) visible to the driver"),
            fix=(f"export CUDA_VISIBLE_DEVICES={','.join(str(g.index) for g in gpus)}",),
        )
    ]
