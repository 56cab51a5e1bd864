"""The live machine read into an `Environment` (`probe_environment`), and what that read
(`watched`)."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Optional, Union

import msgspec
import msgspec.structs

from compat.families import families
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


# A JIT cache's top level is read entry by entry; past this many entries a check's inputs are
# too many to watch for a replay (compat.answers) and the check simply runs in full each time.
MAX_WATCHED_CACHE_ENTRIES = 20_000


def watched(
    env: Environment, environ: Optional[Mapping[str, str]] = None, walked: bool = False
) -> Optional[list[tuple[str, bool]]]:
    """Every file and folder a live probe of this interpreter read to make `env`, as (path,
    follow links): what a kept answer is replayed against. A superset: every dist-info folder
    on the path with its METADATA and direct_url.json, not only those kept; with `walked` (the
    caches' sizes were counted), every entry under each cache; for a `--deep` probe, every
    RECORD, every compiled object one lists, and every file of torch/lib (its exports and the
    fatbin headers' arch list). None when there are too many to watch, or a cache walk stopped
    at its bounds (its figures then depend on time). The host is not here: compat.answers reads
    it again itself."""
    environ = os.environ if environ is None else environ
    out: list[tuple[str, bool]] = []
    for entry in sys.path:
        folder = entry or "."
        out.append((folder, True))
        # every dist-info name, a folder or not (yet): a link whose target appears later
        # changes nothing in the folder that holds it
        for info in _top_level(folder):
            if info.endswith((".dist-info", ".egg-info")):
                meta = "METADATA" if info.endswith(".dist-info") else "PKG-INFO"
                out += [(info, False), (info, True), (os.path.join(info, meta), True)]
                out.append((os.path.join(info, "direct_url.json"), True))
                if env.deep:
                    out.append((os.path.join(info, "RECORD"), True))
    for dist in env.distributions:
        if dist.key == "torch":
            out.append((os.path.join(dist.location, "torch", "version.py"), True))
            out.append((os.path.join(dist.location, "torch", "lib"), True))
            if env.deep:
                lib = os.path.join(dist.location, "torch", "lib")
                out += [(path, True) for path in _top_level(lib)]
        if env.deep:
            out += [(os.path.join(dist.location, o.path), True) for o in dist.objects]
        ext = families().extensions.get(dist.key)
        if ext:
            out.append((os.path.join(dist.location, ext), True))
    if walked and any(c.truncated for c in env.caches):
        return None
    measured = {c.path: c for c in env.caches}
    # The caches are listed again here, after the run: whatever changed since the probe read
    # them is newer than the run, which compat.answers' racy test refuses to keep.
    for _kind, path in caches.cache_locations(environ):
        seen = measured.get(path)
        if seen is not None and seen.exists and not os.path.isdir(path):
            return None  # removed while the run read it: its answer is already not true
        out.append((path, True))
        found = _top_level(path) if not walked else (e.path for e in caches.entries_under(path))
        entries = list(itertools.islice(found, MAX_WATCHED_CACHE_ENTRIES + 1))
        if len(entries) > MAX_WATCHED_CACHE_ENTRIES:
            return None
        for item in entries:  # each entry's own mtime (the oldest), kind and size
            out += [(item, False), (item, True)]
    return out


def _top_level(path: str) -> Iterator[str]:
    try:
        with os.scandir(path) as it:
            for e in it:
                yield e.path
    except OSError:
        return
