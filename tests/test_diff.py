"""`compat diff`: what differs between two snapshots, what matters to the stack first.

The seed 002 fixtures are the H100 snapshot (tests/assets/envs/h100-torch2.11-cu130.json) turned
into the two launch environments of radixark/miles#1176: the same container (8 GPUs, sglang
0.5.12 on torch 2.11 / CUDA 13) and server, started standalone (CUDA_VISIBLE_DEVICES=1,2,3,4,
LD_LIBRARY_PATH with nvidia/cu13/lib) and by a Ray actor (also CUDA_DEVICE_MAX_CONNECTIONS=1,
NCCL_NVLS_ENABLE=1, PYTHONPATH, SGLANG_MEMORY_SAVER_CUDA_GRAPH, RAY_*, MASTER_ADDR).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec.structs

from compat.advisories import load_advisories
from compat.diff import RANKS, Change, diff_environments, env_rank, format_text
from compat.matrix.load import Matrix
from compat.models import GPU, Driver, Environment, Finding, Unknown
from compat.pipeline import Database, LaunchInput, check, parse_launch_for
from compat.resources import advisories_dir
from compat.snapshot import load

DIFF = Path(__file__).parent / "assets" / "diff"
STANDALONE = DIFF / "seed002-standalone.json"
UNDER_RAY = DIFF / "seed002-under-ray.json"
MATRIX = Matrix()
ADVISORIES = load_advisories(advisories_dir())


def findings(env: Environment) -> list[Finding]:
    return check(env, Database(MATRIX, ADVISORIES), parse_launch_for(env, LaunchInput()))


def keys(changes: tuple[Change, ...]) -> list[str]:
    return [c.key for c in changes]


def with_env(env: Environment, **changes: str | None) -> Environment:
    merged = dict(env.env)
    for k, v in changes.items():
        if v is None:
            merged.pop(k, None)
        else:
            merged[k] = v
    return msgspec.structs.replace(env, env=merged)


def test_seed002_points_at_the_ray_launch_environment_first() -> None:
    a, b = load(str(STANDALONE)), load(str(UNDER_RAY))
    d = diff_environments(a, b, findings(a), findings(b))
    # the variables the Ray actor adds, CUDA/NCCL ones first, before anything about the launch
    assert keys(d.changes)[:10] == [
        "CUDA_DEVICE_MAX_CONNECTIONS",
        "NCCL_NVLS_ENABLE",
        "PYTHONPATH",
        "SGLANG_MEMORY_SAVER_CUDA_GRAPH",
        "under Ray",
        "MASTER_ADDR",
        "RAY_ADDRESS",
        "RAY_JOB_ID",
        "RAY_NODE_ID",
        "RAY_RAYLET_PID",
    ]
    assert [(c.a, c.b) for c in d.changes[:2]] == [(None, "1"), (None, "1")]
    assert all(c.area == "launch" for c in d.changes[10:])
    # the same packages, driver and GPUs: nothing of the stack or the host differs
    assert not [c for c in d.changes if c.rank <= 2]
    # LD_LIBRARY_PATH (with nvidia/cu13/lib) and CUDA_VISIBLE_DEVICES are the same on both
    assert "LD_LIBRARY_PATH" not in keys(d.changes) and "CUDA_VISIBLE_DEVICES" not in keys(
        d.changes
    )
    # and compat check finds the known crash under Ray only
    assert [f.advisory for f in d.only_b] == ["COMPAT-0003"] and d.only_a == ()
    text = format_text(d, "standalone", "under-ray")
    assert "only B: error [known-crash COMPAT-0003]" in text
    assert (
        text.index("CUDA_DEVICE_MAX_CONNECTIONS")
        < text.index("RAY_ADDRESS")
        < text.index("launch chunked")
    )


def test_seed002_cli_text_json_and_exit_code() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "compat",
            "diff",
            str(STANDALONE),
            str(UNDER_RAY),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "compat.diff/1" and doc["same"] is False
    first = doc["changes"][0]
    assert first == {
        "rank": 3,
        "area": "env",
        "key": "CUDA_DEVICE_MAX_CONNECTIONS",
        "kind": "added",
        "a": None,
        "b": "1",
        "detail": [],
    }
    assert doc["findings"]["only_b"][0]["advisory"] == "COMPAT-0003"
    same = subprocess.run(
        [sys.executable, "-m", "compat", "diff", str(STANDALONE), str(STANDALONE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert same.returncode == 0 and "No differences" in same.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "compat", "diff", str(STANDALONE), "missing.json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 3


def test_path_lists_are_compared_entry_by_entry() -> None:
    a = load(str(STANDALONE))
    b = with_env(
        a,
        LD_LIBRARY_PATH="/usr/local/nvidia/lib64:/opt/cuda-12.4/lib64:"
        "/usr/local/lib/python3.12/dist-packages/nvidia/cu13/lib",
    )
    (c,) = diff_environments(a, b).changes
    assert c.key == "LD_LIBRARY_PATH" and c.rank == 3
    assert c.detail == (
        "- /usr/local/lib/python3.12/dist-packages/tvm_ffi/lib",
        "- /usr/local/nvidia/lib",
        "+ /opt/cuda-12.4/lib64",
        "the same entries in another order: /usr/local/lib/python3.12/dist-packages/nvidia/cu13/lib, "
        "/usr/local/nvidia/lib64 -> /usr/local/nvidia/lib64, "
        "/usr/local/lib/python3.12/dist-packages/nvidia/cu13/lib",
    )


def test_reordered_visible_devices_are_called_out() -> None:
    a = load(str(STANDALONE))
    (c,) = diff_environments(a, with_env(a, CUDA_VISIBLE_DEVICES="4,3,2,1")).changes
    assert c.key == "CUDA_VISIBLE_DEVICES" and "another order" in c.detail[0]


def test_stack_before_host_before_env() -> None:
    a = load(str(STANDALONE))
    torch = a.torch
    assert not isinstance(torch, Unknown) and not isinstance(a.gpus, Unknown)
    dists = tuple(
        msgspec.structs.replace(d, raw_version="3.5.1") if d.key == "triton" else d
        for d in a.distributions
    )
    b = msgspec.structs.replace(
        with_env(a, NCCL_P2P_DISABLE="1", HF_HOME="/data/hf"),
        distributions=dists,
        driver=Driver("550.54.15", "12.4", "--driver", ""),
        gpus=(
            *a.gpus[:4],
            msgspec.structs.replace(a.gpus[4], name="NVIDIA H200", memory_used_mib=1),
        ),
        created="later",
    )
    d = diff_environments(a, b)
    assert [(c.rank, c.key) for c in d.changes] == [
        (1, "triton"),
        (2, "GPU 4 name"),
        (2, "GPU 5"),
        (2, "GPU 6"),
        (2, "GPU 7"),
        (2, "GPU count"),
        (2, "driver cuda"),
        (2, "driver version"),
        (3, "NCCL_P2P_DISABLE"),
        (8, "HF_HOME"),
    ]
    assert d.changes[0].a == "3.6.0" and d.changes[0].b == "3.5.1"


def test_unknown_sides_and_volatile_facts() -> None:
    a = load(str(STANDALONE))
    assert not isinstance(a.gpus, Unknown)
    busy = tuple(msgspec.structs.replace(g, memory_used_mib=70000) for g in a.gpus)
    assert diff_environments(a, msgspec.structs.replace(a, gpus=busy, created="x")).same
    b = msgspec.structs.replace(
        a, gpus=Unknown("no driver in docker build"), driver=Unknown("no driver")
    )
    d = diff_environments(a, b)
    assert [(c.rank, c.key, c.a, c.b) for c in d.changes] == [
        (2, "GPUs", "8 GPU(s)", "unknown (no driver in docker build)"),
        (2, "driver", "version 580.159.04, cuda 13.0", "unknown (no driver)"),
    ]


def test_every_rank_is_documented() -> None:
    assert set(RANKS) == set(range(1, 9))
    assert [
        env_rank(n)
        for n in (
            "CUDA_VISIBLE_DEVICES",
            "NCCL_NVLS_ENABLE",
            "LD_LIBRARY_PATH",
            "PYTHONPATH",
            "SGLANG_X",
            "RAY_JOB_ID",
            "MASTER_ADDR",
            "PATH",
            "HF_HOME",
        )
    ] == [3, 3, 3, 4, 4, 5, 5, 8, 8]


def test_gpu_entries_compare_by_index() -> None:
    g = GPU(0, "NVIDIA H100 80GB HBM3", (9, 0), 81559)
    a = load(str(STANDALONE))
    one = msgspec.structs.replace(a, gpus=(g,))
    two = msgspec.structs.replace(
        a, gpus=(g, msgspec.structs.replace(g, index=1, compute_capability=(8, 0)))
    )
    d = diff_environments(one, two)
    assert [(c.key, c.a, c.b) for c in d.changes] == [
        ("GPU 1", None, "NVIDIA H100 80GB HBM3"),
        ("GPU count", "1", "2"),
    ]


def test_two_copies_of_one_freeze_file_do_not_differ(tmp_path: Path) -> None:
    """Where a fact came from (the file's path) is not a difference: two copies of one freeze
    file give no change and no one-sided finding; a real change shows alone."""
    from compat.inputs import env_from_freeze

    pins = "torch==2.6.0\ntriton==3.1.0\nsglang==0.4.6.post1\nflashinfer-python==0.2.3\n"
    a = env_from_freeze(pins, str(tmp_path / "a.txt"), MATRIX)
    b = env_from_freeze(pins, str(tmp_path / "b.txt"), MATRIX)
    d = diff_environments(a, b, findings(a), findings(b))
    assert d.same and d.changes == () and d.only_a == () and d.only_b == ()
    fixed = env_from_freeze(pins.replace("3.1.0", "3.2.0"), str(tmp_path / "c.txt"), MATRIX)
    d = diff_environments(a, fixed, findings(a), findings(fixed))
    assert [(c.key, c.a, c.b) for c in d.changes] == [("triton", "3.1.0", "3.2.0")]
    assert [f.code for f in d.only_a] == ["torch-triton"] and d.only_b == ()
