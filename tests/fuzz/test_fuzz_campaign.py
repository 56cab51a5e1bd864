"""The full fuzz campaign (`pytest -m fuzz tests/fuzz/test_fuzz_campaign.py`): every case of
every surface, totals per surface and outcome, failing inputs written for reproduction.

COMPAT_FUZZ_SEED picks the seed (default 0), COMPAT_FUZZ_OUT the folder for report.md,
summary.json and the failing inputs (default: a temporary folder, named in the output).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.fuzz.campaign import run_campaign, summary_lines
from tests.fuzz.harness import RSS_BUDGET_MIB, TIMEOUT_S, Tally

pytestmark = pytest.mark.fuzz


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tally, Path]:
    seed = int(os.environ.get("COMPAT_FUZZ_SEED", "0"))
    out = Path(os.environ.get("COMPAT_FUZZ_OUT") or tmp_path_factory.mktemp("fuzz-out"))
    tally = run_campaign(seed=seed, out=out, log=lambda m: print(m, file=sys.stderr))
    print("\n".join(summary_lines(tally)), file=sys.stderr)
    print(f"report: {out / 'report.md'}", file=sys.stderr)
    return tally, out


def test_campaign_covers_every_surface_with_10000_inputs(campaign: tuple[Tally, Path]) -> None:
    tally, _ = campaign
    assert tally.inputs >= 10_000
    surfaces = {s.split("/")[0] for s in tally.counts}
    assert surfaces >= {
        "snapshot", "freeze", "lint", "launch-argv", "launch-file", "overrides", "advisory",
        "data", "cache", "elf", "dist-info", "probe", "cli",
    }  # fmt: skip
    assert all(sum(per.values()) >= 20 for per in tally.counts.values()), tally.counts


def test_campaign_has_no_crash_hang_memory_leak_or_wrong_answer(
    campaign: tuple[Tally, Path],
) -> None:
    tally, out = campaign
    assert tally.failures() == 0, (
        f"{len(tally.classes)} failing classes (no run may exceed {TIMEOUT_S:g} s or "
        f"{RSS_BUDGET_MIB:g} MiB); see {out / 'report.md'}\n" + "\n".join(summary_lines(tally))
    )
