"""Probes: read the live machine into an `Environment`. I/O lives here and nowhere else."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Optional, Union

import msgspec
import msgspec.structs

from compat.models import GPU, Driver, Environment, HostContext, Unknown
from compat.probe import caches, distributions, driver, envvars, python, torch


def probe_environment(
    python_exe: Optional[str] = None,
    everything: bool = False,
    environ: Optional[Mapping[str, str]] = None,
    root: str = "/",
    host: bool = True,
    deep: bool = False,
    walk_caches: bool = True,
    tags: bool = True,
) -> Environment:
    """The live environment: interpreter, distributions, torch build, driver, GPUs, env, caches.
    Without `tags`, the interpreter's wheel tags are left empty (no check reads them)."""
    environ = os.environ if environ is None else environ
    interp = python.resolve(python_exe, tags)
    dists = distributions.with_extension_needs(
        distributions.scan(interp.path, everything=everything)
    )
    torch_build = torch.probe_torch(distributions.find(dists, "torch"))
    if deep:
        from compat.probe import deep as deep_probe
        from compat.probe.deepcache import default_cache

        cache = default_cache()
        dists = deep_probe.with_objects(dists, cache)
        if not isinstance(torch_build, Unknown) and not torch_build.is_cpu:
            got = torch.read_arch_list(
                distributions.find(dists, "torch"), interp.info.executable, cache
            )
            torch_build = msgspec.structs.replace(
                torch_build, arch_list=got.archs, arch_source=got.source
            )
    drv: Union[Driver, Unknown]
    gpus: Union[tuple[GPU, ...], Unknown]
    ctx: Union[HostContext, Unknown]
    if host:
        hp = driver.probe_host(root)
        drv, gpus, ctx = hp.driver, hp.gpus, hp.context
    else:
        drv = gpus = ctx = Unknown("host probing disabled (--no-host)")
    return Environment(
        python=interp.info,
        distributions=dists,
        torch=torch_build,
        driver=drv,
        gpus=gpus,
        context=ctx,
        env=envvars.probe_env(environ),
        caches=caches.probe_caches(environ, walk=walk_caches),
        source="live",
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        deep=deep,
    )
