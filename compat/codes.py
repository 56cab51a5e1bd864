"""Finding codes in words: the one table that `compat explain`, SARIF rules and docs/findings.md
derive from (a test keeps docs/findings.md equal to it and every `Code` member in it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CodeText:
    title: str  # a few words: SARIF's rule description
    meaning: str  # the row of the table in docs/findings.md
    decided: str  # the paragraph under "How each is decided" in docs/findings.md
    fix: tuple[str, ...]
    sources: tuple[str, ...]


FINDINGS: dict[str, CodeText] = {  # in the order of the Code enum
    "framework-pin": CodeText(
        "sglang/vLLM requirement not met",
        "an sglang/vLLM requirement is not met by the installed torch, kernels, triton or companions",
        "The installed sglang/vLLM's own Requires-Dist (from its dist-info, or from the database for "
        "a freeze file) on every package of the stack, markers evaluated for the checked Python and "
        "platform. Pinned requirements win over bare names, and next to a CUDA torch the "
        "ROCm/CPU/XPU extras are left out; a package satisfies the framework when one of its "
        "remaining requirements holds (sglang up to 0.5.2 pins torch in its `[srt]` extra). A base "
        "requirement on a package that is not installed is an error.",
        (
            "install what the framework pins, in a fresh venv rather than by upgrading torch in place: "
            "`compat lock sglang==X.Y.Z` writes the whole tuple",
            "or move the framework to a release built for the torch you need",
        ),
        (
            "https://github.com/sgl-project/sglang/blob/main/python/pyproject.toml",
            "https://github.com/vllm-project/vllm/blob/main/requirements/cuda.txt",
        ),
    ),
    "torch-triton": CodeText(
        "triton does not match torch's pin",
        "triton does not match what torch pins",
        "torch's requirement on `triton` (or `pytorch-triton`), with its marker: torch 2.5.x pins "
        'triton only for `python_version < "3.13"`, so no triton on 3.13 is not an error. Another '
        "triton version is an error (Triton codegen segfaults, seed 000/003); a missing triton a "
        "warning.",
        (
            "pip install the triton torch pins (the finding names it)",
            "then clear the Triton cache, which holds kernels of the other version: rm -rf ~/.triton/cache",
        ),
        ("https://github.com/pytorch/pytorch/blob/main/RELEASE.md#release-compatibility-matrix",),
    ),
    "torch-companion": CodeText(
        "torchvision/torchaudio/xformers built for another torch",
        "torchvision/torchaudio/xformers built for another torch, or a CUDA build of them next to "
        "a CPU torch",
        "The companion's torch pin; its local tag (`+cu124`, `+cpu`) against torch's build; and "
        "what its extension module links (`torchvision/_C.so` needs `libtorch_cuda.so` and "
        "`libc10_cuda.so` in a CUDA build; a CPU torch ships neither, and `import torchvision` "
        'fails with "operator torchvision::nms does not exist" while `pip check` passes).',
        (
            "install the companion release made for the installed torch, from the same index as torch "
            "(e.g. https://download.pytorch.org/whl/cu126 for torch +cu126), with --no-deps so torch "
            "stays",
        ),
        (
            "https://pytorch.org/get-started/previous-versions/",
            "https://github.com/pytorch/vision#installation",
        ),
    ),
    "kernel-torch": CodeText(
        "compiled kernel package built for another torch, CUDA or C++ ABI",
        "a compiled kernel package (flashinfer, sgl-kernel, flash-attn, vllm _C) built for another "
        "torch, CUDA or C++ ABI",
        "Local tags (`+cu124torch2.5`, `cxx11abiFALSE`), the kernel's torch pin, and with "
        "`--deep` the shared objects themselves: libtorch/c10 libraries they need that torch "
        "lacks, their libcudart major, and libtorch/c10 symbols they import that torch's "
        "libraries do not export. Packages that declare no exact torch pin (sgl-kernel / "
        "sglang-kernel, sgl-deep-gemm, torchao, lmcache, mooncake, ...) are also judged offline "
        "by their **build facts** (`matrices/generated/builds/`): the torch symbols their PyPI "
        "wheel imports, read from the wheel, against the symbols the installed torch release's "
        "libraries export. A wheel that imports a symbol the installed torch lacks is an error "
        "(its import fails with `undefined symbol`); the message names the torch it was built "
        "against and the fix names the newest release of the package built for the installed "
        "torch. When torch's exports are not in the database, a framework release that pinned "
        "the package together with another torch (a co-pin) or a `+...torchX.Y` tag gives a "
        "warning instead. A locally tagged install (`+cu126`) came from another index: its "
        "wheel was not read, and build facts are not used for it.",
        (
            "install the kernel build made for the installed torch and CUDA (flashinfer publishes one "
            "index per CUDA and torch; sgl-kernel and vLLM: the release the framework pins)",
            "confirm on the machine with `compat check --deep`, which reads the .so files",
        ),
        (
            "https://docs.flashinfer.ai/installation.html",
            "https://github.com/Dao-AILab/flash-attention/releases",
        ),
    ),
    "split-package": CodeText(
        "parts of one project at different versions",
        "parts of one project at different versions (flashinfer-python vs -cubin vs -jit-cache)",
        "The versions (public part) of flashinfer-python, flashinfer-cubin and flashinfer-jit-cache "
        "when more than one is installed: different versions are an error. sgl-kernel next to its "
        "successor sglang-kernel is a warning: both ship the same module, and which one is imported "
        "depends on install order.",
        (
            "pin flashinfer-python, flashinfer-cubin and flashinfer-jit-cache to one version",
            "keep one of sgl-kernel and its successor sglang-kernel (sglang >= 0.5.10 uses "
            "sglang-kernel)",
        ),
        ("https://docs.flashinfer.ai/installation.html",),
    ),
    "cuda-mix": CodeText(
        "more than one CUDA major in the stack",
        "more than one CUDA major among torch, nvidia-* wheels, kernels and LD_LIBRARY_PATH",
        "The CUDA major of torch's build, of `-cu12`/`-cu13` wheels, of the unsuffixed wheels "
        "versioned like CUDA (`nvidia-cuda-runtime`, `cuda-toolkit`, ...; cuFFT/cuBLAS carry "
        "their own version numbers and are not read), of kernels' local tags, and of CUDA "
        "folders on LD_LIBRARY_PATH, and, for a kernel without a CUDA tag, the `libcudart.so.N` "
        "(or `libnvrtc`, `libcublas`, ...) its PyPI wheel links (build facts; only when it "
        "links one major). Folders on LD_LIBRARY_PATH and kernels of another major are errors "
        "(they load before torch's); stray wheels a warning. Within one major, a kernel tagged "
        "for a newer CUDA minor than torch (+cu126 beside a +cu124 torch) is an error (it may "
        "need runtime APIs torch's runtime lacks), an older minor a warning.",
        (
            "take torch, its companions and the kernels from one CUDA index: `compat lock --cuda X.Y`",
            "drop folders of another CUDA from LD_LIBRARY_PATH; uninstall stray nvidia-*-cuNN wheels "
            "nothing needs",
        ),
        (
            "https://pytorch.org/get-started/locally/",
            "https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/",
        ),
    ),
    "driver-too-old": CodeText(
        "the driver cannot run the CUDA build",
        "the driver cannot run the CUDA build of torch or a kernel",
        "NVIDIA's rules with the figures of `matrices/curated/cuda.toml`: a build for CUDA X.Y runs "
        "on a driver that reports CUDA >= X.Y; under minor-version compatibility also on a driver "
        "of the same major at or above the major's floor (CUDA 12.x: 525.60.13) — then an info, "
        "because PTX built by the newer toolkit cannot be JIT-compiled by that driver. Otherwise an "
        "error naming both floors.",
        (
            "upgrade the NVIDIA driver to the floor the finding names",
            "or install builds for a CUDA the driver runs: `compat lock TARGET --driver VERSION`",
        ),
        (
            "https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/",
            "https://docs.nvidia.com/deploy/cuda-compatibility/",
        ),
    ),
    "gpu-arch": CodeText(
        "GPU compute capability not covered by the build",
        "a GPU's compute capability is not covered by the build's SASS or PTX",
        "Every GPU against the build's arch list (`matrices/curated/torch_builds.toml`): SASS for "
        "sm_XY runs on the same major with minor >= Y; PTX compute_XY is JIT-compiled for any GPU "
        "of capability >= X.Y (a warning: slow first start, needs a new enough driver); neither is "
        "an error.",
        (
            "install a build whose arch list covers the GPU: newer GPUs need newer CUDA builds, older "
            "GPUs builds that still list them: `compat lock TARGET --gpu NAME`",
            "or build from source with TORCH_CUDA_ARCH_LIST naming the GPU's capability",
        ),
        (
            "https://developer.nvidia.com/cuda-gpus",
            "https://docs.nvidia.com/cuda/cuda-compiler-driver-nvcc/#gpu-feature-list",
        ),
    ),
    "stale-cache": CodeText(
        "JIT/compile cache built by other versions",
        "a JIT/compile cache holds entries built by other versions",
        "A flashinfer JIT cache with folders of other flashinfer versions; a triton or vLLM cache "
        "whose oldest entry predates the install of triton/vLLM (warning), an inductor cache older "
        "than torch (info).",
        (
            "remove the cache the finding names (it is rebuilt on the next start): "
            "rm -rf ~/.triton/cache ~/.cache/flashinfer ~/.cache/vllm",
        ),
        (),
    ),
    "env-var": CodeText(
        "environment variable breaks or shadows the stack",
        "an environment variable hides GPUs, shadows the stack's libraries or breaks builds",
        "`CUDA_VISIBLE_DEVICES` that hides every GPU or names devices that do not exist (CUDA stops "
        "at the first bad entry); `CUDA_HOME` of another major than torch; `TORCH_CUDA_ARCH_LIST` "
        "without the GPU's arch; `CUDA_LAUNCH_BLOCKING`; `LD_PRELOAD` of CUDA/NCCL libraries.",
        (
            "unset the variable, or set it as the finding says",
            "compare with a machine where the server works: `compat diff works.json fails.json`",
        ),
        ("https://docs.nvidia.com/cuda/cuda-c-programming-guide/#cuda-environment-variables",),
    ),
    "known-crash": CodeText(
        "a known-crash advisory matches",
        "a known-crash advisory matches (its id is given)",
        "An advisory from `matrices/advisories/` matched: every clause of its `affected` table "
        "(framework, package ranges, GPUs, driver, Ray, launch settings with the framework's "
        "defaults applied, environment variables, other findings) holds. A clause compat cannot "
        "evaluate (no GPU information, no launch command) keeps it from firing and gives an info "
        "instead; a workaround already in the command or environment silences it.",
        (
            "apply the advisory's workaround (flags, env or versions): `compat explain COMPAT-NNNN` "
            "prints it",
            "or move to a release that fixes it",
        ),
        (),
    ),
    "memory-headroom": CodeText(
        "too little GPU memory left for CUDA-graph capture",
        "the launch leaves too little GPU memory for CUDA-graph capture",
        "With GPU memory and a launch command, compat estimates what the static pool leaves for "
        "activations and CUDA-graph capture — `total x (1 - fraction) - 0.5 GiB` (the 0.5 GiB for "
        "the CUDA context and library buffers is an assumption) — and warns below 1.5 GiB for "
        "sglang and 0.75 GiB for vLLM. For sglang without `--mem-fraction-static` it applies the "
        "default of the installed release. It is a guard against plainly tight settings, not a "
        "prediction.",
        (
            "lower --mem-fraction-static (sglang) or --gpu-memory-utilization (vLLM)",
            "capture fewer batch sizes: --cuda-graph-max-bs (sglang), --max-num-seqs (vLLM)",
        ),
        ("https://docs.sglang.io/advanced_features/hyperparameter_tuning.html",),
    ),
    "unknown-combination": CodeText(
        "tuple not in compat's database",
        "part of the tuple is not in the database: compat cannot vouch for it",
        "A release of a tracked project missing from the database, or a torch build (version, "
        "CUDA) PyPI/PyTorch do not publish.",
        (
            "refresh the database: compat matrix sync --write",
            "or pin releases compat knows: `compat lock TARGET`",
        ),
        (),
    ),
    "cluster-mismatch": CodeText(
        "nodes of a Ray cluster differ",
        "the nodes of a Ray cluster differ in what the stack depends on, or a node could not be checked",
        "With `compat check --ray`, every node's environment as a Ray worker sees it is compared: a different Python minor, torch build, framework, triton, kernel, NCCL or Ray version is an error; other packages, the driver, GPU models and numbering, and each differing variable (NCCL_*, CUDA_DEVICE_MAX_CONNECTIONS, LD_LIBRARY_PATH, ...) a warning, naming the odd nodes and the majority's value; GPU facts are compared among GPU nodes only. A node that died or whose runtime env failed is an error, one that timed out or whose probe failed a warning.",
        (
            "install the majority's version on the nodes named, or set/unset the variable in `ray "
            "start`'s environment or the job's runtime env",
            "for nodes that did not report: `ray status`, their raylet.out, then run again",
        ),
        ("https://docs.ray.io/en/latest/ray-core/handling-dependencies.html",),
    ),
}


@dataclass(frozen=True)
class CodeInfo:
    code: str
    text: CodeText


CODES: tuple[CodeInfo, ...] = tuple(CodeInfo(c, t) for c, t in FINDINGS.items())


def title(code: str) -> str:
    t = FINDINGS.get(code)
    return t.title if t else code
