"""One test per failure class the fuzz campaign found (the issue's list): the smallest input of
each, through the entry point that failed. A strict xfail marks a class that fails today; a
fix makes its test pass, and strict turns that into a failure that says to drop the mark."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fuzz import generators as gen
from tests.fuzz import targets
from tests.fuzz.harness import Outcome, Result, run_cli, run_inproc

ASSETS = gen.ASSETS
SNAP = ASSETS / "envs" / "h100-torch2.11-cu130.json"
GOOD_FREEZE = str(ASSETS / "freeze" / "sglang-0.4.6-good.txt")
DEEP = 100_000


def known(reason: str) -> Any:
    return pytest.mark.xfail(strict=True, reason=f"known: {reason}")


def passes(res: Result) -> None:
    assert res.outcome in (Outcome.OK, Outcome.CLEAN_ERROR), (
        res.short() + "\n" + res.traceback[-1500:]
    )


@pytest.fixture(autouse=True, scope="module")
def _warm() -> None:
    targets.warm()


def _snapshot(tmp_path: Path, **changes: Any) -> str:
    doc = gen.full_snapshot()
    for dotted, value in changes.items():
        cur: Any = doc
        keys = dotted.split("__")
        for k in keys[:-1]:
            cur = cur[int(k)] if k.isdigit() else cur[k]
        last = keys[-1]
        if last.isdigit():
            cur[int(last)] = value
        else:
            cur[last] = value
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def _check(path: str, **kw: Any) -> Result:
    return run_inproc(targets.check_request, path, **kw)


# --------------------------------------------------------------------------------------------
# Snapshot JSON
# --------------------------------------------------------------------------------------------


def test_lone_surrogate_in_gpu_name(tmp_path: Path) -> None:
    passes(_check(_snapshot(tmp_path, gpus__0__name="H100\ud800")))


def test_torch_cuda_not_a_version(tmp_path: Path) -> None:
    passes(_check(_snapshot(tmp_path, torch__cuda="12.x")))


def test_cuda_visible_devices_superscript(tmp_path: Path) -> None:
    passes(_check(_snapshot(tmp_path, env__CUDA_VISIBLE_DEVICES="\u00b2")))


def test_cuda_visible_devices_5000_digits(tmp_path: Path) -> None:
    passes(_check(_snapshot(tmp_path, env__CUDA_VISIBLE_DEVICES="9" * 5000)))


def test_snapshot_version_5000_digits(tmp_path: Path) -> None:
    doc = gen.full_snapshot()
    for d in doc["distributions"]:
        if d["name"] == "torch":
            d["version"] = "9" * 5000
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(doc))
    passes(_check(str(path)))


def test_snapshot_deep_nesting(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    path.write_text('{"schema": "compat.env/1", "env": ' + "[" * DEEP + "]" * DEEP + "}")
    passes(_check(str(path)))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("gpus__0__index", "0"),
        ("gpus__0__memory_total_mib", 1.5),
        ("distributions__0__requires", "torch"),
        ("env", ["A=1"]),
        ("caches__0__size_bytes", "big"),
        ("python__tags", "cp311"),
    ],
)
def test_wrong_json_type_is_a_clean_error(tmp_path: Path, field: str, value: Any) -> None:
    """A field of the wrong JSON type is an input error naming the key path (exit 3)."""
    res = _check(_snapshot(tmp_path, **{field: value}))
    assert res.outcome is Outcome.CLEAN_ERROR, res.short()
    assert field.split("__")[-1] in res.stdout  # the message names the key


def test_env_value_of_the_wrong_type(tmp_path: Path) -> None:
    res = _check(_snapshot(tmp_path, env__CUDA_VISIBLE_DEVICES=[0, 1]))
    assert res.outcome is Outcome.CLEAN_ERROR, res.short()


# --------------------------------------------------------------------------------------------
# Freeze files, lint
# --------------------------------------------------------------------------------------------


def test_freeze_version_5000_digits(tmp_path: Path) -> None:
    path = tmp_path / "freeze.txt"
    path.write_text("torch==2.7.1\ntriton==3." + "9" * 5000 + "\n")
    passes(run_inproc(targets.freeze_everything, str(path)))


def test_lint_version_5000_digits(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("torch==2.7.1\ntriton==3." + "9" * 5000 + "\n")
    passes(run_inproc(targets.lint_paths, [str(path)]))


def test_lint_self_include_dotslash(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("torch==2.7.1\n-r ./requirements.txt\n")
    passes(run_inproc(targets.lint_paths, [str(tmp_path / "requirements.txt")]))


def test_lint_include_nul(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("torch==2.7.1\n-r a\x00b\n")
    passes(run_inproc(targets.lint_paths, [str(tmp_path / "requirements.txt")]))


def test_lint_include_proc_environ_leaks(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("torch==2.7.1\n-r /proc/self/environ\n")
    env = dict(os.environ, HF_TOKEN=gen.HF, COMPAT_FUZZ_URL=gen.SECRET_URL_PASSWORD)
    res = run_cli(("lint", str(tmp_path / "requirements.txt")), env=env, secrets=gen.NEEDLES)
    passes(res)


def test_from_proc_environ_leaks() -> None:
    env = dict(os.environ, HF_TOKEN=gen.HF, COMPAT_FUZZ_URL=gen.SECRET_URL_PASSWORD)
    passes(run_cli(("check", "--from", "/proc/self/environ"), env=env, secrets=gen.NEEDLES))


def test_lint_python_non_ascii_digits_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("torch==2.7.1\ntriton==3.1.0\n")
    res = run_cli(("lint", "--python", "\u0663.\u0661\u0661", str(tmp_path / "requirements.txt")))
    assert res.outcome is Outcome.CLEAN_ERROR and res.rc == 2, res.short()


def test_lint_pyproject_5000_digit_integer(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\nversion = ' + "9" * 5000 + "\n"
    )
    passes(run_inproc(targets.lint_paths, [str(tmp_path / "pyproject.toml")]))


def test_lint_toml_deep_array(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("x = " + "[" * DEEP + "]" * DEEP + "\n")
    passes(run_inproc(targets.lint_paths, [str(tmp_path / "pyproject.toml")]))


# --------------------------------------------------------------------------------------------
# Launch commands
# --------------------------------------------------------------------------------------------


def test_compilation_config_deep() -> None:
    argv = ["vllm", "serve", "m", "--compilation-config", '{"a":' * DEEP + "1" + "}" * DEEP]
    passes(run_inproc(targets.launch_argv, argv, "vllm"))


def test_runtime_env_deep() -> None:
    passes(run_inproc(targets.runtime_env, '{"a":' * DEEP + "1" + "}" * DEEP))


@pytest.mark.parametrize(
    "argv",
    [
        ["vllm", "serve", "m", "--tensor-parallel-size", "9" * 5000],
        ["vllm", "serve", "m", "--gpu-memory-utilization", "1e999"],
        ["vllm", "serve", "m", "-O" + "9" * 5000],
        ["python", "-m", "sglang.launch_server", "--tp", "\u00b2"],
    ],
    ids=["tp-5000-digits", "float-overflow", "O-level-5000-digits", "tp-superscript"],
)
def test_launch_numbers(argv: list[str]) -> None:
    passes(run_inproc(targets.launch_argv, argv, "vllm" if argv[0] == "vllm" else "sglang"))


def test_config_yaml_timestamp(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("compilation-config: {a: 2001-12-14}\n")
    passes(
        run_inproc(
            targets.launch_argv,
            ["vllm", "serve", "m", "--config", str(tmp_path / "c.yaml")],
            "vllm",
        )
    )


def test_run_empty_command() -> None:
    passes(run_cli(("run", "--from", GOOD_FREEZE, "--", "")))


def test_env_to_dev_full() -> None:
    passes(run_cli(("env", "--no-host"), stdout_path="/dev/full"))


# --------------------------------------------------------------------------------------------
# Data files and caches
# --------------------------------------------------------------------------------------------


def test_data_file_5000_digit_integer(tmp_path: Path) -> None:
    case = gen._db_case("data", "int", "curated/cuda.toml", "x = " + "9" * 5000 + "\n", "")
    gen.materialize(case, tmp_path)
    passes(
        run_inproc(
            targets.database_root,
            str(tmp_path / "db"),
            env={"COMPAT_CACHE_DIR": str(tmp_path / "cache")},
        )
    )


def test_unquoted_datetime_in_a_data_file_leaves_no_tmp(tmp_path: Path) -> None:
    text = (
        gen.MATRICES / "curated" / "gpus.toml"
    ).read_text() + "\n[extra]\nwhen = 1979-05-27T07:32:00Z\n"
    case = gen._db_case("data", "dt", "curated/gpus.toml", text, "")
    gen.materialize(case, tmp_path)
    env = dict(
        os.environ, COMPAT_MATRICES=str(tmp_path / "db"), COMPAT_CACHE_DIR=str(tmp_path / "cache")
    )
    res = run_cli(("check", "--from", str(SNAP), "--gpu", "h100"), env=env)
    passes(res)
    assert not list((tmp_path / "cache").rglob("*.tmp"))


# --------------------------------------------------------------------------------------------
# Probes
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def elf_seed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    raw = gen.build_elf(tmp_path_factory.mktemp("elf"))
    if raw is None:
        pytest.skip("no C compiler")
    return raw


def _elf(tmp_path: Path, raw: bytes) -> str:
    path = tmp_path / "site" / "torch" / "lib" / "libc10.so"
    path.parent.mkdir(parents=True)
    path.write_bytes(raw)
    return str(path)


@pytest.mark.parametrize(
    "mutation",
    [
        "sec6:sh_link=4294967295",
        "e_shoff=18446744073709551615",
        "sec6:sh_offset=18446744073709551615",
        "sec11:sh_size=18446744073709551615",
    ],
)
def test_malformed_elf(tmp_path: Path, elf_seed: bytes, mutation: str) -> None:
    import random

    data = dict(gen.elf_mutants(random.Random(0), elf_seed))[mutation]
    env = {"COMPAT_CACHE_DIR": str(tmp_path / "cache")}
    passes(run_inproc(targets.elf_object, _elf(tmp_path, data), env=env))


def test_nvidia_smi_inf() -> None:
    passes(
        run_inproc(
            targets.smi_text,
            "0, NVIDIA H100 80GB HBM3, 9.0, inf, 480, Disabled, GPU-1, 550.54.15\n",
        )
    )


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param("{}"),
        pytest.param("null"),
        pytest.param("[]"),
    ],
)
def test_interpreter_prints_json_of_the_wrong_shape(tmp_path: Path, payload: str) -> None:
    exe = tmp_path / "python"
    exe.write_text(f"#!/bin/sh\necho '{payload}'\n")
    exe.chmod(0o755)
    passes(run_inproc(targets.interpreter, str(exe)))


def test_interpreter_site_hooks_do_not_run(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    marker = tmp_path / "ran"
    (site / "hook.pth").write_text(f"import os; open({str(marker)!r}, 'w').close()\n")
    res = run_inproc(targets.interpreter, str(venv / "bin" / "python"))
    passes(res)
    assert not marker.exists(), "the target interpreter's .pth file ran"


def test_missing_torch_metadata_is_not_silence(tmp_path: Path) -> None:
    """The same site with torch's METADATA gone must still know torch (or say it is broken):
    otherwise the framework-pin error disappears and the check passes."""
    files = gen.site_files()
    gen.materialize(gen.Case("dist-info", "x", files=files), tmp_path / "a")
    del files["site/torch-2.7.1.dist-info/METADATA"]
    files["site/torch-2.7.1.dist-info/RECORD"] = b""
    gen.materialize(gen.Case("dist-info", "x", files=files), tmp_path / "b")
    whole = targets.site_findings(str(tmp_path / "a" / "site"))
    broken = targets.site_findings(str(tmp_path / "b" / "site"))
    assert ("framework-pin", "error") in whole
    assert any(severity == "error" for _, severity in broken), broken


# --------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("var", "value"),
    [
        pytest.param(
            "LD_LIBRARY_PATH",
            gen.SECRET_ENV["LD_LIBRARY_PATH"],
        ),
        pytest.param(
            "VLLM_RPC_BASE_URL",
            gen.SECRET_URL_PASSWORD,
        ),
        pytest.param(
            "SGLANG_REPO_URL",
            gen.SECRET_URL_TOKEN,
        ),
        pytest.param(
            "VLLM_EXTRA_ARGS",
            gen.SECRET_ENV["VLLM_EXTRA_ARGS"],
        ),
        pytest.param(
            "NCCL_DEBUG_SUBSYS",
            gen.SECRET_ENV["NCCL_DEBUG_SUBSYS"],
        ),
        pytest.param(
            "COMPAT_NOTE",
            gen.SECRET_ENV["COMPAT_NOTE"],
        ),
        pytest.param("HF_TOKEN", gen.HF, id="HF_TOKEN"),
    ],
)
def test_recorded_variables_are_redacted(var: str, value: str) -> None:
    res = run_cli(
        ("env", "--json", "--no-host"), env=dict(os.environ, **{var: value}), secrets=gen.NEEDLES
    )
    passes(res)


def test_launch_file_secrets(tmp_path: Path) -> None:
    (tmp_path / "run.sh").write_text(
        f"export VLLM_RPC_BASE_URL='{gen.SECRET_URL_PASSWORD}'\n"
        f"vllm serve m --api-key {gen.API_KEY} --tensor-parallel-size 2\n"
    )
    freeze = str(ASSETS / "freeze" / "vllm-0.10.1.1-good.txt")
    res = run_inproc(
        functools.partial(targets.check_request, freeze, launch_file=str(tmp_path / "run.sh")),
        secrets=gen.NEEDLES,
    )
    passes(res)


def test_diff_redacts(tmp_path: Path) -> None:
    a = gen.full_snapshot()
    b = gen.full_snapshot()
    b["env"].update(gen.SECRET_ENV)
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    passes(
        run_cli(("diff", str(tmp_path / "a.json"), str(tmp_path / "b.json")), secrets=gen.NEEDLES)
    )


# --------------------------------------------------------------------------------------------
# Slow classes: hangs and memory (the full campaign runs these too)
# --------------------------------------------------------------------------------------------


@pytest.mark.fuzz
def test_config_alias_bomb(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(str(gen.YAML_CONFIGS[0][1]))
    passes(
        run_inproc(
            targets.launch_argv,
            ["vllm", "serve", "m", "--config", str(tmp_path / "c.yaml")],
            "vllm",
        )
    )


@pytest.mark.fuzz
@pytest.mark.parametrize(
    "text",
    [
        "echo 'x\n" + "ls -l /tmp\n" * 4000 + "vllm serve m\n",  # an unbalanced quote
        "vllm serve " + "m" * 2_000_000 + "\n",  # a 2 MB token
    ],
    ids=["unbalanced-quote", "2mb-token"],
)
def test_launch_file_hostile_text(tmp_path: Path, text: str) -> None:
    (tmp_path / "run.sh").write_text(text)
    freeze = str(ASSETS / "freeze" / "vllm-0.10.1.1-good.txt")
    passes(
        run_inproc(
            functools.partial(targets.check_request, freeze, launch_file=str(tmp_path / "run.sh"))
        )
    )


@pytest.mark.fuzz
@pytest.mark.parametrize(
    "what",
    [
        "METADATA",
        "version.py",
        "_C.so",
    ],
)
def test_fifo_in_a_site(tmp_path: Path, what: str) -> None:
    files = gen.site_files()
    key = {
        "METADATA": "site/torch-2.7.1.dist-info/METADATA",
        "version.py": "site/torch/version.py",
        "_C.so": "site/torchvision/_C.so",
    }[what]
    files[key] = gen.Fifo()
    gen.materialize(gen.Case("dist-info", "x", files=files), tmp_path)
    passes(run_inproc(targets.site_probe, str(tmp_path / "site"), True))


@pytest.mark.fuzz
def test_metadata_20mb_header(tmp_path: Path) -> None:
    files = gen.site_files()
    files["site/torch-2.7.1.dist-info/METADATA"] = (
        "Name: " + "t" * (20 << 20) + "\nVersion: 2.7.1\n"
    )
    gen.materialize(gen.Case("dist-info", "x", files=files), tmp_path)
    passes(run_inproc(targets.site_probe, str(tmp_path / "site")))


@pytest.mark.fuzz
@pytest.mark.parametrize(
    "what",
    [
        "fifo",
        "dev-zero",
    ],
)
def test_config_file_that_never_ends(tmp_path: Path, what: str) -> None:
    cfg = tmp_path / "c.yaml"
    if what == "fifo":
        os.mkfifo(cfg)
    else:
        cfg.symlink_to("/dev/zero")
    passes(run_inproc(targets.launch_argv, ["vllm", "serve", "m", "--config", str(cfg)], "vllm"))


@pytest.mark.fuzz
def test_interpreter_flood(tmp_path: Path) -> None:
    exe = tmp_path / "python"
    exe.write_text("#!/bin/sh\nexec cat /dev/zero\n")
    exe.chmod(0o755)
    passes(run_inproc(targets.interpreter, str(exe)))


# --------------------------------------------------------------------------------------------
# Classes the full campaign found after the first ones were fixed
# --------------------------------------------------------------------------------------------


def test_lint_url_wheel_with_a_password(tmp_path: Path) -> None:
    """A direct-URL pin whose password holds '/' and '@' is quoted by lint's findings."""
    path = tmp_path / "requirements.txt"
    path.write_text(
        f"torch @ {gen.SECRET_URL_PASSWORD}/torch-2.7.1-cp312-cp312-linux_x86_64.whl\n"
        "triton==3.3.1\n"
    )
    passes(run_inproc(targets.lint_paths, [str(path)], secrets=gen.NEEDLES))


@pytest.mark.parametrize("name", ["9" * 5000, "a" * 300, "../../etc/passwd"])
def test_pylock_package_name_no_file_can_have(tmp_path: Path, name: str) -> None:
    (tmp_path / "pylock.toml").write_text(
        'lock-version = "1.0"\ncreated-by = "x"\n\n'
        f'[[packages]]\nname = "{name}"\nversion = "1.0"\n\n'
        '[[packages]]\nname = "torch"\nversion = "2.7.1"\n'
    )
    passes(run_inproc(targets.lint_paths, [str(tmp_path / "pylock.toml")]))


def test_launch_value_with_a_lone_surrogate() -> None:
    """A non-UTF-8 byte of a command line arrives as a lone surrogate and is quoted back."""
    argv = ["python", "-m", "sglang.launch_server", "--model-path", "m"]
    passes(run_inproc(targets.launch_argv, [*argv, "--hicache-write-policy", "\udcff"], "sglang"))


def test_snapshot_error_quoting_a_secret(tmp_path: Path) -> None:
    """An invalid field is quoted by the error; the error is scrubbed when it is made."""
    snap = json.loads((ASSETS / "envs" / "h100-torch2.11-cu130.json").read_text())
    snap["driver"]["cuda"] = gen.SECRET_URL_PASSWORD
    (tmp_path / "s.json").write_text(json.dumps(snap))
    res = run_inproc(targets.check_request, str(tmp_path / "s.json"), secrets=gen.NEEDLES)
    passes(res)
    assert res.outcome is Outcome.CLEAN_ERROR, res.short()


@pytest.mark.fuzz
def test_from_a_fifo_nobody_writes(tmp_path: Path) -> None:
    fifo = tmp_path / "freeze"
    os.mkfifo(fifo)
    res = run_cli(("check", "--from", str(fifo)))
    assert res.outcome is Outcome.CLEAN_ERROR and res.rc == 3, res.short()


def test_launch_file_export_doubling(tmp_path: Path) -> None:
    """`X=$X$X` forty times would be 2^40 characters: expansion stops at a line's bound."""
    (tmp_path / "run.sh").write_text(
        "X=ab\n" + "X=$X$X\n" * 40 + "vllm serve m --served-model-name $X\n"
    )
    freeze = str(ASSETS / "freeze" / "vllm-0.10.1.1-good.txt")
    passes(
        run_inproc(
            functools.partial(targets.check_request, freeze, launch_file=str(tmp_path / "run.sh"))
        )
    )


def test_gpu_bare_number_of_5000_digits() -> None:
    res = run_inproc(targets.host_overrides, None, ("9" * 5000,), (), None)
    assert res.outcome is Outcome.CLEAN_ERROR, res.short()


def test_config_yaml_deep_flow_list(tmp_path: Path) -> None:
    """PyYAML's scanner is quadratic in flow nesting: the walk stops at the first level too deep."""
    (tmp_path / "c.yaml").write_text("x: " + "[" * 50_000 + "]" * 50_000 + "\n")
    argv = ["vllm", "serve", "m", "--config", str(tmp_path / "c.yaml")]
    res = run_inproc(targets.launch_argv, argv, "vllm")
    passes(res)
    assert res.elapsed_s < 5, res.short()


@pytest.mark.fuzz
def test_launch_file_a_fifo_nobody_writes(tmp_path: Path) -> None:
    fifo = tmp_path / "run.sh"
    os.mkfifo(fifo)
    freeze = str(ASSETS / "freeze" / "vllm-0.10.1.1-good.txt")
    res = run_cli(("check", "--from", freeze, "--launch-file", str(fifo)))
    assert res.outcome is Outcome.CLEAN_ERROR, res.short()


@pytest.mark.parametrize("value", ["5", "true", "1979-05-27T07:32:00", "{a = 1}", "'\u0661'"])
def test_launch_data_record_of_the_wrong_type(tmp_path: Path, value: str) -> None:
    """The launch data is read lazily and validated by `matrix validate`, not on every run: a
    damaged record still ends in a data error, not a TypeError inside a check."""
    src = gen.MATRICES / "generated" / "launch" / "vllm.toml"
    text = "".join(
        f"default = {value}\n" if line.startswith("default = ") else line
        for line in src.read_text().splitlines(keepends=True)
    )
    case = gen._db_case("data", "launch-default", "generated/launch/vllm.toml", text, "")
    gen.materialize(case, tmp_path)
    passes(
        run_inproc(
            targets.database_root,
            str(tmp_path / "db"),
            env={
                "COMPAT_CACHE_DIR": str(tmp_path / "cache"),
                "COMPAT_MATRICES": str(tmp_path / "db"),
            },
        )
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("num_hidden_layers", str(2**63 - 1)),
        ("moe_intermediate_size", "9" * 4300),
        ("num_experts_per_tok", "1e308"),
        ("max_position_embeddings", "1e308"),
        ("hidden_size", "-4096"),
    ],
    ids=["layers-int64", "4300-digits", "topk-1e308", "positions-1e308", "negative"],
)
def test_model_config_numbers_past_any_model(tmp_path: Path, key: str, value: str) -> None:
    """A config.json number no model has (2^63 layers, 10^4300) is not a fact: the estimate
    neither loops over it nor overflows a float."""
    src = gen._hub_model("Qwen/Qwen3-30B-A3B")
    model = tmp_path / "model"
    model.mkdir()
    config = json.loads((src / "config.json").read_text())
    config[key] = "@"
    (model / "config.json").write_text(json.dumps(config).replace('"@"', value))
    for extra in src.iterdir():
        if extra.name != "config.json":
            (model / extra.name).write_bytes(extra.read_bytes())
    argv = ("vllm", "serve", str(model), "--tensor-parallel-size", "2")
    res = run_inproc(
        functools.partial(targets.check_request, str(gen.SNAPSHOTS[0]), launch_argv=argv)
    )
    passes(res)


def test_report_to_an_ascii_stdout(tmp_path: Path) -> None:
    """PYTHONIOENCODING=ascii (or an old image's C locale): characters are escaped."""
    snap = gen.full_snapshot()
    snap["gpus"][0]["name"] = "NVIDIA H100 \u4e2d\u6587 \U0001f600"
    (tmp_path / "u.json").write_text(json.dumps(snap))
    env = dict(os.environ, PYTHONIOENCODING="ascii")
    passes(run_cli(("check", "--from", str(tmp_path / "u.json")), env=env))


def test_matrix_show_of_a_version_past_any_length() -> None:
    res = run_cli(("matrix", "show", "torch==" + "9" * 5000))
    assert res.outcome is Outcome.CLEAN_ERROR and res.rc == 2, res.short()


def test_interpreter_reporting_a_prerelease_version(tmp_path: Path) -> None:
    exe = tmp_path / "python"
    doc = {
        "version": "3.11rc1",
        "implementation": "cpython",
        "executable": str(exe),
        "platform": "linux-x86_64",
        "machine": "x86_64",
        "path": [str(tmp_path)],
        "soabi": "cpython-311-x86_64-linux-gnu",
    }
    exe.write_text(f"#!/bin/sh\nprintf '%s\\n' '{json.dumps(doc)}'\n")
    exe.chmod(0o755)
    passes(run_inproc(targets.interpreter, str(exe)))


def test_interpreter_that_hangs_is_given_up_within_the_bound(tmp_path: Path) -> None:
    exe = tmp_path / "python"
    exe.write_text("#!/bin/sh\nexec sleep 60\n")
    exe.chmod(0o755)
    res = run_inproc(targets.interpreter, str(exe))
    assert res.outcome is Outcome.CLEAN_ERROR, res.short()


def test_model_weights_index_of_infinite_size(tmp_path: Path) -> None:
    src = gen._hub_model("Qwen/Qwen3-30B-A3B")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_bytes((src / "config.json").read_bytes())
    (model / "model.safetensors.index.json").write_text(
        '{"weight_map": {}, "metadata": {"total_size": Infinity}}'
    )
    argv = ("vllm", "serve", str(model), "--tensor-parallel-size", "2")
    passes(
        run_inproc(
            functools.partial(targets.check_request, str(gen.SNAPSHOTS[0]), launch_argv=argv)
        )
    )


def test_model_safetensors_that_is_a_fifo(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_bytes(
        (gen._hub_model("Qwen/Qwen3-30B-A3B") / "config.json").read_bytes()
    )
    os.mkfifo(model / "model.safetensors")
    argv = ("vllm", "serve", str(model), "--tensor-parallel-size", "2")
    passes(
        run_inproc(
            functools.partial(targets.check_request, str(gen.SNAPSHOTS[0]), launch_argv=argv)
        )
    )


def test_secrets_in_probed_facts_are_not_shown(tmp_path: Path) -> None:
    """A driver version nvidia-smi printed, a Requires-Dist URL: `compat env` shows neither's
    credentials (every formatter returns scrubbed text)."""
    line = f"0, NVIDIA H100 80GB HBM3, 9.0, 81559, 480, Disabled, GPU-5269, {gen.SECRET_URL_PASSWORD}\n"
    passes(run_inproc(targets.smi_text, line, secrets=gen.NEEDLES))
