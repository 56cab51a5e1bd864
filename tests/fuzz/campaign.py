"""The fuzz campaign: every surface's cases through the harness, totals, failing inputs saved.

python -m tests.fuzz.campaign --seed 0 --out out/fuzz          # the full campaign
python -m tests.fuzz.campaign --share 40 --surface snapshot    # 1 in 40 cases, one surface
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from tests.fuzz import generators as gen
from tests.fuzz import targets
from tests.fuzz.harness import Result, Tally, run_cli, run_inproc

# Cases whose name says they wait on something or grind through a lot: left out of the
# default-run share (they are what the full campaign is for).
SLOW_WORDS = (
    "fifo",
    "hang",
    "4000-lines",
    "2mb",
    "20mb",
    "flood",
    "alias-bomb",
    "sparse",
    "dev-zero",
    "many-rows",
    "many-lines",
    "manydev",
    "slow",
    "20000",
    "100k",
    "huge list",
    "keeps-pipe-open",
    "forks-and-exits",
    "deep-chain",
    "export-doubling",
)


def is_slow(case: gen.Case) -> bool:
    if case.slow:
        return True
    low = case.name.lower()
    return any(w in low for w in SLOW_WORDS)


@dataclass
class Setup:
    """What the generators need that is built once: a real ELF object, the fake NVML library,
    the answer of the untouched cache."""

    work: Path
    elf_seed: Optional[bytes]
    nvml_lib: Optional[str]
    expected_cache: str

    def surfaces(self) -> dict[str, gen.GeneratorFn]:
        return gen.surfaces(self.elf_seed, self.nvml_lib, self.expected_cache)


def setup(work: Path) -> Setup:
    targets.warm()
    elf_seed = gen.build_elf(work / "elf")
    nvml_lib: Optional[str] = None
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc:
        out = work / "nvml" / "libnvidia-ml.so.1"
        out.parent.mkdir(parents=True, exist_ok=True)
        src = gen.ASSETS / "fuzz" / "fake_nvml_fuzz.c"
        subprocess.run([cc, "-shared", "-fPIC", "-o", str(out), str(src)], check=True)
        nvml_lib = str(out)
    return Setup(work, elf_seed, nvml_lib, targets.cache_baseline())


def _keep(seed: int, case: gen.Case, share: int) -> bool:
    if share <= 1:
        return True
    h = hashlib.sha256(f"{seed}:{case.surface}:{case.name}".encode("utf-8", "surrogatepass"))
    return int.from_bytes(h.digest()[:4], "big") % share == 0


def select(
    fn: gen.GeneratorFn, surface: str, seed: int, share: int = 1, fast_only: bool = False
) -> Iterator[gen.Case]:
    rng = random.Random(f"{seed}:{surface}")
    for case in fn(rng):
        if fast_only and is_slow(case):
            continue
        if _keep(seed, case, share):
            yield case


def _cli_ok(case: gen.Case) -> bool:
    """A command line the OS can start: no NUL, no argument over its 128 KiB limit."""
    if case.cli is None:
        return False
    return all(
        "\0" not in a and len(a.encode("utf-8", "surrogateescape")) < 120_000 for a in case.cli
    )


@contextlib.contextmanager
def workdir(root: Path) -> Iterator[Path]:
    wd = Path(tempfile.mkdtemp(prefix="case-", dir=root))
    try:
        yield wd
    finally:
        _remove(wd)


def _remove(path: Path) -> None:
    def onerror(func: Callable[..., Any], p: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(p, 0o700)
            func(p)

    shutil.rmtree(path, onerror=onerror)


def run_case(case: gen.Case, wd: Path, via: str) -> Result:
    """One case, in-process ("inproc") or through the CLI ("cli"), laid out in `wd`."""
    gen.materialize(case, wd)
    env = gen.substitute(case.env, wd)
    if via == "inproc":
        assert case.target is not None
        fn = getattr(targets, case.target)
        args = gen.substitute(case.args, wd)
        kwargs = gen.substitute(case.kwargs, wd)
        return run_inproc(lambda: fn(*args, **kwargs), secrets=case.secrets, env=env, cwd=str(wd))
    assert case.cli is not None
    full_env = dict(os.environ)
    for k, v in env.items():
        if v is None:
            full_env.pop(k, None)
        else:
            full_env[k] = v
    return run_cli(
        gen.substitute(case.cli, wd),
        env=full_env,
        cwd=wd,
        stdout_path=case.stdout_path,
        secrets=case.secrets,
        allow_exit=case.allow_exit,
    )


def save_failure(out: Path, case: gen.Case, via: str, res: Result, wd: Path) -> None:
    """The failing input, laid out as it ran (regular files under 1 MiB), and how to rerun it."""
    slug = re.sub(r"[^A-Za-z0-9._=-]+", "_", case.name)[:80]
    digest = hashlib.sha256(case.name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    dest = out / case.surface / f"{slug}-{digest}-{via}"
    dest.mkdir(parents=True, exist_ok=True)
    for p in sorted(wd.rglob("*")):
        rel = p.relative_to(wd)
        with contextlib.suppress(OSError):
            st = os.lstat(p)
            if (
                stat.S_ISREG(st.st_mode)
                and st.st_size <= (1 << 20)
                and st.st_blocks * 512 >= min(st.st_size, 4096)
            ):
                (dest / "files" / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(p, dest / "files" / rel)
    doc = {
        "surface": case.surface,
        "name": case.name,
        "via": via,
        "outcome": res.outcome.value,
        "detail": res.detail,
        "rc": res.rc,
        "elapsed_s": round(res.elapsed_s, 3),
        "peak_mib": round(res.peak_mib, 1),
        "target": case.target,
        "args": _short(case.args),
        "kwargs": _short(case.kwargs),
        "cli": _short(case.cli),
        "env": _short(case.env),
        "files": {k: _short(v) for k, v in case.files.items()},
        "example": _short(case.example),
        "stderr": res.stderr[-2000:],
        "traceback": res.traceback[-6000:],
        "note": "paths under @WD@ refer to files/ in this folder",
    }
    (dest / "case.json").write_text(json.dumps(doc, indent=1, default=repr), encoding="utf-8")


def _short(value: Any, limit: int = 600) -> Any:
    if isinstance(value, (bytes, str)):
        text = value if isinstance(value, str) else value.decode("utf-8", "backslashreplace")
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"
    if isinstance(value, (list, tuple)):
        return [_short(v, limit) for v in list(value)[:50]]
    if isinstance(value, dict):
        return {str(k): _short(v, limit) for k, v in list(value.items())[:80]}
    if value is None or isinstance(value, (bool, int, float)):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
            return (
                f"<int of {len(str(abs(value)))} digits>" if abs(value) < 10**4000 else "<huge int>"
            )
        return value
    return repr(value)[:limit]


def run_campaign(
    seed: int = 0,
    share: int = 1,
    cli_every: int = 16,
    surfaces: Optional[Sequence[str]] = None,
    out: Optional[Path] = None,
    fast_only: bool = False,
    keep_per_class: int = 3,
    log: Callable[[str], None] = lambda _m: None,
) -> Tally:
    """Run the cases of `surfaces` (default all): every in-process case, and every
    `cli_every`-th case (every case that has no in-process form) through the CLI."""
    tally = Tally()
    root = Path(tempfile.mkdtemp(prefix="compat-fuzz-"))
    saved: dict[str, int] = {}
    started = time.monotonic()
    try:
        st = setup(root / "setup")
        table = st.surfaces()
        names = list(surfaces) if surfaces else list(table)
        for surface in names:
            n = 0
            t0 = time.monotonic()
            for case in select(table[surface], surface, seed, share, fast_only):
                vias = []
                if case.target is not None:
                    vias.append("inproc")
                if _cli_ok(case) and (case.target is None or n % cli_every == 0):
                    vias.append("cli")
                n += 1
                for via in vias:
                    with workdir(root) as wd:
                        res = run_case(case, wd, via)
                        tally.add(f"{surface}/{via}", case.name, res, case.example)
                        if not res.passed and out is not None:
                            key = f"{surface}/{via} | {res.signature}"
                            if saved.get(key, 0) < keep_per_class:
                                saved[key] = saved.get(key, 0) + 1
                                save_failure(out, case, via, res, wd)
                        if not res.passed:
                            log(f"  {surface}/{via} {case.name[:70]!r}: {res.short()[:240]}")
            log(f"{surface}: {n} cases in {time.monotonic() - t0:.0f} s")
    finally:
        _remove(root)
    tally_elapsed = time.monotonic() - started
    if out is not None:
        write_report(out, tally, seed, share, tally_elapsed)
    return tally


def summary_lines(tally: Tally) -> list[str]:
    outcomes = ["ok", "clean-error", "crash", "hang", "memory", "leak", "wrong"]
    lines = [f"{'surface':<22}" + "".join(f"{o:>12}" for o in outcomes)]
    totals = dict.fromkeys(outcomes, 0)
    for surface in sorted(tally.counts):
        per = tally.counts[surface]
        lines.append(f"{surface:<22}" + "".join(f"{per.get(o, 0):>12}" for o in outcomes))
        for o in outcomes:
            totals[o] += per.get(o, 0)
    lines.append(f"{'total':<22}" + "".join(f"{totals[o]:>12}" for o in outcomes))
    return lines


def write_report(out: Path, tally: Tally, seed: int, share: int, elapsed: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    classes = sorted(tally.classes.values(), key=lambda c: (-c["count"], c["surface"], c["detail"]))
    doc = {
        "seed": seed,
        "share": share,
        "inputs": tally.inputs,
        "elapsed_s": round(elapsed, 1),
        "peak_mib": round(tally.peak_mib, 1),
        "peak_case": tally.peak_case,
        "slowest_passing_s": round(tally.slowest_s, 2),
        "slowest_passing_case": tally.slowest_case,
        "counts": tally.counts,
        "classes": [{k: _short(v, 4000) for k, v in c.items()} for c in classes],
    }
    (out / "summary.json").write_text(json.dumps(doc, indent=1, default=repr), encoding="utf-8")
    lines = [f"# compat fuzz campaign (seed {seed}, share 1/{share})", ""]
    lines.append(
        f"{tally.inputs} runs in {elapsed:.0f} s; largest peak {tally.peak_mib:.0f} MiB "
        f"({tally.peak_case}); slowest passing run {tally.slowest_s:.1f} s ({tally.slowest_case})"
    )
    lines += ["", "```", *summary_lines(tally), "```", "", "## Classes", ""]
    for c in classes:
        lines.append(f"- **{c['count']}** {c['surface']} {c['outcome']}: {c['detail']}")
        lines.append(
            f"  - e.g. `{c['example'][:160]}`: {json.dumps(_short(c.get('input'), 300), default=repr)}"
        )
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--share", type=int, default=1, help="run 1 in N cases (default: all)")
    ap.add_argument("--cli-every", type=int, default=16)
    ap.add_argument("--surface", action="append", help="only these surfaces (repeatable)")
    ap.add_argument("--out", type=Path, default=Path("out/fuzz"))
    ap.add_argument("--fast-only", action="store_true", help="skip the slow cases")
    ap.add_argument("-q", "--quiet", action="store_true")
    ns = ap.parse_args(argv)
    started = time.monotonic()

    def say(msg: str) -> None:
        if not ns.quiet:
            print(msg, file=sys.stderr, flush=True)

    tally = run_campaign(ns.seed, ns.share, ns.cli_every, ns.surface, ns.out, ns.fast_only, log=say)
    print("\n".join(summary_lines(tally)))
    print(
        f"{tally.inputs} runs, {time.monotonic() - started:.0f} s, peak {tally.peak_mib:.0f} MiB, {len(tally.classes)} failing classes; report in {ns.out}/report.md"
    )
    return 1 if tally.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
