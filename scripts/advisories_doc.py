"""docs/advisories-list.md rendered from matrices/advisories/: every advisory with its tracker,
GPUs, severity, ranges and primary report, and the counts by tracker, GPU family and severity.

    python scripts/advisories_doc.py          # print the page
    python scripts/advisories_doc.py --write  # write docs/advisories-list.md
    python scripts/advisories_doc.py --check  # exit 1 when the page differs
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from compat.advisories import Advisory, load_advisories  # noqa: E402

DOC = ROOT / "docs" / "advisories-list.md"
# Compute capability -> architecture, for the counts (NVIDIA's CUDA GPUs page).
_FAMILIES = {
    7: "Volta/Turing",
    8: "Ampere/Ada",
    9: "Hopper",
    10: "Blackwell",
    11: "Blackwell",
    12: "Blackwell",
}


def family(cc: tuple[int, int]) -> str:
    if cc[0] == 7:
        return "Turing" if cc[1] >= 5 else "Volta"
    if cc[0] == 8:
        return "Ada" if cc[1] == 9 else "Ampere"
    return _FAMILIES.get(cc[0], f"sm_{cc[0]}{cc[1]}")


def gpus(a: Advisory) -> str:
    parts = [f"sm_{x}{y}" for x, y in a.affected.gpu_cc] + list(a.affected.gpu_names)
    return ", ".join(parts) or "any"


def ranges(a: Advisory) -> str:
    return "; ".join(f"{r.label} {r.specifier}" for r in a.affected.packages) or "-"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    advisories = load_advisories(ROOT / "matrices" / "advisories")
    live = [a for a in advisories if not a.is_withdrawn]
    out = [
        "# The advisories",
        "",
        "Rendered from matrices/advisories/ by `python scripts/advisories_doc.py --write`; how they",
        "are written, matched and tested: [advisories.md](advisories.md). `compat advisories` lists and",
        "filters them; `compat explain ID` shows one in full.",
        "",
        f"{len(live)} live advisories ({len(advisories) - len(live)} withdrawn).",
        "",
    ]

    def counts(title: str, c: Counter[str]) -> None:
        out.append(
            f"**By {title}:** "
            + ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))
        )
        out.append("")

    counts("tracker", Counter(a.project for a in live))
    fam: Counter[str] = Counter()
    for a in live:
        names = {family(cc) for cc in a.affected.gpu_cc} or (
            {"named GPUs"} if a.affected.gpu_names else {"any GPU"}
        )
        fam.update(names)
    counts("GPU family", fam)
    counts("severity", Counter(a.severity.value for a in live))
    counts(
        "year reported",
        Counter((a.reported or "not stated")[:4] if a.reported else "not stated" for a in live),
    )
    out += [
        "| id | tracker | severity | GPUs | ranges | summary | primary report |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in advisories:
        summary = ("(withdrawn) " if a.is_withdrawn else "") + a.summary
        out.append(
            f"| {a.id} | {a.project or '-'} | {a.severity.value} | {_cell(gpus(a))} | {_cell(ranges(a))} "
            f"| {_cell(summary)} | {a.references[0].url} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--write" in argv:
        DOC.write_text(text, encoding="utf-8")
        return 0
    if "--check" in argv:
        return 0 if DOC.exists() and DOC.read_text(encoding="utf-8") == text else 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
