"""Small reproducers from a campaign's failing inputs: each class's input, minimized while it still
fails the same way, written to tests/assets/fuzz/ with a manifest that test_reproducers.py runs.

    python -m tests.fuzz.reproducers out/fuzz tests/assets/fuzz
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional

from tests.fuzz import targets
from tests.fuzz.harness import Result, run_inproc

MAX_BYTES = 2048  # reproducers bigger than this stay in the campaign's output only
ATTEMPTS = 300

# How each surface's main input file is run: (file under files/, target, extra args, kind).
RUNNERS: dict[str, tuple[str, str, str]] = {
    "snapshot": ("snap.json", "snapshot", "json"),
    "freeze": ("freeze.txt", "freeze", "lines"),
    "lint": ("requirements.txt", "lint", "lines"),
    "launch-file": ("run.sh", "launch-file", "lines"),
    "model": ("model/config.json", "model", "json"),
}


def run_input(kind: str, path: Path) -> Result:
    """The reproducer at `path` through the entry point of its surface."""
    if kind == "snapshot":
        return run_inproc(
            targets.snapshot_everything,
            str(path),
            str(targets.ASSETS / "envs" / "h100-torch2.11-cu130.json"),
        )
    if kind == "freeze":
        return run_inproc(targets.freeze_everything, str(path))
    if kind == "lint":
        return run_inproc(targets.lint_paths, [str(path)])
    if kind == "launch-file":
        return run_inproc(targets.launch_file, str(path), "vllm")
    if kind == "model":
        folder = Path(tempfile.mkdtemp(prefix="repro-model-"))
        (folder / "config.json").write_bytes(path.read_bytes())
        # The weight index of the model most config cases start from (the size it declares).
        index = (
            targets.ASSETS
            / "models/hub/models--meta-llama--Llama-3.1-8B-Instruct/snapshots"
            / "0123456789abcdef0123456789abcdef01234567/model.safetensors.index.json"
        )
        (folder / index.name).write_bytes(index.read_bytes())
        argv = ("vllm", "serve", str(folder), "--tensor-parallel-size", "2")
        snap = str(targets.ASSETS / "envs" / "h100-torch2.11-cu130.json")
        return run_inproc(lambda: targets.check_request(snap, launch_argv=argv))
    raise ValueError(kind)


def _same(res: Result, signature: str) -> bool:
    return not res.passed and res.signature == signature


def minimize_json(doc: Any, still: Callable[[Any], bool], attempts: int = ATTEMPTS) -> Any:
    """Drop object keys and list items (greedily, outermost first) while `still` holds."""
    budget = [attempts]

    def paths(v: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        if isinstance(v, dict):
            for k in v:
                out.append((*prefix, k))
            for k, x in v.items():
                out.extend(paths(x, (*prefix, k)))
        elif isinstance(v, list):
            for i in reversed(range(len(v))):
                out.append((*prefix, i))
            for i, x in enumerate(v):
                out.extend(paths(x, (*prefix, i)))
        return out

    changed = True
    while changed and budget[0] > 0:
        changed = False
        for p in paths(doc):
            if budget[0] <= 0:
                break
            cand = json.loads(json.dumps(doc))
            cur = cand
            try:
                for k in p[:-1]:
                    cur = cur[k]
                del cur[p[-1]]
            except (KeyError, IndexError, TypeError):
                continue
            budget[0] -= 1
            if still(cand):
                doc = cand
                changed = True
                break
    return doc


def minimize_lines(text: str, still: Callable[[str], bool], attempts: int = ATTEMPTS) -> str:
    """Drop chunks of lines, halving the chunk size, while `still` holds (ddmin-like)."""
    lines = text.splitlines(keepends=True)
    size = max(1, len(lines) // 2)
    while size >= 1 and attempts > 0:
        i = 0
        while i < len(lines) and attempts > 0:
            cand = lines[:i] + lines[i + size :]
            attempts -= 1
            if cand and still("".join(cand)):
                lines = cand
            else:
                i += size
        size //= 2
    return "".join(lines)


def _json_bytes(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=True, indent=1).encode("ascii")


def _text_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _still(
    kind: str, probe: Path, signature: str, encode: Callable[[Any], bytes], value: Any
) -> bool:
    """Whether `value`, written to `probe`, still fails with `signature`."""
    probe.write_bytes(encode(value))
    return _same(run_input(kind, probe), signature)


def build(out: Path, dest: Path, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Minimized reproducers of the classes saved under `out` (a campaign's --out folder)."""
    manifest: list[dict[str, Any]] = []
    seen: set[str] = set()
    for case_json in sorted(out.glob("*/*/case.json")):
        case = json.loads(case_json.read_text(encoding="utf-8"))
        surface, via = case["surface"], case["via"]
        if via != "inproc" or surface not in RUNNERS or case["outcome"] == "hang":
            continue
        rel, kind, shape = RUNNERS[surface]
        src = case_json.parent / "files" / rel
        if not src.is_file() or src.stat().st_size > (4 << 20):
            continue
        signature = f"{case['outcome']}: {case['detail']}"
        key = f"{surface} | {signature}"
        if key in seen:
            continue
        work = Path(tempfile.mkdtemp(prefix="repro-"))
        probe = work / Path(rel).name
        raw = src.read_bytes()
        probe.write_bytes(raw)
        if not _same(run_input(kind, probe), signature):
            log(f"skip (does not fail alone): {key}")
            continue
        seen.add(key)
        if shape == "json":
            try:
                doc = json.loads(raw.decode("utf-8"))
            except (ValueError, RecursionError):
                doc = None
            still_json = functools.partial(_still, kind, probe, signature, _json_bytes)
            small = _json_bytes(minimize_json(doc, still_json)) if doc is not None else raw
        else:
            still_text = functools.partial(_still, kind, probe, signature, _text_bytes)
            small = _text_bytes(minimize_lines(raw.decode("utf-8", "surrogateescape"), still_text))
        probe.write_bytes(small)
        if not _same(run_input(kind, probe), signature) or len(small) > MAX_BYTES:
            log(f"too large or unstable after minimizing ({len(small)} bytes): {key}")
            continue
        slug = re.sub(r"[^a-z0-9]+", "-", f"{surface} {case['outcome']} {case['detail']}".lower())
        name = f"{slug.strip('-')[:80]}{Path(rel).suffix}"
        (dest / name).write_bytes(small)
        manifest.append(
            {"file": name, "surface": surface, "class": signature, "case": case["name"]}
        )
        log(f"wrote {name} ({len(small)} bytes)")
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("out", type=Path, help="a campaign's --out folder")
    ap.add_argument("dest", type=Path, help="where the reproducers go")
    ns = ap.parse_args(argv)
    targets.warm()
    ns.dest.mkdir(parents=True, exist_ok=True)
    build(ns.out, ns.dest, lambda m: print(m, file=sys.stderr))
    return 0


if __name__ == "__main__":
    sys.exit(main())
