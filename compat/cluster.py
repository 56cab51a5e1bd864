"""`--ray`: probe every node of a running Ray cluster in a Ray task, check each, compare them.

The probe runs where the server's actors run, as what they run as: a task pinned to each alive
node (hard node affinity), with a sliver of a GPU on GPU nodes so that Ray sets
CUDA_VISIBLE_DEVICES as it does for a GPU worker, and under the job's runtime env
(`--runtime-env`), so env_vars, pip/uv/conda and working_dir apply as they do to the server.
Ray is imported only here, and only when `--ray` is given.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import json
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from compat.errors import NetworkError, UsageError
from compat.models import Code, Environment, Finding, Severity, Unknown

CLUSTER_SCHEMA = "compat.cluster/1"
CLUSTER_FINDINGS_SCHEMA = "compat.cluster-findings/1"
DEFAULT_TIMEOUT = 60.0
INSTALL_HINT = "pip install 'compat[ray]'"
# Test hook: the probe task sleeps this many seconds first (set in one node's raylet environment
# to hold its task while a test kills the node).
SLEEP_VAR = "COMPAT_TEST_PROBE_SLEEP"
# What the probe asks of a GPU node: a sliver, so it still runs beside fractional users, and Ray
# still sets CUDA_VISIBLE_DEVICES for it as for any GPU worker.
GPU_SHARE = 0.01
CONNECT_HINT = (
    "run compat on a node of the cluster (on the head node, --ray auto finds it), or pass "
    "the GCS address (--ray HOST:6379) or a Ray Client address (--ray ray://HOST:10001)"
)


class NodeStatus(enum.Enum):
    OK = "ok"
    TIMEOUT = "timeout"  # no answer before --ray-timeout (not scheduled, or the probe hung)
    DIED = "died"  # the node died while its probe ran
    FAILED = "failed"  # the task raised, or its runtime env could not be set up


@dataclass(frozen=True)
class Node:
    """A node as the cluster lists it when the check starts."""

    node_id: str
    address: str
    hostname: str
    head: bool = False
    gpus: float = 0.0  # Ray's GPU resource on the node
    label: str = ""  # short unique name for reports (hostname, or hostname/id when shared)


@dataclass(frozen=True)
class NodeReport:
    node: Node
    status: NodeStatus
    env: Optional[Environment] = None
    reason: str = ""
    # What the task saw of Ray: version, GPU ids it was given, the raylet's CUDA_VISIBLE_DEVICES.
    facts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterProbe:
    """One probe per alive node, in a stable order (head first, then by label)."""

    address: str
    nodes: tuple[NodeReport, ...]
    runtime_env: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float = DEFAULT_TIMEOUT
    elapsed_s: float = 0.0
    ray_version: str = ""


@dataclass(frozen=True)
class ClusterResult:
    probe: ClusterProbe
    per_node: tuple[tuple[NodeReport, tuple[Finding, ...]], ...]
    cluster: tuple[Finding, ...]

    def all_findings(self) -> list[Finding]:
        out = [f for _, fs in self.per_node for f in fs]
        return out + list(self.cluster)


# Options --------------------------------------------------------------------------------------
def parse_runtime_env(text: Optional[str]) -> dict[str, Any]:
    """`--runtime-env JSON`: a JSON object, as `ray job submit --runtime-env-json` takes it."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(
            f"--runtime-env is not valid JSON ({exc})",
            hint='e.g. --runtime-env \'{"env_vars": {"NCCL_NVLS_ENABLE": "1"}}\'',
        ) from exc
    if not isinstance(value, dict):
        raise UsageError(
            "--runtime-env must be a JSON object",
            hint='e.g. --runtime-env \'{"env_vars": {"NCCL_NVLS_ENABLE": "1"}}\'',
        )
    return value


def check_options(
    ray: Optional[str],
    runtime_env: Optional[str],
    timeout: Optional[float],
    conflicts: Mapping[str, object],
) -> None:
    """Usage errors for `--ray` and its companions; `conflicts` are options that describe one host."""
    if ray is None:
        given = [
            n
            for n, v in (("--runtime-env", runtime_env), ("--ray-timeout", timeout))
            if v is not None
        ]
        if given:
            raise UsageError(
                f"{' and '.join(given)} {'apply' if len(given) > 1 else 'applies'} only with --ray",
                hint="add --ray (or --ray ADDRESS) to check a Ray cluster",
            )
        return
    bad = sorted(name for name, value in conflicts.items() if value)
    if bad:
        raise UsageError(
            f"{', '.join(bad)} cannot be combined with --ray: each node is probed "
            "where the server's workers run",
            hint="drop them, or check one host without --ray",
        )
    if timeout is not None and not timeout > 0:
        raise UsageError(f"--ray-timeout {timeout:g}: expected a number of seconds above 0")


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        missing = isinstance(exc, ModuleNotFoundError) and exc.name == "ray"
        raise UsageError(
            "--ray needs Ray, which is not installed here"
            if missing
            else f"--ray needs Ray, which cannot be imported here ({exc})",
            hint=f"{INSTALL_HINT} (the same Ray version as the cluster)",
        ) from exc
    return ray


# The task that runs on each node ----------------------------------------------------------------
def probe_node(everything: bool = False, host: bool = True) -> dict[str, Any]:
    """Runs on the node, in a Ray worker: the compat.env/1 snapshot and what Ray gave the task."""
    delay = os.environ.get(SLEEP_VAR)
    if delay:
        time.sleep(float(delay))
    import ray

    from compat.probe import probe_environment
    from compat.snapshot import to_dict

    started = time.monotonic()
    environ = dict(os.environ)
    if "PYTHONPATH" in environ:
        # compat itself arrives through the job's py_modules: not part of what the server sees.
        rest = [p for p in environ["PYTHONPATH"].split(os.pathsep) if p and not _shipped(p)]
        if rest:
            environ["PYTHONPATH"] = os.pathsep.join(rest)
        else:
            del environ["PYTHONPATH"]
    env = probe_environment(everything=everything, environ=environ, host=host)
    data = to_dict(env)
    rc = ray.get_runtime_context()
    try:
        ids = rc.get_accelerator_ids().get("GPU", [])
    except AttributeError:  # Ray before 2.8
        ids = [str(i) for i in ray.get_gpu_ids()]
    facts = {
        "ray": ray.__version__,
        "gpu_ids": ",".join(str(i) for i in ids),
        "worker_pid": str(os.getpid()),
        "probe_s": f"{time.monotonic() - started:.2f}",
    }
    node_cvd = _raylet_env("CUDA_VISIBLE_DEVICES")
    if node_cvd is not None:
        facts["node_cuda_visible_devices"] = node_cvd
    util: Any = ray.util
    return {
        "node_id": rc.get_node_id(),
        "hostname": socket.gethostname(),
        "address": util.get_node_ip_address(),
        "facts": facts,
        "env": data,
    }


def _shipped(entry: str) -> bool:
    """A PYTHONPATH entry that Ray made for this compat (the job's py_modules)."""
    return "runtime_resources" in entry and os.path.isfile(
        os.path.join(entry, "compat", "cluster.py")
    )


def _raylet_env(name: str) -> Optional[str]:
    """A variable of the raylet's own environment (how the node was started): the value, "" when
    unset, None when it cannot be read (another user's process, no /proc)."""
    pid = os.environ.get("RAY_RAYLET_PID")
    if not pid or not pid.isdigit():
        return None
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    prefix = name.encode() + b"="
    for item in raw.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix) :].decode("utf-8", "replace")
    return ""


# Talking to the cluster ---------------------------------------------------------------------------
def collect(
    address: str = "auto",
    runtime_env: Optional[Mapping[str, Any]] = None,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    everything: bool = False,
    host: bool = True,
    ship: bool = True,
) -> ClusterProbe:
    """Connect, run the probe on every alive node, wait at most `timeout` seconds in all.

    Nodes that do not answer in time, die, or fail are reports of their own; the rest still
    report. `ship` sends this compat to the nodes with the job (py_modules), so nodes need Ray
    but not compat.
    """
    ray = import_ray()
    start = time.monotonic()
    deadline = start + timeout
    job_env = dict(runtime_env or {})
    owned = not ray.is_initialized()
    if owned:
        if ship:
            import compat

            job_env["py_modules"] = [
                *job_env.get("py_modules", []),
                os.path.dirname(os.path.abspath(compat.__file__)),
            ]
        _connect(ray, address, job_env, deadline, user_env=bool(runtime_env))
    try:
        nodes = _alive_nodes(ray)
        # Connected already (compat used as a library in a driver): the runtime env goes with
        # each task instead of the job (it cannot carry local directories then).
        reports = _run_probes(
            ray, nodes, deadline, timeout, everything, host, None if owned else runtime_env
        )
    finally:
        if owned:
            ray.shutdown()
    return ClusterProbe(
        address=address,
        nodes=tuple(order(reports)),
        runtime_env=dict(runtime_env or {}),
        timeout_s=timeout,
        elapsed_s=round(time.monotonic() - start, 2),
        ray_version=str(ray.__version__),
    )


def _connect(
    ray: Any, address: str, job_env: dict[str, Any], deadline: float, *, user_env: bool = False
) -> None:
    """ray.init, bounded: a GCS address that is not answering makes ray.init retry for minutes."""
    import logging
    import threading

    target = _bootstrap_address(address)
    if target:
        _tcp_reachable(target, max(0.5, min(5.0, deadline - time.monotonic())))
    outcome: dict[str, BaseException] = {}

    def init() -> None:
        try:
            ray.init(
                address=address,
                runtime_env=job_env or None,
                namespace="compat",
                logging_level=logging.ERROR,
                log_to_driver=False,
            )
        except BaseException as exc:  # handed to the waiting thread
            outcome["error"] = exc

    worker = threading.Thread(target=init, name="compat-ray-init", daemon=True)
    worker.start()
    worker.join(max(0.5, deadline - time.monotonic()))
    if worker.is_alive():
        raise NetworkError(
            f"could not connect to the Ray cluster at {address} within the --ray-timeout",
            hint=CONNECT_HINT,
        )
    exc = outcome.get("error")
    if exc is None:
        return
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, (ValueError, TypeError)) and user_env:
        raise UsageError(
            f"--runtime-env was refused by Ray: {text}",
            hint="see https://docs.ray.io/en/latest/ray-core/api/runtime-env.html",
        ) from exc
    raise NetworkError(
        f"could not connect to the Ray cluster at {address}: {text}",
        hint=CONNECT_HINT + "; the Ray and Python versions here must match the cluster's",
    ) from exc


def _bootstrap_address(address: str) -> Optional[str]:
    """host:port that must answer before ray.init is worth trying; None when Ray finds it itself."""
    if address.startswith("ray://"):
        rest = address[len("ray://") :].split("/", 1)[0]
        return rest if ":" in rest else f"{rest}:10001"
    if address in ("auto", ""):
        try:
            from ray._private.services import canonicalize_bootstrap_address
        except ImportError:  # a private helper: without it ray.init finds the cluster itself
            return None
        try:
            found = canonicalize_bootstrap_address(address)
        except ConnectionError as exc:
            raise NetworkError(
                f"no running Ray cluster found ({str(exc).splitlines()[0]})", hint=CONNECT_HINT
            ) from exc
        except Exception:  # best effort: ray.init reports its own error
            return None
        if not found:
            raise NetworkError("no running Ray cluster found on this machine", hint=CONNECT_HINT)
        return str(found)
    return address if ":" in address else None


def _tcp_reachable(hostport: str, timeout: float) -> None:
    host, _, port = hostport.rpartition(":")
    if not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise NetworkError(
            f"cannot reach the Ray cluster at {hostport}: {why}", hint=CONNECT_HINT
        ) from exc


def _alive_nodes(ray: Any) -> list[Node]:
    out = []
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        resources = n.get("Resources") or {}
        out.append(
            Node(
                node_id=str(n["NodeID"]),
                address=str(n.get("NodeManagerAddress", "")),
                hostname=str(n.get("NodeManagerHostname", "")),
                head="node:__internal_head__" in resources,
                gpus=float(resources.get("GPU", 0.0)),
            )
        )
    return label_nodes(out)


def _run_probes(
    ray: Any,
    nodes: Sequence[Node],
    deadline: float,
    timeout: float,
    everything: bool,
    host: bool,
    task_env: Optional[Mapping[str, Any]] = None,
) -> list[NodeReport]:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(probe_node)
    pending: dict[Any, Node] = {}
    reports: list[NodeReport] = []
    for node in nodes:
        opts: dict[str, Any] = {
            "scheduling_strategy": NodeAffinitySchedulingStrategy(node.node_id, soft=False),
            "num_cpus": 0,
            "max_retries": 0,
            "retry_exceptions": False,
            "name": "compat-probe",
        }
        if node.gpus > 0:
            opts["num_gpus"] = min(GPU_SHARE, node.gpus)
        if task_env:
            opts["runtime_env"] = dict(task_env)
        pending[task.options(**opts).remote(everything, host)] = node
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=left)
        for ref in ready:
            node = pending.pop(ref)
            reports.append(_outcome(ray, ref, node))
    alive = _alive_ids(ray) if pending else set()
    states = _task_states(ray) if pending else {}
    for ref, node in pending.items():
        state = states.get(ref.task_id().hex(), "")
        with contextlib.suppress(Exception):  # the node may already be gone
            ray.cancel(ref, force=True)
        if alive is not None and node.node_id not in alive:
            reports.append(
                NodeReport(
                    node,
                    NodeStatus.DIED,
                    reason=(
                        f"the node left the cluster before its probe answered ({state or 'state unknown'})"
                    ),
                )
            )
            continue
        if state.startswith("PENDING"):
            why = (
                f"its probe was not scheduled within {timeout:g} s ({state}): the node's "
                + (
                    "GPUs may all be held by other tasks or actors"
                    if node.gpus > 0
                    else "resources may all be held"
                )
                + ", or its runtime env is still being set up"
            )
        elif state:
            why = f"its probe did not finish within {timeout:g} s ({state}): a hung driver or filesystem?"
        else:
            why = f"no answer within {timeout:g} s"
        reports.append(NodeReport(node, NodeStatus.TIMEOUT, reason=why))
    return reports


def _outcome(ray: Any, ref: Any, node: Node) -> NodeReport:
    from ray import exceptions as rex

    # Names differ between Ray releases (NodeDiedError is newer than 2.9): take those that exist.
    died = tuple(
        getattr(rex, n)
        for n in ("NodeDiedError", "WorkerCrashedError", "ObjectLostError", "LocalRayletDiedError")
        if hasattr(rex, n)
    )
    setup = tuple(getattr(rex, n) for n in ("RuntimeEnvSetupError",) if hasattr(rex, n))
    try:
        data = ray.get(ref, timeout=10)
    except setup as exc:
        return NodeReport(
            node,
            NodeStatus.FAILED,
            reason=f"the runtime env could not be set up: {_setup_error(str(exc))}",
            facts={"runtime_env_failed": "true"},
        )
    except died as exc:
        return NodeReport(node, NodeStatus.DIED, reason=_first_line(exc))
    except rex.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        return NodeReport(
            node, NodeStatus.FAILED, reason=f"the probe raised {_first_line(cause or exc)}"
        )
    except rex.RayError as exc:
        alive = _alive_ids(ray)
        # A task bound to a node that died before it started fails as unschedulable.
        status = (
            NodeStatus.DIED
            if alive is not None and node.node_id not in alive
            else NodeStatus.FAILED
        )
        return NodeReport(node, status, reason=f"{type(exc).__name__}: {_first_line(exc)}")
    return report_from_task(node, data)


def _alive_ids(ray: Any) -> Optional[set[str]]:
    try:
        return {str(n["NodeID"]) for n in ray.nodes() if n.get("Alive")}
    except Exception:  # the cluster itself may be going away: then nothing is known
        return None


def _setup_error(text: str, limit: int = 400) -> str:
    """The gist of a runtime-env setup failure, which Ray reports as a whole traceback: the last
    exception line and the last line of output (pip's or conda's own error)."""
    import re

    lines = [x.strip() for x in text.splitlines() if x.strip()]
    if not lines:
        return "no details"
    raised = [x for x in lines if re.match(r"^[\w.]+(Error|Exception)\b[^:]*:", x)]
    if raised:
        name, _, message = raised[-1].partition(":")
        parts = [f"{name.rsplit('.', 1)[-1]}:{message}"]
    else:
        parts = [lines[0]]
    if lines[-1] not in parts[0]:
        parts.append(lines[-1])
    gist = " / ".join(parts)
    return gist if len(gist) <= limit else gist[: limit - 3] + "..."


def _first_line(exc: BaseException) -> str:
    lines = [x.strip() for x in str(exc).strip().splitlines() if x.strip()]
    if isinstance(exc, Exception) and type(exc).__module__ == "builtins":
        return f"{type(exc).__name__}: {lines[-1] if lines else ''}".rstrip(": ")
    return lines[0] if lines else type(exc).__name__


def _task_states(ray: Any, limit: float = 3.0) -> dict[str, str]:
    """State of this job's probe tasks by task id, from Ray's state API (the dashboard), within
    `limit` seconds; empty when it cannot tell (no dashboard, Ray Client, an older Ray). Without a
    dashboard the state API keeps retrying far longer than its own timeout: hence the thread."""
    import threading

    found: dict[str, str] = {}

    def query() -> None:
        try:
            from ray.util.state import list_tasks

            job = ray.get_runtime_context().get_job_id()
            tasks: Any = list_tasks(
                filters=[("name", "=", "compat-probe"), ("job_id", "=", job)],
                timeout=max(1, int(limit)),
                raise_on_missing_output=False,
            )
            found.update({str(t.task_id): str(t.state or "") for t in tasks})
        except Exception:  # best effort
            return

    worker = threading.Thread(target=query, name="compat-ray-state", daemon=True)
    worker.start()
    worker.join(limit)
    return dict(found) if not worker.is_alive() else {}


# Records <-> dicts ------------------------------------------------------------------------------
def report_from_task(node: Node, data: Any) -> NodeReport:
    """A node's report from what its task returned (a snapshot that does not read is a failure)."""
    from compat.errors import InputError
    from compat.snapshot import from_dict

    if not isinstance(data, dict):
        return NodeReport(node, NodeStatus.FAILED, reason="the probe returned no snapshot")
    if data.get("hostname") and not node.hostname:
        node = dataclasses.replace(node, hostname=str(data["hostname"]))
    try:
        env = from_dict(data.get("env"), origin=f"ray node {node.label or node.node_id[:8]}")
    except InputError as exc:
        return NodeReport(node, NodeStatus.FAILED, reason=exc.message)
    env = dataclasses.replace(env, source=f"ray node {node.label or node.node_id[:8]}")
    facts = {str(k): str(v) for k, v in (data.get("facts") or {}).items()}
    return NodeReport(node, NodeStatus.OK, env=env, facts=facts)


def label_nodes(nodes: Sequence[Node]) -> list[Node]:
    """Short names: the hostname where it is unique, hostname/<node id prefix> where it is not."""
    base = {n.node_id: n.hostname or n.address or n.node_id[:8] for n in nodes}
    counts: dict[str, int] = {}
    for b in base.values():
        counts[b] = counts.get(b, 0) + 1
    return [
        dataclasses.replace(
            n,
            label=base[n.node_id]
            if counts[base[n.node_id]] == 1
            else f"{base[n.node_id]}/{n.node_id[:6]}",
        )
        for n in nodes
    ]


def order(reports: Sequence[NodeReport]) -> list[NodeReport]:
    return sorted(reports, key=lambda r: (not r.node.head, r.node.label, r.node.node_id))


def probe_to_dict(probe: ClusterProbe) -> dict[str, Any]:
    from compat.snapshot import to_dict

    return {
        "schema": CLUSTER_SCHEMA,
        "address": probe.address,
        "ray": probe.ray_version,
        "runtime_env": dict(probe.runtime_env),
        "timeout_s": probe.timeout_s,
        "elapsed_s": probe.elapsed_s,
        "nodes": [
            dict(node_dict(r), env=to_dict(r.env) if r.env is not None else None)
            for r in probe.nodes
        ],
    }


def node_dict(r: NodeReport) -> dict[str, Any]:
    n = r.node
    return {
        "node_id": n.node_id,
        "label": n.label,
        "hostname": n.hostname,
        "address": n.address,
        "head": n.head,
        "gpus": n.gpus,
        "status": r.status.value,
        "reason": r.reason,
        "facts": dict(sorted(r.facts.items())),
    }


def probe_from_dict(data: Any, origin: str = "cluster snapshot") -> ClusterProbe:
    """Read `compat env --ray --json` back (InputError naming the key on anything malformed)."""
    from compat.errors import InputError

    def fail(path: str, what: str) -> InputError:
        return InputError(
            f"{origin}: {what} at '{path}'", hint="write it with `compat env --ray --json -o FILE`"
        )

    if not isinstance(data, dict) or data.get("schema") != CLUSTER_SCHEMA:
        raise fail("schema", f"not a {CLUSTER_SCHEMA} document")
    nodes = data.get("nodes")
    if not isinstance(nodes, list):
        raise fail("nodes", "expected a list")
    reports = []
    for i, nd in enumerate(nodes):
        if not isinstance(nd, dict) or not isinstance(nd.get("node_id"), str):
            raise fail(f"nodes[{i}].node_id", "missing value")
        try:
            status = NodeStatus(nd.get("status"))
        except ValueError as exc:
            raise fail(f"nodes[{i}].status", f"unknown status {nd.get('status')!r}") from exc
        node = Node(
            node_id=nd["node_id"],
            address=str(nd.get("address", "")),
            hostname=str(nd.get("hostname", "")),
            head=bool(nd.get("head", False)),
            gpus=float(nd.get("gpus") or 0.0),
            label=str(nd.get("label") or ""),
        )
        if status is NodeStatus.OK:
            r = report_from_task(node, {"env": nd.get("env"), "facts": nd.get("facts")})
            if r.status is not NodeStatus.OK:
                raise fail(f"nodes[{i}].env", r.reason)
        else:
            r = NodeReport(
                node,
                status,
                reason=str(nd.get("reason", "")),
                facts={str(k): str(v) for k, v in (nd.get("facts") or {}).items()},
            )
        reports.append(r)
    return ClusterProbe(
        address=str(data.get("address", "")),
        nodes=tuple(order(reports)),
        runtime_env=dict(data.get("runtime_env") or {}),
        timeout_s=float(data.get("timeout_s") or DEFAULT_TIMEOUT),
        elapsed_s=float(data.get("elapsed_s") or 0.0),
        ray_version=str(data.get("ray", "")),
    )


# Checking ----------------------------------------------------------------------------------------
def check_cluster(
    probe: ClusterProbe,
    matrix: Any,
    advisories: Sequence[Any] = (),
    *,
    launch_argv: Sequence[str] = (),
    launch_text: Optional[str] = None,
    env_vars: Sequence[str] = (),
    ignore: Sequence[str] = (),
) -> ClusterResult:
    """Each node's findings (the checks of `compat check` on its Environment), then the cluster's:
    nodes that did not report, and what differs between the nodes. Pure."""
    from compat.check import Context, run_checks
    from compat.inputs import apply_overrides

    per_node: list[tuple[NodeReport, tuple[Finding, ...]]] = []
    for r in probe.nodes:
        if r.env is None:
            per_node.append((r, ()))
            continue
        env = apply_overrides(r.env, matrix, env_vars=env_vars)
        launch = _launch(env, launch_argv, launch_text)
        fs = run_checks(Context(env=env, matrix=matrix, launch=launch), advisories, ignore)
        per_node.append((r, tuple(fs)))
    drop = set(ignore)
    cluster = [f for f in compare(probe.nodes) if f.code not in drop]
    # Worst first; within a severity, compare()'s order: missing nodes, then stack, host, env.
    cluster.sort(key=lambda f: -f.severity.rank)
    return ClusterResult(probe, tuple(per_node), tuple(cluster))


def _launch(env: Environment, argv: Sequence[str], text: Optional[str]) -> Any:
    from compat.launch import parse_launch, parse_launch_text

    fw = env.version_of("sglang") or env.version_of("vllm")
    if argv:
        return parse_launch(list(argv), fw, env=env.env, under_ray=True)
    if text is not None:
        return parse_launch_text(text, fw)
    return None


# Heterogeneity ------------------------------------------------------------------------------------
CLUSTER_MISMATCH = Code.CLUSTER_MISMATCH.value
_MISMATCH = CLUSTER_MISMATCH
# Differences here break a distributed server outright: ranks must run the same framework, torch,
# triton, kernels and NCCL (NCCL's wire protocol is not stable across versions).
_CRITICAL = frozenset(
    {
        "sglang",
        "vllm",
        "sglang-router",
        "triton",
        "pytorch-triton",
        "pytorch-triton-rocm",
        "flashinfer-python",
        "flashinfer-cubin",
        "flashinfer-jit-cache",
        "flashinfer",
        "sgl-kernel",
        "sglang-kernel",
        "xformers",
        "flash-attn",
        "flash-attn-3",
        "deep-ep",
        "deep-gemm",
        "nixl",
        "nvidia-nccl-cu12",
        "nvidia-nccl-cu13",
        "nvidia-nccl",
        "cuda-toolkit",
        "ray",
    }
)
# Env vars that differ from node to node by design, or that only name local paths.
_ENV_SKIP_EXACT = frozenset(
    {
        "PATH",
        "VIRTUAL_ENV",
        "CONDA_PREFIX",
        "MASTER_ADDR",
        "MASTER_PORT",
        "RANK",
        "LOCAL_RANK",
        "WORLD_SIZE",
        "OMP_NUM_THREADS",
        "HF_HOME",
        "XDG_CACHE_HOME",
        "TORCHINDUCTOR_CACHE_DIR",
        "TRITON_CACHE_DIR",
        "CUDA_CACHE_PATH",
        "CUDA_MPS_PIPE_DIRECTORY",
    }
)
_ENV_SKIP_PREFIXES = ("RAY_", "COMPAT_")
_ENV_KEEP = frozenset({"RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"})
_SHOW = 4  # node names in a message before "+N more"


def compare(reports: Sequence[NodeReport]) -> list[Finding]:
    """Cluster findings: every node that did not report, and every way the reporting nodes differ.

    GPU-side facts (driver, GPUs, GPU numbering) are compared between GPU nodes; the stack and its
    env vars between the nodes that serve (the GPU nodes when there are any: a CPU-only head
    that runs no server need not carry torch); Python between all nodes (Ray requires one).
    """
    out = [_unreported(r) for r in reports if r.status is not NodeStatus.OK or r.env is None]
    ok = [r for r in reports if r.status is NodeStatus.OK and r.env is not None]
    if len(ok) < 2:
        return out
    gpu = [r for r in ok if _has_gpus(r)]
    peers = gpu or ok
    out.extend(_python(ok))
    out.extend(_torch(peers))
    out.extend(_packages(peers))
    out.extend(_driver(gpu))
    out.extend(_gpu_models(gpu))
    out.extend(_numbering(gpu))
    out.extend(_env_vars(peers))
    return out


def _has_gpus(r: NodeReport) -> bool:
    if r.node.gpus > 0:
        return True
    g = r.env.gpus if r.env is not None else None
    return g is not None and not isinstance(g, Unknown) and len(g) > 0


def _unreported(r: NodeReport) -> Finding:
    name = _describe(r.node)
    if r.status is NodeStatus.DIED:
        return Finding(
            _MISMATCH,
            Severity.ERROR,
            f"node {name} died during the check: not checked",
            evidence=(r.reason,) if r.reason else (),
            fix=(
                "ray status   # which nodes are alive; see the node's raylet.out for why it died",
            ),
        )
    if r.status is NodeStatus.TIMEOUT:
        return Finding(
            _MISMATCH,
            Severity.WARNING,
            f"node {name} did not report: not checked",
            evidence=(r.reason,) if r.reason else (),
            fix=("run again with a longer --ray-timeout, or when the node's GPUs are free",),
        )
    if r.facts.get("runtime_env_failed"):
        return Finding(
            _MISMATCH,
            Severity.ERROR,
            f"node {name}: the runtime env cannot be set up there, so neither can the "
            "server's actors",
            evidence=(r.reason,),
            fix=("fix the --runtime-env (pip/uv/conda/working_dir) for this node",),
        )
    return Finding(
        _MISMATCH,
        Severity.WARNING,
        f"node {name}: the probe failed: not checked",
        evidence=(r.reason,) if r.reason else (),
        fix=(
            f"compat env on the node itself ({r.node.address or r.node.hostname}) shows what fails",
        ),
    )


def _describe(n: Node) -> str:
    extra = [
        x
        for x in (n.address if n.address and n.address != n.label else "", "head" if n.head else "")
        if x
    ]
    return f"{n.label} ({', '.join(extra)})" if extra else n.label


def _groups(values: Mapping[str, str]) -> list[tuple[str, list[str]]]:
    """(value, node labels), largest group first: the majority is what the others should match."""
    by: dict[str, list[str]] = {}
    for label, v in values.items():
        by.setdefault(v, []).append(label)
    return sorted(((v, sorted(ls)) for v, ls in by.items()), key=lambda g: (-len(g[1]), g[0]))


def _names(labels: Sequence[str]) -> str:
    if len(labels) <= _SHOW:
        return ", ".join(labels)
    return f"{', '.join(labels[:_SHOW])} +{len(labels) - _SHOW} more"


def _differs(
    what: str,
    values: Mapping[str, str],
    severity: Severity,
    fix: Callable[[Optional[str], list[str]], str],
    packages: tuple[str, ...] = (),
) -> list[Finding]:
    """One finding when the nodes do not all have the same value; the fix names the odd nodes and
    the majority's value (no value when there is no majority: the user picks)."""
    groups = _groups(values)
    if len(groups) < 2:
        return []
    tie = len(groups[0][1]) == len(groups[1][1])
    majority = None if tie else groups[0][0]
    others = sorted(label for _, ls in (groups if tie else groups[1:]) for label in ls)
    summary = "; ".join(f"{v} on {_names(ls)}" for v, ls in groups)
    # The message names at most _SHOW nodes per value; the evidence then lists them all.
    evidence = (
        tuple(f"{v}: {', '.join(ls)}" for v, ls in groups)
        if any(len(ls) > _SHOW for _, ls in groups)
        else ()
    )
    return [
        Finding(
            _MISMATCH,
            severity,
            f"{what} differs across nodes: {summary}",
            evidence=evidence,
            fix=(fix(majority, others),),
            packages=packages,
        )
    ]


def _python(ok: Sequence[NodeReport]) -> list[Finding]:
    full = {}
    for r in ok:
        assert r.env is not None
        p = r.env.python
        if not isinstance(p, Unknown):
            full[r.node.label] = p.version
    minor = {k: ".".join(v.split(".")[:2]) for k, v in full.items()}

    def fix(v: Optional[str], others: list[str]) -> str:
        target = f"Python {v} on {_names(others)} too" if v else "one Python on every node"
        return f"use {target} (Ray requires the same Python on every node)"

    if len(set(minor.values())) > 1:
        return _differs("Python", full, Severity.ERROR, fix)
    return _differs("Python", full, Severity.INFO, fix)


def _torch(peers: Sequence[NodeReport]) -> list[Finding]:
    values = {}
    for r in peers:
        assert r.env is not None
        t = r.env.torch
        if isinstance(t, Unknown):
            values[r.node.label] = "not installed" if "not installed" in t.reason else "unknown"
            continue
        build = (
            f"CUDA {t.cuda or t.cuda_from_deps}"
            if (t.cuda or t.cuda_from_deps)
            else (f"ROCm {t.hip}" if t.hip else "CPU")
        )
        values[r.node.label] = f"{t.version} ({build})"
    if set(values.values()) <= {"unknown"}:
        return []
    return _differs(
        "torch build",
        values,
        Severity.ERROR,
        lambda v, others: (
            (
                f"install torch {v} on {_names(others)}"
                if v
                else "install one torch build on every node"
            )
            + ": every rank must run the same torch build"
        ),
        packages=("torch",),
    )


def _packages(peers: Sequence[NodeReport]) -> list[Finding]:
    names: dict[str, str] = {}
    for r in peers:
        assert r.env is not None
        for d in r.env.distributions:
            names.setdefault(d.key, d.name)
    out: list[Finding] = []
    rest: list[tuple[str, dict[str, str]]] = []
    for key in sorted(names):
        if key == "torch":
            continue  # its build is compared above
        values = {}
        for r in peers:
            assert r.env is not None
            found = next((x for x in r.env.distributions if x.key == key), None)
            values[r.node.label] = (
                "not installed"
                if found is None
                else f"broken ({found.broken})"
                if found.broken
                else found.raw_version
            )
        if len(set(values.values())) < 2:
            continue
        if key in _CRITICAL:
            out.extend(
                _differs(
                    names[key],
                    values,
                    Severity.ERROR,
                    functools.partial(_pin, names[key]),
                    packages=(names[key],),
                )
            )
        else:
            rest.append((names[key], values))
    if rest:
        evidence: list[str] = []
        for name, values in rest:
            evidence.extend(f"{name} = {v}: {', '.join(ls)}" for v, ls in _groups(values))
        odd = sorted({label for _, values in rest for _, ls in _groups(values)[1:] for label in ls})
        listed = ", ".join(n for n, _ in rest[:8]) + (
            f" +{len(rest) - 8} more" if len(rest) > 8 else ""
        )
        out.append(
            Finding(
                _MISMATCH,
                Severity.WARNING,
                f"{len(rest)} other package(s) differ across nodes: {listed}",
                evidence=tuple(evidence),
                fix=(
                    f"install the same packages on {_names(odd)} as on the other nodes "
                    "(one image, or one lock file: compat lock)",
                ),
                packages=tuple(n for n, _ in rest),
            )
        )
    return out


def _pin(name: str, version: Optional[str], others: list[str]) -> str:
    if version is None:
        return f"install one version of {name} on every node (one image, or one lock: compat lock)"
    if version == "not installed":
        return f"pip uninstall {name}   # on {_names(others)}"
    if version.startswith("broken"):
        return f"reinstall {name} on the other nodes"
    return f"pip install '{name}=={version}'   # on {_names(others)}"


def _driver(gpu: Sequence[NodeReport]) -> list[Finding]:
    values = {}
    for r in gpu:
        assert r.env is not None
        d = r.env.driver
        if isinstance(d, Unknown) or isinstance(d.version, Unknown):
            continue  # the node's own findings say why it is unknown
        cuda = "" if isinstance(d.cuda, Unknown) else f" (CUDA {d.cuda})"
        values[r.node.label] = f"{d.version}{cuda}"
    return _differs(
        "NVIDIA driver",
        values,
        Severity.WARNING,
        lambda v, others: (
            (
                f"install driver {v.split(' ')[0]} on {_names(others)} too"
                if v
                else "install one driver version on every GPU node"
            )
            + ": NCCL and CUDA IPC between ranks assume like drivers"
        ),
    )


def _gpu_models(gpu: Sequence[NodeReport]) -> list[Finding]:
    values = {}
    for r in gpu:
        assert r.env is not None
        g = r.env.gpus
        if isinstance(g, Unknown) or not g:
            continue
        kinds: dict[str, int] = {}
        for x in g:
            key = f"{x.name} ({x.sm})" if x.sm else x.name
            kinds[key] = kinds.get(key, 0) + 1
        values[r.node.label] = " + ".join(f"{n}x {k}" for k, n in sorted(kinds.items()))
    return _differs(
        "GPUs",
        values,
        Severity.WARNING,
        lambda v, others: (
            "keep one GPU model per serving group: give like nodes a "
            "custom resource (ray start --resources='{\"h100\": 8}') and ask for it"
        ),
    )


def _numbering(gpu: Sequence[NodeReport]) -> list[Finding]:
    """How each node exposes its GPUs to Ray: the raylet's CUDA_VISIBLE_DEVICES (`ray start`'s
    environment). Ray numbers a node's GPUs by it and hands those numbers to workers."""
    values = {}
    for r in gpu:
        v = r.facts.get("node_cuda_visible_devices")
        if v is None:
            continue  # could not read the raylet's environment
        values[r.node.label] = v if v else "unset (all GPUs)"
    return _differs(
        "GPU numbering (CUDA_VISIBLE_DEVICES that `ray start` ran with)",
        values,
        Severity.WARNING,
        lambda v, others: (
            "start every node's raylet with the same CUDA_VISIBLE_DEVICES "
            "(or none) and let Ray assign GPUs to workers"
        ),
    )


def _env_vars(peers: Sequence[NodeReport]) -> list[Finding]:
    keys: set[str] = set()
    for r in peers:
        assert r.env is not None
        keys.update(k for k in r.env.env if _compared(k))
    # Ray sets CUDA_VISIBLE_DEVICES to the GPU ids it gave the task: those differ by chance (which
    # GPU was free), not by setup. Only a value Ray did not assign is compared.
    if all(
        r.env is not None
        and r.env.env.get("CUDA_VISIBLE_DEVICES", "") == r.facts.get("gpu_ids", "")
        for r in peers
        if "gpu_ids" in r.facts
    ):
        keys.discard("CUDA_VISIBLE_DEVICES")
    out: list[Finding] = []
    for key in sorted(keys):
        values = {}
        for r in peers:
            assert r.env is not None
            v = r.env.env.get(key)
            values[r.node.label] = "unset" if v is None else repr(v)
        out.extend(_differs(key, values, Severity.WARNING, functools.partial(_env_fix, key)))
    return out


def _compared(key: str) -> bool:
    if key in _ENV_KEEP:
        return True
    return key not in _ENV_SKIP_EXACT and not key.startswith(_ENV_SKIP_PREFIXES)


def _env_fix(key: str, value: Optional[str], others: list[str]) -> str:
    if value is None:
        return (
            f"give {key} one value (or none) on every node: in `ray start`'s environment, or "
            f'for the job with --runtime-env \'{{"env_vars": {{"{key}": "..."}}}}\''
        )
    if value == "unset":
        return (
            f"unset {key} on {_names(others)} (in the environment `ray start` ran with, or the "
            "runtime env)"
        )
    plain = value[1:-1] if value.startswith(("'", '"')) else value
    return (
        f"set {key}={plain} on {_names(others)} too: in `ray start`'s environment, or for the "
        f'job with --runtime-env \'{{"env_vars": {{"{key}": "{plain}"}}}}\''
    )


# CLI entry points -------------------------------------------------------------------------------
def cluster_env(
    address: str,
    runtime_env: Optional[str],
    timeout: Optional[float],
    *,
    as_json: bool,
    everything: bool = False,
    host: bool = True,
) -> str:
    """`compat env --ray`: the report text (or JSON)."""
    import sys

    env = parse_runtime_env(runtime_env)
    probe = collect(address, env, timeout or DEFAULT_TIMEOUT, everything=everything, host=host)
    _summary(probe, sys.stderr)
    if as_json:
        return json.dumps(probe_to_dict(probe), indent=2) + "\n"
    from compat.format.cluster import format_cluster_env

    return format_cluster_env(probe)


def cluster_check(
    address: str,
    runtime_env: Optional[str],
    timeout: Optional[float],
    *,
    fmt: str,
    fail_on: str,
    env_vars: Sequence[str] = (),
    launch_file: Optional[str] = None,
    launch_argv: Sequence[str] = (),
    ignore: Sequence[str] = (),
) -> tuple[str, list[Finding]]:
    """`compat check --ray`: the report, and every finding (for the exit code)."""
    import sys

    from compat.advisories import load_advisories
    from compat.format.cluster import format_cluster_findings
    from compat.matrix.load import Matrix
    from compat.resources import advisories_dir

    env = parse_runtime_env(runtime_env)
    import_ray()  # before loading the database: say at once when Ray is missing
    text = None
    if launch_file and not launch_argv:
        from compat.snapshot import read_text

        text = read_text(launch_file)
    matrix = Matrix()
    advisories = load_advisories(advisories_dir())
    probe = collect(address, env, timeout or DEFAULT_TIMEOUT)
    _summary(probe, sys.stderr)
    result = check_cluster(
        probe,
        matrix,
        advisories,
        launch_argv=launch_argv,
        launch_text=text,
        env_vars=env_vars,
        ignore=ignore,
    )
    return format_cluster_findings(result, fmt, fail_on), result.all_findings()


def _summary(probe: ClusterProbe, stream: Any) -> None:
    counts: dict[str, int] = {}
    for r in probe.nodes:
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
    parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    print(
        f"ray {probe.ray_version}: {len(probe.nodes)} node(s) probed in {probe.elapsed_s:.1f} s "
        f"({parts or 'none'})",
        file=stream,
    )
