"""parallelism, memory-fit, memory-headroom: does the launch fit the GPUs this process sees?"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional, Union

import msgspec
import msgspec.structs

from compat.check.base import Context
from compat.devices import visible_gpus
from compat.families import families
from compat.launch import LaunchConfig
from compat.models import GPU, Code, Finding, Severity, Unknown

if TYPE_CHECKING:  # the memory model loads only when a launch names a model
    from compat.memory import Estimate
    from compat.model import ModelFacts

FRAMEWORKS = families().frameworks
_PARALLEL_REFS = {
    "sglang": ("https://docs.sglang.io/advanced_features/server_arguments.html",),
    "vllm": ("https://docs.vllm.ai/en/latest/serving/parallelism_scaling.html",),
}
_REFS = {
    "sglang": ("https://docs.sglang.io/advanced_features/hyperparameter_tuning.html",),
    "vllm": ("https://docs.vllm.ai/en/latest/configuration/conserving_memory.html",),
}


def _int(launch: LaunchConfig, name: str, default: int = 1) -> int:
    v = launch.settings.get(name)
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else default


def _facts(ctx: Context) -> Optional[ModelFacts]:
    m = ctx.model
    if m is None or isinstance(m, Unknown):
        return None
    from compat.model import ModelFacts

    return m if isinstance(m, ModelFacts) else None


def _environ(ctx: Context) -> dict[str, str]:
    env = dict(ctx.env.env)
    if ctx.launch is not None:
        env.update(ctx.launch.env)
    return env


def _visible(ctx: Context) -> Union[tuple[tuple[GPU, ...], str], Unknown]:
    gpus = ctx.env.gpus
    if isinstance(gpus, Unknown):
        return gpus
    env = _environ(ctx)
    return visible_gpus(gpus, env.get("CUDA_VISIBLE_DEVICES"), env.get("CUDA_DEVICE_ORDER"))


def _flag(framework: str, setting: str) -> str:
    names = {
        ("sglang", "tp_size"): "--tp",
        ("vllm", "tp_size"): "--tensor-parallel-size",
        ("sglang", "pp_size"): "--pp-size",
        ("vllm", "pp_size"): "--pipeline-parallel-size",
        ("sglang", "dp_size"): "--dp-size",
        ("vllm", "dp_size"): "--data-parallel-size",
        ("sglang", "max_model_len"): "--context-length",
        ("vllm", "max_model_len"): "--max-model-len",
        ("sglang", "fraction"): "--mem-fraction-static",
        ("vllm", "fraction"): "--gpu-memory-utilization",
    }
    return names[(framework, setting)]


# --------------------------------------------------------------------------------------------
# parallelism
# --------------------------------------------------------------------------------------------


def gpus_needed(launch: LaunchConfig) -> tuple[int, str]:
    """GPUs one node of this launch uses, and how the number is made."""
    tp, pp, dp = _int(launch, "tp_size"), _int(launch, "pp_size"), _int(launch, "dp_size")
    nnodes = _int(launch, "nnodes")
    if launch.framework == "sglang" and launch.settings.get("enable_dp_attention") is True:
        world, how = tp * pp, f"tp={tp} x pp={pp} (DP attention runs inside the TP group)"
    else:
        world = tp * pp * dp
        how = f"tp={tp} x pp={pp}" + (f" x dp={dp}" if dp > 1 else "")
    if nnodes > 1:
        return math.ceil(world / nnodes), f"{how} over {nnodes} nodes"
    return world, how


def check_parallelism(ctx: Context) -> list[Finding]:
    launch = ctx.launch
    if launch is None or launch.framework not in FRAMEWORKS:
        return []
    out: list[Finding] = []
    fw = launch.framework
    need, how = gpus_needed(launch)
    vis = _visible(ctx)
    ray = fw == "vllm" and launch.settings.get("distributed_executor_backend") == "ray"
    if isinstance(vis, Unknown):
        if need > 1:
            out.append(
                Finding(
                    Code.PARALLELISM.value,
                    Severity.INFO,
                    f"the launch needs {need} GPUs ({how}); could not tell how many this "
                    f"process sees: {vis.reason}",
                    fix=("give the GPUs with --gpu NAME (repeat it per GPU)",),
                    missing="gpu",
                )
            )
    else:
        gpus, basis = vis
        if need > len(gpus):
            sev = Severity.WARNING if ray else Severity.ERROR
            tail = "; under Ray the other ranks may run on other nodes" if ray else ""
            tp = _int(launch, "tp_size")
            fix = [
                f"{_flag(fw, 'tp_size')} {max(1, _pow2_floor(len(gpus)))} (or fewer pipeline/data "
                "replicas) to fit the GPUs this process sees"
            ]
            fix.append(
                "make more GPUs visible: unset CUDA_VISIBLE_DEVICES or list them "
                "(export CUDA_VISIBLE_DEVICES=" + ",".join(str(i) for i in range(need)) + ")"
            )
            if fw == "sglang":
                fix.append(
                    "spread it over nodes: --nnodes N --node-rank I --dist-init-addr HOST:PORT"
                )
            out.append(
                Finding(
                    Code.PARALLELISM.value,
                    sev,
                    f"the launch needs {need} GPUs ({how}) but this process sees {len(gpus)}{tail}",
                    evidence=(f"visible: {basis}", f"tp_size={tp} ({launch.origin('tp_size')})"),
                    fix=tuple(fix),
                    references=_PARALLEL_REFS[fw],
                )
            )
    facts = _facts(ctx)
    if facts is not None and not facts.guess:
        out.extend(_heads(launch, facts))
    return out


def _pow2_floor(n: int) -> int:
    return 1 << (n.bit_length() - 1) if n > 0 else 0


def _divisors_ok(tp: int, facts: ModelFacts) -> bool:
    heads, kv = facts.num_attention_heads, facts.num_kv_heads
    if heads and heads % tp:
        return False
    if kv and not facts.mla and not facts.layer_kv_heads:
        return (tp % kv == 0) if tp >= kv else (kv % tp == 0)
    return True


def _heads(launch: LaunchConfig, facts: ModelFacts) -> list[Finding]:
    """Tensor parallelism splits attention heads: the query heads must divide by tp, and the KV
    heads must divide by tp or tp by them (replicated). Both frameworks assert this at load
    (vLLM: "Total number of attention heads (X) must be divisible by tensor parallel size (Y)";
    QKVParallelLinear for the KV heads)."""
    tp = _int(launch, "tp_size")
    if tp == 1:
        return []
    heads, kv = facts.num_attention_heads, facts.num_kv_heads
    problems = []
    if heads and heads % tp:
        problems.append(f"{heads} attention heads are not divisible by tp={tp}")
    if kv and not facts.mla and not facts.layer_kv_heads:
        if tp >= kv and tp % kv:
            problems.append(f"tp={tp} is not a multiple of the {kv} KV heads")
        elif tp < kv and kv % tp:
            problems.append(f"{kv} KV heads are not divisible by tp={tp}")
    if not problems:
        return []
    good = [n for n in (1, 2, 4, 8, 16, 32) if _divisors_ok(n, facts) and n != tp]
    fw = launch.framework
    return [
        Finding(
            Code.PARALLELISM.value,
            Severity.ERROR,
            f"tensor parallelism does not split this model: {'; '.join(problems)}",
            evidence=(
                f"model: {facts.describe()} ({facts.source})",
                f"tp_size={tp} ({launch.origin('tp_size')})",
            ),
            fix=(
                f"{_flag(fw, 'tp_size')} "
                + " or ".join(str(n) for n in good[-3:])
                + " (values that divide the heads)"
                if good
                else "use pipeline parallelism instead",
                f"or keep the GPUs with {_flag(fw, 'pp_size')} and a smaller tp",
            ),
            references=_PARALLEL_REFS[fw],
        )
    ]


# --------------------------------------------------------------------------------------------
# quantization on the GPU's architecture (vLLM's minimum capability per method)
# --------------------------------------------------------------------------------------------


def check_quantization(ctx: Context) -> list[Finding]:
    launch = ctx.launch
    if launch is None or launch.framework != "vllm":
        return []
    facts = _facts(ctx)
    given = launch.settings.get("quantization")
    method = given if isinstance(given, str) else (facts.quantization if facts else None)
    if not method:
        return []
    data = ctx.matrix.memory
    row = data.quant(method) or (
        data.quant(facts.quant_format) if facts and facts.quant_format else None
    )
    if row is None or row.vllm_min_cc is None:
        return []
    vis = _visible(ctx)
    if isinstance(vis, Unknown):
        return []
    low = [
        (g, g.compute_capability)
        for g in vis[0]
        if g.compute_capability is not None and g.compute_capability < row.vllm_min_cc
    ]
    if not low:
        return []
    need = f"{row.vllm_min_cc[0]}.{row.vllm_min_cc[1]}"
    g, cc = low[0]
    where = "--quantization" if isinstance(given, str) else (facts.source if facts else "")
    return [
        Finding(
            Code.GPU_ARCH.value,
            Severity.ERROR,
            f"vLLM refuses {method} quantization on GPU {g.index} ({g.name}, sm_{cc[0]}{cc[1]}): "
            f"it needs compute capability >= {need}",
            evidence=(
                f"quantization={method} ({where})",
                *(f"GPU {x.index} {x.name}: sm_{c[0]}{c[1]}" for x, c in low),
                row.note,
            ),
            fix=(
                "serve an unquantized (BF16/FP16) checkpoint or one in a method this GPU supports",
                f"or run on GPUs of compute capability >= {need}",
            ),
            references=(row.source,),
        )
    ]


# --------------------------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------------------------


def _smallest(gpus: tuple[GPU, ...]) -> Optional[GPU]:
    known = [g for g in gpus if g.memory_total_mib]
    return min(known, key=lambda g: (g.memory_total_mib or 0, g.index)) if known else None


def _fraction(launch: LaunchConfig) -> Union[tuple[float, str], Unknown, None]:
    knob = "mem_fraction_static" if launch.framework == "sglang" else "gpu_memory_utilization"
    v = launch.settings.get(knob)
    if isinstance(v, Unknown):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v), launch.origin(knob)
    return None


def _g(x: float) -> str:
    return f"{x:.2f} GiB"


def _accounting(est: Estimate, facts: Optional[ModelFacts], basis: str) -> tuple[str, ...]:
    g = est.gpu
    lines = [f"GPU {g.index} {g.name}: {_g(est.total_gib)} total (the smallest visible; {basis})"]
    if g.source == "--gpu":
        # a declared GPU's size is the one NVIDIA states, not a reading of the machine
        lines.append(
            "its memory is the size NVIDIA states for it, not a reading: a machine can report "
            "less (ECC on GDDR memory, the driver's reserve); a snapshot taken there is exact"
        )
    if facts is not None:
        lines.append(f"model: {facts.describe()} ({facts.source})")
    lines.append(f"{est.knob}={est.fraction:g} ({est.fraction_origin})")
    lines += [t.line() for t in est.before]
    what = "static pool (weights + KV cache)" if est.framework == "sglang" else "vLLM's budget"
    lines.append(f"{what}: {_g(est.budget_gib)}")
    if est.weights is not None:
        lines.append(est.weights.line())
    lines += [t.line() for t in est.inside]
    if est.kv_gib is not None:
        kv = f"KV cache: {_g(est.kv_gib)}"
        if est.kv_tokens is not None and est.kv_token_bytes:
            kv += (
                f" = {est.kv_tokens:,} tokens at {est.kv_token_bytes / 1024:.1f} KiB per token "
                f"({est.kv_elem_basis})"
            )
        lines.append(kv)
    lines.append(f"free at CUDA-graph capture: ~{_g(est.free_at_capture)}")
    lines += [f"  {t.label}: {t.gib:+.2f} GiB ({t.basis})" for t in est.free_terms]
    lines.append(f"needed there: ~{_g(est.need_gib)}")
    lines += [f"  {t.line()}" for t in est.need]
    if est.unknown:
        lines.append("not known, left out: " + "; ".join(est.unknown))
    return tuple(lines)


def _fraction_for_free(est: Estimate, want_free: float) -> Optional[float]:
    """The fraction that leaves `want_free` GiB at capture, other terms unchanged."""
    if est.framework == "sglang":
        t0 = est.start_free_gib
        others = sum(t.gib for t in est.free_terms[1:])  # the table and buffers (negative)
        f = 1 - (want_free - others) / t0
    else:
        cuda_total = est.free_terms[0].gib
        outside = sum(-t.gib for t in est.free_terms[2:])
        f = (cuda_total - outside - want_free) / cuda_total
    f = math.floor(f * 100) / 100
    return f if 0.05 <= f < est.fraction else None


def check_memory(ctx: Context) -> list[Finding]:
    launch = ctx.launch
    if launch is None or launch.framework not in FRAMEWORKS:
        return []
    fw = launch.framework
    model = ctx.model
    facts = _facts(ctx)
    out: list[Finding] = []
    if isinstance(model, Unknown):
        out.append(
            Finding(
                Code.MEMORY_FIT.value,
                Severity.INFO,
                f"could not read the model {launch.model!r}: {model.reason}; weights and "
                "KV cache are not checked",
                fix=(
                    "run compat where the model's files are (the HF cache or the local "
                    "folder), or download its config.json and index: huggingface-cli "
                    "download ORG/NAME config.json model.safetensors.index.json",
                ),
            )
        )
    vis = _visible(ctx)
    if isinstance(vis, Unknown):
        gpus_all = ctx.env.gpus
        if isinstance(gpus_all, Unknown):
            return [*out, _no_estimate(f"GPU memory: {gpus_all}")]
        gpus, basis = gpus_all, f"every GPU ({vis.reason})"
    else:
        gpus, basis = vis
    gpu = _smallest(gpus)
    if gpu is None:
        return [*out, _no_estimate("no visible GPU with known memory")]
    if ctx.env.source != "live" and gpu.memory_used_mib:
        # Memory in use when a snapshot was taken says nothing about the GPU at launch time.
        gpu = msgspec.structs.replace(gpu, memory_used_mib=None)
        basis += "; memory in use when the snapshot was taken is not counted"
    frac = _fraction(launch)
    if isinstance(frac, Unknown):
        return [*out, _no_estimate(frac.reason)]
    torch_cuda = (
        None
        if isinstance(ctx.env.torch, Unknown)
        else (ctx.env.torch.cuda or ctx.env.torch.cuda_from_deps)
    )
    from compat.memory import estimate

    est = estimate(fw, gpu, launch, facts, ctx.matrix.memory, torch_cuda, _environ(ctx), frac)
    evidence = _accounting(est, facts, basis)
    knob_flag = _flag(fw, "fraction")
    problems = False
    if est.startup_short_gib is not None:
        err = est.need[-1].gib
        target = _fraction_for_start(est)
        problems = True
        out.append(
            Finding(
                Code.MEMORY_FIT.value,
                Severity.ERROR if est.startup_short_gib > err else Severity.WARNING,
                f"vLLM asks for {_g(est.budget_gib)} ({est.knob}={est.fraction:g}) but only "
                f"~{_g(est.budget_gib - est.startup_short_gib)} is free on GPU {gpu.index} when it starts; "
                'it refuses to start ("Free memory on device ... is less than desired GPU memory '
                'utilization")',
                evidence=evidence,
                fix=tuple(
                    x
                    for x in (
                        f"{knob_flag} {target:.2f}" if target else None,
                        "free the GPU: stop other processes using it (nvidia-smi)",
                    )
                    if x
                ),
                references=_REFS[fw],
            )
        )
    kv_err = ctx.matrix.memory.figure("kv_error", fw)
    margin = kv_err.value if kv_err is not None else 0.0
    if facts is not None and facts.multimodal and fw == "sglang":
        evidence = (
            *evidence,
            "multimodal model: sglang kept ~6.6 GiB more outside the pool than compat "
            "counts for gemma-3-4b-it (sglang#4826); the headroom can be lower than shown",
        )
    if est.weights is not None:
        room = est.budget_gib - sum(t.gib for t in est.inside)
        if est.weights.gib >= room:
            problems = True
            out.append(
                _weights_finding(est, launch, facts, room, evidence, knob_flag, len(gpus), margin)
            )
        elif (
            est.kv_max_len_gib is not None
            and est.kv_gib is not None
            and est.max_len
            and est.kv_max_len_gib > est.kv_gib
        ):
            problems = True
            out.append(_kv_finding(est, launch, facts, evidence, knob_flag, margin))
    headroom = _headroom(est, launch, facts, evidence, knob_flag)
    if headroom is not None:
        problems = True
        out.append(headroom)
    if not problems and (facts is not None):
        summary = f"weights {_g(est.weights.gib)} per GPU" if est.weights else "weights unknown"
        if est.kv_gib is not None:
            summary += f", KV cache ~{_g(est.kv_gib)}"
            if est.kv_tokens is not None:
                summary += f" ({est.kv_tokens:,} tokens)"
        out.append(
            Finding(
                Code.MEMORY_FIT.value,
                Severity.INFO,
                f"{fw} on GPU {gpu.index} ({gpu.name}, {_g(est.total_gib)}): {summary}, "
                f"~{_g(est.free_at_capture)} free at CUDA-graph capture (compat's estimate)",
                evidence=evidence,
            )
        )
    return out


def _no_estimate(reason: str) -> Finding:
    return Finding(
        Code.MEMORY_HEADROOM.value,
        Severity.INFO,
        f"could not estimate GPU memory: {reason}",
        fix=(
            "give the GPU with --gpu NAME, with its size for a GPU made in several "
            "(--gpu 'a100 80gb'), or check a snapshot taken on the machine",
        ),
        missing="gpu",
    )


def _fraction_for_start(est: Estimate) -> Optional[float]:
    cuda_total = est.free_terms[0].gib
    free_start = est.budget_gib - (est.startup_short_gib or 0)
    f = math.floor((free_start - 0.1) / cuda_total * 100) / 100
    return f if f > 0.05 else None


def _weights_finding(
    est: Estimate,
    launch: LaunchConfig,
    facts: Optional[ModelFacts],
    room: float,
    evidence: tuple[str, ...],
    knob_flag: str,
    visible: int,
    margin: float,
) -> Finding:
    fw = launch.framework
    assert est.weights is not None
    tp = _int(launch, "tp_size")
    per_gpu_total = est.weights.gib * tp
    # Enough GPUs for the weights and a KV cache of one sequence of the maximum length (1 GiB
    # when that length is not known), the rest of the accounting unchanged.
    kv_one = est.kv_max_len_gib * tp if est.kv_max_len_gib is not None else 1.0
    fix: list[str] = []
    for n in (2, 4, 8, 16):
        if (
            n > tp
            and per_gpu_total / n + kv_one / n <= room
            and (facts is None or _divisors_ok(n, facts))
        ):
            fix.append(
                f"{_flag(fw, 'tp_size')} {n} (~{_g(per_gpu_total / n)} of weights per GPU"
                + (f"; this process sees {visible} GPU(s)" if n > visible else "")
                + ")"
            )
            break
    fix.append("a quantized checkpoint (FP8 halves the weights, 4-bit methods quarter them)")
    if est.framework == "sglang":
        t0 = est.start_free_gib
        want = math.ceil((est.weights.gib + 1.0) / t0 * 100) / 100
        if want < 0.95:
            fix.append(f"{knob_flag} {want:.2f} (room for weights and ~1 GiB of KV cache)")
    what = "static pool" if fw == "sglang" else "budget after activations and buffers"
    close = est.weights.gib - room <= margin
    return Finding(
        Code.MEMORY_FIT.value,
        Severity.WARNING if close else Severity.ERROR,
        f"the weights do not fit: ~{_g(est.weights.gib)} per GPU against a {_g(room)} {what} on "
        f"GPU {est.gpu.index} ({est.gpu.name}); no room is left for the KV cache"
        + (f" (within compat's {_g(margin)} estimate error: likely, not certain)" if close else ""),
        evidence=evidence,
        fix=tuple(fix),
        references=_REFS[fw],
    )


def _kv_finding(
    est: Estimate,
    launch: LaunchConfig,
    facts: Optional[ModelFacts],
    evidence: tuple[str, ...],
    knob_flag: str,
    margin: float,
) -> Finding:
    fw = launch.framework
    assert est.kv_gib is not None and est.kv_max_len_gib is not None and est.max_len
    fits = int(est.max_len * max(est.kv_gib, 0) / est.kv_max_len_gib) if est.kv_max_len_gib else 0
    fits = fits // 256 * 256
    fix = [
        f"{_flag(fw, 'max_model_len')} {fits}"
        if fits >= 256
        else f"{_flag(fw, 'max_model_len')} with a shorter context"
    ]
    kv = launch.settings.get("kv_cache_dtype")
    if not (isinstance(kv, str) and kv.startswith("fp8")):
        fix.append("--kv-cache-dtype fp8 (half the bytes per token)")
    fix.append(f"a larger {knob_flag}, or more GPUs ({_flag(fw, 'tp_size')})")
    if fw == "vllm":
        close = est.kv_max_len_gib - est.kv_gib <= margin
        sev = Severity.WARNING if close else Severity.ERROR
        tail = (
            'vLLM refuses to start ("To serve at least one request with the model\'s max seq len")'
        )
        if close:
            tail += f"; within compat's {_g(margin)} estimate error, so likely rather than certain"
    else:
        sev = Severity.WARNING
        tail = "sglang starts but rejects requests longer than the pool holds"
    return Finding(
        Code.MEMORY_FIT.value,
        sev,
        f"the KV cache cannot hold one sequence of the maximum length: {est.max_len:,} tokens need "
        f"~{_g(est.kv_max_len_gib)} per GPU, the cache gets ~{_g(est.kv_gib)}; {tail}",
        evidence=(*evidence, f"maximum length {est.max_len:,} ({est.max_len_origin})"),
        fix=tuple(fix),
        references=_REFS[fw],
    )


def _headroom(
    est: Estimate,
    launch: LaunchConfig,
    facts: Optional[ModelFacts],
    evidence: tuple[str, ...],
    knob_flag: str,
) -> Optional[Finding]:
    fw = launch.framework
    known = facts is not None and not facts.guess
    need = est.need_gib
    if known or fw == "vllm":
        if est.free_at_capture >= need:
            return None
        yardstick = f"below the ~{_g(need)} compat estimates is needed there"
        want = need
    else:
        # The model's activations cannot be estimated: compare with what sglang's own current
        # sizing rule leaves on this GPU, and warn when the launch leaves less than half of it.
        if est.default_free is None or est.free_at_capture >= est.default_free / 2:
            return None
        yardstick = (
            f"less than half of the ~{_g(est.default_free)} that sglang's own sizing rule "
            f"leaves on this GPU ({est.default_origin}); the model could not be read, so "
            "its activations are not estimated"
        )
        want = est.default_free / 2
    graphs = launch.settings.get("cuda_graph") is not False
    when = "at CUDA-graph capture" if graphs else "for activations"
    target = _fraction_for_free(est, want + 0.25)
    fix: list[str] = []
    if target is not None:
        fix.append(f"{knob_flag} {target:.2f}")
    if fw == "sglang":
        if graphs:
            fix.append("--cuda-graph-max-bs 4 (fewer captured batch sizes, smaller graph pool)")
        fix.append("--max-running-requests 8 and --chunked-prefill-size 1024 (smaller activations)")
    else:
        fix.append("--max-num-seqs 8 (fewer concurrent sequences, smaller graphs)")
        if graphs:
            fix.append("--enforce-eager (no CUDA graphs; slower decode) as a last resort")
    return Finding(
        Code.MEMORY_HEADROOM.value,
        Severity.WARNING,
        f"{fw} leaves ~{_g(est.free_at_capture)} of {_g(est.total_gib)} on GPU {est.gpu.index} "
        f"({est.gpu.name}) {when}, {yardstick}; likely out of memory",
        evidence=evidence,
        fix=tuple(fix),
        references=_REFS[fw],
    )
