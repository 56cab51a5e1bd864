"""Findings as SARIF 2.1.0 for code-scanning upload (one rule per finding code or advisory)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from compat import __version__
from compat.models import Code, Environment, Finding, Severity

_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def format_findings(findings: Sequence[Finding], env: Environment) -> str:
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for f in findings:
        rule_id = f.advisory or f.code
        rules.setdefault(
            rule_id,
            {
                "id": rule_id,
                "name": f.code,
                "shortDescription": {
                    "text": f.message if f.advisory else _DESCRIPTIONS.get(f.code, f.code)
                },
                "helpUri": f.references[0] if f.references else None,
                "defaultConfiguration": {"level": _LEVEL[f.severity]},
            },
        )
        text = f.message
        if f.fix:
            text += "\nFix: " + "; ".join(f.fix)
        results.append(
            {
                "ruleId": rule_id,
                "level": _LEVEL[f.severity],
                "message": {"text": text},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(env)}}}],
                "properties": {"evidence": list(f.evidence), "packages": list(f.packages)},
            }
        )
    for r in rules.values():
        if r["helpUri"] is None:
            del r["helpUri"]
    doc = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "compat",
                        "version": __version__,
                        "informationUri": "https://pypi.org/project/compat/",
                        "rules": sorted(rules.values(), key=lambda r: r["id"]),
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def _uri(env: Environment) -> str:
    return env.source if env.source not in ("live", "") else "environment"


_DESCRIPTIONS = {
    Code.FRAMEWORK_PIN.value: "sglang/vLLM requirement not met",
    Code.TORCH_TRITON.value: "triton does not match torch's pin",
    Code.TORCH_COMPANION.value: "torchvision/torchaudio/xformers built for another torch",
    Code.KERNEL_TORCH.value: "compiled kernel package built for another torch, CUDA or C++ ABI",
    Code.SPLIT_PACKAGE.value: "parts of one project at different versions",
    Code.CUDA_MIX.value: "more than one CUDA major in the stack",
    Code.DRIVER_TOO_OLD.value: "the driver cannot run the CUDA build",
    Code.GPU_ARCH.value: "GPU compute capability not covered by the build",
    Code.STALE_CACHE.value: "JIT/compile cache built by other versions",
    Code.ENV_VAR.value: "environment variable breaks or shadows the stack",
    Code.KNOWN_CRASH.value: "a known-crash advisory matches",
    Code.MEMORY_HEADROOM.value: "too little GPU memory left for CUDA-graph capture",
    Code.UNKNOWN_COMBINATION.value: "tuple not in compat's database",
    Code.CLUSTER_MISMATCH.value: "nodes of a Ray cluster differ",
}
