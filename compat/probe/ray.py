"""`--ray`: the probe of every node of a running Ray cluster, run as a Ray task on each node.

The probe runs where the server's actors run, as what they run as: a task pinned to each alive
node (hard node affinity), with a sliver of a GPU on GPU nodes so that Ray sets
CUDA_VISIBLE_DEVICES as it does for a GPU worker, and under the job's runtime env
(`--runtime-env`), so env_vars, pip/uv/conda and working_dir apply as they do to the server.
Ray is imported only here, and only when `--ray` is given.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

from compat.errors import NetworkError, UsageError
from compat.models import ClusterProbe, Node, NodeReport, NodeStatus
from compat.snapshot import label_nodes, node_report_from_task, order

DEFAULT_TIMEOUT = 60.0
INSTALL_HINT = "pip install 'compat[ray]'"
# What the probe asks of a GPU node: a sliver, so it still runs beside fractional users, and Ray
# still sets CUDA_VISIBLE_DEVICES for it as for any GPU worker.
GPU_SHARE = 0.01
CONNECT_HINT = (
    "run compat on a node of the cluster (on the head node, --ray auto finds it), or pass "
    "the GCS address (--ray HOST:6379) or a Ray Client address (--ray ray://HOST:10001)"
)


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


def probe_node(everything: bool = False, host: bool = True) -> dict[str, Any]:
    """Runs on the node, in a Ray worker: the compat.env/1 snapshot and what Ray gave the task."""
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
    """A PYTHONPATH entry that Ray made for this compat (the job's py_modules): compat's folder,
    or the msgspec folder this worker imported msgspec from (shipped beside compat)."""
    if "runtime_resources" not in entry:
        return False
    if os.path.isfile(os.path.join(entry, "compat", "probe", "ray.py")):
        return True
    import msgspec

    loaded = os.path.dirname(os.path.abspath(msgspec.__file__ or ""))
    return os.path.dirname(loaded) == os.path.abspath(entry)


def _raylet_env(name: str) -> Optional[str]:
    """A variable of the raylet's own environment (how the node was started): the value, "" when
    unset, None when it cannot be read (another user's process, no /proc)."""
    pid = os.environ.get("RAY_RAYLET_PID")
    if not pid or not (pid.isascii() and pid.isdigit()):
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


def collect(
    address: str = "auto",
    runtime_env: Optional[Mapping[str, Any]] = None,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    everything: bool = False,
    host: bool = True,
    ship: bool = True,
    task: Callable[[bool, bool], dict[str, Any]] = probe_node,
) -> ClusterProbe:
    """Connect, run the probe on every alive node, wait at most `timeout` seconds in all.

    Nodes that do not answer in time, die, or fail are reports of their own; the rest still
    report. `ship` sends this compat to the nodes with the job (py_modules), so nodes need Ray
    but not compat. `task` is what runs on each node (`probe_node`; tests wrap it).
    """
    ray = import_ray()
    start = time.monotonic()
    deadline = start + timeout
    job_env = dict(runtime_env or {})
    owned = not ray.is_initialized()
    if owned:
        if ship:
            job_env["py_modules"] = [*job_env.get("py_modules", []), *shipped_modules()]
        _connect(ray, address, job_env, deadline, user_env=bool(runtime_env))
    try:
        nodes = _alive_nodes(ray)
        # Connected already (compat used as a library in a driver): the runtime env goes with
        # each task instead of the job (it cannot carry local directories then).
        reports = _run_probes(
            ray, nodes, deadline, timeout, everything, host, None if owned else runtime_env, task
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


def shipped_modules() -> list[str]:
    """The package folders sent with the job so a node needs Ray alone: compat, and msgspec,
    which compat's records need and Ray does not bring (its compiled part fits nodes of this
    machine's Python and platform, as Ray's own version must)."""
    import msgspec

    import compat

    return [os.path.dirname(os.path.abspath(m.__file__ or "")) for m in (compat, msgspec)]


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
    if not (port.isascii() and port.isdigit()):
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
    fn: Callable[[bool, bool], dict[str, Any]] = probe_node,
) -> list[NodeReport]:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(fn)
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
    return node_report_from_task(node, data)


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
