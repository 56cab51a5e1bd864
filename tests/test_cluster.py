"""`--ray`: the comparison of nodes on hand-built reports, the cluster report formats, the options;
and, marked `ray`, the whole path on a real multi-node Ray cluster started on this machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import msgspec.structs
import pytest
from packaging.version import Version

from compat.check.cluster import CLUSTER_MISMATCH, compare
from compat.commands.cluster import check_options, parse_runtime_env
from compat.errors import InputError, UsageError
from compat.format.cluster import format_cluster_env, format_cluster_findings
from compat.matrix.load import Matrix
from compat.models import (
    GPU,
    ClusterProbe,
    Distribution,
    Driver,
    Environment,
    Finding,
    Node,
    NodeReport,
    NodeStatus,
    Severity,
    TorchBuild,
    Unknown,
)
from compat.pipeline import Database, LaunchInput, check_cluster, load_database, parse_launch_for
from compat.probe.ray import collect, probe_node
from compat.snapshot import label_nodes, load, probe_from_dict, probe_to_dict

H100 = Path(__file__).parent / "assets" / "envs" / "h100-torch2.11-cu130.json"
BASE = load(str(H100))
MATRIX = Matrix()
NO_ADVISORIES = Database(MATRIX, ())


def node(name: str, *, gpus: float = 8.0, head: bool = False) -> Node:
    return Node(
        node_id=f"{name}-0123456789abcdef",
        address=f"10.0.0.{len(name)}",
        hostname=name,
        head=head,
        gpus=gpus,
        label=name,
    )


def report(
    name: str,
    env: Optional[Environment] = None,
    *,
    gpus: float = 8.0,
    head: bool = False,
    facts: Optional[dict[str, str]] = None,
    **env_vars: str,
) -> NodeReport:
    e = env or BASE
    if env_vars:
        e = msgspec.structs.replace(e, env={**e.env, **env_vars})
    return NodeReport(node(name, gpus=gpus, head=head), NodeStatus.OK, env=e, facts=facts or {})


def with_dist(env: Environment, name: str, version: Optional[str]) -> Environment:
    dists = [d for d in env.distributions if d.name != name]
    if version is not None:
        dists.append(Distribution(name, Version(version), version, "/site"))
    return msgspec.structs.replace(env, distributions=tuple(sorted(dists, key=lambda d: d.key)))


def only(fs: list[Finding], text: str) -> Finding:
    hits = [f for f in fs if text in f.message]
    assert len(hits) == 1, [f.message for f in fs]
    return hits[0]


# Heterogeneity on hand-built reports ------------------------------------------------------------
def test_like_nodes_match() -> None:
    assert compare([report("a"), report("b"), report("c")]) == []


def test_nccl_env_differs_names_the_odd_node() -> None:
    fs = compare([report("a"), report("b", NCCL_IB_DISABLE="1"), report("c")])
    f = only(fs, "NCCL_IB_DISABLE")
    assert f.code == CLUSTER_MISMATCH and f.severity is Severity.WARNING
    assert f.message == "NCCL_IB_DISABLE differs across nodes: unset on a, c; '1' on b"
    assert f.fix == (
        "unset NCCL_IB_DISABLE on b (in the environment `ray start` ran with, or the runtime env)",
    )


def test_seed_002_env_of_the_ray_path() -> None:
    # Seed 002: the Ray path had CUDA_DEVICE_MAX_CONNECTIONS=1, NCCL_NVLS_ENABLE=1 and another
    # LD_LIBRARY_PATH; a node started that way differs from its peers on each of them.
    odd = report(
        "gpu-2",
        CUDA_DEVICE_MAX_CONNECTIONS="1",
        NCCL_NVLS_ENABLE="1",
        LD_LIBRARY_PATH="/usr/local/lib/python3.12/dist-packages/nvidia/cu13/lib",
    )
    fs = compare([report("gpu-1"), odd, report("gpu-3")])
    assert {f.message.split(" ")[0] for f in fs} == {
        "CUDA_DEVICE_MAX_CONNECTIONS",
        "NCCL_NVLS_ENABLE",
        "LD_LIBRARY_PATH",
    }
    f = only(fs, "CUDA_DEVICE_MAX_CONNECTIONS")
    assert "'1' on gpu-2" in f.message and "unset on gpu-1, gpu-3" in f.message


def test_set_to_the_majority_value() -> None:
    fs = compare(
        [
            report("a", NCCL_SOCKET_IFNAME="eth0"),
            report("b", NCCL_SOCKET_IFNAME="eth0"),
            report("c", NCCL_SOCKET_IFNAME="ib0"),
        ]
    )
    f = only(fs, "NCCL_SOCKET_IFNAME")
    assert f.fix[0].startswith("set NCCL_SOCKET_IFNAME=eth0 on c too")
    assert '--runtime-env \'{"env_vars": {"NCCL_SOCKET_IFNAME": "eth0"}}\'' in f.fix[0]


def test_no_majority_no_value_in_the_fix() -> None:
    f = only(compare([report("a", NCCL_ALGO="Ring"), report("b", NCCL_ALGO="Tree")]), "NCCL_ALGO")
    assert f.fix[0].startswith("give NCCL_ALGO one value (or none) on every node")


def test_per_node_env_vars_are_not_compared() -> None:
    fs = compare(
        [
            report("a", RAY_RAYLET_PID="11", COMPAT_TEST_PROBE_SLEEP="5", OMP_NUM_THREADS="1"),
            report("b", RAY_RAYLET_PID="12", MASTER_PORT="29500"),
        ]
    )
    assert fs == []
    fs = compare([report("a"), report("b", RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES="1")])
    assert "RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES" in only(fs, "NOSET").message


def test_cuda_visible_devices_assigned_by_ray_is_not_a_difference() -> None:
    # Ray sets CUDA_VISIBLE_DEVICES to the GPU it gave the task: 0 here, 3 there, by chance.
    a = report("a", facts={"gpu_ids": "0"}, CUDA_VISIBLE_DEVICES="0")
    b = report("b", facts={"gpu_ids": "3"}, CUDA_VISIBLE_DEVICES="3")
    assert compare([a, b]) == []
    # A value Ray did not assign (runtime env + RAY_EXPERIMENTAL_NOSET_...) is compared.
    c = report("c", facts={"gpu_ids": "0"}, CUDA_VISIBLE_DEVICES="1,2,3,4")
    f = only(compare([a, c]), "CUDA_VISIBLE_DEVICES")
    assert "'1,2,3,4' on c" in f.message


def test_gpu_numbering_of_the_ray_nodes() -> None:
    fs = compare(
        [
            report("a", facts={"node_cuda_visible_devices": ""}),
            report("b", facts={"node_cuda_visible_devices": "1,2,3,4"}),
            report("c", facts={"node_cuda_visible_devices": ""}),
        ]
    )
    f = only(fs, "GPU numbering")
    assert "1,2,3,4 on b" in f.message and "unset (all GPUs) on a, c" in f.message


def test_driver_differs() -> None:
    old = msgspec.structs.replace(BASE, driver=Driver("570.86.15", "12.8"))
    f = only(compare([report("a"), report("b"), report("c", old)]), "NVIDIA driver")
    assert f.severity is Severity.WARNING
    assert "570.86.15 (CUDA 12.8) on c" in f.message
    assert f.fix[0].startswith("install driver 580.")


def test_unknown_driver_is_left_to_the_node_findings() -> None:
    blind = msgspec.structs.replace(BASE, driver=Unknown("no /proc/driver/nvidia"))
    assert compare([report("a"), report("b", blind)]) == []


def test_gpu_models_differ() -> None:
    a100 = msgspec.structs.replace(BASE, gpus=(GPU(0, "NVIDIA A100-SXM4-80GB", (8, 0)),))
    f = only(compare([report("a"), report("b", a100)]), "GPUs")
    assert "1x NVIDIA A100-SXM4-80GB (sm_80) on b" in f.message


def test_torch_build_differs_is_an_error() -> None:
    cu128 = msgspec.structs.replace(
        BASE, torch=TorchBuild(Version("2.11.0+cu128"), "12.8", None, "t")
    )
    f = only(compare([report("a"), report("b", cu128)]), "torch build")
    assert f.severity is Severity.ERROR and f.packages == ("torch",)
    assert "2.11.0+cu128 (CUDA 12.8)" in f.message and "2.11.0+cu130 (CUDA 13.0)" in f.message


def test_framework_and_nccl_differ_are_errors_others_grouped() -> None:
    a = with_dist(with_dist(BASE, "sglang", "0.5.2"), "transformers", "4.56.0")
    b = with_dist(with_dist(BASE, "sglang", "0.5.3"), "transformers", "4.57.0")
    b = with_dist(b, "nvidia-nccl-cu13", None)
    c = with_dist(a, "xgrammar", "0.1.25")
    fs = compare([report("a", a), report("b", b), report("c", c)])
    sg = only(fs, "sglang differs")
    assert sg.severity is Severity.ERROR and sg.packages == ("sglang",)
    assert sg.message == "sglang differs across nodes: 0.5.2 on a, c; 0.5.3 on b"
    assert sg.fix == ("pip install 'sglang==0.5.2'   # on b",)
    nccl = only(fs, "nvidia-nccl")
    assert nccl.severity is Severity.ERROR and "not installed on b" in nccl.message
    rest = only(fs, "other package(s)")
    assert rest.severity is Severity.WARNING
    assert rest.message == "2 other package(s) differ across nodes: transformers, xgrammar"
    assert rest.packages == ("transformers", "xgrammar")


def test_python_minor_differs_is_an_error() -> None:
    assert not isinstance(BASE.python, Unknown)
    assert BASE.python.version == "3.12.3"
    py311 = msgspec.structs.replace(
        BASE, python=msgspec.structs.replace(BASE.python, version="3.11.9")
    )
    f = only(compare([report("a"), report("b", py311)]), "Python")
    assert (
        f.severity is Severity.ERROR
        and f.message == "Python differs across nodes: 3.11.9 on b; 3.12.3 on a"
    )
    patch = msgspec.structs.replace(
        BASE, python=msgspec.structs.replace(BASE.python, version="3.12.11")
    )
    g = only(compare([report("a"), report("b"), report("c", patch)]), "Python")
    assert g.severity is Severity.INFO and g.fix == (
        "use Python 3.12.3 on c too (Ray requires the same Python on every node)",
    )


def test_cpu_head_is_not_compared_with_gpu_nodes() -> None:
    # A CPU-only head that runs the driver script carries no torch and no NCCL settings.
    bare = Environment(
        python=BASE.python,
        distributions=(),
        torch=Unknown("torch is not installed"),
        driver=Unknown("no NVIDIA driver"),
        gpus=(),
        context=BASE.context,
    )
    head = report("head", bare, gpus=0, head=True)
    assert compare([head, report("a", NCCL_IB_HCA="mlx5"), report("b", NCCL_IB_HCA="mlx5")]) == []
    # Without GPU nodes, all nodes are peers.
    cpu_torch = msgspec.structs.replace(BASE, gpus=())
    f = only(compare([report("x", bare, gpus=0), report("y", cpu_torch, gpus=0)]), "torch build")
    assert (
        f.message
        == "torch build differs across nodes: 2.11.0+cu130 (CUDA 13.0) on y; not installed on x"
    )


def test_many_nodes_are_counted_and_listed_in_the_evidence() -> None:
    nodes = [report(f"n{i:02d}") for i in range(9)] + [report("odd", NCCL_DEBUG="INFO")]
    f = only(compare(nodes), "NCCL_DEBUG")
    assert "unset on n00, n01, n02, n03 +5 more" in f.message
    assert f.evidence[0] == "unset: " + ", ".join(f"n{i:02d}" for i in range(9))


def test_nodes_that_did_not_report() -> None:
    dead = NodeReport(node("d"), NodeStatus.DIED, reason="Task failed because the node ... is dead")
    slow = NodeReport(node("s"), NodeStatus.TIMEOUT, reason="no answer within 5 s")
    env_bad = NodeReport(
        node("e"),
        NodeStatus.FAILED,
        reason="the runtime env could not be set up: pip",
        facts={"runtime_env_failed": "true"},
    )
    crash = NodeReport(node("c"), NodeStatus.FAILED, reason="the probe raised OSError: x")
    fs = compare([report("a"), dead, slow, env_bad, crash])
    by = {f.message.split(" ")[1].rstrip(":"): f for f in fs}
    assert by["d"].severity is Severity.ERROR and "died during the check" in by["d"].message
    assert (
        by["s"].severity is Severity.WARNING
        and by["s"].message == "node s (10.0.0.1) did not report: not checked"
    )
    assert by["e"].severity is Severity.ERROR and "runtime env cannot be set up" in by["e"].message
    assert by["c"].severity is Severity.WARNING and by["c"].evidence == (
        "the probe raised OSError: x",
    )


def test_runtime_env_failure_gist() -> None:
    from compat.probe.ray import _setup_error

    # As Ray 2.60 reports a pip failure: a whole traceback, pip's error last.
    text = (
        "Failed to set up runtime environment.\n[Node 10.0.0.3] Traceback (most recent call last):\n"
        '  File "pip.py", line 264, in _run\n'
        "ray._private.runtime_env.utils.SubprocessCalledProcessError: Run cmd[17] failed with the "
        "following details.\nLast 50 lines of stdout:\n"
        "    ERROR: No matching distribution found for sglang==9.9\n"
    )
    assert _setup_error(text) == (
        "SubprocessCalledProcessError: Run cmd[17] failed with the following "
        "details. / ERROR: No matching distribution found for sglang==9.9"
    )
    assert (
        _setup_error("Failed to set up runtime environment.")
        == "Failed to set up runtime environment."
    )


def test_labels_are_unique() -> None:
    same = [
        Node("aaaaaa11", "10.0.0.1", "vm"),
        Node("bbbbbb22", "10.0.0.1", "vm"),
        Node("cccccc33", "10.0.0.2", "gpu-7"),
    ]
    assert [n.label for n in label_nodes(same)] == ["vm/aaaaaa", "vm/bbbbbb", "gpu-7"]


# check_cluster, formats, records ------------------------------------------------------------------
def probe(*reports: NodeReport) -> ClusterProbe:
    return ClusterProbe(
        address="auto",
        nodes=reports,
        runtime_env={"env_vars": {"X": "1"}},
        timeout_s=60,
        elapsed_s=1.5,
        ray_version="2.60.0",
    )


def test_check_cluster_runs_each_node_and_compares() -> None:
    old = msgspec.structs.replace(BASE, driver=Driver("470.57.02", "11.4"))
    result = check_cluster(probe(report("a"), report("b", old)), NO_ADVISORIES)
    (_, fa), (_, fb) = result.per_node
    assert "driver-too-old" in {f.code for f in fb} and "driver-too-old" not in {f.code for f in fa}
    assert [f.code for f in result.cluster] == [CLUSTER_MISMATCH]
    assert len(result.all_findings()) == len(fa) + len(fb) + 1
    dropped = check_cluster(
        probe(report("a"), report("b", old)), NO_ADVISORIES, ignore=(CLUSTER_MISMATCH,)
    )
    assert dropped.cluster == ()


def test_check_cluster_parses_the_launch_per_node_under_ray() -> None:
    argv = ("python", "-m", "sglang.launch_server", "--model-path", "m")
    result = check_cluster(probe(report("a")), NO_ADVISORIES, LaunchInput(argv=argv))
    assert result.per_node[0][0].env is not None  # checked
    launch = parse_launch_for(BASE, LaunchInput(argv=argv, under_ray=True))
    assert launch is not None and launch.settings["under_ray"] is True


def test_seed_002_launch_checked_as_the_ray_worker_runs_it() -> None:
    # Seed 002: the launch that works standalone crashes under Ray (COMPAT-0003). Each node's
    # check sees it under Ray, since it is what a Ray worker on that node would start.
    env = with_dist(BASE, "sglang", "0.5.12")
    launch = (Path(__file__).parent / "assets" / "launch" / "seed002-standalone.sh").read_text()
    # A probe in a Ray worker carries Ray's own variables: that is how the advisory knows. The
    # rollout's Ray workers also carry SGLANG_MEMORY_SAVER_CUDA_GRAPH (miles#1176), which the
    # standalone launch does not set.
    ray_env = {"RAY_JOB_ID": "01000000", "SGLANG_MEMORY_SAVER_CUDA_GRAPH": "true"}
    a = report("a", env, RAY_RAYLET_PID="4242", **ray_env)
    b = report("b", env, RAY_RAYLET_PID="4243", **ray_env)
    result = check_cluster(probe(a, b), load_database(), LaunchInput(text=launch))
    for _, fs in result.per_node:
        assert "COMPAT-0003" in {f.advisory for f in fs}


def test_text_groups_like_nodes_and_shows_the_verdict() -> None:
    dead = NodeReport(node("d"), NodeStatus.DIED, reason="node died")
    text = format_cluster_findings(
        check_cluster(
            probe(report("a", head=True), report("b", NCCL_IB_DISABLE="1"), report("c"), dead),
            NO_ADVISORIES,
        ),
        "text",
        "error",
    )
    assert text.startswith("compat check --ray auto: 4 node(s), 4 with GPUs; 3 reported, 1 did not")
    assert 'runtime env: {"env_vars": {"X": "1"}}' in text
    assert "\n  d (10.0.0.1)        DIED: node died\n" in text
    assert "On a, b, c (3 nodes):" in text  # same per-node findings: shown once
    assert "Across the cluster:" in text and "[cluster-mismatch] NCCL_IB_DISABLE differs" in text
    assert "[cluster-mismatch] node d (10.0.0.1) died during the check" in text


def test_json_and_sarif() -> None:
    result = check_cluster(probe(report("a"), report("b", NCCL_IB_DISABLE="1")), NO_ADVISORIES)
    doc = json.loads(format_cluster_findings(result, "json", "warning"))
    assert doc["schema"] == "compat.cluster-findings/1" and doc["fail_on"] == "warning"
    assert [n["label"] for n in doc["nodes"]] == ["a", "b"]
    assert doc["nodes"][0]["status"] == "ok" and doc["nodes"][0]["subject"].startswith(
        "torch 2.11.0"
    )
    assert [f["code"] for f in doc["cluster"]] == [CLUSTER_MISMATCH]
    assert doc["summary"]["warning"] >= 1
    sarif = json.loads(format_cluster_findings(result, "sarif", "error"))
    messages = [r["message"]["text"] for r in sarif["runs"][0]["results"]]
    assert any(m.startswith("NCCL_IB_DISABLE differs") for m in messages)
    assert all(m.startswith(("node a: ", "node b: ", "NCCL")) for m in messages)


def test_cluster_snapshot_round_trip_and_env_text() -> None:
    p = probe(
        report("a", head=True, facts={"gpu_ids": "0", "ray": "2.60.0"}),
        NodeReport(node("d"), NodeStatus.TIMEOUT, reason="no answer within 60 s"),
    )
    doc = probe_to_dict(p)
    assert doc["schema"] == "compat.cluster/1" and doc["nodes"][1]["env"] is None
    back = probe_from_dict(json.loads(json.dumps(doc)))
    assert [r.status for r in back.nodes] == [NodeStatus.OK, NodeStatus.TIMEOUT]
    assert back.nodes[0].env is not None and back.nodes[0].env.version_of("triton") == Version(
        "3.6.0"
    )
    assert probe_to_dict(back)["nodes"][0]["facts"] == {"gpu_ids": "0", "ray": "2.60.0"}
    text = format_cluster_env(back)
    assert "== a (10.0.0.1, head)  [ok]" in text and "Ray           gpu_ids=0, ray=2.60.0" in text
    assert "== d (10.0.0.1)  [timeout]\n   no answer within 60 s" in text
    with pytest.raises(InputError, match=r"'nodes\[0\]\.status'"):
        probe_from_dict({**doc, "nodes": [{"node_id": "x", "status": "asleep"}]})
    with pytest.raises(InputError, match=r"not a compat\.cluster/1"):
        probe_from_dict({"schema": "compat.env/1"})


# Options ------------------------------------------------------------------------------------------
def test_options() -> None:
    check_options(None, None, None, {})
    check_options("auto", '{"env_vars": {}}', 5, {"--from": None, "--deep": False})
    with pytest.raises(UsageError, match="--runtime-env and --ray-timeout apply only with --ray"):
        check_options(None, "{}", 3, {})
    with pytest.raises(UsageError, match="--deep, --from cannot be combined with --ray"):
        check_options("auto", None, None, {"--from": "x.json", "--deep": True, "--gpu": ()})
    with pytest.raises(UsageError, match="--ray-timeout 0"):
        check_options("auto", None, 0, {})
    assert parse_runtime_env('{"env_vars": {"A": "1"}}') == {"env_vars": {"A": "1"}}
    for bad in ("{", "[1]"):
        with pytest.raises(UsageError) as exc:
            parse_runtime_env(bad)
        assert exc.value.exit_code == 2 and exc.value.hint and "env_vars" in exc.value.hint


def test_without_ray_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from compat.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(SystemExit) as exc:
        main(["check", "--ray"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--ray needs Ray, which is not installed here" in err
    assert "hint: pip install 'compat[ray]'" in err


def test_ray_is_not_imported_at_start_up() -> None:
    code = (
        "import sys, compat.cli, compat.commands.cluster, compat.format.cluster; "
        "sys.exit('ray' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=60).returncode == 0


# On a real Ray cluster (3 nodes on this machine) ------------------------------------------------
_NO_RAY = (
    subprocess.run(
        [sys.executable, "-c", "import ray"], capture_output=True, check=False
    ).returncode
    != 0
)
F = TypeVar("F", bound=Callable[..., Any])


def on_ray(fn: F) -> F:
    """A test on the local Ray cluster: marked `ray`, skipped without Ray. Ray's cluster helpers
    leave sockets for the garbage collector (ResourceWarning), which is not compat's to fix."""
    fn = pytest.mark.skipif(_NO_RAY, reason="ray is not installed (pip install 'compat[ray]')")(fn)
    fn = pytest.mark.filterwarnings("ignore::ResourceWarning")(fn)
    marked: F = pytest.mark.ray(fn)
    return marked


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    from ray.cluster_utils import Cluster

    c: Any
    # Head (CPU), two GPU nodes (logical GPUs: Ray sets CUDA_VISIBLE_DEVICES all the same); the
    # second is started with another environment, as a node set up by hand would be.
    # A head with no CPUs for tasks, as many clusters start it: the probe asks for none.
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    c.add_node(num_cpus=1, num_gpus=1)
    c.add_node(
        num_cpus=1, num_gpus=2, env_vars={"NCCL_IB_DISABLE": "1", "CUDA_VISIBLE_DEVICES": "2,3"}
    )
    c.wait_for_nodes()
    try:
        yield c
    finally:
        c.shutdown()


@pytest.fixture(autouse=True)
def _no_ray_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run(
        [sys.executable, "-m", "compat", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )


@on_ray
def test_ray_collect_sees_each_node_as_its_workers_do(cluster: Any) -> None:
    p = collect(cluster.address, {"env_vars": {"NCCL_NVLS_ENABLE": "1"}}, timeout=60)
    assert [r.status for r in p.nodes] == [NodeStatus.OK] * 3, [r.reason for r in p.nodes]
    head, *gpu_nodes = p.nodes
    assert head.node.head and head.node.gpus == 0
    for r in p.nodes:
        assert r.env is not None
        assert r.env.env["NCCL_NVLS_ENABLE"] == "1"  # the runtime env reached every node
        assert "RAY_RAYLET_PID" in r.env.env  # the probe ran in a Ray worker
        assert "runtime_resources" not in r.env.env.get("PYTHONPATH", "")  # compat's own shipping
    assert head.env is not None and "CUDA_VISIBLE_DEVICES" not in head.env.env
    numbering = sorted(r.facts.get("node_cuda_visible_devices", "?") for r in gpu_nodes)
    assert numbering == ["", "2,3"]
    # Ray numbers the second node's GPUs after its CUDA_VISIBLE_DEVICES and sets the worker's.
    for r in gpu_nodes:
        assert r.env is not None and r.env.env["CUDA_VISIBLE_DEVICES"] == r.facts["gpu_ids"]
    odd = next(r for r in gpu_nodes if r.node.gpus == 2)
    assert odd.env is not None and odd.env.env["NCCL_IB_DISABLE"] == "1"
    fs = compare(p.nodes)
    assert {f.message.split(" ")[0] for f in fs} == {"NCCL_IB_DISABLE", "GPU"}
    assert all(odd.node.label in f.message for f in fs)


@on_ray
def test_ray_cli_check_and_env(cluster: Any, tmp_path: Path) -> None:
    # Seed 002 on the cluster: sglang 0.5.12 reaches the workers through the runtime env
    # (PYTHONPATH), the standalone launch is checked as a Ray worker would run it.
    from tests.conftest import make_dist

    make_dist(tmp_path / "site", "sglang", "0.5.12")
    runtime_env = json.dumps(
        {"env_vars": {"PYTHONPATH": str(tmp_path / "site"), "SGLANG_MEMORY_SAVER_CUDA_GRAPH": "1"}}
    )
    launch = Path(__file__).parent / "assets" / "launch" / "seed002-standalone.sh"
    proc = cli(
        "check",
        "--ray",
        cluster.address,
        "--runtime-env",
        runtime_env,
        "--format",
        "json",
        "--launch-file",
        str(launch),
    )
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert [n["status"] for n in doc["nodes"]] == ["ok"] * 3
    for n in doc["nodes"]:
        assert n["subject"].startswith("sglang 0.5.12")
        assert "COMPAT-0003" in {f.get("advisory") for f in n["findings"]}
    assert any("NCCL_IB_DISABLE" in f["message"] for f in doc["cluster"])
    assert "3 node(s) probed" in proc.stderr
    proc = cli("check", "--ray", cluster.address, "--ignore", CLUSTER_MISMATCH)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Across the cluster: no findings (3 nodes compared)." in proc.stdout
    out = tmp_path / "cluster.json"
    proc = cli("env", "--ray", cluster.address, "--json", "-o", str(out), "--no-host")
    assert proc.returncode == 0, proc.stderr
    back = probe_from_dict(json.loads(out.read_text()))
    assert len(back.nodes) == 3 and all(r.env is not None for r in back.nodes)


@on_ray
def test_ray_unreachable_cluster_is_exit_4() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = cli("check", "--ray", f"127.0.0.1:{port}", "--ray-timeout", "5")
    assert proc.returncode == 4, proc.stderr
    assert "cannot reach the Ray cluster" in proc.stderr and "hint:" in proc.stderr


def kill_when_running(cluster: Any, node: Any, limit: float = 20.0) -> None:
    """Remove `node` once its probe runs (sleeping): a worker of that node's raylet whose process
    title Ray set to the task's name. (/proc, not Ray's state API: that needs the dashboard.)"""
    raylet = str(node.all_processes["raylet"][0].process.pid)
    end = time.monotonic() + limit
    while time.monotonic() < end and not _probe_running(raylet):
        time.sleep(0.2)
    cluster.remove_node(node, allow_graceful=False)


def _probe_running(raylet_pid: str) -> bool:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if not fh.read().startswith(b"ray::compat-probe"):
                    continue
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if f"RAY_RAYLET_PID={raylet_pid}".encode() in fh.read().split(b"\0"):
                    return True
        except OSError:
            continue
    return False


@on_ray
def test_ray_node_killed_mid_check_and_node_too_slow(cluster: Any) -> None:
    # Two more nodes whose probes sleep (the task below wraps the real probe): one is killed
    # while it sleeps, the other outlives --ray-timeout. The first three nodes still report.
    def sleepy(everything: bool, host: bool) -> dict[str, Any]:
        # Defined in the test so that Ray ships it by value; the raylets of the two extra nodes
        # carry SLOW_PROBE, their workers inherit it.
        delay = os.environ.get("SLOW_PROBE")
        if delay:
            time.sleep(float(delay))
        return probe_node(everything, host)

    doomed = cluster.add_node(num_cpus=1, env_vars={"SLOW_PROBE": "60"})
    slow = cluster.add_node(num_cpus=1, env_vars={"SLOW_PROBE": "60"})
    cluster.wait_for_nodes()
    killer = threading.Thread(target=kill_when_running, args=(cluster, doomed))
    killer.start()
    started = time.monotonic()
    try:
        p = collect(cluster.address, timeout=15, task=sleepy)
        took = time.monotonic() - started
    finally:
        killer.join()
        cluster.remove_node(slow, allow_graceful=False)
    print(f"collect {took:.1f} s, then kill+cleanup {time.monotonic() - started - took:.1f} s")
    assert took < 30, took  # --ray-timeout bounds the whole check, with a few seconds of slack
    by_id = {r.node.node_id: r for r in p.nodes}
    assert by_id[doomed.node_id].status is NodeStatus.DIED, by_id[doomed.node_id]
    assert by_id[slow.node_id].status is NodeStatus.TIMEOUT
    # "(RUNNING)" where Ray's dashboard answers for the task's state; without one, less said.
    assert "within 15 s" in by_id[slow.node_id].reason
    assert sum(r.status is NodeStatus.OK for r in p.nodes) == 3
    fs = compare(p.nodes)
    died = only(fs, "died during the check")
    assert died.severity is Severity.ERROR and by_id[doomed.node_id].node.label in died.message
    assert only(fs, "did not report").severity is Severity.WARNING


def test_ray_launch_is_parsed_for_the_framework_it_starts_not_the_first_installed() -> None:
    # A node with both sglang and vLLM installed, checked with a vLLM command: the launch is
    # vLLM's, with vLLM's release (its MoE default decides COMPAT-0004), not sglang's.
    # 0.20.0: the first release whose `auto` picks FlashInfer CUTLASS for unquantized MoE.
    env = with_dist(with_dist(BASE, "sglang", "0.5.12"), "vllm", "0.20.0")
    argv = ("vllm", "serve", "Qwen/Qwen3-Next-80B-A3B-Instruct", "--tensor-parallel-size", "4")
    launch = parse_launch_for(env, LaunchInput(argv=argv, under_ray=True))
    assert launch is not None and launch.framework == "vllm"
    assert launch.framework_version == Version("0.20.0")
    result = check_cluster(probe(report("a", env)), load_database(), LaunchInput(argv=argv))
    ((_, found),) = result.per_node
    # Without the model's config.json it "may apply" (reported with the others lacking it).
    told = {f.advisory for f in found} | {e.split(":")[0] for f in found for e in f.evidence}
    assert "COMPAT-0004" in told


def test_what_the_job_ships_is_enough_for_a_node_with_ray_alone(tmp_path: Path) -> None:
    """A node probe imports with the shipped folders, the standard library and what Ray itself
    depends on (packaging): no msgspec, click or compat installed there."""
    import shutil

    import packaging

    from compat.probe.ray import shipped_modules

    node = tmp_path / "node"
    node.mkdir()
    for folder in [*shipped_modules(), os.path.dirname(packaging.__file__)]:
        shutil.copytree(
            folder, node / os.path.basename(folder), ignore=shutil.ignore_patterns("__pycache__")
        )
    code = (
        "import sys; sys.path[:] = [p for p in sys.path if 'site-packages' not in p]; "
        f"sys.path.insert(0, {str(node)!r}); "
        # what probe_node runs in the Ray worker, less Ray's own runtime context
        "import compat.probe.ray; from compat.probe import probe_environment; "
        "from compat.snapshot import to_dict; r = to_dict(probe_environment(host=False)); "
        "print(sorted(r)[:3], 'click' in sys.modules)"
    )
    got = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert got.returncode == 0, got.stderr[-2000:]
    assert got.stdout.strip().endswith("False")
