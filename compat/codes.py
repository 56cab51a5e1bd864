"""Finding codes in words: the one table that `compat explain`, SARIF rules and docs/findings.md
derive from (a test keeps docs/findings.md equal to it and every `Code` member in it)."""

from __future__ import annotations

from msgspec import Struct


class CodeText(Struct, frozen=True):
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
        "(its compiled libraries fail to load with `undefined symbol`); the message names the torch it was built "
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
        "the driver cannot run the CUDA build or the GPU",
        "the driver cannot run the CUDA build of torch or a kernel, or the GPU itself",
        "NVIDIA's rules with the figures of `matrices/curated/cuda.toml`: a build for CUDA X.Y runs "
        "on a driver that reports CUDA >= X.Y (NVML's answer, else the CUDA its branch reports: "
        "R535 -> 12.2, `matrices/curated/drivers.toml`); under minor-version compatibility also on "
        "a driver of the same major at or above the major's floor (CUDA 12.x: 525.60.13, 13.x: "
        "580) — then an info, because PTX built by the newer toolkit cannot be JIT-compiled by that "
        "driver. Below the floor it is an error, also for parts that name only a CUDA major "
        "(nvidia-*-cu13 wheels). Separately, each GPU architecture needs the driver branch of its "
        "first CUDA toolkit (Hopper R520, Blackwell R570) and old ones lose support after a last "
        "branch (Volta, Pascal, Maxwell: R580): a driver outside that range is an error whatever "
        "the CUDA build.",
        (
            "upgrade the NVIDIA driver to the floor the finding names",
            "or install builds for a CUDA the driver runs: `compat lock TARGET --driver VERSION`",
        ),
        (
            "https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/",
            "https://docs.nvidia.com/deploy/cuda-compatibility/",
            "https://docs.nvidia.com/datacenter/tesla/drivers/cuda-toolkit-driver-and-architecture-matrix.html",
        ),
    ),
    "gpu-arch": CodeText(
        "GPU compute capability not covered by the build",
        "a GPU's compute capability is not covered by the build's SASS or PTX",
        "Every GPU against the build's arch list (`matrices/curated/torch_builds.toml`; with "
        "`--deep`, the one read from the fatbin headers of torch's own libtorch_cuda.so): SASS for "
        "sm_XY runs on the same major with minor >= Y; PTX compute_XY is JIT-compiled for any GPU "
        "of capability >= X.Y (a warning: slow first start, needs a new enough driver); neither is "
        "an error. For vLLM also the model's quantization method (`--quantization`, else the "
        "checkpoint's `quantization_config`) against the lowest compute capability vLLM accepts for "
        "it (`matrices/curated/memory.toml`, where a source gives one): below it is an error.",
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
        "without the GPU's arch; `CUDA_LAUNCH_BLOCKING`; `LD_PRELOAD` of CUDA/NCCL libraries. A "
        "SGLANG_*/VLLM_* variable the installed release no longer reads (its env-var registry, "
        "vllm/envs.py or sglang/srt/environ.py, dropped it) is a warning that it is ignored, with "
        "the flag that took its place.",
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
        "From the memory estimate of memory-fit: what stays free when CUDA graphs are captured (sglang: the free memory at start x (1 - mem_fraction_static), minus its request-to-token table and the attention backend's buffers; vLLM: the CUDA total minus the requested budget, the CUDA context and other processes) against what is needed there (sglang: the graphs of the captured batch sizes and one prefill chunk's activations; vLLM before 0.21: its CUDA graphs), plus the largest error the estimate showed on real startup logs. When the model cannot be read, an sglang launch is compared with what sglang's own current sizing rule leaves on that GPU, and warned below half of it. docs/fit.md has the figures and their sources.",
        (
            "lower --mem-fraction-static (sglang) or --gpu-memory-utilization (vLLM) to the value the finding names",
            "capture fewer batch sizes: --cuda-graph-max-bs (sglang), --max-num-seqs (vLLM)",
        ),
        (
            "https://docs.sglang.io/advanced_features/hyperparameter_tuning.html",
            "https://docs.vllm.ai/en/latest/configuration/conserving_memory.html",
        ),
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
    "launch-flag": CodeText(
        "a launch flag or value the installed release refuses",
        "a launch flag or value the installed release's own parser refuses: unknown, removed, retired or ambiguous flag, or a value outside its choices",
        "The launch command is parsed as the installed release's argparse parser would parse it, with that release's flags, aliases, types and choices as read from its own sources (generated/launch/<framework>.toml). A flag the release does not have is an error with the nearest flag names; one other releases have says in which release it was removed or added (and what replaced it); a value outside the release's choices, an abbreviation that matches several flags, or a value given to a switch is an error; a deprecated flag a warning (an error when the release refuses it with a message). Without the version, flags are judged against every release: a flag that never existed is still an error, one that exists in some releases is info.",
        (
            "fix the flag as the finding says (did-you-mean, the replacement, or the release that "
            "has it)",
            "see the release's flags: `python -m sglang.launch_server --help` / `vllm serve --help`",
        ),
        ("https://docs.python.org/3/library/argparse.html#allow-abbrev",),
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
    "parallelism": CodeText(
        "parallelism does not fit the GPUs or the model's heads",
        "the launch's parallelism needs more GPUs than this process sees, or tensor parallelism does not split the model's attention heads",
        'GPUs one node needs: tp x pp x dp (sglang with --enable-dp-attention: tp x pp), divided by --nnodes, against the GPUs this process sees: the probed or --gpu GPUs filtered by CUDA_VISIBLE_DEVICES (indices and UUIDs; CUDA stops at the first index that does not exist; MIG instances or values compat cannot parse give "could not tell"). More than visible is an error (a warning for vLLM on Ray, whose ranks may run on other nodes). With the model\'s config.json, tp must divide the attention heads, and the KV heads must divide by tp or tp by them, as both frameworks assert when they load the model.',
        (
            "lower --tp / --tensor-parallel-size to the GPUs this process sees, or make more GPUs visible (CUDA_VISIBLE_DEVICES)",
            "pick a tp that divides the heads; keep the GPUs with pipeline parallelism",
        ),
        ("https://docs.vllm.ai/en/latest/serving/parallelism_scaling.html",),
    ),
    "memory-fit": CodeText(
        "weights or KV cache do not fit the GPU memory",
        "the weights do not fit the GPU memory the launch allows, the KV cache cannot hold one sequence of the maximum length, or vLLM's requested memory is not free when it starts",
        "compat reads the model where the server would (a local folder, or the Hugging Face cache named by HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE or HF_HOME: config.json, the safetensors index's total_size or the safetensors headers; never the network) and estimates the smallest visible GPU: the driver's reserve, the CUDA context, NCCL buffers, the static fraction (--mem-fraction-static or sglang's default for the release; --gpu-memory-utilization), the weights per GPU (split by tp and pp, experts by expert parallelism), vLLM's activation peak and non-torch memory, and the KV cache left, in tokens from the model's KV heads, head size, layers and --kv-cache-dtype. Weights that leave no KV cache are an error; a KV cache smaller than one sequence of --max-model-len / --context-length (else the config's max_position_embeddings) is an error for vLLM, which refuses to start, and a warning for sglang, which caps requests; vLLM V1 asking for more than is free at start is an error. Figures and sources: matrices/curated/memory.toml; the model and its calibration on real startup logs: docs/fit.md. When the model's files cannot be read, an info says what could not be told; a size read from the name (\"72B\") is labelled a guess.",
        (
            "more GPUs (--tp), a quantized checkpoint, or a larger --mem-fraction-static / --gpu-memory-utilization",
            "a shorter --max-model-len / --context-length, or --kv-cache-dtype fp8",
        ),
        (
            "https://docs.vllm.ai/en/latest/configuration/conserving_memory.html",
            "https://docs.sglang.io/advanced_features/hyperparameter_tuning.html",
        ),
    ),
    "broken-dist": CodeText(
        "a stack package's dist-info cannot be read",
        "a package of the stack is installed but its dist-info cannot be read (no METADATA, no or an invalid Version)",
        "Each distribution of the stack whose dist-info folder has no METADATA, no Version, or a version that is not PEP 440. pip, importlib.metadata and the frameworks' import-time version checks see such a package as missing or fail, even when its files are there; compat still judges the version it can tell (from the folder name, or torch/version.py for torch). An error for the framework, torch, triton, kernels and companions; a warning for the rest of the stack.",
        ("reinstall it: pip install --force-reinstall --no-deps 'NAME==VERSION'",),
        ("https://packaging.python.org/en/latest/specifications/recording-installed-packages/",),
    ),
    "stack-pin": CodeText(
        "a requirement on a stack package is not met",
        "an installed distribution's requirement on a package of the stack is not met (what `pip check` reports, judged with what compat knows of each build)",
        "Every Requires-Dist of every installed distribution that names a package of the stack, with its marker evaluated for the checked Python and Linux (extras left out, as pip check does): torch's pins of its CUDA runtime wheels (nvidia-cuda-runtime-cu12==12.6.77 against 12.4.127 installed), an RL framework or a cache connector pinning vllm, a library pinning torch. The installed version is the one compat knows best (torch's from its files, a broken dist-info's from its folder). For a freeze file without the distribution's metadata, the database's record of that release is read (a build from another index keeps only its non-CUDA pins). What a more specific check judges is left to it: the framework's pins (framework-pin), torch's triton (torch-triton), a kernel's or companion's torch (kernel-torch, torch-companion). A version that does not satisfy the requirement is an error; a required package that is missing a warning, when the environment is complete (not a freeze excerpt).",
        (
            "install what the requirement asks for (the finding names it), or a release of the requiring package that supports the installed version",
        ),
        ("https://pip.pypa.io/en/stable/cli/pip_check/",),
    ),
    "missing-fact": CodeText(
        "findings compat could not tell without a host fact",
        "several checks or advisories could not tell without one host fact (the launch command, the GPUs, the driver, the model's config.json); they are reported together",
        'An info that only says "could not tell" names the host fact it lacked. When two or more lack the same fact, they become one line per fact, listing what each would have judged (the evidence lines keep each one\'s own words), with the option that gives that fact. A single one stays as it is.',
        (
            "give the fact named: the launch command after `--`, --gpu NAME, --driver VERSION, or run compat where the model's files are",
        ),
        (),
    ),
    "unpinned": CodeText(
        "a stack package an image build installs without a version",
        "a Dockerfile installs a package of the stack without an exact version: each rebuild gets whatever is newest then",
        "A `pip install` / `uv pip install` in the stage that runs (or a stage it copies from) names a package of the stack (packages.toml) without `==` or `===`, and neither a constraints file of the same command nor an earlier install of the build pins it: the next `docker build` resolves it again, and the tuple can change under a cached image tag. A warning; nothing about the package can be checked.",
        (
            "pin it: `pip install 'vllm==0.10.1.1'`, or install a lock: `compat lock TARGET -o lock/` and `pip install -r lock/requirements.lock`",
        ),
        ("https://docs.docker.com/build/building/best-practices/#pin-base-image-versions",),
    ),
    "pin-conflict": CodeText(
        "a package pinned twice, or pins that no installer can satisfy together",
        "a file pins one package twice to different versions or CUDA builds, or pins a CUDA build that its own CUDA constraint rules out",
        "Within one install command two exact pins of one package (pip refuses the command: an error); in a Dockerfile a later install that replaces an earlier pin (a warning naming both lines); in a conda file a `pytorch` build string, `pytorch-cuda=X.Y` and `cuda-version`/`cudatoolkit` that name different CUDA builds (a build for CUDA X.Y needs `cuda-version >=X.Y` of the same major: the solver refuses, an error), one package listed twice with different versions, or a `pip:` entry that installs over a conda package of the stack (a warning).",
        (
            "keep one pin per package; for conda, one CUDA: `pytorch=*=cuda126*` with `cuda-version=12.6`",
        ),
        ("https://docs.conda.io/projects/conda-build/en/stable/resources/package-spec.html",),
    ),
}


class CodeInfo(Struct, frozen=True):
    code: str
    text: CodeText


CODES: tuple[CodeInfo, ...] = tuple(CodeInfo(c, t) for c, t in FINDINGS.items())


def title(code: str) -> str:
    t = FINDINGS.get(code)
    return t.title if t else code
