"""compat's memory estimate against real startup logs (tests/assets/memory-logs/): prints the table.

python scripts/memory_calibration.py            # markdown table, as in docs/fit.md
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from packaging.version import Version  # noqa: E402

from compat.launch import parse_launch  # noqa: E402
from compat.matrix.load import Matrix, read_toml  # noqa: E402
from compat.matrix.schema import parse_cc  # noqa: E402
from compat.memory import GIB, Estimate, estimate  # noqa: E402
from compat.model import ModelFacts  # noqa: E402
from compat.models import GPU  # noqa: E402
from compat.probe.model import read_model  # noqa: E402

LOGS = ROOT / "tests" / "assets" / "memory-logs"
HUB = ROOT / "tests" / "assets" / "models" / "hub"

# Which quantity of the estimate each [real] key is compared with, and how far it may be off:
# an absolute GiB margin from memory.toml ("kv" or "capture"), or a relative one.
FIELDS: dict[str, tuple[str, str]] = {
    "budget_gib": ("budget (GiB)", "rel:0.06"),
    "weights_gib": ("weights per GPU (GiB)", "rel:0.03"),
    "activation_gib": ("activation peak (GiB)", "abs:0.3"),
    "non_torch_gib": ("non-torch (GiB)", "abs:0.3"),
    "start_free_gib": ("free at start (GiB)", "capture"),
    "after_load_gib": ("free after loading (GiB)", "capture"),
    "kv_gib": ("KV cache (GiB)", "kv"),
    "kv_tokens": ("KV tokens (real KV GiB / compat's bytes per token)", "rel:0.02"),
    "kv_max_len_gib": ("KV for max length (GiB)", "rel:0.01"),
    "pool_end_gib": ("free after the pool (GiB)", "capture"),
    "free_at_capture_gib": ("free at capture (GiB)", "capture"),
    "used_gib": ("used per nvidia-smi (GiB)", "capture"),
}


@dataclass
class Row:
    name: str
    url: str
    framework: str
    setup: str
    cells: list[tuple[str, float, Optional[float], bool, bool]] = field(default_factory=list)
    # (label, real, compat's, within the margin, known miss)
    reason: str = ""


def predicted(key: str, est: Estimate, real: dict[str, Any]) -> Optional[float]:
    if key == "budget_gib":
        return est.budget_gib
    if key == "weights_gib":
        return est.weights.gib if est.weights else None
    if key == "activation_gib":
        return next((t.gib for t in est.inside if t.label.startswith("activation")), None)
    if key == "non_torch_gib":
        return next((t.gib for t in est.inside if t.label.startswith("non-torch")), None)
    if key == "start_free_gib":
        return est.start_free_gib
    if key == "after_load_gib":
        return est.start_free_gib - est.weights.gib if est.weights else None
    if key == "kv_gib":
        return est.kv_gib
    if key == "kv_tokens":
        # Checks the bytes per token alone: the KV GiB is compared on its own line.
        if not est.kv_token_bytes or "kv_gib" not in real:
            return None
        return real["kv_gib"] * GIB / est.kv_token_bytes
    if key == "kv_max_len_gib":
        return est.kv_max_len_gib
    if key == "pool_end_gib":
        return est.free_at_capture - sum(
            t.gib for t in est.free_terms if "before capture" in t.label
        )
    if key == "free_at_capture_gib":
        return est.free_at_capture
    if key == "used_gib":
        return est.total_gib - est.free_at_capture
    raise KeyError(key)


def margin(rule: str, framework: str, matrix: Matrix, real: float) -> float:
    if rule.startswith("rel:"):
        return abs(real) * float(rule[4:])
    if rule.startswith("abs:"):
        return float(rule[4:])
    fig = matrix.memory.figure(f"{rule}_error", framework)
    assert fig is not None, rule
    return fig.value


def run_one(path: Path, matrix: Matrix) -> tuple[Row, Estimate, Optional[ModelFacts]]:
    d: dict[str, Any] = read_toml(path)
    fw = d["framework"]
    version = Version(d["version"])
    launch = parse_launch(d["launch"], version)
    gpu = GPU(0, d["gpu"], parse_cc(d["gpu_cc"]), d["gpu_memory_mib"])
    facts = read_model(d["model"], {"HF_HUB_CACHE": str(HUB)})
    assert isinstance(facts, ModelFacts), (path, facts)
    est = estimate(
        fw, gpu, launch, facts, matrix.memory, d.get("torch_cuda"), {}, _fraction(launch)
    )
    miss = d.get("known_miss", {})
    row = Row(
        path.stem,
        d["url"],
        fw,
        f"{d['model']} on {d['gpu']}, {fw} {version}",
        reason=miss.get("reason", ""),
    )
    for key, real in d["real"].items():
        label, rule = FIELDS[key]
        got = predicted(key, est, d["real"])
        ok = got is not None and abs(got - real) <= margin(rule, fw, matrix, float(real)) + 1e-9
        row.cells.append((label, float(real), got, ok, key in miss.get("fields", [])))
    return row, est, facts


def _fraction(launch: Any) -> Optional[tuple[float, str]]:
    knob = "mem_fraction_static" if launch.framework == "sglang" else "gpu_memory_utilization"
    v = launch.settings.get(knob)
    return (float(v), launch.origin(knob)) if isinstance(v, (int, float)) else None


def calibrate(matrix: Optional[Matrix] = None) -> list[Row]:
    matrix = matrix or Matrix()
    return [run_one(p, matrix)[0] for p in sorted(LOGS.glob("*.toml"))]


def table(rows: list[Row]) -> str:
    out = ["| log | setup | quantity | real | compat | |", "|---|---|---|---:|---:|---|"]
    for r in rows:
        for i, (label, real, got, ok, miss) in enumerate(r.cells):
            fmt = "{:,.0f}" if label.startswith("KV tokens") else "{:.2f}"
            mark = "known miss" if miss else ("ok" if ok else "OFF")
            first = (
                f"[{r.name}]({r.url})"
                if i == 0 and r.url.startswith("http")
                else (r.name if i == 0 else "")
            )
            out.append(
                f"| {first} | {r.setup if i == 0 else ''} | {label} | {fmt.format(real)} | "
                f"{fmt.format(got) if got is not None else '-'} | {mark} |"
            )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    rows = calibrate()
    sys.stdout.write(table(rows))
    for r in rows:
        if r.reason:
            sys.stdout.write(f"\n{r.name}: {' '.join(r.reason.split())}\n")
