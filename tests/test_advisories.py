"""Advisories: the shipped files validate, every one fires on a fixture, workarounds silence them."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any, Optional

import pytest
from msgspec import Struct
from msgspec.structs import replace
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from compat.advisories import (
    Advisory,
    AdvisorySeverity,
    explain_advisory,
    find_advisory,
    load_advisories,
    match_advisories,
    parse_advisory,
)
from compat.errors import DataError
from compat.launch import LaunchConfig, parse_launch_text
from compat.models import (
    GPU,
    Distribution,
    Driver,
    Environment,
    Finding,
    Severity,
    TorchBuild,
    Unknown,
    parse_version,
)
from compat.resources import advisories_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ASSETS = Path(__file__).parent / "assets"
FIXTURES = ASSETS / "advisories" / "fixtures"
LAUNCH = ASSETS / "launch"
SHIPPED = Path(__file__).resolve().parent.parent / "matrices" / "advisories"


def make_env(
    packages: Optional[dict[str, str]] = None,
    gpus: Any = None,
    driver: Optional[str] = None,
    env: Optional[dict[str, str]] = None,
) -> Environment:
    dists = tuple(
        Distribution(name=n, version=parse_version(v), raw_version=v)
        for n, v in sorted((packages or {}).items())
    )
    torch: Any = Unknown("not installed")
    if packages and "torch" in packages:
        tv = Version(packages["torch"])
        torch = TorchBuild(version=tv, cuda=None, hip=None, source="test")
    gpu_list: Any = Unknown("no GPU information")
    if gpus is not None:
        out = []
        for i, g in enumerate(gpus):
            cc = None
            if "cc" in g:
                major, minor = g["cc"].split(".")
                cc = (int(major), int(minor))
            out.append(
                GPU(
                    index=g.get("index", i),
                    name=g["name"],
                    compute_capability=cc,
                    memory_total_mib=g.get("memory_mib"),
                )
            )
        gpu_list = tuple(out)
    drv: Any = Unknown("not given")
    if driver:
        drv = Driver(version=driver, cuda=Unknown("not given"))
    return Environment(
        python=Unknown("test"),
        distributions=dists,
        torch=torch,
        driver=drv,
        gpus=gpu_list,
        context=Unknown("test"),
        env=dict(env or {}),
        source="test",
    )


def _framework_version(packages: dict[str, str], launch_text: str) -> Optional[Version]:
    for fw in ("sglang", "vllm"):
        if fw in packages and (fw in launch_text):
            return Version(packages[fw])
    return None


class FixtureModel(Struct, frozen=True):
    """Model facts as a fixture states them (what the HF config would tell)."""

    source: str = "fixture"
    guess: bool = False
    moe: Optional[bool] = None
    quantization: Optional[str] = None
    quant_format: Optional[str] = None
    architectures: tuple[str, ...] = ()
    model_type: Optional[str] = None


def fixture_model(data: dict[str, Any]) -> Optional[FixtureModel]:
    raw = data.get("model")
    if raw is None:
        return None
    return FixtureModel(
        moe=raw.get("moe"),
        quantization=raw.get("quantization"),
        quant_format=raw.get("quant_format"),
        architectures=tuple(raw.get("architectures", ())),
        model_type=raw.get("model_type"),
        guess=bool(raw.get("guess", False)),
    )


def load_fixture(
    path: Path,
) -> tuple[dict[str, Any], Environment, Optional[LaunchConfig], list[Finding]]:
    data = tomllib.loads(path.read_text())
    packages = data.get("packages", {})
    text = data.get("launch")
    if "launch_file" in data:
        text = (LAUNCH / data["launch_file"]).read_text()
    env = make_env(packages, data.get("gpus"), data.get("driver"), data.get("env"))
    launch = None
    if text:
        # as the pipeline parses it: on the environment's GPUs (defaults picked by the GPU)
        gpus = None if isinstance(env.gpus, Unknown) else env.gpus
        version = _framework_version(packages, text)
        launch = parse_launch_text(text, version, config_dir=LAUNCH, gpus=gpus)
    prior = [
        Finding(code=c, severity=Severity.ERROR, message=f"{c} (fixture)")
        for c in data.get("prior", [])
    ]
    return data, env, launch, prior


@pytest.fixture(scope="module")
def shipped() -> tuple[Advisory, ...]:
    return load_advisories(SHIPPED)


FIXTURE_FILES = sorted(FIXTURES.glob("*.toml"))


def test_shipped_advisories_validate_and_are_twenty_or_more(shipped: tuple[Advisory, ...]) -> None:
    assert len(shipped) >= 20
    for adv in shipped:
        assert adv.file == f"{adv.id}.toml"
        assert adv.references and all(r.url.startswith("https://") for r in adv.references)
        assert adv.workarounds
        assert adv.evidence and adv.source


def test_resources_point_at_the_shipped_folder(shipped: tuple[Advisory, ...]) -> None:
    assert [a.id for a in load_advisories(advisories_dir())] == [a.id for a in shipped]


def match_fixture(
    path: Path, advisories: tuple[Advisory, ...]
) -> tuple[dict[str, Any], list[Finding]]:
    data, env, launch, prior = load_fixture(path)
    return data, match_advisories(env, launch, advisories, prior, fixture_model(data))


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[p.stem for p in FIXTURE_FILES])
def test_fixture(path: Path, shipped: tuple[Advisory, ...]) -> None:
    data, findings = match_fixture(path, shipped)
    firing = {f.advisory for f in findings if f.severity > Severity.INFO}
    unsure = {f.advisory for f in findings if f.severity == Severity.INFO}
    known = {a.id for a in shipped}
    for key in ("fires", "silent", "misses", "could_not_tell"):
        assert set(data.get(key, [])) <= known, f"{key} names an advisory that does not exist"
    for adv_id in data.get("fires", []):
        assert adv_id in firing, f"{adv_id} should fire: {[f.message for f in findings]}"
    for adv_id in [*data.get("silent", []), *data.get("misses", [])]:
        assert adv_id not in firing and adv_id not in unsure, f"{adv_id} should be silent"
    for adv_id in data.get("could_not_tell", []):
        assert adv_id in unsure and adv_id not in firing


def test_every_advisory_fires_is_silenced_and_misses_on_fixtures(
    shipped: tuple[Advisory, ...],
) -> None:
    """Each live advisory fires on one fixture, is silent with its workaround on another, and
    misses on a neighbouring version or GPU."""
    fired: set[str] = set()
    silenced: set[str] = set()
    missed: set[str] = set()
    for path in FIXTURE_FILES:
        data, findings = match_fixture(path, shipped)
        fired |= {f.advisory or "" for f in findings if f.severity > Severity.INFO}
        silenced |= set(data.get("silent", []))
        missed |= set(data.get("misses", []))
    live = {a.id for a in shipped if not a.is_withdrawn}
    assert live <= fired, f"never fired: {sorted(live - fired)}"
    assert live <= silenced, f"no fixture shows the workaround: {sorted(live - silenced)}"
    assert live <= missed, f"no neighbouring fixture: {sorted(live - missed)}"


def test_seed_findings_carry_evidence_fix_and_references(shipped: tuple[Advisory, ...]) -> None:
    _, findings = match_fixture(FIXTURES / "seed004-h100.toml", shipped)
    (f,) = [x for x in findings if x.advisory == "COMPAT-0004"]
    assert f.code == "known-crash" and f.severity == Severity.ERROR
    assert (
        "vllm 0.18.2rc1.dev54+g73f48ce55 in !=0.18.1,!=0.19.0,!=0.19.1,<0.23.0,>=0.18.1rc1.dev266"
        in f.evidence
    )
    assert "GPU 0 NVIDIA H100 80GB HBM3 is sm_90" in f.evidence
    assert any(
        e.startswith(
            "launch: moe_backend_effective=flashinfer_cutlass (what --moe-backend "
            "auto picks for unquantized MoE in vllm 0.18.2rc1.dev54+g73f48ce55 "
            "(vllm-unquantized-moe-flashinfer-cutlass: "
        )
        for e in f.evidence
    )
    assert any("--moe-backend triton" in x for x in f.fix)
    assert "https://github.com/vllm-project/vllm/issues/39288" in f.references
    assert f.to_dict()["advisory"] == "COMPAT-0004"


def test_seed002_ray_rule_uses_launch_env_and_probed_env(shipped: tuple[Advisory, ...]) -> None:
    adv = find_advisory(shipped, "compat-0003")
    assert adv is not None
    text = (LAUNCH / "seed002-standalone.sh").read_text()
    launch = parse_launch_text(text, Version("0.5.12"))
    gpus = [{"name": "NVIDIA H100 80GB HBM3", "cc": "9.0", "memory_mib": 81559}]
    quiet = match_advisories(make_env({"sglang": "0.5.12"}, gpus), launch, [adv])
    assert quiet == []
    # A Ray actor of a colocated rollout: Ray markers plus the memory saver's CUDA-graph mode.
    actor_env = {"RAY_RAYLET_PID": "1", "SGLANG_MEMORY_SAVER_CUDA_GRAPH": "true"}
    probed = make_env({"sglang": "0.5.12"}, gpus, env=actor_env)
    (hit,) = match_advisories(probed, launch, [adv])
    assert "under Ray (RAY_RAYLET_PID set)" in hit.evidence


def test_unknown_gpu_gives_info_only_when_everything_else_matched(
    shipped: tuple[Advisory, ...],
) -> None:
    text = (LAUNCH / "seed004-crash.sh").read_text()
    # 0.20.0: the released 0.19.x still pick Triton for unquantized MoE.
    launch = parse_launch_text(text, Version("0.20.0"))
    env = make_env({"vllm": "0.20.0"})
    adv = find_advisory(shipped, "COMPAT-0004")
    assert adv is not None
    (f,) = match_advisories(env, launch, [adv])
    assert f.severity == Severity.INFO and "could not tell" in f.message
    assert any("give the GPU with --gpu NAME" in x for x in f.fix)
    # A clause that fails keeps it quiet even with the GPU unknown.
    old = make_env({"vllm": "0.10.0"})
    assert match_advisories(old, parse_launch_text(text, Version("0.10.0")), [adv]) == []


def test_no_launch_command_gives_info_for_launch_advisories(shipped: tuple[Advisory, ...]) -> None:
    env = make_env(
        {"vllm": "0.20.0"}, [{"name": "NVIDIA H100 80GB HBM3", "cc": "9.0", "memory_mib": 81559}]
    )
    findings = match_advisories(env, None, shipped)
    assert {f.advisory for f in findings} >= {"COMPAT-0004"}
    assert all(f.severity == Severity.INFO for f in findings)
    f = next(f for f in findings if f.advisory == "COMPAT-0004")
    assert any("pass the server command after `--`" in x for x in f.fix)


def test_withdrawn_never_matches(shipped: tuple[Advisory, ...]) -> None:
    _, env, launch, prior = load_fixture(FIXTURES / "seed004-h100.toml")
    adv = find_advisory(shipped, "COMPAT-0004")
    assert adv is not None
    assert match_advisories(env, launch, [replace(adv, withdrawn="2026-11-23")], prior) == []


def test_workaround_in_command_silences_even_without_a_failing_clause(
    shipped: tuple[Advisory, ...],
) -> None:
    # COMPAT-0016's clauses do not look at custom all-reduce, COMPAT-0018 lists
    # --disable-custom-all-reduce as a workaround: it is honoured through the workaround check.
    adv = find_advisory(shipped, "COMPAT-0018")
    assert adv is not None
    text = "vllm serve ./deepseek-v3 -tp 8 -pp 2 --disable-custom-all-reduce"
    launch = parse_launch_text(text, Version("0.7.2"))
    env = make_env({"vllm": "0.7.2"})
    # (COMPAT-0018 is withdrawn; its record serves here as a live one)
    trimmed = replace(
        adv, withdrawn="", affected=replace(adv.affected, launch=adv.affected.launch[:2])
    )
    bare = parse_launch_text("vllm serve ./deepseek-v3 -tp 8 -pp 2", Version("0.7.2"))
    assert [f.advisory for f in match_advisories(env, bare, [trimmed])] == ["COMPAT-0018"]
    assert match_advisories(env, launch, [trimmed]) == []


def test_a_workaround_flag_the_release_does_not_know_does_not_silence(
    shipped: tuple[Advisory, ...],
) -> None:
    """`--async-scheduling` exists from vLLM 0.10.0: given to 0.7.2 it is a launch-flag error
    (the release's parser refuses it), not a workaround in effect."""
    from compat.advisories.schema import Workaround

    adv = find_advisory(shipped, "COMPAT-0018")
    assert adv is not None
    trimmed = replace(
        adv,
        withdrawn="",
        affected=replace(adv.affected, launch=adv.affected.launch[:2]),
        workarounds=(Workaround("test", flags=("--async-scheduling",)),),
    )
    text = "vllm serve ./deepseek-v3 -tp 8 -pp 2 --async-scheduling"
    for version, silenced in (("0.7.2", False), ("0.10.0", True)):
        adv_v = replace(
            trimmed,
            affected=replace(
                trimmed.affected,
                packages=tuple(
                    replace(r, specifier=SpecifierSet(">=0")) for r in trimmed.affected.packages
                ),
            ),
        )
        launch = parse_launch_text(text, Version(version))
        hits = match_advisories(make_env({"vllm": version}), launch, [adv_v])
        assert (hits == []) is silenced, (version, [h.message for h in hits])


def test_findings_are_sorted_and_deterministic(shipped: tuple[Advisory, ...]) -> None:
    _, env, launch, prior = load_fixture(FIXTURES / "seed000-rtx4070.toml")
    a = match_advisories(env, launch, shipped, prior)
    b = match_advisories(env, launch, tuple(reversed(shipped)), prior)
    assert a == b
    assert [f.severity.rank for f in a] == sorted((f.severity.rank for f in a), reverse=True)


def test_severity_mapping_walks_every_member() -> None:
    expected = {
        "crash": Severity.ERROR,
        "hang": Severity.ERROR,
        "wrong-output": Severity.WARNING,
        "oom": Severity.WARNING,
        "perf": Severity.INFO,
    }
    assert {s.value: s.finding_severity for s in AdvisorySeverity} == expected


def test_broken_files_report_every_problem_with_file_and_key() -> None:
    with pytest.raises(DataError) as info:
        load_advisories(ASSETS / "advisories" / "broken")
    problems = info.value.problems
    text = "\n".join(problems)
    for needle in (
        "COMPAT-9001.toml: colour: unknown key",
        "COMPAT-9001.toml: summary: must not be empty",
        "COMPAT-9001.toml: details: missing",
        "COMPAT-9001.toml: severity: expected one of crash, hang, wrong-output, oom, perf",
        "COMPAT-9001.toml: published: expected a date",
        "COMPAT-9001.toml: references[0].type:",
        "COMPAT-9001.toml: references[0].url: expected an https:// URL",
        "COMPAT-9001.toml: affected.framework:",
        "COMPAT-9001.toml: affected.packages.sglang: invalid PEP 440 specifier",
        "COMPAT-9001.toml: affected.gpu_cc[0]:",
        "COMPAT-9001.toml: affected.findings[0]: unknown finding code",
        "COMPAT-9001.toml: affected.launch[0].setting: unknown launch setting 'warp_speed'",
        "COMPAT-9001.toml: affected.launch[1]: exactly one of",
        "COMPAT-9001.toml: affected.env[0]: exactly one of",
        "COMPAT-9001.toml: workarounds[0]: needs at least one of",
        "COMPAT-9002.toml: invalid TOML",
        "COMPAT-9003.toml: id: 'COMPAT-9004' does not match the file name 'COMPAT-9003'",
    ):
        assert needle in text, f"missing {needle!r} in:\n{text}"
    assert str(info.value).startswith(f"{len(problems)} problem(s) in the database")


def test_duplicate_ids_are_reported(tmp_path: Path) -> None:
    src = (SHIPPED / "COMPAT-0006.toml").read_text()
    (tmp_path / "COMPAT-0006.toml").write_text(src)
    (tmp_path / "COMPAT-0007.toml").write_text(
        src.replace('id = "COMPAT-0006"', 'id = "COMPAT-0007"')
    )
    assert len(load_advisories(tmp_path)) == 2
    data = tomllib.loads(src)
    adv, errs = parse_advisory(data, "elsewhere/COMPAT-0006.toml")
    assert adv is not None and errs == []
    with pytest.raises(DataError):
        load_advisories(tmp_path / "missing")


def test_explain_names_clauses_workarounds_and_sources(shipped: tuple[Advisory, ...]) -> None:
    adv = find_advisory(shipped, "COMPAT-0003")
    assert adv is not None
    text = explain_advisory(adv)
    assert text.startswith("COMPAT-0003  [crash]")
    assert "launched under Ray" in text
    assert "launch: custom_all_reduce = True" in text
    assert "add `--disable-custom-all-reduce` to the launch command" in text
    assert "https://github.com/radixark/miles/issues/1176" in text
    assert "seed 002" in text
    for a in shipped:
        assert a.id in explain_advisory(a)


def _hundred(shipped: tuple[Advisory, ...]) -> list[Advisory]:
    out = []
    for i in range(100):
        base = shipped[i % len(shipped)]
        out.append(replace(base, id=f"COMPAT-{1000 + i:04d}"))
    return out


def test_matching_one_hundred_advisories_is_fast(shipped: tuple[Advisory, ...]) -> None:
    advisories = _hundred(shipped)
    _, env, launch, prior = load_fixture(FIXTURES / "seed000-rtx4070.toml")
    match_advisories(env, launch, advisories, prior)  # warm the workaround cache
    times = []
    for _ in range(15):
        t0 = time.perf_counter()
        match_advisories(env, launch, advisories, prior)
        times.append(time.perf_counter() - t0)
    assert statistics.median(times) < 0.020


MODEL_ADVISORY = """
id = "COMPAT-9100"
summary = "an MoE-kernel crash with FP8 on sm_90"
details = "test"
severity = "crash"
published = "2026-12-01"
project = "vllm"
reported = "2026-01-02"
confirmed = "merged-fix"
evidence = "a quote"
source = "test"

[[references]]
type = "report"
url = "https://github.com/vllm-project/vllm/issues/1"

[affected]
framework = "vllm"
packages = { vllm = ">=0.10" }

[affected.model]
moe = true
quantization = ["fp8"]

[[affected.launch]]
setting = "enable_dbo"
equals = true

[[workarounds]]
description = "Triton MoE"
flags = ["--moe-backend triton"]
"""


def _model_advisory() -> Advisory:
    adv, errors = parse_advisory(tomllib.loads(MODEL_ADVISORY), "COMPAT-9100.toml")
    assert errors == [] and adv is not None
    return adv


def test_model_clause_needs_every_part_and_says_when_it_cannot_tell() -> None:
    adv = _model_advisory()
    assert adv.project == "vllm" and adv.confirmed == "merged-fix"
    env = make_env({"vllm": "0.11.0"})
    launch = parse_launch_text("vllm serve org/m --enable-dbo", Version("0.11.0"))
    launch = replace(launch, settings={**launch.settings, "enable_dbo": True})
    moe_fp8 = FixtureModel(moe=True, quantization="fp8", source="config.json")
    (hit,) = match_advisories(env, launch, [adv], (), moe_fp8)
    assert hit.severity == Severity.ERROR
    assert "model: MoE (config.json)" in hit.evidence
    assert "model: quantization fp8 (config.json)" in hit.evidence
    # A dense model, or an unquantized one, keeps it silent.
    assert match_advisories(env, launch, [adv], (), replace(moe_fp8, moe=False)) == []
    assert match_advisories(env, launch, [adv], (), replace(moe_fp8, quantization=None)) == []
    # Unknown model, or facts guessed from the name: "may apply", never an error.
    for model in (None, Unknown("no config.json in the HF cache"), replace(moe_fp8, guess=True)):
        (maybe,) = match_advisories(env, launch, [adv], (), model)
        assert maybe.severity == Severity.INFO and "could not tell" in maybe.message
    # A framework's own argument left out: the release's default applies (vLLM 0.11.0 declares
    # --enable-dbo with default False), so the advisory misses.
    bare = parse_launch_text("vllm serve org/m", Version("0.11.0"))
    assert bare.get("enable_dbo") is False
    assert match_advisories(env, bare, [adv], (), moe_fp8) == []
    # A release without that argument in the launch data (0.10.2): could not tell.
    older = parse_launch_text("vllm serve org/m", Version("0.10.2"))
    (unsure,) = match_advisories(make_env({"vllm": "0.10.2"}), older, [adv], (), moe_fp8)
    assert unsure.severity == Severity.INFO
    assert any("enable_dbo is not a setting of vllm 0.10.2" in e for e in unsure.evidence)


def test_model_clause_none_stands_for_an_unquantized_model() -> None:
    adv = _model_advisory()
    model = replace(adv.affected.model, quantization=("none",))
    adv = replace(adv, affected=replace(adv.affected, model=model))
    assert "the model is not quantized" in model.describe()
    env = make_env({"vllm": "0.11.0"})
    launch = parse_launch_text("vllm serve org/m --enable-dbo", Version("0.11.0"))
    launch = replace(launch, settings={**launch.settings, "enable_dbo": True})
    bf16 = FixtureModel(moe=True, quantization=None, source="config.json")
    (hit,) = match_advisories(env, launch, [adv], (), bf16)
    assert "model: not quantized (config.json)" in hit.evidence
    assert match_advisories(env, launch, [adv], (), replace(bf16, quantization="fp8")) == []


def test_model_clause_and_new_fields_are_validated() -> None:
    bad = MODEL_ADVISORY.replace('confirmed = "merged-fix"', 'confirmed = "hunch"')
    bad = bad.replace('project = "vllm"', 'project = "tensorrt"').replace(
        "moe = true", 'moe = "yes"'
    )
    bad = bad.replace('reported = "2026-01-02"', 'reported = "yesterday"')
    adv, errors = parse_advisory(tomllib.loads(bad), "COMPAT-9100.toml")
    assert adv is None
    text = "\n".join(errors)
    for needle in (
        "confirmed: expected one of",
        "project: expected one of",
        "affected.model.moe: expected true or false",
        "reported: expected a date",
    ):
        assert needle in text
    empty = MODEL_ADVISORY.replace('moe = true\nquantization = ["fp8"]\n', "")
    _, errors = parse_advisory(tomllib.loads(empty), "COMPAT-9100.toml")
    assert any("an empty [affected.model] table" in e for e in errors)
    no_fw = MODEL_ADVISORY.replace('framework = "vllm"\n', "")
    _, errors = parse_advisory(tomllib.loads(no_fw), "COMPAT-9100.toml")
    assert any("unknown launch setting 'enable_dbo'" in e for e in errors)


def test_model_quantization_matches_the_method_or_the_weight_format() -> None:
    adv = _model_advisory()
    adv = replace(
        adv,
        affected=replace(adv.affected, model=replace(adv.affected.model, quantization=("nvfp4",))),
    )  # type: ignore[arg-type]
    env = make_env({"vllm": "0.11.0"})
    launch = parse_launch_text("vllm serve org/m --enable-dbo", Version("0.11.0"))
    launch = replace(launch, settings={**launch.settings, "enable_dbo": True})
    modelopt = FixtureModel(moe=True, quantization="modelopt", quant_format="nvfp4", source="c")
    (hit,) = match_advisories(env, launch, [adv], (), modelopt)
    assert (
        hit.severity == Severity.ERROR and "model: quantization modelopt/nvfp4 (c)" in hit.evidence
    )
    fp8 = replace(modelopt, quant_format="fp8")
    assert match_advisories(env, launch, [adv], (), fp8) == []


def test_validation_flags_advisories_that_say_the_same_thing_or_test_nothing() -> None:
    # what `compat matrix validate` runs (a check skips the pairwise comparison)
    with pytest.raises(DataError) as info:
        load_advisories(ASSETS / "advisories" / "same", check_duplicates=True)
    text = "\n".join(info.value.problems)
    assert "COMPAT-9102 has the same primary report as COMPAT-9101" in text
    assert "COMPAT-9104 has the same conditions as COMPAT-9103" in text
    assert "COMPAT-9105.toml: affected: no testable condition" in text


CLEAN_STACKS = [
    ASSETS / "envs" / "h100-torch2.11-cu130.json",  # the GPU machine's real stack
    ASSETS / "freeze" / "sglang-0.4.6-good.txt",
    ASSETS / "freeze" / "vllm-0.10.1.1-good.txt",
    ASSETS / "freeze" / "h100-image-freeze.txt",
]


@pytest.mark.parametrize("path", CLEAN_STACKS, ids=[p.name for p in CLEAN_STACKS])
def test_precision_budget_no_advisory_fires_on_a_clean_stack_without_a_launch(path: Path) -> None:
    """On consistent stacks, with the common GPUs, no advisory above info fires unless a launch
    command triggers it: the advisories that need a launch say "may apply" at most."""
    from compat.inputs import apply_overrides, load_from
    from compat.pipeline import check, load_database

    db = load_database()
    base = load_from(str(path), db.matrix)
    for gpu in ("h100 80gb", "a100 80gb", "l40s", "rtx 4090", "b200"):
        env = apply_overrides(base, db.matrix, "580.65.06", (gpu,), (), "3.11")
        fired = [
            f.advisory
            for f in check(env, db)
            if f.code == "known-crash" and f.severity > Severity.INFO
        ]
        assert fired == [], (path.name, gpu, fired)


def test_nccl_pinned_by_torch_matches_a_freeze_without_nvidia_lines() -> None:
    """A freeze listing torch but not the NCCL wheel torch pins: the NCCL advisory still sees
    the NCCL torch pulls (torch 2.14.0 pins nvidia-nccl-cu13==2.30.7); one listed wins."""
    from compat.inputs import apply_overrides, env_from_freeze
    from compat.pipeline import check, load_database

    db = load_database()
    text = "vllm==0.20.0\ntorch==2.14.0\n"
    env = apply_overrides(env_from_freeze(text, "freeze.txt", db.matrix), db.matrix, gpus=("gb10",))
    launch = parse_launch_text(
        "vllm serve deepseek-ai/DeepSeek-V4-Flash --tensor-parallel-size 2", Version("0.20.0")
    )
    moe = FixtureModel(moe=True, source="config.json")
    (hit,) = [f for f in check(env, db, launch, moe) if f.advisory == "COMPAT-0010"]
    assert hit.severity == Severity.ERROR
    assert any(
        "nvidia-nccl-cu13 2.30.7 (pinned by torch 2.14.0; not listed)" in e for e in hit.evidence
    )
    listed = env_from_freeze(text + "nvidia-nccl-cu13==2.30.3\n", "freeze.txt", db.matrix)
    listed = apply_overrides(listed, db.matrix, gpus=("gb10",))
    assert "COMPAT-0010" not in {f.advisory for f in check(listed, db, launch, moe)}
